//! Onward transfers (DESIGN.md): the platform's subprocessor registry with a tenant objection
//! window, tenant authorizations (purposes × visitor field names, optional consent, expiry),
//! scoped subprocessor pulls recorded in a ledger before any data leaves, the per-visitor
//! record of who received what (for the data-subject export), and erasure / consent-withdrawal
//! notices subprocessors must acknowledge.
//!
//! * [`registry`] — `platform_admin`: add (notifies every tenant), list, retire, credentials.
//! * [`authorizations`] — `tenant_admin`: create (blocked by an objection), revoke, list.
//! * [`pull`] — the subprocessor pull, page by page or one record.
//! * [`ledger`] — the transfer ledger and per-visitor recipients.
//! * [`erasure`] — erasure notices and [`TransferHooks`], attached to the visitor service.
//!
//! Nothing here stores or logs a visitor's values: ids, field names, purposes and times only.

pub mod authorizations;
pub mod erasure;
pub mod fields;
pub mod ledger;
pub mod pull;
pub mod registry;
pub mod schema;
mod util;

pub use authorizations::{Authorization, AuthorizationRow, AuthorizationState, NewAuthorization};
pub use erasure::{ErasureNotice, ErasureNoticeRow, NoticeState, TransferHooks};
pub use ledger::{Recipient, RecipientTransfer, Transfer, TransferFilter, TransferRow};
pub use pull::{pull_one, pull_page, PullPage, PulledRecord};
pub use registry::{NewSubprocessor, Subprocessor, SubprocessorRow};

use diesel::prelude::*;
use steward_core::Result;
use steward_store::DbConnection;

/// Deletes every transfers row of a tenant (offboarding, after its visitors are gone):
/// erasure notices, recipients, the ledger and authorizations. Registry rows are platform
/// data and stay.
pub fn delete_tenant(conn: &mut DbConnection, tenant_id: &str) -> Result<usize> {
    use schema::{erasure_notices, subprocessor_authorizations, transfer_recipients, transfers};
    let mut n =
        diesel::delete(erasure_notices::table.filter(erasure_notices::tenant_id.eq(tenant_id)))
            .execute(conn)?;
    n += diesel::delete(
        transfer_recipients::table.filter(transfer_recipients::tenant_id.eq(tenant_id)),
    )
    .execute(conn)?;
    n += diesel::delete(transfers::table.filter(transfers::tenant_id.eq(tenant_id)))
        .execute(conn)?;
    n += diesel::delete(
        subprocessor_authorizations::table
            .filter(subprocessor_authorizations::tenant_id.eq(tenant_id)),
    )
    .execute(conn)?;
    Ok(n)
}
