//! Benchmark harness (issue 6): see BENCHMARKS.md.
//!
//! `cargo bench --locked --bench harness` builds the handler and this harness in release,
//! then, on loopback only, runs the built `handler` binary as a separate process and
//! measures, in one run, with the machine's core count:
//!
//! 1. `register`: `Register` throughput and p50/p99 latency against a zero-latency Authy
//!    (the built-in simulator, its own process), beside a bare axum JSON echo (the floor,
//!    its own process, same runtime), and their ratio;
//! 2. `held`: N concurrent `WaitForAuthyApproval` calls that Authy never answers
//!    (N = 1,000 and 10,000): errors, lateness past the budget, the handler's peak RSS;
//! 3. `approval`: approval → response latency when the simulator approves at a random
//!    moment, against the poll interval;
//! 4. `start`: process start → first answer to `GET /` (median of 21 starts);
//! 5. `store` (issue 13): what the push-limit store adds to `CreateApprovalRequest`: its
//!    p50/p99 latency with the limits in memory and in Azurite on loopback
//!    (`B2C_AUTHY_AZURITE`, a connection string; the Azurite half is skipped with a message
//!    when it is unset). With `B2C_AUTHY_AZURITE` set, scenario 2 runs the handler with its
//!    limits in Azurite too, to show the held waits unchanged. `B2C_BENCH_STORE_CALLS`: calls
//!    per store (default 8,000; quick 200); `B2C_BENCH_STORE_CONCURRENCY`: calls at a time
//!    (default 8; quick 4).
//!
//! Arguments after `--` choose scenarios (`register held approval start store`, default all) and
//! `quick` (a short smoke run). Environment: `B2C_BENCH_HANDLER` (another handler binary,
//! e.g. the musl build), `B2C_BENCH_CONCURRENCY` (scenario 1, default 32),
//! `B2C_BENCH_SECONDS` (scenario 1 measuring time per run, default 10), `B2C_BENCH_HELD`
//! (scenario 2 sizes, default `1000,10000`), `B2C_BENCH_POLL_MS` (scenario 3 poll intervals,
//! default `1000,250`), `B2C_BENCH_HANDLER_NOFILE` (open-file soft limit of the handler
//! process, to show what a low limit does).
//!
//! The harness binary also plays two child roles (`B2C_BENCH_ROLE=echo|simulator`), so the
//! floor and the simulator run as processes of their own like the handler.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::roles::GatedSimulator;
use support::{
    describe_errors, free_port, ms, percentile, transport_error, wait_http, CpuUse, CpuWindow,
    Machine, Proc, ProcSample, PORT_ENV, ROLE_ENV,
};

/// The Authy API key the simulators accept and the handler sends.
const API_KEY: &str = "bench-authy-key-7d2e";

/// Scenario 1's request: the same bytes go to the echo and to the handler.
const REGISTER_BODY: &str = r#"{"email":"alice@example.com","phoneNumber":"+1 425 555 0100","correlationId":"0f8fad5b-d9cb-469f-a165-70867728950e"}"#;

/// Simulator trigger `0103`: approval requests stay pending until they expire.
const NEVER_ANSWERED_AUTHY_ID: &str = "14255550103";

/// An ordinary number: approved (here: when the gate opens).
const APPROVED_AUTHY_ID: &str = "14255550100";

/// The handler's settings the harness sets or clears, so the caller's environment cannot
/// change a measurement.
const HANDLER_SETTINGS: &[&str] = b2c_authy::config::SETTING_NAMES;

/// Targets of issue 6.
const RATIO_TARGET: f64 = 0.6;
const LATENESS_P99_TARGET: Duration = Duration::from_millis(100);
const RSS_TARGET_BYTES: u64 = 64_000_000;
const APPROVAL_SLACK: Duration = Duration::from_millis(50);
const START_TARGET: Duration = Duration::from_millis(20);

/// The budget the handler runs with in scenarios 2 and 3 (`APPROVAL_WAIT_SECONDS`, its
/// default).
const BUDGET_SECONDS: u64 = 7;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scenario {
    Register,
    Held,
    Approval,
    Start,
    Store,
}

const ALL: [Scenario; 5] = [
    Scenario::Register,
    Scenario::Held,
    Scenario::Approval,
    Scenario::Start,
    Scenario::Store,
];

struct Options {
    scenarios: Vec<Scenario>,
    quick: bool,
    handler: PathBuf,
    concurrency: usize,
    measure: Duration,
    warmup: Duration,
    rounds: usize,
    held: Vec<usize>,
    polls: Vec<u64>,
    approval_samples: usize,
    starts: usize,
    handler_nofile: Option<u64>,
}

fn env_list<T: std::str::FromStr>(name: &str) -> Option<Vec<T>> {
    let value = std::env::var(name).ok()?;
    let list: Vec<T> = value
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    (!list.is_empty()).then_some(list)
}

fn env_value<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok()?.trim().parse().ok()
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut scenarios = Vec::new();
        let mut quick = std::env::var_os("B2C_BENCH_QUICK").is_some();
        // `cargo bench` passes `--bench`; other `--` flags are ignored too.
        for arg in std::env::args().skip(1).filter(|a| !a.starts_with("--")) {
            match arg.as_str() {
                "register" => scenarios.push(Scenario::Register),
                "held" => scenarios.push(Scenario::Held),
                "approval" => scenarios.push(Scenario::Approval),
                "start" => scenarios.push(Scenario::Start),
                "store" => scenarios.push(Scenario::Store),
                "quick" => quick = true,
                other => {
                    return Err(format!(
                    "unknown argument {other:?}: expected register, held, approval, start, store, quick"
                ))
                }
            }
        }
        if scenarios.is_empty() {
            scenarios = ALL.to_vec();
        }
        let handler = std::env::var_os("B2C_BENCH_HANDLER").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_handler")),
            PathBuf::from,
        );
        let seconds: f64 = env_value("B2C_BENCH_SECONDS").unwrap_or(if quick { 2.0 } else { 10.0 });
        Ok(Self {
            scenarios,
            quick,
            handler,
            concurrency: env_value("B2C_BENCH_CONCURRENCY").unwrap_or(32),
            measure: Duration::from_secs_f64(seconds),
            warmup: Duration::from_secs_f64(if quick { 0.5 } else { 2.0 }),
            rounds: if quick { 1 } else { 2 },
            held: env_list("B2C_BENCH_HELD").unwrap_or_else(|| {
                if quick {
                    vec![1_000]
                } else {
                    vec![1_000, 10_000]
                }
            }),
            polls: env_list("B2C_BENCH_POLL_MS").unwrap_or_else(|| {
                if quick {
                    vec![250]
                } else {
                    vec![1000, 250]
                }
            }),
            approval_samples: if quick { 50 } else { 300 },
            starts: if quick { 5 } else { 21 },
            handler_nofile: env_value("B2C_BENCH_HANDLER_NOFILE"),
        })
    }
}

