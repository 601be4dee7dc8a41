//! Verification: recompute a chain and name the first event that does not fit.
//!
//! Every event is checked for its position (seq 1, 2, 3… without gaps), its own hash
//! (recomputed from its content and its stored `prev_hash`) and its link (its `prev_hash` is the
//! previous event's hash). Then the last event must be the stored head, which catches a deleted
//! tail; and, given a signed checkpoint, the chain must reach the checkpoint's seq with the
//! checkpoint's hash there, which catches a truncation or a consistent re-hash ("full forge")
//! made by someone without the signing key.
//!
//! The chain is read in pages of [`PAGE_SIZE`] events by seq, so memory stays flat for any
//! length. Pages are hashed on all cores while the next page loads; the checks that depend on
//! order run on the calling thread once a page's hashes are back. The walk stops at the head
//! read when it starts, so appends made meanwhile neither disturb it nor need a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use diesel::deserialize::{self, FromSql, QueryableByName};
use diesel::prelude::*;
use diesel::row::{Field, NamedRow, Row};
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;
use ring::digest;
use serde::Serialize;
use steward_core::{Error, Result};
use steward_store::DbConnection;

use crate::canonical::{self, RawFields, GENESIS_HASH, HASH_LEN};
use crate::checkpoint::{verify_checkpoint_signature, Checkpoint};
use crate::event::EventRow;
use crate::query;
use crate::schema::audit_events;

/// Events read per query.
pub const PAGE_SIZE: i64 = 10_000;

/// Why verification failed; stable codes for the API and the CLI.
pub mod reason {
    /// An event's content does not hash to its stored hash: it was edited, or moved.
    pub const HASH_MISMATCH: &str = "hash_mismatch";
    /// An event's `prev_hash` is not the previous event's hash.
    pub const PREV_HASH_MISMATCH: &str = "prev_hash_mismatch";
    /// A seq is missing: an event was deleted (or renumbered).
    pub const SEQ_GAP: &str = "seq_gap";
    /// The last event is not the stored head: events were deleted from, or added to, the end.
    pub const HEAD_MISMATCH: &str = "head_mismatch";
    /// The chain ends before the checkpoint's seq.
    pub const TRUNCATED_BEFORE_CHECKPOINT: &str = "truncated_before_checkpoint";
    /// The event at the checkpoint's seq has another hash than the one signed: something at
    /// or before that seq was rewritten, and everything after it re-hashed.
    pub const CHECKPOINT_MISMATCH: &str = "checkpoint_mismatch";
    /// The checkpoint's signature does not verify under the given public key.
    pub const BAD_CHECKPOINT_SIGNATURE: &str = "bad_checkpoint_signature";
}

/// The outcome of [`verify`]. `checked` counts the events that passed before the first
/// failure (all of them when `ok`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checked: i64,
    pub first_bad_seq: Option<i64>,
    pub reason: Option<&'static str>,
}

impl VerifyReport {
    fn good(checked: i64) -> Self {
        Self {
            ok: true,
            checked,
            first_bad_seq: None,
            reason: None,
        }
    }

    fn bad(checked: i64, seq: Option<i64>, reason: &'static str) -> Self {
        Self {
            ok: false,
            checked,
            first_bad_seq: seq,
            reason: Some(reason),
        }
    }
}

/// Recomputes `chain_id` from seq 1 to its head. With a checkpoint (whose signature the caller
/// has checked, or see [`verify_signed`]) it also proves the chain was not truncated or
/// rewritten up to the checkpoint. `progress` gets the number of events checked so far after
/// each page. An `Err` means verification could not run (database down); a broken chain is an
/// `Ok` report with `ok: false`.
pub fn verify(
    conn: &mut DbConnection,
    chain_id: &str,
    checkpoint: Option<&Checkpoint>,
    progress: &mut dyn FnMut(i64),
) -> Result<VerifyReport> {
    verify_on(vec![conn], chain_id, checkpoint, progress)
}

