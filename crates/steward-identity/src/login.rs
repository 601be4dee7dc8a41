//! Password login. Unknown user and wrong password get the same answer after the same work
//! (one argon2 verification either way), and failures are throttled per account and per
//! client address.

use steward_core::{Error, Result};
use steward_store::Store;

use crate::password::PasswordHasher;
use crate::rate_limit::LoginRateLimiter;
use crate::users::{self, UserRow};

const INVALID: Error = Error::Unauthenticated {
    detail: "invalid e-mail or password",
};

pub struct LoginService {
    pub hasher: PasswordHasher,
    pub limiter: LoginRateLimiter,
}

impl std::fmt::Debug for LoginService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginService")
    }
}

impl LoginService {
    pub fn new(hasher: PasswordHasher, limiter: LoginRateLimiter) -> Self {
        Self { hasher, limiter }
    }

    /// Checks the credentials. Blocking (argon2): run it off the async executor.
    /// `tenant_id` narrows the search when one e-mail has accounts in several tenants.
    pub fn login(
        &self,
        store: &Store,
        email: &str,
        password: &str,
        tenant_id: Option<&str>,
        address: &str,
    ) -> Result<UserRow> {
        let address_key = format!("ip:{address}");
        // The address is throttled before anything else, malformed e-mails included: every
        // attempt costs an argon2 verification, which must not be free to repeat.
        let Ok(email) = users::normalize_email(email) else {
            self.limiter.check("acct:-", &address_key)?;
            self.hasher.verify_dummy(password);
            self.limiter.record_failure("acct:-", &address_key);
            return Err(INVALID);
        };
        let account_key = format!("acct:{email}");
        self.limiter.check(&account_key, &address_key)?;
        let scope = tenant_id.map(str::to_string);
        let lookup = email.clone();
        let candidates = store
            .read_blocking(move |c| users::find_active_by_email(c, &lookup, scope.as_deref()))?;
        if candidates.is_empty() {
            self.hasher.verify_dummy(password);
        }
        for user in candidates {
            if self.hasher.verify(password, &user.password_hash) {
                self.limiter.record_success(&account_key);
                return Ok(user);
            }
        }
        self.limiter.record_failure(&account_key, &address_key);
        Err(INVALID)
    }
}
