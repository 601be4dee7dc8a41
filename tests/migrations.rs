//! The two migration folders describe the same schema, and every migration reverts cleanly.
//! The comparison runs the embedded migrations on a fresh SQLite file and a fresh PostgreSQL
//! database (when `STEWARD_TEST_POSTGRES_URL` is set) and compares tables, columns, types,
//! nullability, primary keys and indexes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Integer, Text};
use diesel::{PgConnection, SqliteConnection};
use steward_store::migrations::{revert_all, run_next, run_pending};
use steward_store::DbConnection;

const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

/// One column as both backends can describe it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    /// Normalized: text, bigint, binary, timestamp, bool — or `other(<raw>)`.
    kind: String,
    not_null: bool,
}

/// Everything compared between the backends.
#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    /// table → column → description
    columns: BTreeMap<String, BTreeMap<String, Column>>,
    /// table → primary-key columns in order
    primary_keys: BTreeMap<String, Vec<String>>,
    /// (table, index name) → (unique, columns in order); explicit indexes only
    indexes: BTreeMap<(String, String), (bool, Vec<String>)>,
}

impl Schema {
    fn tables(&self) -> BTreeSet<String> {
        self.columns.keys().cloned().collect()
    }
}

/// The portable column types (DESIGN.md "Storage"), named the same for both backends.
fn normalize_type(raw: &str) -> String {
    match raw.trim().to_ascii_lowercase().as_str() {
        "text" => "text".into(),
        "bigint" | "int8" => "bigint".into(),
        "blob" | "bytea" => "binary".into(),
        "timestamp" | "timestamp without time zone" => "timestamp".into(),
        "boolean" | "bool" => "bool".into(),
        other => format!("other({other})"),
    }
}

fn sqlite_schema(conn: &mut SqliteConnection) -> Schema {
    #[derive(QueryableByName)]
    struct Col {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Text)]
        data_type: String,
        #[diesel(sql_type = Integer)]
        not_null: i32,
        #[diesel(sql_type = Integer)]
        pk: i32,
    }
    #[derive(QueryableByName)]
    struct Idx {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        index_name: String,
        #[diesel(sql_type = Integer)]
        is_unique: i32,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    let cols: Vec<Col> = diesel::sql_query(format!(
        "SELECT m.name AS table_name, p.name AS column_name, p.type AS data_type, \
                p.\"notnull\" AS not_null, p.pk AS pk \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '{MIGRATIONS_TABLE}' \
         ORDER BY m.name, p.cid"
    ))
    .load(conn)
    .expect("read SQLite columns");
    let mut schema = Schema::default();
    let mut pks: BTreeMap<String, Vec<(i32, String)>> = BTreeMap::new();
    for c in cols {
        if c.pk > 0 {
            pks.entry(c.table_name.clone())
                .or_default()
                .push((c.pk, c.column_name.clone()));
        }
        schema.columns.entry(c.table_name).or_default().insert(
            c.column_name,
            Column {
                kind: normalize_type(&c.data_type),
                not_null: c.not_null != 0,
            },
        );
    }
    for (table, mut cols) in pks {
        cols.sort();
        schema
            .primary_keys
            .insert(table, cols.into_iter().map(|(_, c)| c).collect());
    }
    // origin 'c': made by CREATE INDEX (not the automatic ones behind PRIMARY KEY / UNIQUE).
    let idx: Vec<Idx> = diesel::sql_query(format!(
        "SELECT m.name AS table_name, il.name AS index_name, il.\"unique\" AS is_unique, \
                ii.name AS column_name \
         FROM sqlite_master m JOIN pragma_index_list(m.name) il \
              JOIN pragma_index_info(il.name) ii \
         WHERE m.type = 'table' AND m.name <> '{MIGRATIONS_TABLE}' AND il.origin = 'c' \
         ORDER BY m.name, il.name, ii.seqno"
    ))
    .load(conn)
    .expect("read SQLite indexes");
    for i in idx {
        let entry = schema
            .indexes
            .entry((i.table_name, i.index_name))
            .or_insert((i.is_unique != 0, Vec::new()));
        entry.1.push(i.column_name);
    }
    schema
}

