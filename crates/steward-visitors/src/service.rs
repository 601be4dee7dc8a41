//! The visitor operations the API exposes. Writes run as one committer unit each (data change
//! and its audit event together); reads decrypt on a pooled connection and release through
//! `disclose`.

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use steward_audit::{Appended, AuditEvent};
use steward_core::{Clock, Error, Id, Result};
use steward_keys::{IndexKind, TenantKeyring};
use steward_store::keys::KeyService;
use steward_store::pagination::{Page, PageRequest};
use steward_store::tenants::{self, TenantStatus};
use steward_store::{DbConnection, Store};

use crate::consents::{self, Consent, ConsentStatus};
use crate::disclose::{disclose, Access, Disclosure};
use crate::model::{Pii, Visitor, VisitorInput, VisitorMeta, VisitorPatch, PII_FIELDS};
use crate::records::{self, VisitorRow, STATUS_ERASED};
use crate::schema::idempotency_keys;
use crate::validate;

/// Work other domains attach to a visitor's erasure or consent change, run in the same unit
/// (erasure notices to subprocessors that received the data).
pub trait VisitorHooks: Send + Sync {
    fn on_erased(
        &self,
        conn: &mut DbConnection,
        tenant_id: &str,
        visitor_id: &str,
        now: NaiveDateTime,
    ) -> Result<()>;
    fn on_consent_withdrawn(
        &self,
        conn: &mut DbConnection,
        tenant_id: &str,
        visitor_id: &str,
        purpose: &str,
        now: NaiveDateTime,
    ) -> Result<()>;
    /// Who received the visitor's data (for the data-subject export).
    fn recipients(
        &self,
        conn: &mut DbConnection,
        tenant_id: &str,
        visitor_id: &str,
    ) -> Result<serde_json::Value>;
}

#[derive(Clone)]
pub struct VisitorService {
    pub store: Store,
    pub keys: KeyService,
    pub clock: Arc<dyn Clock>,
    hooks: Vec<Arc<dyn VisitorHooks>>,
}

impl std::fmt::Debug for VisitorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VisitorService")
    }
}

#[derive(Debug, Serialize)]
pub struct ErasureReceipt {
    pub visitor_id: String,
    pub erased_at: DateTime<Utc>,
    /// The audit event that records the erasure, and its chain hash: proof it happened.
    pub audit_event_id: String,
    pub audit_event_seq: i64,
    pub audit_event_hash: String,
}

#[derive(Debug, Serialize)]
pub struct Rectified {
    #[serde(flatten)]
    pub meta: VisitorMeta,
    /// The fields whose values changed (names only).
    pub updated_fields: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct AccessRecord {
    pub at: DateTime<Utc>,
    pub action: String,
    pub actor_kind: String,
    pub actor_id: String,
    pub actor_role: String,
    pub fields: Vec<String>,
    pub purpose: Option<String>,
    pub justification: Option<String>,
    pub grant_id: Option<String>,
}

impl From<AuditEvent> for AccessRecord {
    fn from(e: AuditEvent) -> Self {
        AccessRecord {
            at: DateTime::from_naive_utc_and_offset(e.occurred_at, Utc),
            action: e.action,
            actor_kind: e.actor.kind,
            actor_id: e.actor.id,
            actor_role: e.actor.role,
            fields: e.fields,
            purpose: e.purpose,
            justification: e.justification,
            grant_id: e.grant_id,
        }
    }
}

/// The data-subject access document (GDPR Art. 15).
#[derive(Debug, Serialize)]
pub struct SubjectExport {
    pub visitor: Visitor,
    pub consents: Vec<Consent>,
    pub recipients: serde_json::Value,
    pub access_history: Vec<AccessRecord>,
    pub exported_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct ConsentState {
    pub current: Vec<Consent>,
    pub history: Vec<Consent>,
}

pub enum Created {
    New(Box<Visitor>),
    /// The same Idempotency-Key and body were seen before: the visitor it made.
    Replayed(String),
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// Tenant exists and takes new data.
pub fn ensure_accepts_data(conn: &mut DbConnection, tenant_id: &str) -> Result<()> {
    let t = tenants::get(conn, tenant_id)?;
    if t.keys_destroyed_at.is_some() {
        return Err(steward_store::keys::gone());
    }
    match t.status()? {
        TenantStatus::Active => Ok(()),
        _ => Err(Error::conflict(
            "tenant_offboarding",
            "this tenant is being offboarded and accepts no new data",
        )),
    }
}

fn fingerprint(
    k: &TenantKeyring,
    principal: &str,
    pii: &Pii,
    external_ref: &Option<String>,
) -> Result<Vec<u8>> {
    let body = serde_json::to_string(&(principal, pii, external_ref)).map_err(Error::internal)?;
    let body = steward_keys::Zeroizing::new(body);
    Ok(k.blind_index(
        IndexKind::ExternalRef,
        &format!("idempotency:{}", body.as_str()),
    )
    .to_vec())
}

impl VisitorService {
    pub fn new(store: Store, keys: KeyService, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            keys,
            clock,
            hooks: Vec::new(),
        }
    }

