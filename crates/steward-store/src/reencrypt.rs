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
///
/// A step happens in two halves so the expensive part stays off the single writer: `prepare`
/// reads the next rows still under an older key version and re-seals them in memory, on a read
/// connection; the returned batch's `apply` then writes them in a committer unit, each only if
/// the row is still the one that was read (a write since then already sealed it anew, or erased
/// it). Rows skipped that way are found again by `remaining`, and the job walks once more.
pub trait ReencryptTarget: Send + Sync {
    /// Stable name, stored in job cursors.
    fn name(&self) -> &'static str;
    /// Reads up to `limit` rows of the tenant after row key `after` (in the target's own
    /// stable order) whose values use a key version older than the keyring's current one, and
    /// re-seals them under the current one without writing anything.
    fn prepare(
        &self,
        conn: &mut DbConnection,
        keyring: &TenantKeyring,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Box<dyn ResealedBatch>>;
    /// Rows of the tenant the target holds (for progress totals).
    fn count(&self, conn: &mut DbConnection, tenant_id: &str) -> Result<i64>;
    /// Rows of the tenant still under a key version older than the keyring's current one.
    fn remaining(&self, conn: &mut DbConnection, keyring: &TenantKeyring) -> Result<i64>;
}

/// Rows re-sealed by [`ReencryptTarget::prepare`], waiting to be written.
pub trait ResealedBatch: Send {
    /// Rows read (a batch shorter than the limit means the target is done).
    fn examined(&self) -> i64;
    /// The last row key read, the next step's `after`.
    fn last(&self) -> Option<String>;
    /// Writes the rows that did not change since they were read; returns how many.
    fn apply(self: Box<Self>, conn: &mut DbConnection) -> Result<i64>;
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
        // Always the newest keyring: a rotation may have happened in another process.
        let keyring = store.read_blocking(|conn| self.keys.reload(conn, &tenant_id))?;
        let total = match job.total {
            Some(t) => Some(t),
            None => {
                let mut t = 0;
                for target in &self.targets {
                    t += store.read_blocking(|conn| target.count(conn, &tenant_id))?;
                }
                Some(t)
            }
        };
        let Some(target) = self.targets.get(index).cloned() else {
            return Ok(Step {
                cursor: job.cursor.clone(),
                processed: 0,
                total,
                finished: true,
            });
        };
        let batch =
            store.read_blocking(|conn| target.prepare(conn, &keyring, after.as_deref(), BATCH))?;
        let (processed, last) = (batch.examined(), batch.last());
        store.write_blocking(move |conn| batch.apply(conn))?;

        let (cursor, finished) = match last {
            Some(last) if processed >= BATCH => (format!("{index}:{last}"), false),
            _ if index + 1 < self.targets.len() => (format!("{}:", index + 1), false),
            _ => {
                // The end of the last target: rows changed while they were being re-sealed
                // were skipped; walk again until none is left.
                let mut left = 0;
                for target in &self.targets {
                    left += store.read_blocking(|conn| target.remaining(conn, &keyring))?;
                }
                if left > 0 {
                    tracing::info!(
                        tenant_id = %tenant_id,
                        left,
                        "re-encryption walks again for rows changed meanwhile"
                    );
                    ("0:".to_string(), false)
                } else {
                    (format!("{}:", index + 1), true)
                }
            }
        };
        Ok(Step {
            cursor: Some(cursor),
            processed,
            total,
            finished,
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
