//! Passwords of humans: argon2id hashing, the policy a new password must meet, and generated
//! passwords for the bootstrap admin.
//!
//! Passwords are low-entropy, so they get a deliberately slow, memory-hard hash. Machine secrets
//! (API keys, client secrets) are high-entropy and live in [`crate::secrets`] with a fast hash.

use std::collections::HashSet;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use ring::rand::{SecureRandom, SystemRandom};
use steward_core::{Error, Result};

/// Minimum length in characters. Length is what makes a human password hard to guess; NIST
/// SP 800-63B drops composition rules in favour of length plus a blocklist, and so do we.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Maximum length in bytes. Long enough for any passphrase, short enough that a request cannot
/// make the server pre-hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Length of [`generate_password`] output.
pub const GENERATED_PASSWORD_CHARS: usize = 24;

/// Characters that survive being read aloud or copied from a terminal: no `0/O/o`, `1/l/I`.
const UNAMBIGUOUS_ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";

/// What the dummy verification hashes. Its value does not matter: nobody can log in with it,
/// because it is only ever compared against when no account exists.
const DUMMY_PASSWORD: &str = "steward-dummy-password-for-timing-equalisation";

const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// argon2id hashing with fixed cost parameters.
///
/// Holds the parameters new hashes are made with; verification always uses the parameters
/// recorded in the stored PHC string, so raising the cost later does not lock anyone out (see
/// [`PasswordHasher::needs_rehash`]).
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    /// A hash of [`DUMMY_PASSWORD`] made with `params`, computed on first use so constructing
    /// a hasher stays cheap.
    dummy: OnceLock<String>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordHasher {
    /// OWASP's recommended argon2id configuration: 19 MiB, two passes, one lane.
    pub fn new() -> Self {
        Self::with_params(Params::new(19_456, 2, 1, None).unwrap_or_default())
    }

    /// Cheap parameters so test suites that create many users stay fast. Still argon2id and
    /// still a PHC string, so everything that reads hashes behaves the same.
    pub fn for_tests() -> Self {
        Self::with_params(Params::new(1_024, 1, 1, None).unwrap_or_default())
    }

    fn with_params(params: Params) -> Self {
        Self {
            params,
            dummy: OnceLock::new(),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes `password` with a fresh random salt into a PHC string
    /// (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`). Does not check the policy: callers that accept
    /// a new password call [`check_policy`] first.
    pub fn hash(&self, password: &str) -> Result<String> {
        let mut salt = [0u8; 16];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| Error::internal_msg("system random number generator failed"))?;
        let salt = SaltString::encode_b64(&salt)
            .map_err(|_| Error::internal_msg("could not encode password salt"))?;
        let hash = self
            .argon2()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|_| Error::internal_msg("password hashing failed"))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches the stored PHC string. Anything that is not a well-formed
    /// argon2id hash yields `false`, never an error: a corrupt row must not become a way in,
    /// and the caller has nothing better to do with the distinction.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        // Only argon2id is ever written; refusing the other variants stops a tampered row from
        // downgrading to argon2d/argon2i.
        if parsed.algorithm != argon2::ARGON2ID_IDENT {
            return false;
        }
        // The cost parameters come from `parsed`, not from `self`.
        self.argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    }

    /// Burns the same time as a failed [`verify`](Self::verify). Call it when the account does
    /// not exist, so response time does not reveal which emails are registered. The first
    /// call also computes the dummy hash; call it once at startup to keep that cost out of
    /// the first login.
    pub fn verify_dummy(&self, password: &str) {
        let dummy = self
            .dummy
            .get_or_init(|| self.hash(DUMMY_PASSWORD).unwrap_or_default());
        let _ = self.verify(password, dummy);
    }

    /// Whether a stored hash was made with different (usually older, cheaper) parameters than
    /// this hasher uses now. After a successful login the caller can re-hash and store it.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return true;
        };
        if parsed.algorithm != argon2::ARGON2ID_IDENT
            || parsed.version != Some(Version::V0x13.into())
        {
            return true;
        }
        match Params::try_from(&parsed) {
            Ok(p) => {
                p.m_cost() != self.params.m_cost()
                    || p.t_cost() != self.params.t_cost()
                    || p.p_cost() != self.params.p_cost()
            }
            Err(_) => true,
        }
    }
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    })
}

fn weak(detail: &'static str) -> Error {
    Error::invalid("weak_password", detail)
}

/// The rules a new password must meet. The error names the rule that failed, never the
/// password itself.
pub fn check_policy(password: &str) -> Result<()> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(weak("password must be at most 1024 bytes long"));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(weak("password must be at least 12 characters long"));
    }
    let mut chars = password.chars();
    if let Some(first) = chars.next() {
        if chars.all(|c| c == first) {
            return Err(weak("password must not be a single repeated character"));
        }
    }
    if common_passwords().contains(password.to_lowercase().as_str()) {
        return Err(weak("password is too common"));
    }
    Ok(())
}