/// How many connections to give [`verify_on`]: two per core. Loading rows, not hashing, bounds
/// verification, and a loader is off the CPU part of the time (waiting for a place in the
/// pipeline, or for the kernel to copy pages from the OS cache). With one loader per core a
/// third of the CPU sat idle during verify; two per core verified a 500 k-event chain at
/// 1.06 M events/s against 0.99 M on average, faster in five of six alternating pairs
/// (BENCHMARKS.md, "Session 7"). Three per core was no faster and held more pages in memory.
pub fn recommended_loaders() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().saturating_mul(2))
}

/// [`verify`] reading the chain over several connections at once (one loader each; see
/// [`recommended_loaders`]), so a long chain verifies about as many times faster as there are
/// busy loaders, up to the cores.
pub fn verify_on(
    mut conns: Vec<&mut DbConnection>,
    chain_id: &str,
    checkpoint: Option<&Checkpoint>,
    progress: &mut dyn FnMut(i64),
) -> Result<VerifyReport> {
    let Some(conn) = conns.first_mut() else {
        return Err(Error::internal_msg("verify needs a database connection"));
    };
    if let Some(cp) = checkpoint {
        if cp.chain_id != chain_id {
            return Err(Error::invalid(
                "checkpoint_chain_mismatch",
                "the checkpoint belongs to another audit chain",
            ));
        }
        if cp.seq < 1 {
            return Err(Error::invalid(
                "invalid_checkpoint",
                "a checkpoint's seq is at least 1",
            ));
        }
    }
    let head = query::head(conn, chain_id)?;
    let (head_seq, head_hash) = head.clone().unwrap_or((0, GENESIS_HASH.to_vec()));
    let upper = head_seq.max(checkpoint.map_or(0, |cp| cp.seq));

    let walk = walk(
        conns.iter_mut().map(|c| &mut **c).collect(),
        chain_id,
        Start::genesis(),
        upper,
        checkpoint,
        progress,
    )?;
    if let Some((seq, why)) = walk.failure {
        return Ok(VerifyReport::bad(walk.checked, Some(seq), why));
    }
    if let Some(cp) = checkpoint {
        if walk.last_seq < cp.seq {
            return Ok(VerifyReport::bad(
                walk.checked,
                Some(walk.last_seq + 1),
                reason::TRUNCATED_BEFORE_CHECKPOINT,
            ));
        }
    }
    if walk.last_seq != head_seq {
        return Ok(VerifyReport::bad(
            walk.checked,
            Some(walk.last_seq.min(head_seq) + 1),
            reason::HEAD_MISMATCH,
        ));
    }
    if walk.last_hash[..] != head_hash[..] {
        return Ok(VerifyReport::bad(
            walk.checked,
            Some(head_seq.max(1)),
            reason::HEAD_MISMATCH,
        ));
    }
    // Events past the head are events written behind the head's back — unless the head moved
    // on while we walked, in which case they are ordinary appends for the next run.
    let Some(conn) = conns.first_mut() else {
        return Err(Error::internal_msg("verify needs a database connection"));
    };
    if query::chain_len(conn, chain_id)? > head_seq && query::head(conn, chain_id)? == head {
        return Ok(VerifyReport::bad(
            walk.checked,
            Some(head_seq + 1),
            reason::HEAD_MISMATCH,
        ));
    }
    Ok(VerifyReport::good(walk.checked))
}

/// [`verify`] after checking the checkpoint's signature under `public_key` — for a checkpoint
/// handed back by a tenant, which is evidence only if it is really ours.
pub fn verify_signed(
    conn: &mut DbConnection,
    chain_id: &str,
    checkpoint: &Checkpoint,
    public_key: &[u8],
    progress: &mut dyn FnMut(i64),
) -> Result<VerifyReport> {
    verify_signed_on(vec![conn], chain_id, checkpoint, public_key, progress)
}

