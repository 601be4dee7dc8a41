//! End-to-end: the operator's key commands, run as the real `steward` binary on a data dir
//! (SQLite, and PostgreSQL when `STEWARD_TEST_POSTGRES_URL` is set): `migrate`,
//! `keys rotate-master` (file mode, resumed after a crash, environment mode), `keys destroy`,
//! and the start-up refusal of a master key that does not fit the database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use diesel::prelude::*;
use steward_api::state::StartupError;
use steward_api::{AppState, Config};
use steward_core::{Clock, ManualClock};
use steward_keys::{
    key_wrap_aad, KekProvider, KeyPurpose, LocalKek, RecordKind, SealContext, WrappedKey,
    MASTER_KEY_FILE,
};
use steward_store::keys::{self, TenantKeyRow};
use steward_store::platform_keys::PlatformKeyRow;
use steward_store::schema::{platform_keys, tenant_keys};
use steward_store::{DbConnection, Store};

/// Runs a test body once on SQLite and once on PostgreSQL (skipped without the env var).
macro_rules! cli_test {
    ($name:ident, |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                let $env = Env::new(false).expect("sqlite env");
                $body
            }

            #[test]
            fn postgres() {
                let Some($env) = Env::new(true) else {
                    eprintln!("skipped: {} is not set", common::PG_ENV);
                    return;
                };
                $body
            }
        }
    };
}

/// A data dir (and, for PostgreSQL, a database of its own) the binary and the test share.
struct Env {
    dir: tempfile::TempDir,
    pg: Option<common::TestDatabase>,
}

/// One tenant made for a test, with values sealed under its keys.
struct Seeded {
    id: String,
    /// (record id, sealed value, plaintext)
    values: Vec<(String, Vec<u8>, Vec<u8>)>,
}

impl Env {
    fn new(postgres: bool) -> Option<Self> {
        let pg = if postgres {
            Some(common::TestDatabase::create()?)
        } else {
            None
        };
        Some(Self {
            dir: tempfile::tempdir().expect("temp dir"),
            pg,
        })
    }

    fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    fn key_file(&self) -> PathBuf {
        self.data_dir().join(MASTER_KEY_FILE)
    }

    fn next_file(&self) -> PathBuf {
        self.data_dir().join(format!("{MASTER_KEY_FILE}.next"))
    }

    fn config(&self) -> Config {
        let mut config = Config::with_data_dir(self.data_dir());
        config.database_url = self.pg.as_ref().map(|d| d.url.clone());
        config.pool_size = 4;
        config
    }

    fn config_with_key(&self, b64: &str) -> Config {
        let mut config = self.config();
        config.master_key = Some(steward_keys::Zeroizing::new(b64.to_string()));
        config
    }

