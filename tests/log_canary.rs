//! A PII canary must never reach the logs: the real binary runs at debug level, handles
//! creates, lookups, reads, bad input and errors carrying the canary, and its whole log output
//! is searched for it afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

fn run_with_format(format: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_steward"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--workers",
            "2",
            "--log-format",
            format,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("STEWARD_LOG", "debug")
        .env_remove("DATABASE_URL")
        .env_remove("STEWARD_MASTER_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let base = loop {
        assert!(Instant::now() < deadline, "server did not start");
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let http = reqwest::blocking::Client::new();
    let pw = std::fs::read_to_string(dir.path().join("bootstrap-admin.txt")).unwrap();
    let pw = pw
        .lines()
        .find_map(|l| l.strip_prefix("password="))
        .unwrap()
        .to_string();
    let login = |email: &str, password: &str| -> String {
        let r: serde_json::Value = http
            .post(format!("{base}/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        r["access_token"].as_str().unwrap().to_string()
    };
    let admin = login("admin@steward.local", &pw);
    let t: serde_json::Value = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(&admin)
        .json(&json!({"name": "Canary Shop", "admin": {"email": "owner@canary.test", "password": common::TEST_PASSWORD}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let tid = t["id"].as_str().unwrap().to_string();
    let owner = login("owner@canary.test", common::TEST_PASSWORD);

    let canary = format!("zqxcanary{}", common::unique());
    let email = format!("{canary}@example.com");
    let v: serde_json::Value = http
        .post(format!("{base}/v1/tenants/{tid}/visitors"))
        .bearer_auth(&owner)
        .json(&json!({"name": canary, "email": email, "attributes": {"note": canary}}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let vid = v["id"].as_str().unwrap().to_string();
    let get = |path: String| {
        http.get(format!("{base}{path}"))
            .bearer_auth(&owner)
            .send()
            .unwrap()
            .status()
    };
    assert_eq!(get(format!("/v1/tenants/{tid}/visitors/{vid}")), 200);
    assert_eq!(
        get(format!("/v1/tenants/{tid}/visitors?email={email}")),
        200
    );
    // Bad input carrying the canary: wrong types, bad e-mail, bad phone, unknown route.
    for body in [
        json!({"name": 5, "email": email}),
        json!({"email": format!("{canary} not an email")}),
        json!({"phone": canary}),
        json!({"name": canary, "country_of_birth": canary}),
    ] {
        let s = http
            .post(format!("{base}/v1/tenants/{tid}/visitors"))
            .bearer_auth(&owner)
            .json(&body)
            .send()
            .unwrap()
            .status();
        assert_eq!(s, 400);
    }
    assert_eq!(get(format!("/v1/nope/{canary}?q={canary}")), 404);
    // A failed login with the canary as e-mail and password.
    http.post(format!("{base}/v1/auth/login"))
        .json(&json!({"email": email, "password": canary}))
        .send()
        .unwrap();

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    logs.push_str(&rest);
    assert!(
        logs.contains("request finished"),
        "no request logs were written: {logs}"
    );
    assert!(
        !logs.contains(&canary),
        "the canary reached the logs ({format}):\n{logs}"
    );
    assert!(
        !logs.contains('\u{1b}'),
        "log lines written to a pipe carry terminal colour codes ({format}):\n{logs}"
    );
    // A first start on a fresh data dir and ordinary traffic log no errors (pool connections
    // opening at once on a new SQLite file once raced to switch it to WAL).
    assert!(
        !logs.contains("ERROR"),
        "a clean start logged an error ({format}):\n{logs}"
    );
}

#[test]
fn no_pii_in_text_logs() {
    run_with_format("text");
}

#[test]
fn no_pii_in_json_logs() {
    run_with_format("json");
}
