//! Short-lived access tokens: Ed25519-signed JWTs.
//!
//! The algorithm is pinned to `EdDSA` and checked before any key is touched, so neither
//! `alg: none` nor the HS256-with-the-public-key confusion can get a token accepted. Every
//! token names its key (`kid`); several verification keys can be known at once so signing keys
//! rotate without logging everyone out. Time comes from the injected [`Clock`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::Duration;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use steward_core::{Clock, Error, Id, Permission, Principal, PrincipalKind, Result, Role};
use zeroize::Zeroizing;

pub const DEFAULT_ISSUER: &str = "steward";
pub const DEFAULT_AUDIENCE: &str = "steward-api";
pub const DEFAULT_LIFETIME_MINUTES: i64 = 15;

/// Larger tokens are rejected unparsed: ours are a few hundred bytes, and there is no reason
/// to base64-decode and JSON-parse whatever a client chooses to send.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

const ED25519_PUBLIC_KEY_LEN: usize = 32;

/// What every verification failure becomes outside this module. One text for all causes: the
/// caller learns nothing about which check failed.
const INVALID_TOKEN: &str = "invalid or expired token";

/// An Ed25519 signing key and the id tokens name it by.
pub struct SigningKey {
    pub kid: String,
    pkcs8: Zeroizing<Vec<u8>>,
    public: Vec<u8>,
    /// Built once so each token does not leave another copy of the private key on the heap.
    encoding: EncodingKey,
}

impl SigningKey {
    /// A fresh key with a new `sig_…` id.
    pub fn generate() -> Result<Self> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::internal_msg("could not generate an Ed25519 signing key"))?;
        Self::from_pkcs8(Id::SigningKey.generate(), doc.as_ref())
    }

    /// Loads a key stored earlier from [`pkcs8_der`](Self::pkcs8_der). The document is checked
    /// by ring (PKCS#8 v2, public key consistent with the private key).
    pub fn from_pkcs8(kid: impl Into<String>, pkcs8: &[u8]) -> Result<Self> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(Error::internal_msg("signing key id is empty"));
        }
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| {
            Error::internal_msg("signing key is not a valid Ed25519 PKCS#8 document")
        })?;
        Ok(Self {
            kid,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
            public: pair.public_key().as_ref().to_vec(),
            encoding: EncodingKey::from_ed_der(pkcs8),
        })
    }

    /// The private key as PKCS#8 DER, for storage (wrapped under the master key).
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }
}

impl Clone for SigningKey {
    fn clone(&self) -> Self {
        Self {
            kid: self.kid.clone(),
            pkcs8: self.pkcs8.clone(),
            public: self.public.clone(),
            encoding: self.encoding.clone(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("pkcs8", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// The claims Steward puts in, and requires of, every access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `usr_…`, `key_…` or `sub_…`.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `user`, `api_key` or `subprocessor` ([`PrincipalKind::as_str`]).
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub jti: String,
}

impl Claims {
    pub fn principal_kind(&self) -> Option<PrincipalKind> {
        parse_kind(&self.kind)
    }

    /// The principal these claims describe. Fails closed: an unknown kind, role or scope makes
    /// the whole token invalid rather than silently granting less (or more).
    pub fn to_principal(&self) -> Result<Principal> {
        let unauthenticated = || Error::Unauthenticated {
            detail: INVALID_TOKEN,
        };
        let kind = self.principal_kind().ok_or_else(unauthenticated)?;
        let role = self
            .role
            .as_deref()
            .map(str::parse::<Role>)
            .transpose()
            .map_err(|_| unauthenticated())?;
        let scopes = self
            .scopes
            .iter()
            .map(|s| s.parse::<Permission>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| unauthenticated())?;
        Ok(Principal {
            kind,
            id: self.sub.clone(),
            role,
            tenant_id: self.tenant.clone(),
            scopes,
        })
    }
}

fn parse_kind(s: &str) -> Option<PrincipalKind> {
    [
        PrincipalKind::User,
        PrincipalKind::ApiKey,
        PrincipalKind::Subprocessor,
    ]
    .into_iter()
    .find(|k| k.as_str() == s)
}

/// Whom a token is issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSubject {
    pub sub: String,
    pub kind: PrincipalKind,
    pub role: Option<Role>,
    pub tenant: Option<String>,
    pub scopes: Vec<Permission>,
}

impl From<&Principal> for TokenSubject {
    fn from(p: &Principal) -> Self {
        Self {
            sub: p.id.clone(),
            kind: p.kind,
            role: p.role,
            tenant: p.tenant_id.clone(),
            scopes: p.scopes.clone(),
        }
    }
}

/// An OAuth-style token response body.
#[derive(Clone, Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Why a token was refused. For logs and tests only: converting into
/// [`steward_core::Error`] erases the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong audience")]
    WrongAudience,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
}

impl From<TokenError> for Error {
    fn from(_: TokenError) -> Self {
        Error::Unauthenticated {
            detail: INVALID_TOKEN,
        }
    }
}

/// The header fields we look at before trusting anything else.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// Reads the header ourselves so that the algorithm decision never depends on what the JWT
/// library can parse: `none` and unknown names are refused here, before key lookup.
fn checked_kid(token: &str) -> Result<String, TokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| TokenError::Malformed)?;
    let header: RawHeader = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(TokenError::AlgorithmNotAllowed);
    }
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(TokenError::Malformed);
    }
    // RFC 7515 §4.1.11: extensions we do not understand must make the token invalid.
    if header.crit.is_some() {
        return Err(TokenError::Malformed);
    }
    header.kid.ok_or(TokenError::UnknownKey)
}