/// What scenario 1 loads.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum System {
    Echo,
    Forward,
    Handler,
}

impl System {
    fn label(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Forward => "forward",
            Self::Handler => "handler Register",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Met,
    Missed,
    Info,
}

struct Row {
    measurement: String,
    target: String,
    result: String,
    verdict: Verdict,
}

struct Harness {
    options: Options,
    cert: String,
    thumbprint: String,
    /// Probes readiness (`GET /`).
    probe: reqwest::Client,
    rows: Vec<Row>,
    /// The report, markdown.
    out: String,
}

/// Prints a line and keeps it for the report file.
macro_rules! say {
    ($h:expr, $($arg:tt)*) => {{
        let line = format!($($arg)*);
        println!("{line}");
        $h.out.push_str(&line);
        $h.out.push('\n');
    }};
}

fn main() -> ExitCode {
    if let Some(code) = support::child_role() {
        return code;
    }
    support::raise_nofile_limit();
    let options = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mut harness = Harness::new(options);
        harness.run().await
    })
}

impl Harness {
    fn new(options: Options) -> Self {
        let (cert, thumbprint) = support::client_cert();
        Self {
            options,
            cert,
            thumbprint,
            probe: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client"),
            rows: Vec::new(),
            out: String::new(),
        }
    }

    async fn run(&mut self) -> ExitCode {
        let machine = Machine::read();
        let (soft, hard) = support::nofile_limits().unwrap_or((0, 0));
        say!(self, "# b2c-authy benchmark harness");
        say!(self, "");
        say!(
            self,
            "- machine: {} cores ({}), {:.1} GiB memory, Linux {}",
            machine.cores,
            machine.cpu,
            machine.memory_gib,
            machine.kernel
        );
        say!(self, "- load average at start: {}", support::loadavg());
        say!(self, "- source tree: {}", support::tree_state());
        say!(
            self,
            "- handler: {} (its open-file soft limit: {})",
            self.options.handler.display(),
            self.options
                .handler_nofile
                .map_or_else(|| format!("inherited, {soft}"), |n| n.to_string())
        );
        say!(self, "- harness open-file limit: soft {soft}, hard {hard}");
        say!(
            self,
            "- mode: {}",
            if self.options.quick {
                "quick (smoke test: short runs, small N; not the reference numbers)"
            } else {
                "full"
            }
        );
        let started = Instant::now();
        let scenarios = self.options.scenarios.clone();
        let mut failed = false;
        for scenario in scenarios {
            say!(self, "");
            let result = match scenario {
                Scenario::Register => self.register().await,
                Scenario::Held => self.held().await,
                Scenario::Approval => self.approval().await,
                Scenario::Start => self.start().await,
                Scenario::Store => self.store().await,
            };
            if let Err(e) = result {
                failed = true;
                say!(self, "**{scenario:?} failed:** {e}");
            }
        }
        say!(self, "");
        say!(
            self,
            "## Summary ({} cores, load average at end {}, {:.0} s)",
            machine.cores,
            support::loadavg(),
            started.elapsed().as_secs_f64()
        );
        say!(self, "");
        say!(self, "| measurement | target | result | verdict |");
        say!(self, "|---|---|---|---|");
        let rows = std::mem::take(&mut self.rows);
        for row in &rows {
            let verdict = match row.verdict {
                Verdict::Met => "met",
                Verdict::Missed => "**missed**",
                Verdict::Info => "—",
            };
            say!(
                self,
                "| {} | {} | {} | {} |",
                row.measurement,
                row.target,
                row.result,
                verdict
            );
        }
        self.write_report();
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }

