//! How fast `verify` walks a chain on SQLite.
//!
//! ```text
//! cargo run --release -p steward-audit --example verify_throughput [EVENTS]
//! ```
//!
//! Fills one tenant chain with EVENTS (default 200,000) realistic events, in transactions of
//! 10,000, then verifies it three times and prints the best rate. As a baseline measured in the
//! same run it prints how many SHA-256 digests of the same messages one core computes per
//! second: hashing is the floor of verification's cost, so the ratio shows how much of the
//! machine verify uses beyond it.

use std::time::Instant;

use chrono::Utc;
use steward_audit::canonical::{event_hash, EventFields, GENESIS_HASH};
use steward_audit::{append_many, verify, Actor, EventFilter, NewEvent, Target};
use steward_core::{Error, Id};
use steward_store::pool::PoolOptions;
use steward_store::{DatabaseUrl, Store};

const BATCH: usize = 10_000;

fn event(i: usize) -> NewEvent {
    let (action, fields): (&str, &[&str]) = match i % 3 {
        0 => ("visitor.read", &["email", "name", "phone"]),
        1 => ("visitor.update", &["address.city"]),
        _ => ("transfer.pull", &["email"]),
    };
    NewEvent::new(
        action,
        Actor::new("user", Id::User.generate(), "tenant_admin"),
        Target::record("visitor", Id::Visitor.generate()),
    )
    .fields(fields)
    .purpose("support")
    .request_id(Id::Request.generate())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 200_000,
    };
    let dir = tempfile::tempdir()?;
    let url = DatabaseUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("steward.db").display()
    ))?;
    let store = Store::open(&url, PoolOptions::default())?;
    let chain = Id::Tenant.generate();

    let started = Instant::now();
    let mut done = 0;
    while done < total {
        let n = BATCH.min(total - done);
        let chain = chain.clone();
        let events: Vec<NewEvent> = (done..done + n).map(event).collect();
        store.write_blocking(move |c| {
            append_many(c, &chain, events, Utc::now().naive_utc()).map(|_| ())
        })?;
        done += n;
    }
    let fill = started.elapsed().as_secs_f64();
    println!(
        "filled {total} events in {fill:.2} s ({:.0} appends/s in batches of {BATCH})",
        total as f64 / fill
    );

    let mut best = f64::INFINITY;
    for run in 1..=3 {
        let started = Instant::now();
        let cpu_before = cpu_seconds();
        let report = store.read_blocking(|c| verify(c, &chain, None, &mut |_| {}))?;
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
        if !report.ok || report.checked != total as i64 {
            return Err(format!("chain did not verify: {report:?}").into());
        }
        println!(
            "verify run {run}: {} events in {secs:.3} s = {:.0} events/s{}",
            report.checked,
            report.checked as f64 / secs,
            cpu.map(|c| format!(" ({:.2} CPU-µs per event)", c * 1e6 / report.checked as f64))
                .unwrap_or_default()
        );
        best = best.min(secs);
    }
    let verify_rate = total as f64 / best;

    // Baseline: the same events' hash computations, on one core, from memory.
    let sample = store.read_blocking(|c| {
        Ok::<_, Error>(steward_audit::list(c, &chain, &EventFilter::default(), None, 500)?.0)
    })?;
    let joined: Vec<String> = sample.iter().map(|e| e.fields.join(",")).collect();
    let views: Vec<EventFields<'_>> = sample
        .iter()
        .zip(&joined)
        .map(|(e, fields)| EventFields {
            chain_id: &e.chain_id,
            seq: e.seq,
            id: &e.id,
            occurred_at: e.occurred_at,
            actor_kind: &e.actor.kind,
            actor_id: &e.actor.id,
            actor_role: &e.actor.role,
            action: &e.action,
            target_kind: &e.target.kind,
            target_id: e.target.id.as_deref(),
            fields,
            purpose: e.purpose.as_deref(),
            justification: e.justification.as_deref(),
            grant_id: e.grant_id.as_deref(),
            request_id: e.request_id.as_deref(),
            outcome: e.outcome.as_str(),
            detail: e.detail.as_deref(),
        })
        .collect();
    let mut scratch = Vec::new();
    let mut sink = 0u8;
    let rounds = 400;
    let started = Instant::now();
    for _ in 0..rounds {
        for v in &views {
            sink ^= event_hash(&GENESIS_HASH, v, &mut scratch)[0];
        }
    }
    let hash_rate = (rounds * views.len()) as f64 / started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "baseline: encode + SHA-256 of the same events on one core: {hash_rate:.0} events/s (sink {sink})"
    );
    println!(
        "verify (best of 3): {verify_rate:.0} events/s = {:.2}x the one-core hashing baseline, on {cores} cores",
        verify_rate / hash_rate
    );
    Ok(())
}

/// CPU time (user + system, all threads) of this process so far, from /proc on Linux: on a
/// shared machine it says what verify costs even when wall-clock time says more about the
/// neighbours. Assumes the usual 100 clock ticks per second.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
