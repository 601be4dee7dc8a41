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
//! length. Hashing is the cost (SHA-256 over ~400 bytes per event), so pages are hashed on all
//! cores while the next page loads; the checks that depend on order run on the calling thread
//! once a page's hashes are back. The walk stops at the head read when it starts, so appends
//! made meanwhile neither disturb it nor need a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver};
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::prelude::*;
use diesel::row::{Field, Row};
use diesel::sql_types::Timestamp;
use diesel::sqlite::Sqlite;
use serde::Serialize;
use steward_core::{Error, Result};
use steward_store::DbConnection;

use crate::canonical::{self, EventFields, GENESIS_HASH, HASH_LEN};
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
        conn,
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
    if !verify_checkpoint_signature(checkpoint, public_key) {
        return Ok(VerifyReport::bad(
            0,
            None,
            reason::BAD_CHECKPOINT_SIGNATURE,
        ));
    }
    verify(conn, chain_id, Some(checkpoint), progress)
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

/// One event as the walk needs it: its seq, its stored hashes, and the exact bytes to hash.
struct Item {
    seq: i64,
    /// `None` when the stored value is not 32 bytes, which can only be tampering.
    hash: Option<[u8; HASH_LEN]>,
    prev: Option<[u8; HASH_LEN]>,
    /// `prev_hash ‖ canonical(event)`; emptied once hashed.
    message: Vec<u8>,
    computed: [u8; HASH_LEN],
}

impl Item {
    fn new(seq: i64, prev: &[u8], hash: &[u8], fields: &EventFields<'_>) -> Self {
        let mut message = Vec::with_capacity(prev.len() + 448);
        message.extend_from_slice(prev);
        canonical::encode_event(fields, &mut message);
        Item {
            seq,
            hash: hash.try_into().ok(),
            prev: prev.try_into().ok(),
            message,
            computed: [0; HASH_LEN],
        }
    }
}

struct Page {
    index: usize,
    items: Vec<Item>,
}

/// Walks the chain after `start` up to seq `upper`, checking order, hashes and links, and the
/// checkpoint's hash when the walk passes its seq.
pub(crate) fn walk(
    conn: &mut DbConnection,
    chain_id: &str,
    start: Start,
    upper: i64,
    checkpoint: Option<&Checkpoint>,
    progress: &mut dyn FnMut(i64),
) -> Result<Walk> {
    let mut state = Walk {
        checked: 0,
        last_seq: start.seq,
        last_hash: start.hash,
        failure: None,
    };
    if upper <= start.seq {
        return Ok(state);
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    // Pages alive at once: one loading, one per worker, one being checked, one spare.
    let in_flight = workers + 3;
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| -> Result<Walk> {
        let (work_tx, work_rx) = sync_channel::<Page>(workers);
        let work_rx = Arc::new(Mutex::new(work_rx));
        let (done_tx, done_rx) = channel::<Page>();
        let (token_tx, token_rx) = sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            token_tx
                .send(())
                .map_err(|_| Error::internal_msg("verify pipeline failed to start"))?;
        }

        let stop_ref = &stop;
        let loader = s.spawn(move || -> Result<()> {
            let mut after = start.seq;
            let mut index = 0;
            while token_rx.recv().is_ok() && !stop_ref.load(Ordering::Relaxed) {
                let items = load_page(conn, chain_id, after, upper)?;
                let full = items.len() == usize::try_from(PAGE_SIZE).unwrap_or(usize::MAX);
                let Some(last) = items.last() else {
                    break;
                };
                after = last.seq;
                if work_tx.send(Page { index, items }).is_err() || !full {
                    break;
                }
                index += 1;
            }
            Ok(())
        });

        for _ in 0..workers {
            let rx = Arc::clone(&work_rx);
            let tx = done_tx.clone();
            s.spawn(move || hash_pages(&rx, |page| tx.send(page).is_ok()));
        }
        drop(work_rx);
        drop(done_tx);

        check_pages(&done_rx, &token_tx, &mut state, checkpoint, progress);
        if state.failure.is_some() {
            stop.store(true, Ordering::Relaxed);
        }
        // Unblocks the loader and the workers so the scope can end.
        drop(token_tx);
        drop(done_rx);
        loader
            .join()
            .map_err(|_| Error::internal_msg("audit verify loader panicked"))??;
        Ok(state)
    })
}

