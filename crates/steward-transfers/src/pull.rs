//! The subprocessor pull: only the authorized fields, only of visitors not withdrawn from the
//! authorization's required consent, only while the authorization is active. Each pull is one
//! ledger entry (`transfers` + `transfer_recipients`) committed in one unit with one audited
//! disclosure (`transfer.pull`) per visitor through `steward_visitors::disclose_after` — before
//! any value is returned. A page holds at most 1,000 visitors, so a request's memory is bounded
//! however large the tenant; large pulls are walked page by page with the cursor.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use steward_core::{Clock, Error, Id, Principal, PrincipalKind, Result};
use steward_store::keys::KeyService;
use steward_store::pagination::{Page, PageRequest};
use steward_store::{tenants, DbConnection, Store};
use steward_visitors::consents::{validate_purpose, ConsentStatus};
use steward_visitors::records::{self, SealedFields, SealedRow};
use steward_visitors::schema::{consents, visitors};
use steward_visitors::{disclose_after, Access, Disclosure};

use crate::authorizations::{self, AuthorizationRow};
use crate::fields;
use crate::ledger::{self, TransferRow};
use crate::util::{join, micros, utc};

/// Most visitors one page may hold.
pub const MAX_PULL_LIMIT: i64 = 1000;
/// The audit action of every record a subprocessor pulls.
pub const ACTION: &str = "transfer.pull";

/// One page of a pull.
#[derive(Debug, serde::Serialize)]
pub struct PullPage {
    /// Per visitor, as JSON already: `id`, `updated_at`, and only the authorized fields that
    /// hold a value. Encoded where the record is opened, so the response copies text instead of
    /// building and walking a JSON tree per record.
    pub items: Vec<Box<RawValue>>,
    /// The cursor of the next page; `None` on the last. A page may hold fewer than `limit`
    /// items (visitors without the required consent are skipped) and still have a next page.
    pub next_cursor: Option<String>,
    /// The ledger entry of this pull.
    pub transfer_id: String,
}

/// A single-record pull.
#[derive(Debug, serde::Serialize)]
pub struct PulledRecord {
    pub item: Box<RawValue>,
    pub transfer_id: String,
}

fn not_authorized() -> Error {
    Error::denied(
        "not_authorized",
        "this subprocessor holds no active authorization of this tenant for this purpose",
    )
}

fn is_token(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Checks who is asking and what; returns the subprocessor id and the request id to record
/// (the given one, or a fresh `req_…` so the ledger row and the audit events always share one).
fn check_request(
    principal: &Principal,
    tenant_id: &str,
    purpose: &str,
    request_id: Option<String>,
) -> Result<(String, String)> {
    if principal.kind != PrincipalKind::Subprocessor || !Id::Subprocessor.matches(&principal.id) {
        return Err(Error::Forbidden {
            permission: steward_core::Permission::SubprocessorPull,
        });
    }
    if !Id::Tenant.matches(tenant_id) {
        return Err(Error::NotFound);
    }
    validate_purpose(purpose)?;
    let request_id = match request_id {
        Some(r) if is_token(&r) => r,
        Some(_) => {
            return Err(Error::invalid(
                "invalid_request_id",
                "the request id must be a token",
            ))
        }
        None => Id::Request.generate(),
    };
    Ok((principal.id.clone(), request_id))
}

/// The tenant must exist (else `NotFound`); the subprocessor must hold an active
/// authorization for the purpose (else 403 `not_authorized`).
fn authorize(
    conn: &mut DbConnection,
    tenant_id: &str,
    sub_id: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> Result<AuthorizationRow> {
    tenants::get(conn, tenant_id)?;
    authorizations::active_for(conn, tenant_id, sub_id, purpose, now)?.ok_or_else(not_authorized)
}

/// Active visitors of the tenant after `after` by id, updated at or after `updated_since`:
/// only their ids, last changes and sealed fields.
pub fn visitors_page(
    conn: &mut DbConnection,
    tenant_id: &str,
    after: Option<&str>,
    updated_since: Option<NaiveDateTime>,
    limit: i64,
) -> Result<Vec<SealedRow>> {
    let q = records::active_sealed_page(tenant_id, after, limit);
    let q = match updated_since {
        Some(since) => q.filter(visitors::updated_at.ge(since)),
        None => q,
    };
    Ok(q.load(conn)?)
}

/// Of `visitor_ids`, those whose current consent for `purpose` is withdrawn (the newest row
/// per visitor decides, as `consents::is_withdrawn` does), in one query per chunk.
pub fn withdrawn_among(
    conn: &mut DbConnection,
    tenant_id: &str,
    purpose: &str,
    visitor_ids: &[&str],
) -> Result<HashSet<String>> {
    let mut latest: HashMap<String, (i64, String)> = HashMap::new();
    for chunk in visitor_ids.chunks(500) {
        let (Some(lo), Some(hi)) = (chunk.iter().min(), chunk.iter().max()) else {
            continue;
        };
        // The id range first (see `ledger::upsert_recipients`).
        let rows: Vec<(String, i64, String)> = consents::table
            .filter(consents::tenant_id.eq(tenant_id))
            .filter(consents::visitor_id.ge(*lo))
            .filter(consents::visitor_id.le(*hi))
            .filter(consents::purpose.eq(purpose))
            .filter(consents::visitor_id.eq_any(chunk))
            .select((consents::visitor_id, consents::seq, consents::status))
            .load(conn)?;
        for (vid, seq, status) in rows {
            match latest.get(&vid) {
                Some((s, _)) if *s >= seq => {}
                _ => {
                    latest.insert(vid, (seq, status));
                }
            }
        }
    }
    Ok(latest
        .into_iter()
        .filter(|(_, (_, status))| status == ConsentStatus::Withdrawn.as_str())
        .map(|(vid, _)| vid)
        .collect())
}

/// One visitor, opened, projected and encoded.
struct Prepared {
    visitor_id: String,
    value: Box<RawValue>,
    sent: Vec<&'static str>,
}

/// A pulled record as sent: its id and last change, then the authorized fields.
struct Item<'a> {
    id: &'a str,
    updated_at: chrono::DateTime<chrono::Utc>,
    fields: &'a fields::Projection<'a>,
}

impl Serialize for Item<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("id", self.id)?;
        map.serialize_entry("updated_at", &self.updated_at)?;
        self.fields.serialize_entries(&mut map)?;
        map.end()
    }
}

