//! Visitors as a re-encryption target: after a data-key rotation, rows sealed under an older
//! version are re-sealed under the current one.

use steward_core::Result;
use steward_keys::TenantKeyring;
use steward_store::reencrypt::ReencryptTarget;
use steward_store::DbConnection;

use crate::records;

pub struct VisitorReencryption;

impl ReencryptTarget for VisitorReencryption {
    fn name(&self) -> &'static str {
        "visitors"
    }

    fn reencrypt_batch(
        &self,
        conn: &mut DbConnection,
        keyring: &TenantKeyring,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(i64, Option<String>)> {
        let current = i64::from(keyring.current_version());
        let rows = records::sealed_before(conn, keyring.tenant_id(), current, after, limit)?;
        let mut last = None;
        for mut row in rows.iter().cloned() {
            records::reseal(&mut row, keyring)?;
            records::update(conn, &row)?;
            last = Some(row.id.clone());
        }
        Ok((rows.len() as i64, last))
    }

    fn count(&self, conn: &mut DbConnection, tenant_id: &str) -> Result<i64> {
        records::count_active(conn, tenant_id)
    }
}