/// [`verify_signed`] over several connections (see [`verify_on`]).
pub fn verify_signed_on(
    conns: Vec<&mut DbConnection>,
    chain_id: &str,
    checkpoint: &Checkpoint,
    public_key: &[u8],
    progress: &mut dyn FnMut(i64),
) -> Result<VerifyReport> {
    if !verify_checkpoint_signature(checkpoint, public_key) {
        return Ok(VerifyReport::bad(0, None, reason::BAD_CHECKPOINT_SIGNATURE));
    }
    verify_on(conns, chain_id, Some(checkpoint), progress)
}

/// Where a walk begins: after `seq`, whose hash is `hash` (seq 0 and the genesis hash for the
/// whole chain).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    pub seq: i64,
    pub hash: [u8; HASH_LEN],
}

impl Start {
    pub(crate) fn genesis() -> Self {
        Self {
            seq: 0,
            hash: GENESIS_HASH,
        }
    }
}

/// What a walk found: how far it got, and the first failure if any.
#[derive(Debug)]
pub(crate) struct Walk {
    pub checked: i64,
    pub last_seq: i64,
    pub last_hash: [u8; HASH_LEN],
    pub failure: Option<(i64, &'static str)>,
}

/// One event as the walk needs it: its seq, its stored hashes, and the bytes to hash after the
/// chain's constant prefix.
struct Item {
    seq: i64,
    /// `None` when a stored value is not 32 bytes, which only tampering produces.
    hash: Option<[u8; HASH_LEN]>,
    prev: Option<[u8; HASH_LEN]>,
    /// The encoding after [`canonical::encode_prefix`]; emptied once hashed.
    rest: Vec<u8>,
    computed: [u8; HASH_LEN],
}

impl Item {
    fn new(seq: i64, prev: &[u8], hash: &[u8], fields: &RawFields<'_>) -> Self {
        let mut rest = Vec::with_capacity(400);
        canonical::encode_rest(fields, &mut rest);
        Item {
            seq,
            hash: hash.try_into().ok(),
            prev: prev.try_into().ok(),
            rest,
            computed: [0; HASH_LEN],
        }
    }

    /// `SHA-256(prev_hash ‖ prefix ‖ rest)`: the event hash, without copying the three parts
    /// together.
    fn compute(&mut self, prefix: &[u8]) {
        if let Some(prev) = &self.prev {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(prev);
            ctx.update(prefix);
            ctx.update(&self.rest);
            self.computed.copy_from_slice(ctx.finish().as_ref());
        }
        self.rest = Vec::new();
    }
}

struct Page {
    index: usize,
    items: Vec<Item>,
}

/// Walks the chain after `start` up to seq `upper`, checking order, hashes and links, and the
/// checkpoint's hash when the walk passes its seq. Page `i` holds the seqs
/// `start + i·PAGE_SIZE + 1 ..= start + (i+1)·PAGE_SIZE` (fewer where events are missing); with
/// several connections, loader `k` loads pages `k, k + n, k + 2n, …`.
pub(crate) fn walk(
    mut conns: Vec<&mut DbConnection>,
    chain_id: &str,
    start: Start,
    upper: i64,
    checkpoint: Option<&Checkpoint>,
    progress: &mut dyn FnMut(i64),
) -> Result<Walk> {
    for conn in conns.iter_mut() {
        crate::staged::flush(conn)?;
    }
    let mut state = Walk {
        checked: 0,
        last_seq: start.seq,
        last_hash: start.hash,
        failure: None,
    };
    if upper <= start.seq {
        return Ok(state);
    }
    let pages = usize::try_from((upper - start.seq + PAGE_SIZE - 1) / PAGE_SIZE)
        .map_err(|_| Error::internal_msg("audit chain too long to page"))?;
    let mut prefix = Vec::new();
    canonical::encode_prefix(chain_id.as_bytes(), &mut prefix);
    let prefix = prefix.as_slice();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    let loaders = conns.len().max(1);
    // Pages each loader may have loaded but not yet checked. A loader gets its places back as
    // its own pages are checked, so the page the checker waits for can always be loaded.
    let per_loader = workers.div_ceil(loaders) + 1;
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| -> Result<Walk> {
        let (work_tx, work_rx) = sync_channel::<Page>(workers);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (done_tx, done_rx) = channel::<Page>();
        let mut tokens = Vec::with_capacity(loaders);

        let stop_ref = &stop;
        let mut handles = Vec::with_capacity(loaders);
        for (k, conn) in conns.into_iter().enumerate() {
            let (token_tx, token_rx) = sync_channel::<()>(per_loader);
            for _ in 0..per_loader {
                token_tx
                    .send(())
                    .map_err(|_| Error::internal_msg("verify pipeline failed to start"))?;
            }
            tokens.push(token_tx);
            let work_tx = work_tx.clone();
            handles.push(s.spawn(move || -> Result<()> {
                for index in (k..pages).step_by(loaders) {
                    if token_rx.recv().is_err() || stop_ref.load(Ordering::Relaxed) {
                        break;
                    }
                    let offset = i64::try_from(index).unwrap_or(i64::MAX);
                    let after = start.seq + offset * PAGE_SIZE;
                    let items = load_page(conn, chain_id, after, upper.min(after + PAGE_SIZE))?;
                    if work_tx.send(Page { index, items }).is_err() {
                        break;
                    }
                }
                Ok(())
            }));
        }
        drop(work_tx);

        for _ in 0..workers {
            let rx = Arc::clone(&work_rx);
            let tx = done_tx.clone();
            s.spawn(move || hash_pages(&rx, prefix, |page| tx.send(page).is_ok()));
        }
        drop(work_rx);
        drop(done_tx);

        check_pages(&done_rx, &tokens, &mut state, checkpoint, progress);
        if state.failure.is_some() {
            stop.store(true, Ordering::Relaxed);
        }
        // Unblocks the loaders and the workers so the scope can end.
        drop(tokens);
        drop(done_rx);
        for handle in handles {
            handle
                .join()
                .map_err(|_| Error::internal_msg("audit verify loader panicked"))??;
        }
        Ok(state)
    })
}

