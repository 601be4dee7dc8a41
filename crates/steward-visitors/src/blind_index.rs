//! The blind indexes of e-mail and phone: which visitors of a tenant have a given keyed hash.
//!
//! A keyed hash spreads entries evenly over the key space, so a B-tree on it kept up to date
//! in every commit writes a random leaf for each new visitor. On SQLite, whose WAL logs whole
//! pages, that was three quarters of an import's WAL on a 1 M-visitor tenant, 1.2 pages of
//! 4 KiB per visitor for the e-mail index alone (BENCHMARKS.md, "Session 14"). So the server
//! on SQLite keeps new entries aside and merges them in bulk, the way an LSM tree does:
//!
//! * a unit that creates visitors appends their entries to `blind_index_pending`, in seq
//!   order (sequential pages), and to an in-memory map that lookups consult beside the
//!   B-tree table `blind_index_entries`;
//! * once [`MERGE_AT`] entries wait, or the oldest has waited [`MERGE_AFTER`] (checked at
//!   the next write that adds entries: an idle server's few pending entries cost nothing), a
//!   merge round sorts them by key (off the writer) and copies them into `blind_index_entries`
//!   in key order, so a leaf takes every entry of the round that falls into it. Units of the
//!   group committer do it, each for a bounded time: half a millisecond, with a pause after
//!   each, while entries arrive slowly; 20 ms, back to back, under an import. Then more units
//!   delete the merged entries from the pending table by seq, and then the map forgets them;
//! * past about [`BACKLOG_MAX`] pending entries, new ones go straight into the table until the
//!   merges catch up.
//!
//! The map holds a keyed 64-bit hash of (tenant, field, blind value) and the entry's seq,
//! not the blind value nor the visitor. A lookup reads the pending rows of the seqs it finds,
//! then loads the candidate visitors and keeps those whose own blind value still matches, so a map entry of a rolled-back unit, of an erased visitor or of an old
//! e-mail finds nothing. Erasure and rectification delete the visitor's entries from both
//! tables in their own unit, so nothing of an erased visitor's index outlives the erasure
//! on disk.
//!
//! Everywhere else a [`BlindIndex::direct`] writes `blind_index_entries` in the creating
//! unit: on PostgreSQL, whose several server processes may share a database (a map would be
//! one process's), in CLI commands, and in a second server over the same SQLite file (only
//! one process may hand out seqs and merge; a lock file next to the database says which). A
//! direct index on SQLite also reads the pending table, which another server holds or a
//! server that stopped left.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use steward_core::{Error, Result};
use steward_store::{Backend, DatabaseUrl, DbConnection, Store};

use crate::model::{FIELD_EMAIL, FIELD_PHONE};
use crate::records::VisitorRow;
use crate::schema::{blind_index_entries, blind_index_pending};

/// Seqs per `IN` list.
const SEQ_CHUNK: usize = 400;
/// Pending entries that start a merge round. A round's cost is about one write per leaf it
/// touches, so the more entries a round merges the fewer writes each costs; the map holds
/// about 40 bytes per entry.
pub const MERGE_AT: usize = 65_536;
/// A round also starts once the oldest pending entry is this old, so the pending table and
/// the map stay small on a tenant that grows slowly.
pub const MERGE_AFTER: Duration = Duration::from_secs(30);
/// Most entries one round merges (its plan holds their seqs, 8 bytes each).
pub const ROUND_MAX: usize = 131_072;
/// About the most entries pending at once (checked per write, so one batch may pass it).
/// Past it, new entries go straight into the B-tree table, as
/// on PostgreSQL, until the merges catch up: this bounds the map's memory (about 40 bytes an
/// entry) and the work left for the merges when a long import ends.
pub const BACKLOG_MAX: usize = 2 * ROUND_MAX;

/// The blind indexes of visitors, direct or deferred (see the module docs). Cheap to clone.
#[derive(Clone, Default)]
pub struct BlindIndex {
    pending: Option<Arc<Pending>>,
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlindIndex")
            .field("deferred", &self.pending.is_some())
            .finish()
    }
}

/// One blind value of one visitor.
struct BlindValue<'a> {
    field: &'static str,
    blind: &'a [u8],
    visitor_id: &'a str,
}

fn entries_of<'a>(row: &'a VisitorRow) -> impl Iterator<Item = BlindValue<'a>> + 'a {
    [
        (FIELD_EMAIL, row.email_index.as_deref()),
        (FIELD_PHONE, row.phone_index.as_deref()),
    ]
    .into_iter()
    .filter_map(move |(field, blind)| {
        blind.map(|blind| BlindValue {
            field,
            blind,
            visitor_id: &row.id,
        })
    })
}

#[derive(Insertable)]
#[diesel(table_name = blind_index_entries)]
// Owned values: diesel caches a multi-row INSERT's statement only for `'static` rows.
struct EntryRow {
    tenant_id: String,
    field: &'static str,
    blind: Vec<u8>,
    visitor_id: String,
}

#[derive(Insertable)]
#[diesel(table_name = blind_index_pending)]
struct PendingRow {
    seq: i64,
    tenant_id: String,
    field: &'static str,
    blind: Vec<u8>,
    visitor_id: String,
}

impl BlindIndex {
    /// Writes every entry straight into the B-tree table.
    pub fn direct() -> Self {
        Self::default()
    }