    pub fn with_hooks(mut self, hooks: Arc<dyn VisitorHooks>) -> Self {
        self.hooks.push(hooks);
        self
    }

    fn now(&self) -> NaiveDateTime {
        self.clock.now().naive_utc()
    }

    fn new_row(tenant_id: &str, external_ref: Option<String>, now: NaiveDateTime) -> VisitorRow {
        VisitorRow {
            tenant_id: tenant_id.to_string(),
            id: Id::Visitor.generate(),
            external_ref,
            status: records::STATUS_ACTIVE.to_string(),
            legal_hold: false,
            legal_hold_reason: None,
            key_version: 0,
            name_sealed: None,
            email_sealed: None,
            phone_sealed: None,
            address_sealed: None,
            attributes_sealed: None,
            email_index: None,
            phone_index: None,
            created_at: now.into(),
            updated_at: now.into(),
            last_activity_at: now.into(),
            erased_at: None,
        }
    }

    /// Creates a visitor. With an idempotency key, a repeat of the same request returns the
    /// first visitor instead of a second one; a different body under the same key is a 409.
    pub async fn create(
        &self,
        tenant_id: &str,
        access: &Access,
        input: &VisitorInput,
        idempotency_key: Option<String>,
    ) -> Result<Created> {
        let (pii, external_ref) = validate::input(input)?;
        if let Some(k) = &idempotency_key {
            if k.is_empty() || k.len() > 128 || !k.chars().all(|c| c.is_ascii_graphic()) {
                return Err(Error::invalid(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 128 visible ASCII characters",
                ));
            }
        }
        let (keys, tid, now, access) = (
            self.keys.clone(),
            tenant_id.to_string(),
            self.now(),
            access.clone(),
        );
        self.store
            .write(move |conn| {
                ensure_accepts_data(conn, &tid)?;
                let keyring = keys.keyring(conn, &tid)?;
                let principal = access.actor.id.clone();
                let fp = match &idempotency_key {
                    Some(_) => Some(fingerprint(&keyring, &principal, &pii, &external_ref)?),
                    None => None,
                };
                if let (Some(key), Some(fp)) = (&idempotency_key, &fp) {
                    let seen: Option<(Vec<u8>, String)> = idempotency_keys::table
                        .find((&tid, &principal, key))
                        .select((idempotency_keys::fingerprint, idempotency_keys::resource_id))
                        .first(conn)
                        .optional()?;
                    if let Some((seen_fp, id)) = seen {
                        if &seen_fp == fp {
                            return Ok(Created::Replayed(id));
                        }
                        return Err(Error::conflict(
                            "idempotency_key_reused",
                            "this Idempotency-Key was used with a different request",
                        ));
                    }
                }
                let mut row = Self::new_row(&tid, external_ref, now);
                records::seal_into(&mut row, &keyring, &pii)?;
                records::insert(conn, &row)?;
                if let (Some(key), Some(fp)) = (idempotency_key, fp) {
                    diesel::insert_into(idempotency_keys::table)
                        .values((
                            idempotency_keys::tenant_id.eq(&tid),
                            idempotency_keys::principal_id.eq(&principal),
                            idempotency_keys::idem_key.eq(key),
                            idempotency_keys::fingerprint.eq(fp),
                            idempotency_keys::resource_id.eq(&row.id),
                            idempotency_keys::created_at.eq(now),
                        ))
                        .execute(conn)?;
                }
                let fields = pii.present_fields();
                steward_audit::append(
                    conn,
                    &tid,
                    access.event("visitor.create", &row.id, &fields),
                    now,
                )?;
                Ok(Created::New(Box::new(Visitor {
                    meta: row.meta(),
                    pii,
                })))
            })
            .await
    }

