//! The single write path (DESIGN.md, "One write path, group-committed").
//!
//! A durable commit costs a disk flush, so committing once per request caps the server at a
//! few hundred writes per second. Instead each request hands its unit of work — a closure over
//! the connection doing the data change and its audit events — to one writer thread. The writer
//! takes every unit waiting at that moment, runs each in its own savepoint inside one
//! transaction (a failing unit rolls back only itself), commits once, and only then answers
//! each request. No request is answered before the commit that holds its writes is durable.
//!
//! The first unit of a transaction runs without a savepoint: nothing else is in the
//! transaction yet, so if it fails, rolling the transaction back undoes exactly that unit, and
//! the units after it run again in a fresh one. A savepoint is not free on SQLite: every page
//! a unit changes is first copied into the savepoint's journal, which was 14 % of the writer's
//! time during import (BENCHMARKS.md, "Session 10"), and imports and pulls often have a
//! transaction to themselves.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use diesel::Connection;
use steward_core::Error;
use tokio::sync::oneshot;

use crate::batch;
use crate::connection::{Backend, DbConnection};
use crate::pool::Manager;

/// At most this many units share one transaction; bounds the latency one flush adds.
const MAX_BATCH: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// A queued unit of work, type-erased so units of any result type share one queue.
trait Unit: Send {
    /// Runs inside the batch transaction; in its own savepoint when `isolated`, else directly
    /// (the caller then rolls the whole transaction back if it fails). Returns whether it
    /// succeeded.
    fn run(&mut self, conn: &mut DbConnection, isolated: bool) -> bool;
    /// Called once the batch's fate is known: `committed` false means the batch rolled back.
    fn finish(self: Box<Self>, committed: bool);
}

struct TypedUnit<T, F> {
    work: Option<F>,
    outcome: Option<Result<T, Error>>,
    reply: Reply<T>,
}

impl<T, F> Unit for TypedUnit<T, F>
where
    T: Send + 'static,
    F: FnOnce(&mut DbConnection) -> Result<T, Error> + Send + 'static,
{
    fn run(&mut self, conn: &mut DbConnection, isolated: bool) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // Nested `transaction` is a savepoint: an error rolls back this unit only.
        let outcome = if isolated {
            conn.transaction::<T, Error, _>(work)
        } else {
            work(conn)
        };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, committed: bool) {
        let result = match self.outcome {
            Some(Ok(value)) if committed => Ok(value),
            Some(Ok(_)) => Err(Error::internal_msg(
                "the batch holding this write failed to commit",
            )),
            Some(Err(e)) => Err(e),
            None => Err(Error::internal_msg("unit of work did not run")),
        };
        // The requester may have gone away (client disconnect); the write stands regardless.
        let _ = self.reply.send(result);
    }
}

/// Handle to the writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<Box<dyn Unit>>,
    commits: Arc<AtomicU64>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committer")
    }
}

impl Committer {
    /// Starts the writer thread. It stops when every `Committer` handle is dropped.
    ///
    /// The writer keeps one connection of its own rather than borrowing from the readers'
    /// pool: its page cache stays warm across batches (index pages of a large tenant), and on
    /// SQLite it gets a larger cache than a reader needs (8 MiB against 1 MiB).
    pub fn start(manager: Manager) -> std::io::Result<Self> {
        let (queue, inbox) = mpsc::channel::<Box<dyn Unit>>();
        let commits = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&commits);
        thread::Builder::new()
            .name("steward-committer".into())
            .spawn(move || writer_loop(&manager, inbox, &counter))?;
        Ok(Self { queue, commits })
    }

    /// How many batches have committed since start (the WAL checkpointer watches it).
    pub fn commits(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.commits)
    }

    /// Queues `work` and resolves once it is durably committed (or failed).
    pub async fn submit<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, Error> + Send + 'static,
    {
        let rx = self.enqueue(work)?;
        rx.await
            .unwrap_or_else(|_| Err(Error::internal_msg("committer stopped before answering")))
    }

    /// The same for synchronous callers (the CLI, background jobs). Never call it from an
    /// async task: it blocks until the commit.
    pub fn submit_blocking<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, Error> + Send + 'static,
    {
        let rx = self.enqueue(work)?;
        rx.blocking_recv()
            .unwrap_or_else(|_| Err(Error::internal_msg("committer stopped before answering")))
    }

    fn enqueue<T, F>(&self, work: F) -> Result<oneshot::Receiver<Result<T, Error>>, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, Error> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let unit = Box::new(TypedUnit {
            work: Some(work),
            outcome: None,
            reply,
        });
        self.queue.send(unit).map_err(|_| Error::Unavailable)?;
        Ok(rx)
    }
}