fn hash_pages(rx: &Mutex<Receiver<Page>>, mut deliver: impl FnMut(Page) -> bool) {
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
            item.computed = canonical::sha256(&item.message);
            item.message = Vec::new();
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
    tokens: &std::sync::mpsc::SyncSender<()>,
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
            // Never blocks: exactly as many tokens circulate as the channel holds.
            let _ = tokens.try_send(());
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

fn load_page(
    conn: &mut DbConnection,
    chain_id: &str,
    after: i64,
    upper: i64,
) -> Result<Vec<Item>> {
    let page = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after))
        .filter(audit_events::seq.le(upper))
        .order(audit_events::seq.asc())
        .limit(PAGE_SIZE);
    match conn {
        DbConnection::Sqlite(c) => {
            let rows: Vec<SqliteItem> = page.select(VERIFY_COLUMNS).load(c)?;
            Ok(rows.into_iter().map(|r| r.0).collect())
        }
        DbConnection::Postgres(_) => {
            let rows: Vec<EventRow> = page.select(EventRow::as_select()).load(conn)?;
            Ok(rows.iter().map(item_from_row).collect())
        }
    }
}

fn item_from_row(r: &EventRow) -> Item {
    Item::new(r.seq, &r.prev_hash, &r.hash, &r.canonical_fields())
}

/// The columns of [`SqliteItem`], in the order it reads them.
const VERIFY_COLUMNS: (
    audit_events::chain_id,
    audit_events::seq,
    audit_events::id,
    audit_events::prev_hash,
    audit_events::hash,
    audit_events::occurred_at,
    audit_events::actor_kind,
    audit_events::actor_id,
    audit_events::actor_role,
    audit_events::action,
    audit_events::target_kind,
    audit_events::target_id,
    audit_events::fields,
    audit_events::purpose,
    audit_events::justification,
    audit_events::grant_id,
    audit_events::request_id,
    audit_events::outcome,
    audit_events::detail,
) = (
    audit_events::chain_id,
    audit_events::seq,
    audit_events::id,
    audit_events::prev_hash,
    audit_events::hash,
    audit_events::occurred_at,
    audit_events::actor_kind,
    audit_events::actor_id,
    audit_events::actor_role,
    audit_events::action,
    audit_events::target_kind,
    audit_events::target_id,
    audit_events::fields,
    audit_events::purpose,
    audit_events::justification,
    audit_events::grant_id,
    audit_events::request_id,
    audit_events::outcome,
    audit_events::detail,
);

/// An [`Item`] built straight from SQLite's row buffers: the text is encoded where it lies,
/// instead of being copied into 17 `String`s first and encoded after — on SQLite that copy,
/// not the database, was most of the loading cost.
struct SqliteItem(Item);

/// The SQL type of [`VERIFY_COLUMNS`]. Naming it (rather than implementing for any `ST`) keeps
/// the impl clear of diesel's blanket one.
type VerifySql = (
    diesel::sql_types::Text,
    diesel::sql_types::BigInt,
    diesel::sql_types::Text,
    diesel::sql_types::Binary,
    diesel::sql_types::Binary,
    Timestamp,
    diesel::sql_types::Text,
    diesel::sql_types::Text,
    diesel::sql_types::Text,
    diesel::sql_types::Text,
    diesel::sql_types::Text,
    diesel::sql_types::Nullable<diesel::sql_types::Text>,
    diesel::sql_types::Text,
    diesel::sql_types::Nullable<diesel::sql_types::Text>,
    diesel::sql_types::Nullable<diesel::sql_types::Text>,
    diesel::sql_types::Nullable<diesel::sql_types::Text>,
    diesel::sql_types::Nullable<diesel::sql_types::Text>,
    diesel::sql_types::Text,
    diesel::sql_types::Nullable<diesel::sql_types::Text>,
);

impl FromSqlRow<VerifySql, Sqlite> for SqliteItem {
    fn build_from_row<'a>(row: &impl Row<'a, Sqlite>) -> deserialize::Result<Self> {
        fn missing() -> Box<dyn std::error::Error + Send + Sync> {
            "audit row has fewer columns than expected".into()
        }
        // Every column's value stays borrowed from the row until the event is encoded, so
        // nothing is copied out first.
        macro_rules! value {
            ($field:ident, $value:ident, $i:expr) => {
                let $field = row.get($i).ok_or_else(missing)?;
                #[allow(unused_mut)]
                let mut $value = $field.value();
            };
        }
        macro_rules! text {
            ($v:expr) => {
                $v.as_mut().map(|v| v.read_text()).ok_or_else(missing)?
            };
        }
        macro_rules! opt_text {
            ($v:expr) => {
                $v.as_mut().map(|v| v.read_text())
            };
        }
        value!(f0, chain_id, 0usize);
        value!(f1, seq, 1usize);
        value!(f2, id, 2usize);
        value!(f3, prev, 3usize);
        value!(f4, hash, 4usize);
        value!(f5, occurred_at, 5usize);
        value!(f6, actor_kind, 6usize);
        value!(f7, actor_id, 7usize);
        value!(f8, actor_role, 8usize);
        value!(f9, action, 9usize);
        value!(f10, target_kind, 10usize);
        value!(f11, target_id, 11usize);
        value!(f12, fields, 12usize);
        value!(f13, purpose, 13usize);
        value!(f14, justification, 14usize);
        value!(f15, grant_id, 15usize);
        value!(f16, request_id, 16usize);
        value!(f17, outcome, 17usize);
        value!(f18, detail, 18usize);
        let seq = seq.ok_or_else(missing)?.read_long();
        let mut occurred_at = occurred_at.ok_or_else(missing)?;
        let occurred_at: NaiveDateTime = match parse_sqlite_timestamp(occurred_at.read_text()) {
            Some(t) => t,
            None => FromSql::<Timestamp, Sqlite>::from_sql(occurred_at)?,
        };
        let view = EventFields {
            chain_id: text!(chain_id),
            seq,
            id: text!(id),
            occurred_at,
            actor_kind: text!(actor_kind),
            actor_id: text!(actor_id),
            actor_role: text!(actor_role),
            action: text!(action),
            target_kind: text!(target_kind),
            target_id: opt_text!(target_id),
            fields: text!(fields),
            purpose: opt_text!(purpose),
            justification: opt_text!(justification),
            grant_id: opt_text!(grant_id),
            request_id: opt_text!(request_id),
            outcome: text!(outcome),
            detail: opt_text!(detail),
        };
        let prev = prev.as_mut().map(|v| v.read_blob()).ok_or_else(missing)?;
        let hash = hash.as_mut().map(|v| v.read_blob()).ok_or_else(missing)?;
        Ok(SqliteItem(Item::new(seq, prev, hash, &view)))
    }
}