fn map_jwt_error(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::InvalidAlgorithmName => TokenError::AlgorithmNotAllowed,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        _ => TokenError::Malformed,
    }
}

fn random_jti() -> Result<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::internal_msg("system random number generator failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Issues and verifies access tokens.
///
/// Key state sits behind locks so a shared (`Arc`) issuer can rotate keys while serving.
pub struct TokenIssuer {
    signing: RwLock<Arc<SigningKey>>,
    verification: RwLock<HashMap<String, DecodingKey>>,
    issuer: String,
    audience: String,
    lifetime: Duration,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<String> = self.read_verification().keys().cloned().collect();
        kids.sort();
        f.debug_struct("TokenIssuer")
            .field("signing_kid", &self.current_kid())
            .field("verification_kids", &kids)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer signing with `signing` (which also becomes a verification key), with the
    /// default issuer, audience and a 15-minute lifetime.
    pub fn new(signing: SigningKey, clock: Arc<dyn Clock>) -> Self {
        let mut verification = HashMap::new();
        verification.insert(
            signing.kid.clone(),
            DecodingKey::from_ed_der(signing.public_key()),
        );
        Self {
            signing: RwLock::new(Arc::new(signing)),
            verification: RwLock::new(verification),
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            lifetime: Duration::minutes(DEFAULT_LIFETIME_MINUTES),
            clock,
        }
    }

    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The `kid` new tokens are signed with.
    pub fn current_kid(&self) -> String {
        self.current_key().kid.clone()
    }

    fn current_key(&self) -> Arc<SigningKey> {
        Arc::clone(&self.signing.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn read_verification(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, DecodingKey>> {
        self.verification
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Trusts tokens signed by the key `kid` with this raw 32-byte Ed25519 public key (a key
    /// rotated out of signing, or one another node signs with). Replaces any key with that id.
    pub fn add_verification_key(&self, kid: impl Into<String>, public: &[u8]) -> Result<()> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(Error::internal_msg("verification key id is empty"));
        }
        // The JWT library slices the first 32 bytes and would panic on a shorter key.
        if public.len() != ED25519_PUBLIC_KEY_LEN {
            return Err(Error::internal_msg(
                "verification key is not a 32-byte Ed25519 public key",
            ));
        }
        self.verification
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kid, DecodingKey::from_ed_der(public));
        Ok(())
    }

    /// Stops trusting tokens signed by `kid`. The current signing key cannot be removed: the
    /// issuer would then refuse its own tokens.
    pub fn remove_verification_key(&self, kid: &str) -> bool {
        if kid == self.current_kid() {
            return false;
        }
        self.verification
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(kid)
            .is_some()
    }

    /// Signs new tokens with `key` from now on. The previous key stays trusted for
    /// verification, so tokens already handed out keep working until they expire; drop it
    /// later with [`remove_verification_key`](Self::remove_verification_key).
    pub fn rotate_signing_key(&self, key: SigningKey) {
        self.verification
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.kid.clone(), DecodingKey::from_ed_der(key.public_key()));
        *self.signing.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }

    pub fn has_verification_key(&self, kid: &str) -> bool {
        self.read_verification().contains_key(kid)
    }

    pub fn issue(&self, subject: TokenSubject) -> Result<IssuedToken> {
        let key = self.current_key();
        let now = self.clock.now();
        let claims = Claims {
            sub: subject.sub,
            role: subject.role.map(|r| r.as_str().to_owned()),
            tenant: subject.tenant,
            kind: subject.kind.as_str().to_owned(),
            scopes: subject
                .scopes
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            exp: (now + self.lifetime).timestamp(),
            // Left out on purpose: with several API nodes a few milliseconds of clock skew
            // would otherwise reject a token on the node next door right after issue.
            nbf: None,
            jti: random_jti()?,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let access_token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|_| Error::internal_msg("token signing failed"))?;
        Ok(IssuedToken {
            access_token,
            token_type: "Bearer",
            expires_in: self.lifetime.num_seconds(),
        })
    }

    /// Verifies signature, algorithm, key, issuer, audience and expiry. Expiry is judged by
    /// the injected clock with no leeway.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let kid = checked_kid(token)?;
        let key = self
            .read_verification()
            .get(&kid)
            .cloned()
            .ok_or(TokenError::UnknownKey)?;

        let mut validation = Validation::new(Algorithm::EdDSA);
        // The library would compare against the system clock; time is ours to judge below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);

        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(map_jwt_error)?
            .claims;

        // `Claims` types `iss` and `aud` as single strings, so these are exact comparisons;
        // they repeat the library's checks so correctness does not rest on its set semantics.
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != self.audience {
            return Err(TokenError::WrongAudience);
        }
        let now = self.clock.now().timestamp();
        // RFC 7519 §4.1.4: the current time must be *before* `exp`.
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if parse_kind(&claims.kind).is_none() {
            return Err(TokenError::Malformed);
        }
        Ok(claims)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use steward_core::ManualClock;

    fn setup() -> (TokenIssuer, ManualClock) {
        let clock = ManualClock::starting_now();
        let issuer = TokenIssuer::new(SigningKey::generate().unwrap(), Arc::new(clock.clone()));
        (issuer, clock)
    }

    fn subject() -> TokenSubject {
        TokenSubject {
            sub: "usr_01hzzzzzzzzzzzzzzzzzzzzzzz".into(),
            kind: PrincipalKind::User,
            role: Some(Role::TenantAdmin),
            tenant: Some("ten_a".into()),
            scopes: vec![],
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    fn claims_json(issuer: &TokenIssuer, clock: &ManualClock) -> serde_json::Value {
        let now = clock.now().timestamp();
        serde_json::json!({
            "sub": "usr_x", "kind": "user", "role": "platform_admin",
            "iss": issuer.issuer(), "aud": issuer.audience(),
            "iat": now, "exp": now + 600, "jti": "j",
        })
    }

    #[test]
    fn round_trip() {
        let (issuer, clock) = setup();
        let issued = issuer.issue(subject()).unwrap();
        assert_eq!(issued.token_type, "Bearer");
        assert_eq!(issued.expires_in, 15 * 60);
        let claims = issuer.verify(&issued.access_token).unwrap();
        assert_eq!(claims.sub, "usr_01hzzzzzzzzzzzzzzzzzzzzzzz");
        assert_eq!(claims.kind, "user");
        assert_eq!(claims.role.as_deref(), Some("tenant_admin"));
        assert_eq!(claims.tenant.as_deref(), Some("ten_a"));
        assert_eq!(claims.iss, "steward");
        assert_eq!(claims.aud, "steward-api");
        assert_eq!(claims.iat, clock.now().timestamp());
        assert_eq!(claims.exp, claims.iat + 900);
        assert!(!claims.jti.is_empty());

        let header = jsonwebtoken::decode_header(&issued.access_token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(issuer.current_kid().as_str()));

        let p = claims.to_principal().unwrap();
        assert_eq!(p.kind, PrincipalKind::User);
        assert_eq!(p.role, Some(Role::TenantAdmin));
        assert_eq!(p.tenant_id.as_deref(), Some("ten_a"));
    }

    #[test]
    fn scopes_round_trip_and_are_omitted_when_empty() {
        let (issuer, _) = setup();
        let t = issuer.issue(subject()).unwrap();
        let payload = t.access_token.split('.').nth(1).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert!(json.get("scopes").is_none());
        assert!(json.get("nbf").is_none());

        let key = Principal {
            kind: PrincipalKind::ApiKey,
            id: "key_x".into(),
            role: None,
            tenant_id: Some("ten_a".into()),
            scopes: vec![Permission::VisitorsRead, Permission::AuditRead],
        };
        let t = issuer.issue(TokenSubject::from(&key)).unwrap();
        let claims = issuer.verify(&t.access_token).unwrap();
        assert_eq!(claims.scopes, vec!["visitors:read", "audit:read"]);
        assert_eq!(claims.to_principal().unwrap().scopes, key.scopes);
    }

    #[test]
    fn expired_by_injected_clock() {
        let (issuer, clock) = setup();
        let t = issuer.issue(subject()).unwrap();
        clock.advance(Duration::minutes(15) - Duration::seconds(1));
        assert!(issuer.verify(&t.access_token).is_ok());
        clock.advance(Duration::seconds(1));
        assert_eq!(
            issuer.verify(&t.access_token).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn custom_lifetime() {
        let clock = ManualClock::starting_now();
        let issuer = TokenIssuer::new(SigningKey::generate().unwrap(), Arc::new(clock.clone()))
            .with_lifetime(Duration::minutes(5));
        let t = issuer.issue(subject()).unwrap();
        assert_eq!(t.expires_in, 300);
        clock.advance(Duration::minutes(5));
        assert_eq!(
            issuer.verify(&t.access_token).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn nbf_in_future_is_refused() {
        let (issuer, clock) = setup();
        let mut claims: Claims = serde_json::from_value(claims_json(&issuer, &clock)).unwrap();
        claims.nbf = Some(clock.now().timestamp() + 60);
        let key = issuer.current_key();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
        assert_eq!(issuer.verify(&token).unwrap_err(), TokenError::NotYetValid);
        clock.advance(Duration::seconds(60));
        assert!(issuer.verify(&token).is_ok());
    }

    #[test]
    fn other_key_with_same_kid_fails() {
        let (issuer, clock) = setup();
        let other = SigningKey::generate().unwrap();
        let impostor = SigningKey::from_pkcs8(issuer.current_kid(), other.pkcs8_der()).unwrap();
        let forger = TokenIssuer::new(impostor, Arc::new(clock.clone()));
        let t = forger.issue(subject()).unwrap();
        assert_eq!(
            issuer.verify(&t.access_token).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn alg_none_fails() {
        let (issuer, clock) = setup();
        let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": issuer.current_kid()});
        let token = format!("{}.{}.", b64(&header), b64(&claims_json(&issuer, &clock)));
        assert_eq!(
            issuer.verify(&token).unwrap_err(),
            TokenError::AlgorithmNotAllowed
        );
        // Spelling variants some libraries accept.
        for alg in ["None", "NONE", "eddsa", ""] {
            let header = serde_json::json!({"alg": alg, "kid": issuer.current_kid()});
            let token = format!("{}.{}.", b64(&header), b64(&claims_json(&issuer, &clock)));
            assert_eq!(
                issuer.verify(&token).unwrap_err(),
                TokenError::AlgorithmNotAllowed
            );
        }
    }

    #[test]
    fn hs256_with_public_key_as_secret_fails() {
        let (issuer, clock) = setup();
        let key = issuer.current_key();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims_json(&issuer, &clock),
            &EncodingKey::from_secret(key.public_key()),
        )
        .unwrap();
        assert_eq!(
            issuer.verify(&token).unwrap_err(),
            TokenError::AlgorithmNotAllowed
        );
    }

    #[test]
    fn wrong_audience_fails() {
        let (issuer, clock) = setup();
        let key = issuer.current_key().as_ref().clone();
        let other = TokenIssuer::new(key, Arc::new(clock)).with_audience("steward-admin");
        let t = other.issue(subject()).unwrap();
        assert_eq!(
            issuer.verify(&t.access_token).unwrap_err(),
            TokenError::WrongAudience
        );
    }

    #[test]
    fn wrong_issuer_fails() {
        let (issuer, clock) = setup();
        let key = issuer.current_key().as_ref().clone();
        let other = TokenIssuer::new(key, Arc::new(clock)).with_issuer("someone-else");
        let t = other.issue(subject()).unwrap();
        assert_eq!(
            issuer.verify(&t.access_token).unwrap_err(),
            TokenError::WrongIssuer
        );
    }

    #[test]
    fn audience_array_is_not_accepted() {
        let (issuer, clock) = setup();
        let mut claims = claims_json(&issuer, &clock);
        claims["aud"] = serde_json::json!(["steward-api", "other"]);
        let key = issuer.current_key();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
        assert!(issuer.verify(&token).is_err());
    }

    #[test]
    fn unknown_or_missing_kid_fails() {
        let (issuer, clock) = setup();
        let stranger = TokenIssuer::new(SigningKey::generate().unwrap(), Arc::new(clock.clone()));
        let t = stranger.issue(subject()).unwrap();
        assert_eq!(
            issuer.verify(&t.access_token).unwrap_err(),
            TokenError::UnknownKey
        );

        let key = issuer.current_key();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &claims_json(&issuer, &clock),
            &key.encoding,
        )
        .unwrap();
        assert_eq!(issuer.verify(&token).unwrap_err(), TokenError::UnknownKey);
    }

    #[test]
    fn tampered_payload_fails() {
        let (issuer, _) = setup();
        let t = issuer.issue(subject()).unwrap();
        let parts: Vec<&str> = t.access_token.split('.').collect();
        let mut json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        json["role"] = serde_json::json!("platform_admin");
        let forged = format!("{}.{}.{}", parts[0], b64(&json), parts[2]);
        assert_eq!(
            issuer.verify(&forged).unwrap_err(),
            TokenError::BadSignature
        );
    }

    #[test]
    fn garbage_is_malformed() {
        let (issuer, _) = setup();
        for t in ["", "a", "a.b", "a.b.c", "a.b.c.d", "....", "eyJ.eyJ.sig"] {
            assert_eq!(issuer.verify(t).unwrap_err(), TokenError::Malformed, "{t}");
        }
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(issuer.verify(&big).unwrap_err(), TokenError::Malformed);
    }

    #[test]
    fn crit_header_and_foreign_typ_fail() {
        let (issuer, clock) = setup();
        let key = issuer.current_key();
        let payload = b64(&claims_json(&issuer, &clock));
        for header in [
            serde_json::json!({"alg": "EdDSA", "kid": key.kid, "crit": ["exp"], "exp": 1}),
            serde_json::json!({"alg": "EdDSA", "kid": key.kid, "typ": "at+jwt"}),
        ] {
            let signing_input = format!("{}.{}", b64(&header), payload);
            let pair = Ed25519KeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
            let sig = URL_SAFE_NO_PAD.encode(pair.sign(signing_input.as_bytes()));
            let token = format!("{signing_input}.{sig}");
            assert_eq!(issuer.verify(&token).unwrap_err(), TokenError::Malformed);
        }
    }

    #[test]
    fn ring_signed_token_verifies() {
        // Interoperability: a token signed by ring directly (not via the JWT library) is
        // accepted, so the stored PKCS#8 and the library agree on the key.
        let (issuer, clock) = setup();
        let key = issuer.current_key();
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid});
        let signing_input = format!("{}.{}", b64(&header), b64(&claims_json(&issuer, &clock)));
        let pair = Ed25519KeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
        let sig = URL_SAFE_NO_PAD.encode(pair.sign(signing_input.as_bytes()));
        assert!(issuer.verify(&format!("{signing_input}.{sig}")).is_ok());
    }

    #[test]
    fn unknown_kind_role_or_scope_fails_closed() {
        let (issuer, clock) = setup();
        let key = issuer.current_key();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());

        let mut c = claims_json(&issuer, &clock);
        c["kind"] = serde_json::json!("robot");
        let token = jsonwebtoken::encode(&header, &c, &key.encoding).unwrap();
        assert_eq!(issuer.verify(&token).unwrap_err(), TokenError::Malformed);

        let mut c = claims_json(&issuer, &clock);
        c["role"] = serde_json::json!("god");
        let token = jsonwebtoken::encode(&header, &c, &key.encoding).unwrap();
        let claims = issuer.verify(&token).unwrap();
        assert!(matches!(
            claims.to_principal(),
            Err(Error::Unauthenticated { .. })
        ));

        let mut c = claims_json(&issuer, &clock);
        c["scopes"] = serde_json::json!(["visitors:read", "everything"]);
        let token = jsonwebtoken::encode(&header, &c, &key.encoding).unwrap();
        let claims = issuer.verify(&token).unwrap();
        assert!(claims.to_principal().is_err());
    }

    #[test]
    fn rotation_keeps_old_tokens_until_key_removed() {
        let (issuer, _) = setup();
        let old_kid = issuer.current_kid();
        let old = issuer.issue(subject()).unwrap();

        let new_key = SigningKey::generate().unwrap();
        let new_kid = new_key.kid.clone();
        issuer.rotate_signing_key(new_key);
        assert_eq!(issuer.current_kid(), new_kid);
        let new = issuer.issue(subject()).unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&new.access_token)
                .unwrap()
                .kid
                .as_deref(),
            Some(new_kid.as_str())
        );
        assert!(issuer.verify(&old.access_token).is_ok());
        assert!(issuer.verify(&new.access_token).is_ok());

        assert!(!issuer.remove_verification_key(&new_kid));
        assert!(issuer.remove_verification_key(&old_kid));
        assert_eq!(
            issuer.verify(&old.access_token).unwrap_err(),
            TokenError::UnknownKey
        );
        assert!(issuer.verify(&new.access_token).is_ok());
    }

    #[test]
    fn add_verification_key_trusts_another_signer() {
        let (issuer, clock) = setup();
        let other_key = SigningKey::generate().unwrap();
        let other = TokenIssuer::new(other_key.clone(), Arc::new(clock));
        let t = other.issue(subject()).unwrap();
        assert!(issuer.verify(&t.access_token).is_err());
        issuer
            .add_verification_key(other_key.kid.clone(), other_key.public_key())
            .unwrap();
        assert!(issuer.has_verification_key(&other_key.kid));
        assert!(issuer.verify(&t.access_token).is_ok());
        // Wrong-length keys are refused up front.
        assert!(issuer
            .add_verification_key("sig_short", &[0u8; 31])
            .is_err());
        assert!(issuer.add_verification_key("", &[0u8; 32]).is_err());
    }

    #[test]
    fn pkcs8_round_trip_and_validation() {
        let k = SigningKey::generate().unwrap();
        assert!(Id::SigningKey.matches(&k.kid));
        assert_eq!(k.public_key().len(), 32);
        let again = SigningKey::from_pkcs8(k.kid.clone(), k.pkcs8_der()).unwrap();
        assert_eq!(again.public_key(), k.public_key());
        assert!(SigningKey::from_pkcs8("sig_x", b"not a key").is_err());
        assert!(SigningKey::from_pkcs8("", k.pkcs8_der()).is_err());
        let shown = format!("{k:?}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn errors_collapse_to_one_unauthenticated() {
        for e in [
            TokenError::Malformed,
            TokenError::UnknownKey,
            TokenError::BadSignature,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::WrongAudience,
            TokenError::WrongIssuer,
            TokenError::AlgorithmNotAllowed,
        ] {
            match Error::from(e) {
                Error::Unauthenticated { detail } => assert_eq!(detail, "invalid or expired token"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn issued_token_debug_is_redacted() {
        let (issuer, _) = setup();
        let t = issuer.issue(subject()).unwrap();
        assert!(!format!("{t:?}").contains(&t.access_token));
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["token_type"], "Bearer");
        assert_eq!(json["expires_in"], 900);
    }
}
