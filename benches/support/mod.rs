//! Helpers of the benchmark harness: child processes and what `/proc` says about them,
//! the machine, the client certificate, percentiles, and the child roles (JSON echo,
//! Authy simulator) that the harness binary plays when it starts itself again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

pub mod roles;

/// Environment variable that makes the harness binary play a child role instead of the
/// benchmark (`echo` or `simulator`).
pub const ROLE_ENV: &str = "B2C_BENCH_ROLE";
/// Port a child role listens on (127.0.0.1).
pub const PORT_ENV: &str = "B2C_BENCH_PORT";
/// Set once the harness has re-executed itself with a raised open-file limit.
const REEXEC_ENV: &str = "B2C_BENCH_NOFILE_RAISED";

/// Linux's clock tick for `/proc/<pid>/stat` times (`getconf CLK_TCK`: 100 on every
/// mainstream Linux build).
const CLK_TCK: f64 = 100.0;

/// `(soft, hard)` open-file limits of this process, from `/proc/self/limits`.
pub fn nofile_limits() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut fields = line["Max open files".len()..].split_whitespace();
    let parse = |s: Option<&str>| match s? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((parse(fields.next())?, parse(fields.next())?))
}

/// Raises the open-file soft limit to the hard limit, without `libc`: when the soft limit is
/// lower, the harness executes itself again through `sh -c 'ulimit -Sn <hard>; exec ...'`
/// (the processes it starts inherit the limit). Returns only when nothing had to change or
/// the raise failed (then the harness runs with what it has and says so).
pub fn raise_nofile_limit() {
    let Some((soft, hard)) = nofile_limits() else {
        return;
    };
    if soft >= hard || std::env::var_os(REEXEC_ENV).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let limit = if hard == u64::MAX {
        "unlimited".to_owned()
    } else {
        hard.to_string()
    };
    let error = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -Sn {limit} && exec \"$0\" \"$@\""))
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(REEXEC_ENV, "1")
        .exec();
    eprintln!("warning: could not raise the open-file limit from {soft} to {hard}: {error}");
}

/// Dispatches a child role when [`ROLE_ENV`] is set.
pub fn child_role() -> Option<ExitCode> {
    let role = std::env::var(ROLE_ENV).ok()?;
    Some(roles::run(&role))
}

/// A free port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The machine: cores, memory, kernel, load.
pub struct Machine {
    /// `std::thread::available_parallelism`.
    pub cores: usize,
    /// `MemTotal`, in GiB.
    pub memory_gib: f64,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// CPU model name.
    pub cpu: String,
}

impl Machine {
    /// Reads `/proc`.
    pub fn read() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown", |(_, v)| v.trim())
            .to_owned();
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: mem_kb / 1024.0 / 1024.0,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            cpu,
        }
    }
}

/// `git describe --always --dirty` of the crate's tree, when git is there.
pub fn tree_state() -> String {
    Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown (no git)".into())
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `TcpExtListenOverflows` of the whole machine (`/proc/net/netstat`): connections dropped
/// because a listen queue was full (the client retries its SYN after 1 s, then 3 s).
pub fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        if let Some((_, value)) = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(name, _)| *name == "ListenOverflows")
        {
            return value.parse().unwrap_or(0);
        }
    }
    0
}

/// Busy and total jiffies of the whole machine (`/proc/stat`, first line).
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let get = |i: usize| values.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    (busy, busy + get(3) + get(4))
}

/// CPU seconds (user + system, all threads) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / CLK_TCK
}

/// Memory and handles of a process, from `/proc/<pid>/status` and `/proc/<pid>/fd`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    /// Peak resident set size (`VmHWM`), KiB.
    pub vm_hwm_kib: u64,
    /// Resident set size (`VmRSS`), KiB.
    pub vm_rss_kib: u64,
    /// Threads.
    pub threads: u64,
    /// Open file descriptors.
    pub fds: u64,
}

impl ProcSample {
    /// Reads `/proc/<pid>`.
    pub fn of(pid: u32) -> Self {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Self {
            vm_hwm_kib: field("VmHWM:"),
            vm_rss_kib: field("VmRSS:"),
            threads: field("Threads:"),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64),
        }
    }
}

/// CPU used by the machine and by given processes between two moments.
pub struct CpuWindow {
    started: Instant,
    machine: (u64, u64),
    processes: Vec<(String, u32, f64)>,
}

/// What a [`CpuWindow`] measured.
pub struct CpuUse {
    /// Wall time of the window, seconds.
    pub wall: f64,
    /// Per process: name and CPU seconds used in the window.
    pub processes: Vec<(String, f64)>,
    /// CPU seconds used by everything else on the machine (other builds and tests).
    pub others: f64,
    /// Busy share of the whole machine, 0..=1.
    pub machine_busy: f64,
}

