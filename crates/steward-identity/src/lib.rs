//! Who may call Steward: users (platform staff and tenant users) with argon2id passwords,
//! Ed25519-signed access tokens, tenant API keys with scopes, subprocessor client credentials,
//! the login throttle, and the bootstrap admin. The pure parts (hashing, tokens, secrets,
//! throttle) compute over injected time and the system RNG; the stores build on them.

pub mod api_keys;
pub mod bootstrap;
pub mod clients;
pub mod jwt;
pub mod login;
pub mod password;
pub mod rate_limit;
pub mod schema;
pub mod secrets;
pub mod signing;
pub mod users;

pub use jwt::{Claims, IssuedToken, SigningKey, TokenError, TokenIssuer, TokenSubject};
pub use login::LoginService;
pub use password::{check_policy, generate_password, PasswordHasher};
pub use rate_limit::{LoginRateLimiter, RateLimitConfig};
pub use secrets::{
    generate_api_key_secret, generate_client_secret, hash_secret, looks_like_api_key,
    looks_like_client_secret, verify_secret, Secret,
};
