//! `handler`: the binary the Azure Functions host starts (custom handler), plus — with the
//! `simulator` feature (default; the Azure package leaves it out) — the demo and the
//! standalone Authy simulator.
//!
//! Thin: parse the command line, start logging, read the configuration, build the one Authy
//! client (for Authy, or for a simulator started here) and hand it to
//! [`Application::build`], then serve until stopped.

use std::process::ExitCode;
use std::sync::Arc;

use b2c_authy::app::Application;
use b2c_authy::authy::AuthyClient;
use b2c_authy::config::{AuthyBackend, Config};
use b2c_authy::push_limits::store::PushStore;
use b2c_authy::push_limits::PushLimits;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

#[cfg(feature = "simulator")]
use b2c_authy::dev;

/// Azure AD B2C ↔ Twilio Authy push approval, as an Azure Functions custom handler.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the functions as the Functions host expects (the default; settings from the
    /// environment).
    Serve,
    /// Serve the functions with the built-in Authy simulator on 127.0.0.1:7071 (or
    /// FUNCTIONS_CUSTOMHANDLER_PORT) and print ready-to-paste curl calls.
    #[cfg(feature = "simulator")]
    Demo,
    /// Run only the Authy simulator, to point AUTHY_API_URL at it under `func start`.
    #[cfg(feature = "simulator")]
    Simulator {
        /// Port on 127.0.0.1.
        #[arg(long, default_value_t = 8089)]
        port: u16,
        /// Seconds after which an approval request is answered.
        #[arg(long, default_value_t = 2)]
        approve_after_seconds: u64,
        /// API key to accept (default: any non-empty key).
        #[arg(long)]
        api_key: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = b2c_authy::logging::init() {
        // Logging is not up: say it as the JSON line the logger would have written.
        eprintln!("{}", serde_json::json!({"level": "ERROR", "message": e}));
        return ExitCode::FAILURE;
    }
    // Each held WaitForAuthyApproval keeps a connection (a file descriptor) open for up to
    // APPROVAL_WAIT_SECONDS; the common soft limit of 1,024 caps a busy instance well below
    // what it can hold. Raise it to the hard limit the platform allows.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(open_files = limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(Config::from_env().map_err(|e| e.to_string())?, None).await,
            #[cfg(feature = "simulator")]
            Command::Demo => {
                let cert = dev::DemoClientCert::generate()?;
                serve(dev::demo_config(&cert)?, Some(&cert)).await
            }
            #[cfg(feature = "simulator")]
            Command::Simulator {
                port,
                approve_after_seconds,
                api_key,
            } => dev::run_simulator(port, approve_after_seconds, api_key, shutdown_signal()).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            for line in message.lines() {
                tracing::error!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Without the `simulator` feature there is no demo certificate.
#[cfg(not(feature = "simulator"))]
enum DemoClientCert {}
#[cfg(feature = "simulator")]
use dev::DemoClientCert;

/// Serves the functions with `config` until a shutdown signal. `demo`, when given, is the
/// demo's certificate: its curl calls are printed once the port is bound.
async fn serve(config: Config, demo: Option<&DemoClientCert>) -> Result<(), String> {
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // The texts users see are embedded: a broken table is a build fault, refused here rather
    // than answered to a user.
    b2c_authy::messages::check()
        .map_err(|e| format!("src/messages.toml, the table of user messages, is broken:\n{e}"))?;
    let authy = match config.authy_backend {
        AuthyBackend::Remote => AuthyClient::new(
            config.authy_api_url.clone(),
            config
                .authy_api_key
                .clone()
                .unwrap_or_else(|| SecretString::from("")),
        )?,
        #[cfg(feature = "simulator")]
        AuthyBackend::EmbeddedSimulator => dev::embedded_simulator()?,
        // Config refuses AUTHY_SIMULATOR=embedded in a build without the simulator.
        #[cfg(not(feature = "simulator"))]
        AuthyBackend::EmbeddedSimulator => return Err("this build has no Authy simulator".into()),
    };
    let authy = authy.with_send_install_link_via_sms(config.send_install_link_via_sms);
    // The HMAC secret that names the push-limit documents: the Authy API key, the same on
    // every instance (random for the embedded simulator, whose key is random too).
    let secret = config
        .authy_api_key
        .as_ref()
        .map(|k| k.expose_secret().as_bytes().to_vec())
        .unwrap_or_else(|| uuid::Uuid::new_v4().as_bytes().to_vec());
    let push_limits = PushLimits::connect(config.push_limits.clone(), &config.push_store, &secret)
        .await
        .map_err(|e| e.to_string())?;
    log_push_limits(&push_limits);
    let push_limits = Arc::new(push_limits);
    let app = Application::build(&config, authy, push_limits).await?;
    let address = app.address().map_err(|e| e.to_string())?;
    tracing::info!(%address, wait_seconds = config.approval_wait.as_secs(), "custom handler listening");
    #[cfg(feature = "simulator")]
    if let Some(cert) = demo {
        dev::print_demo(address, cert)?;
    }
    #[cfg(not(feature = "simulator"))]
    if let Some(never) = demo {
        match *never {}
    }
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

/// The one startup line about the push limits: the store (kind, account, endpoint; no secret)
/// and the limits.
fn log_push_limits(push_limits: &PushLimits) {
    let s = push_limits.settings();
    let store = push_limits.store().describe();
    let limits = format!(
        "{} pushes in {} s, {} in {} s, pause {} s after a denial",
        s.burst.count,
        s.burst.window.as_secs(),
        s.daily.count,
        s.daily.window.as_secs(),
        s.pause_after_denial.as_secs()
    );
    match push_limits.store() {
        PushStore::Memory(_) => tracing::info!(
            %store, %limits,
            "push limits kept in memory: they hold for this process only (set AzureWebJobsStorage to share them between instances)"
        ),
        PushStore::Blob(_) => {
            tracing::info!(%store, %limits, "push limits kept in the storage account")
        }
    }
}

/// SIGINT (Ctrl-C) or SIGTERM, as a shell, systemd or a container runtime stop a process.
/// The Azure Functions host never sends either: it stops its worker with `Process.Kill()`,
/// SIGKILL (azure-functions-host, `Workers/ProcessManagement/WorkerProcess.cs`), so under the
/// host nothing drains; each invocation is short (`APPROVAL_WAIT_SECONDS`) and B2C retries a
/// call that got no answer once.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received: finishing in-flight invocations");
}