fn postgres_schema(conn: &mut PgConnection) -> Schema {
    #[derive(QueryableByName)]
    struct Col {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = Text)]
        data_type: String,
        #[diesel(sql_type = Text)]
        is_nullable: String,
    }
    #[derive(QueryableByName)]
    struct Pk {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        column_name: String,
    }
    #[derive(QueryableByName)]
    struct Idx {
        #[diesel(sql_type = Text)]
        table_name: String,
        #[diesel(sql_type = Text)]
        index_name: String,
        #[diesel(sql_type = Bool)]
        is_unique: bool,
        #[diesel(sql_type = Text)]
        column_name: String,
        #[diesel(sql_type = BigInt)]
        ord: i64,
    }
    let cols: Vec<Col> = diesel::sql_query(format!(
        "SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, \
                c.data_type::text AS data_type, c.is_nullable::text AS is_nullable \
         FROM information_schema.columns c \
         JOIN information_schema.tables t \
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' \
               AND c.table_name <> '{MIGRATIONS_TABLE}' \
         ORDER BY c.table_name, c.ordinal_position"
    ))
    .load(conn)
    .expect("read PostgreSQL columns");
    let mut schema = Schema::default();
    for c in cols {
        schema.columns.entry(c.table_name).or_default().insert(
            c.column_name,
            Column {
                kind: normalize_type(&c.data_type),
                not_null: c.is_nullable == "NO",
            },
        );
    }
    let pks: Vec<Pk> = diesel::sql_query(format!(
        "SELECT k.table_name::text AS table_name, k.column_name::text AS column_name \
         FROM information_schema.table_constraints tc \
         JOIN information_schema.key_column_usage k \
              ON k.constraint_name = tc.constraint_name AND k.table_schema = tc.table_schema \
                 AND k.table_name = tc.table_name \
         WHERE tc.table_schema = 'public' AND tc.constraint_type = 'PRIMARY KEY' \
               AND tc.table_name <> '{MIGRATIONS_TABLE}' \
         ORDER BY k.table_name, k.ordinal_position"
    ))
    .load(conn)
    .expect("read PostgreSQL primary keys");
    for pk in pks {
        schema
            .primary_keys
            .entry(pk.table_name)
            .or_default()
            .push(pk.column_name);
    }
    // Explicit indexes only: not the ones behind primary keys or constraints.
    let idx: Vec<Idx> = diesel::sql_query(format!(
        "SELECT t.relname::text AS table_name, i.relname::text AS index_name, \
                ix.indisunique AS is_unique, a.attname::text AS column_name, k.ord AS ord \
         FROM pg_index ix \
         JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(ix.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE n.nspname = 'public' AND t.relname <> '{MIGRATIONS_TABLE}' \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint pc WHERE pc.conindid = ix.indexrelid) \
         ORDER BY t.relname, i.relname, k.ord"
    ))
    .load(conn)
    .expect("read PostgreSQL indexes");
    for i in idx {
        let _ = i.ord;
        let entry = schema
            .indexes
            .entry((i.table_name, i.index_name))
            .or_insert((i.is_unique, Vec::new()));
        entry.1.push(i.column_name);
    }
    schema
}

