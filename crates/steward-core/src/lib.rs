//! The vocabulary every other Steward crate shares: prefixed ids, roles and the one
//! permission matrix, the domain error, and an injectable clock. Nothing here does I/O.

pub mod clock;
pub mod error;
pub mod ids;
pub mod permissions;
pub mod principal;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ItemError, Result};
pub use ids::Id;
pub use permissions::{Permission, Role};
pub use principal::{Principal, PrincipalKind};
