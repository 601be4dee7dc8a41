//! `steward-bench`: sets up its own tenant, users, API key and data through Steward's public
//! API, drives named workloads over HTTP (closed loop at a fixed concurrency, or at a fixed
//! rate without coordinated omission) and reports throughput, latency percentiles, errors and
//! the server's peak RSS — and, with `--baseline`, the same against a minimal plaintext server
//! over the same database, with Steward/baseline ratios. With `--maintenance` (or
//! `--workload maintenance`) it also times verifying the tenant's whole audit chain and
//! re-encrypting all its visitors after a key rotation.

mod baseline;
mod load;
mod maintenance;
mod report;
mod spawn;
mod target;
mod vacuum;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use crate::baseline::{Baseline, Db};
use crate::load::{Stats, Workload};
use crate::report::{Report, RunResult, Throughput};
use crate::spawn::{ScratchDir, Spawned};
use crate::target::{http_client, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum WorkloadArg {
    Create,
    Read,
    Lookup,
    Mixed,
    Import,
    Pull,
    /// Every workload except `maintenance`.
    All,
    /// No workload, only the `--maintenance` measurements.
    Maintenance,
}

impl WorkloadArg {
    fn workloads(self) -> Vec<Workload> {
        match self {
            WorkloadArg::Create => vec![Workload::Create],
            WorkloadArg::Read => vec![Workload::Read],
            WorkloadArg::Lookup => vec![Workload::Lookup],
            WorkloadArg::Mixed => vec![Workload::Mixed],
            WorkloadArg::Import => vec![Workload::Import],
            WorkloadArg::Pull => vec![Workload::Pull],
            WorkloadArg::All => Workload::ALL.to_vec(),
            WorkloadArg::Maintenance => Vec::new(),
        }
    }
}

/// Load tool for Steward's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "steward-bench", version)]
struct Cli {
    /// A running Steward to load (its bootstrap admin's credentials come from
    /// `<data dir>/bootstrap-admin.txt` or --admin-password).
    #[arg(
        long,
        conflicts_with = "spawn",
        default_value = "http://127.0.0.1:8080"
    )]
    target: String,

    /// Start `steward serve` (--steward-bin) on a free port over a fresh data dir instead, and
    /// report its peak RSS.
    #[arg(long)]
    spawn: bool,

    /// The Steward binary for --spawn (build it first: `cargo build --release`).
    #[arg(long, default_value = "target/release/steward")]
    steward_bin: PathBuf,

    /// Steward's data dir. --spawn: default a fresh temp dir, removed afterwards. --target:
    /// where bootstrap-admin.txt is (default ./steward-data).
    #[arg(long)]
    data_dir: Option<PathBuf>,

    /// Database for the spawned Steward (`postgres://…`; default SQLite in the data dir) and
    /// for the baseline, which uses the same backend.
    #[arg(long)]
    database_url: Option<String>,

    /// Workload to run.
    #[arg(long, value_enum)]
    workload: WorkloadArg,

    /// Closed loop: tasks sending requests back to back.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,

    /// How long each workload runs: `10s`, `500ms`, `2m`, or seconds.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,

    /// Fixed-rate mode: requests per second, latency measured from each request's scheduled
    /// start (no coordinated omission). Replaces --concurrency.
    #[arg(long)]
    rate: Option<f64>,

    /// Fixed-rate mode: most requests in flight at once.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,

    /// Also run every workload against a minimal plaintext actix-web + diesel server over the
    /// same database (no auth, crypto or audit; one commit per request) and print ratios.
    #[arg(long)]
    baseline: bool,

    /// Visitors created (1,000 per batch call) before the workloads run.
    #[arg(long, default_value_t = 10_000)]
    seed_visitors: usize,

    /// Give every generated visitor its own phone number. By default all share one, so the
    /// phone blind index grows in order; with distinct numbers each visitor also costs a
    /// random leaf of that index, as real data would.
    #[arg(long)]
    distinct_phones: bool,

    /// Seeding batch calls in flight at once.
    #[arg(long, default_value_t = 4)]
    seed_parallel: usize,

    /// After the workloads, time verifying the tenant's whole audit chain and rotating its
    /// data key until every visitor is re-encrypted (Steward only).
    #[arg(long)]
    maintenance: bool,

    /// PostgreSQL: do not `VACUUM ANALYZE` the database after seeding (see `vacuum.rs`); the
    /// planner then works without statistics until autovacuum gathers them, if it is on.
    #[arg(long)]
    no_vacuum: bool,

    /// Also print the report as a JSON document.
    #[arg(long)]
    json: bool,

    /// The platform admin to log in as (--target mode).
    #[arg(long, default_value = "admin@steward.local")]
    admin_email: String,

    /// Its password (--target mode; default: read from bootstrap-admin.txt).
    #[arg(long, env = "STEWARD_BENCH_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,

    /// Pause between runs, letting the server settle (WAL checkpoints, pending commits).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pause: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit `{unit}` (ms, s, m)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err("the duration must be positive".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    if let Err(e) = result {
        eprintln!("steward-bench: {e:#}");
        std::process::exit(1);
    }
}

