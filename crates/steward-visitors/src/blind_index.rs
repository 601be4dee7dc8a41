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
//! * once [`MERGE_AT`] entries wait, or the oldest has waited [`MERGE_AFTER`], a merge round
//!   copies them into `blind_index_entries` one key range at a time: [`SLICES`] units of the
//!   group committer, each sorted, so a leaf takes every entry of the round that falls into
//!   it, and none holds the writer for long. A last unit deletes the merged entries from the
//!   pending table by seq, and then the map forgets them.
//!
//! The map holds a keyed 64-bit hash of (tenant, field, blind value) and the visitor id, not
//! the blind value. A lookup loads the candidate rows and keeps those whose own blind value
//! still matches, so a map entry of a rolled-back unit, of an erased visitor or of an old
//! e-mail finds nothing. Erasure and rectification delete the visitor's entries from both
//! tables in their own unit, so nothing of an erased visitor's index outlives the erasure
//! on disk.
//!
//! Everywhere else a [`BlindIndex::direct`] writes `blind_index_entries` in the creating
//! unit: on PostgreSQL, whose several server processes may share a database (a map would be
//! one process's), and in CLI commands. A direct index on SQLite also reads the pending table,
//! which a server that stopped may have left.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Binary, Nullable};
use steward_core::{Error, Result};
use steward_store::{Backend, DbConnection, Store};

use crate::model::{FIELD_EMAIL, FIELD_PHONE};
use crate::records::VisitorRow;
use crate::schema::{blind_index_entries, blind_index_pending};

/// Pending entries that start a merge round. A round's cost is about one write per leaf it
/// touches, so the more entries a round merges the fewer writes each costs; the map holds
/// about 100 bytes per entry.
pub const MERGE_AT: usize = 65_536;
/// A round also starts once the oldest pending entry is this old, so the pending table and
/// the map stay small on a tenant that grows slowly.
pub const MERGE_AFTER: Duration = Duration::from_secs(30);
/// Key ranges a round is cut into (by the blind value's first byte).
pub const SLICES: u8 = 16;

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
struct Entry<'a> {
    field: &'static str,
    blind: &'a [u8],
    visitor_id: &'a str,
}

