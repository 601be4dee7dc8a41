//! Steward's HTTP API. `server::start` is the app factory both the binary and the end-to-end
//! tests use; `error` is the one mapping from domain errors to RFC 9457 problem details.

pub mod audit_trail;
pub mod auth;
pub mod bulk;
pub mod config;
pub mod error;
pub mod master_key;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod state;

pub use config::Config;
pub use error::ApiError;
pub use state::AppState;