/// A random password for accounts nobody has chosen one for yet (the bootstrap admin):
/// 24 characters from a 56-character alphabet, about 139 bits.
pub fn generate_password() -> Result<String> {
    let rng = SystemRandom::new();
    // Rejection sampling: only bytes below the largest multiple of the alphabet size are used,
    // so every character is equally likely.
    let n = UNAMBIGUOUS_ALPHABET.len();
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(GENERATED_PASSWORD_CHARS);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_PASSWORD_CHARS {
        rng.fill(&mut buf)
            .map_err(|_| Error::internal_msg("system random number generator failed"))?;
        for &b in &buf {
            if usize::from(b) < limit {
                out.push(char::from(UNAMBIGUOUS_ALPHABET[usize::from(b) % n]));
                if out.len() == GENERATED_PASSWORD_CHARS {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy_code(pw: &str) -> Option<(&'static str, String)> {
        match check_policy(pw) {
            Ok(()) => None,
            Err(Error::Invalid { code, detail }) => Some((code, detail)),
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn hash_is_argon2id_phc_and_verifies() {
        let h = PasswordHasher::for_tests();
        let phc = h.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery", &phc));
        assert!(!h.verify("correct horse batterY", &phc));
        assert!(!h.verify("", &phc));
    }

    #[test]
    fn production_params_are_owasp() {
        let h = PasswordHasher::new();
        let phc = h.hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        // Params come from the PHC string, so a test hasher verifies production hashes too.
        assert!(PasswordHasher::for_tests().verify("correct horse battery", &phc));
    }

    #[test]
    fn salts_differ_per_hash() {
        let h = PasswordHasher::for_tests();
        let a = h.hash("same password here").unwrap();
        let b = h.hash("same password here").unwrap();
        assert_ne!(a, b);
        assert!(h.verify("same password here", &a));
        assert!(h.verify("same password here", &b));
    }

    #[test]
    fn verify_is_false_on_garbage_and_other_algorithms() {
        let h = PasswordHasher::for_tests();
        assert!(!h.verify("x", ""));
        assert!(!h.verify("x", "not a hash"));
        assert!(!h.verify("x", "$argon2id$v=19$m=1024,t=1,p=1$"));
        let phc = h.hash("password one two").unwrap();
        let downgraded = phc.replacen("$argon2id$", "$argon2i$", 1);
        assert!(!h.verify("password one two", &downgraded));
    }

    #[test]
    fn verify_dummy_runs_and_caches() {
        let h = PasswordHasher::for_tests();
        h.verify_dummy("whatever");
        let first = h.dummy.get().cloned().unwrap();
        assert!(first.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        h.verify_dummy("whatever else");
        assert_eq!(h.dummy.get().unwrap(), &first);
    }

    #[test]
    fn needs_rehash_detects_other_params() {
        let cheap = PasswordHasher::for_tests();
        let phc = cheap.hash("some long password").unwrap();
        assert!(!cheap.needs_rehash(&phc));
        assert!(PasswordHasher::new().needs_rehash(&phc));
        assert!(cheap.needs_rehash("garbage"));
    }

    #[test]
    fn policy_length_counts_chars_not_bytes() {
        // 11 two-byte characters: 22 bytes but too short.
        let short = "éàüöäßçñøåæ";
        assert_eq!(short.chars().count(), 11);
        assert_eq!(policy_code(short).unwrap().0, "weak_password");
        assert!(check_policy("éàüöäßçñøåæœ").is_ok());
        assert!(policy_code("abcdefghijk").is_some());
        assert!(check_policy("blue cactus river").is_ok());
    }

    #[test]
    fn policy_rejects_too_long() {
        let long = "ab".repeat(513);
        let (code, detail) = policy_code(&long).unwrap();
        assert_eq!(code, "weak_password");
        assert!(detail.contains("1024"));
        assert!(check_policy(&"ab".repeat(512)).is_ok());
    }

    #[test]
    fn policy_rejects_common_case_insensitively() {
        for pw in [
            "password1234",
            "PassWord1234",
            "qwertyuiop123",
            "123456789012",
            "iloveyou1234",
            "passwordpassword",
            "PASSWORDPASSWORD",
        ] {
            let (code, detail) = policy_code(pw).unwrap();
            assert_eq!(code, "weak_password");
            assert!(detail.contains("common"), "{pw}: {detail}");
        }
    }

    #[test]
    fn policy_rejects_repeated_character() {
        let (_, detail) = policy_code("zzzzzzzzzzzzzzzz").unwrap();
        assert!(detail.contains("repeated"));
    }

    #[test]
    fn common_list_is_large_and_lowercase() {
        let set = common_passwords();
        assert!(set.len() >= 300, "{}", set.len());
        assert!(set.iter().all(|p| *p == p.to_lowercase()));
        assert!(set.iter().filter(|p| p.chars().count() >= 12).count() >= 20);
    }

    #[test]
    fn generated_passwords_pass_policy_and_differ() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.chars().count(), GENERATED_PASSWORD_CHARS);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| UNAMBIGUOUS_ALPHABET.contains(&c)));
        check_policy(&a).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn policy_errors_are_fixed_messages(pw in "\\PC{0,40}") {
            // Every rejection is one of the fixed texts, so nothing from the input can leak.
            const FIXED: [&str; 4] = [
                "password must be at most 1024 bytes long",
                "password must be at least 12 characters long",
                "password must not be a single repeated character",
                "password is too common",
            ];
            if let Some((code, detail)) = policy_code(&pw) {
                prop_assert_eq!(code, "weak_password");
                prop_assert!(FIXED.contains(&detail.as_str()));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        #[test]
        fn hash_then_verify_round_trips(pw in "\\PC{1,64}") {
            let h = PasswordHasher::for_tests();
            let phc = h.hash(&pw).unwrap();
            prop_assert!(h.verify(&pw, &phc));
            let other = format!("{pw}x");
            prop_assert!(!h.verify(&other, &phc));
        }
    }
}