fn entries_of<'a>(row: &'a VisitorRow) -> impl Iterator<Item = Entry<'a>> + 'a {
    [
        (FIELD_EMAIL, row.email_index.as_deref()),
        (FIELD_PHONE, row.phone_index.as_deref()),
    ]
    .into_iter()
    .filter_map(move |(field, blind)| {
        blind.map(|blind| Entry {
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
    /// loaded into the map; direct on PostgreSQL.
    ///
    /// Only one process may hold a deferred index over a database: seqs are handed out here.
    /// SQLite allows one writer anyway, and only `serve` asks for one.
    pub fn deferred(store: &Store) -> Result<Self> {
        if store.backend() != Backend::Sqlite {
            return Ok(Self::direct());
        }
        let left: Vec<(i64, String, String, Vec<u8>, String)> = store.read_blocking(|c| {
            Ok(blind_index_pending::table
                .select((
                    blind_index_pending::seq,
                    blind_index_pending::tenant_id,
                    blind_index_pending::field,
                    blind_index_pending::blind,
                    blind_index_pending::visitor_id,
                ))
                .load(c)?)
        })?;
        let pending = Pending::default();
        let mut last = 0;
        for (seq, tenant_id, field, blind, visitor_id) in &left {
            pending.remember(seq_key(&pending, tenant_id, field, blind), *seq, visitor_id);
            last = last.max(*seq);
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

    /// Entries waiting in the pending table (0 when direct).
    pub fn pending_entries(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.lock().len)
    }

    /// Records the blind values of newly inserted visitor rows, in the inserting unit.
    pub fn add_rows(&self, conn: &mut DbConnection, rows: &[VisitorRow]) -> Result<()> {
        let Some(pending) = &self.pending else {
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
        let count = rows.iter().flat_map(entries_of).count();
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
            map.insert(key, e.seq, &e.visitor_id);
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
        // The map before the table: a merge that commits between the two reads is then seen
        // in one of them (the map forgets entries only after the merge has committed).
        if let Some(pending) = &self.pending {
            let key = seq_key(pending, tenant_id, field, blind);
            ids.extend(pending.lock().find(key));
        }
        let stored: Vec<String> = blind_index_entries::table
            .filter(blind_index_entries::tenant_id.eq(tenant_id))
            .filter(blind_index_entries::field.eq(field))
            .filter(blind_index_entries::blind.eq(blind))
            .select(blind_index_entries::visitor_id)
            .limit(limit)
            .load(conn)?;
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
        if !pending.lock().due() || pending.merging.swap(true, Ordering::SeqCst) {
            return;
        }
        let (pending, store) = (Arc::clone(pending), store.clone());
        tokio::spawn(async move {
            if let Err(e) = merge_round(&pending, &store).await {
                tracing::error!(error = %e.log_cause(), "blind index merge failed; its entries stay pending");
            }
            pending.merging.store(false, Ordering::SeqCst);
        });
    }

    /// Merges every entry pending now and waits for it; returns how many were pending. For
    /// tests and tools; the server merges on its own.
    pub async fn merge_now(&self, store: &Store) -> Result<usize> {
        let Some(pending) = &self.pending else {
            return Ok(0);
        };
        while pending.merging.swap(true, Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = pending.lock().len;
        let merged = merge_round(pending, store).await;
        pending.merging.store(false, Ordering::SeqCst);
        merged.map(|()| before)
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

/// One merge round: every entry with a seq up to the highest handed out now.
async fn merge_round(pending: &Arc<Pending>, store: &Store) -> Result<()> {
    // Every seq up to `upto` belongs to a unit queued before this round's first unit, so by
    // the time a slice runs its entry is in the table or was rolled back.
    let upto = pending.next_seq.load(Ordering::SeqCst) - 1;
    let started = Instant::now();
    for slice in 0..SLICES {
        store
            .write(move |conn| merge_slice(conn, upto, slice))
            .await?;
    }
    let merged =
        store
            .write(move |conn| {
                Ok(diesel::delete(
                    blind_index_pending::table.filter(blind_index_pending::seq.le(upto)),
                )
                .execute(conn)?)
            })
            .await?;
    pending.lock().forget_through(upto);
    tracing::debug!(
        merged,
        ms = started.elapsed().as_millis() as u64,
        "blind index entries merged"
    );
    Ok(())
}

/// The pending entries up to `upto` whose blind value's first byte falls in `slice`, sorted
/// and copied into the B-tree table in one statement (no row passes through Rust).
fn merge_slice(conn: &mut DbConnection, upto: i64, slice: u8) -> Result<usize> {
    let width = 256 / u16::from(SLICES);
    let low = vec![(u16::from(slice) * width) as u8];
    let high = (slice + 1 < SLICES).then(|| vec![(u16::from(slice + 1) * width) as u8]);
    let DbConnection::Sqlite(c) = conn else {
        return Err(Error::internal_msg(
            "blind index entries are merged on SQLite only",
        ));
    };
    // OR IGNORE: a round that stopped half way (a crash) merges its slices again.
    Ok(diesel::sql_query(
        "INSERT OR IGNORE INTO blind_index_entries (tenant_id, field, blind, visitor_id) \
         SELECT tenant_id, field, blind, visitor_id FROM blind_index_pending \
         WHERE seq <= ? AND blind >= ? AND (? IS NULL OR blind < ?) \
         ORDER BY tenant_id, field, blind, visitor_id",
    )
    .bind::<BigInt, _>(upto)
    .bind::<Binary, _>(low)
    .bind::<Nullable<Binary>, _>(high.clone())
    .bind::<Nullable<Binary>, _>(high)
    .execute(c)?)
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
    merging: AtomicBool,
    map: Mutex<PendingMap>,
}

impl Default for Pending {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            next_seq: AtomicI64::new(1),
            merging: AtomicBool::new(false),
            map: Mutex::new(PendingMap::default()),
        }
    }
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, PendingMap> {
        // The map is consistent after every call (no call panics half way), so a poisoned
        // lock is still usable.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, key: u64, seq: i64, visitor_id: &str) {
        self.lock().insert(key, seq, visitor_id);
    }
}

#[derive(Default)]
struct PendingMap {
    by_key: HashMap<u64, Vec<(i64, Box<str>)>>,
    len: usize,
    oldest: Option<Instant>,
}

impl PendingMap {
    fn insert(&mut self, key: u64, seq: i64, visitor_id: &str) {
        self.by_key
            .entry(key)
            .or_default()
            .push((seq, visitor_id.into()));
        self.len += 1;
        self.oldest.get_or_insert_with(Instant::now);
    }

    fn find(&self, key: u64) -> impl Iterator<Item = String> + '_ {
        self.by_key
            .get(&key)
            .into_iter()
            .flatten()
            .map(|(_, id)| id.to_string())
    }

    fn due(&self) -> bool {
        self.len >= MERGE_AT || self.oldest.is_some_and(|t| t.elapsed() >= MERGE_AFTER)
    }

    fn forget_through(&mut self, upto: i64) {
        self.by_key.retain(|_, ids| {
            ids.retain(|(seq, _)| *seq > upto);
            !ids.is_empty()
        });
        self.len = self.by_key.values().map(Vec::len).sum();
        // Not exact, but only a trigger: the entries left were added after the round began.
        self.oldest = (self.len > 0).then(Instant::now);
    }
}
