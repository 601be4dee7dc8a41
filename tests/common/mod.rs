//! The end-to-end test kit: starts the real app on a free port over a fresh database (SQLite in
//! a temp dir, or a PostgreSQL database of its own created from `STEWARD_TEST_POSTGRES_URL`
//! and dropped afterwards) and drives it over HTTP.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::Value;
use steward_api::{AppState, Config};
use steward_core::ManualClock;

// The `both!`/`e2e!` macros name PG_ENV; not every test binary invokes them.
#[allow(unused_imports)]
pub use steward_store::testing::{TestDatabase, PG_ENV};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per backend: `e2e!(name, |app| { ... })` makes `name::sqlite` and
/// `name::postgres`; the latter says it was skipped when no PostgreSQL is configured.
#[macro_export]
macro_rules! e2e {
    ($name:ident, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                let $app = $crate::common::TestApp::spawn($crate::common::Backend::Sqlite)
                    .expect("sqlite test app");
                $body
            }

            #[test]
            fn postgres() {
                let Some($app) = $crate::common::TestApp::spawn($crate::common::Backend::Postgres)
                else {
                    eprintln!("skipped: {} is not set", $crate::common::PG_ENV);
                    return;
                };
                $body
            }
        }
    };
}

pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    pub fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }

    /// Asserts a problem document with the given status; returns its `code`.
    pub fn problem(&self, status: u16) -> String {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert!(
            self.content_type().starts_with("application/problem+json"),
            "not a problem document: {} {}",
            self.content_type(),
            self.text
        );
        let body = self.json();
        assert_eq!(body["status"], status);
        body["code"]
            .as_str()
            .expect("problem has a code")
            .to_string()
    }
}

pub struct TestApp {
    pub backend: Backend,
    pub base: String,
    pub client: reqwest::blocking::Client,
    pub clock: ManualClock,
    pub state: AppState,
    pub config: Config,
    admin_token: std::sync::Mutex<Option<String>>,
    server: Option<actix_web::dev::ServerHandle>,
    thread: Option<JoinHandle<()>>,
    // Dropped last: the database outlives the server.
    pub dir: tempfile::TempDir,
    pub pg: Option<TestDatabase>,
}

