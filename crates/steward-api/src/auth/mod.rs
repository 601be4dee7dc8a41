//! Authentication and authorization at the edge.
//!
//! `middleware` resolves the bearer credential once per request (a JWT or an API key) into a
//! `Principal`, or an authentication failure, and leaves it in the request extensions.
//! Handlers then take `Authorized<perm::X>` as their FIRST argument: the permission a route
//! needs is in its signature, and the check runs before the body is even parsed, so a caller
//! without the permission learns nothing from validation errors.

pub mod authorized;
pub mod middleware;
pub mod perm;

pub use authorized::{Authorized, AuthorizedAny};
