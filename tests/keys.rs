//! End-to-end: tenant keys — created with the tenant, rotated over the API (with the
//! re-encryption job), never stored unwrapped, and destroyed for good (crypto-shredding).
//! Each test runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use diesel::prelude::*;
use serde_json::Value;
use steward_keys::{
    key_wrap_aad, sealed::key_version_of, KekProvider, KeyPurpose, LocalKek, RecordKind,
    SealContext, WrappedKey, MASTER_KEY_FILE, WRAPPED_KEY_LEN,
};
use steward_store::keys::TenantKeyRow;
use steward_store::schema::{tenant_keys, tenants};

use common::{contains_bytes, TestApp};

const EMAIL: &[u8] = b"x@example.com";

fn master_key_path(app: &TestApp) -> std::path::PathBuf {
    app.dir.path().join(MASTER_KEY_FILE)
}

fn master_kek(app: &TestApp) -> LocalKek {
    LocalKek::from_file(&master_key_path(app)).expect("read master.key")
}

/// Every wrapped-key row of a tenant, read straight from the database.
fn key_rows(app: &TestApp, tid: &str) -> Vec<TenantKeyRow> {
    let mut conn = app.db();
    tenant_keys::table
        .filter(tenant_keys::tenant_id.eq(tid))
        .select(TenantKeyRow::as_select())
        .order((tenant_keys::purpose.asc(), tenant_keys::version.asc()))
        .load(&mut *conn)
        .expect("read tenant_keys")
}

fn all_key_rows(app: &TestApp) -> Vec<TenantKeyRow> {
    let mut conn = app.db();
    tenant_keys::table
        .select(TenantKeyRow::as_select())
        .load(&mut *conn)
        .expect("read tenant_keys")
}

/// Unwraps one stored row with `kek` (the AAD is rebuilt from the row).
fn unwrap_row(kek: &LocalKek, row: &TenantKeyRow) -> steward_keys::SecretKey {
    let purpose: KeyPurpose = row.purpose.parse().expect("known purpose");
    let version = u32::try_from(row.version).expect("version fits u32");
    kek.unwrap(
        &WrappedKey {
            kek_id: row.kek_id.clone(),
            bytes: row.wrapped.clone(),
        },
        &key_wrap_aad(&row.tenant_id, purpose, version),
    )
    .expect("row unwraps with the master key")
}

fn ctx<'a>(tid: &'a str, record: &'a str) -> SealContext<'a> {
    SealContext::new(tid, RecordKind::Visitor, record, "email")
}

/// Seals `plain` for `tid` with the server's own key service.
fn seal(app: &TestApp, tid: &str, record: &str, plain: &[u8]) -> Vec<u8> {
    let mut conn = app.db();
    let keyring = app.state.keys.keyring(&mut conn, tid).expect("keyring");
    keyring.seal(&ctx(tid, record), plain).expect("seal")
}

fn rotate(app: &TestApp, tid: &str, token: &str) -> common::Response {
    app.request(
        reqwest::Method::POST,
        &format!("/v1/tenants/{tid}/keys/rotate"),
        Some(token),
        None,
    )
}

/// Rotates and waits for the re-encryption job; returns the new version.
fn rotate_ok(app: &TestApp, tenant: &common::TenantFixture) -> u64 {
    let r = rotate(app, &tenant.id, &tenant.admin_token);
    assert_eq!(r.status, 200, "rotate: {}", r.text);
    let body = r.json();
    let job = &body["reencryption_job"];
    assert_eq!(job["kind"], "reencrypt", "{body}");
    let job_id = job["id"].as_str().expect("job id");
    let finished = app.wait_for_job(&tenant.id, &tenant.admin_token, job_id);
    assert_eq!(finished["status"], "done", "job: {finished}");
    assert_eq!(finished["error_code"], Value::Null, "job: {finished}");
    body["version"].as_u64().expect("version")
}

