//! Visitor PII and data-subject rights: validation, field-level encryption under the tenant's
//! keys, blind-index lookup, consents, access/export, rectification, erasure with receipts,
//! legal hold, retention and re-encryption. Every disclosure goes through `disclose`.

pub mod consents;
pub mod countries;
pub mod disclose;
pub mod model;
pub mod offboarding;
pub mod records;
pub mod reencrypt;
pub mod retention;
pub mod schema;
pub mod service;
pub mod validate;

pub use disclose::{disclose, disclose_after, disclosed_count, Access, Disclosure};
pub use model::{Address, Pii, Visitor, VisitorInput, VisitorMeta, VisitorPatch};
pub use service::{VisitorHooks, VisitorService};
