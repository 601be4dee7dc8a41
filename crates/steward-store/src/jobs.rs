//! Background jobs (re-encryption after a key rotation, retention purges): rows in `jobs`, one
//! worker thread, resumable. A job advances in steps; after each step its cursor and progress
//! are committed, so a restarted server continues where the last one stopped.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use steward_core::{Clock, Error, Id, Result};

use crate::connection::DbConnection;
use crate::schema::jobs;
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub kind: String,
    pub status: String,
    pub cursor: Option<String>,
    pub done: i64,
    pub total: Option<i64>,
    pub error_code: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub fn enqueue(
    conn: &mut DbConnection,
    kind: &str,
    tenant_id: Option<&str>,
    now: NaiveDateTime,
) -> Result<JobRow> {
    let row = JobRow {
        id: Id::Job.generate(),
        tenant_id: tenant_id.map(str::to_string),
        kind: kind.to_string(),
        status: JobStatus::Pending.as_str().to_string(),
        cursor: None,
        done: 0,
        total: None,
        error_code: None,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(jobs::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<JobRow> {
    jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)
}

/// A job of the tenant, or `NotFound` (also for another tenant's job).
pub fn get_for_tenant(conn: &mut DbConnection, tenant_id: &str, id: &str) -> Result<JobRow> {
    jobs::table
        .find(id)
        .filter(jobs::tenant_id.eq(tenant_id))
        .select(JobRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)
}

/// The oldest unfinished job: running ones first (a previous worker stopped mid-way).
pub fn next_unfinished(conn: &mut DbConnection) -> Result<Option<JobRow>> {
    Ok(jobs::table
        .filter(jobs::status.eq_any([JobStatus::Running.as_str(), JobStatus::Pending.as_str()]))
        .select(JobRow::as_select())
        .order((jobs::status.desc(), jobs::created_at.asc(), jobs::id.asc()))
        .first(conn)
        .optional()?)
}

/// What one step of a job did.
#[derive(Debug, Clone)]
pub struct Step {
    pub cursor: Option<String>,
    pub processed: i64,
    pub total: Option<i64>,
    pub finished: bool,
}

/// A kind of job. `step` does a bounded amount of work after `job.cursor` and must be safe to
/// repeat: a crash between its work and the commit of the new cursor repeats the step.
pub trait JobHandler: Send + Sync {
    fn kind(&self) -> &'static str;
    fn step(&self, store: &Store, job: &JobRow) -> Result<Step>;
}

#[derive(Default)]
struct Wake {
    pending: Mutex<bool>,
    cv: Condvar,
}

/// The single worker and the handlers it knows.
#[derive(Clone)]
pub struct JobRunner {
    store: Store,
    clock: Arc<dyn Clock>,
    handlers: Arc<HashMap<&'static str, Arc<dyn JobHandler>>>,
    wake: Arc<Wake>,
}

impl std::fmt::Debug for JobRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobRunner")
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl JobRunner {
    pub fn new(store: Store, clock: Arc<dyn Clock>, handlers: Vec<Arc<dyn JobHandler>>) -> Self {
        let handlers = handlers.into_iter().map(|h| (h.kind(), h)).collect();
        Self {
            store,
            clock,
            handlers: Arc::new(handlers),
            wake: Arc::new(Wake::default()),
        }
    }

    /// Starts the worker thread. It polls every few seconds and wakes at once on `notify`.
    pub fn spawn(&self) -> std::io::Result<()> {
        let runner = self.clone();
        std::thread::Builder::new()
            .name("steward-jobs".into())
            .spawn(move || loop {
                match runner.run_pending() {
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e.log_cause(), "job worker step failed"),
                }
                let mut pending = runner
                    .wake
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if !*pending {
                    pending = runner
                        .wake
                        .cv
                        .wait_timeout(pending, Duration::from_secs(5))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                *pending = false;
            })?;
        Ok(())
    }

    /// Tells the worker a job was queued.
    pub fn notify(&self) {
        let mut pending = self.wake.pending.lock().unwrap_or_else(|p| p.into_inner());
        *pending = true;
        self.wake.cv.notify_one();
    }

    /// Runs every unfinished job to its end; returns how many finished. Used by the worker
    /// and by CLI commands that run a job in the foreground.
    pub fn run_pending(&self) -> Result<usize> {
        let mut finished = 0;
        while let Some(job) = self.store.read_blocking(next_unfinished)? {
            self.run_to_end(&job.id, &mut |_| {})?;
            finished += 1;
        }
        Ok(finished)
    }

    /// Runs one job until it is done or failed, reporting progress after each step.
    pub fn run_to_end(&self, job_id: &str, progress: &mut dyn FnMut(&JobRow)) -> Result<JobRow> {
        loop {
            let id = job_id.to_string();
            let job = self.store.read_blocking(move |c| get(c, &id))?;
            if job.status == JobStatus::Done.as_str() || job.status == JobStatus::Failed.as_str() {
                return Ok(job);
            }
            let Some(handler) = self.handlers.get(job.kind.as_str()).cloned() else {
                self.fail(&job, "unknown_job_kind")?;
                continue;
            };
            let outcome = handler.step(&self.store, &job);
            let now = self.clock.now().naive_utc();
            match outcome {
                Ok(step) => {
                    let id = job.id.clone();
                    let status = if step.finished {
                        JobStatus::Done
                    } else {
                        JobStatus::Running
                    };
                    let updated = self.store.write_blocking(move |c| {
                        diesel::update(jobs::table.find(&id))
                            .set((
                                jobs::status.eq(status.as_str()),
                                jobs::cursor.eq(step.cursor),
                                jobs::done.eq(jobs::done + step.processed),
                                jobs::total.eq(step.total),
                                jobs::updated_at.eq(now),
                            ))
                            .execute(c)?;
                        get(c, &id)
                    })?;
                    progress(&updated);
                }
                Err(e) => {
                    tracing::error!(job_id = %job.id, kind = %job.kind, error = %e.log_cause(), "job step failed");
                    self.fail(&job, "step_failed")?;
                }
            }
        }
    }

    fn fail(&self, job: &JobRow, code: &'static str) -> Result<()> {
        let id = job.id.clone();
        let now = self.clock.now().naive_utc();
        self.store.write_blocking(move |c| {
            diesel::update(jobs::table.find(&id))
                .set((
                    jobs::status.eq(JobStatus::Failed.as_str()),
                    jobs::error_code.eq(Some(code)),
                    jobs::updated_at.eq(now),
                ))
                .execute(c)?;
            Ok(())
        })
    }
}