    /// Bulk import: all items or none.
    pub async fn create_batch(
        &self,
        tenant_id: &str,
        access: &Access,
        items: &[VisitorInput],
    ) -> Result<Vec<VisitorMeta>> {
        let valid = validate::batch(items)?;
        let (keys, tid, now) = (self.keys.clone(), tenant_id.to_string(), self.now());
        // Sealing a thousand visitors is most of an import's CPU: it runs here, on a blocking
        // thread of this request, so imports seal in parallel and the single writer only
        // inserts.
        // The audit events are prepared here too (see `steward_audit::prepare`).
        let for_events = access.clone();
        let sealed = self
            .store
            .read(move |conn| {
                let keyring = keys.keyring(conn, &tid)?;
                let rows = valid
                    .into_iter()
                    .map(|(pii, external_ref)| {
                        let mut row = Self::new_row(&tid, external_ref, now);
                        records::seal_into(&mut row, &keyring, &pii)?;
                        Ok((row, pii))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let events = rows
                    .iter()
                    .map(|(row, pii)| {
                        for_events.event("visitor.create", &row.id, &pii.present_fields())
                    })
                    .collect();
                let events = steward_audit::prepare(&tid, events, now)?;
                Ok((keyring.current_version(), rows, events))
            })
            .await?;
        let (keys, tid) = (self.keys.clone(), tenant_id.to_string());
        self.store
            .write(move |conn| {
                let (sealed_version, mut rows, events) = sealed;
                ensure_accepts_data(conn, &tid)?;
                let keyring = keys.keyring(conn, &tid)?;
                if keyring.current_version() != sealed_version {
                    // The keys rotated while we sealed: seal again under the new version, so
                    // no row lands behind the re-encryption job's cursor with an old key.
                    for (row, pii) in rows.iter_mut() {
                        records::seal_into(row, &keyring, pii)?;
                    }
                }
                let refs: Vec<&str> = rows
                    .iter()
                    .filter_map(|(row, _)| row.external_ref.as_deref())
                    .collect();
                let taken = records::external_refs_taken(conn, &tid, &refs)?;
                if !taken.is_empty() {
                    let items: Vec<steward_core::ItemError> = rows
                        .iter()
                        .enumerate()
                        .filter(|(_, (row, _))| {
                            row.external_ref.as_ref().is_some_and(|r| taken.contains(r))
                        })
                        .map(|(index, _)| steward_core::ItemError {
                            index,
                            code: "external_ref_taken",
                            detail: "another visitor of this tenant has this external_ref".into(),
                        })
                        .collect();
                    return Err(Error::InvalidItems {
                        code: "invalid_batch",
                        detail: format!(
                            "{} items conflict with existing visitors; nothing was imported",
                            items.len()
                        ),
                        items,
                    });
                }
                let mut metas = Vec::with_capacity(rows.len());
                let mut visitor_rows = Vec::with_capacity(rows.len());
                for (row, _) in rows {
                    metas.push(row.meta());
                    visitor_rows.push(row);
                }
                records::insert_many(conn, &visitor_rows)?;
                steward_audit::append_prepared(conn, events)?;
                Ok(metas)
            })
            .await
    }

    /// Reads one visitor: decrypts, records, releases.
    pub async fn get(&self, tenant_id: &str, access: &Access, visitor_id: &str) -> Result<Visitor> {
        let (keys, tid, vid) = (
            self.keys.clone(),
            tenant_id.to_string(),
            visitor_id.to_string(),
        );
        let (row, pii) = self
            .store
            .read_point(move |conn| {
                let row = records::get_active(conn, &tid, &vid)?;
                let keyring = keys.keyring(conn, &tid)?;
                let pii = records::open_fields(&row, &keyring, None)?;
                Ok((row, pii))
            })
            .await?;
        let fields = row.present_fields();
        let out = disclose(
            &self.store,
            self.clock.as_ref(),
            tenant_id,
            access,
            "visitor.read",
            vec![Disclosure {
                visitor_id: row.id.clone(),
                fields,
                value: Visitor {
                    meta: row.meta(),
                    pii,
                },
            }],
        )
        .await?;
        out.into_iter().next().ok_or(Error::NotFound)
    }

    /// Finds visitors by e-mail or phone through the blind index.
    pub async fn lookup(
        &self,
        tenant_id: &str,
        access: &Access,
        email: Option<&str>,
        phone: Option<&str>,
    ) -> Result<Vec<Visitor>> {
        if email.is_none() && phone.is_none() {
            return Err(Error::invalid("invalid_query", "give email or phone"));
        }
        let (keys, tid) = (self.keys.clone(), tenant_id.to_string());
        let (email, phone) = (email.map(str::to_string), phone.map(str::to_string));
        let found = self
            .store
            .read_point(move |conn| {
                let keyring = keys.keyring(conn, &tid)?;
                let ei = email
                    .as_deref()
                    .map(|e| records::email_index(&keyring, e))
                    .transpose()?;
                let pi = phone
                    .as_deref()
                    .map(|p| records::phone_index(&keyring, p))
                    .transpose()?;
                let rows = records::find_by_index(conn, &tid, ei.as_deref(), pi.as_deref(), 100)?;
                rows.into_iter()
                    .map(|row| {
                        let pii = records::open_fields(&row, &keyring, None)?;
                        Ok(Disclosure {
                            visitor_id: row.id.clone(),
                            fields: row.present_fields(),
                            value: Visitor {
                                meta: row.meta(),
                                pii,
                            },
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        disclose(
            &self.store,
            self.clock.as_ref(),
            tenant_id,
            access,
            "visitor.lookup",
            found,
        )
        .await
    }

    /// Lists visitors: metadata only, or with PII (each record disclosed and recorded).
    pub async fn list(
        &self,
        tenant_id: &str,
        access: &Access,
        page: PageRequest,
        include_pii: bool,
    ) -> Result<Page<serde_json::Value>> {
        let (keys, tid) = (self.keys.clone(), tenant_id.to_string());
        let (rows, pii) = self
            .store
            .read(move |conn| {
                let rows = records::page(conn, &tid, page.after.as_deref(), page.fetch_limit())?;
                let rows = Page::from_rows(rows, &page, |r| r.id.clone());
                let pii = if include_pii {
                    let keyring = keys.keyring(conn, &tid)?;
                    rows.items
                        .iter()
                        .map(|r| records::open_fields(r, &keyring, None))
                        .collect::<Result<Vec<_>>>()?
                } else {
                    Vec::new()
                };
                Ok((rows, pii))
            })
            .await?;
        let next_cursor = rows.next_cursor.clone();
        let items = if include_pii {
            let records: Vec<Disclosure<Visitor>> = rows
                .items
                .into_iter()
                .zip(pii)
                .map(|(row, pii)| Disclosure {
                    visitor_id: row.id.clone(),
                    fields: row.present_fields(),
                    value: Visitor {
                        meta: row.meta(),
                        pii,
                    },
                })
                .collect();
            disclose(
                &self.store,
                self.clock.as_ref(),
                tenant_id,
                access,
                "visitor.read",
                records,
            )
            .await?
            .into_iter()
            .map(|v| serde_json::to_value(v).map_err(Error::internal))
            .collect::<Result<Vec<_>>>()?
        } else {
            rows.items
                .into_iter()
                .map(|r| serde_json::to_value(r.meta()).map_err(Error::internal))
                .collect::<Result<Vec<_>>>()?
        };
        Ok(Page { items, next_cursor })
    }

    /// Rectification. The audit event names the fields whose values changed, never values.
    pub async fn patch(
        &self,
        tenant_id: &str,
        access: &Access,
        visitor_id: &str,
        patch: &VisitorPatch,
    ) -> Result<Rectified> {
        // Validate every given value before touching anything.
        let name = patch
            .name
            .as_ref()
            .map(|o| o.as_deref().map(validate::name).transpose())
            .transpose()?;
        let email = patch
            .email
            .as_ref()
            .map(|o| o.as_deref().map(validate::email).transpose())
            .transpose()?;
        let phone = patch
            .phone
            .as_ref()
            .map(|o| o.as_deref().map(validate::phone).transpose())
            .transpose()?;
        let address = patch
            .address
            .as_ref()
            .map(|o| o.as_ref().map(validate::address).transpose())
            .transpose()?;
        let attributes = patch
            .attributes
            .as_ref()
            .map(|o| o.as_ref().map(validate::attributes).transpose())
            .transpose()?;
        let external_ref = patch
            .external_ref
            .as_ref()
            .map(|o| o.as_deref().map(validate::external_ref).transpose())
            .transpose()?;
        let (keys, tid, vid, now, access) = (
            self.keys.clone(),
            tenant_id.to_string(),
            visitor_id.to_string(),
            self.now(),
            access.clone(),
        );
        self.store
            .write(move |conn| {
                ensure_accepts_data(conn, &tid)?;
                let mut row = records::get_active(conn, &tid, &vid)?;
                let keyring = keys.keyring(conn, &tid)?;
                let old = records::open_fields(&row, &keyring, None)?;
                let mut new = old.clone();
                if let Some(v) = name {
                    new.name = v;
                }
                if let Some(v) = email {
                    new.email = v;
                }
                if let Some(v) = phone {
                    new.phone = v;
                }
                if let Some(v) = address {
                    new.address = v;
                }
                if let Some(v) = attributes {
                    new.attributes = v;
                }
                let mut changed: Vec<&'static str> = Vec::new();
                if old.name != new.name {
                    changed.push("name");
                }
                if old.email != new.email {
                    changed.push("email");
                }
                if old.phone != new.phone {
                    changed.push("phone");
                }
                if old.address != new.address {
                    changed.push("address");
                }
                if old.attributes != new.attributes {
                    changed.push("attributes");
                }
                let mut meta_changed = false;
                if let Some(r) = external_ref {
                    meta_changed = r != row.external_ref;
                    row.external_ref = r;
                }
                if !changed.is_empty() || meta_changed {
                    records::seal_into(&mut row, &keyring, &new)?;
                    row.updated_at = now.into();
                    row.last_activity_at = now.into();
                    records::update(conn, &row)?;
                    let mut event = access.event("visitor.update", &row.id, &changed);
                    if meta_changed {
                        event = event.fields(&["external_ref"]);
                    }
                    steward_audit::append(conn, &tid, event, now)?;
                }
                Ok(Rectified {
                    meta: row.meta(),
                    updated_fields: changed,
                })
            })
            .await
    }

    /// Erasure: ciphertexts and blind indexes are deleted for real; a tombstone keeps the id
    /// and the time. Blocked while the visitor is under legal hold.
    pub async fn erase(
        &self,
        tenant_id: &str,
        access: &Access,
        visitor_id: &str,
    ) -> Result<ErasureReceipt> {
        let (tid, vid, now, access, hooks) = (
            tenant_id.to_string(),
            visitor_id.to_string(),
            self.now(),
            access.clone(),
            self.hooks.clone(),
        );
        self.store
            .write(move |conn| erase_in(conn, &tid, &vid, &access, &hooks, now))
            .await
    }

    /// Sets or lifts a legal hold (with its reason), which blocks erasure and retention purge.
    pub async fn set_legal_hold(
        &self,
        tenant_id: &str,
        access: &Access,
        visitor_id: &str,
        active: bool,
        reason: Option<String>,
    ) -> Result<VisitorMeta> {
        let reason = match (active, reason.as_deref().map(str::trim)) {
            (true, Some(r))
                if !r.is_empty()
                    && r.chars().count() <= 500
                    && !r.chars().any(char::is_control) =>
            {
                Some(r.to_string())
            }
            (true, _) => {
                return Err(Error::invalid(
                    "invalid_reason",
                    "a legal hold needs a reason of 1 to 500 characters",
                ))
            }
            (false, _) => None,
        };
        let (tid, vid, now, access) = (
            tenant_id.to_string(),
            visitor_id.to_string(),
            self.now(),
            access.clone(),
        );
        self.store
            .write(move |conn| {
                let mut row = records::get_active(conn, &tid, &vid)?;
                row.legal_hold = active;
                row.legal_hold_reason = reason;
                row.updated_at = now.into();
                records::update(conn, &row)?;
                let action = if active {
                    "visitor.legal_hold.set"
                } else {
                    "visitor.legal_hold.lift"
                };
                steward_audit::append(conn, &tid, access.event(action, &row.id, &[]), now)?;
                Ok(row.meta())
            })
            .await
    }

    /// Records a consent decision. A withdrawal takes effect at once for every later pull.
    pub async fn set_consent(
        &self,
        tenant_id: &str,
        access: &Access,
        visitor_id: &str,
        purpose: &str,
        status: &str,
        source: &str,
    ) -> Result<Consent> {
        consents::validate_purpose(purpose)?;
        let status = ConsentStatus::parse(status)?;
        let source = consents::validate_source(source)?;
        let (tid, vid, p, now, access, hooks) = (
            tenant_id.to_string(),
            visitor_id.to_string(),
            purpose.to_string(),
            self.now(),
            access.clone(),
            self.hooks.clone(),
        );
        self.store
            .write(move |conn| {
                ensure_accepts_data(conn, &tid)?;
                records::get_active(conn, &tid, &vid)?;
                let row = consents::record(
                    conn,
                    &tid,
                    &vid,
                    consents::Decision {
                        purpose: &p,
                        status,
                        source: &source,
                        recorded_by: &access.actor.id,
                    },
                    now,
                )?;
                let event = access
                    .event("consent.record", &vid, &[])
                    .purpose(p.clone())
                    .detail(format!("status={}", status.as_str()));
                steward_audit::append(conn, &tid, event, now)?;
                if status == ConsentStatus::Withdrawn {
                    for h in &hooks {
                        h.on_consent_withdrawn(conn, &tid, &vid, &p, now)?;
                    }
                }
                Ok(Consent::from(row))
            })
            .await
    }

    pub async fn consents(&self, tenant_id: &str, visitor_id: &str) -> Result<ConsentState> {
        let (tid, vid) = (tenant_id.to_string(), visitor_id.to_string());
        self.store
            .read(move |conn| {
                records::get_active(conn, &tid, &vid)?;
                let history = consents::history(conn, &tid, &vid)?;
                Ok(ConsentState {
                    current: consents::current(&history)
                        .into_iter()
                        .map(Consent::from)
                        .collect(),
                    history: history.into_iter().map(Consent::from).collect(),
                })
            })
            .await
    }

    /// Everything Steward holds about one visitor, for the visitor.
    pub async fn export(
        &self,
        tenant_id: &str,
        access: &Access,
        visitor_id: &str,
    ) -> Result<SubjectExport> {
        let (keys, tid, vid, hooks) = (
            self.keys.clone(),
            tenant_id.to_string(),
            visitor_id.to_string(),
            self.hooks.clone(),
        );
        let now = self.clock.now();
        let (row, doc) = self
            .store
            .read(move |conn| {
                let row = records::get_active(conn, &tid, &vid)?;
                let keyring = keys.keyring(conn, &tid)?;
                let pii = records::open_fields(&row, &keyring, None)?;
                let consents = consents::history(conn, &tid, &vid)?
                    .into_iter()
                    .map(Consent::from)
                    .collect();
                let access_history = steward_audit::events_for_target(conn, &tid, &vid, 10_000)?
                    .into_iter()
                    .map(AccessRecord::from)
                    .collect();
                let mut recipients = Vec::new();
                for h in &hooks {
                    if let serde_json::Value::Array(items) = h.recipients(conn, &tid, &vid)? {
                        recipients.extend(items);
                    }
                }
                let doc = SubjectExport {
                    visitor: Visitor {
                        meta: row.meta(),
                        pii,
                    },
                    consents,
                    recipients: serde_json::Value::Array(recipients),
                    access_history,
                    exported_at: now,
                };
                Ok((row, doc))
            })
            .await?;
        let mut fields = row.present_fields();
        fields.push("consents");
        let out = disclose(
            &self.store,
            self.clock.as_ref(),
            tenant_id,
            access,
            "visitor.export",
            vec![Disclosure {
                visitor_id: row.id.clone(),
                fields,
                value: doc,
            }],
        )
        .await?;
        out.into_iter().next().ok_or(Error::NotFound)
    }
}

/// The erasure itself, inside a unit of work (also used by the retention purge).
pub fn erase_in(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
    access: &Access,
    hooks: &[Arc<dyn VisitorHooks>],
    now: NaiveDateTime,
) -> Result<ErasureReceipt> {
    let mut row = records::get_active(conn, tenant_id, visitor_id)?;
    if row.legal_hold {
        return Err(Error::conflict(
            "legal_hold",
            format!(
                "this visitor is under legal hold ({}); lift the hold before erasing",
                row.legal_hold_reason
                    .as_deref()
                    .unwrap_or("no reason recorded")
            ),
        ));
    }
    let fields: Vec<&'static str> = row.present_fields();
    row.status = STATUS_ERASED.to_string();
    row.external_ref = None;
    row.legal_hold_reason = None;
    row.name_sealed = None;
    row.email_sealed = None;
    row.phone_sealed = None;
    row.address_sealed = None;
    row.attributes_sealed = None;
    row.email_index = None;
    row.phone_index = None;
    row.updated_at = now.into();
    row.erased_at = Some(now.into());
    records::update(conn, &row)?;
    consents::delete_for_visitor(conn, tenant_id, visitor_id)?;
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::tenant_id.eq(tenant_id))
            .filter(idempotency_keys::resource_id.eq(visitor_id)),
    )
    .execute(conn)?;
    for h in hooks {
        h.on_erased(conn, tenant_id, visitor_id, now)?;
    }
    let appended: Appended = steward_audit::append(
        conn,
        tenant_id,
        access.event("visitor.erase", visitor_id, &fields),
        now,
    )?;
    Ok(ErasureReceipt {
        visitor_id: visitor_id.to_string(),
        erased_at: utc(now),
        audit_event_id: appended.id,
        audit_event_seq: appended.seq,
        audit_event_hash: appended.hash.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// All PII field names, for callers that need the full list.
pub fn all_fields() -> &'static [&'static str] {
    &PII_FIELDS
}
