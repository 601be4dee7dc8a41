//! The end of a tenant's contract ("return or delete"): the tenant is frozen (no new data),
//! takes a complete export — JSON Lines, streamed page by page, every record's disclosure
//! audited — and then, on an explicit confirmation, its keys are destroyed and its rows
//! deleted, leaving a deletion certificate in the platform's audit chain.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use steward_core::{Error, Id, Result};
use steward_keys::TenantKeyring;
use steward_store::tenants::{self, TenantStatus};
use steward_store::DbConnection;

use crate::consents::{self, Consent};
use crate::disclose::Disclosure;
use crate::model::Visitor;
use crate::records;
use crate::schema::{idempotency_keys, offboardings};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = offboardings)]
pub struct OffboardingRow {
    pub tenant_id: String,
    pub id: String,
    pub started_by: String,
    pub started_at: NaiveDateTime,
    pub exported_at: Option<NaiveDateTime>,
    pub exported_records: Option<i64>,
    pub confirmed_by: Option<String>,
    pub confirmed_at: Option<NaiveDateTime>,
    pub certificate_hash: Option<String>,
}

pub fn get(conn: &mut DbConnection, tenant_id: &str) -> Result<Option<OffboardingRow>> {
    Ok(offboardings::table
        .find(tenant_id)
        .select(OffboardingRow::as_select())
        .first(conn)
        .optional()?)
}

/// Freezes the tenant. Starting twice returns the first record.
pub fn start(
    conn: &mut DbConnection,
    tenant_id: &str,
    by: &str,
    now: NaiveDateTime,
) -> Result<OffboardingRow> {
    let tenant = tenants::get(conn, tenant_id)?;
    if let Some(existing) = get(conn, tenant_id)? {
        return Ok(existing);
    }
    if tenant.status()? == TenantStatus::Deleted {
        return Err(Error::conflict(
            "tenant_deleted",
            "this tenant was already deleted",
        ));
    }
    let row = OffboardingRow {
        tenant_id: tenant_id.to_string(),
        id: Id::Offboarding.generate(),
        started_by: by.to_string(),
        started_at: now,
        exported_at: None,
        exported_records: None,
        confirmed_by: None,
        confirmed_at: None,
        certificate_hash: None,
    };
    diesel::insert_into(offboardings::table)
        .values(&row)
        .execute(conn)?;
    tenants::set_status(conn, tenant_id, TenantStatus::Offboarding, now)?;
    Ok(row)
}

/// One line of the export: a visitor with its consent history.
#[derive(Debug, Serialize)]
pub struct ExportLine {
    #[serde(flatten)]
    pub visitor: Visitor,
    pub consents: Vec<Consent>,
}

/// A page of the export, opened but not yet released: the caller discloses it (audited).
pub fn export_page(
    conn: &mut DbConnection,
    keyring: &TenantKeyring,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<(Vec<Disclosure<ExportLine>>, Option<String>)> {
    let rows = records::page(conn, tenant_id, after, limit)?;
    let next = if rows.len() as i64 == limit {
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let pii = records::open_fields(&row, keyring, None)?;
        let consents = consents::history(conn, tenant_id, &row.id)?
            .into_iter()
            .map(Consent::from)
            .collect();
        let mut fields = row.present_fields();
        fields.push("consents");
        out.push(Disclosure {
            visitor_id: row.id.clone(),
            fields,
            value: ExportLine {
                visitor: Visitor {
                    meta: row.meta(),
                    pii,
                },
                consents,
            },
        });
    }
    Ok((out, next))
}

pub fn mark_exported(
    conn: &mut DbConnection,
    tenant_id: &str,
    records: i64,
    now: NaiveDateTime,
) -> Result<()> {
    diesel::update(offboardings::table.find(tenant_id))
        .set((
            offboardings::exported_at.eq(Some(now)),
            offboardings::exported_records.eq(Some(records)),
        ))
        .execute(conn)?;
    Ok(())
}

/// What a confirmed offboarding deleted; its hash goes into the platform audit chain.
#[derive(Debug, Clone, Serialize)]
pub struct DeletionCertificate {
    pub tenant_id: String,
    pub offboarding_id: String,
    pub visitors_deleted: i64,
    pub consents_deleted: i64,
    pub keys_destroyed: i64,
    pub exported_records: Option<i64>,
    pub deleted_at: DateTime<Utc>,
    pub confirmed_by: String,
    /// SHA-256 over the certificate's other fields (canonical JSON, in this order).
    pub hash: String,
}

/// Deletes the tenant's visitor data after its keys are destroyed. Returns the counts; the
/// caller writes the certificate and the audit events in the same unit.
pub fn delete_visitor_data(conn: &mut DbConnection, tenant_id: &str) -> Result<(i64, i64)> {
    let visitors = records::delete_tenant(conn, tenant_id)? as i64;
    let consents = consents::delete_tenant(conn, tenant_id)? as i64;
    diesel::delete(idempotency_keys::table.filter(idempotency_keys::tenant_id.eq(tenant_id)))
        .execute(conn)?;
    Ok((visitors, consents))
}

pub fn mark_confirmed(
    conn: &mut DbConnection,
    tenant_id: &str,
    by: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<()> {
    diesel::update(offboardings::table.find(tenant_id))
        .set((
            offboardings::confirmed_by.eq(Some(by)),
            offboardings::confirmed_at.eq(Some(now)),
            offboardings::certificate_hash.eq(Some(hash)),
        ))
        .execute(conn)?;
    Ok(())
}
