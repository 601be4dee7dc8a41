//! SQLite WAL checkpoints, off the commit path.
//!
//! By default SQLite checkpoints inside whichever commit pushes the WAL past 1,000 pages: that
//! commit — the group committer's, with every waiting request behind it — then copies pages
//! into the database file and fsyncs it. Under the pull and import workloads that was most of
//! the writer thread's time. Instead, pool connections never checkpoint on commit
//! (`wal_autocheckpoint = 0`, set by the pool manager) and this thread runs PASSIVE
//! checkpoints shortly after commits happen. A PASSIVE checkpoint takes no lock that readers
//! or the writer wait on, and durability is unchanged: every commit is already durable in the
//! WAL, a checkpoint only moves it into the main file. The writer still checkpoints itself
//! once the WAL passes 64 MiB (see `committer`), which lets the WAL rewind; by then this
//! thread has done nearly all of the copying.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::pool::Pool;

/// How often the thread looks for new commits to checkpoint.
const EVERY: Duration = Duration::from_millis(100);

/// Stops the thread when dropped (with the store).
#[derive(Debug)]
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// `commits` is the committer's count of committed batches.
    pub(crate) fn start(pool: Pool, commits: Arc<AtomicU64>) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        thread::Builder::new()
            .name("steward-checkpointer".into())
            .spawn(move || {
                let mut seen = commits.load(Ordering::Relaxed);
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    let now = commits.load(Ordering::Relaxed);
                    if now != seen {
                        seen = now;
                        checkpoint(&pool);
                    }
                }
                // The last connection to close checkpoints the rest.
            })?;
        Ok(Self { _stop: stop })
    }
}

fn checkpoint(pool: &Pool) {
    let result = pool.get().map_err(|e| e.to_string()).and_then(|mut c| {
        c.execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
            .map_err(|e| e.to_string())
    });
    if let Err(error) = result {
        // Not fatal: the WAL grows until the next checkpoint succeeds.
        tracing::warn!(%error, "WAL checkpoint failed");
    }
}