/// Every way the two schemas differ, one line each.
fn differences(sqlite: &Schema, pg: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for t in sqlite.tables().symmetric_difference(&pg.tables()) {
        let only = if sqlite.columns.contains_key(t) {
            "SQLite"
        } else {
            "PostgreSQL"
        };
        out.push(format!("table {t} exists only in {only}"));
    }
    for (table, s_cols) in &sqlite.columns {
        let Some(p_cols) = pg.columns.get(table) else {
            continue;
        };
        let names: BTreeSet<&String> = s_cols.keys().chain(p_cols.keys()).collect();
        for name in names {
            match (s_cols.get(name), p_cols.get(name)) {
                (Some(s), Some(p)) if s == p => {}
                (Some(s), Some(p)) => out.push(format!(
                    "{table}.{name}: SQLite {} {}, PostgreSQL {} {}",
                    s.kind,
                    if s.not_null { "NOT NULL" } else { "NULL" },
                    p.kind,
                    if p.not_null { "NOT NULL" } else { "NULL" },
                )),
                (Some(_), None) => out.push(format!("{table}.{name} exists only in SQLite")),
                (None, Some(_)) => out.push(format!("{table}.{name} exists only in PostgreSQL")),
                (None, None) => {}
            }
        }
    }
    let tables: BTreeSet<&String> = sqlite
        .primary_keys
        .keys()
        .chain(pg.primary_keys.keys())
        .collect();
    for table in tables {
        let (s, p) = (sqlite.primary_keys.get(table), pg.primary_keys.get(table));
        if s != p {
            out.push(format!(
                "primary key of {table}: SQLite {s:?}, PostgreSQL {p:?}"
            ));
        }
    }
    let indexes: BTreeSet<&(String, String)> =
        sqlite.indexes.keys().chain(pg.indexes.keys()).collect();
    for key in indexes {
        let (s, p) = (sqlite.indexes.get(key), pg.indexes.get(key));
        if s != p {
            out.push(format!(
                "index {} on {}: SQLite {s:?}, PostgreSQL {p:?}",
                key.1, key.0
            ));
        }
    }
    out
}

fn fresh_sqlite(dir: &Path) -> DbConnection {
    let path = dir.join("schema.db");
    let mut conn = SqliteConnection::establish(&path.to_string_lossy()).expect("open SQLite");
    diesel::connection::SimpleConnection::batch_execute(&mut conn, "PRAGMA foreign_keys = ON;")
        .unwrap();
    DbConnection::Sqlite(conn)
}

fn fresh_postgres() -> Option<(common::TestDatabase, DbConnection)> {
    let db = common::TestDatabase::create()?;
    let conn = PgConnection::establish(&db.url).expect("connect to the test database");
    Some((db, DbConnection::Postgres(conn)))
}

fn schema_of(conn: &mut DbConnection) -> Schema {
    match conn {
        DbConnection::Sqlite(c) => sqlite_schema(c),
        DbConnection::Postgres(c) => postgres_schema(c),
    }
}

/// Asserts every column uses one of the portable types the design allows.
fn assert_portable(schema: &Schema, backend: &str) {
    let bad: Vec<String> = schema
        .columns
        .iter()
        .flat_map(|(t, cols)| {
            cols.iter()
                .filter(|(_, c)| c.kind.starts_with("other("))
                .map(move |(n, c)| format!("{t}.{n}: {}", c.kind))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{backend} columns outside Text/BigInt/Binary/Bool/Timestamp:\n{}",
        bad.join("\n")
    );
}

fn migration_folders(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn migration_folders_are_in_lockstep() {
    let sqlite = migration_folders("sqlite");
    let postgres = migration_folders("postgres");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres, "each migration exists for both backends");
    for backend in ["sqlite", "postgres"] {
        for name in &sqlite {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(backend)
                .join(name);
            for file in ["up.sql", "down.sql"] {
                assert!(dir.join(file).is_file(), "{} lacks {file}", dir.display());
            }
        }
    }
}

#[test]
fn sqlite_and_postgres_schemas_match() {
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = fresh_sqlite(dir.path());
    let ran_sqlite = run_pending(&mut sqlite).expect("SQLite migrations");
    assert!(ran_sqlite > 0);
    let s = schema_of(&mut sqlite);
    assert!(s.columns.contains_key("tenants") && s.columns.contains_key("tenant_keys"));
    assert_portable(&s, "SQLite");

    let Some((_db, mut pg)) = fresh_postgres() else {
        eprintln!(
            "skipped the comparison with PostgreSQL: {} is not set",
            common::PG_ENV
        );
        return;
    };
    let ran = run_pending(&mut pg).expect("PostgreSQL migrations");
    assert_eq!(
        ran, ran_sqlite,
        "both backends embed the same number of migrations"
    );
    let p = schema_of(&mut pg);
    assert_portable(&p, "PostgreSQL");

    let diff = differences(&s, &p);
    assert!(
        diff.is_empty(),
        "the SQLite and PostgreSQL migrations describe different schemas:\n  {}",
        diff.join("\n  ")
    );
    assert_eq!(s, p);
}

/// Up, down, up again: the schema comes back the same and works (a tenant can be created).
fn round_trip(conn: &mut DbConnection) {
    let total = run_pending(conn).expect("first up");
    assert!(total > 0);
    let first = schema_of(conn);
    assert!(!first.columns.is_empty());
    assert_eq!(run_pending(conn).expect("idempotent up"), 0);

    revert_all(conn).expect("down");
    let empty = schema_of(conn);
    assert!(
        empty.columns.is_empty(),
        "down leaves tables behind: {:?}",
        empty.tables()
    );
    assert!(empty.indexes.is_empty(), "down leaves indexes behind");

    assert_eq!(run_pending(conn).expect("second up"), total);
    let second = schema_of(conn);
    assert_eq!(
        differences(&first, &second),
        Vec::<String>::new(),
        "schema after up → down → up differs"
    );
    assert_eq!(first, second);

    // The re-created schema works: a tenant and its keys can be stored.
    let kek = steward_keys::LocalKek::generate().unwrap();
    let now = steward_core::Clock::now(&steward_core::SystemClock).naive_utc();
    let t = steward_store::tenants::create(conn, &kek, "Round trip".into(), now).unwrap();
    let keyring = steward_store::keys::load(conn, &kek, &t.id).unwrap();
    assert_eq!(keyring.current_version(), 1);
}

#[test]
fn up_down_up_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = fresh_sqlite(dir.path());
    round_trip(&mut conn);
}

