//! Retention: a tenant may set `retention_days`; visitors inactive for longer are erased by a
//! background job, except those under legal hold. Each erasure is audited like any other, with
//! the system as the actor.

use std::sync::Arc;

use chrono::Duration;
use steward_core::{Clock, Error, Result};
use steward_store::jobs::{JobHandler, JobRow, Step};
use steward_store::{tenants, Store};

use crate::disclose::Access;
use crate::records;
use crate::service::{erase_in, VisitorHooks};

pub const KIND: &str = "retention_purge";
const BATCH: i64 = 200;

pub struct RetentionJob {
    clock: Arc<dyn Clock>,
    hooks: Vec<Arc<dyn VisitorHooks>>,
}

impl RetentionJob {
    pub fn new(clock: Arc<dyn Clock>, hooks: Vec<Arc<dyn VisitorHooks>>) -> Self {
        Self { clock, hooks }
    }
}

impl JobHandler for RetentionJob {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn step(&self, store: &Store, job: &JobRow) -> Result<Step> {
        let tenant_id = job
            .tenant_id
            .clone()
            .ok_or_else(|| Error::internal_msg("retention job without tenant"))?;
        let now = self.clock.now().naive_utc();
        let after = job.cursor.clone();
        let hooks = self.hooks.clone();
        store.write_blocking(move |conn| {
            let tenant = tenants::get(conn, &tenant_id)?;
            let Some(days) = tenant.retention_days else {
                return Ok(Step {
                    cursor: None,
                    processed: 0,
                    total: Some(0),
                    finished: true,
                });
            };
            let cutoff = now - Duration::days(days);
            let rows = records::inactive_since(conn, &tenant_id, cutoff, after.as_deref(), BATCH)?;
            let access = Access::system("retention").with_purpose("retention");
            let mut last = None;
            for row in &rows {
                erase_in(conn, &tenant_id, &row.id, &access, &hooks, now)?;
                last = Some(row.id.clone());
            }
            let processed = rows.len() as i64;
            Ok(Step {
                cursor: last,
                processed,
                total: None,
                finished: processed < BATCH,
            })
        })
    }
}

/// Queues a purge for every tenant with a retention period and no purge already queued.
/// The server calls it on a timer; returns how many jobs were queued.
pub fn schedule_due(store: &Store, now: chrono::NaiveDateTime) -> Result<usize> {
    use diesel::prelude::*;
    use steward_store::schema::{jobs, tenants as t};
    store.write_blocking(move |conn| {
        let due: Vec<String> = t::table
            .filter(t::retention_days.is_not_null())
            .filter(t::keys_destroyed_at.is_null())
            .filter(t::status.eq("active"))
            .select(t::id)
            .load(conn)?;
        let mut queued = 0;
        for tenant_id in due {
            let pending: i64 = jobs::table
                .filter(jobs::kind.eq(KIND))
                .filter(jobs::tenant_id.eq(&tenant_id))
                .filter(jobs::status.eq_any(["pending", "running"]))
                .count()
                .get_result(conn)?;
            if pending == 0 {
                steward_store::jobs::enqueue(conn, KIND, Some(&tenant_id), now)?;
                queued += 1;
            }
        }
        Ok(queued)
    })
}