/// Minimal standard base64 decoding (the test kit has no base64 crate).
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.trim().bytes().filter(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .expect("base64 character") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

e2e!(a_new_tenant_gets_exactly_its_first_keys, |app| {
    let kek_id = master_kek(&app).kek_id();
    let a = app.new_tenant("Keys A");
    let b = app.new_tenant("Keys B");

    for t in [&a, &b] {
        let rows = key_rows(&app, &t.id);
        let summary: Vec<(String, i64)> = rows
            .iter()
            .map(|r| (r.purpose.clone(), r.version))
            .collect();
        assert_eq!(
            summary,
            vec![("blind_index".to_string(), 1), ("data".to_string(), 1)],
            "tenant {} has exactly data v1 and blind_index v1",
            t.id
        );
        for row in &rows {
            assert_eq!(row.wrapped.len(), WRAPPED_KEY_LEN);
            assert_eq!(row.wrapped.len(), 60);
            assert_eq!(row.kek_id, kek_id, "wrapped by the data dir's master key");
            assert!(row.retired_at.is_none());
            assert!(row.destroyed_at.is_none());
        }
    }

    // Two tenants never share a key, wrapped or not.
    let kek = master_kek(&app);
    let keys_a: Vec<_> = key_rows(&app, &a.id)
        .iter()
        .map(|r| unwrap_row(&kek, r).expose().to_vec())
        .collect();
    let keys_b: Vec<_> = key_rows(&app, &b.id)
        .iter()
        .map(|r| unwrap_row(&kek, r).expose().to_vec())
        .collect();
    for k in &keys_a {
        assert!(!keys_b.contains(k), "tenants share a key");
    }
    assert_ne!(keys_a[0], keys_a[1], "data and index keys differ");

    // A tenant's wrapped key does not unwrap as another tenant's (AAD binds the tenant).
    let row_a = &key_rows(&app, &a.id)[1];
    let forged = WrappedKey {
        kek_id: row_a.kek_id.clone(),
        bytes: row_a.wrapped.clone(),
    };
    assert!(kek
        .unwrap(&forged, &key_wrap_aad(&b.id, KeyPurpose::Data, 1))
        .is_err());

    // The tenant is usable at once: its keyring loads and seals under version 1.
    let sealed = seal(&app, &a.id, "vis_1", EMAIL);
    assert_eq!(key_version_of(&sealed).unwrap(), 1);
});

e2e!(rotation_adds_a_version_and_old_values_still_open, |app| {
    let t = app.new_tenant("Rotating shop");
    let tid = t.id.clone();
    let old = seal(&app, &tid, "vis_1", EMAIL);
    assert_eq!(key_version_of(&old).unwrap(), 1);

    assert_eq!(rotate_ok(&app, &t), 2);

    {
        let mut conn = app.db();
        // The server dropped its cached keyring: the very next use sees version 2.
        let cached = app.state.keys.keyring(&mut conn, &tid).unwrap();
        assert_eq!(cached.current_version(), 2);
        let keyring = app.state.keys.reload(&mut conn, &tid).unwrap();
        assert_eq!(keyring.current_version(), 2);
        assert_eq!(keyring.versions(), vec![1, 2]);
        assert_eq!(
            keyring.open(&ctx(&tid, "vis_1"), &old).unwrap().as_slice(),
            EMAIL,
            "a value sealed before the rotation still opens"
        );
        let new = keyring.seal(&ctx(&tid, "vis_2"), b"y@example.com").unwrap();
        assert_eq!(key_version_of(&new).unwrap(), 2);
        assert_eq!(
            keyring.open(&ctx(&tid, "vis_2"), &new).unwrap().as_slice(),
            b"y@example.com"
        );
    }
    let new = seal(&app, &tid, "vis_3", EMAIL);
    assert_eq!(key_version_of(&new).unwrap(), 2, "new writes use version 2");

    assert_eq!(rotate_ok(&app, &t), 3);
    let newest = seal(&app, &tid, "vis_4", EMAIL);
    assert_eq!(key_version_of(&newest).unwrap(), 3);
    {
        let mut conn = app.db();
        let keyring = app.state.keys.reload(&mut conn, &tid).unwrap();
        assert_eq!(keyring.current_version(), 3);
        assert_eq!(
            keyring.open(&ctx(&tid, "vis_1"), &old).unwrap().as_slice(),
            EMAIL
        );
        assert_eq!(
            keyring.open(&ctx(&tid, "vis_3"), &new).unwrap().as_slice(),
            EMAIL
        );
    }

    // In the database: data v1..v3 (only v3 current) and the untouched index key, each
    // wrapped by the master key.
    let kek_id = master_kek(&app).kek_id();
    let rows = key_rows(&app, &tid);
    let summary: Vec<(String, i64, bool)> = rows
        .iter()
        .map(|r| (r.purpose.clone(), r.version, r.retired_at.is_some()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("blind_index".to_string(), 1, false),
            ("data".to_string(), 1, true),
            ("data".to_string(), 2, true),
            ("data".to_string(), 3, false),
        ]
    );
    assert!(rows
        .iter()
        .all(|r| r.kek_id == kek_id && r.wrapped.len() == 60));

    // Another tenant is not touched by the rotation.
    let other = app.new_tenant("Bystander");
    assert_eq!(key_rows(&app, &other.id).len(), 2);
    assert_eq!(
        key_version_of(&seal(&app, &other.id, "vis_1", EMAIL)).unwrap(),
        1
    );
});

e2e!(rotating_an_unknown_tenant_is_not_found, |app| {
    let t = app.new_tenant("Exists");
    let missing = steward_core::Id::Tenant.generate();
    assert!(steward_core::Id::Tenant.matches(&missing));
    assert_eq!(
        rotate(&app, &missing, &t.admin_token).problem(404),
        "not_found"
    );
    assert_eq!(
        rotate(&app, "not-a-tenant", &t.admin_token).problem(404),
        "not_found"
    );

    // Nothing was written for the missing tenant, and the real one is untouched.
    assert!(key_rows(&app, &missing).is_empty());
    assert_eq!(all_key_rows(&app).len(), 2);
    assert_eq!(
        key_version_of(&seal(&app, &t.id, "vis_1", EMAIL)).unwrap(),
        1
    );
});

e2e!(no_key_material_reaches_the_database, |app| {
    let a = app.new_tenant("Secretive A");
    let b = app.new_tenant("Secretive B");
    assert_eq!(rotate_ok(&app, &a), 2);
    // Some sealed data of each tenant exists in memory only; seal under each to load keyrings.
    seal(&app, &a.id, "vis_1", EMAIL);
    seal(&app, &b.id, "vis_1", EMAIL);

    let master_text = std::fs::read_to_string(master_key_path(&app)).unwrap();
    let master_b64 = master_text.trim().to_string();
    let master_raw = base64_decode(&master_b64);
    assert_eq!(master_raw.len(), 32);

    let kek = master_kek(&app);
    let rows = all_key_rows(&app);
    assert_eq!(rows.len(), 5, "a: data v1, v2, index; b: data v1, index");
    let tenant_keys: Vec<Vec<u8>> = rows
        .iter()
        .map(|r| unwrap_row(&kek, r).expose().to_vec())
        .collect();

    // Every form a key could leak in: raw bytes, hex (how PostgreSQL prints bytea), base64.
    let mut secrets: Vec<(String, Vec<u8>)> = vec![
        ("master key (raw)".into(), master_raw.clone()),
        ("master key (base64)".into(), master_b64.as_bytes().to_vec()),
        ("master key (hex)".into(), hex(&master_raw).into_bytes()),
    ];
    for (row, key) in rows.iter().zip(&tenant_keys) {
        let what = format!("{} {} v{}", row.tenant_id, row.purpose, row.version);
        secrets.push((format!("{what} (raw)"), key.clone()));
        secrets.push((format!("{what} (hex)"), hex(key).into_bytes()));
    }

    if app.backend == common::Backend::Sqlite {
        // Force everything onto disk, then read the database file and its WAL byte by byte.
        let bytes = app.sqlite_bytes();
        assert!(
            contains_bytes(&bytes, a.id.as_bytes()),
            "sanity: the file holds the tenants"
        );
        assert!(
            contains_bytes(&bytes, &rows[0].wrapped),
            "sanity: the file holds the wrapped keys"
        );
        for (what, secret) in &secrets {
            assert!(
                !contains_bytes(&bytes, secret),
                "{what} found in the SQLite file"
            );
        }
    }

    // Both backends: every column of every row of the key and tenant tables.
    let mut conn = app.db();
    let tenant_rows: Vec<(String, String, String)> = tenants::table
        .select((tenants::id, tenants::name, tenants::status))
        .load(&mut *conn)
        .unwrap();
    assert_eq!(tenant_rows.len(), 2);
    let mut stored: Vec<(String, Vec<u8>)> = Vec::new();
    for (id, name, status) in tenant_rows {
        stored.push((format!("tenants.id {id}"), id.into_bytes()));
        stored.push(("tenants.name".to_string(), name.into_bytes()));
        stored.push(("tenants.status".to_string(), status.into_bytes()));
    }
    for row in &rows {
        let at = format!("{} {} v{}", row.tenant_id, row.purpose, row.version);
        stored.push((format!("wrapped {at}"), row.wrapped.clone()));
        stored.push((format!("kek_id {at}"), row.kek_id.clone().into_bytes()));
        stored.push((format!("purpose {at}"), row.purpose.clone().into_bytes()));
        stored.push((
            format!("tenant_id {at}"),
            row.tenant_id.clone().into_bytes(),
        ));
    }
    for (column, value) in &stored {
        for (what, secret) in &secrets {
            assert!(
                !contains_bytes(value, secret),
                "{what} found in column {column}"
            );
        }
    }

    // PostgreSQL: every table in the schema, each row rendered as text (bytea shows as hex).
    if let steward_store::DbConnection::Postgres(pg) = &mut *conn {
        #[derive(QueryableByName)]
        struct TableName {
            #[diesel(sql_type = diesel::sql_types::Text)]
            table_name: String,
        }
        #[derive(QueryableByName)]
        struct RowText {
            #[diesel(sql_type = diesel::sql_types::Text)]
            row_text: String,
        }
        let tables: Vec<TableName> = diesel::sql_query(
            "SELECT table_name::text AS table_name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .load(pg)
        .unwrap();
        assert!(tables.iter().any(|t| t.table_name == "tenant_keys"));
        let mut dumped = 0;
        for t in &tables {
            let rows: Vec<RowText> = diesel::sql_query(format!(
                "SELECT CAST(t AS TEXT) AS row_text FROM \"{}\" t",
                t.table_name
            ))
            .load(pg)
            .unwrap();
            for r in rows {
                dumped += 1;
                for (what, secret) in &secrets {
                    assert!(
                        !contains_bytes(r.row_text.as_bytes(), secret),
                        "{what} found in table {}",
                        t.table_name
                    );
                }
            }
        }
        assert!(dumped >= 7, "sanity: the tables were read ({dumped} rows)");
    }
});

e2e!(destroyed_keys_make_the_tenant_unreadable_for_good, |app| {
    let doomed = app.new_tenant("Leaving shop");
    let stays = app.new_tenant("Staying shop");
    let sealed_v1 = seal(&app, &doomed.id, "vis_1", EMAIL);
    assert_eq!(rotate_ok(&app, &doomed), 2);
    let sealed_v2 = seal(&app, &doomed.id, "vis_2", EMAIL);
    assert_eq!(key_version_of(&sealed_v2).unwrap(), 2);
    let kept = seal(&app, &stays.id, "vis_1", EMAIL);

    let tid = doomed.id.clone();
    let now = app.state.clock.now().naive_utc();
    let destroyed = app
        .state
        .store
        .write_blocking(move |c| steward_store::keys::destroy(c, &tid, now))
        .expect("destroy");
    assert_eq!(destroyed, 3, "data v1, v2 and the index key");

    // The API says so.
    let got = app.get(
        &format!("/v1/tenants/{}", doomed.id),
        Some(&doomed.admin_token),
    );
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json()["keys_destroyed"], true);
    assert_eq!(got.json()["name"], "Leaving shop");
    let other = app.get(
        &format!("/v1/tenants/{}", stays.id),
        Some(&stays.admin_token),
    );
    assert_eq!(other.status, 200, "{}", other.text);
    assert_eq!(other.json()["keys_destroyed"], false);

    // The key service refuses with Gone.
    {
        let mut conn = app.db();
        match app.state.keys.reload(&mut conn, &doomed.id) {
            Err(steward_core::Error::Gone { code, .. }) => {
                assert_eq!(code, "tenant_keys_destroyed")
            }
            other => panic!("expected Gone, got {other:?}"),
        }
        assert!(matches!(
            app.state.keys.keyring(&mut conn, &doomed.id),
            Err(steward_core::Error::Gone { .. })
        ));
    }

    // Rotation is refused, and creates nothing.
    assert_eq!(
        rotate(&app, &doomed.id, &doomed.admin_token).problem(410),
        "tenant_keys_destroyed"
    );
    assert!(
        key_rows(&app, &doomed.id).is_empty(),
        "no wrapped key remains"
    );

    // Even with the master key nothing opens the tenant's values: no wrapped key of it is left,
    // loading refuses, and no key that is left in the database (any tenant's, any version)
    // opens them.
    let kek = master_kek(&app);
    {
        let mut conn = app.db();
        assert!(matches!(
            steward_store::keys::load(&mut conn, &kek, &doomed.id),
            Err(steward_core::Error::Gone { .. })
        ));
    }
    let remaining = all_key_rows(&app);
    assert_eq!(remaining.len(), 2, "only the other tenant's keys remain");
    for row in &remaining {
        assert_eq!(row.tenant_id, stays.id);
        let key = unwrap_row(&kek, row).expose().to_owned();
        let index = steward_keys::SecretKey::from_bytes(key);
        let candidate = steward_keys::TenantKeyring::new(
            doomed.id.clone(),
            vec![
                (1, steward_keys::SecretKey::from_bytes(key)),
                (2, steward_keys::SecretKey::from_bytes(key)),
            ],
            index,
        )
        .unwrap();
        assert!(candidate
            .open(&ctx(&doomed.id, "vis_1"), &sealed_v1)
            .is_err());
        assert!(candidate
            .open(&ctx(&doomed.id, "vis_2"), &sealed_v2)
            .is_err());
    }
    // Clearing the tombstone does not bring anything back either.
    {
        let mut conn = app.db();
        diesel::update(tenants::table.find(&doomed.id))
            .set(tenants::keys_destroyed_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamp>,
            >("NULL")))
            .execute(&mut *conn)
            .unwrap();
        let reloaded = steward_store::keys::load(&mut conn, &kek, &doomed.id);
        assert!(
            reloaded.is_err(),
            "a tenant without wrapped keys has no keyring"
        );
    }

    // The other tenant is unaffected: its keys are all there, its value opens, it rotates.
    assert_eq!(key_rows(&app, &stays.id).len(), 2);
    {
        let mut conn = app.db();
        let keyring = app.state.keys.reload(&mut conn, &stays.id).unwrap();
        assert_eq!(
            keyring
                .open(&ctx(&stays.id, "vis_1"), &kept)
                .unwrap()
                .as_slice(),
            EMAIL
        );
    }
    assert_eq!(rotate_ok(&app, &stays), 2);
});
