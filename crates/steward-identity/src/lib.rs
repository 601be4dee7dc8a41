//! Who may call Steward, minus the database: argon2id password hashing and the password
//! policy, Ed25519-signed access tokens (issuing, verification, key rotation), generation and
//! constant-time checking of API keys and subprocessor client secrets, and the in-memory
//! throttle on failed logins. Everything here is pure computation over injected time and the
//! system RNG; the stores of users, keys and clients build on it in their own modules.

pub mod jwt;
pub mod password;
pub mod rate_limit;
pub mod secrets;

pub use jwt::{Claims, IssuedToken, SigningKey, TokenError, TokenIssuer, TokenSubject};
pub use password::{check_policy, generate_password, PasswordHasher};
pub use rate_limit::{LoginRateLimiter, RateLimitConfig};
pub use secrets::{
    generate_api_key_secret, generate_client_secret, hash_secret, looks_like_api_key,
    looks_like_client_secret, verify_secret, Secret,
};