    /// Writes the report next to the build output: `target/bench-harness-report.md`.
    fn write_report(&self) {
        let Some(target) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.ancestors().nth(3).map(PathBuf::from))
        else {
            return;
        };
        let path = target.join("bench-harness-report.md");
        if std::fs::write(&path, &self.out).is_ok() {
            println!("\n(report written to {})", path.display());
        }
    }

    fn row(&mut self, measurement: String, target: &str, result: String, verdict: Verdict) {
        self.rows.push(Row {
            measurement,
            target: target.to_owned(),
            result,
            verdict,
        });
    }

    /// The handler's command: only the settings given here, the accepted certificate's
    /// thumbprint, and a long approval-request lifetime.
    fn handler_command(
        &self,
        port: u16,
        authy_url: &str,
        settings: &[(&str, String)],
        limit_nofile: bool,
    ) -> Command {
        let mut command = match self.options.handler_nofile.filter(|_| limit_nofile) {
            Some(n) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("ulimit -Sn {n} && exec \"$0\""))
                    .arg(&self.options.handler);
                c
            }
            None => Command::new(&self.options.handler),
        };
        for name in HANDLER_SETTINGS {
            command.env_remove(name);
        }
        command
            .env("AUTHY_API_URL", authy_url)
            .env("AUTHY_API_KEY", API_KEY)
            .env("CLIENT_CERT_THUMBPRINTS", &self.thumbprint)
            .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
            .env("AUTHY_APPROVAL_TTL_SECONDS", "600");
        for (name, value) in settings {
            command.env(name, value);
        }
        command
    }

    async fn start_handler(
        &self,
        authy_url: &str,
        settings: &[(&str, String)],
    ) -> Result<(Proc, String), String> {
        self.start_handler_logged(authy_url, settings, None).await
    }

    /// [`Self::start_handler`] with the handler's stdout (its JSON log lines) kept in `log`.
    async fn start_handler_logged(
        &self,
        authy_url: &str,
        settings: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> Result<(Proc, String), String> {
        let port = free_port();
        let mut proc = Proc::spawn_logged(
            "handler",
            self.handler_command(port, authy_url, settings, true),
            log,
        )?;
        let base = format!("http://127.0.0.1:{port}");
        wait_http(&self.probe, &format!("{base}/"), &mut proc).await?;
        Ok((proc, base))
    }

    /// Starts this harness binary again as a child role (`echo`, `forward` or `simulator`).
    async fn start_role(
        &self,
        role: &str,
        env: &[(&str, String)],
    ) -> Result<(Proc, String), String> {
        let port = free_port();
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut command = Command::new(exe);
        command
            .env(ROLE_ENV, role)
            .env(PORT_ENV, port.to_string())
            .env("B2C_BENCH_API_KEY", API_KEY)
            .envs(env.iter().map(|(k, v)| (k, v)));
        let mut proc = Proc::spawn(role, command)?;
        let base = format!("http://127.0.0.1:{port}");
        wait_http(&self.probe, &format!("{base}/"), &mut proc).await?;
        Ok((proc, base))
    }

    /// A client like B2C behind App Service: the certificate header on every call.
    fn b2c_client(&self, idle_per_host: usize) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-arr-clientcert", self.cert.parse().expect("header value"));
        reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(idle_per_host)
            .build()
            .expect("client")
    }

    // ---------------------------------------------------------------- scenario 1

    async fn register(&mut self) -> Result<(), String> {
        let o = &self.options;
        let (c, warmup, measure, rounds) = (o.concurrency, o.warmup, o.measure, o.rounds);
        say!(
            self,
            "## 1. Register throughput against a zero-latency Authy, beside a bare axum JSON echo"
        );
        say!(self, "");
        say!(
            self,
            "Closed loop, {c} concurrent keep-alive connections, {:.1} s warm-up then {:.1} s measured per run, {rounds} round(s) of echo, forward and handler in turn; the same request bytes (JSON body + X-ARR-ClientCert header) to each. *echo*: bare axum JSON echo (the floor of the target). *forward*: the echo plus one reqwest call to the simulator's `users/new` per request (the topology's own cost: nothing of the product). *handler*: the built `handler` binary against the simulator (both processes of their own; the handler's stdout, one JSON log line per invocation, goes to /dev/null). CPU per request counts each process's user+system time over the measured window. Load average now: {}.",
            warmup.as_secs_f64(),
            measure.as_secs_f64(),
            support::loadavg()
        );
        say!(self, "");
        let client = self.b2c_client(usize::MAX);
        let mut best: BTreeMap<System, LoadResult> = BTreeMap::new();
        for round in 1..=rounds {
            for system in [System::Echo, System::Forward, System::Handler] {
                let result = self
                    .run_system(system, &[], &client, c, warmup, measure)
                    .await?;
                self.print_load(&format!("round {round}: {}", system.label()), &result);
                if best.get(&system).is_none_or(|b| result.rate() > b.rate()) {
                    best.insert(system, result);
                }
            }
        }
        let (Some(echo), Some(forward), Some(handler)) = (
            best.remove(&System::Echo),
            best.remove(&System::Forward),
            best.remove(&System::Handler),
        ) else {
            return Err("no run".into());
        };
        let ratio = handler.rate() / echo.rate();
        // The certificate check's share: the same load with CLIENT_CERT_MODE=disabled.
        let no_cert = self
            .run_system(
                System::Handler,
                &[("CLIENT_CERT_MODE", "disabled".into())],
                &client,
                c,
                warmup,
                measure,
            )
            .await?;
        self.print_load(
            "handler, CLIENT_CERT_MODE=disabled (not as deployed)",
            &no_cert,
        );
        // Unloaded latency: one connection.
        let short = if self.options.quick {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(3)
        };
        let mut single = Vec::new();
        for system in [System::Echo, System::Forward, System::Handler] {
            let result = self
                .run_system(system, &[], &client, 1, Duration::from_millis(500), short)
                .await?;
            self.print_load(&format!("{}, 1 connection", system.label()), &result);
            single.push(result);
        }
        say!(
            self,
            "- ratio (best of rounds): handler {:.0}/s ÷ echo {:.0}/s = **{ratio:.2}** (target ≥ {RATIO_TARGET}); forward ÷ echo = {:.2}; handler ÷ forward = {:.2}; with the certificate check off, handler ÷ echo = {:.2}",
            handler.rate(),
            echo.rate(),
            forward.rate() / echo.rate(),
            handler.rate() / forward.rate(),
            no_cert.rate() / echo.rate()
        );
        let errors = handler.error_count() + echo.error_count();
        self.row(
            format!("1. Register throughput ÷ echo floor ({c} connections)"),
            "≥ 0.6",
            format!(
                "{ratio:.2} ({:.0}/s ÷ {:.0}/s; {errors} errors)",
                handler.rate(),
                echo.rate()
            ),
            if ratio >= RATIO_TARGET && errors == 0 {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        );
        self.row(
            format!("1. Register throughput ÷ forward floor ({c} connections)"),
            "(reported)",
            format!(
                "{:.2} ({:.0}/s ÷ {:.0}/s)",
                handler.rate() / forward.rate(),
                handler.rate(),
                forward.rate()
            ),
            Verdict::Info,
        );
        self.row(
            format!("1. Register latency p50 / p99 ({c} connections)"),
            "(reported)",
            format!(
                "{} / {} (echo {} / {}, forward {} / {})",
                ms(handler.p(50.0)),
                ms(handler.p(99.0)),
                ms(echo.p(50.0)),
                ms(echo.p(99.0)),
                ms(forward.p(50.0)),
                ms(forward.p(99.0))
            ),
            Verdict::Info,
        );
        self.row(
            "1. Register latency p50 / p99 (1 connection)".into(),
            "(reported)",
            format!(
                "{} / {} (echo {} / {}, forward {} / {})",
                ms(single[2].p(50.0)),
                ms(single[2].p(99.0)),
                ms(single[0].p(50.0)),
                ms(single[0].p(99.0)),
                ms(single[1].p(50.0)),
                ms(single[1].p(99.0))
            ),
            Verdict::Info,
        );
        Ok(())
    }

    fn print_load(&mut self, label: &str, r: &LoadResult) {
        let per_request = |name: &str| r.cpu.of(name) * 1e6 / r.ok.max(1) as f64;
        let mut cpu = String::new();
        for (name, _) in &r.cpu.processes {
            let _ = write!(cpu, "{name} {:.0} µs, ", per_request(name));
        }
        say!(
            self,
            "- {label}: **{:.0} req/s**, p50 {}, p99 {}, max {}, errors: {}; CPU per request: {}others {:.0} µs; machine {:.0}% busy",
            r.rate(),
            ms(r.p(50.0)),
            ms(r.p(99.0)),
            ms(r.p(100.0)),
            describe_errors(&r.errors),
            cpu,
            r.cpu.others * 1e6 / r.ok.max(1) as f64,
            r.cpu.machine_busy * 100.0
        );
    }

    /// One closed-loop run against a fresh `system` (its simulator too, when it has one).
    async fn run_system(
        &self,
        system: System,
        settings: &[(&str, String)],
        client: &reqwest::Client,
        concurrency: usize,
        warmup: Duration,
        measure: Duration,
    ) -> Result<LoadResult, String> {
        let harness = ("harness", std::process::id());
        let result = match system {
            System::Echo => {
                let (echo, base) = self.start_role("echo", &[]).await?;
                let url = format!("{base}/api/Register");
                let procs = [("echo", echo.pid), harness];
                closed_loop(client, &url, concurrency, warmup, measure, &procs).await
            }
            System::Forward => {
                let (simulator, sim_base) = self.start_role("simulator", &[]).await?;
                let (forward, base) = self
                    .start_role("forward", &[("B2C_BENCH_AUTHY_URL", sim_base)])
                    .await?;
                let url = format!("{base}/api/Register");
                let procs = [
                    ("forward", forward.pid),
                    ("simulator", simulator.pid),
                    harness,
                ];
                closed_loop(client, &url, concurrency, warmup, measure, &procs).await
            }
            System::Handler => {
                let (simulator, sim_base) = self.start_role("simulator", &[]).await?;
                let (handler, base) = self.start_handler(&sim_base, settings).await?;
                let url = format!("{base}/api/Register");
                let procs = [
                    ("handler", handler.pid),
                    ("simulator", simulator.pid),
                    harness,
                ];
                closed_loop(client, &url, concurrency, warmup, measure, &procs).await
            }
        };
        Ok(result)
    }

    // ---------------------------------------------------------------- scenario 2

    async fn held(&mut self) -> Result<(), String> {
        say!(
            self,
            "## 2. Concurrent held WaitForAuthyApproval calls, Authy never answers"
        );
        say!(self, "");
        say!(
            self,
            "Approval requests of authy id {NEVER_ANSWERED_AUTHY_ID} (simulator trigger 0103: pending until it expires) are created at the simulator first; then N calls, one connection each, start evenly over the ramp and are held until the budget (APPROVAL_WAIT_SECONDS={BUDGET_SECONDS}) runs out; the default poll interval (1000 ms) stays, so the handler polls the simulator N times a second. Lateness = answer time − {BUDGET_SECONDS} s, measured from just before each request is sent (the handler aims 100 ms early: its response margin)."
        );
        say!(self, "");
        let sizes = self.options.held.clone();
        for n in sizes {
            let (soft, _) = support::nofile_limits().unwrap_or((0, 0));
            if soft < n as u64 + 1_000 {
                say!(
                    self,
                    "- N = {n}: **skipped**: the harness's open-file limit ({soft}) is below N + 1000; raise the hard limit (`ulimit -Hn`)"
                );
                self.row(
                    format!("2. held calls, N = {n}"),
                    "zero errors",
                    format!("skipped (open-file limit {soft})"),
                    Verdict::Missed,
                );
                continue;
            }
            self.held_n(n).await?;
        }
        Ok(())
    }

    async fn held_n(&mut self, n: usize) -> Result<(), String> {
        let (simulator, sim_base) = self.start_role("simulator", &[]).await?;
        let log =
            std::env::temp_dir().join(format!("b2c-bench-handler-{}-{n}.log", std::process::id()));
        let mut settings = vec![("APPROVAL_WAIT_SECONDS", BUDGET_SECONDS.to_string())];
        settings.extend(azurite_settings("held"));
        let (mut handler, base) = self
            .start_handler_logged(&sim_base, &settings, Some(&log))
            .await?;
        let ids = create_at_simulator(&sim_base, NEVER_ANSWERED_AUTHY_ID, n).await?;
        let idle = handler.sample();
        let ramp = Duration::from_secs(if n > 2_000 { 2 } else { 1 });
        let sampler = Sampler::start(handler.pid);
        let client = self.b2c_client(0);
        let budget = Duration::from_secs(BUDGET_SECONDS);
        let url: Arc<str> = format!("{base}/api/WaitForAuthyApproval").into();
        let load_before = support::loadavg();
        let overflows_before = support::listen_overflows();
        let window = CpuWindow::start(&[
            ("handler", handler.pid),
            ("simulator", simulator.pid),
            ("harness", std::process::id()),
        ]);
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let mut tasks = Vec::with_capacity(n);
        for (i, id) in ids.into_iter().enumerate() {
            let client = client.clone();
            let url = url.clone();
            let at = start + ramp.mul_f64(i as f64 / n as f64);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let body = serde_json::json!({
                    "authyId": NEVER_ANSWERED_AUTHY_ID,
                    "approvalRequestId": id,
                    "email": "alice@example.com",
                });
                let sent = Instant::now();
                let outcome = match client.post(&*url).json(&body).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        match response.bytes().await {
                            Ok(bytes) => {
                                let code = error_code(&bytes);
                                if status == 409 && code == "ApprovalPending" {
                                    Ok(())
                                } else {
                                    Err(format!("HTTP {status} {code}"))
                                }
                            }
                            Err(e) => Err(transport_error(&e)),
                        }
                    }
                    Err(e) => Err(transport_error(&e)),
                };
                (sent.elapsed(), outcome)
            }));
        }
        let mut lateness: Vec<i64> = Vec::with_capacity(n);
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for task in tasks {
            match task.await {
                Ok((elapsed, outcome)) => {
                    lateness.push(elapsed.as_micros() as i64 - budget.as_micros() as i64);
                    if let Err(kind) = outcome {
                        *errors.entry(kind).or_default() += 1;
                    }
                }
                Err(e) => *errors.entry(format!("task: {e}")).or_default() += 1,
            }
        }
        let cpu = window.finish();
        let overflows = support::listen_overflows().saturating_sub(overflows_before);
        let peaks = sampler.stop().await;
        handler.check_alive()?;
        let end = handler.sample();
        lateness.sort_unstable();
        let error_total: u64 = errors.values().sum();
        let (p50, p99, max) = (
            percentile(&lateness, 50.0),
            percentile(&lateness, 99.0),
            percentile(&lateness, 100.0),
        );
        let hwm = end.vm_hwm_kib * 1024;
        // The handler's own view: `duration_ms` of its `invocation finished` lines.
        let mut server_side = handler_durations(&log, "WaitForAuthyApproval");
        let _ = std::fs::remove_file(&log);
        server_side.sort_unstable();
        let budget_ms = budget.as_millis() as i64;
        say!(
            self,
            "- **N = {n}** (push limits in {}; ramp {:.0} s; load average before {load_before}): errors: {}; lateness p50 {}, p99 {}, max {} (min {}); handler VmHWM **{:.1} MiB** ({:.1} MB; {:.1} MiB idle before the calls), peak sampled {} open files and {} threads; listen-queue overflows (machine-wide TcpExtListenOverflows) during the run: {overflows}; the handler's own duration − budget over its {} log lines: p50 {} ms, p99 {} ms, max {} ms; CPU: {}",
            if azurite().is_some() {
                "Azurite"
            } else {
                "memory"
            },
            ramp.as_secs_f64(),
            describe_errors(&errors),
            ms(p50),
            ms(p99),
            ms(max),
            ms(percentile(&lateness, 0.0)),
            hwm as f64 / 1_048_576.0,
            hwm as f64 / 1e6,
            idle.vm_rss_kib as f64 / 1024.0,
            peaks.fds,
            peaks.threads,
            server_side.len(),
            percentile(&server_side, 50.0) - budget_ms,
            percentile(&server_side, 99.0) - budget_ms,
            percentile(&server_side, 100.0) - budget_ms,
            cpu.describe()
        );
        self.row(
            format!("2. held calls, N = {n}: errors"),
            "0",
            format!("{error_total} ({})", describe_errors(&errors)),
            if error_total == 0 {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        );
        self.row(
            format!("2. held calls, N = {n}: lateness p50 / p99 / max"),
            "p99 ≤ 100 ms",
            format!("{} / {} / {}", ms(p50), ms(p99), ms(max)),
            if p99 <= LATENESS_P99_TARGET.as_micros() as i64 {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        );
        self.row(
            format!("2. held calls, N = {n}: handler peak RSS"),
            if n >= 10_000 {
                "≤ 64 MB at 10,000"
            } else {
                "(reported)"
            },
            format!(
                "{:.1} MiB = {:.1} MB",
                hwm as f64 / 1_048_576.0,
                hwm as f64 / 1e6
            ),
            if n < 10_000 {
                Verdict::Info
            } else if hwm <= RSS_TARGET_BYTES {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        );
        drop(handler);
        drop(simulator);
        // Let the closed connections leave the machine's tables before the next run.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(())
    }

    // ---------------------------------------------------------------- scenario 5

    /// Issue 13: what the push-limit store adds to `CreateApprovalRequest`.
    async fn store(&mut self) -> Result<(), String> {
        let (calls, c) = if self.options.quick {
            (200, 4)
        } else {
            (STORE_IDS, 8)
        };
        // B2C_BENCH_STORE_CALLS: fewer calls (Azurite slows down as its container fills).
        let calls = env_value::<usize>("B2C_BENCH_STORE_CALLS")
            .map_or(calls, |n| n.clamp(STORE_WARMUP + 1, STORE_IDS));
        // B2C_BENCH_STORE_CONCURRENCY: calls at a time (1: unloaded latency).
        let c = env_value::<usize>("B2C_BENCH_STORE_CONCURRENCY").map_or(c, |n| n.clamp(1, 256));
        say!(
            self,
            "## 5. CreateApprovalRequest latency: push limits in memory vs in Azurite (issue 13)"
        );
        say!(self, "");
        say!(
            self,
            "{calls} CreateApprovalRequest calls, {c} at a time over keep-alive connections, against the simulator (its own process, zero latency); each call a journey of its own (a fresh correlationId) and an authy id of its own (1425555{STORE_FIRST_ID}…), so every call checks the limits, sends a push and records it, and none is refused. With Azurite each call reads the authy id's document and writes it conditionally (If-None-Match / If-Match), then records the journey and the push: a few round trips to Azurite on loopback. The first {STORE_WARMUP} calls of each run warm the connections and are not counted. Load average now: {}.",
            support::loadavg()
        );
        say!(self, "");
        let (simulator, sim_base) = self.start_role("simulator", &[]).await?;
        let mut p50s = Vec::new();
        let memory = self.store_run(&sim_base, "memory", &[], calls, c).await?;
        p50s.push(("memory", memory));
        match azurite() {
            Some(_) => {
                let settings = azurite_settings("store");
                let blob = self
                    .store_run(&sim_base, "Azurite", &settings, calls, c)
                    .await?;
                p50s.push(("Azurite", blob));
                let (m, b) = (p50s[0].1, p50s[1].1);
                self.row(
                    "5. CreateApprovalRequest, Azurite − memory: p50 / p99".into(),
                    "(reported)",
                    format!("+{} / +{}", ms(b.0 - m.0), ms(b.1 - m.1)),
                    Verdict::Info,
                );
            }
            None => {
                say!(
                    self,
                    "- Azurite: **skipped**: B2C_AUTHY_AZURITE (Azurite's connection string, e.g. `UseDevelopmentStorage=true` with Azurite on 127.0.0.1:10000) is not set"
                );
            }
        }
        drop(simulator);
        Ok(())
    }

    /// One handler with the given store settings: `calls` CreateApprovalRequest calls, `c` at
    /// a time. Returns (p50, p99) in µs.
    async fn store_run(
        &mut self,
        sim_base: &str,
        label: &str,
        settings: &[(&str, String)],
        calls: usize,
        c: usize,
    ) -> Result<(i64, i64), String> {
        let (mut handler, base) = self.start_handler(sim_base, settings).await?;
        let client = self.b2c_client(usize::MAX);
        let url: Arc<str> = format!("{base}/api/CreateApprovalRequest").into();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let window = CpuWindow::start(&[("handler", handler.pid)]);
        let started = Instant::now();
        let workers: Vec<_> = (0..c)
            .map(|_| {
                let (client, url, next) = (client.clone(), url.clone(), next.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= calls {
                            break;
                        }
                        let body = serde_json::json!({
                            "authyId": format!("1425555{}", STORE_FIRST_ID + i),
                            "email": "alice@example.com",
                            "correlationId": uuid::Uuid::new_v4().to_string(),
                            "ipAddress": "203.0.113.7",
                        });
                        let sent = Instant::now();
                        let outcome = match client.post(&*url).json(&body).send().await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                match response.bytes().await {
                                    Ok(_) if status == 200 => Ok(()),
                                    Ok(bytes) => {
                                        Err(format!("HTTP {status} {}", error_code(&bytes)))
                                    }
                                    Err(e) => Err(transport_error(&e)),
                                }
                            }
                            Err(e) => Err(transport_error(&e)),
                        };
                        let took = sent.elapsed().as_micros() as i64;
                        match outcome {
                            Ok(()) if i >= STORE_WARMUP => latencies.push(took),
                            Ok(()) => {}
                            Err(kind) => *errors.entry(kind).or_default() += 1,
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(calls);
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for worker in workers {
            let (l, e) = worker.await.map_err(|e| e.to_string())?;
            latencies.extend(l);
            for (kind, n) in e {
                *errors.entry(kind).or_default() += n;
            }
        }
        let elapsed = started.elapsed();
        let cpu = window.finish();
        handler.check_alive()?;
        latencies.sort_unstable();
        let (p50, p99, max) = (
            percentile(&latencies, 50.0),
            percentile(&latencies, 99.0),
            percentile(&latencies, 100.0),
        );
        let error_total: u64 = errors.values().sum();
        say!(
            self,
            "- **{label}**: {} calls counted in {:.1} s; errors: {}; latency p50 {}, p99 {}, max {}; CPU: {}",
            latencies.len(),
            elapsed.as_secs_f64(),
            describe_errors(&errors),
            ms(p50),
            ms(p99),
            ms(max),
            cpu.describe()
        );
        self.row(
            format!("5. CreateApprovalRequest, limits in {label}: p50 / p99 (errors)"),
            "0 errors",
            format!("{} / {} ({error_total})", ms(p50), ms(p99)),
            if error_total == 0 {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        );
        drop(handler);
        Ok((p50, p99))
    }

    // ---------------------------------------------------------------- scenario 3

    async fn approval(&mut self) -> Result<(), String> {
        say!(
            self,
            "## 3. Approval → response latency, approval at a random moment"
        );
        say!(self, "");
        say!(
            self,
            "The built-in simulator runs in the harness process (its own thread and runtime) behind a gate: each approval request (created through CreateApprovalRequest) stays pending until a moment drawn uniformly in [0.2 s, 0.2 s + 4 poll intervals] after its WaitForAuthyApproval call starts, then is approved. Latency = handler's 200 answer − that moment. Calls start spread over 1 s; budget {BUDGET_SECONDS} s."
        );
        say!(self, "");
        for interval in self.options.polls.clone() {
            self.approval_with(interval).await?;
        }
        Ok(())
    }

    async fn approval_with(&mut self, interval_ms: u64) -> Result<(), String> {
        let samples = self.options.approval_samples;
        let gated = GatedSimulator::start(API_KEY)?;
        let (mut handler, base) = self
            .start_handler(
                &format!("http://{}", gated.address),
                &[
                    ("APPROVAL_POLL_INTERVAL_MS", interval_ms.to_string()),
                    ("APPROVAL_WAIT_SECONDS", BUDGET_SECONDS.to_string()),
                    // Every sample pushes to the same authy id: limits out of the way.
                    ("PUSH_LIMIT_BURST_COUNT", "100000".into()),
                    ("PUSH_LIMIT_DAILY_COUNT", "100000".into()),
                ],
            )
            .await?;
        let client = self.b2c_client(usize::MAX);
        let ids = create_via_handler(&client, &base, APPROVED_AUTHY_ID, samples).await?;
        let interval = Duration::from_millis(interval_ms);
        let url: Arc<str> = format!("{base}/api/WaitForAuthyApproval").into();
        let start = tokio::time::Instant::now() + Duration::from_millis(100);
        let ramp = Duration::from_secs(1);
        let mut tasks = Vec::with_capacity(samples);
        for (i, id) in ids.into_iter().enumerate() {
            let (client, url, gates) = (client.clone(), url.clone(), gated.gates.clone());
            let at = start + ramp.mul_f64(i as f64 / samples as f64);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let offset = Duration::from_millis(200) + (interval * 4).mul_f64(fastrand::f64());
                let approve_at = Instant::now() + offset;
                if let Ok(mut gates) = gates.lock() {
                    gates.insert(id.clone(), approve_at);
                }
                let body = serde_json::json!({
                    "authyId": APPROVED_AUTHY_ID,
                    "approvalRequestId": id,
                });
                let result = client.post(&*url).json(&body).send().await;
                let answered = Instant::now();
                let outcome = match result {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let bytes = response.bytes().await.unwrap_or_default();
                        if status == 200 {
                            Ok(())
                        } else {
                            Err(format!("HTTP {status} {}", error_code(&bytes)))
                        }
                    }
                    Err(e) => Err(transport_error(&e)),
                };
                let latency = answered.saturating_duration_since(approve_at);
                match outcome {
                    Ok(()) if answered < approve_at => Err("answered before the approval".into()),
                    Ok(()) => Ok(latency.as_micros() as i64),
                    Err(e) => Err(e),
                }
            }));
        }
        let mut latencies = Vec::with_capacity(samples);
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        for task in tasks {
            match task.await {
                Ok(Ok(us)) => latencies.push(us),
                Ok(Err(kind)) => *errors.entry(kind).or_default() += 1,
                Err(e) => *errors.entry(format!("task: {e}")).or_default() += 1,
            }
        }
        handler.check_alive()?;
        drop(handler);
        drop(gated);
        latencies.sort_unstable();
        let (p50, p95) = (percentile(&latencies, 50.0), percentile(&latencies, 95.0));
        let limit = interval + APPROVAL_SLACK;
        say!(
            self,
            "- poll interval {interval_ms} ms, {} approvals: p50 {}, p95 **{}**, p99 {}, max {}; errors: {}",
            latencies.len(),
            ms(p50),
            ms(p95),
            ms(percentile(&latencies, 99.0)),
            ms(percentile(&latencies, 100.0)),
            describe_errors(&errors)
        );
        let error_total: u64 = errors.values().sum();
        self.row(
            format!("3. approval → response, poll {interval_ms} ms: p50 / p95"),
            &format!("p95 ≤ {} ms", limit.as_millis()),
            format!(
                "{} / {} ({error_total} errors, {} samples)",
                ms(p50),
                ms(p95),
                latencies.len()
            ),
            if p95 <= limit.as_micros() as i64 && error_total == 0 {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        );
        Ok(())
    }

    // ---------------------------------------------------------------- scenario 4

    async fn start(&mut self) -> Result<(), String> {
        let n = self.options.starts;
        say!(self, "## 4. Process start → first answer to GET /");
        say!(self, "");
        say!(
            self,
            "{n} starts each: spawn, then connect to its port every 100 µs until it accepts, send `GET /`, stop the clock at the status line; then SIGKILL. The echo (the harness binary as a bare axum server) is the floor. Load average now: {}.",
            support::loadavg()
        );
        say!(self, "");
        let handler_runs = {
            let commands: Vec<(u16, Command)> = (0..n)
                .map(|_| {
                    let port = free_port();
                    (
                        port,
                        self.handler_command(port, "http://127.0.0.1:9", &[], false),
                    )
                })
                .collect();
            tokio::task::spawn_blocking(move || start_times("handler", commands))
                .await
                .map_err(|e| e.to_string())??
        };
        let echo_runs = {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let commands: Vec<(u16, Command)> = (0..n)
                .map(|_| {
                    let port = free_port();
                    let mut c = Command::new(&exe);
                    c.env(ROLE_ENV, "echo").env(PORT_ENV, port.to_string());
                    (port, c)
                })
                .collect();
            tokio::task::spawn_blocking(move || start_times("echo", commands))
                .await
                .map_err(|e| e.to_string())??
        };
        let summary = |runs: &[(i64, i64)]| {
            let mut answer: Vec<i64> = runs.iter().map(|r| r.1).collect();
            let mut accept: Vec<i64> = runs.iter().map(|r| r.0).collect();
            answer.sort_unstable();
            accept.sort_unstable();
            (answer, accept)
        };
        let (handler_answer, handler_accept) = summary(&handler_runs);
        let (echo_answer, _) = summary(&echo_runs);
        let median = percentile(&handler_answer, 50.0);
        say!(
            self,
            "- handler: median **{}** (min {}, p90 {}, max {}); port accepting after median {}",
            ms(median),
            ms(percentile(&handler_answer, 0.0)),
            ms(percentile(&handler_answer, 90.0)),
            ms(percentile(&handler_answer, 100.0)),
            ms(percentile(&handler_accept, 50.0))
        );
        say!(
            self,
            "- echo floor: median {} (min {}, max {})",
            ms(percentile(&echo_answer, 50.0)),
            ms(percentile(&echo_answer, 0.0)),
            ms(percentile(&echo_answer, 100.0))
        );
        self.row(
            format!("4. start → first answer to GET / (median of {n})"),
            "≤ 20 ms",
            format!(
                "{} (echo floor {})",
                ms(median),
                ms(percentile(&echo_answer, 50.0))
            ),
            if median <= START_TARGET.as_micros() as i64 {
                Verdict::Met
            } else {
                Verdict::Missed
            },
        );
        Ok(())
    }
}

/// Runs each command once: microseconds from spawn to the port accepting, and to the
/// status line of `GET /`.
fn start_times(name: &str, commands: Vec<(u16, Command)>) -> Result<Vec<(i64, i64)>, String> {
    use std::io::{Read, Write};
    let mut runs = Vec::new();
    for (port, command) in commands {
        let started = Instant::now();
        let mut proc = Proc::spawn(name, command)?;
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut attempts = 0u32;
        let mut stream = loop {
            match std::net::TcpStream::connect(address) {
                Ok(stream) => break stream,
                Err(_) if started.elapsed() < Duration::from_secs(5) => {
                    attempts += 1;
                    if attempts.is_multiple_of(500) {
                        proc.check_alive()?;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(e) => return Err(format!("{name} did not accept within 5 s: {e}")),
            }
        };
        let accepted = started.elapsed();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buffer.windows(2).any(|w| w == b"\r\n") {
            let read = stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if read == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..read]);
        }
        let answered = started.elapsed();
        if !buffer.starts_with(b"HTTP/1.1 200") {
            return Err(format!(
                "{name} answered GET / with {:?}",
                String::from_utf8_lossy(&buffer)
            ));
        }
        drop(proc);
        runs.push((accepted.as_micros() as i64, answered.as_micros() as i64));
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(runs)
}

/// `duration_ms` of the `invocation finished` log lines of `function` in a handler log.
fn handler_durations(log: &std::path::Path, function: &str) -> Vec<i64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| {
            v["message"] == "invocation finished"
                && v.pointer("/span/function").and_then(Value::as_str) == Some(function)
        })
        .filter_map(|v| v["duration_ms"].as_i64())
        .collect()
}