    /// The binary with `args`, the data dir and (for PostgreSQL) the database URL; no key or
    /// database settings inherited from the test's environment.
    fn steward(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
        cmd.args(args).arg("--data-dir").arg(self.data_dir());
        if let Some(pg) = &self.pg {
            cmd.arg("--database-url").arg(&pg.url);
        }
        for var in [
            "STEWARD_MASTER_KEY",
            "STEWARD_NEW_MASTER_KEY",
            "STEWARD_PREVIOUS_MASTER_KEY",
            "STEWARD_MASTER_KEY_FILE",
            "STEWARD_DATA_DIR",
            "DATABASE_URL",
            "STEWARD_SQLITE_SYNC",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// An open store on the same database, for assertions (no master key involved).
    fn store(&self) -> Store {
        let url = self.config().database_url().expect("database url");
        Store::open(&url, steward_store::PoolOptions::default()).expect("open store")
    }

    fn conn(&self, store: &Store) -> steward_store::pool::PooledConnection {
        store.pool().get().expect("connection")
    }

    /// Creates `n` tenants through the app's own code, rotates the first one's data key, and
    /// seals a value per tenant (two for the rotated one: under v1 and v2).
    fn seed(&self, config: &Config, n: usize) -> Vec<Seeded> {
        let clock = ManualClock::starting_now();
        let state = AppState::build_without_worker(config, Arc::new(clock.clone()))
            .expect("build app state");
        let mut out = Vec::new();
        for i in 0..n {
            let now = clock.now().naive_utc();
            let kek = state.keys.kek_arc();
            let row = state
                .store
                .write_blocking(move |c| {
                    steward_store::tenants::create(c, kek.as_ref(), format!("Shop {i}"), now)
                })
                .expect("create tenant");
            let mut conn = state.store.pool().get().unwrap();
            let plain = format!("visitor{i}@example.com").into_bytes();
            let keyring = state.keys.keyring(&mut conn, &row.id).unwrap();
            let sealed = keyring.seal(&ctx(&row.id, "vis_1"), &plain).unwrap();
            out.push(Seeded {
                id: row.id,
                values: vec![("vis_1".to_string(), sealed, plain)],
            });
        }
        if let Some(first) = out.first_mut() {
            let tid = first.id.clone();
            let kek = state.keys.kek_arc();
            let now = clock.now().naive_utc();
            let version = state
                .store
                .write_blocking(move |c| keys::rotate_data_key(c, kek.as_ref(), &tid, now))
                .expect("rotate data key");
            assert_eq!(version, 2);
            let mut conn = state.store.pool().get().unwrap();
            let keyring = state.keys.reload(&mut conn, &first.id).unwrap();
            let plain = b"second@example.com".to_vec();
            let sealed = keyring.seal(&ctx(&first.id, "vis_2"), &plain).unwrap();
            assert_eq!(steward_keys::sealed::key_version_of(&sealed).unwrap(), 2);
            first.values.push(("vis_2".to_string(), sealed, plain));
        }
        out
    }
}

fn ctx<'a>(tid: &'a str, record: &'a str) -> SealContext<'a> {
    SealContext::new(tid, RecordKind::Visitor, record, "email")
}

fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("run steward");
    eprintln!(
        "$ {:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn all_rows(conn: &mut DbConnection) -> Vec<TenantKeyRow> {
    tenant_keys::table
        .select(TenantKeyRow::as_select())
        .order((
            tenant_keys::tenant_id.asc(),
            tenant_keys::purpose.asc(),
            tenant_keys::version.asc(),
        ))
        .load(conn)
        .expect("read tenant_keys")
}

/// Asserts every tenant's keys are wrapped by `new` only: each keyring loads with it and opens
/// the tenant's values, and `old` unwraps nothing — neither by id nor by trying its key on the
/// stored bytes.
fn assert_only_under(env: &Env, seeded: &[Seeded], new: &LocalKek, old: &LocalKek) {
    let store = env.store();
    let mut conn = env.conn(&store);
    let rows = all_rows(&mut conn);
    assert_eq!(rows.len(), seeded.len() * 2 + 1, "no key row lost or added");
    for row in &rows {
        assert_eq!(row.kek_id, new.kek_id(), "row still under another KEK");
        let purpose: KeyPurpose = row.purpose.parse().unwrap();
        let aad = key_wrap_aad(&row.tenant_id, purpose, row.version as u32);
        assert!(
            old.unwrap(
                &WrappedKey {
                    kek_id: old.kek_id(),
                    bytes: row.wrapped.clone(),
                },
                &aad
            )
            .is_err(),
            "the old master key still unwraps a row"
        );
    }
    // The platform's own keys (token signing) moved too, and still open.
    let platform: Vec<PlatformKeyRow> = platform_keys::table
        .select(PlatformKeyRow::as_select())
        .load(&mut *conn)
        .expect("read platform_keys");
    for row in &platform {
        assert_eq!(
            row.kek_id,
            new.kek_id(),
            "platform key {} still under another KEK",
            row.id
        );
        assert!(steward_store::platform_keys::open(new, row).is_ok());
        assert!(steward_store::platform_keys::open(old, row).is_err());
    }
    for t in seeded {
        let keyring = keys::load(&mut conn, new, &t.id).expect("keyring loads with the new key");
        for (record, sealed, plain) in &t.values {
            assert_eq!(
                keyring
                    .open(&ctx(&t.id, record), sealed)
                    .unwrap()
                    .as_slice(),
                plain.as_slice(),
                "tenant {} value {record} opens after the rotation",
                t.id
            );
        }
        assert!(
            keys::load(&mut conn, old, &t.id).is_err(),
            "the old master key loads tenant {}",
            t.id
        );
    }
}

/// How many migrations the build embeds: run them on a scratch SQLite database in-process
/// (the test and the binary are built from the same sources; the folders are kept in lockstep,
/// which tests/migrations.rs checks).
fn embedded_migrations() -> usize {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("count.db");
    let conn = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    let mut conn = DbConnection::Sqlite(conn);
    steward_store::migrations::run_pending(&mut conn).unwrap()
}

cli_test!(migrate_reports_what_it_ran, |env| {
    let expected = embedded_migrations();
    assert!(expected >= 1);
    let first = run(env.steward(&["migrate"]));
    assert!(first.status.success());
    assert!(
        stdout(&first).starts_with(&format!("{expected} migration(s) applied")),
        "{}",
        stdout(&first)
    );
    let second = run(env.steward(&["migrate"]));
    assert!(second.status.success());
    assert!(
        stdout(&second).starts_with("0 migration(s) applied"),
        "{}",
        stdout(&second)
    );
    // The migrated database is usable: the app starts on it.
    let state =
        AppState::build_without_worker(&env.config(), Arc::new(ManualClock::starting_now()));
    assert!(state.is_ok(), "{:?}", state.err());
});

cli_test!(rotate_master_rewraps_every_tenant_key, |env| {
    let seeded = env.seed(&env.config(), 3);
    let old_text = std::fs::read_to_string(env.key_file()).unwrap();
    let old = LocalKek::from_base64(&old_text).unwrap();

    let out = run(env.steward(&["keys", "rotate-master"]));
    assert!(out.status.success(), "rotate-master failed");
    assert!(
        stdout(&out).contains("Re-wrapped 7 tenant key(s)"),
        "3 tenants x (data + index) + 1 rotated data key: {}",
        stdout(&out)
    );

    let new_text = std::fs::read_to_string(env.key_file()).unwrap();
    assert_ne!(new_text.trim(), old_text.trim(), "master.key was replaced");
    assert!(!env.next_file().exists(), "no master.key.next remains");
    let new = LocalKek::from_base64(&new_text).unwrap();
    assert_ne!(new.kek_id(), old.kek_id());
    assert_only_under(&env, &seeded, &new, &old);

    // The server starts with the new key file, and refuses the old key.
    let state =
        AppState::build_without_worker(&env.config(), Arc::new(ManualClock::starting_now()));
    assert!(state.is_ok(), "{:?}", state.err());
    drop(state);
    let refused = AppState::build_without_worker(
        &env.config_with_key(&old_text),
        Arc::new(ManualClock::starting_now()),
    );
    assert!(
        matches!(refused, Err(StartupError::WrongMasterKey { .. })),
        "{refused:?}"
    );

    // Running it again rotates again (and nothing is lost).
    let again = run(env.steward(&["keys", "rotate-master"]));
    assert!(again.status.success());
    let newer = LocalKek::from_file(&env.key_file()).unwrap();
    assert_only_under(&env, &seeded, &newer, &new);
});

cli_test!(rotate_master_resumes_after_a_crash, |env| {
    let seeded = env.seed(&env.config(), 3);
    let old_text = std::fs::read_to_string(env.key_file()).unwrap();
    let old = LocalKek::from_base64(&old_text).unwrap();

    // A rotation that died half-way: the new key is in master.key.next and only some rows are
    // re-wrapped.
    let new = LocalKek::generate().unwrap();
    steward_keys::write_key_file(&env.next_file(), &new).unwrap();
    let provider = LocalKek::from_base64(&new.to_base64())
        .unwrap()
        .with_previous(LocalKek::from_base64(&old_text).unwrap());
    {
        let store = env.store();
        let mut conn = env.conn(&store);
        let some = keys::rows_not_under(&mut conn, &new.kek_id(), 3).unwrap();
        assert_eq!(some.len(), 3);
        for row in &some {
            keys::rewrap_row(&mut conn, &provider, row).unwrap();
        }
        let rows = all_rows(&mut conn);
        let under_new = rows.iter().filter(|r| r.kek_id == new.kek_id()).count();
        let under_old = rows.iter().filter(|r| r.kek_id == old.kek_id()).count();
        assert_eq!((under_new, under_old), (3, 4), "a half-done rotation");
    }

    // The server still starts (both keys loaded) and every tenant's data reads.
    {
        let state =
            AppState::build_without_worker(&env.config(), Arc::new(ManualClock::starting_now()))
                .expect("a half-done rotation must not stop the server");
        let mut conn = state.store.pool().get().unwrap();
        for t in &seeded {
            let keyring = state.keys.keyring(&mut conn, &t.id).unwrap();
            for (record, sealed, plain) in &t.values {
                assert_eq!(
                    keyring
                        .open(&ctx(&t.id, record), sealed)
                        .unwrap()
                        .as_slice(),
                    plain.as_slice()
                );
            }
        }
    }

    let out = run(env.steward(&["keys", "rotate-master"]));
    assert!(out.status.success(), "resumed rotate-master failed");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resuming"),
        "says it resumes"
    );
    assert!(
        stdout(&out).contains("Re-wrapped 4 tenant key(s)"),
        "{}",
        stdout(&out)
    );
    assert!(!env.next_file().exists(), "no master.key.next remains");
    let now_text = std::fs::read_to_string(env.key_file()).unwrap();
    assert_eq!(
        now_text.trim(),
        new.to_base64().trim(),
        "the .next key became the master key"
    );
    assert_only_under(&env, &seeded, &new, &old);
});

cli_test!(rotate_master_with_keys_in_the_environment, |env| {
    let old = LocalKek::generate().unwrap();
    let new = LocalKek::generate().unwrap();
    let old_b64 = old.to_base64().to_string();
    let new_b64 = new.to_base64().to_string();
    let seeded = env.seed(&env.config_with_key(&old_b64), 3);
    assert!(!env.key_file().exists(), "no key file in environment mode");

    // Without the new key it refuses and changes nothing.
    let mut cmd = env.steward(&["keys", "rotate-master"]);
    cmd.env("STEWARD_MASTER_KEY", &old_b64);
    let refused = run(cmd);
    assert!(!refused.status.success());
    assert_only_under(&env, &seeded, &old, &new);

    let mut cmd = env.steward(&["keys", "rotate-master"]);
    cmd.env("STEWARD_MASTER_KEY", &old_b64)
        .env("STEWARD_NEW_MASTER_KEY", &new_b64);
    let out = run(cmd);
    assert!(out.status.success(), "rotate-master (env) failed");
    assert!(stdout(&out).contains(&new.kek_id()), "{}", stdout(&out));
    assert!(!stdout(&out).contains(&new_b64), "never prints the key");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&new_b64));
    assert_only_under(&env, &seeded, &new, &old);
    assert!(!env.key_file().exists(), "still no key file");
    assert!(!env.next_file().exists());