#[test]
fn up_down_up_postgres() {
    let Some((_db, mut conn)) = fresh_postgres() else {
        eprintln!("skipped: {} is not set", common::PG_ENV);
        return;
    };
    round_trip(&mut conn);
}

/// Runs migrations one at a time up to and including `version`, so a test can fill the
/// schema as it stood then before the next migration runs.
fn migrate_through(conn: &mut DbConnection, version: &str) {
    loop {
        let name = run_next(conn)
            .unwrap()
            .unwrap_or_else(|| panic!("no migration {version}"));
        if name == version {
            return;
        }
    }
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A database made before the target index had runs: migration 000008 turns each chain's
/// existing events into one run, so they are found by target without a scan, and drops the
/// old index.
fn target_index_backfill(conn: &mut DbConnection) {
    migrate_through(conn, "20261121000007");
    conn.execute_batch(
        "INSERT INTO audit_heads (chain_id, seq, hash, updated_at) VALUES \
           ('ten_a', 3, '', '2026-11-21 00:00:00'), ('ten_b', 1, '', '2026-11-21 00:00:00'); \
         INSERT INTO audit_events (chain_id, seq, id, prev_hash, hash, occurred_at, actor_kind, \
           actor_id, actor_role, action, target_kind, target_id, fields, outcome) VALUES \
           ('ten_a', 1, 'evt_1', '', '', '2026-11-21 00:00:00', 'user', 'u', 'r', 'a', 'visitor', 'vis_1', '', 'ok'), \
           ('ten_a', 2, 'evt_2', '', '', '2026-11-21 00:00:00', 'user', 'u', 'r', 'a', 'tenant', NULL, '', 'ok'), \
           ('ten_a', 3, 'evt_3', '', '', '2026-11-21 00:00:00', 'user', 'u', 'r', 'a', 'visitor', 'vis_1', '', 'ok'), \
           ('ten_b', 1, 'evt_4', '', '', '2026-11-21 00:00:00', 'user', 'u', 'r', 'a', 'visitor', 'vis_2', '', 'ok');",
    )
    .unwrap();
    let ran = run_next(conn).unwrap().expect("the target index migration");
    assert_eq!(ran, "20261129000008");

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Entry {
        #[diesel(sql_type = Text)]
        chain_id: String,
        #[diesel(sql_type = BigInt)]
        run_end: i64,
        #[diesel(sql_type = Text)]
        target_id: String,
        #[diesel(sql_type = BigInt)]
        seq: i64,
    }
    let entries: Vec<Entry> = diesel::sql_query(
        "SELECT chain_id, run_end, target_id, seq FROM audit_target_entries \
         ORDER BY chain_id, run_end, target_id, seq",
    )
    .load(conn)
    .unwrap();
    let e = |c: &str, end, t: &str, seq| Entry {
        chain_id: c.into(),
        run_end: end,
        target_id: t.into(),
        seq,
    };
    assert_eq!(
        entries,
        [
            e("ten_a", 3, "vis_1", 1),
            e("ten_a", 3, "vis_1", 3),
            e("ten_b", 1, "vis_2", 1)
        ]
    );
    #[derive(QueryableByName, Debug, PartialEq)]
    struct Run {
        #[diesel(sql_type = Text)]
        chain_id: String,
        #[diesel(sql_type = BigInt)]
        run_start: i64,
        #[diesel(sql_type = BigInt)]
        run_end: i64,
    }
    let runs: Vec<Run> = diesel::sql_query(
        "SELECT chain_id, run_start, run_end FROM audit_target_runs ORDER BY chain_id",
    )
    .load(conn)
    .unwrap();
    assert_eq!(
        runs,
        [
            Run {
                chain_id: "ten_a".into(),
                run_start: 0,
                run_end: 3
            },
            Run {
                chain_id: "ten_b".into(),
                run_start: 0,
                run_end: 1
            }
        ]
    );
    let schema = schema_of(conn);
    assert!(!schema
        .indexes
        .keys()
        .any(|(_, name)| name == "audit_events_target"));
}

#[test]
fn target_index_backfill_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = fresh_sqlite(dir.path());
    target_index_backfill(&mut conn);
}