fn hash_pages(rx: &Mutex<Receiver<Page>>, prefix: &[u8], mut deliver: impl FnMut(Page) -> bool) {
    loop {
        let page = {
            let Ok(guard) = rx.lock() else {
                return;
            };
            match guard.recv() {
                Ok(p) => p,
                Err(_) => return,
            }
        };
        let mut page = page;
        for item in &mut page.items {
            item.compute(prefix);
        }
        if !deliver(page) {
            return;
        }
    }
}

/// Takes hashed pages in any order and checks them in chain order, stopping at the first
/// failure.
fn check_pages(
    done: &Receiver<Page>,
    tokens: &[SyncSender<()>],
    state: &mut Walk,
    checkpoint: Option<&Checkpoint>,
    progress: &mut dyn FnMut(i64),
) {
    let mut waiting: BTreeMap<usize, Page> = BTreeMap::new();
    let mut next = 0usize;
    while let Ok(page) = done.recv() {
        waiting.insert(page.index, page);
        while let Some(page) = waiting.remove(&next) {
            next += 1;
            for item in &page.items {
                if let Some(failure) = check_item(item, state, checkpoint) {
                    state.failure = Some(failure);
                    return;
                }
            }
            progress(state.checked);
            // Back to the loader of this page. Never blocks: exactly as many tokens circulate
            // as its channel holds.
            if let Some(t) = tokens.get(page.index % tokens.len().max(1)) {
                let _ = t.try_send(());
            }
        }
    }
}

fn check_item(
    item: &Item,
    state: &mut Walk,
    checkpoint: Option<&Checkpoint>,
) -> Option<(i64, &'static str)> {
    let expected = state.last_seq + 1;
    if item.seq != expected {
        return Some((expected, reason::SEQ_GAP));
    }
    if item.prev.is_none() {
        return Some((item.seq, reason::PREV_HASH_MISMATCH));
    }
    let Some(hash) = item.hash.filter(|h| *h == item.computed) else {
        return Some((item.seq, reason::HASH_MISMATCH));
    };
    if item.prev != Some(state.last_hash) {
        return Some((item.seq, reason::PREV_HASH_MISMATCH));
    }
    if let Some(cp) = checkpoint {
        if cp.seq == item.seq && cp.head_hash[..] != hash[..] {
            return Some((item.seq, reason::CHECKPOINT_MISMATCH));
        }
    }
    state.last_seq = item.seq;
    state.last_hash = hash;
    state.checked += 1;
    None
}

