//! Steward's audit log (DESIGN.md "Audit"; invariants 1 and 4): one append-only, hash-chained
//! log per tenant plus one for the platform, recording every access to visitor data — who
//! (actor), what (action, target, field NAMES), why (purpose, justification, grant) and how it
//! ended — and never a value.
//!
//! * [`append`] / [`append_many`] write events inside the caller's transaction, so an event
//!   commits with the change it records or not at all; a read of PII is recorded (and
//!   committed) before the data is returned, and a failed append fails the request.
//!   [`prepare`] does the part of an append that needs no chain head (checks, ids, encoding)
//!   where the request runs; [`append_prepared`] finishes it inside the single writer.
//! * Each event stores `hash = SHA-256(prev_hash ‖ canonical(event))` (see [`canonical`]), so
//!   editing, deleting or reordering any stored event breaks the chain from that event on.
//! * [`verify`] recomputes a chain and names the first bad seq; [`checkpoint`] signs a
//!   chain's head with Ed25519 so a tenant holding the checkpoint can later detect truncation
//!   or a wholesale re-hash ([`verify_signed`]).
//! * [`list`] and [`events_for_target`] serve the audit API and data-subject exports.
//!
//! Chains are independent: a tenant's appends lock only that tenant's head row, so tenants
//! never wait on each other.

pub mod append;
pub mod canonical;
pub mod checkpoint;
mod encoding;
pub mod event;
mod insert;
pub mod query;
pub mod schema;
mod staged;
pub mod target_index;
pub mod verify;

pub use append::{append, append_many, append_prepared, prepare, Appended, PreparedEvents};
pub use checkpoint::{
    checkpoint, latest_checkpoint, list_checkpoints, prepare_checkpoint, store_checkpoint,
    verify_checkpoint_signature, Checkpoint, CheckpointSigner,
};
pub use event::{Actor, AuditEvent, NewEvent, Outcome, Target};
pub use query::{chain_len, chains, events_for_target, head, list, EventFilter};
pub use staged::flush;
pub use verify::{
    reason, recommended_loaders, verify, verify_on, verify_signed, verify_signed_on, VerifyReport,
};

/// The chain of platform-level events (tenant creation, staff administration), which belong
/// to no tenant.
pub const PLATFORM_CHAIN: &str = "platform";