#[test]
fn target_index_backfill_postgres() {
    let Some((_db, mut conn)) = fresh_postgres() else {
        eprintln!("skipped: {} is not set", common::PG_ENV);
        return;
    };
    target_index_backfill(&mut conn);
}

/// The names of `table`'s indexes (not its primary key) once every migration has run.
fn indexes_of(conn: &mut DbConnection, table: &str) -> Vec<String> {
    run_pending(conn).unwrap();
    schema_of(conn)
        .indexes
        .keys()
        .filter(|(t, _)| t == table)
        .map(|(_, name)| name.clone())
        .collect()
}

/// The audit log keeps only the indexes its queries use (seq order is the primary key; time
/// windows use `audit_events_occurred`; targets have their own runs): every index is a B-tree
/// insert per event on the path of each audited read. Migration 000009 dropped the unused one
/// on `id`.
fn audit_events_indexes(conn: &mut DbConnection) -> Vec<String> {
    indexes_of(conn, "audit_events")
}

#[test]
fn audit_events_indexes_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = fresh_sqlite(dir.path());
    assert_eq!(audit_events_indexes(&mut conn), ["audit_events_occurred"]);
}

#[test]
fn audit_events_indexes_postgres() {
    let Some((_db, mut conn)) = fresh_postgres() else {
        eprintln!("skipped: {} is not set", common::PG_ENV);
        return;
    };
    assert_eq!(audit_events_indexes(&mut conn), ["audit_events_occurred"]);
}

/// Visitors keep the indexes their queries use. Migration 000011 dropped the one on
/// `(tenant_id, key_version)`: re-encryption walks the primary key, and on PostgreSQL without
/// statistics the index drew the re-seal UPDATE away from the primary key into a scan of the
/// tenant's old rows per row written.
fn visitors_indexes(conn: &mut DbConnection) -> Vec<String> {
    indexes_of(conn, "visitors")
}

const VISITORS_INDEXES: [&str; 4] = [
    "visitors_activity",
    "visitors_email",
    "visitors_external_ref",
    "visitors_phone",
];

#[test]
fn visitors_indexes_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = fresh_sqlite(dir.path());
    assert_eq!(visitors_indexes(&mut conn), VISITORS_INDEXES);
}

#[test]
fn visitors_indexes_postgres() {
    let Some((_db, mut conn)) = fresh_postgres() else {
        eprintln!("skipped: {} is not set", common::PG_ENV);
        return;
    };
    assert_eq!(visitors_indexes(&mut conn), VISITORS_INDEXES);
}

