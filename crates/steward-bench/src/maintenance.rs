//! `--maintenance`: the tenant-wide operations whose cost grows with the tenant's data rather
//! than with the request rate — verifying the whole audit chain, and re-encrypting every
//! visitor after a data-key rotation. Each is one long operation, so it is timed once from
//! start to end instead of being run in a loop.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use crate::report::Throughput;
use crate::spawn::RssSampler;
use crate::target::{get_json, post_json, Target, TIMEOUT};

/// How often the re-encryption job's status is read: the measured time is up to this late.
const POLL: Duration = Duration::from_millis(100);
/// How often a long re-encryption reports its progress on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// A fresh token well before the 15-minute access tokens expire, for long jobs.
const TOKEN_REFRESH: Duration = Duration::from_secs(10 * 60);
/// Verification answers only when the whole chain is checked: allow much longer than the
/// client's default timeout, which is sized for ordinary requests.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Serialize)]
pub struct Maintenance {
    /// `GET …/audit/verify`: the events it checked.
    pub verify_events: Throughput,
    /// `POST …/keys/rotate` until its re-encryption job is done: the rows the job re-sealed.
    pub reencrypt_records: Throughput,
}

/// Verifies the tenant's audit chain, then rotates its data key and waits for the
/// re-encryption job — in that order, so the verification does not compete with the job.
pub async fn run(steward: &Target, rss: Option<&RssSampler>) -> anyhow::Result<Maintenance> {
    let admin = steward
        .tenant_admin()
        .ok_or_else(|| anyhow!("maintenance needs Steward's tenant admin"))?;
    let client = steward.client();
    let tenant_url = format!("{}/v1/tenants/{}", admin.base, admin.tid);

    eprintln!("verifying the tenant's audit chain …");
    let token = admin.login(client).await?;
    reset(rss);
    let started = Instant::now();
    let report = get_json(
        client,
        &format!("{tenant_url}/audit/verify"),
        &token,
        VERIFY_TIMEOUT,
    )
    .await
    .context("verifying the audit chain")?;
    let elapsed = started.elapsed();
    if report.get("ok").and_then(Value::as_bool) != Some(true) {
        bail!("the audit chain did not verify: {report}");
    }
    let events = u64_field(&report, "checked")?;
    let verify_events = Throughput::new(events, elapsed, peak(rss));
    eprintln!("  {}", verify_events.describe("events"));

    eprintln!("rotating the data key and waiting for the re-encryption …");
    let mut token = admin.login(client).await?;
    let mut token_at = Instant::now();
    reset(rss);
    let started = Instant::now();
    let rotated = post_json(
        client,
        &format!("{tenant_url}/keys/rotate"),
        Some(&token),
        &json!({}),
    )
    .await
    .context("rotating the data key")?;
    let job_id = rotated
        .pointer("/reencryption_job/id")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("the rotation named no re-encryption job: {rotated}"))?;
    let job_url = format!("{tenant_url}/jobs/{job_id}");
    let mut last_progress = Instant::now();
    let (records, elapsed) = loop {
        tokio::time::sleep(POLL).await;
        if token_at.elapsed() > TOKEN_REFRESH {
            token = admin.login(client).await?;
            token_at = Instant::now();
        }
        let job = get_json(client, &job_url, &token, TIMEOUT)
            .await
            .context("reading the re-encryption job")?;
        match job.get("status").and_then(Value::as_str) {
            // Stop the clock before anything else.
            Some("done") => break (u64_field(&job, "done")?, started.elapsed()),
            Some("failed") => bail!("the re-encryption job failed: {job}"),
            Some(_) => {}
            None => bail!("the job has no status: {job}"),
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            let total = job
                .get("total")
                .and_then(Value::as_u64)
                .map_or_else(|| "?".to_string(), |t| t.to_string());
            eprintln!("  re-encrypted {} of {total}", u64_field(&job, "done")?);
        }
    };
    let reencrypt_records = Throughput::new(records, elapsed, peak(rss));
    eprintln!("  {}", reencrypt_records.describe("records"));

    Ok(Maintenance {
        verify_events,
        reencrypt_records,
    })
}

fn u64_field(v: &Value, name: &str) -> anyhow::Result<u64> {
    v.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("response has no count `{name}`: {v}"))
}

fn reset(rss: Option<&RssSampler>) {
    if let Some(r) = rss {
        r.reset();
    }
}

fn peak(rss: Option<&RssSampler>) -> Option<f64> {
    rss.map(RssSampler::window_peak_mb)
}
