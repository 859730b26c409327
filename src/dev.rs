//! The development tools of the `handler` binary, with the `simulator` cargo feature only:
//! `handler demo` (the functions with an embedded simulator and an ephemeral client
//! certificate, and the curl calls to try them), `handler simulator` (the simulator alone),
//! and the simulator that `AUTHY_SIMULATOR=embedded` starts. `main` calls these; nothing on
//! the request path does.

use std::net::SocketAddr;
use std::time::Duration;

use secrecy::SecretString;

use crate::authy::AuthyClient;
use crate::client_cert::SelfSignedClientCert;
use crate::config::Config;
use crate::simulator::{self, SimulatorConfig, TRIGGERS};

/// The demo's configuration: the environment's settings, with the embedded simulator and
/// client-certificate validation on, accepting exactly `cert`, and the push limits in memory
/// (this process only; no storage account).
///
/// # Errors
/// The configuration's own errors, one per line.
pub fn demo_config(cert: &DemoClientCert) -> Result<Config, String> {
    Config::from_lookup(|name| match name {
        "AUTHY_SIMULATOR" => Some("embedded".into()),
        "CLIENT_CERT_MODE" => Some("required".into()),
        "CLIENT_CERT_THUMBPRINTS" => Some(cert.thumbprint.clone()),
        "CLIENT_CERT_SUBJECT" | "CLIENT_CERT_ISSUER" | "CLIENT_CERT_CA" => None,
        // The demo keeps its push limits in memory, whatever the shell has for storage.
        name if name.starts_with("AzureWebJobsStorage") => None,
        _ => std::env::var(name).ok(),
    })
    .map_err(|e| e.to_string())
}

/// Starts the simulator on a loopback port of its own with a random API key
/// (`AUTHY_SIMULATOR=embedded`, the demo) and returns an Authy client pointed at it.
///
/// # Errors
/// When the port cannot be bound or the client cannot be built.
pub fn embedded_simulator() -> Result<AuthyClient, String> {
    let key = uuid::Uuid::new_v4().simple().to_string();
    let listener = crate::app::bind_loopback(0)
        .map_err(|e| format!("cannot bind the Authy simulator: {e}"))?;
    let config = SimulatorConfig {
        api_key: Some(key.clone()),
        ..SimulatorConfig::default()
    };
    let address = simulator::spawn(listener, config)
        .map_err(|e| format!("cannot start the Authy simulator: {e}"))?;
    let url = url::Url::parse(&format!("http://{address}/"))
        .map_err(|e| format!("simulator URL: {e}"))?;
    AuthyClient::new(url, SecretString::from(key))
}

/// Writes the demo's header file for the port the handler got, then prints the curl calls.
///
/// # Errors
/// When the header file cannot be written.
pub fn print_demo(address: SocketAddr, cert: &DemoClientCert) -> Result<(), String> {
    // Written only now that the port is ours, so a second demo that fails to bind cannot
    // replace the first one's certificate.
    let header_file = cert.write_header_file(address.port())?;
    print_curl_calls(&address.to_string(), cert, &header_file);
    Ok(())
}

/// `handler simulator`: the simulator alone on `127.0.0.1:<port>`, until Ctrl-C or SIGTERM
/// (`shutdown`).
///
/// # Errors
/// In Azure (`WEBSITE_INSTANCE_ID` set), and when the port cannot be bound.
pub async fn run_simulator(
    port: u16,
    approve_after: u64,
    api_key: Option<String>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    if std::env::var_os("WEBSITE_INSTANCE_ID").is_some() {
        return Err("the Authy simulator never runs in Azure (WEBSITE_INSTANCE_ID is set)".into());
    }
    let listener = crate::app::bind_loopback(port)
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let config = SimulatorConfig {
        approve_after: Duration::from_secs(approve_after),
        api_key,
        ..SimulatorConfig::default()
    };
    let address = simulator::spawn(listener, config).map_err(|e| e.to_string())?;
    println!("Authy simulator on http://{address}: set AUTHY_API_URL=http://{address} and any AUTHY_API_KEY");
    shutdown.await;
    Ok(())
}

/// An ephemeral, self-signed client certificate for the demo, as App Service would forward
/// it; [`DemoClientCert::write_header_file`] writes the header line for `curl -H @file`.
pub struct DemoClientCert {
    /// Upper-case SHA-1 thumbprint.
    thumbprint: String,
    /// `X-ARR-ClientCert: <base64 DER>`.
    header_line: String,
}

impl DemoClientCert {
    /// A fresh certificate ([`SelfSignedClientCert`], `CN=b2c-authy-demo-client`).
    ///
    /// # Errors
    /// When the certificate cannot be made.
    pub fn generate() -> Result<Self, String> {
        let cert = SelfSignedClientCert::generate("b2c-authy-demo-client")
            .map_err(|e| format!("cannot make the demo client certificate: {e}"))?;
        Ok(Self {
            thumbprint: cert.thumbprint().to_string(),
            header_line: format!("X-ARR-ClientCert: {}\n", cert.header_value()),
        })
    }

    /// Writes the header line to a new file named after the port in the temp directory,
    /// replacing a stale one; never follows a link planted there.
    /// # Errors
    /// When the file cannot be written, or a non-file is in its place.
    pub fn write_header_file(&self, port: u16) -> Result<std::path::PathBuf, String> {
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

fn print_curl_calls(address: &str, cert: &DemoClientCert, header_file: &std::path::Path) {
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
Push limits are kept in memory (this process only; no storage account): past the burst
limit (PUSH_LIMIT_BURST_COUNT, default 3 pushes per authy id in 10 minutes),
CreateApprovalRequest answers 409 PushLimitReached.

1. Enrol a phone (answers {{"authyId": "..."}}):
  curl -s -X POST {base}/Register -H @{header} -H 'Content-Type: application/json' \
    -d '{{"email":"alice@example.com","phoneNumber":"+1 425 555 0100"}}'

2. Send the push, as B2C does with the journey's correlation id and the user's IP address
   (answers {{"approvalRequestId": "...", "signInCode": "47", "newApprovalRequest": true}};
   the same correlationId again returns the same request and sends nothing, as for B2C's
   retry; a new correlationId is a new sign-in and counts against the limits):
  curl -s -X POST {base}/CreateApprovalRequest -H @{header} -H 'Content-Type: application/json' \
    -d '{{"authyId":"14255550100","email":"alice@example.com","correlationId":"demo-journey-1","ipAddress":"203.0.113.7"}}'

3. Wait for the approval (paste the approvalRequestId; 409 ApprovalPending means call again):
  curl -s -X POST {base}/WaitForAuthyApproval -H @{header} -H 'Content-Type: application/json' \
    -d '{{"authyId":"14255550100","approvalRequestId":"PASTE-IT-HERE"}}'

Press Ctrl-C to stop.
"#,
        thumbprint = cert.thumbprint,
    );
}
