//! `handler`: the binary the Azure Functions host starts (custom handler), plus the demo and
//! the standalone Authy simulator.

use std::process::ExitCode;
use std::time::Duration;

use b2c_authy::app::Application;
use b2c_authy::config::Config;
use b2c_authy::simulator::{self, SimulatorConfig, TRIGGERS};
use clap::{Parser, Subcommand};

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
    Demo,
    /// Run only the Authy simulator, to point AUTHY_API_URL at it under `func start`.
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
            Command::Serve => serve(false).await,
            Command::Demo => serve(true).await,
            Command::Simulator {
                port,
                approve_after_seconds,
                api_key,
            } => run_simulator(port, approve_after_seconds, api_key).await,
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

async fn serve(demo: bool) -> Result<(), String> {
    let demo_cert = if demo {
        Some(DemoClientCert::generate()?)
    } else {
        None
    };
    let config = match &demo_cert {
        // The demo keeps validation on: it accepts exactly its own ephemeral certificate.
        Some(cert) => Config::from_lookup(|name| match name {
            "AUTHY_SIMULATOR" => Some("embedded".into()),
            "CLIENT_CERT_MODE" => Some("required".into()),
            "CLIENT_CERT_THUMBPRINTS" => Some(cert.thumbprint.clone()),
            "CLIENT_CERT_SUBJECT" | "CLIENT_CERT_ISSUER" | "CLIENT_CERT_CA" => None,
            _ => std::env::var(name).ok(),
        }),
        None => Config::from_env(),
    }
    .map_err(|e| e.to_string())?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let app = Application::build(&config).await?;
    let address = app.address().map_err(|e| e.to_string())?;
    tracing::info!(%address, wait_seconds = config.approval_wait.as_secs(), "custom handler listening");
    if let Some(cert) = &demo_cert {
        // Written only now that the port is ours, so a second demo that fails to bind cannot
        // replace the first one's certificate.
        let header_file = cert.write_header_file(address.port())?;
        print_demo(&address.to_string(), cert, &header_file);
    }
    app.run_until_stopped(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn run_simulator(
    port: u16,
    approve_after: u64,
    api_key: Option<String>,
) -> Result<(), String> {
    if std::env::var_os("WEBSITE_INSTANCE_ID").is_some() {
        return Err("the Authy simulator never runs in Azure (WEBSITE_INSTANCE_ID is set)".into());
    }
    let listener = b2c_authy::app::bind_loopback(port)
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let config = SimulatorConfig {
        approve_after: Duration::from_secs(approve_after),
        api_key,
        ..SimulatorConfig::default()
    };
    let address = simulator::spawn(listener, config).map_err(|e| e.to_string())?;
    println!("Authy simulator on http://{address}: set AUTHY_API_URL=http://{address} and any AUTHY_API_KEY");
    shutdown_signal().await;
    Ok(())
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

/// An ephemeral, self-signed client certificate for the demo, as App Service would forward
/// it; [`DemoClientCert::write_header_file`] writes the header line for `curl -H @file`.
struct DemoClientCert {
    /// Upper-case SHA-1 thumbprint.
    thumbprint: String,
    /// `X-ARR-ClientCert: <base64 DER>`.
    header_line: String,
}

impl DemoClientCert {
    fn generate() -> Result<Self, String> {
        use base64::Engine;
        let fail = |e: rcgen::Error| format!("cannot make the demo client certificate: {e}");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "b2c-authy-demo-client");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().map_err(fail)?;
        let cert = params.self_signed(&key).map_err(fail)?;
        let der = cert.der().to_vec();
        Ok(Self {
            thumbprint: b2c_authy::client_cert::Thumbprint::of(&der).to_string(),
            header_line: format!(
                "X-ARR-ClientCert: {}\n",
                base64::engine::general_purpose::STANDARD.encode(&der)
            ),
        })
    }

    /// Writes the header line to a new file named after the port in the temp directory,
    /// replacing a stale one; never follows a link planted there.
    fn write_header_file(&self, port: u16) -> Result<std::path::PathBuf, String> {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("b2c-authy-demo-{port}.header"));
        let fail = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_file() => std::fs::remove_file(&path).map_err(fail)?,
            Ok(_) => return Err(format!("{} exists and is not a file", path.display())),
            Err(_) => {}
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(fail)?;
        file.write_all(self.header_line.as_bytes()).map_err(fail)?;
        Ok(path)
    }
}

fn print_demo(address: &str, cert: &DemoClientCert, header_file: &std::path::Path) {
    let base = format!("http://{address}/api");
    let header = header_file.display();
    let triggers: String = TRIGGERS
        .iter()
        .map(|(suffix, _, what)| format!("    +1 425 555 {suffix}  {what}\n"))
        .collect();
    println!(
        r#"
Demo: the custom handler with the built-in Authy simulator (no push reaches a phone).
A phone number is approved 2 s after the push, unless it ends in a trigger (last 4 digits):
{triggers}
Client certificates are checked as in Azure: the calls below send an ephemeral demo
certificate (thumbprint {thumbprint}) in X-ARR-ClientCert, from {header}.

1. Enrol a phone (answers {{"authyId": "..."}}):
  curl -s -X POST {base}/Register -H @{header} -H 'Content-Type: application/json' \
    -d '{{"email":"alice@example.com","phoneNumber":"+1 425 555 0100"}}'

2. Send the push (answers {{"approvalRequestId": "..."}}):
  curl -s -X POST {base}/CreateApprovalRequest -H @{header} -H 'Content-Type: application/json' \
    -d '{{"authyId":"14255550100","email":"alice@example.com"}}'

3. Wait for the approval (paste the approvalRequestId; 409 ApprovalPending means call again):
  curl -s -X POST {base}/WaitForAuthyApproval -H @{header} -H 'Content-Type: application/json' \
    -d '{{"authyId":"14255550100","approvalRequestId":"PASTE-IT-HERE"}}'

Press Ctrl-C to stop.
"#,
        thumbprint = cert.thumbprint,
    );
}
