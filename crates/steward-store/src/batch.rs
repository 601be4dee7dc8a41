//! State that lives for one committer batch.
//!
//! The group committer runs many units of work in one transaction. Some writes are cheaper done
//! once per batch than once per unit — the audit chain's head is read (and on PostgreSQL
//! locked) once, and every unit's events go out in one multi-row INSERT just before the
//! commit. A crate that wants this keeps its staged state in a [`BatchLocal`] that lives on
//! the committer thread for the duration of one batch.
//!
//! Each unit runs in its own savepoint, so a batch-local must be able to forget what a failed
//! unit staged: the committer tells it when a unit starts and how it ended. Just before the
//! commit it is asked to write what it staged; if that fails, the whole batch rolls back and
//! no request is acknowledged. Outside a batch (tests, the CLI's own transactions) nothing is
//! active and callers write directly.

use std::any::Any;
use std::cell::RefCell;

use steward_core::Error;

use crate::connection::DbConnection;

/// Per-batch staged state. One value per type per batch, created on first use.
pub trait BatchLocal: Any {
    /// A unit is about to run in a fresh savepoint.
    fn unit_started(&mut self);
    /// The unit that started last has ended: `kept` false means its savepoint rolled back and
    /// everything it staged must be forgotten.
    fn unit_finished(&mut self, kept: bool);
    /// Writes what is staged, inside the batch transaction, just before it commits.
    fn before_commit(&mut self, conn: &mut DbConnection) -> Result<(), Error>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

#[derive(Default)]
struct Active {
    locals: Vec<Box<dyn BatchLocal>>,
    in_unit: bool,
}

thread_local! {
    static ACTIVE: RefCell<Option<Active>> = const { RefCell::new(None) };
}

/// Whether the current thread is running a committer batch.
pub fn is_active() -> bool {
    ACTIVE.with(|a| a.borrow().is_some())
}

/// Runs `f` on this batch's `T`, creating it on first use; `None` outside a batch.
///
/// `f` must not call `with` again (the state is borrowed for the call).
pub fn with<T, R>(f: impl FnOnce(&mut T) -> R) -> Option<R>
where
    T: BatchLocal + Default,
{
    ACTIVE.with(|a| {
        let mut guard = a.borrow_mut();
        let active = guard.as_mut()?;
        let index = match active
            .locals
            .iter_mut()
            .position(|l| l.as_any_mut().is::<T>())
        {
            Some(i) => i,
            None => {
                let mut fresh = Box::<T>::default();
                // Created in the middle of a unit: that unit's rollback must forget it too.
                if active.in_unit {
                    fresh.unit_started();
                }
                active.locals.push(fresh);
                active.locals.len() - 1
            }
        };
        let local = active.locals[index].as_any_mut().downcast_mut::<T>()?;
        Some(f(local))
    })
}

/// The committer's side: begins a batch on this thread; the batch ends when the guard drops,
/// whatever happened (commit, rollback or panic).
pub(crate) fn begin() -> BatchGuard {
    ACTIVE.with(|a| *a.borrow_mut() = Some(Active::default()));
    BatchGuard { _private: () }
}

pub(crate) struct BatchGuard {
    _private: (),
}

impl BatchGuard {
    pub(crate) fn unit_started(&self) {
        each(|active| {
            active.in_unit = true;
            for l in active.locals.iter_mut() {
                l.unit_started();
            }
        });
    }

    pub(crate) fn unit_finished(&self, kept: bool) {
        each(|active| {
            active.in_unit = false;
            for l in active.locals.iter_mut() {
                l.unit_finished(kept);
            }
        });
    }

    /// Lets every batch-local write what it staged. The locals are taken out of the
    /// thread-local first, so their writes may use the connection freely.
    pub(crate) fn before_commit(&self, conn: &mut DbConnection) -> Result<(), Error> {
        let mut locals = ACTIVE.with(|a| {
            a.borrow_mut()
                .as_mut()
                .map(|active| std::mem::take(&mut active.locals))
                .unwrap_or_default()
        });
        for l in locals.iter_mut() {
            l.before_commit(conn)?;
        }
        Ok(())
    }
}

impl Drop for BatchGuard {
    fn drop(&mut self) {
        ACTIVE.with(|a| *a.borrow_mut() = None);
    }
}

fn each(f: impl FnOnce(&mut Active)) {
    ACTIVE.with(|a| {
        if let Some(active) = a.borrow_mut().as_mut() {
            f(active);
        }
    });
}
