//! The report: a table per run, Steward/baseline ratios, and the same as JSON.

use std::time::Duration;

use serde::Serialize;

use crate::load::{Stats, Workload};
use crate::maintenance::Maintenance;

/// Items processed by one timed operation (seeding, a verification, a re-encryption).
#[derive(Debug, Serialize)]
pub struct Throughput {
    pub count: u64,
    pub elapsed_s: f64,
    pub per_s: f64,
    /// Highest VmRSS of the spawned server sampled during the operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mb: Option<f64>,
}

impl Throughput {
    pub fn new(count: u64, elapsed: Duration, peak_rss_mb: Option<f64>) -> Self {
        let elapsed_s = elapsed.as_secs_f64();
        Throughput {
            count,
            elapsed_s,
            per_s: div(count as f64, elapsed_s),
            peak_rss_mb,
        }
    }

    /// `N <unit> in X s = Y <unit>/s`.
    pub fn describe(&self, unit: &str) -> String {
        format!(
            "{} {unit} in {:.2} s = {:.0} {unit}/s",
            self.count, self.elapsed_s, self.per_s
        )
    }

    fn rss(&self) -> String {
        self.peak_rss_mb
            .map_or_else(String::new, |v| format!(", peak RSS {v:.1} MB"))
    }
}

#[derive(Debug, Serialize)]
pub struct RunResult {
    pub workload: &'static str,
    pub server: &'static str,
    /// Completed requests (2xx and errors).
    pub requests: u64,
    pub errors: u64,
    /// Fixed-rate runs: requests scheduled within the duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<u64>,
    pub elapsed_s: f64,
    /// Successful requests per second.
    pub throughput_rps: f64,
    /// `import`: visitors written per second; `pull`: visitors received per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visitors_per_s: Option<f64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Highest VmRSS of the spawned server sampled during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_mb: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub error_samples: Vec<String>,
}

