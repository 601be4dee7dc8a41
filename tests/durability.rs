//! End-to-end: nothing acknowledged is lost. Runs the real `steward serve` binary, kills it
//! with SIGKILL right after a 201, starts it again on the same data dir and finds every
//! acknowledged write; and stops it with SIGTERM, which must exit cleanly and promptly.
//! SQLite always; PostgreSQL too when `STEWARD_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const START_TIMEOUT: Duration = Duration::from_secs(30);
const SIGTERM_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs a test body once on SQLite and once on PostgreSQL (skipped without the env var).
macro_rules! durability_test {
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

struct Env {
    /// The server's data dir (SQLite file, master key, bootstrap credentials).
    data: tempfile::TempDir,
    /// Server logs, kept apart from the data dir.
    logs: tempfile::TempDir,
    pg: Option<common::TestDatabase>,
}

impl Env {
    fn new(postgres: bool) -> Option<Self> {
        let pg = if postgres {
            Some(common::TestDatabase::create()?)
        } else {
            None
        };
        Some(Self {
            data: tempfile::tempdir().expect("temp dir"),
            logs: tempfile::tempdir().expect("temp dir"),
            pg,
        })
    }

    /// Starts `steward serve` on a free port and waits until it says where it listens.
    fn start(&self, run: usize) -> Server {
        let log_path = self.logs.path().join(format!("server-{run}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_steward"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data.path())
            .args(["--bind", "127.0.0.1:0", "--workers", "2"]);
        if let Some(pg) = &self.pg {
            cmd.arg("--database-url").arg(&pg.url);
        }
        for var in [
            "STEWARD_MASTER_KEY",
            "STEWARD_NEW_MASTER_KEY",
            "STEWARD_PREVIOUS_MASTER_KEY",
            "STEWARD_MASTER_KEY_FILE",
            "STEWARD_DATA_DIR",
            "STEWARD_BIND",
            "STEWARD_WORKERS",
            "DATABASE_URL",
            "STEWARD_SQLITE_SYNC",
        ] {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start steward serve");

        // Read stdout on a thread (and keep draining it, so the server never blocks on a full
        // pipe); hand lines over until the listening line arrives.
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = Server {
            child: Some(child),
            base: String::new(),
            log_path,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("Steward listening on ") {
                        let url = rest.split_whitespace().next().expect("address");
                        server.base = url.to_string();
                        break;
                    }
                }
                Err(_) => panic!(
                    "steward serve did not say it was listening within {START_TIMEOUT:?}; log:\n{}",
                    server.log()
                ),
            }
        }
        assert!(
            server.base.starts_with("http://127.0.0.1:"),
            "{}",
            server.base
        );
        server
    }
}

/// A running `steward serve`; killed (SIGKILL) if the test ends without stopping it.
struct Server {
    child: Option<Child>,
    base: String,
    log_path: std::path::PathBuf,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL (what `Child::kill` sends on Unix), then reap it.
    fn kill_9(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        assert!(!status.success(), "a killed server does not exit cleanly");
    }

    /// SIGTERM; returns the exit status, or panics if it did not exit in `timeout`.
    fn terminate(mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "steward did not exit within {timeout:?} of SIGTERM; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// A platform admin's access token for the server at `base`: the bootstrap admin's, logged in
/// with the credentials the server wrote to `data_dir/bootstrap-admin.txt`, or an empty string
/// while no such file exists (before authentication, every route is open).
fn platform_login(base: &str, data_dir: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(data_dir.join("bootstrap-admin.txt")) else {
        return String::new();
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("bootstrap-admin.txt has no {name}= line"))
    };
    let r = client()
        .post(format!("{base}/v1/auth/login"))
        .json(&json!({ "email": field("email"), "password": field("password") }))
        .send()
        .expect("login request");
    let status = r.status().as_u16();
    let body: Value = r.json().expect("login answers JSON");
    assert_eq!(status, 200, "bootstrap admin login: {body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Creates a tenant; returns its id once the server answered 201.
fn create_tenant(
    http: &reqwest::blocking::Client,
    server: &Server,
    token: &str,
    name: &str,
) -> String {
    let r = http
        .post(server.url("/v1/tenants"))
        .bearer_auth(token)
        .json(&json!({ "name": name }))
        .send()
        .expect("create tenant");
    let status = r.status().as_u16();
    let text = r.text().expect("body");
    assert_eq!(status, 201, "create tenant: {text}");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    body["id"].as_str().expect("id").to_string()
}

/// Asserts the tenant exists with `name`.
fn assert_tenant(
    http: &reqwest::blocking::Client,
    server: &Server,
    token: &str,
    id: &str,
    name: &str,
) {
    let r = http
        .get(server.url(&format!("/v1/tenants/{id}")))
        .bearer_auth(token)
        .send()
        .expect("get tenant");
    let status = r.status().as_u16();
    let text = r.text().expect("body");
    assert_eq!(
        status, 200,
        "acknowledged tenant {id} ({name}) is gone: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["name"], name);
    assert_eq!(body["keys_destroyed"], false);
}

durability_test!(acknowledged_writes_survive_kill_9, |env| {
    let http = client();

    // One tenant, then SIGKILL the moment the 201 arrives.
    let server = env.start(1);
    let token = platform_login(&server.base, env.data.path());
    let first = create_tenant(&http, &server, &token, "Survivor");
    server.kill_9();

    let server = env.start(2);
    let token = platform_login(&server.base, env.data.path());
    assert_tenant(&http, &server, &token, &first, "Survivor");

    // Twenty back to back, killed right after the last 201.
    let mut made = Vec::new();
    for i in 0..20 {
        let name = format!("Shop {i:02}");
        made.push((create_tenant(&http, &server, &token, &name), name));
    }
    server.kill_9();

    let server = env.start(3);
    let token = platform_login(&server.base, env.data.path());
    assert_tenant(&http, &server, &token, &first, "Survivor");
    for (id, name) in &made {
        assert_tenant(&http, &server, &token, id, name);
    }
    // And the restarted server still takes writes.
    let after = create_tenant(&http, &server, &token, "After restart");
    assert_tenant(&http, &server, &token, &after, "After restart");
    server.kill_9();
});

durability_test!(
    sigterm_stops_cleanly_and_keeps_every_acknowledged_write,
    |env| {
        let http = client();
        let server = env.start(1);
        let token = platform_login(&server.base, env.data.path());
        let quiet = create_tenant(&http, &server, &token, "Before SIGTERM");

        // Writes in flight while SIGTERM arrives: every one the server acknowledged must persist.
        let base = server.base.clone();
        let writer_token = token.clone();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let writer = std::thread::spawn(move || {
            let http = client();
            let mut acknowledged = Vec::new();
            for i in 0..500 {
                let name = format!("In flight {i:03}");
                let sent = http
                    .post(format!("{base}/v1/tenants"))
                    .bearer_auth(&writer_token)
                    .json(&json!({ "name": name }))
                    .send();
                let Ok(r) = sent else { break };
                if r.status().as_u16() != 201 {
                    break;
                }
                let Ok(body) = r.json::<Value>() else { break };
                acknowledged.push((body["id"].as_str().unwrap().to_string(), name));
                if i == 5 {
                    let _ = started_tx.send(());
                }
            }
            acknowledged
        });
        started_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("writes are flowing");

        let status = server.terminate(SIGTERM_TIMEOUT);
        assert!(
            status.success(),
            "SIGTERM must end steward cleanly, got {status}"
        );
        let acknowledged = writer.join().expect("writer thread");
        assert!(acknowledged.len() >= 6, "some writes were acknowledged");
        eprintln!(
            "{} write(s) acknowledged around SIGTERM (token: {})",
            acknowledged.len(),
            if token.is_empty() {
                "none"
            } else {
                "bootstrap admin"
            }
        );

        let server = env.start(2);
        let token = platform_login(&server.base, env.data.path());
        assert_tenant(&http, &server, &token, &quiet, "Before SIGTERM");
        for (id, name) in &acknowledged {
            assert_tenant(&http, &server, &token, id, name);
        }
        // A second SIGTERM on an idle server (with this client's connection still open) is prompt.
        let status = server.terminate(SIGTERM_TIMEOUT);
        assert!(status.success(), "idle SIGTERM: {status}");
    }
);