/// Closed-loop load result.
struct LoadResult {
    ok: u64,
    errors: BTreeMap<String, u64>,
    /// Sorted latencies of the measured window, µs.
    latencies: Vec<i64>,
    window: Duration,
    cpu: CpuUse,
}

impl LoadResult {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    fn p(&self, p: f64) -> i64 {
        percentile(&self.latencies, p)
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// `concurrency` workers POST [`REGISTER_BODY`] to `url` back to back; requests that start
/// and finish inside the measured window count. CPU of `procs` is measured over the window.
async fn closed_loop(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    warmup: Duration,
    measure: Duration,
    procs: &[(&str, u32)],
) -> LoadResult {
    let measure_start = tokio::time::Instant::now() + warmup;
    let end = measure_start + measure;
    let url: Arc<str> = url.into();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            let (start, end) = (measure_start.into_std(), end.into_std());
            tokio::spawn(async move {
                let mut ok = 0u64;
                let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                let mut latencies = Vec::new();
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let outcome = match client
                        .post(&*url)
                        .header("content-type", "application/json")
                        .body(REGISTER_BODY)
                        .send()
                        .await
                    {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            match response.bytes().await {
                                Ok(_) if status == 200 => Ok(()),
                                Ok(bytes) => Err(format!("HTTP {status} {}", error_code(&bytes))),
                                Err(e) => Err(transport_error(&e)),
                            }
                        }
                        Err(e) => Err(transport_error(&e)),
                    };
                    let done = Instant::now();
                    let counted = sent >= start && done <= end;
                    match outcome {
                        Ok(()) if counted => {
                            ok += 1;
                            latencies.push((done - sent).as_micros() as i64);
                        }
                        Ok(()) => {}
                        Err(kind) => {
                            if counted {
                                *errors.entry(kind).or_default() += 1;
                            }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                }
                (ok, errors, latencies)
            })
        })
        .collect();
    tokio::time::sleep_until(measure_start).await;
    let window = CpuWindow::start(procs);
    tokio::time::sleep_until(end).await;
    let cpu = window.finish();
    let mut result = LoadResult {
        ok: 0,
        errors: BTreeMap::new(),
        latencies: Vec::new(),
        window: measure,
        cpu,
    };
    for worker in workers {
        if let Ok((ok, errors, latencies)) = worker.await {
            result.ok += ok;
            for (kind, n) in errors {
                *result.errors.entry(kind).or_default() += n;
            }
            result.latencies.extend(latencies);
        }
    }
    result.latencies.sort_unstable();
    result
}