impl CpuWindow {
    /// Starts a window over `processes` (name, pid); pass this process too.
    pub fn start(processes: &[(&str, u32)]) -> Self {
        Self {
            started: Instant::now(),
            machine: machine_jiffies(),
            processes: processes
                .iter()
                .map(|(name, pid)| ((*name).to_owned(), *pid, cpu_seconds(*pid)))
                .collect(),
        }
    }

    /// Ends the window.
    pub fn finish(&self) -> CpuUse {
        let (busy, total) = machine_jiffies();
        let busy = busy.saturating_sub(self.machine.0) as f64 / CLK_TCK;
        let total = total.saturating_sub(self.machine.1) as f64 / CLK_TCK;
        let processes: Vec<(String, f64)> = self
            .processes
            .iter()
            .map(|(name, pid, before)| (name.clone(), (cpu_seconds(*pid) - before).max(0.0)))
            .collect();
        let ours: f64 = processes.iter().map(|(_, s)| s).sum();
        CpuUse {
            wall: self.started.elapsed().as_secs_f64(),
            processes,
            others: (busy - ours).max(0.0),
            machine_busy: if total > 0.0 { busy / total } else { 0.0 },
        }
    }
}

impl CpuUse {
    /// `handler 1.23 s, simulator 0.40 s, ..., other processes 0.10 s (machine 97% busy)`.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (name, seconds) in &self.processes {
            let _ = write!(out, "{name} {seconds:.2} s, ");
        }
        let _ = write!(
            out,
            "other processes {:.2} s (machine {:.0}% busy over {:.1} s)",
            self.others,
            self.machine_busy * 100.0,
            self.wall
        );
        out
    }

    /// CPU seconds of the process called `name`.
    pub fn of(&self, name: &str) -> f64 {
        self.processes
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0.0, |(_, s)| *s)
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped. Its stderr goes to a file
/// that is shown if it fails.
pub struct Proc {
    child: std::process::Child,
    /// Its pid.
    pub pid: u32,
    name: String,
    stderr_path: PathBuf,
}

impl Proc {
    /// Spawns `command` with stdout discarded and stderr kept in a temporary file.
    pub fn spawn(name: &str, command: Command) -> Result<Self, String> {
        Self::spawn_logged(name, command, None)
    }

    /// Spawns `command` with stdout written to `stdout` (discarded when `None`) and stderr
    /// kept in a temporary file.
    pub fn spawn_logged(
        name: &str,
        mut command: Command,
        stdout: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let stderr_path = std::env::temp_dir().join(format!(
            "b2c-bench-{name}-{}-{}.stderr",
            std::process::id(),
            fastrand::u32(..)
        ));
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|e| format!("cannot create {}: {e}", stderr_path.display()))?;
        let stdout = match stdout {
            Some(path) => Stdio::from(
                std::fs::File::create(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?,
            ),
            None => Stdio::null(),
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Self {
            pid: child.id(),
            child,
            name: name.to_owned(),
            stderr_path,
        })
    }

    /// The last lines of its stderr.
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    /// `Err` with its stderr when it has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(format!(
                "{} exited ({status}):\n{}",
                self.name,
                self.stderr_tail()
            )),
            _ => Ok(()),
        }
    }

    /// `/proc/<pid>` memory and handles.
    pub fn sample(&self) -> ProcSample {
        ProcSample::of(self.pid)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// Waits until `url` answers HTTP (any status), at most 10 s.
pub async fn wait_http(client: &reqwest::Client, url: &str, proc: &mut Proc) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if client.get(url).send().await.is_ok() {
            return Ok(());
        }
        proc.check_alive()?;
        if Instant::now() > deadline {
            return Err(format!("{url} did not answer within 10 s"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A self-signed client certificate like B2C's
/// ([`b2c_authy::client_cert::SelfSignedClientCert`]): (base64 DER for `X-ARR-ClientCert`,
/// upper-case SHA-1 thumbprint for `CLIENT_CERT_THUMBPRINTS`).
pub fn client_cert() -> (String, String) {
    let cert = b2c_authy::client_cert::SelfSignedClientCert::generate("b2c.bench.example")
        .expect("a benchmark certificate");
    (cert.header_value(), cert.thumbprint().to_string())
}

/// Nearest-rank percentile of sorted values.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds as milliseconds with one decimal.
pub fn ms(us: i64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// Counts of error kinds, as `3 × HTTP 409 ApprovalExpired, 1 × timeout`.
pub fn describe_errors(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    errors
        .iter()
        .map(|(kind, n)| format!("{n} × {kind}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A reqwest error as a short kind.
pub fn transport_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut innermost = String::new();
    while let Some(s) = source {
        innermost = s.to_string();
        source = s.source();
    }
    if innermost.is_empty() {
        format!("transport {kind}")
    } else {
        format!("transport {kind}: {innermost}")
    }
}
