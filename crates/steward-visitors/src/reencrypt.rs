//! Visitors as a re-encryption target: after a data-key rotation, rows sealed under an older
//! version are re-sealed under the current one — off the writer, then written only where the
//! row did not change meanwhile.

use steward_core::Result;
use steward_keys::TenantKeyring;
use steward_store::reencrypt::{ReencryptTarget, ResealedBatch};
use steward_store::DbConnection;

use crate::records;

pub struct VisitorReencryption;

impl ReencryptTarget for VisitorReencryption {
    fn name(&self) -> &'static str {
        "visitors"
    }

    fn prepare(
        &self,
        conn: &mut DbConnection,
        keyring: &TenantKeyring,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Box<dyn ResealedBatch>> {
        let current = i64::from(keyring.current_version());
        let rows = records::sealed_before(conn, keyring.tenant_id(), current, after, limit)?;
        let examined = rows.len() as i64;
        let last = rows.last().map(|r| r.id.clone());
        let resealed = rows
            .into_iter()
            .map(|mut row| {
                let seen = (row.key_version, row.updated_at.0);
                records::reseal(&mut row, keyring)?;
                Ok((row, seen))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(Resealed {
            examined,
            tenant_id: keyring.tenant_id().to_string(),
            last,
            rows: resealed,
        }))
    }

    fn count(&self, conn: &mut DbConnection, tenant_id: &str) -> Result<i64> {
        records::count_active(conn, tenant_id)
    }

    fn remaining(&self, conn: &mut DbConnection, keyring: &TenantKeyring) -> Result<i64> {
        records::count_sealed_before(
            conn,
            keyring.tenant_id(),
            i64::from(keyring.current_version()),
        )
    }
}

struct Resealed {
    examined: i64,
    last: Option<String>,
    tenant_id: String,
    /// Each row re-sealed, with the key version and `updated_at` it had when read.
    rows: Vec<records::Resealed>,
}

impl ResealedBatch for Resealed {
    fn examined(&self) -> i64 {
        self.examined
    }

    fn last(&self) -> Option<String> {
        self.last.clone()
    }

    fn apply(self: Box<Self>, conn: &mut DbConnection) -> Result<i64> {
        records::update_sealed_if_unchanged_many(conn, &self.tenant_id, &self.rows)
    }
}