fn load_page(conn: &mut DbConnection, chain_id: &str, after: i64, upper: i64) -> Result<Vec<Item>> {
    if let DbConnection::Sqlite(c) = conn {
        return load_page_sqlite(c, chain_id, after, upper);
    }
    let rows: Vec<EventRow> = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after))
        .filter(audit_events::seq.le(upper))
        .order(audit_events::seq.asc())
        .limit(PAGE_SIZE)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(rows.iter().map(item_from_row).collect())
}

fn item_from_row(r: &EventRow) -> Item {
    Item::new(r.seq, &r.prev_hash, &r.hash, &r.canonical_fields().raw())
}

/// Loading, not hashing, was most of verify's cost on SQLite: per column, diesel validates
/// text as UTF-8 twice and SQLite takes the connection mutex. So this query casts text to
/// BLOB (the bytes hashed are the bytes stored, no validation needed) and leaves out
/// chain_id, which the WHERE clause fixes; [`SqliteItem`] encodes straight from SQLite's
/// buffers. Its column order is the canonical order, checked against the portable path by a
/// test.
const SQLITE_PAGE_SQL: &str = "SELECT seq, prev_hash, hash, CAST(id AS BLOB), \
     CAST(occurred_at AS BLOB), CAST(actor_kind AS BLOB), CAST(actor_id AS BLOB), \
     CAST(actor_role AS BLOB), CAST(action AS BLOB), CAST(target_kind AS BLOB), \
     CAST(target_id AS BLOB), CAST(fields AS BLOB), CAST(purpose AS BLOB), \
     CAST(justification AS BLOB), CAST(grant_id AS BLOB), CAST(request_id AS BLOB), \
     CAST(outcome AS BLOB), CAST(detail AS BLOB) \
     FROM audit_events WHERE chain_id = ? AND seq > ? AND seq <= ? ORDER BY seq LIMIT ?";