    /// The server's index: deferred on SQLite, with the entries a previous run left pending
    /// loaded into the map; direct on PostgreSQL, and on SQLite when another process already
    /// holds the deferred index of that database.
    pub fn deferred(store: &Store) -> Result<Self> {
        let DatabaseUrl::Sqlite(path) = store.url() else {
            return Ok(Self::direct());
        };
        // Seqs are handed out in this process and merged rounds delete by seq, so only one
        // process may defer. The lock is released when the file closes, with the last clone.
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".blind-index.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(Error::internal)?;
        if lock.try_lock().is_err() {
            tracing::info!(
                "another process defers this database's blind index; this one writes it directly"
            );
            return Ok(Self::direct());
        }
        let left: Vec<(i64, String, String, Vec<u8>)> = store.read_blocking(|c| {
            Ok(blind_index_pending::table
                .select((
                    blind_index_pending::seq,
                    blind_index_pending::tenant_id,
                    blind_index_pending::field,
                    blind_index_pending::blind,
                ))
                .load(c)?)
        })?;
        let pending = Pending {
            _lock_file: Some(lock),
            ..Pending::default()
        };
        let mut last = 0;
        {
            let mut map = pending.lock();
            for (seq, tenant_id, field, blind) in &left {
                map.insert(seq_key(&pending, tenant_id, field, blind), *seq);
                last = last.max(*seq);
            }
        }
        pending.next_seq.store(last + 1, Ordering::SeqCst);
        if !left.is_empty() {
            tracing::info!(
                entries = left.len(),
                "blind index entries pending from the last run"
            );
        }
        Ok(Self {
            pending: Some(Arc::new(pending)),
        })
    }

    pub fn is_deferred(&self) -> bool {
        self.pending.is_some()
    }