async fn run_one(target: &Arc<Target>, workload: Workload, cli: &Cli) -> anyhow::Result<Stats> {
    match cli.rate {
        Some(rate) => {
            load::fixed_rate(
                target.clone(),
                workload,
                rate,
                cli.duration,
                cli.max_in_flight,
            )
            .await
        }
        None => load::closed_loop(target.clone(), workload, cli.concurrency, cli.duration).await,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(rate) = cli.rate {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("--rate must be a positive number of requests per second");
        }
    }
    let maintenance = cli.maintenance || cli.workload == WorkloadArg::Maintenance;
    if cli.baseline && cli.workload == WorkloadArg::Maintenance {
        bail!("--baseline needs a workload: the baseline has no audit log or keys to maintain");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let client = http_client()?;
    let load_start = load_average();
    let backend = match cli.database_url.as_deref() {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => "postgres",
        Some(_) => "sqlite",
        None => "sqlite",
    };

    // The server under test.
    let dir = Arc::new(ScratchDir::new(cli.data_dir.as_deref())?);
    let spawned = if cli.spawn {
        eprintln!("starting {} serve …", cli.steward_bin.display());
        let s = Spawned::start(
            &cli.steward_bin,
            dir.clone(),
            cli.database_url.as_deref(),
            &client,
        )
        .await?;
        eprintln!(
            "steward pid {} at {} (data dir {})",
            s.pid(),
            s.base,
            dir.path.display()
        );
        Some(s)
    } else {
        None
    };
    let (base, admin_email, admin_password) = match &spawned {
        Some(s) => (
            s.base.clone(),
            s.admin_email.clone(),
            s.admin_password.clone(),
        ),
        None => {
            let password = match &cli.admin_password {
                Some(p) => p.clone(),
                None => {
                    let d = cli
                        .data_dir
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("steward-data"));
                    spawn::read_bootstrap_admin(&d)?.1
                }
            };
            (cli.target.clone(), cli.admin_email.clone(), password)
        }
    };

    eprintln!("setting up a tenant, its admin and an API key through the API …");
    let mut steward =
        Target::steward_setup(client.clone(), &base, &admin_email, &admin_password).await?;
    steward.distinct_phones = cli.distinct_phones;
    let mut workloads = cli.workload.workloads();
    if !steward.can_pull() {
        if cli.workload == WorkloadArg::Pull {
            bail!("the pull workload needs a subprocessor, and setting one up failed (above)");
        }
        if workloads.contains(&Workload::Pull) {
            eprintln!(
                "skipping the pull workload: no subprocessor (this Steward has no registry?)"
            );
            workloads.retain(|w| *w != Workload::Pull);
        }
    }
    eprintln!("seeding {} visitors into Steward …", cli.seed_visitors);
    if let Some(s) = &spawned {
        s.rss.reset();
    }
    let t = std::time::Instant::now();
    steward.seed(cli.seed_visitors, cli.seed_parallel).await?;
    let seeding = Throughput::new(
        steward.seeded() as u64,
        t.elapsed(),
        spawned.as_ref().map(|s| s.rss.window_peak_mb()),
    );
    eprintln!("  seeded {}", seeding.describe("visitors"));
    let steward = Arc::new(steward);

    // The baseline, in this process.
    let (baseline_server, baseline_target) = if cli.baseline {
        let db = match (backend, cli.database_url.as_deref()) {
            ("postgres", Some(url)) => Db::Postgres(url.to_string()),
            _ => Db::Sqlite(dir.path.join("baseline.sqlite")),
        };
        if let Db::Sqlite(p) = &db {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
            }
        }
        let server = tokio::task::spawn_blocking(move || Baseline::start(db, cores))
            .await
            .context("baseline start panicked")??;
        eprintln!("baseline at {} ({})", server.base, server.db().describe());
        let mut t = Target::baseline(client.clone(), &server.base, baseline::TENANT);
        t.distinct_phones = cli.distinct_phones;
        eprintln!("seeding {} visitors into the baseline …", cli.seed_visitors);
        let started = std::time::Instant::now();
        t.seed(cli.seed_visitors, cli.seed_parallel).await?;
        eprintln!(
            "  seeded {} in {:.1}s",
            t.seeded(),
            started.elapsed().as_secs_f64()
        );
        (Some(server), Some(Arc::new(t)))
    } else {
        (None, None)
    };

    let vacuum_secs = match (cli.no_vacuum, backend, cli.database_url.clone()) {
        (false, "postgres", Some(url)) => {
            eprintln!("VACUUM ANALYZE after seeding (--no-vacuum skips it) …");
            let took = tokio::task::spawn_blocking(move || vacuum::vacuum_analyze(&url))
                .await
                .context("vacuum panicked")??;
            eprintln!("  done in {:.1} s", took.as_secs_f64());
            Some(took.as_secs_f64())
        }
        _ => None,
    };

    let mode = match cli.rate {
        Some(r) => format!("fixed rate {r} req/s (max {} in flight)", cli.max_in_flight),
        None => format!("closed loop, concurrency {}", cli.concurrency),
    };
    let mut report = Report::new(
        backend,
        mode,
        cli.duration,
        cli.seed_visitors,
        cores,
        load_start,
    );
    report.seeding = Some(seeding);
    report.vacuum_secs = vacuum_secs;

    for workload in workloads {
        tokio::time::sleep(cli.pause).await;
        eprintln!(
            "running {} against steward for {:?} …",
            workload.as_str(),
            cli.duration
        );
        if workload == Workload::Pull {
            steward.refresh_pull_token().await?;
        }
        if let Some(s) = &spawned {
            s.rss.reset();
        }
        let stats = run_one(&steward, workload, &cli).await?;
        let rss = spawned.as_ref().map(|s| s.rss.window_peak_mb());
        report.push(RunResult::new(
            workload,
            steward.flavor.as_str(),
            &stats,
            rss,
        ));
        if let Some(b) = &baseline_target {
            tokio::time::sleep(cli.pause).await;
            eprintln!(
                "running {} against the baseline for {:?} …",
                workload.as_str(),
                cli.duration
            );
            let stats = run_one(b, workload, &cli).await?;
            report.push(RunResult::new(workload, b.flavor.as_str(), &stats, None));
        }
    }
    if maintenance {
        tokio::time::sleep(cli.pause).await;
        let rss = spawned.as_ref().map(|s| &s.rss);
        report.maintenance = Some(maintenance::run(&steward, rss).await?);
    }
    report.finish(
        load_average(),
        spawned.as_ref().and_then(|s| s.rss.hwm_mb()),
    );
    report.print_text();
    if let Some(s) = &spawned {
        let errors = s.error_lines(10);
        if !errors.is_empty() {
            println!("\nserver log, first ERROR lines:");
            for line in errors {
                println!("  {line}");
            }
        }
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }

    if let Some(b) = baseline_server {
        b.stop().await;
    }
    drop(spawned);
    drop(dir);
    Ok(())
}
