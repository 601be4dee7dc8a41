//! The one door PII leaves through. Every path that hands decrypted visitor data to anyone
//! outside the process — a read, a lookup, a list with PII, an export, a subprocessor pull, a
//! staff read under a grant — calls `disclose`, which commits one audit event per record
//! (who, which fields, why) and only then releases the values. If the audit write fails, the
//! caller gets the error and no data (fail closed).

use std::sync::atomic::{AtomicU64, Ordering};

use steward_audit::{Actor, NewEvent, Target};
use steward_core::{Clock, Principal, Result};
use steward_store::{DbConnection, Store};

/// Records disclosed since the process started (a test compares it with the audit log).
static DISCLOSED: AtomicU64 = AtomicU64::new(0);

pub fn disclosed_count() -> u64 {
    DISCLOSED.load(Ordering::Relaxed)
}

/// Who is reading, and under what purpose, justification or grant.
#[derive(Debug, Clone)]
pub struct Access {
    pub actor: Actor,
    pub request_id: Option<String>,
    pub purpose: Option<String>,
    pub justification: Option<String>,
    pub grant_id: Option<String>,
    /// A short non-PII note, e.g. the ticket a staff read was made for.
    pub detail: Option<String>,
}

impl Access {
    pub fn of(principal: &Principal, request_id: Option<String>) -> Self {
        Self {
            actor: Actor::from_principal(principal),
            request_id,
            purpose: None,
            justification: None,
            grant_id: None,
            detail: None,
        }
    }

    /// Steward itself (retention, offboarding).
    pub fn system(what: &str) -> Self {
        Self {
            actor: Actor::system(what),
            request_id: None,
            purpose: None,
            justification: None,
            grant_id: None,
            detail: None,
        }
    }

    pub fn with_purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into());
        self
    }

    /// An audit event about one visitor by this accessor.
    pub fn event(&self, action: &str, visitor_id: &str, fields: &[&str]) -> NewEvent {
        let mut e = NewEvent::new(
            action,
            self.actor.clone(),
            Target::record("visitor", visitor_id),
        )
        .fields(fields);
        if let Some(r) = &self.request_id {
            e = e.request_id(r.clone());
        }
        if let Some(p) = &self.purpose {
            e = e.purpose(p.clone());
        }
        if let Some(j) = &self.justification {
            e = e.justification(j.clone());
        }
        if let Some(g) = &self.grant_id {
            e = e.grant(g.clone());
        }
        if let Some(d) = &self.detail {
            e = e.detail(d.clone());
        }
        e
    }
}

/// One record about to be released.
pub struct Disclosure<T> {
    pub visitor_id: String,
    pub fields: Vec<&'static str>,
    pub value: T,
}

/// Commits the audit events for `records`, then returns their values.
pub async fn disclose<T: Send + 'static>(
    store: &Store,
    clock: &dyn Clock,
    tenant_id: &str,
    access: &Access,
    action: &'static str,
    records: Vec<Disclosure<T>>,
) -> Result<Vec<T>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    disclose_after(store, clock, tenant_id, access, action, records, |_| Ok(())).await
}

/// [`disclose`], with `first` — a write the disclosure belongs with, such as an onward
/// transfer's ledger entry — run in the same unit of work: both commit, or neither does and
/// nothing is released. It runs even when `records` is empty.
pub async fn disclose_after<T, F>(
    store: &Store,
    clock: &dyn Clock,
    tenant_id: &str,
    access: &Access,
    action: &'static str,
    records: Vec<Disclosure<T>>,
    first: F,
) -> Result<Vec<T>>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<()> + Send + 'static,
{
    let events: Vec<NewEvent> = records
        .iter()
        .map(|r| access.event(action, &r.visitor_id, &r.fields))
        .collect();
    let n = events.len() as u64;
    // Checked, numbered by id and encoded here, on the request's thread: the writer that holds
    // the chain's head only chains and stores them.
    let prepared = steward_audit::prepare(tenant_id, events, clock.now().naive_utc())?;
    store
        .write(move |conn| {
            first(conn)?;
            steward_audit::append_prepared(conn, prepared).map(|_| ())
        })
        .await?;
    DISCLOSED.fetch_add(n, Ordering::Relaxed);
    Ok(records.into_iter().map(|r| r.value).collect())
}
