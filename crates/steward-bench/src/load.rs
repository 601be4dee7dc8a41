//! The two ways to apply load: closed loop (N tasks back to back) and fixed rate (request i
//! scheduled at start + i/rate, latency measured from the schedule: no coordinated omission).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

use crate::target::{Op, Outcome, Rng, Target};

/// How many failure messages a run keeps for the report.
const ERROR_SAMPLES: usize = 5;
/// Histogram range: 1 µs to 10 minutes, 3 significant digits.
const HIST_MAX_US: u64 = 600_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Single visitor creates.
    Create,
    /// Get a seeded visitor by id (audited).
    Read,
    /// Find a seeded visitor by e-mail.
    Lookup,
    /// 80 % read, 15 % create/patch (half each), 5 % lookup.
    Mixed,
    /// Batch create, 1,000 visitors per call.
    Import,
    /// A subprocessor pulling pages of 1,000 visitors (each page starts after a random seeded
    /// visitor).
    Pull,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Create,
        Workload::Read,
        Workload::Lookup,
        Workload::Mixed,
        Workload::Import,
        Workload::Pull,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Read => "read",
            Workload::Lookup => "lookup",
            Workload::Mixed => "mixed",
            Workload::Import => "import",
            Workload::Pull => "pull",
        }
    }

    fn pick(self, rng: &mut Rng) -> Op {
        match self {
            Workload::Create => Op::Create,
            Workload::Read => Op::Read,
            Workload::Lookup => Op::Lookup,
            Workload::Import => Op::Import,
            Workload::Pull => Op::Pull,
            Workload::Mixed => match rng.below(200) {
                0..160 => Op::Read,
                160..175 => Op::Create,
                175..190 => Op::Patch,
                _ => Op::Lookup,
            },
        }
    }

    /// Whether the report shows visitors/s (requests carrying many visitors).
    pub fn counts_visitors(self) -> bool {
        matches!(self, Workload::Import | Workload::Pull)
    }
}

/// What one run measured.
#[derive(Debug)]
pub struct Stats {
    /// Latency of every completed request, in µs.
    pub hist: Histogram<u64>,
    pub requests: u64,
    pub errors: u64,
    /// Visitors carried by successful `import`/`pull` responses.
    pub visitors: u64,
    pub error_samples: Vec<String>,
    /// From the first request to the last completion.
    pub elapsed: Duration,
    /// Fixed-rate runs: how many requests were scheduled.
    pub scheduled: Option<u64>,
}

impl Stats {
    fn new() -> anyhow::Result<Self> {
        Ok(Stats {
            hist: Histogram::new_with_bounds(1, HIST_MAX_US, 3)
                .map_err(|e| anyhow!("histogram: {e}"))?,
            requests: 0,
            errors: 0,
            visitors: 0,
            error_samples: Vec::new(),
            elapsed: Duration::ZERO,
            scheduled: None,
        })
    }

    fn record(&mut self, latency: Duration, outcome: Outcome) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.hist.saturating_record(us.max(1));
        self.requests += 1;
        self.visitors += outcome.visitors();
        if !outcome.ok {
            self.errors += 1;
            if let Some(e) = outcome.error {
                if self.error_samples.len() < ERROR_SAMPLES {
                    self.error_samples.push(e);
                }
            }
        }
    }

    fn merge(&mut self, other: Stats) -> anyhow::Result<()> {
        self.hist
            .add(&other.hist)
            .map_err(|e| anyhow!("merging histograms: {e}"))?;
        self.requests += other.requests;
        self.errors += other.errors;
        self.visitors += other.visitors;
        for e in other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES {
                self.error_samples.push(e);
            }
        }
        Ok(())
    }

    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.requests - self.errors) as f64 / secs
        } else {
            0.0
        }
    }

    /// Latency at `q` (0–100), in milliseconds.
    pub fn visitors_per_s(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.visitors as f64 / secs
        } else {
            0.0
        }
    }

    pub fn percentile_ms(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_percentile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.max() as f64 / 1000.0
    }
}

fn seed_for(i: u64) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ i.wrapping_mul(0xA24B_AED4_963E_E407)
}

/// `concurrency` tasks, each sending requests back to back until `duration` has passed.
/// Requests in flight at the deadline complete and count.
pub async fn closed_loop(
    target: Arc<Target>,
    workload: Workload,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency.max(1) {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::new()?;
            let mut rng = Rng::new(seed_for(i as u64));
            while Instant::now() < deadline {
                let req = target.prepare(workload.pick(&mut rng), &mut rng)?;
                let sent = Instant::now();
                let outcome = target.execute(req, workload.counts_visitors()).await;
                stats.record(sent.elapsed(), outcome);
            }
            anyhow::Ok(stats)
        }));
    }
    let mut total = Stats::new()?;
    for t in tasks {
        total.merge(t.await.context("a load task panicked")??)?;
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// Request i is due at start + i/rate; it is sent then (or as soon as one of `max_in_flight`
/// slots frees up) and its latency runs from when it was *due*, so a stalled server shows up
/// in the percentiles instead of silently lowering the request rate.
pub async fn fixed_rate(
    target: Arc<Target>,
    workload: Workload,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> anyhow::Result<Stats> {
    let stats = Arc::new(Mutex::new(Stats::new()?));
    let slots = Arc::new(Semaphore::new(max_in_flight.max(1)));
    let mut rng = Rng::new(seed_for(u64::MAX));
    let start = Instant::now();
    let mut scheduled: u64 = 0;
    loop {
        let due = start + Duration::from_secs_f64(scheduled as f64 / rate);
        if due >= start + duration {
            break;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .context("in-flight semaphore closed")?;
        let req = target.prepare(workload.pick(&mut rng), &mut rng)?;
        let target = target.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let outcome = target.execute(req, workload.counts_visitors()).await;
            let latency = due.elapsed();
            if let Ok(mut s) = stats.lock() {
                s.record(latency, outcome);
            }
            drop(permit);
        });
        scheduled += 1;
    }
    // Wait for the stragglers: every slot free again.
    let all = u32::try_from(max_in_flight.max(1)).unwrap_or(u32::MAX);
    let _all = slots
        .acquire_many(all)
        .await
        .context("in-flight semaphore closed")?;
    let elapsed = start.elapsed();
    let mut guard = stats.lock().map_err(|_| anyhow!("stats lock poisoned"))?;
    let mut out = std::mem::replace(&mut *guard, Stats::new()?);
    out.elapsed = elapsed;
    out.scheduled = Some(scheduled);
    Ok(out)
}