    let ok = AppState::build_without_worker(
        &env.config_with_key(&new_b64),
        Arc::new(ManualClock::starting_now()),
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
    drop(ok);
    let refused = AppState::build_without_worker(
        &env.config_with_key(&old_b64),
        Arc::new(ManualClock::starting_now()),
    );
    assert!(
        matches!(refused, Err(StartupError::WrongMasterKey { .. })),
        "{refused:?}"
    );
});

cli_test!(
    a_wrong_master_key_refuses_to_start_and_changes_nothing,
    |env| {
        let seeded = env.seed(&env.config(), 2);
        let key_text = std::fs::read_to_string(env.key_file()).unwrap();
        let real = LocalKek::from_base64(&key_text).unwrap();
        let before = {
            let store = env.store();
            let mut conn = env.conn(&store);
            all_rows(&mut conn)
        };

        let other = LocalKek::generate().unwrap();
        let result = AppState::build_without_worker(
            &env.config_with_key(&other.to_base64()),
            Arc::new(ManualClock::starting_now()),
        );
        match result {
            Err(StartupError::WrongMasterKey { mut unknown }) => {
                // (The list may name an id once per table holding it: tenant and platform keys.)
                unknown.sort();
                unknown.dedup();
                assert_eq!(
                    unknown,
                    vec![real.kek_id()],
                    "names the key the database needs"
                );
            }
            other => panic!("expected WrongMasterKey, got {other:?}"),
        }

        // The real binary refuses too, with a non-zero exit.
        let mut cmd = env.steward(&["serve", "--bind", "127.0.0.1:0"]);
        cmd.env("STEWARD_MASTER_KEY", other.to_base64().as_str());
        let out = run(cmd);
        assert!(
            !out.status.success(),
            "serve must refuse a wrong master key"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("does not match this database"),
            "says why"
        );

        let after = {
            let store = env.store();
            let mut conn = env.conn(&store);
            all_rows(&mut conn)
        };
        let summary = |rows: &[TenantKeyRow]| -> Vec<(String, String, i64, String, Vec<u8>)> {
            rows.iter()
                .map(|r| {
                    (
                        r.tenant_id.clone(),
                        r.purpose.clone(),
                        r.version,
                        r.kek_id.clone(),
                        r.wrapped.clone(),
                    )
                })
                .collect()
        };
        assert_eq!(summary(&before), summary(&after), "no key row changed");
        assert_eq!(
            std::fs::read_to_string(env.key_file()).unwrap(),
            key_text,
            "master.key untouched"
        );
        let store = env.store();
        let mut conn = env.conn(&store);
        assert_eq!(steward_store::tenants::count(&mut conn).unwrap(), 2);
        for t in &seeded {
            let keyring = keys::load(&mut conn, &real, &t.id).unwrap();
            let (record, sealed, plain) = &t.values[0];
            assert_eq!(
                keyring
                    .open(&ctx(&t.id, record), sealed)
                    .unwrap()
                    .as_slice(),
                plain.as_slice()
            );
        }
    }
);