fn load_page_sqlite(
    c: &mut SqliteConnection,
    chain_id: &str,
    after: i64,
    upper: i64,
) -> Result<Vec<Item>> {
    let rows: Vec<SqliteItem> = diesel::sql_query(SQLITE_PAGE_SQL)
        .bind::<Text, _>(chain_id)
        .bind::<BigInt, _>(after)
        .bind::<BigInt, _>(upper)
        .bind::<BigInt, _>(PAGE_SIZE)
        .load(c)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

struct SqliteItem(Item);

impl QueryableByName<Sqlite> for SqliteItem {
    fn build<'a>(row: &impl NamedRow<'a, Sqlite>) -> deserialize::Result<Self> {
        fn missing() -> Box<dyn std::error::Error + Send + Sync> {
            "audit row has fewer columns than expected".into()
        }
        // Every column's value stays borrowed from the row until the event is encoded, so
        // nothing is copied out first.
        macro_rules! value {
            ($field:ident, $value:ident, $i:expr) => {
                let $field = Row::get(row, $i).ok_or_else(missing)?;
                let mut $value = $field.value();
            };
        }
        macro_rules! bytes {
            ($v:expr) => {
                $v.as_mut().map(|v| v.read_blob()).ok_or_else(missing)?
            };
        }
        macro_rules! opt_bytes {
            ($v:expr) => {
                $v.as_mut().map(|v| v.read_blob())
            };
        }
        value!(f0, seq, 0usize);
        value!(f1, prev, 1usize);
        value!(f2, hash, 2usize);
        value!(f3, id, 3usize);
        value!(f4, occurred_at, 4usize);
        value!(f5, actor_kind, 5usize);
        value!(f6, actor_id, 6usize);
        value!(f7, actor_role, 7usize);
        value!(f8, action, 8usize);
        value!(f9, target_kind, 9usize);
        value!(f10, target_id, 10usize);
        value!(f11, fields, 11usize);
        value!(f12, purpose, 12usize);
        value!(f13, justification, 13usize);
        value!(f14, grant_id, 14usize);
        value!(f15, request_id, 15usize);
        value!(f16, outcome, 16usize);
        value!(f17, detail, 17usize);
        let seq = seq.as_mut().ok_or_else(missing)?.read_long();
        let occurred_at = match steward_store::timestamp::parse_sqlite(bytes!(occurred_at)) {
            Some(t) => t,
            None => FromSql::<Timestamp, Sqlite>::from_sql(occurred_at.ok_or_else(missing)?)?,
        };
        let raw = RawFields {
            seq,
            id: bytes!(id),
            occurred_at,
            actor_kind: bytes!(actor_kind),
            actor_id: bytes!(actor_id),
            actor_role: bytes!(actor_role),
            action: bytes!(action),
            target_kind: bytes!(target_kind),
            target_id: opt_bytes!(target_id),
            fields: bytes!(fields),
            purpose: opt_bytes!(purpose),
            justification: opt_bytes!(justification),
            grant_id: opt_bytes!(grant_id),
            request_id: opt_bytes!(request_id),
            outcome: bytes!(outcome),
            detail: opt_bytes!(detail),
        };
        let item = Item::new(seq, bytes!(prev), bytes!(hash), &raw);
        Ok(SqliteItem(item))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{append_many, Actor, NewEvent, Target};
    use diesel::Connection;
    use steward_core::Id;

    fn sqlite() -> (tempfile::TempDir, DbConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut conn = DbConnection::Sqlite(
            diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap(),
        );
        steward_store::migrations::run_pending(&mut conn).unwrap();
        (dir, conn)
    }

    /// The SQLite fast path must produce byte-for-byte what the portable path does, including
    /// NULLs, empty strings and non-ASCII text, and both must reproduce the stored hashes.
    #[test]
    fn sqlite_fast_path_matches_portable_path() {
        let (_dir, mut conn) = sqlite();
        let chain = Id::Tenant.generate();
        let now = chrono::Utc::now().naive_utc();
        let events = vec![
            NewEvent::new(
                "tenant.create",
                Actor::system("cli"),
                Target::kind("tenant"),
            ),
            NewEvent::new(
                "visitor.read",
                Actor::new("user", "usr_1", "support_engineer"),
                Target::record("visitor", "vis_1"),
            )
            .fields(&["email", "name"])
            .purpose("support")
            .justification("Kundin bat um Korrektur — Ticket 12")
            .grant("acr_1")
            .request_id("req_1")
            .detail("1"),
        ];
        conn.transaction(|c| append_many(c, &chain, events, now))
            .unwrap();
        let DbConnection::Sqlite(c) = &mut conn else {
            unreachable!()
        };
        let fast = load_page_sqlite(c, &chain, 0, 10).unwrap();
        let rows: Vec<EventRow> = audit_events::table
            .filter(audit_events::chain_id.eq(&chain))
            .order(audit_events::seq.asc())
            .select(EventRow::as_select())
            .load(&mut conn)
            .unwrap();
        assert_eq!(fast.len(), 2);
        let mut prefix = Vec::new();
        canonical::encode_prefix(chain.as_bytes(), &mut prefix);
        for (mut f, r) in fast.into_iter().zip(&rows) {
            let mut p = item_from_row(r);
            assert_eq!(f.rest, p.rest);
            assert_eq!((f.seq, f.hash, f.prev), (p.seq, p.hash, p.prev));
            f.compute(&prefix);
            p.compute(&prefix);
            assert_eq!(f.computed[..], r.hash[..]);
            assert_eq!(p.computed[..], r.hash[..]);
        }
    }

    #[test]
    fn empty_chain_verifies() {
        let (_dir, mut conn) = sqlite();
        let report = verify(&mut conn, "platform", None, &mut |_| {}).unwrap();
        assert_eq!(report, VerifyReport::good(0));
    }
}
