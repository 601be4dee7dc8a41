//! A startup warning when PostgreSQL's autovacuum is off.
//!
//! PostgreSQL plans from table statistics, and autovacuum is what gathers them after rows
//! arrive. Without statistics a tenant of 100,000 visitors looks like a few hundred rows, and
//! the planner reads a page of visitors by scanning and sorting everything after the cursor
//! instead of walking the primary key: pulls, exports and re-encryption then cost the whole
//! tenant per page (a pull ran 24,000 records/s on such a database against 34,600 after
//! `ANALYZE`). Steward does not run `ANALYZE` behind the operator's back; it says so.

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::PgConnection;

use crate::connection::DbConnection;

#[derive(QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    setting: String,
}

/// Whether the server runs autovacuum (`autovacuum = on`).
pub fn autovacuum_is_on(conn: &mut PgConnection) -> QueryResult<bool> {
    setting_is_on(conn, "autovacuum")
}

/// Whether the boolean setting `name` is `on` for this session.
fn setting_is_on(conn: &mut PgConnection, name: &str) -> QueryResult<bool> {
    let s: Setting = diesel::sql_query("SELECT current_setting($1) AS setting")
        .bind::<Text, _>(name)
        .get_result(conn)?;
    Ok(s.setting == "on")
}

/// Logs a warning if the connection is PostgreSQL with autovacuum off; SQLite has nothing to
/// check. A failed check is logged and otherwise ignored: it is advice, not a precondition.
pub(crate) fn warn_if_off(conn: &mut DbConnection) {
    let DbConnection::Postgres(pg) = conn else {
        return;
    };
    match autovacuum_is_on(pg) {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            "PostgreSQL autovacuum is off: the planner gets no table statistics after bulk \
             loads and may scan a whole tenant per page; turn autovacuum on, or run ANALYZE \
             after large imports"
        ),
        Err(e) => tracing::warn!(error = %e, "could not read PostgreSQL's autovacuum setting"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use diesel::connection::SimpleConnection;

    use super::*;

    /// A session-settable boolean read both ways: the reading follows the setting.
    #[test]
    fn reads_a_setting_both_ways() {
        let Some(db) = crate::testing::TestDatabase::create() else {
            return;
        };
        let mut c = PgConnection::establish(&db.url).unwrap();
        c.batch_execute("SET enable_seqscan = off").unwrap();
        assert!(!setting_is_on(&mut c, "enable_seqscan").unwrap());
        c.batch_execute("SET enable_seqscan = on").unwrap();
        assert!(setting_is_on(&mut c, "enable_seqscan").unwrap());
    }

    /// Autovacuum's reading matches the server's real setting, whichever it is.
    #[test]
    fn reads_the_server_setting() {
        let Some(db) = crate::testing::TestDatabase::create() else {
            return;
        };
        let mut c = PgConnection::establish(&db.url).unwrap();
        #[derive(QueryableByName)]
        struct On {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            on: bool,
        }
        let expected: On = diesel::sql_query(
            "SELECT setting = 'on' AS on FROM pg_settings WHERE name = 'autovacuum'",
        )
        .get_result(&mut c)
        .unwrap();
        assert_eq!(autovacuum_is_on(&mut c).unwrap(), expected.on);
    }
}