/// A pulled record as the JSON it is sent as: `id`, `updated_at`, then the projected fields.
pub fn encode_record(
    id: &str,
    updated_at: chrono::DateTime<chrono::Utc>,
    fields: &fields::Projection<'_>,
) -> Result<Box<RawValue>> {
    let item = Item {
        id,
        updated_at,
        fields,
    };
    serde_json::value::to_raw_value(&item).map_err(Error::internal)
}

/// Opens, projects and encodes one visitor of `tenant_id`.
fn prepare(
    tenant_id: &str,
    visitor_id: &str,
    updated_at: NaiveDateTime,
    sealed: SealedFields<'_>,
    keyring: &steward_keys::TenantKeyring,
    fields: &[String],
) -> Result<Prepared> {
    let open = fields::to_open(fields);
    let pii = records::open_sealed(tenant_id, visitor_id, sealed, keyring, Some(&open))?;
    let projection = fields::project(&pii, fields);
    let value = encode_record(visitor_id, utc(updated_at), &projection)?;
    Ok(Prepared {
        visitor_id: visitor_id.to_string(),
        value,
        sent: projection.sent,
    })
}

/// Records the pull in the ledger (re-checking, in the same unit, that the authorization is
/// still the active one — a revocation committed meanwhile wins) and discloses the records
/// through the audited door, in one unit of work. Returns the values and the transfer id.
#[allow(clippy::too_many_arguments)]
async fn record_and_disclose(
    store: &Store,
    clock: &dyn Clock,
    principal: &Principal,
    tenant_id: &str,
    purpose: &str,
    auth: &AuthorizationRow,
    request_id: String,
    prepared: Vec<Prepared>,
) -> Result<(Vec<Box<RawValue>>, String)> {
    let now = micros(clock.now().naive_utc());
    let transfer = TransferRow {
        tenant_id: tenant_id.to_string(),
        id: Id::Transfer.generate(),
        subprocessor_id: auth.subprocessor_id.clone(),
        authorization_id: auth.id.clone(),
        purpose: purpose.to_string(),
        fields: auth.fields.clone(),
        visitor_ids: join(
            &prepared
                .iter()
                .map(|p| p.visitor_id.as_str())
                .collect::<Vec<_>>(),
        ),
        record_count: i64::try_from(prepared.len()).map_err(Error::internal)?,
        request_id: Some(request_id.clone()),
        occurred_at: now,
    };
    let transfer_id = transfer.id.clone();
    let sent: Vec<(String, Vec<&'static str>)> = prepared
        .iter()
        .map(|p| (p.visitor_id.clone(), p.sent.clone()))
        .collect();
    let (tid, sub, p, aid) = (
        tenant_id.to_string(),
        auth.subprocessor_id.clone(),
        purpose.to_string(),
        auth.id.clone(),
    );
    let mut access = Access::of(principal, Some(request_id)).with_purpose(purpose);
    access.grant_id = Some(auth.id.clone());
    let records = prepared
        .into_iter()
        .map(|p| Disclosure {
            visitor_id: p.visitor_id,
            fields: p.sent,
            value: p.value,
        })
        .collect();
    // The ledger entry and the per-visitor audit events commit in one unit, before any value
    // is returned.
    let values = disclose_after(
        store,
        clock,
        tenant_id,
        &access,
        ACTION,
        records,
        move |conn| {
            match authorizations::active_for(conn, &tid, &sub, &p, now)? {
                Some(a) if a.id == aid => {}
                _ => return Err(not_authorized()),
            }
            ledger::record(conn, &transfer, &sent)
        },
    )
    .await?;
    tracing::info!(
        tenant_id,
        subprocessor_id = %auth.subprocessor_id,
        transfer_id = %transfer_id,
        records = values.len(),
        "onward transfer recorded"
    );
    Ok((values, transfer_id))
}

/// One page of a subprocessor's pull of a tenant's visitors for `purpose`.
///
/// `NotFound` for a malformed or unknown tenant; 403 `not_authorized` without an active
/// authorization (the same for a tenant that never authorized this subprocessor); 400 for a
/// bad purpose, cursor or limit (1 to 1,000).
#[allow(clippy::too_many_arguments)]
pub async fn pull_page(
    store: &Store,
    keys: &KeyService,
    clock: &dyn Clock,
    principal: &Principal,
    tenant_id: &str,
    purpose: &str,
    updated_since: Option<NaiveDateTime>,
    after: Option<String>,
    limit: i64,
    request_id: Option<String>,
) -> Result<PullPage> {
    let (sub_id, request_id) = check_request(principal, tenant_id, purpose, request_id)?;
    if !(1..=MAX_PULL_LIMIT).contains(&limit) {
        return Err(Error::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PULL_LIMIT}"),
        ));
    }
    let after = match after {
        None => None,
        Some(c) if c.is_empty() => None,
        Some(c) if Id::Visitor.matches(&c) => Some(c),
        Some(_) => return Err(Error::invalid("invalid_cursor", "cursor is not valid")),
    };
    let page = PageRequest { limit, after };
    let now = clock.now().naive_utc();
    let (keys, tid, p) = (keys.clone(), tenant_id.to_string(), purpose.to_string());
    let (auth, prepared, next_cursor) = store
        .read(move |conn| {
            let auth = authorize(conn, &tid, &sub_id, &p, now)?;
            let rows = visitors_page(
                conn,
                &tid,
                page.after.as_deref(),
                updated_since,
                page.fetch_limit(),
            )?;
            let Page {
                items: rows,
                next_cursor,
            } = Page::from_rows(rows, &page, |r| r.id.clone());
            let withdrawn = match &auth.require_consent {
                Some(c) => {
                    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
                    withdrawn_among(conn, &tid, c, &ids)?
                }
                None => HashSet::new(),
            };
            let fields = auth.fields();
            let keyring = keys.keyring(conn, &tid)?;
            let prepared = rows
                .iter()
                .filter(|r| !withdrawn.contains(&r.id))
                .map(|r| prepare(&tid, &r.id, r.updated_at.0, r.sealed(), &keyring, &fields))
                .collect::<Result<Vec<_>>>()?;
            Ok((auth, prepared, next_cursor))
        })
        .await?;
    let (items, transfer_id) = record_and_disclose(
        store, clock, principal, tenant_id, purpose, &auth, request_id, prepared,
    )
    .await?;
    Ok(PullPage {
        items,
        next_cursor,
        transfer_id,
    })
}