/// Migration 000010 keeps every recipient (SQLite rebuilds the table WITHOUT ROWID; PostgreSQL
/// has nothing to change) and, on SQLite, leaves `transfer_recipients` one B-tree: a pull
/// writes a recipient per pulled visitor, and a rowid table made that two B-tree inserts.
fn recipients_survive_000010(conn: &mut DbConnection) {
    migrate_through(conn, "20261129000009");
    conn.execute_batch(
        "INSERT INTO tenants (id, name, status, created_at, updated_at) VALUES \
           ('ten_a', 'A', 'active', '2026-11-21 00:00:00', '2026-11-21 00:00:00'); \
         INSERT INTO subprocessors (id, name, legal_name, country, contact, transfer_mechanism, \
           dpa_reference, status, created_at, updated_at) VALUES \
           ('sub_a', 'Carrier', 'Carrier Ltd', 'GB', 'dpo@carrier.example', 'adequacy', 'DPA-1', \
            'active', '2026-11-21 00:00:00', '2026-11-21 00:00:00'); \
         INSERT INTO transfer_recipients (tenant_id, visitor_id, subprocessor_id, fields, \
           first_at, last_at) VALUES \
           ('ten_a', 'vis_2', 'sub_a', 'email,name', '2026-11-21 00:00:00', '2026-11-22 00:00:00'), \
           ('ten_a', 'vis_1', 'sub_a', 'name', '2026-11-21 00:00:00', '2026-11-21 00:00:00');",
    )
    .unwrap();
    let ran = run_next(conn).unwrap().expect("the recipients migration");
    assert_eq!(ran, "20261203000010");

    #[derive(QueryableByName, Debug, PartialEq)]
    struct Recipient {
        #[diesel(sql_type = Text)]
        visitor_id: String,
        #[diesel(sql_type = Text)]
        fields: String,
    }
    let rows: Vec<Recipient> = diesel::sql_query(
        "SELECT visitor_id, fields FROM transfer_recipients \
         WHERE tenant_id = 'ten_a' AND subprocessor_id = 'sub_a' ORDER BY visitor_id",
    )
    .load(conn)
    .unwrap();
    let r = |v: &str, f: &str| Recipient {
        visitor_id: v.into(),
        fields: f.into(),
    };
    assert_eq!(rows, [r("vis_1", "name"), r("vis_2", "email,name")]);
    // The key still holds: a second row for the same visitor and subprocessor is refused.
    assert!(conn
        .execute_batch(
            "INSERT INTO transfer_recipients (tenant_id, visitor_id, subprocessor_id, fields, \
               first_at, last_at) VALUES \
               ('ten_a', 'vis_1', 'sub_a', 'email', '2026-11-23 00:00:00', '2026-11-23 00:00:00');"
        )
        .is_err());
}

#[test]
fn recipients_survive_000010_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = fresh_sqlite(dir.path());
    recipients_survive_000010(&mut conn);
    #[derive(QueryableByName)]
    struct Sql {
        #[diesel(sql_type = Text)]
        sql: String,
    }
    let DbConnection::Sqlite(c) = &mut conn else {
        unreachable!("fresh_sqlite opens SQLite");
    };
    let table: Sql = diesel::sql_query(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'transfer_recipients'",
    )
    .get_result(c)
    .unwrap();
    assert!(
        table.sql.trim_end().ends_with("WITHOUT ROWID"),
        "{}",
        table.sql
    );
    // No separate primary-key index any more: the table is that B-tree.
    let autoindexes: i64 = diesel::sql_query(
        "SELECT count(*) AS n FROM sqlite_schema WHERE tbl_name = 'transfer_recipients' \
         AND type = 'index'",
    )
    .get_result::<Count>(c)
    .unwrap()
    .n;
    assert_eq!(autoindexes, 0);
}

#[test]
fn recipients_survive_000010_postgres() {
    let Some((_db, mut conn)) = fresh_postgres() else {
        eprintln!("skipped: {} is not set", common::PG_ENV);
        return;
    };
    recipients_survive_000010(&mut conn);
}