    /// Entries the map holds: those pending, and any of a unit that rolled back (0 when
    /// direct).
    pub fn pending_entries(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.lock().len)
    }

    /// Records the blind values of newly inserted visitor rows, in the inserting unit.
    pub fn add_rows(&self, conn: &mut DbConnection, rows: &[VisitorRow]) -> Result<()> {
        let count = rows.iter().flat_map(entries_of).count();
        if let Some(pending) = &self.pending {
            // Both paths count: the merge's pace follows every entry that arrives, including
            // those that go straight into the table while the backlog is full.
            pending.added.fetch_add(count as u64, Ordering::Relaxed);
        }
        let deferring = self
            .pending
            .as_ref()
            .filter(|pending| pending.lock().len < pending.backlog_max);
        let Some(pending) = deferring else {
            let mut entries = Vec::new();
            for row in rows {
                for e in entries_of(row) {
                    entries.push(EntryRow {
                        tenant_id: row.tenant_id.clone(),
                        field: e.field,
                        blind: e.blind.to_vec(),
                        visitor_id: e.visitor_id.to_string(),
                    });
                }
            }
            steward_store::insert_chunked!(conn, blind_index_entries::table, &entries[..])?;
            return Ok(());
        };
        if count == 0 {
            return Ok(());
        }
        // Seqs are taken on the committer thread, so they grow in commit order; a unit that
        // rolls back leaves a gap, never a reused seq.
        let mut seq = pending.next_seq.fetch_add(count as i64, Ordering::SeqCst);
        let mut entries = Vec::with_capacity(count);
        for row in rows {
            for e in entries_of(row) {
                entries.push(PendingRow {
                    seq,
                    tenant_id: row.tenant_id.clone(),
                    field: e.field,
                    blind: e.blind.to_vec(),
                    visitor_id: e.visitor_id.to_string(),
                });
                seq += 1;
            }
        }
        steward_store::insert_chunked!(conn, blind_index_pending::table, &entries[..])?;
        // Into the map before the commit: a lookup that sees the entry before the row is
        // committed loads no row for it.
        let mut map = pending.lock();
        for e in &entries {
            let key = seq_key(pending, &e.tenant_id, e.field, &e.blind);
            map.insert(key, e.seq);
        }
        Ok(())
    }

    /// A visitor's blind values changed (rectification): the old entries go, the new come,
    /// in the updating unit.
    pub fn replace(
        &self,
        conn: &mut DbConnection,
        before_email: Option<&[u8]>,
        before_phone: Option<&[u8]>,
        row: &VisitorRow,
    ) -> Result<()> {
        let mut added = row.clone();
        for (field, before, after, slot) in [
            (
                FIELD_EMAIL,
                before_email,
                row.email_index.as_deref(),
                &mut added.email_index,
            ),
            (
                FIELD_PHONE,
                before_phone,
                row.phone_index.as_deref(),
                &mut added.phone_index,
            ),
        ] {
            if before == after {
                *slot = None;
                continue;
            }
            if let Some(old) = before {
                remove_entry(conn, &row.tenant_id, field, old, &row.id)?;
            }
        }
        self.add_rows(conn, std::slice::from_ref(&added))
    }

    /// Ids of the visitors of `tenant_id` that may have `blind` as their `field`, sorted,
    /// at most `limit` from the B-tree table plus those pending. Candidates only: the caller
    /// checks each row's own blind value.
    pub fn candidates(
        &self,
        conn: &mut DbConnection,
        tenant_id: &str,
        field: &str,
        blind: &[u8],
        limit: i64,
    ) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        // The map, then the pending rows it names, then the table: a merge deletes pending
        // rows only after its entries are in the table, and the map forgets them only after
        // that, so an entry is always in one of the three reads.
        if let Some(pending) = &self.pending {
            let seqs = pending
                .lock()
                .find(seq_key(pending, tenant_id, field, blind));
            for chunk in seqs.chunks(SEQ_CHUNK) {
                // The blind value is checked again: the map keeps only a hash of it.
                let found: Vec<String> =
                    steward_store::direct!(conn, |c| blind_index_pending::table
                        .filter(blind_index_pending::seq.eq_any(chunk))
                        .filter(blind_index_pending::tenant_id.eq(tenant_id))
                        .filter(blind_index_pending::field.eq(field))
                        .filter(blind_index_pending::blind.eq(blind))
                        .select(blind_index_pending::visitor_id)
                        .load(c))?;
                ids.extend(found);
                if ids.len() as i64 >= limit {
                    break;
                }
            }
        }
        // On the backend's own connection, prepared once (see `steward_store::direct!`): every
        // lookup runs it.
        let stored: Vec<String> = steward_store::direct!(conn, |c| blind_index_entries::table
            .filter(blind_index_entries::tenant_id.eq(tenant_id))
            .filter(blind_index_entries::field.eq(field))
            .filter(blind_index_entries::blind.eq(blind))
            .select(blind_index_entries::visitor_id)
            .limit(limit)
            .load(c))?;
        ids.extend(stored);
        if self.pending.is_none() && conn.backend() == Backend::Sqlite {
            let left: Vec<String> = blind_index_pending::table
                .filter(blind_index_pending::tenant_id.eq(tenant_id))
                .filter(blind_index_pending::field.eq(field))
                .filter(blind_index_pending::blind.eq(blind))
                .select(blind_index_pending::visitor_id)
                .load(conn)?;
            ids.extend(left);
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Starts a merge round in the background if one is due and none is running; returns at
    /// once. Called after the writes that add entries.
    pub fn merge_if_due(&self, store: &Store) {
        let Some(pending) = &self.pending else {
            return;
        };
        // Outside a runtime (a caller blocking on a future) the next write starts the round.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !pending.lock().due() || pending.backing_off() {
            return;
        }
        let Some(guard) = MergeGuard::take(pending) else {
            return;
        };
        let store = store.clone();
        runtime.spawn(async move {
            if let Err(e) = merge_round(&guard.0, &store, true).await {
                tracing::error!(error = %e.log_cause(), "blind index merge failed; its entries stay pending");
                guard.0.lock().failed_at = Some(Instant::now());
            }
        });
    }

    /// Merges every entry pending now, unpaced, and waits for it; returns how many were
    /// pending. For tests and tools; the server merges on its own, paced.
    pub async fn merge_now(&self, store: &Store) -> Result<usize> {
        let Some(pending) = &self.pending else {
            return Ok(0);
        };
        let guard = loop {
            match MergeGuard::take(pending) {
                Some(guard) => break guard,
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        let before = pending.lock().len;
        merge_round(&guard.0, store, false).await.map(|()| before)
    }
}

/// Deletes a visitor's entries from both tables (erasure), in the erasing unit.
pub fn remove_visitor(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
    email: Option<&[u8]>,
    phone: Option<&[u8]>,
) -> Result<()> {
    for (field, blind) in [(FIELD_EMAIL, email), (FIELD_PHONE, phone)] {
        if let Some(blind) = blind {
            remove_entry(conn, tenant_id, field, blind, visitor_id)?;
        }
    }
    // Whatever else is pending for the visitor (the row's values are what was indexed, but an
    // entry must never outlive an erasure).
    diesel::delete(
        blind_index_pending::table
            .filter(blind_index_pending::tenant_id.eq(tenant_id))
            .filter(blind_index_pending::visitor_id.eq(visitor_id)),
    )
    .execute(conn)?;
    Ok(())
}

/// Deletes every entry of the tenant (offboarding).
pub fn delete_tenant(conn: &mut DbConnection, tenant_id: &str) -> Result<usize> {
    let stored = diesel::delete(
        blind_index_entries::table.filter(blind_index_entries::tenant_id.eq(tenant_id)),
    )
    .execute(conn)?;
    let left = diesel::delete(
        blind_index_pending::table.filter(blind_index_pending::tenant_id.eq(tenant_id)),
    )
    .execute(conn)?;
    Ok(stored + left)
}

fn remove_entry(
    conn: &mut DbConnection,
    tenant_id: &str,
    field: &str,
    blind: &[u8],
    visitor_id: &str,
) -> Result<()> {
    diesel::delete(blind_index_entries::table.find((tenant_id, field, blind, visitor_id)))
        .execute(conn)?;
    diesel::delete(
        blind_index_pending::table
            .filter(blind_index_pending::tenant_id.eq(tenant_id))
            .filter(blind_index_pending::visitor_id.eq(visitor_id))
            .filter(blind_index_pending::field.eq(field)),
    )
    .execute(conn)?;
    Ok(())
}

/// One merge round: every entry with a seq up to the highest handed out now. The order of
/// the steps is what keeps lookups whole (see [`BlindIndex::candidates`]): entries reach the
/// table before their pending rows go, and the map forgets them last.
///
/// Each step is a unit of the group committer that works for a bounded time and says how far
/// it got; the next unit goes on from there. A unit's budget is small, and the round pauses
/// between units, so requests at a steady rate wait little behind a merge; under an import
/// (see [`Pacer`]) units are larger and follow each other, so merging keeps up with the
/// entries that arrive, where requests already wait for whole batches. Unpaced (`merge_now`),
/// every unit gets the larger budget. Fixed-size units held the writer 8-34 ms for 2,048
/// entries and 140-220 ms for deleting a round's 131,072 pending rows, and were the p99 of
/// `mixed` at 1,000 req/s (BENCHMARKS.md, "Session 16").
async fn merge_round(pending: &Arc<Pending>, store: &Store, paced: bool) -> Result<()> {
    let started = Instant::now();
    // Before the plan, which takes a while to read: its window already counts.
    let mut pacer = Pacer::new(pending, paced);
    let (upto, seqs) = plan_round(pending, store).await?;
    let seqs = Arc::new(seqs);
    let mut done = 0;
    while done < seqs.len() {
        let (plan, from) = (Arc::clone(&seqs), done);
        let merged = pacer
            .unit(store, move |conn, budget| {
                merge_some(conn, &plan[from..], budget)
            })
            .await?;
        done += merged;
        pacer.pause_unless(done == seqs.len()).await;
    }
    // Nothing is pending at or below `upto` but the plan's seqs (see `plan_round`), so an
    // empty plan has nothing to delete.
    if let Some(lowest) = seqs.iter().copied().min() {
        let mut deleted_through = lowest - 1;
        while deleted_through < upto {
            let from = deleted_through;
            deleted_through = pacer
                .unit(store, move |conn, budget| {
                    delete_some(conn, from, upto, budget)
                })
                .await?;
            pacer.pause_unless(deleted_through >= upto).await;
        }
    }
    pending.lock().forget_through(upto);
    tracing::debug!(
        planned = seqs.len(),
        units = pacer.units,
        longest_unit_us = pacer.longest.as_micros() as u64,
        ms = started.elapsed().as_millis() as u64,
        "blind index entries merged"
    );
    Ok(())
}

/// How long one merge unit may hold the writer (it may overrun by one step) while entries
/// arrive slowly, and under an import (see [`Pacer`]).
const UNIT_BUDGET_LIGHT: Duration = Duration::from_micros(500);
const UNIT_BUDGET_IMPORT: Duration = Duration::from_millis(20);
/// New entries per second that mean an import (1,000 req/s of mixed traffic adds about 300).
const IMPORT_RATE: f64 = 5_000.0;
/// Between units while entries arrive slowly, a pause of this many times the last unit's
/// round trip (its wait, its work and its commit's page writes): the merge then takes at
/// most about a fifth of the writer, and the requests that queued behind a unit commit
/// before the next.
const PAUSE_FACTOR: u32 = 4;
/// The window over which the pacer measures the rate of new entries.
const RATE_WINDOW: Duration = Duration::from_millis(200);

/// Sizes and spaces a round's units. Under an import (entries arriving at [`IMPORT_RATE`] or
/// more, counting those that go straight into the table while the backlog is full) units get
/// [`UNIT_BUDGET_IMPORT`] and follow each other, so merging keeps up with the entries
/// arriving; requests there already wait for long batches. Otherwise units get
/// [`UNIT_BUDGET_LIGHT`] and a pause after each. A backlog left by an import does not count:
/// it is worked off at the light pace, or the requests that follow it would wait behind
/// 20 ms units.
///
/// The signal is the rate of new entries, which the merge does not change. How long the
/// writer's batches take and how many writes queue both grow with the merge's own units, and
/// a budget that followed them grew until units held the writer for 20 ms at a steady
/// 1,000 req/s (BENCHMARKS.md, "Session 16").
struct Pacer {
    pending: Arc<Pending>,
    paced: bool,
    added: u64,
    at: Instant,
    importing: bool,
    last_round_trip: Duration,
    units: u32,
    longest: Duration,
}

impl Pacer {
    fn new(pending: &Arc<Pending>, paced: bool) -> Self {
        Self {
            pending: Arc::clone(pending),
            paced,
            added: pending.added.load(Ordering::Relaxed),
            at: Instant::now(),
            importing: false,
            last_round_trip: Duration::ZERO,
            units: 0,
            longest: Duration::ZERO,
        }
    }

    /// Runs `work` as one committer unit with the budget the current rate allows.
    async fn unit<T, F>(&mut self, store: &Store, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection, Duration) -> Result<T> + Send + 'static,
    {
        self.update();
        let budget = if self.importing || !self.paced {
            UNIT_BUDGET_IMPORT
        } else {
            UNIT_BUDGET_LIGHT
        };
        let submitted = Instant::now();
        let (value, held) = store
            .write(move |conn| {
                let started = Instant::now();
                work(conn, budget).map(|value| (value, started.elapsed()))
            })
            .await?;
        self.last_round_trip = submitted.elapsed();
        self.units += 1;
        self.longest = self.longest.max(held);
        Ok(value)
    }

    fn update(&mut self) {
        let elapsed = self.at.elapsed();
        if elapsed < RATE_WINDOW {
            return;
        }
        let added = self.pending.added.load(Ordering::Relaxed);
        self.importing = is_import(added.saturating_sub(self.added), elapsed);
        (self.added, self.at) = (added, Instant::now());
    }

    /// The pause after a unit, unless it was the last of its loop.
    async fn pause_unless(&self, last: bool) {
        if self.paced && !self.importing && !last {
            tokio::time::sleep(self.last_round_trip * self.pending.pause_factor).await;
        }
    }
}

/// Whether `added` entries in `elapsed` mean an import.
fn is_import(added: u64, elapsed: Duration) -> bool {
    added as f64 / elapsed.as_secs_f64().max(f64::EPSILON) >= IMPORT_RATE
}

/// The last seq a round starting now covers, and its pending entries' seqs in key order.
///
/// Every seq up to `upto` was handed out to a unit queued before the empty unit this awaits,
/// so once it has committed each of those entries is committed or rolled back, and the
/// snapshot, read off the writer, holds every one that will ever be. Sorting here keeps the
/// writer's units small: each covers one stretch of the key space, so its inserts fall on
/// neighbouring leaves, and the next unit's on the next ones.
async fn plan_round(pending: &Pending, store: &Store) -> Result<(i64, Vec<i64>)> {
    let upto = pending.next_seq.load(Ordering::SeqCst) - 1;
    store.write(|_| Ok(())).await?;
    // Sorted by SQLite on a reader, which hands back only the seqs: the keys never reach the
    // server's heap (sorted here, a round's keys added 20-30 MB to the peak RSS of an import).
    store
        .read(move |conn| {
            let DbConnection::Sqlite(c) = conn else {
                return Err(Error::internal_msg(
                    "blind index entries are merged on SQLite only",
                ));
            };
            let planned: Vec<PlannedSeq> = diesel::sql_query(
                // The oldest ROUND_MAX entries, in the B-tree table's key order.
                "SELECT seq FROM (SELECT * FROM blind_index_pending WHERE seq <= ? \
                 ORDER BY seq LIMIT ?) ORDER BY tenant_id, field, blind, visitor_id",
            )
            .bind::<BigInt, _>(upto)
            .bind::<BigInt, _>(ROUND_MAX as i64)
            .load(c)?;
            let seqs: Vec<i64> = planned.into_iter().map(|p| p.seq).collect();
            // A backlog larger than a round: this one takes the oldest, the next the rest.
            let upto = match seqs.iter().max() {
                Some(&last) if seqs.len() == ROUND_MAX => last,
                _ => upto,
            };
            Ok((upto, seqs))
        })
        .await
}

#[derive(QueryableByName)]
struct PlannedSeq {
    #[diesel(sql_type = BigInt)]
    seq: i64,
}

/// Pending seqs one merge statement copies, and one delete statement removes.
const MERGE_STEP: usize = 32;
const DELETE_STEP: i64 = 256;

/// Copies the pending entries of a prefix of `seqs` into the B-tree table, [`MERGE_STEP`] at
/// a time, until `budget` has passed (at least one step); returns how many seqs it took.
/// The entries are read from the pending table by seq, not taken from the plan: an entry
/// erased since the plan was read is gone from there and must not come back.
fn merge_some(conn: &mut DbConnection, seqs: &[i64], budget: Duration) -> Result<usize> {
    let DbConnection::Sqlite(c) = conn else {
        return Err(Error::internal_msg(
            "blind index entries are merged on SQLite only",
        ));
    };
    let started = Instant::now();
    let mut done = 0;
    for step in seqs.chunks(MERGE_STEP) {
        let list = serde_json::to_string(step).map_err(Error::internal)?;
        // One statement text whatever the step's length (the seqs come as one JSON array),
        // so it is prepared once. OR IGNORE: a round that stopped half way (a crash or a
        // failed unit) merges again. CROSS JOIN fixes the loop order: each seq of the list finds its row by
        // primary key, instead of a scan of the whole pending table.
        diesel::sql_query(
            "INSERT OR IGNORE INTO blind_index_entries (tenant_id, field, blind, visitor_id) \
             SELECT p.tenant_id, p.field, p.blind, p.visitor_id \
             FROM json_each(?) AS j CROSS JOIN blind_index_pending AS p ON p.seq = j.value \
             ORDER BY p.tenant_id, p.field, p.blind, p.visitor_id",
        )
        .bind::<Text, _>(list)
        .execute(c)?;
        done += step.len();
        if started.elapsed() >= budget {
            break;
        }
    }
    Ok(done)
}

/// Deletes the merged pending rows up to `upto`, going on from `from` [`DELETE_STEP`] seqs
/// at a time, until `budget` has passed (at least one step); returns the seq it deleted
/// through. Each step deletes every row at or below its end: those below are already gone
/// (or are rows of a round that stopped half way, merged too), and the range starts at the
/// front of the table, so the step costs only the rows it removes.
fn delete_some(conn: &mut DbConnection, from: i64, upto: i64, budget: Duration) -> Result<i64> {
    let started = Instant::now();
    let mut through = from;
    while through < upto {
        through = through.saturating_add(DELETE_STEP).min(upto);
        diesel::delete(blind_index_pending::table.filter(blind_index_pending::seq.le(through)))
            .execute(conn)?;
        if started.elapsed() >= budget {
            break;
        }
    }
    Ok(through)
}

fn seq_key(pending: &Pending, tenant_id: &str, field: &str, blind: &[u8]) -> u64 {
    pending.hasher.hash_one((tenant_id, field, blind))
}

/// The deferred index's state in memory.
struct Pending {
    /// Keyed per process: the map never holds a blind value, nor a hash of one that outlives
    /// the process.
    hasher: RandomState,
    next_seq: AtomicI64,
    /// Entries added since start, deferred or not: the rate the merge paces itself by.
    added: AtomicU64,
    merging: AtomicBool,
    map: Mutex<PendingMap>,
    /// [`BACKLOG_MAX`], smaller in tests.
    backlog_max: usize,
    /// [`PAUSE_FACTOR`]; 0 in tests that wait for a background round.
    pause_factor: u32,
    /// Held (locked) for as long as this index lives.
    _lock_file: Option<std::fs::File>,
}

/// After a failed round, the next waits this long.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// The one merge round running: taken before a round starts, released when it ends however
/// it ends (a task dropped with its runtime included), so rounds never stop for good.
struct MergeGuard(Arc<Pending>);

impl MergeGuard {
    fn take(pending: &Arc<Pending>) -> Option<Self> {
        (!pending.merging.swap(true, Ordering::SeqCst)).then(|| Self(Arc::clone(pending)))
    }
}

impl Drop for MergeGuard {
    fn drop(&mut self) {
        self.0.merging.store(false, Ordering::SeqCst);
    }
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            next_seq: AtomicI64::new(1),
            added: AtomicU64::new(0),
            merging: AtomicBool::new(false),
            map: Mutex::new(PendingMap::default()),
            backlog_max: BACKLOG_MAX,
            pause_factor: PAUSE_FACTOR,
            _lock_file: None,
        }
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingMap> {
        // The map is consistent after every call (no call panics half way), so a poisoned
        // lock is still usable.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn backing_off(&self) -> bool {
        self.lock()
            .failed_at
            .is_some_and(|t| t.elapsed() < RETRY_AFTER)
    }
}

