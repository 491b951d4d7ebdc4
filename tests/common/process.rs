//! The operator as a separate process of the real binary, scoped to one namespace, with its
//! `/metrics` endpoint, its log file and its memory as the kernel counts it.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind loopback")
        .local_addr()
        .expect("local address")
        .port()
}

/// A running operator process. Killed when dropped.
pub struct OperatorProcess {
    child: Child,
    /// Port of `/metrics`, `/healthz`, `/readyz`.
    pub port: u16,
    /// Its stderr (the log).
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts `databricks-account-operator run` watching `namespace` only, allowed to call
    /// 127.0.0.1, with a 1 s busy poll unless `extra` sets one, plus `extra` arguments. `POD_NAME` is `name` (also its
    /// `User-Agent` comment) and `POD_NAMESPACE` is `namespace`.
    pub fn start(name: &str, namespace: &str, extra: &[&str]) -> Self {
        Self::start_watching(name, &[namespace.to_string()], extra)
    }

    /// As [`Self::start`], watching every namespace of `namespaces` (`POD_NAMESPACE` is the first).
    pub fn start_watching(name: &str, namespaces: &[String], extra: &[&str]) -> Self {
        let namespace = namespaces.first().map_or("default", String::as_str);
        let watch = namespaces.join(",");
        let port = free_port();
        let log = std::env::temp_dir().join(format!("dao-{namespace}-{name}.log"));
        // The log goes to stdout; panics and start-up errors to stderr: both into the file.
        let stderr = std::fs::File::create(&log).expect("log file");
        let stdout = stderr.try_clone().expect("log file handle");
        let child = Command::new(env!("CARGO_BIN_EXE_databricks-account-operator"))
            .args(["run", "--watch-namespaces", &watch])
            .args(
                (!extra.contains(&"--busy-poll-interval"))
                    .then_some(["--busy-poll-interval", "1s"])
                    .into_iter()
                    .flatten(),
            )
            .args(["--allowed-hosts", "127.0.0.1"])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", namespace)
            .env(
                "RUST_LOG",
                std::env::var("OPERATOR_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("the operator binary starts");
        Self { child, port, log }
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal by name (`STOP`, `CONT`, `KILL`, `TERM`).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig} {} failed", self.pid());
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the process is alive");
        status
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid()))
    }

    /// CPU time the process has used so far, user and system, in seconds (`utime` + `stime` of
    /// `/proc/PID/stat`).
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("the process is alive");
        // The fields after the command name, which is in parentheses and may contain spaces:
        // state is field 3, utime 14 and stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| -> f64 {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no field {} in /proc/{}/stat", i + 3, self.pid()))
        };
        (ticks(11) + ticks(12)) / clock_ticks_per_second()
    }

    /// Sends SIGTERM and waits for the process to exit; SIGKILL after `patience`. Returns whether
    /// it exited by itself.
    pub async fn stop(&mut self, patience: Duration) -> bool {
        self.signal("TERM");
        let deadline = std::time::Instant::now() + patience;
        while std::time::Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// `/metrics` as text. Fails the test when the endpoint does not answer: an unreachable
    /// endpoint must never read as zero.
    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        let mut last = String::new();
        for _ in 0..40 {
            match reqwest::Client::new()
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return r.text().await.expect("metrics body"),
                Ok(r) => last = format!("status {}", r.status()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{url} does not answer: {last}");
    }

    /// The sum of the samples of a metric whose line starts with `prefix` (for example
    /// `databricks_operator_tracked_entries{map="gates"}`). Fails when no line matches.
    pub async fn metric(&self, prefix: &str) -> f64 {
        let text = self.metrics().await;
        let values: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        assert!(!values.is_empty(), "no metric line starts with {prefix}");
        values.iter().sum()
    }
}

/// The unit of the CPU times in `/proc/PID/stat` (`USER_HZ`, 100 on Linux unless `getconf`
/// says otherwise).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