impl TestApp {
    pub fn spawn(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create()?),
        };
        let mut config = Config::with_data_dir(dir.path());
        config.database_url = pg.as_ref().map(|d| d.url.clone());
        config.pool_size = 8;
        config.fast_password_hashing = true;
        let clock = ManualClock::starting_now();
        let state = AppState::build(&config, Arc::new(clock.clone())).expect("build app state");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server =
                    steward_api::server::start(listener, server_state, 2).expect("start server");
                tx.send(server.handle()).expect("send handle");
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("server handle");
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("http client");
        Some(Self {
            backend,
            base: format!("http://{addr}"),
            client,
            clock,
            state,
            config,
            admin_token: std::sync::Mutex::new(None),
            server: Some(handle),
            thread: Some(thread),
            dir,
            pg,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Response {
        let resp = rb.send().expect("request sent");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().expect("body read");
        Response {
            status,
            headers,
            text,
        }
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut rb = self.client.get(self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        self.send(rb)
    }

    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut rb = self.client.request(method, self.url(path));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        self.send(rb)
    }

    pub fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(reqwest::Method::POST, path, token, Some(body))
    }

    pub fn raw(&self, rb: reqwest::blocking::RequestBuilder) -> Response {
        self.send(rb)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(h) = self.server.take() {
            // `stop` sends its command at once; the returned future only waits for completion.
            drop(h.stop(false));
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A tenant made for a test, with a token of its `tenant_admin`.
pub struct TenantFixture {
    pub id: String,
    pub admin_token: String,
    pub admin_email: String,
}

pub const TEST_PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// Creates a staff account straight in the database (as `steward admin create-staff`
    /// does) and returns its id.
    pub fn create_staff(&self, email: &str, role: steward_core::Role) -> String {
        let hash = self.state.login.hasher.hash(TEST_PASSWORD).expect("hash");
        let now = steward_core::Clock::now(self.state.clock.as_ref()).naive_utc();
        let row = steward_identity::users::new_row(None, email.to_string(), hash, role, now)
            .expect("staff row");
        let id = row.id.clone();
        self.state
            .store
            .write_blocking(move |c| steward_identity::users::insert(c, &row))
            .expect("insert staff");
        id
    }

    /// Logs in and returns the access token.
    pub fn login(&self, email: &str, password: &str) -> String {
        let r = self.post(
            "/v1/auth/login",
            None,
            &serde_json::json!({ "email": email, "password": password }),
        );
        assert_eq!(r.status, 200, "login {email}: {}", r.text);
        r.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A token of the platform admin (created on first use).
    pub fn platform_token(&self) -> String {
        let mut cached = self.admin_token.lock().unwrap();
        if let Some(t) = cached.as_ref() {
            return t.clone();
        }
        let email = "root@platform.test";
        self.create_staff(email, steward_core::Role::PlatformAdmin);
        let token = self.login(email, TEST_PASSWORD);
        *cached = Some(token.clone());
        token
    }

    /// A staff member with `role`, logged in: (user id, token).
    pub fn staff(&self, role: steward_core::Role) -> (String, String) {
        let email = format!("{}-{}@platform.test", role.as_str(), unique());
        let id = self.create_staff(&email, role);
        (id, self.login(&email, TEST_PASSWORD))
    }

    /// Creates a tenant (and its first admin) through the API; returns it with the admin's token.
    pub fn new_tenant(&self, name: &str) -> TenantFixture {
        let token = self.platform_token();
        let admin_email = format!("admin-{}@shop.test", unique());
        let r = self.post(
            "/v1/tenants",
            Some(&token),
            &serde_json::json!({
                "name": name,
                "admin": { "email": admin_email, "password": TEST_PASSWORD }
            }),
        );
        assert_eq!(r.status, 201, "create tenant: {}", r.text);
        TenantFixture {
            id: r.json()["id"].as_str().expect("tenant id").to_string(),
            admin_token: self.login(&admin_email, TEST_PASSWORD),
            admin_email,
        }
    }

    /// A user of the tenant with `role`, created by its admin: (user id, token).
    pub fn tenant_user(
        &self,
        tenant: &TenantFixture,
        role: steward_core::Role,
    ) -> (String, String) {
        let email = format!("{}-{}@shop.test", role.as_str(), unique());
        let r = self.post(
            &format!("/v1/tenants/{}/users", tenant.id),
            Some(&tenant.admin_token),
            &serde_json::json!({ "email": email, "password": TEST_PASSWORD, "role": role.as_str() }),
        );
        assert_eq!(r.status, 201, "create user: {}", r.text);
        let id = r.json()["id"].as_str().unwrap().to_string();
        (id, self.login(&email, TEST_PASSWORD))
    }

    /// A direct connection to the app's database, for assertions on raw rows.
    pub fn db(&self) -> steward_store::pool::PooledConnection {
        self.state.store.pool().get().expect("pooled connection")
    }

    /// Bytes of the SQLite database and its WAL (empty on PostgreSQL).
    pub fn sqlite_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for name in ["steward.db", "steward.db-wal"] {
            if let Ok(b) = std::fs::read(self.dir.path().join(name)) {
                bytes.extend(b);
            }
        }
        bytes
    }

    /// Polls a tenant job until it is done or failed.
    pub fn wait_for_job(&self, tenant: &str, token: &str, job: &str) -> Value {
        for _ in 0..200 {
            let r = self.get(&format!("/v1/tenants/{tenant}/jobs/{job}"), Some(token));
            assert_eq!(r.status, 200, "{}", r.text);
            let j = r.json();
            if j["status"] == "done" || j["status"] == "failed" {
                return j;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("job {job} did not finish");
    }
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A short unique suffix for names and e-mails.
pub fn unique() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Helpers for the identity and authorization suites (tests/identity.rs, tests/authz_matrix.rs).
// ---------------------------------------------------------------------------------------------

impl TestApp {
    /// Like [`TestApp::spawn`], but lets the caller adjust the configuration before the state is
    /// built (e.g. real password hashing for timing tests).
    pub fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create()?),
        };
        let mut config = Config::with_data_dir(dir.path());
        config.database_url = pg.as_ref().map(|d| d.url.clone());
        config.pool_size = 8;
        config.fast_password_hashing = true;
        adjust(&mut config);
        let clock = ManualClock::starting_now();
        let state = AppState::build(&config, Arc::new(clock.clone())).expect("build app state");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = std::sync::mpsc::channel();
        let server_state = state.clone();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server =
                    steward_api::server::start(listener, server_state, 2).expect("start server");
                tx.send(server.handle()).expect("send handle");
                let _ = server.await;
            });
        });
        let handle = rx.recv().expect("server handle");
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .expect("http client");
        Some(Self {
            backend,
            base: format!("http://{addr}"),
            client,
            clock,
            state,
            config,
            admin_token: std::sync::Mutex::new(None),
            server: Some(handle),
            thread: Some(thread),
            dir,
            pg,
        })
    }

    /// Moves the clock shared with the server forward by `secs` seconds.
    pub fn advance_secs(&self, secs: u64) {
        let now = steward_core::Clock::now(&self.clock);
        self.clock.set(now + std::time::Duration::from_secs(secs));
    }

    /// The server's "now" plus `secs` seconds, as RFC 3339 (for `expires_at` fields).
    pub fn rfc3339_in(&self, secs: i64) -> String {
        let now = steward_core::Clock::now(&self.clock);
        let d = std::time::Duration::from_secs(secs.unsigned_abs());
        let t = if secs >= 0 { now + d } else { now - d };
        t.to_rfc3339()
    }

    /// Creates an API key of `tenant` through the API (as its admin): (key id, secret).
    pub fn create_api_key(&self, tenant: &TenantFixture, scopes: &[&str]) -> (String, String) {
        let r = self.post(
            &format!("/v1/tenants/{}/api-keys", tenant.id),
            Some(&tenant.admin_token),
            &serde_json::json!({ "name": format!("key {}", unique()), "scopes": scopes }),
        );
        assert_eq!(r.status, 201, "create api key: {}", r.text);
        let body = r.json();
        (
            body["id"].as_str().expect("key id").to_string(),
            body["secret"].as_str().expect("key secret").to_string(),
        )
    }

    /// Client credentials of a subprocessor, made straight in the database (the subprocessor
    /// registry is not there yet): (client id, client secret).
    pub fn create_client(&self, subprocessor_id: &str) -> (String, String) {
        let now = steward_core::Clock::now(self.state.clock.as_ref()).naive_utc();
        let sub = subprocessor_id.to_string();
        let created = self
            .state
            .store
            .write_blocking(move |c| steward_identity::clients::create(c, &sub, now))
            .expect("create client");
        (created.row.id.clone(), created.secret.expose().to_string())
    }

    /// Exchanges client credentials for an access token.
    pub fn client_token(&self, client_id: &str, secret: &str) -> String {
        let r = self.post(
            "/v1/auth/token",
            None,
            &serde_json::json!({ "client_id": client_id, "client_secret": secret }),
        );
        assert_eq!(r.status, 200, "client token: {}", r.text);
        r.json()["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// The server's current token-signing key, read from the database and opened under the
    /// master key: lets a test mint tokens the server would otherwise be the only one able to
    /// sign (to prove that a *validly signed* token with a wrong claim is refused).
    pub fn server_signing_key(&self) -> steward_identity::SigningKey {
        let rows = self
            .state
            .store
            .read_blocking(|c| {
                steward_store::platform_keys::list(c, steward_identity::signing::PURPOSE)
            })
            .expect("list signing keys");
        let kid = self.state.tokens.current_kid();
        let row = rows
            .into_iter()
            .find(|r| r.id == kid)
            .expect("the current signing key is stored");
        let kek = self.state.keys.kek_arc();
        let pkcs8 = steward_store::platform_keys::open(kek.as_ref(), &row).expect("open key");
        steward_identity::SigningKey::from_pkcs8(row.id.clone(), &pkcs8).expect("signing key")
    }
}

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (JWT segments).
pub fn b64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(B64URL[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Decodes base64url without padding; `None` on any character outside the alphabet.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = B64URL.iter().position(|&x| x == c)?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The header and claims of a JWT, decoded (signature not checked).
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let seg = parts.next().expect("JWT segment");
        serde_json::from_slice(&b64url_decode(seg).expect("base64url")).expect("JSON segment")
    };
    let header = next();
    let claims = next();
    (header, claims)
}

/// A JWT from a header, claims and an (already encoded) signature segment.
pub fn jwt_assemble(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64url_encode(&serde_json::to_vec(header).expect("header JSON")),
        b64url_encode(&serde_json::to_vec(claims).expect("claims JSON")),
    )
}
