//! Logging: `tracing`, one JSON object per line, no ANSI colours. WARN and ERROR go to
//! stderr, everything else to stdout: the Functions host turns the handler's stderr lines into
//! warnings/errors when host.json sets `useStdErrorStreamForErrorsOnly` (MS docs
//! "functions-custom-handlers").
//!
//! Personal data is masked at the source (the domain types print themselves masked); the
//! Authy key lives in a `SecretString` and the client certificate header is never logged.

use tracing::Level;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` sets the filter (default `info`). The Azure
/// SDK's HTTP pipeline (`typespec_client_core`, under the push-limit store) logs every failed
/// try at INFO; it is held to WARN unless `RUST_LOG` names it: the store's own line per
/// failed check says it once.
///
/// # Errors
/// When `RUST_LOG` is not a valid filter.
pub fn init() -> Result<(), String> {
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = if directives.trim().is_empty() {
        EnvFilter::new("info")
    } else {
        EnvFilter::try_new(directives.trim())
            .map_err(|e| format!("RUST_LOG: not a valid log filter ({e})"))?
    };
    if !directives.contains("typespec_client_core") {
        if let Ok(quiet) = "typespec_client_core=warn".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let writer = std::io::stderr
        .with_max_level(Level::WARN)
        .or_else(std::io::stdout);
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .with_writer(writer)
        .try_init()
        .map_err(|e| format!("cannot install the logger: {e}"))
}
