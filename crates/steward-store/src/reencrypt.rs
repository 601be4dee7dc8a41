//! Re-encryption after a data-key rotation: walks every table that holds sealed values and
//! re-seals values under old key versions with the current one. Tables plug in as
//! `ReencryptTarget`s; the job's cursor names the target and the last row done, so it resumes.

use std::sync::Arc;

use steward_core::{Error, Result};
use steward_keys::TenantKeyring;

use crate::connection::DbConnection;
use crate::jobs::{JobHandler, JobRow, Step};
use crate::keys::KeyService;
use crate::store::Store;

pub const KIND: &str = "reencrypt";

/// Rows processed per step (one transaction each).
const BATCH: i64 = 500;

/// A table with sealed values.
pub trait ReencryptTarget: Send + Sync {
    /// Stable name, stored in job cursors.
    fn name(&self) -> &'static str;
    /// Re-seals up to `limit` rows of the tenant after row key `after` (in the target's own
    /// stable order) whose values use a key version older than the keyring's current one.
    /// Returns how many rows were examined and the last row key examined (`None`: no more).
    fn reencrypt_batch(
        &self,
        conn: &mut DbConnection,
        keyring: &TenantKeyring,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(i64, Option<String>)>;
    /// Rows of the tenant the target holds (for progress totals).
    fn count(&self, conn: &mut DbConnection, tenant_id: &str) -> Result<i64>;
}

pub struct ReencryptJob {
    keys: KeyService,
    targets: Vec<Arc<dyn ReencryptTarget>>,
}

impl ReencryptJob {
    pub fn new(keys: KeyService, targets: Vec<Arc<dyn ReencryptTarget>>) -> Self {
        Self { keys, targets }
    }
}

/// `target_index:last_key`, or `target_index:` at the start of a target.
fn parse_cursor(cursor: Option<&str>) -> (usize, Option<String>) {
    match cursor.and_then(|c| c.split_once(':')) {
        Some((i, rest)) => (
            i.parse().unwrap_or(0),
            (!rest.is_empty()).then(|| rest.to_string()),
        ),
        None => (0, None),
    }
}

impl JobHandler for ReencryptJob {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn step(&self, store: &Store, job: &JobRow) -> Result<Step> {
        let tenant_id = job
            .tenant_id
            .clone()
            .ok_or_else(|| Error::internal_msg("re-encryption job without tenant"))?;
        let (index, after) = parse_cursor(job.cursor.as_deref());
        let Some(target) = self.targets.get(index).cloned() else {
            return Ok(Step {
                cursor: job.cursor.clone(),
                processed: 0,
                total: job.total,
                finished: true,
            });
        };
        let keys = self.keys.clone();
        let targets = self.targets.clone();
        let first_step = job.total.is_none();
        store
            .write_blocking(move |conn| {
                // Always the newest keyring: a rotation may have happened in another process.
                let keyring = keys.reload(conn, &tenant_id)?;
                let total = if first_step {
                    let mut t = 0;
                    for target in &targets {
                        t += target.count(conn, &tenant_id)?;
                    }
                    Some(t)
                } else {
                    None
                };
                let (processed, last) =
                    target.reencrypt_batch(conn, &keyring, after.as_deref(), BATCH)?;
                let (cursor, finished) = match last {
                    Some(last) if processed >= BATCH => (format!("{index}:{last}"), false),
                    _ => (format!("{}:", index + 1), index + 1 >= targets.len()),
                };
                Ok(Step {
                    cursor: Some(cursor),
                    processed,
                    total,
                    finished,
                })
            })
            .map(|mut s| {
                if s.total.is_none() {
                    s.total = job.total;
                }
                s
            })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cursor;

    #[test]
    fn cursors() {
        assert_eq!(parse_cursor(None), (0, None));
        assert_eq!(parse_cursor(Some("1:")), (1, None));
        assert_eq!(parse_cursor(Some("0:vis_x")), (0, Some("vis_x".into())));
    }
}