fn writer_loop(manager: &Manager, inbox: mpsc::Receiver<Box<dyn Unit>>, commits: &AtomicU64) {
    let mut conn: Option<DbConnection> = None;
    while let Ok(first) = inbox.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match inbox.try_recv() {
                Ok(unit) => batch.push(unit),
                Err(_) => break,
            }
        }
        if conn.is_none() {
            conn = connect_writer(manager);
        }
        let committed = match conn.as_mut() {
            Some(c) => run_batch(c, &mut batch),
            None => false,
        };
        if committed {
            commits.fetch_add(1, Ordering::Relaxed);
        } else {
            // A failed commit or a panic may have left the connection dead or mid-transaction:
            // the next batch starts on a fresh one.
            conn = None;
        }
        for unit in batch {
            unit.finish(committed);
        }
    }
}

/// Pages (negative: KiB) of SQLite page cache for the writer: index pages of large tenants
/// stay in memory between batches instead of being read back for every insert. 8 MiB since
/// the audit target index stopped taking a random page per event: 16 MiB bought no throughput
/// then (import, read, pull on a 1 M tenant) and cost 10–15 MB of peak RSS.
const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// WAL pages (about 256 MiB) after which the writer checkpoints itself after a commit; the
/// writer also truncates the WAL back to that size when it rewinds.
///
/// The background checkpointer copies committed pages into the database file, but under
/// back-to-back group commits it is always a little behind, and SQLite rewinds the WAL only
/// after a checkpoint that caught up completely: seeding a million visitors grew the WAL to
/// 7 GB, and the first write after it spent two seconds truncating the file. A checkpoint run
/// by the writer itself, between its own commits, catches up and the WAL starts over. It
/// still costs the writer the frames the background thread has not copied yet and an
/// `fsync` of the database file, with every waiting request behind it: at 64 MiB that was
/// 8 % of the writer's time under import and most of create's p99 (85 ms at 64 clients).
/// At 256 MiB, import on a 1 M tenant went from 15.7–18.9 k to 21.0–23.2 k visitors/s and
/// create's p99 from 82–92 ms to 12–19 ms; the price is a longer stall when it does happen
/// (closed-loop max 176–229 ms instead of 93–121 ms). BENCHMARKS.md, "Session 6".
const WRITER_CHECKPOINT_PAGES: i64 = 64 * 1024;

fn connect_writer(manager: &Manager) -> Option<DbConnection> {
    let connected = manager.connect_writer().and_then(|mut c| {
        if c.backend() == Backend::Sqlite {
            c.execute_batch(&format!(
                "PRAGMA cache_size = -{WRITER_CACHE_KIB};\
                 PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES};\
                 PRAGMA journal_size_limit = {};",
                WRITER_CHECKPOINT_PAGES * 4096
            ))?;
        }
        Ok(c)
    });
    match connected {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "committer could not connect to the database");
            None
        }
    }
}

/// Runs the batch; true when every unit's fate is known (committed, or failed on its own),
/// false when the batch as a whole failed and every unit must be told so.
fn run_batch(conn: &mut DbConnection, batch: &mut [Box<dyn Unit>]) -> bool {
    let mut start = 0;
    while start < batch.len() {
        match run_transaction(conn, &mut batch[start..]) {
            Attempt::Committed => return true,
            // Its outcome is recorded; the units after it go again in a fresh transaction.
            Attempt::FirstUnitFailed => start += 1,
            Attempt::Failed => return false,
        }
    }
    true
}

enum Attempt {
    Committed,
    /// The first unit failed; the transaction was rolled back before any other unit ran.
    FirstUnitFailed,
    Failed,
}

/// Runs `units` in one transaction, the first without a savepoint and the rest each in its own.
/// On SQLite the transaction takes the write lock as it begins (`BEGIN IMMEDIATE`; see
/// `DbConnection::write_transaction`), so a batch whose first statement reads never fails at
/// the upgrade to a write.
fn run_transaction(conn: &mut DbConnection, units: &mut [Box<dyn Unit>]) -> Attempt {
    let size = units.len();
    let mut first_failed = false;
    let result = catch_unwind(AssertUnwindSafe(|| {
        let staged = batch::begin();
        conn.write_transaction::<(), Error, _>(|conn| {
            for (i, unit) in units.iter_mut().enumerate() {
                staged.unit_started();
                let kept = unit.run(conn, i > 0);
                staged.unit_finished(kept);
                if !kept && i == 0 {
                    first_failed = true;
                    return Err(Error::internal_msg("the first unit of a batch failed"));
                }
            }
            // What the units staged for the batch (audit events) is written before the
            // commit; if that fails the batch rolls back and every unit is told so.
            staged.before_commit(conn)
        })
    }));
    match result {
        Ok(Ok(())) => {
            tracing::trace!(size, "batch committed");
            Attempt::Committed
        }
        Ok(Err(_)) if first_failed => Attempt::FirstUnitFailed,
        Ok(Err(e)) => {
            tracing::error!(error = %e.log_cause(), size, "batch commit failed");
            Attempt::Failed
        }
        Err(_) => {
            // A unit panicked mid-transaction. The connection's transaction state is unknown:
            // the writer replaces it. Every unit of the batch fails.
            tracing::error!(size, "a unit of work panicked; batch rolled back");
            Attempt::Failed
        }
    }
}