/// A single-record pull: the same rules; `NotFound` for a visitor that is missing, erased,
/// another tenant's, or withdrawn from the required consent. The authorization is checked
/// first, so an unauthorized subprocessor learns nothing about visitor ids.
#[allow(clippy::too_many_arguments)]
pub async fn pull_one(
    store: &Store,
    keys: &KeyService,
    clock: &dyn Clock,
    principal: &Principal,
    tenant_id: &str,
    purpose: &str,
    visitor_id: &str,
    request_id: Option<String>,
) -> Result<PulledRecord> {
    let (sub_id, request_id) = check_request(principal, tenant_id, purpose, request_id)?;
    let now = clock.now().naive_utc();
    let (keys, tid, p, vid) = (
        keys.clone(),
        tenant_id.to_string(),
        purpose.to_string(),
        visitor_id.to_string(),
    );
    let (auth, prepared) = store
        .read(move |conn| {
            let auth = authorize(conn, &tid, &sub_id, &p, now)?;
            if !Id::Visitor.matches(&vid) {
                return Err(Error::NotFound);
            }
            let row = records::get_active(conn, &tid, &vid)?;
            if let Some(c) = &auth.require_consent {
                if steward_visitors::consents::is_withdrawn(conn, &tid, &vid, c)? {
                    return Err(Error::NotFound);
                }
            }
            let keyring = keys.keyring(conn, &tid)?;
            let prepared = prepare(
                &tid,
                &row.id,
                row.updated_at.0,
                row.sealed(),
                &keyring,
                &auth.fields(),
            )?;
            Ok((auth, prepared))
        })
        .await?;
    let (items, transfer_id) = record_and_disclose(
        store,
        clock,
        principal,
        tenant_id,
        purpose,
        &auth,
        request_id,
        vec![prepared],
    )
    .await?;
    let item = items.into_iter().next().ok_or(Error::NotFound)?;
    Ok(PulledRecord { item, transfer_id })
}