impl RunResult {
    pub fn new(
        workload: Workload,
        server: &'static str,
        stats: &Stats,
        peak_rss_mb: Option<f64>,
    ) -> Self {
        let rps = stats.throughput();
        RunResult {
            workload: workload.as_str(),
            server,
            requests: stats.requests,
            errors: stats.errors,
            scheduled: stats.scheduled,
            elapsed_s: stats.elapsed.as_secs_f64(),
            throughput_rps: rps,
            visitors_per_s: workload.counts_visitors().then(|| stats.visitors_per_s()),
            p50_ms: stats.percentile_ms(50.0),
            p90_ms: stats.percentile_ms(90.0),
            p99_ms: stats.percentile_ms(99.0),
            max_ms: stats.max_ms(),
            peak_rss_mb,
            error_samples: stats.error_samples.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Ratio {
    pub workload: &'static str,
    /// Steward throughput / baseline throughput (< 1: Steward is slower).
    pub throughput: f64,
    /// Steward latency / baseline latency (> 1: Steward is slower).
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub backend: &'static str,
    pub mode: String,
    pub duration_s: f64,
    pub seed_visitors: usize,
    pub cores: usize,
    pub load_average_start: String,
    pub load_average_end: String,
    /// The spawned server's VmHWM at the end (its peak RSS over the whole run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steward_vm_hwm_mb: Option<f64>,
    /// Steward's seeding through `visitors:batch`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeding: Option<Throughput>,
    /// PostgreSQL: seconds the `VACUUM ANALYZE` after seeding took; absent if it did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vacuum_secs: Option<f64>,
    pub results: Vec<RunResult>,
    pub ratios: Vec<Ratio>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

fn div(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

impl Report {
    pub fn new(
        backend: &'static str,
        mode: String,
        duration: Duration,
        seed_visitors: usize,
        cores: usize,
        load_average_start: String,
    ) -> Self {
        Report {
            backend,
            mode,
            duration_s: duration.as_secs_f64(),
            seed_visitors,
            cores,
            load_average_start,
            load_average_end: String::new(),
            steward_vm_hwm_mb: None,
            seeding: None,
            vacuum_secs: None,
            results: Vec::new(),
            ratios: Vec::new(),
            maintenance: None,
        }
    }

    pub fn push(&mut self, r: RunResult) {
        self.results.push(r);
    }

    pub fn finish(&mut self, load_average_end: String, hwm: Option<f64>) {
        self.load_average_end = load_average_end;
        self.steward_vm_hwm_mb = hwm;
        let mut ratios = Vec::new();
        for s in self.results.iter().filter(|r| r.server == "steward") {
            if let Some(b) = self
                .results
                .iter()
                .find(|r| r.server == "baseline" && r.workload == s.workload)
            {
                ratios.push(Ratio {
                    workload: s.workload,
                    throughput: div(s.throughput_rps, b.throughput_rps),
                    p50: div(s.p50_ms, b.p50_ms),
                    p99: div(s.p99_ms, b.p99_ms),
                });
            }
        }
        self.ratios = ratios;
    }

    pub fn print_text(&self) {
        println!(
            "steward-bench: backend {}, {}, {:.0}s per run, {} seeded visitors, {} cores",
            self.backend, self.mode, self.duration_s, self.seed_visitors, self.cores
        );
        println!(
            "load average (1/5/15 min): {} at start, {} at end",
            self.load_average_start, self.load_average_end
        );
        if let Some(s) = &self.seeding {
            println!("seeding: {}{}", s.describe("visitors"), s.rss());
        }
        if let Some(v) = self.vacuum_secs {
            println!("VACUUM ANALYZE after seeding: {v:.1} s");
        }
        if !self.results.is_empty() {
            self.print_results();
        }
        if let Some(m) = &self.maintenance {
            println!("\nmaintenance");
            println!(
                "  verify      {}{}",
                m.verify_events.describe("events"),
                m.verify_events.rss()
            );
            println!(
                "  re-encrypt  {}{}",
                m.reencrypt_records.describe("records"),
                m.reencrypt_records.rss()
            );
        }
        if let Some(h) = self.steward_vm_hwm_mb {
            println!("\nsteward peak RSS over the whole run (VmHWM): {h:.1} MB");
        }
        self.print_errors_and_ratios();
    }

    fn print_results(&self) {
        println!();
        println!(
            "{:<8} {:<9} {:>9} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9}",
            "workload",
            "server",
            "requests",
            "req/s",
            "visitors/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "errors",
            "RSS MB"
        );
        for r in &self.results {
            println!(
                "{:<8} {:<9} {:>9} {:>10.1} {:>11} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>9}",
                r.workload,
                r.server,
                r.requests,
                r.throughput_rps,
                r.visitors_per_s
                    .map_or_else(|| "-".to_string(), |v| format!("{v:.0}")),
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.max_ms,
                r.errors,
                r.peak_rss_mb
                    .map_or_else(|| "-".to_string(), |v| format!("{v:.1}")),
            );
            if let Some(s) = r.scheduled {
                if s != r.requests {
                    println!("{:<18} scheduled {s}, completed {}", "", r.requests);
                }
            }
        }
    }

    fn print_errors_and_ratios(&self) {
        let failing: Vec<&RunResult> = self
            .results
            .iter()
            .filter(|r| !r.error_samples.is_empty())
            .collect();
        if !failing.is_empty() {
            println!("\nfirst errors:");
            for r in failing {
                for e in &r.error_samples {
                    println!("  {} {}: {e}", r.workload, r.server);
                }
            }
        }
        if !self.ratios.is_empty() {
            println!("\nSteward / baseline");
            println!(
                "{:<8} {:>11} {:>9} {:>9}",
                "workload", "throughput", "p50", "p99"
            );
            for r in &self.ratios {
                println!(
                    "{:<8} {:>10.2}x {:>8.2}x {:>8.2}x",
                    r.workload, r.throughput, r.p50, r.p99
                );
            }
        }
    }
}
