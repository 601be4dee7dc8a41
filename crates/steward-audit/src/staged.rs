//! Audit appends batched per committer flush.
//!
//! Inside a committer batch an append does no SQL beyond taking a chain's head the first time
//! the batch touches that chain (on PostgreSQL `SELECT … FOR UPDATE`, so the head stays locked
//! until the batch commits). The head then lives here: each append hashes its events after it
//! in memory and queues the rows. Just before the batch commits, every queued row goes out in
//! multi-row INSERTs and each touched head is written once. An audited read thus costs its
//! share of one INSERT instead of a SELECT, an INSERT and an UPDATE of its own.
//!
//! A unit whose savepoint rolls back forgets its rows and its head moves (an undo log of the
//! heads it changed). Anything that reads the audit tables inside a batch calls [`flush`]
//! first, so it sees every event appended before it.

use std::any::Any;
use std::collections::HashMap;

use chrono::NaiveDateTime;
use steward_core::Error;
use steward_store::batch::{self, BatchLocal};
use steward_store::DbConnection;

use crate::append::write_head;
use crate::event::EventRow;
use crate::insert::insert_rows;
use crate::target_index;

/// A chain's head as this batch knows it.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub seq: i64,
    pub hash: Vec<u8>,
    pub updated_at: NaiveDateTime,
    /// Moved since it was last written to the database.
    pub dirty: bool,
}

#[derive(Default)]
pub(crate) struct StagedAppends {
    heads: HashMap<String, Head>,
    rows: Vec<EventRow>,
    /// `rows[..flushed]` are already in the database (a mid-batch [`flush`]).
    flushed: usize,
    unit: UnitMark,
}

/// Where the running unit started, to undo it.
#[derive(Default)]
struct UnitMark {
    rows: usize,
    flushed: usize,
    /// Heads the unit changed, with their value before its first change (None: unknown then).
    undo: Vec<(String, Option<Head>)>,
}

impl StagedAppends {
    pub(crate) fn head(&self, chain_id: &str) -> Option<&Head> {
        self.heads.get(chain_id)
    }

    /// Records the head the batch took from the database (not dirty: it is what is stored).
    pub(crate) fn adopt_head(&mut self, chain_id: &str, head: Head) {
        self.remember(chain_id);
        self.heads.insert(chain_id.to_string(), head);
    }

    /// Queues rows already hashed after the head, and moves the head past them.
    pub(crate) fn push(&mut self, chain_id: &str, rows: Vec<EventRow>, now: NaiveDateTime) {
        let Some(last) = rows.last() else {
            return;
        };
        let moved = Head {
            seq: last.seq,
            hash: last.hash.clone(),
            updated_at: now,
            dirty: true,
        };
        self.remember(chain_id);
        self.heads.insert(chain_id.to_string(), moved);
        self.rows.extend(rows);
    }

    fn remember(&mut self, chain_id: &str) {
        if !self.unit.undo.iter().any(|(c, _)| c == chain_id) {
            let before = self.heads.get(chain_id).cloned();
            self.unit.undo.push((chain_id.to_string(), before));
        }
    }

    fn write(&mut self, conn: &mut DbConnection) -> Result<(), Error> {
        insert_rows(conn, &self.rows[self.flushed..])?;
        self.flushed = self.rows.len();
        for (chain_id, head) in self.heads.iter_mut().filter(|(_, h)| h.dirty) {
            write_head(conn, chain_id, head.seq, &head.hash, head.updated_at)?;
            head.dirty = false;
            target_index::after_append(conn, chain_id, head.seq)?;
        }
        Ok(())
    }
}

impl BatchLocal for StagedAppends {
    fn unit_started(&mut self) {
        self.unit = UnitMark {
            rows: self.rows.len(),
            flushed: self.flushed,
            undo: Vec::new(),
        };
    }

    fn unit_finished(&mut self, kept: bool) {
        let mark = std::mem::take(&mut self.unit);
        if kept {
            return;
        }
        self.rows.truncate(mark.rows);
        for (chain_id, before) in mark.undo.into_iter().rev() {
            match before {
                Some(head) => self.heads.insert(chain_id, head),
                None => self.heads.remove(&chain_id),
            };
        }
        if self.flushed != mark.flushed {
            // A flush inside the rolled-back unit wrote rows and heads that its savepoint has
            // now undone: earlier units' rows go out again, and every head is rewritten.
            self.flushed = mark.flushed.min(self.rows.len());
            for head in self.heads.values_mut() {
                head.dirty = true;
            }
        }
    }

    fn before_commit(&mut self, conn: &mut DbConnection) -> Result<(), Error> {
        self.write(conn)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Writes whatever this batch has staged so far; a no-op outside a batch. Call it before
/// reading `audit_events` or `audit_heads` in code that may run inside a committer unit.
pub fn flush(conn: &mut DbConnection) -> Result<(), Error> {
    batch::with(|s: &mut StagedAppends| s.write(conn)).unwrap_or(Ok(()))
}