/// Scenario 5: authy ids `1425555` + 2000…9999 (valid phone-derived ids the simulator knows,
/// none of its trigger numbers), one per call.
const STORE_FIRST_ID: usize = 2000;
const STORE_IDS: usize = 8000;
/// Scenario 5: calls per run that only warm the connections.
const STORE_WARMUP: usize = 50;

/// `B2C_AUTHY_AZURITE`: Azurite's connection string, when set.
fn azurite() -> Option<String> {
    std::env::var("B2C_AUTHY_AZURITE")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// The handler's store settings for Azurite (a container of this run's own), or none.
fn azurite_settings(what: &str) -> Vec<(&'static str, String)> {
    azurite().map_or_else(Vec::new, |connection| {
        let random = uuid::Uuid::new_v4().simple().to_string();
        vec![
            ("AzureWebJobsStorage", connection),
            (
                "PUSH_LIMITS_CONTAINER",
                format!("bench-{what}-{}", &random[..12]),
            ),
        ]
    })
}

/// The `code` of a B2C error body, or `-`.
fn error_code(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "-".into())
}

/// Creates `n` approval requests for `authy_id` directly at the simulator (64 at a time):
/// their ids.
async fn create_at_simulator(
    sim_base: &str,
    authy_id: &str,
    n: usize,
) -> Result<Vec<String>, String> {
    let client = reqwest::Client::new();
    let url: Arc<str> =
        format!("{sim_base}/onetouch/json/users/{authy_id}/approval_requests").into();
    create_many(n, move || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .post(&*url)
                .header("X-Authy-API-Key", API_KEY)
                .form(&[("message", "Sign-in request"), ("seconds_to_expire", "600")])
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let value: Value = response.json().await.map_err(|e| transport_error(&e))?;
            value
                .pointer("/approval_request/uuid")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("simulator answered {value}"))
        }
    })
    .await
}

