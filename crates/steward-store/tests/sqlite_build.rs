//! The bundled SQLite is built with the options in `.cargo/config.toml` (LIBSQLITE3_FLAGS).
//! Losing them costs no correctness but a large share of throughput (BENCHMARKS.md), silently;
//! this test makes it loud.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel::sqlite::SqliteConnection;

#[derive(QueryableByName)]
struct CompileOption {
    #[diesel(sql_type = Text)]
    compile_options: String,
}

#[test]
fn sqlite_is_built_multi_threaded_with_a_stable_query_planner() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    let options: Vec<String> = diesel::sql_query("PRAGMA compile_options")
        .load::<CompileOption>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|o| o.compile_options)
        .collect();
    for wanted in ["THREADSAFE=2", "DEFAULT_MEMSTATUS=0", "ENABLE_QPSG"] {
        assert!(
            options.iter().any(|o| o == wanted),
            "SQLite lacks {wanted}; is .cargo/config.toml's LIBSQLITE3_FLAGS in effect? {options:?}"
        );
    }
}