cli_test!(
    keys_destroy_needs_confirmation_and_shreds_one_tenant,
    |env| {
        let seeded = env.seed(&env.config(), 2);
        let kek = LocalKek::from_file(&env.key_file()).unwrap();
        let (doomed, stays) = (&seeded[0], &seeded[1]);

        // A mismatched confirmation destroys nothing.
        let out = run(env.steward(&[
            "keys",
            "destroy",
            "--tenant",
            &doomed.id,
            "--confirm",
            &stays.id,
        ]));
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("--confirm"));
        // An unknown tenant is an error too.
        let missing = steward_core::Id::Tenant.generate();
        let out = run(env.steward(&[
            "keys",
            "destroy",
            "--tenant",
            &missing,
            "--confirm",
            &missing,
        ]));
        assert!(!out.status.success());
        {
            let store = env.store();
            let mut conn = env.conn(&store);
            assert_eq!(all_rows(&mut conn).len(), 5, "nothing was destroyed");
            for t in &seeded {
                let tenant = steward_store::tenants::get(&mut conn, &t.id).unwrap();
                assert!(tenant.keys_destroyed_at.is_none());
                assert!(keys::load(&mut conn, &kek, &t.id).is_ok());
            }
        }

        let out = run(env.steward(&[
            "keys",
            "destroy",
            "--tenant",
            &doomed.id,
            "--confirm",
            &doomed.id,
        ]));
        assert!(out.status.success(), "destroy failed");
        assert!(
            stdout(&out).contains(&format!("destroyed 3 wrapped key(s) of {}", doomed.id)),
            "{}",
            stdout(&out)
        );

        let store = env.store();
        let mut conn = env.conn(&store);
        assert!(keys::rows(&mut conn, &doomed.id).unwrap().is_empty());
        assert!(steward_store::tenants::get(&mut conn, &doomed.id)
            .unwrap()
            .keys_destroyed_at
            .is_some());
        assert!(matches!(
            keys::load(&mut conn, &kek, &doomed.id),
            Err(steward_core::Error::Gone { .. })
        ));
        // The other tenant keeps its keys and its data.
        let keyring = keys::load(&mut conn, &kek, &stays.id).unwrap();
        let (record, sealed, plain) = &stays.values[0];
        assert_eq!(
            keyring
                .open(&ctx(&stays.id, record), sealed)
                .unwrap()
                .as_slice(),
            plain.as_slice()
        );
        drop(conn);
        drop(store);

        // A server started afterwards answers 410 for the destroyed tenant's keys.
        let state =
            AppState::build_without_worker(&env.config(), Arc::new(ManualClock::starting_now()))
                .unwrap();
        let mut conn = state.store.pool().get().unwrap();
        assert!(matches!(
            state.keys.keyring(&mut conn, &doomed.id),
            Err(steward_core::Error::Gone { .. })
        ));
    }
);