/// Creates `n` approval requests through the handler's CreateApprovalRequest, as B2C does.
async fn create_via_handler(
    client: &reqwest::Client,
    base: &str,
    authy_id: &str,
    n: usize,
) -> Result<Vec<String>, String> {
    let client = client.clone();
    let url: Arc<str> = format!("{base}/api/CreateApprovalRequest").into();
    let body = serde_json::json!({"authyId": authy_id, "email": "alice@example.com"});
    create_many(n, move || {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        async move {
            let response = client
                .post(&*url)
                .json(&body)
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let value: Value = response.json().await.map_err(|e| transport_error(&e))?;
            value
                .get("approvalRequestId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("CreateApprovalRequest answered {value}"))
        }
    })
    .await
}

/// Runs `make()` `n` times, 64 at a time.
async fn create_many<F, Fut>(n: usize, make: F) -> Result<Vec<String>, String>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<String, String>> + Send + 'static,
{
    let mut ids = Vec::with_capacity(n);
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..n {
        if pending.len() >= 64 {
            if let Some(done) = pending.join_next().await {
                ids.push(done.map_err(|e| e.to_string())??);
            }
        }
        pending.spawn(make());
    }
    while let Some(done) = pending.join_next().await {
        ids.push(done.map_err(|e| e.to_string())??);
    }
    Ok(ids)
}

/// Samples a process's `/proc` every 100 ms and keeps the maxima.
struct Sampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<ProcSample>,
}

impl Sampler {
    fn start(pid: u32) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut peak = ProcSample::default();
            loop {
                let s = ProcSample::of(pid);
                peak.vm_hwm_kib = peak.vm_hwm_kib.max(s.vm_hwm_kib);
                peak.vm_rss_kib = peak.vm_rss_kib.max(s.vm_rss_kib);
                peak.threads = peak.threads.max(s.threads);
                peak.fds = peak.fds.max(s.fds);
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            peak
        });
        Self { stop, task }
    }

    async fn stop(self) -> ProcSample {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}
