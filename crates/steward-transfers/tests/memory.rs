//! A large pull walked page by page keeps memory flat: each page holds at most 1,000 visitors
//! and nothing is kept between pages. Slow (it imports the visitors first), so ignored by
//! default: `cargo test --release -p steward-transfers --test memory -- --ignored --nocapture`
//! (`STEWARD_PULL_VISITORS` sets the count; 100,000 by default).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::json;
use steward_visitors::{Access, VisitorInput};

use common::*;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn run(env: Env) {
    let total: usize = std::env::var("STEWARD_PULL_VISITORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let tenant = env.tenant();
    let ship = env.subprocessor("ShipFast");
    let access = Access::of(
        &tenant_user(steward_core::Role::TenantMember, &tenant),
        None,
    );
    let batch: Vec<VisitorInput> = (0..1000)
        .map(|i| {
            serde_json::from_value(json!({
                "name": format!("Visitor {i}"),
                "email": format!("v{i}@example.com"),
                "address": {"line1": "1 Road", "city": "London", "country": "GB"},
                "attributes": {"tier": "gold"}
            }))
            .unwrap()
        })
        .collect();
    let mut made = 0;
    while made < total {
        let n = (total - made).min(1000);
        env.rt
            .block_on(env.visitors.create_batch(&tenant, &access, &batch[..n]))
            .expect("import");
        made += n;
    }
    env.authorize(
        &tenant,
        &ship,
        &["fulfillment"],
        &["name", "address"],
        None,
        None,
    )
    .expect("authorize");

    let (mut after, mut pages, mut seen, mut samples) = (None, 0usize, 0usize, Vec::new());
    let started = std::time::Instant::now();
    loop {
        let page = env
            .pull(&ship, &tenant, "fulfillment", after, 1000)
            .expect("page");
        seen += page.items.len();
        pages += 1;
        samples.push(rss_kib());
        match page.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, total);
    let warm = samples[samples.len().min(10) - 1];
    let peak = samples.iter().copied().max().unwrap_or(0);
    let last = *samples.last().unwrap_or(&0);
    eprintln!(
        "{:?}: {seen} visitors in {pages} pages, {:.1}s; RSS after page 10 {} MiB, peak {} MiB, last {} MiB",
        env.backend,
        started.elapsed().as_secs_f64(),
        warm / 1024,
        peak / 1024,
        last / 1024
    );
    // Flat: after warm-up, the walk adds no more than a page's worth of slack.
    assert!(
        peak.saturating_sub(warm) < 64 * 1024,
        "memory grew {} MiB after warm-up",
        (peak - warm) / 1024
    );
}

#[test]
#[ignore]
fn large_pull_memory_is_flat_sqlite() {
    run(Env::open(Backend::Sqlite).expect("sqlite"));
}

#[test]
#[ignore]
fn large_pull_memory_is_flat_postgres() {
    let Some(env) = Env::open(Backend::Postgres) else {
        eprintln!("skipped: {PG_ENV} is not set");
        return;
    };
    run(env);
}
