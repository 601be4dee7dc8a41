//! `--spawn`: run the real `steward serve` binary on a free port over a fresh data dir, and
//! sample its memory from `/proc/<pid>/status`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::target::wait_healthy;

/// A directory this tool made and removes when done.
#[derive(Debug)]
pub struct ScratchDir {
    pub path: PathBuf,
    remove: bool,
}

impl ScratchDir {
    /// `given` if the user named one (kept afterwards), else a fresh one under the temp dir.
    pub fn new(given: Option<&Path>) -> anyhow::Result<Self> {
        match given {
            Some(p) => {
                std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
                Ok(ScratchDir {
                    path: p.to_path_buf(),
                    remove: false,
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!(
                    "steward-bench-{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                ));
                std::fs::create_dir_all(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                Ok(ScratchDir { path, remove: true })
            }
        }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A `steward serve` child process.
pub struct Spawned {
    child: Child,
    pub base: String,
    pub admin_email: String,
    pub admin_password: String,
    pub rss: RssSampler,
    log: PathBuf,
    // Dropped after the child is stopped (field order).
    _dir: Arc<ScratchDir>,
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// The first `max` lines of a `tracing` log at ERROR level (none if it cannot be read).
fn error_lines(path: &Path, max: usize) -> Vec<String> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.contains(" ERROR "))
        .take(max)
        .collect()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Spawned {
    pub async fn start(
        bin: &Path,
        dir: Arc<ScratchDir>,
        database_url: Option<&str>,
        client: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!(
                "{} not found: build Steward first (`cargo build --release`) or pass --steward-bin",
                bin.display()
            );
        }
        let port = free_port()?;
        let log = dir.path.join("steward-serve.log");
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&dir.path)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        match database_url {
            Some(url) => {
                cmd.arg("--database-url").arg(url);
            }
            None => {
                // Otherwise an inherited DATABASE_URL would win over the fresh SQLite file.
                cmd.env_remove("DATABASE_URL");
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id();
        let base = format!("http://127.0.0.1:{port}");
        let mut spawned = Spawned {
            child,
            base,
            admin_email: String::new(),
            admin_password: String::new(),
            rss: RssSampler::start(pid)?,
            log,
            _dir: dir.clone(),
        };
        let log_path = spawned.log.clone();
        let child = &mut spawned.child;
        wait_healthy(
            client,
            &spawned.base,
            Duration::from_secs(120),
            || match child.try_wait() {
                Ok(Some(status)) => Some(format!(
                    "steward serve exited ({status}) before it was healthy; its log:\n{}",
                    tail(&log_path, 30)
                )),
                _ => None,
            },
        )
        .await?;
        let (email, password) = read_bootstrap_admin(&dir.path)?;
        spawned.admin_email = email;
        spawned.admin_password = password;
        Ok(spawned)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first `max` ERROR lines of the server's log. An internal error's cause is logged
    /// there and never sent to the client, and the scratch data dir holding the log is removed
    /// when the run ends, so the report prints them.
    pub fn error_lines(&self, max: usize) -> Vec<String> {
        error_lines(&self.log, max)
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.rss.stop();
        // SIGKILL: the data dir is scratch, and a durable server loses nothing acknowledged.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `email=` and `password=` from `bootstrap-admin.txt` in `data_dir`.
pub fn read_bootstrap_admin(data_dir: &Path) -> anyhow::Result<(String, String)> {
    let path = data_dir.join("bootstrap-admin.txt");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (the bootstrap admin's credentials; give --admin-password otherwise)",
            path.display()
        )
    })?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(str::to_string))
            .ok_or_else(|| anyhow!("{} has no `{name}` line", path.display()))
    };
    Ok((field("email=")?, field("password=")?))
}

/// A field of `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`).
pub fn proc_status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Samples a process's VmRSS every 200 ms; keeps the maximum since the last `reset`.
pub struct RssSampler {
    pid: u32,
    peak_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> anyhow::Result<Self> {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak_kb.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some(kb) = proc_status_kb(pid, "VmRSS") {
                        p.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
            .context("starting the RSS sampler")?;
        Ok(RssSampler {
            pid,
            peak_kb,
            stop,
            thread: Some(thread),
        })
    }

    /// Starts a new measurement window at the current RSS.
    pub fn reset(&self) {
        let now = proc_status_kb(self.pid, "VmRSS").unwrap_or(0);
        self.peak_kb.store(now, Ordering::Relaxed);
    }

    /// The highest RSS sampled since `reset`, in MB.
    pub fn window_peak_mb(&self) -> f64 {
        let now = proc_status_kb(self.pid, "VmRSS").unwrap_or(0);
        let kb = self.peak_kb.fetch_max(now, Ordering::Relaxed).max(now);
        kb as f64 / 1024.0
    }

    /// The kernel's high-water mark since the process started, in MB.
    pub fn hwm_mb(&self) -> Option<f64> {
        proc_status_kb(self.pid, "VmHWM").map(|kb| kb as f64 / 1024.0)
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::error_lines;

    #[test]
    fn picks_the_first_error_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("steward-serve.log");
        std::fs::write(
            &log,
            "2026-12-03T15:00:00Z  INFO steward_api: GET /v1/tenants/ten_1/visitors/vis_1 200\n\
             2026-12-03T15:00:01Z ERROR steward_api::error: internal error error=database is locked\n\
             2026-12-03T15:00:02Z  WARN steward_store: WAL checkpoint failed\n\
             2026-12-03T15:00:03Z ERROR steward_api::error: internal error error=second\n\
             2026-12-03T15:00:04Z ERROR steward_api::error: internal error error=third\n",
        )
        .unwrap();
        let lines = error_lines(&log, 2);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with("database is locked"));
        assert!(lines[1].ends_with("second"));
        assert!(error_lines(&dir.path().join("missing.log"), 10).is_empty());
    }
}