/// Parses the form diesel writes timestamps in on SQLite (`2026-11-21 23:50:00.123456`).
/// diesel's own parser tries up to 18 chrono formats per value and dominated the loading
/// profile; anything but the exact written form returns `None` and goes to diesel's parser,
/// so the two can only differ in speed.
fn parse_sqlite_timestamp(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    let shape_ok = b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[16] == b':';
    if !shape_ok {
        return None;
    }
    let num = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit()
                .then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(&b[0..4])?).ok()?;
    let (month, day) = (num(&b[5..7])?, num(&b[8..10])?);
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if second > 59 {
        // A leap second: rare enough to leave to chrono.
        return None;
    }
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            let width = u32::try_from(frac.len()).ok()?;
            num(frac)? * 10u32.pow(9 - width)
        }
        _ => return None,
    };
    chrono::NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, minute, second, nanos)
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

    /// The SQLite fast path must produce byte-for-byte the messages the portable path does,
    /// including NULLs, empty strings and non-ASCII text.
    #[test]
    fn sqlite_fast_path_matches_portable_path() {
        let (_dir, mut conn) = sqlite();
        let chain = Id::Tenant.generate();
        let now = chrono::Utc::now().naive_utc();
        let events = vec![
            NewEvent::new("tenant.create", Actor::system("cli"), Target::kind("tenant")),
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
        let fast: Vec<SqliteItem> = audit_events::table
            .filter(audit_events::chain_id.eq(&chain))
            .order(audit_events::seq.asc())
            .select(VERIFY_COLUMNS)
            .load(c)
            .unwrap();
        let rows: Vec<EventRow> = audit_events::table
            .filter(audit_events::chain_id.eq(&chain))
            .order(audit_events::seq.asc())
            .select(EventRow::as_select())
            .load(&mut conn)
            .unwrap();
        assert_eq!(fast.len(), 2);
        for (f, r) in fast.iter().zip(&rows) {
            let p = item_from_row(r);
            assert_eq!(f.0.message, p.message);
            assert_eq!(f.0.seq, p.seq);
            assert_eq!(f.0.hash, p.hash);
            assert_eq!(f.0.prev, p.prev);
            assert_eq!(canonical::sha256(&p.message)[..], r.hash[..]);
        }
    }

    #[test]
    fn fast_timestamp_parse_agrees_with_chrono() {
        for s in [
            "2026-11-21 23:50:00.123456",
            "2026-11-21 23:50:00",
            "2026-11-21 23:50:00.1",
            "2026-11-21 23:50:00.123456789",
            "0001-01-01 00:00:00.000001",
        ] {
            let ours = parse_sqlite_timestamp(s).unwrap();
            let chrono = NaiveDateTime::parse_from_str(s, "%F %T%.f").unwrap();
            assert_eq!(ours, chrono, "{s}");
        }
        for s in [
            "2026-11-21T23:50:00",
            "2026-11-21 23:50:00Z",
            "2026-11-21 23:50:60",
            "2026-02-30 00:00:00",
            "2026-11-21 23:50:00.",
            "2026-11-21 23:50:00.1234567890",
            "2026-11-21 23:5a:00",
            "",
        ] {
            assert!(parse_sqlite_timestamp(s).is_none(), "{s}");
        }
    }

    #[test]
    fn empty_chain_verifies() {
        let (_dir, mut conn) = sqlite();
        let report = verify(&mut conn, "platform", None, &mut |_| {}).unwrap();
        assert_eq!(report, VerifyReport::good(0));
    }
}