/// The seqs of one key's pending entries. Nearly every key has one (an e-mail address is
/// one visitor's), so it is kept inline.
enum Seqs {
    One(i64),
    Many(Vec<i64>),
}

/// Pending entries by a keyed hash of (tenant, field, blind value): seqs only, so the map
/// holds neither a blind value nor a visitor id, and about 40 bytes per entry.
#[derive(Default)]
struct PendingMap {
    by_key: HashMap<u64, Seqs>,
    len: usize,
    oldest: Option<Instant>,
    /// When the last round failed, if it did.
    failed_at: Option<Instant>,
}

impl PendingMap {
    fn insert(&mut self, key: u64, seq: i64) {
        match self.by_key.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(Seqs::One(seq));
            }
            Entry::Occupied(mut slot) => {
                let seqs = slot.get_mut();
                match seqs {
                    Seqs::One(first) => *seqs = Seqs::Many(vec![*first, seq]),
                    Seqs::Many(all) => all.push(seq),
                }
            }
        }
        self.len += 1;
        self.oldest.get_or_insert_with(Instant::now);
    }

    fn find(&self, key: u64) -> Vec<i64> {
        match self.by_key.get(&key) {
            None => Vec::new(),
            Some(Seqs::One(seq)) => vec![*seq],
            Some(Seqs::Many(all)) => all.clone(),
        }
    }

    fn due(&self) -> bool {
        self.len >= MERGE_AT || self.oldest.is_some_and(|t| t.elapsed() >= MERGE_AFTER)
    }

    fn forget_through(&mut self, upto: i64) {
        // One pass: the lock is held throughout, and lookups and creates wait for it.
        let mut len = 0;
        self.by_key.retain(|_, seqs| {
            let kept = match seqs {
                Seqs::One(seq) => usize::from(*seq > upto),
                Seqs::Many(all) => {
                    all.retain(|seq| *seq > upto);
                    all.len()
                }
            };
            len += kept;
            kept > 0
        });
        self.len = len;
        if self.len == 0 {
            // Hand the memory of a large round back.
            self.by_key = HashMap::new();
        }
        // Not exact, but only a trigger: the entries left were added after the round began.
        self.oldest = (self.len > 0).then(Instant::now);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use steward_store::{DatabaseUrl, PoolOptions};

    fn visitor(i: u8) -> VisitorRow {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc();
        VisitorRow {
            tenant_id: "ten_a".into(),
            id: format!("vis_{i:03}"),
            external_ref: None,
            status: crate::records::STATUS_ACTIVE.into(),
            legal_hold: false,
            legal_hold_reason: None,
            key_version: 1,
            name_sealed: None,
            email_sealed: None,
            phone_sealed: None,
            address_sealed: None,
            attributes_sealed: None,
            // First bytes spread over every slice.
            email_index: Some(vec![i.wrapping_mul(4); 32]),
            phone_index: None,
            created_at: now.into(),
            updated_at: now.into(),
            last_activity_at: now.into(),
            erased_at: None,
        }
    }

    /// Every visitor is found by its own blind value, and only it.
    async fn assert_all_found(index: &BlindIndex, store: &Store, rows: &[VisitorRow], when: &str) {
        for row in rows {
            let (index, blind) = (index.clone(), row.email_index.clone().unwrap());
            let found = store
                .read(move |c| index.candidates(c, "ten_a", FIELD_EMAIL, &blind, 100))
                .await
                .unwrap();
            assert_eq!(found, std::slice::from_ref(&row.id), "{} {when}", row.id);
        }
    }

    fn sqlite_store(dir: &std::path::Path) -> Store {
        let url =
            DatabaseUrl::parse(&format!("sqlite://{}", dir.join("steward.db").display())).unwrap();
        Store::open(&url, PoolOptions::default()).unwrap()
    }

    async fn found(index: &BlindIndex, store: &Store, blind: Vec<u8>) -> Vec<String> {
        let index = index.clone();
        store
            .read(move |c| index.candidates(c, "ten_a", FIELD_EMAIL, &blind, 100))
            .await
            .unwrap()
    }

    /// Entries a stopped server left pending are loaded again by the next, and a second
    /// process over the same database while the first holds it writes directly.
    #[tokio::test]
    async fn pending_entries_outlive_the_process_and_only_one_process_defers() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path());
        let rows: Vec<VisitorRow> = (0..5).map(visitor).collect();
        {
            let index = BlindIndex::deferred(&store).unwrap();
            assert!(index.is_deferred());
            let second = BlindIndex::deferred(&store).unwrap();
            assert!(!second.is_deferred(), "the lock file is held");
            let (ix, batch) = (index.clone(), rows.clone());
            store.write(move |c| ix.add_rows(c, &batch)).await.unwrap();
            // The direct one finds them in the pending table.
            let blind = rows[3].email_index.clone().unwrap();
            assert_eq!(found(&second, &store, blind).await, [rows[3].id.clone()]);
        }
        let restarted = BlindIndex::deferred(&store).unwrap();
        assert!(restarted.is_deferred(), "the lock went with the last clone");
        assert_eq!(restarted.pending_entries(), 5);
        assert_all_found(&restarted, &store, &rows, "after the restart").await;
        // Seqs go on after the ones loaded.
        let (ix, late) = (restarted.clone(), visitor(9));
        store.write(move |c| ix.add_rows(c, &[late])).await.unwrap();
        assert_eq!(restarted.merge_now(&store).await.unwrap(), 6);
        assert_all_found(&restarted, &store, &rows, "after the merge").await;
    }

    /// A unit that fails after writing its entries leaves nothing a lookup finds, and the
    /// next round forgets its map entry.
    #[tokio::test]
    async fn a_rolled_back_unit_leaves_no_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path());
        let index = BlindIndex::deferred(&store).unwrap();
        let (ix, row) = (index.clone(), visitor(7));
        let blind = row.email_index.clone().unwrap();
        let failed = store
            .write(move |c| -> Result<()> {
                ix.add_rows(c, &[row])?;
                Err(Error::invalid("test", "fails after writing"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(index.pending_entries(), 1, "the map kept it");
        assert!(found(&index, &store, blind.clone()).await.is_empty());
        index.merge_now(&store).await.unwrap();
        assert_eq!(index.pending_entries(), 0);
        assert!(found(&index, &store, blind).await.is_empty());
    }

    /// The server's own path: a write that brings the pending entries to [`MERGE_AT`] starts
    /// a round in the background, which ends with nothing pending, and the next round can
    /// start after it.
    #[tokio::test]
    async fn reaching_merge_at_starts_a_round_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path());
        // Light units without the pauses, so the round ends in seconds.
        let index = BlindIndex {
            pending: Some(Arc::new(Pending {
                pause_factor: 0,
                ..Pending::default()
            })),
        };
        let mut rows: Vec<VisitorRow> = Vec::with_capacity(MERGE_AT);
        for i in 0..MERGE_AT {
            let mut row = visitor(0);
            row.id = format!("vis_{i:08}");
            let mut blind = vec![0u8; 32];
            blind[..8]
                .copy_from_slice(&(i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            row.email_index = Some(blind);
            rows.push(row);
        }
        let probe = rows[MERGE_AT / 2].clone();
        let ix = index.clone();
        store.write(move |c| ix.add_rows(c, &rows)).await.unwrap();
        index.merge_if_due(&store);
        let started = Instant::now();
        while index.pending_entries() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the round never ended"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_all_found(&index, &store, &[probe], "after the background round").await;
        let pending_rows: i64 = store
            .read(|c| Ok(blind_index_pending::table.count().get_result(c)?))
            .await
            .unwrap();
        assert_eq!(pending_rows, 0);
        // Every entry made it, over the round's many units.
        let in_table: i64 = store
            .read(|c| Ok(blind_index_entries::table.count().get_result(c)?))
            .await
            .unwrap();
        assert_eq!(in_table, MERGE_AT as i64);
        // The guard was released: an explicit round can run.
        assert_eq!(index.merge_now(&store).await.unwrap(), 0);
    }

    /// A lookup finds every entry at each step of a merge round: after each merge unit, after
    /// each delete step and after the map forgets them; and an entry written during the round
    /// stays pending for the next.
    #[tokio::test]
    async fn lookups_find_every_entry_at_every_step_of_a_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path());
        let index = BlindIndex::deferred(&store).unwrap();
        let pending = index.pending.clone().unwrap();
        let rows: Vec<VisitorRow> = (0..64).map(visitor).collect();
        let (ix, batch) = (index.clone(), rows.clone());
        store.write(move |c| ix.add_rows(c, &batch)).await.unwrap();
        assert_eq!(index.pending_entries(), 64);
        assert_all_found(&index, &store, &rows, "while pending").await;

        let (upto, seqs) = plan_round(&pending, &store).await.unwrap();
        assert_eq!(seqs.len(), 64);
        // Erased after the plan was read: its unit must not bring the entry back.
        let erased = rows[10].clone();
        let gone = erased.clone();
        store
            .write(move |c| remove_visitor(c, "ten_a", &gone.id, gone.email_index.as_deref(), None))
            .await
            .unwrap();
        let mut all: Vec<VisitorRow> = rows.iter().filter(|r| r.id != erased.id).cloned().collect();
        // Units of 8 here, so the round has several.
        for (unit, chunk) in seqs.chunks(8).enumerate() {
            let chunk = chunk.to_vec();
            let merged = store
                .write(move |c| merge_some(c, &chunk, Duration::ZERO))
                .await
                .unwrap();
            assert_eq!(merged, 8);
            assert_all_found(&index, &store, &all, &format!("after unit {unit}")).await;
            if unit == 3 {
                let mut late = visitor(200);
                late.email_index = Some(vec![1; 32]);
                let ix = index.clone();
                all.push(late.clone());
                store.write(move |c| ix.add_rows(c, &[late])).await.unwrap();
            }
        }
        // Deleted a step at a time: every step leaves each entry in the table or pending.
        let mut through = seqs.iter().copied().min().unwrap() - 1;
        while through < upto {
            let from = through;
            through = store
                .write(move |c| delete_some(c, from, upto.min(from + 16), Duration::ZERO))
                .await
                .unwrap();
            assert_all_found(&index, &store, &all, &format!("deleted through {through}")).await;
        }
        assert_eq!(through, upto);
        pending.lock().forget_through(upto);
        assert_all_found(&index, &store, &all, "after the map forgot").await;
        // Only the entry written during the round is still pending.
        assert_eq!(index.pending_entries(), 1);
        assert_eq!(index.merge_now(&store).await.unwrap(), 1);
        assert_eq!(index.pending_entries(), 0);
        assert_all_found(&index, &store, &all, "after the next round").await;
        assert!(found(&index, &store, erased.email_index.clone().unwrap())
            .await
            .is_empty());
        let left: i64 = store
            .read(|c| {
                Ok(blind_index_entries::table
                    .filter(blind_index_entries::visitor_id.eq("vis_010"))
                    .count()
                    .get_result(c)?)
            })
            .await
            .unwrap();
        assert_eq!(left, 0, "the erased visitor's entry came back");
    }

    /// A merge unit stops once its budget has passed, after at least one step, and the next
    /// goes on from there; so does the delete.
    #[tokio::test]
    async fn merge_units_stop_at_their_budget_and_the_next_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path());
        let index = BlindIndex::deferred(&store).unwrap();
        let pending = index.pending.clone().unwrap();
        let rows: Vec<VisitorRow> = (0..600).map(numbered_visitor).collect();
        let (ix, batch) = (index.clone(), rows.clone());
        store.write(move |c| ix.add_rows(c, &batch)).await.unwrap();
        let (upto, seqs) = plan_round(&pending, &store).await.unwrap();
        assert_eq!(seqs.len(), 600);

        let plan = seqs.clone();
        let first = store
            .write(move |c| merge_some(c, &plan, Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(first, MERGE_STEP, "a spent budget still does one step");
        assert_eq!(table_count(&store).await, MERGE_STEP as i64);
        assert_all_found(&index, &store, &rows, "after one unit").await;
        let plan = seqs.clone();
        let rest = store
            .write(move |c| merge_some(c, &plan[first..], Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(first + rest, 600);
        assert_eq!(table_count(&store).await, 600);

        let from = seqs.iter().copied().min().unwrap() - 1;
        let through = store
            .write(move |c| delete_some(c, from, upto, Duration::ZERO))
            .await
            .unwrap();
        assert_eq!(
            through,
            from + DELETE_STEP,
            "a spent budget still does one step"
        );
        assert!(through < upto);
        assert_eq!(pending_count(&store).await, upto - through);
        assert_all_found(&index, &store, &rows, "after one delete step").await;
        let through = store
            .write(move |c| delete_some(c, through, upto, Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(through, upto);
        assert_eq!(pending_count(&store).await, 0);
        assert_all_found(&index, &store, &rows, "after the delete").await;
    }

    /// Entries arriving fast mean an import; a trickle does not.
    #[test]
    fn the_pacer_tells_an_import_from_steady_traffic() {
        let window = Duration::from_millis(200);
        // 1,000 req/s of mixed traffic adds about 300 entries a second.
        assert!(!is_import(60, window));
        assert!(!is_import(999, window));
        assert!(is_import(1_000, window));
        assert!(is_import(8_000, window));
        assert!(!is_import(0, Duration::ZERO));
    }

    /// Entries that go straight into the table while the backlog is full still count for
    /// the pace, so an import that fills the backlog keeps the merge at the import pace.
    #[tokio::test]
    async fn entries_written_past_the_backlog_still_count_for_the_pace() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path());
        let pending = Arc::new(Pending {
            backlog_max: 4,
            ..Pending::default()
        });
        let index = BlindIndex {
            pending: Some(Arc::clone(&pending)),
        };
        let rows: Vec<VisitorRow> = (0..10).map(visitor).collect();
        let (ix, batch) = (index.clone(), rows[..6].to_vec());
        store.write(move |c| ix.add_rows(c, &batch)).await.unwrap();
        let (ix, batch) = (index.clone(), rows[6..].to_vec());
        store.write(move |c| ix.add_rows(c, &batch)).await.unwrap();
        assert_eq!(index.pending_entries(), 6, "the second batch went direct");
        assert_eq!(pending.added.load(Ordering::Relaxed), 10);
    }

    async fn table_count(store: &Store) -> i64 {
        store
            .read(|c| Ok(blind_index_entries::table.count().get_result(c)?))
            .await
            .unwrap()
    }

    async fn pending_count(store: &Store) -> i64 {
        store
            .read(|c| Ok(blind_index_pending::table.count().get_result(c)?))
            .await
            .unwrap()
    }

    /// Visitor `i` with a blind value of its own.
    fn numbered_visitor(i: u16) -> VisitorRow {
        let mut row = visitor(0);
        row.id = format!("vis_{i:05}");
        let mut blind = vec![0u8; 32];
        blind[..8].copy_from_slice(
            &u64::from(i)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .to_be_bytes(),
        );
        row.email_index = Some(blind);
        row
    }

    /// Past the backlog bound new entries go straight into the table; every visitor is still
    /// found, and the merge takes only what was pending.
    #[tokio::test]
    async fn past_the_backlog_bound_entries_go_straight_into_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite_store(dir.path());
        let index = BlindIndex {
            pending: Some(Arc::new(Pending {
                backlog_max: 4,
                ..Pending::default()
            })),
        };
        let rows: Vec<VisitorRow> = (0..10).map(visitor).collect();
        for batch in rows.chunks(3) {
            let (ix, batch) = (index.clone(), batch.to_vec());
            store.write(move |c| ix.add_rows(c, &batch)).await.unwrap();
        }
        // Batches of 3: the first two are deferred (3, then 6 pending), the rest go direct.
        assert_eq!(index.pending_entries(), 6);
        let in_table: i64 = store
            .read(|c| Ok(blind_index_entries::table.count().get_result(c)?))
            .await
            .unwrap();
        assert_eq!(in_table, 4);
        assert_all_found(&index, &store, &rows, "with the backlog full").await;
        assert_eq!(index.merge_now(&store).await.unwrap(), 6);
        assert_eq!(index.pending_entries(), 0);
        assert_all_found(&index, &store, &rows, "after the merge").await;
        // Below the bound again: deferred.
        let (ix, late) = (index.clone(), vec![visitor(200)]);
        store.write(move |c| ix.add_rows(c, &late)).await.unwrap();
        assert_eq!(index.pending_entries(), 1);
    }

    #[test]
    fn the_map_keeps_seqs_by_key_and_forgets_merged_ones() {
        let mut map = PendingMap::default();
        map.insert(1, 10);
        map.insert(2, 11);
        map.insert(1, 12);
        map.insert(3, 13);
        assert_eq!(map.len, 4);
        assert_eq!(map.find(1), [10, 12]);
        assert_eq!(map.find(2), [11]);
        assert!(map.find(4).is_empty());
        assert!(!map.due());

        map.forget_through(11);
        assert_eq!(map.len, 2);
        assert_eq!(map.find(1), [12]);
        assert!(map.find(2).is_empty());
        assert_eq!(map.find(3), [13]);

        map.forget_through(13);
        assert_eq!(map.len, 0);
        assert!(map.oldest.is_none());
        assert!(map.find(1).is_empty());
    }

    #[test]
    fn a_round_is_due_at_merge_at_entries() {
        let mut map = PendingMap::default();
        for seq in 0..MERGE_AT as i64 - 1 {
            map.insert(seq as u64, seq);
        }
        assert!(!map.due());
        map.insert(u64::MAX, MERGE_AT as i64);
        assert!(map.due());
    }
}
