//! Configuration from the environment (in Azure: the Function App's application settings;
//! locally: `local.settings.json` under `func start`, or the shell).
//!
//! [`Config::from_lookup`] validates everything at startup and reports *every* problem, one
//! line each, so a misconfigured app fails once with a full list instead of at the first
//! sign-in. Settings that are legal but risky become [`Config::warnings`].

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::client_cert::{ClientCertMode, ClientCertPolicy, ClientCertSettings};
use crate::push_limits::blob::{BlobAuth, BlobSettings, DEFAULT_CONTAINER};
use crate::push_limits::store::StoreSettings;
use crate::push_limits::{Limit, OnStoreFailure, PushLimitSettings};

/// Seconds B2C custom policies give one REST call before abandoning it; B2C then retries once,
/// two tries in all, and the limit is not configurable. Since April 2025: MS docs
/// "api-connectors-overview" ("The default timeout is 10 seconds for custom policies and 5
/// seconds for user flows. The default retry count is one"), changed by MicrosoftDocs/azure-docs
/// pull requests #126324 (30 s and three tries → 10 s and two) and #126864. The page
/// "custom-policy-rest-api-intro" and older threads still say 30 s and two retries: stale.
pub const B2C_REST_TIMEOUT_SECONDS: u64 = 10;

/// How many times B2C tries one REST call: the first try and one retry (see
/// [`B2C_REST_TIMEOUT_SECONDS`] for the source).
pub const B2C_REST_TRIES: u32 = 2;

/// Default of `APPROVAL_WAIT_SECONDS`: short enough that the user sees the "approve, then
/// select Continue" page quickly and that a call stays 3 s clear of
/// [`B2C_REST_TIMEOUT_SECONDS`] for the network between B2C and the Function App and the
/// Functions host's own forwarding.
pub const DEFAULT_APPROVAL_WAIT_SECONDS: u64 = 7;

/// Largest accepted `APPROVAL_WAIT_SECONDS`, in seconds: 2 s below B2C's 10 s REST timeout
/// ([`B2C_REST_TIMEOUT_SECONDS`]), kept for the network and the Functions host's forwarding.
/// `deploy/provision.sh` refuses the same range (a test ties the two). host.json's
/// `functionTimeout` (2 minutes) stays above it.
pub const MAX_APPROVAL_WAIT_SECONDS: u64 = 8;

/// Default of `AUTHY_APPROVAL_TTL_SECONDS`: the approval request's lifetime at Authy, in
/// seconds (the two minutes of the classic single-call design).
pub const DEFAULT_APPROVAL_TTL_SECONDS: u64 = 120;

/// Smallest accepted `APPROVAL_POLL_INTERVAL_MS`, to stay clear of Authy's rate limits.
pub const MIN_POLL_INTERVAL_MS: u64 = 250;

/// Where the Authy API lives unless `AUTHY_API_URL` says otherwise.
pub const DEFAULT_AUTHY_API_URL: &str = "https://api.authy.com";

/// Every environment variable the handler reads: its settings, plus `WEBSITE_INSTANCE_ID`
/// (set by App Service) and `RUST_LOG` (read by [`crate::logging`]).
pub const SETTING_NAMES: &[&str] = &[
    "AUTHY_API_KEY",
    "AUTHY_API_URL",
    "AUTHY_APPROVAL_MESSAGE",
    "AUTHY_APPROVAL_TTL_SECONDS",
    "AUTHY_SEND_INSTALL_LINK_VIA_SMS",
    "APPROVAL_WAIT_SECONDS",
    "APPROVAL_POLL_INTERVAL_MS",
    "AUTHY_SIMULATOR",
    "FUNCTIONS_CUSTOMHANDLER_PORT",
    "CLIENT_CERT_MODE",
    "CLIENT_CERT_THUMBPRINTS",
    "CLIENT_CERT_SUBJECT",
    "CLIENT_CERT_ISSUER",
    "CLIENT_CERT_CA",
    "PUSH_LIMIT_BURST_COUNT",
    "PUSH_LIMIT_BURST_WINDOW_SECONDS",
    "PUSH_LIMIT_DAILY_COUNT",
    "PUSH_LIMIT_DAILY_WINDOW_SECONDS",
    "PUSH_PAUSE_AFTER_DENIAL_SECONDS",
    "PUSH_LIMITS_STORE_TIMEOUT_MS",
    "PUSH_LIMITS_ON_STORE_FAILURE",
    "PUSH_LIMITS_ALLOW_IN_MEMORY",
    "PUSH_LIMITS_CONTAINER",
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "RUST_LOG",
    "WEBSITE_INSTANCE_ID",
];

/// Azurite's well-known development account (MS docs "Use the Azurite emulator for local
/// Azure Storage development", "Well-known storage account and key"): what
/// `UseDevelopmentStorage=true` means. Public, not a secret.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known account key (see [`AZURITE_ACCOUNT`]).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Azurite's default Blob endpoint (path-style: the account is the first path segment).
pub const AZURITE_BLOB_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// Whether the Authy API is real or the built-in simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthyBackend {
    /// Talk to `AUTHY_API_URL` with `AUTHY_API_KEY`.
    Remote,
    /// Start the built-in simulator on a loopback port inside this process and talk to it
    /// (`AUTHY_SIMULATOR=embedded`, or the `demo` command). Refused in Azure.
    EmbeddedSimulator,
}

/// Everything the handler reads from its environment, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// `AUTHY_API_KEY`; `None` only with the embedded simulator (which makes up its own).
    pub authy_api_key: Option<SecretString>,
    /// `AUTHY_API_URL`: https, or http to a loopback address (the simulator).
    pub authy_api_url: Url,
    /// `AUTHY_APPROVAL_MESSAGE`: the push title, sent as given whatever the user's language;
    /// `None` (not set): the title of the messages table in the user's language ("Sign-in
    /// request" in English).
    pub approval_message: Option<String>,
    /// `AUTHY_APPROVAL_TTL_SECONDS`: `seconds_to_expire` of each approval request; this, not
    /// one HTTP call, is how long a user has to approve.
    pub approval_ttl: Duration,
    /// `AUTHY_SEND_INSTALL_LINK_VIA_SMS` (`true` | `false`, default
    /// [`crate::authy::DEFAULT_SEND_INSTALL_LINK_VIA_SMS`]): sent as `send_install_link_via_sms` on every
    /// `users/new` call, so Authy's console setting never decides it silently.
    pub send_install_link_via_sms: bool,
    /// `APPROVAL_WAIT_SECONDS`: the budget of one call of any function, Authy calls included.
    pub approval_wait: Duration,
    /// `APPROVAL_POLL_INTERVAL_MS`: pause between two status polls.
    pub poll_interval: Duration,
    /// `FUNCTIONS_CUSTOMHANDLER_PORT`: where the host forwards requests.
    pub port: u16,
    /// `AUTHY_SIMULATOR` (`off` | `embedded`).
    pub authy_backend: AuthyBackend,
    /// `CLIENT_CERT_*`: how the caller's certificate is checked.
    pub client_cert: Arc<ClientCertPolicy>,
    /// `PUSH_LIMIT_*`, `PUSH_PAUSE_AFTER_DENIAL_SECONDS`, `PUSH_LIMITS_STORE_TIMEOUT_MS`,
    /// `PUSH_LIMITS_ON_STORE_FAILURE`: the defence against push bombing.
    pub push_limits: PushLimitSettings,
    /// Where the push limits are kept: `AzureWebJobsStorage` (or its identity-based form)
    /// and `PUSH_LIMITS_CONTAINER`; [`StoreSettings::Memory`] without a storage setting
    /// (refused in Azure unless `PUSH_LIMITS_ALLOW_IN_MEMORY=true`).
    pub push_store: StoreSettings,
    /// `WEBSITE_INSTANCE_ID` is set: we run on App Service / Functions in Azure.
    pub running_in_azure: bool,
    /// Legal but risky settings, to be logged at WARN once logging is up.
    pub warnings: Vec<String>,
}

/// Every configuration problem found, one per line in `Display`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] listing every invalid setting.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (tests pass a map). Empty values count as unset.
    ///
    /// # Errors
    /// [`ConfigError`] listing every invalid setting.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut errors = Vec::new();
        let mut warnings = Vec::new();

        let running_in_azure = get("WEBSITE_INSTANCE_ID").is_some();
        let authy_backend = match get("AUTHY_SIMULATOR")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("off") | Some("false") => AuthyBackend::Remote,
            Some("embedded") => AuthyBackend::EmbeddedSimulator,
            Some(other) => {
                errors.push(format!(
                    "AUTHY_SIMULATOR: '{other}' is not one of off, embedded"
                ));
                AuthyBackend::Remote
            }
        };
        if authy_backend == AuthyBackend::EmbeddedSimulator && !cfg!(feature = "simulator") {
            errors.push(
                "AUTHY_SIMULATOR: this build has no Authy simulator (built without the `simulator` feature, as deploy/package.sh builds for Azure); remove the setting"
                    .into(),
            );
        }
        if authy_backend == AuthyBackend::EmbeddedSimulator && running_in_azure {
            errors.push(
                "AUTHY_SIMULATOR: the Authy simulator never runs in Azure (WEBSITE_INSTANCE_ID is set); remove the setting"
                    .into(),
            );
        }

        let raw_key = get("AUTHY_API_KEY");
        if raw_key.is_none() && authy_backend == AuthyBackend::Remote {
            errors.push(
                "AUTHY_API_KEY: required (the Authy application's API key), unless AUTHY_SIMULATOR=embedded"
                    .into(),
            );
        }
        // App Service passes a Key Vault reference it could not resolve through as its own
        // text (MS docs "app-service-key-vault-references"): every push would then fail with
        // AuthyApiKeyRejected, so say it at startup instead.
        if raw_key
            .as_deref()
            .is_some_and(|k| k.starts_with("@Microsoft.KeyVault("))
        {
            errors.push(
                "AUTHY_API_KEY: is an unresolved Key Vault reference: give the Function App's managed identity the 'Key Vault Secrets User' role on the vault and check the secret URI"
                    .into(),
            );
        }
        let authy_api_key = raw_key.map(SecretString::from);

        let authy_api_url = match parse_authy_url(
            &get("AUTHY_API_URL").unwrap_or_else(|| DEFAULT_AUTHY_API_URL.into()),
        ) {
            Ok(url) => url,
            Err(e) => {
                errors.push(format!("AUTHY_API_URL: {e}"));
                Url::parse(DEFAULT_AUTHY_API_URL).expect("constant URL parses")
            }
        };

        let approval_message = get("AUTHY_APPROVAL_MESSAGE");
        if approval_message
            .as_ref()
            .is_some_and(|m| m.chars().count() > 200)
        {
            errors.push("AUTHY_APPROVAL_MESSAGE: at most 200 characters".into());
        }

        let send_install_link_via_sms = match get("AUTHY_SEND_INSTALL_LINK_VIA_SMS")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => crate::authy::DEFAULT_SEND_INSTALL_LINK_VIA_SMS,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                errors.push(format!(
                    "AUTHY_SEND_INSTALL_LINK_VIA_SMS: '{other}' is not true or false (whether Authy texts a new user a link to install the Authy app)"
                ));
                crate::authy::DEFAULT_SEND_INSTALL_LINK_VIA_SMS
            }
        };

        let mut number = |name: &str,
                          default: u64,
                          range: std::ops::RangeInclusive<u64>,
                          what: &str,
                          why: &str|
         -> u64 {
            match get(name) {
                None => default,
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if range.contains(&n) => n,
                    _ => {
                        errors.push(format!(
                            "{name}: '{v}' is not {what} from {} to {}{why}",
                            range.start(),
                            range.end()
                        ));
                        default
                    }
                },
            }
        };
        let ttl = number(
            "AUTHY_APPROVAL_TTL_SECONDS",
            DEFAULT_APPROVAL_TTL_SECONDS,
            10..=86_400,
            "a whole number of seconds",
            "",
        );
        let wait = number(
            "APPROVAL_WAIT_SECONDS",
            DEFAULT_APPROVAL_WAIT_SECONDS,
            1..=MAX_APPROVAL_WAIT_SECONDS,
            "a whole number of seconds",
            &format!(
                ": B2C custom policies abandon a REST call after {B2C_REST_TIMEOUT_SECONDS} s and retry it once (MS docs \"api-connectors-overview\", since April 2025), so every call must answer well inside {B2C_REST_TIMEOUT_SECONDS} s"
            ),
        );
        let poll = number(
            "APPROVAL_POLL_INTERVAL_MS",
            1000,
            MIN_POLL_INTERVAL_MS..=60_000,
            "a whole number of milliseconds",
            "",
        );
        let port = number(
            "FUNCTIONS_CUSTOMHANDLER_PORT",
            7071,
            0..=65_535,
            "a port number",
            "",
        );
        if authy_backend == AuthyBackend::EmbeddedSimulator {
            warnings.push("AUTHY_SIMULATOR=embedded: pushes go to the built-in Authy simulator, not to Authy; never use this for real sign-ins".into());
        }

        let client_cert_settings = ClientCertSettings {
            mode: get("CLIENT_CERT_MODE"),
            thumbprints: get("CLIENT_CERT_THUMBPRINTS"),
            subject: get("CLIENT_CERT_SUBJECT"),
            issuer: get("CLIENT_CERT_ISSUER"),
            ca: get("CLIENT_CERT_CA"),
        };
        let client_cert =
            match ClientCertPolicy::from_settings(&client_cert_settings, running_in_azure) {
                Ok(policy) => Some(policy),
                Err(problems) => {
                    errors.extend(problems);
                    None
                }
            };
        if client_cert
            .as_ref()
            .is_some_and(|p| p.mode() == ClientCertMode::Disabled)
        {
            warnings.push("CLIENT_CERT_MODE=disabled: callers are not authenticated; never use this outside local development".into());
        }

        let push_limits = push_limit_settings(&get, wait, &mut errors, &mut warnings);
        let push_store = store_settings(&get, running_in_azure, &mut errors, &mut warnings);

        let Some(client_cert) = client_cert.filter(|_| errors.is_empty()) else {
            return Err(ConfigError(errors));
        };
        Ok(Self {
            authy_api_key,
            authy_api_url,
            approval_message,
            approval_ttl: Duration::from_secs(ttl),
            send_install_link_via_sms,
            approval_wait: Duration::from_secs(wait),
            poll_interval: Duration::from_millis(poll),
            port: u16::try_from(port).unwrap_or(7071),
            authy_backend,
            client_cert: Arc::new(client_cert),
            push_limits,
            push_store,
            running_in_azure,
            warnings,
        })
    }
}

/// Largest accepted `PUSH_LIMIT_BURST_COUNT` and `PUSH_LIMIT_DAILY_COUNT`: in effect no
/// limit (load tests, the integration tests), while a push history stays a few hundred
/// kilobytes at most.
pub const MAX_PUSH_COUNT: u64 = 100_000;

/// Default of `PUSH_LIMITS_STORE_TIMEOUT_MS`, in milliseconds (lowered to the largest
/// accepted value when `APPROVAL_WAIT_SECONDS` is below 4).
pub const DEFAULT_STORE_TIMEOUT_MS: u64 = 2000;

/// Smallest accepted `PUSH_LIMITS_STORE_TIMEOUT_MS`: below this even Azure's own network
/// cannot answer a conditional write reliably.
pub const MIN_STORE_TIMEOUT_MS: u64 = 100;

/// Largest accepted `PUSH_LIMITS_STORE_TIMEOUT_MS` for a call budget: half of
/// `APPROVAL_WAIT_SECONDS`. `CreateApprovalRequest` spends up to one store budget deciding
/// (`begin_push`) before it calls Authy and more recording the push (`sent`) after, all
/// bounded by the invocation's deadline (`APPROVAL_WAIT_SECONDS`); half leaves Authy's call
/// the other half at worst.
pub fn max_store_timeout_ms(approval_wait_seconds: u64) -> u64 {
    approval_wait_seconds.saturating_mul(1000) / 2
}

/// `true` | `false`, case-insensitive; `None` (with an error pushed) for anything else.
fn boolean(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
    what: &str,
    errors: &mut Vec<String>,
) -> bool {
    match get(name).as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => default,
        Some("true") => true,
        Some("false") => false,
        Some(other) => {
            errors.push(format!("{name}: '{other}' is not true or false ({what})"));
            default
        }
    }
}

/// A whole number in `range`, or the default (and an error).
fn whole(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    unit: &str,
    errors: &mut Vec<String>,
) -> u64 {
    match get(name) {
        None => default,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => n,
            _ => {
                errors.push(format!(
                    "{name}: '{v}' is not a whole number of {unit} from {} to {}",
                    range.start(),
                    range.end()
                ));
                default
            }
        },
    }
}

/// The `PUSH_*` limit settings; see docs/configuration.md, "Push limits".
fn push_limit_settings(
    get: &impl Fn(&str) -> Option<String>,
    approval_wait_seconds: u64,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> PushLimitSettings {
    let defaults = PushLimitSettings::default();
    let burst_count = whole(
        get,
        "PUSH_LIMIT_BURST_COUNT",
        3,
        1..=MAX_PUSH_COUNT,
        "pushes",
        errors,
    );
    let burst_window = whole(
        get,
        "PUSH_LIMIT_BURST_WINDOW_SECONDS",
        600,
        1..=86_400,
        "seconds",
        errors,
    );
    let daily_count = whole(
        get,
        "PUSH_LIMIT_DAILY_COUNT",
        10,
        1..=MAX_PUSH_COUNT,
        "pushes",
        errors,
    );
    let daily_window = whole(
        get,
        "PUSH_LIMIT_DAILY_WINDOW_SECONDS",
        86_400,
        1..=7 * 86_400,
        "seconds",
        errors,
    );
    let pause = whole(
        get,
        "PUSH_PAUSE_AFTER_DENIAL_SECONDS",
        900,
        0..=86_400,
        "seconds",
        errors,
    );
    if pause == 0 {
        warnings.push("PUSH_PAUSE_AFTER_DENIAL_SECONDS=0: a denied push does not pause new pushes; an attacker can keep sending them up to the limits".into());
    }
    if daily_count < burst_count {
        warnings.push(format!(
            "PUSH_LIMIT_DAILY_COUNT ({daily_count}) is below PUSH_LIMIT_BURST_COUNT ({burst_count}): the burst limit never applies"
        ));
    }
    let max_timeout = max_store_timeout_ms(approval_wait_seconds);
    let store_timeout = match get("PUSH_LIMITS_STORE_TIMEOUT_MS") {
        None => DEFAULT_STORE_TIMEOUT_MS.min(max_timeout),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (MIN_STORE_TIMEOUT_MS..=max_timeout).contains(&n) => n,
            _ => {
                errors.push(format!(
                    "PUSH_LIMITS_STORE_TIMEOUT_MS: '{v}' is not a whole number of milliseconds from {MIN_STORE_TIMEOUT_MS} to {max_timeout}: CreateApprovalRequest spends up to this checking the limits before it calls Authy and again recording the push after, all within APPROVAL_WAIT_SECONDS ({approval_wait_seconds} s), so at most half of it"
                ));
                DEFAULT_STORE_TIMEOUT_MS.min(max_timeout)
            }
        },
    };
    let on_store_failure = match get("PUSH_LIMITS_ON_STORE_FAILURE")
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("open") => OnStoreFailure::Open,
        Some("closed") => OnStoreFailure::Closed,
        Some(other) => {
            errors.push(format!(
                "PUSH_LIMITS_ON_STORE_FAILURE: '{other}' is not one of open (send the push without the limits while the store is down), closed (refuse it)"
            ));
            defaults.on_store_failure
        }
    };
    PushLimitSettings {
        burst: Limit {
            count: u32::try_from(burst_count).unwrap_or(defaults.burst.count),
            window: Duration::from_secs(burst_window),
        },
        daily: Limit {
            count: u32::try_from(daily_count).unwrap_or(defaults.daily.count),
            window: Duration::from_secs(daily_window),
        },
        pause_after_denial: Duration::from_secs(pause),
        store_timeout: Duration::from_millis(store_timeout),
        on_store_failure,
    }
}

/// The push-limit store: `AzureWebJobsStorage` (a connection string), else its
/// identity-based form (`AzureWebJobsStorage__accountName` or `__blobServiceUri`, with
/// `__credential` and `__clientId`: MS docs "Connecting to host storage with an identity"),
/// else memory — refused in Azure unless `PUSH_LIMITS_ALLOW_IN_MEMORY=true`. Errors name the
/// setting, never echo a connection string.
fn store_settings(
    get: &impl Fn(&str) -> Option<String>,
    running_in_azure: bool,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> StoreSettings {
    let allow_in_memory = boolean(
        get,
        "PUSH_LIMITS_ALLOW_IN_MEMORY",
        false,
        "whether the handler may run in Azure with the push limits in memory, per instance",
        errors,
    );
    let container = get("PUSH_LIMITS_CONTAINER").unwrap_or_else(|| DEFAULT_CONTAINER.into());
    if let Err(e) = check_container_name(&container) {
        errors.push(format!("PUSH_LIMITS_CONTAINER: '{container}' {e}"));
    }
    let connection_string = get("AzureWebJobsStorage");
    let account_name = get("AzureWebJobsStorage__accountName");
    let service_uri = get("AzureWebJobsStorage__blobServiceUri");
    let credential = get("AzureWebJobsStorage__credential");
    let client_id = get("AzureWebJobsStorage__clientId");
    let identity_based = account_name.is_some() || service_uri.is_some();

    let target = if let Some(raw) = connection_string {
        if identity_based {
            warnings.push("AzureWebJobsStorage is set, and so is AzureWebJobsStorage__accountName or __blobServiceUri: the push limits use the connection string".into());
        }
        match parse_connection_string(&raw) {
            Ok(target) => Some(target),
            Err(e) => {
                errors.push(format!("AzureWebJobsStorage: {e}"));
                None
            }
        }
    } else if identity_based {
        identity_target(
            account_name.as_deref(),
            service_uri.as_deref(),
            credential.as_deref(),
            client_id,
            errors,
        )
    } else {
        if running_in_azure {
            if allow_in_memory {
                warnings.push("PUSH_LIMITS_ALLOW_IN_MEMORY=true and no AzureWebJobsStorage: push limits hold per instance only; with several instances an attacker gets each instance's limits".into());
            } else {
                errors.push("AzureWebJobsStorage: not set, so the push limits have nowhere to live that all instances share; set it (the Function App's storage account; a connection string, or AzureWebJobsStorage__accountName for a managed identity), or set PUSH_LIMITS_ALLOW_IN_MEMORY=true to keep them per instance".into());
            }
        }
        return StoreSettings::Memory;
    };
    match target {
        Some((endpoint, account, auth)) => StoreSettings::Blob(BlobSettings {
            endpoint,
            account,
            auth,
            container,
            extra_root_ca_pem: None,
        }),
        None => StoreSettings::Memory,
    }
}

/// A storage connection string, parsed by hand because no maintained crate does (the legacy
/// `azure_storage` 0.21 did; the official 1.x crates take a URL and a credential). The format:
/// MS docs "Configure Azure Storage connection strings": `Key=Value` pairs separated by `;`,
/// keys case-insensitive here: `UseDevelopmentStorage=true` (Azurite), or `AccountName`,
/// `AccountKey` / `SharedAccessSignature`, `DefaultEndpointsProtocol` (https), `EndpointSuffix`
/// (core.windows.net), `BlobEndpoint`. Errors never quote the value.
pub fn parse_connection_string(raw: &str) -> Result<(Url, String, BlobAuth), String> {
    // App Service passes a Key Vault reference it could not resolve through as its own text
    // (as for AUTHY_API_KEY above).
    if raw.trim_start().starts_with("@Microsoft.KeyVault(") {
        return Err("is an unresolved Key Vault reference: give the Function App's managed identity the 'Key Vault Secrets User' role on the vault and check the secret URI".into());
    }
    let mut fields = std::collections::HashMap::new();
    for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            return Err("is not a connection string (Key=Value pairs separated by ';')".into());
        };
        fields.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    if fields
        .get("usedevelopmentstorage")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        let endpoint = Url::parse(AZURITE_BLOB_ENDPOINT).map_err(|e| e.to_string())?;
        return Ok((
            endpoint,
            AZURITE_ACCOUNT.into(),
            BlobAuth::AccountKey(SecretString::from(AZURITE_KEY)),
        ));
    }
    let account = fields.get("accountname").cloned();
    let endpoint = match (fields.get("blobendpoint"), &account) {
        (Some(endpoint), _) => {
            let url = Url::parse(endpoint).map_err(|_| "BlobEndpoint is not a URL".to_string())?;
            check_storage_url(&url).map_err(|e| format!("BlobEndpoint {e}"))?;
            url
        }
        (None, Some(account)) => {
            let protocol = fields
                .get("defaultendpointsprotocol")
                .map_or("https", String::as_str);
            if protocol != "https" && protocol != "http" {
                return Err("DefaultEndpointsProtocol must be https or http".into());
            }
            let suffix = fields
                .get("endpointsuffix")
                .map_or("core.windows.net", String::as_str);
            let url = Url::parse(&format!("{protocol}://{account}.blob.{suffix}"))
                .map_err(|_| "AccountName or EndpointSuffix does not make a URL".to_string())?;
            check_storage_url(&url).map_err(|e| format!("the blob endpoint {e}"))?;
            url
        }
        (None, None) => {
            return Err(
                "has neither AccountName nor BlobEndpoint (nor UseDevelopmentStorage=true)".into(),
            )
        }
    };
    let account = match account {
        Some(a) => a,
        // A SAS connection string may name only the endpoint: take the account from it.
        None => account_from_endpoint(&endpoint)
            .ok_or("has no AccountName, and the BlobEndpoint does not name one")?,
    };
    let auth = if let Some(key) = fields.get("accountkey") {
        if base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key).is_err() {
            return Err(
                "AccountKey is not base64 (copy it from the storage account's Access keys)".into(),
            );
        }
        BlobAuth::AccountKey(SecretString::from(key.clone()))
    } else if let Some(sas) = fields.get("sharedaccesssignature") {
        if !sas.contains("sig=") {
            return Err("SharedAccessSignature has no sig= field".into());
        }
        BlobAuth::Sas(SecretString::from(sas.clone()))
    } else {
        return Err("has neither AccountKey nor SharedAccessSignature (for a managed identity, use AzureWebJobsStorage__accountName instead)".into());
    };
    Ok((endpoint, account, auth))
}

/// https, or http to a loopback host (Azurite); no user name, password or query.
fn check_storage_url(url: &Url) -> Result<(), String> {
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() {
        return Err("must not contain credentials or a query".into());
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        _ => Err("must use https (http only to a loopback address, such as Azurite)".into()),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `ACCOUNT` of `https://ACCOUNT.blob.…`, or the first path segment of a path-style
/// (Azurite) endpoint.
fn account_from_endpoint(url: &Url) -> Option<String> {
    if is_loopback(url) {
        url.path_segments()?
            .next()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    } else {
        url.host_str()?.split('.').next().map(str::to_owned)
    }
}

/// The identity-based host storage settings.
fn identity_target(
    account_name: Option<&str>,
    service_uri: Option<&str>,
    credential: Option<&str>,
    client_id: Option<String>,
    errors: &mut Vec<String>,
) -> Option<(Url, String, BlobAuth)> {
    match credential.map(str::to_ascii_lowercase).as_deref() {
        None | Some("managedidentity") => {}
        Some(_) => {
            errors.push("AzureWebJobsStorage__credential: only managedidentity is supported (the Function App's managed identity)".into());
            return None;
        }
    }
    if let Some(id) = &client_id {
        if uuid::Uuid::parse_str(id).is_err() {
            errors.push("AzureWebJobsStorage__clientId: is not a client id (a GUID: the user-assigned identity's Client ID)".into());
            return None;
        }
    }
    let (endpoint, account) = if let Some(uri) = service_uri {
        let Ok(url) = Url::parse(uri) else {
            errors.push("AzureWebJobsStorage__blobServiceUri: is not a URL".into());
            return None;
        };
        if url.scheme() != "https" || !url.username().is_empty() || url.password().is_some() {
            errors.push("AzureWebJobsStorage__blobServiceUri: must be an https URL without credentials (a managed identity's token is sent only over https)".into());
            return None;
        }
        let Some(account) = account_name
            .map(str::to_owned)
            .or_else(|| account_from_endpoint(&url))
        else {
            errors.push(
                "AzureWebJobsStorage__blobServiceUri: does not name a storage account".into(),
            );
            return None;
        };
        (url, account)
    } else {
        let account = account_name.unwrap_or_default();
        if !(3..=24).contains(&account.len())
            || !account
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            errors.push(format!("AzureWebJobsStorage__accountName: '{account}' is not a storage account name (3 to 24 lowercase letters and digits)"));
            return None;
        }
        let url = Url::parse(&format!("https://{account}.blob.core.windows.net")).ok()?;
        (url, account.to_owned())
    };
    Some((endpoint, account, BlobAuth::ManagedIdentity { client_id }))
}

/// Blob Storage's container names (MS docs "Naming and referencing containers, blobs, and
/// metadata"): 3–63 characters, lowercase letters, digits and single hyphens, starting and
/// ending with a letter or digit.
fn check_container_name(name: &str) -> Result<(), &'static str> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err("is not a container name (3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit)")
    }
}

/// https anywhere; plain http only to a loopback host (the simulator), so the API key never
/// crosses a network in clear text.
fn parse_authy_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if url.password().is_some() || !url.username().is_empty() {
        // Never echo credentials into a log line.
        return Err(
            "must not contain a user name or password (the key goes in AUTHY_API_KEY)".into(),
        );
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(format!(
            "'{raw}' must use https (http is allowed only to a loopback address)"
        )),
        other => Err(format!("'{raw}': unsupported scheme {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::collections::HashMap;

    const TP: &str = "ABCDEF0123456789ABCDEF0123456789ABCDEF01";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn setting_names_lists_every_setting_read() {
        let read = std::cell::RefCell::new(Vec::new());
        let _ = Config::from_lookup(|name| {
            read.borrow_mut().push(name.to_owned());
            None
        });
        for name in read.borrow().iter() {
            assert!(
                SETTING_NAMES.contains(&name.as_str()),
                "{name} is not in SETTING_NAMES"
            );
        }
        assert_eq!(
            read.borrow().len() + 1,
            SETTING_NAMES.len(),
            "RUST_LOG is read by logging"
        );
    }

    #[test]
    fn defaults_need_only_the_key() {
        let c = config(&[("AUTHY_API_KEY", "k"), ("CLIENT_CERT_THUMBPRINTS", TP)]).unwrap();
        assert_eq!(c.approval_wait, Duration::from_secs(7));
        assert_eq!(c.poll_interval, Duration::from_millis(1000));
        assert_eq!(c.approval_ttl, Duration::from_secs(120));
        assert_eq!(c.port, 7071);
        assert!(c.send_install_link_via_sms);
        assert_eq!(c.authy_api_url.as_str(), "https://api.authy.com/");
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn reports_every_problem_on_its_own_line() {
        let e = config(&[
            ("APPROVAL_WAIT_SECONDS", "0"),
            ("APPROVAL_POLL_INTERVAL_MS", "10"),
            ("AUTHY_API_URL", "http://api.authy.com"),
        ])
        .unwrap_err();
        assert_eq!(e.0.len(), 5, "{e}");
        assert!(e
            .0
            .iter()
            .any(|l| l.starts_with("CLIENT_CERT_THUMBPRINTS: required")));
        assert!(e.0.iter().any(|l| l.starts_with("AUTHY_API_KEY: required")));
        assert!(e.0.iter().any(|l| l.starts_with("APPROVAL_WAIT_SECONDS:")));
        assert!(e
            .0
            .iter()
            .any(|l| l.starts_with("APPROVAL_POLL_INTERVAL_MS:")));
        assert!(e.0.iter().any(|l| l.contains("must use https")));
    }

    #[test]
    fn the_install_link_setting_is_true_or_false_only() {
        let with = |value: &str| {
            config(&[
                ("AUTHY_API_KEY", "k"),
                ("CLIENT_CERT_THUMBPRINTS", TP),
                ("AUTHY_SEND_INSTALL_LINK_VIA_SMS", value),
            ])
        };
        assert!(!with("false").unwrap().send_install_link_via_sms);
        assert!(!with(" FALSE ").unwrap().send_install_link_via_sms);
        assert!(with("True").unwrap().send_install_link_via_sms);
        for wrong in ["0", "1", "yes", "no", "off"] {
            let e = with(wrong).unwrap_err();
            assert_eq!(e.0.len(), 1, "{e}");
            assert!(
                e.0[0].starts_with("AUTHY_SEND_INSTALL_LINK_VIA_SMS: ")
                    && e.0[0].contains("is not true or false"),
                "{e}"
            );
        }
    }

    #[test]
    fn refuses_waits_b2c_would_time_out_and_the_simulator_in_azure() {
        let c = config(&[
            ("AUTHY_API_KEY", "k"),
            ("APPROVAL_WAIT_SECONDS", "8"),
            ("CLIENT_CERT_THUMBPRINTS", TP),
        ])
        .unwrap();
        assert_eq!(c.approval_wait, Duration::from_secs(8));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for too_long in ["9", "20", "25"] {
            let e = config(&[
                ("AUTHY_API_KEY", "k"),
                ("APPROVAL_WAIT_SECONDS", too_long),
                ("CLIENT_CERT_THUMBPRINTS", TP),
            ])
            .unwrap_err();
            let line =
                e.0.iter()
                    .find(|l| l.starts_with("APPROVAL_WAIT_SECONDS:"))
                    .unwrap_or_else(|| panic!("no APPROVAL_WAIT_SECONDS line in {e}"));
            assert!(line.contains("from 1 to 8"), "{line}");
            assert!(line.contains("after 10 s and retry it once"), "{line}");
        }
        let e = config(&[
            (
                "AUTHY_API_KEY",
                "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/authy-api-key/)",
            ),
            ("CLIENT_CERT_THUMBPRINTS", TP),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("unresolved Key Vault reference"),
            "{e}"
        );
        assert!(!e.to_string().contains("kv.vault"), "{e}");
        let e = config(&[
            ("AUTHY_SIMULATOR", "embedded"),
            ("WEBSITE_INSTANCE_ID", "abc"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("never runs in Azure"));
        let c = config(&[
            ("AUTHY_SIMULATOR", "embedded"),
            ("CLIENT_CERT_MODE", "disabled"),
        ])
        .unwrap();
        assert_eq!(c.authy_backend, AuthyBackend::EmbeddedSimulator);
        assert!(c.warnings.iter().any(|w| w.contains("simulator")));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("CLIENT_CERT_MODE=disabled")));
    }

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut all = vec![("AUTHY_API_KEY", "k"), ("CLIENT_CERT_THUMBPRINTS", TP)];
        all.extend_from_slice(pairs);
        config(&all)
    }

    fn one_error(pairs: &[(&str, &str)], starts: &str) -> String {
        let e = with(pairs).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].starts_with(starts), "{e}");
        e.0[0].clone()
    }

    const KEY: &str = "c2VjcmV0LWFjY291bnQta2V5LWZvci10ZXN0cw==";

    #[test]
    fn push_limit_defaults_and_ranges() {
        let c = with(&[]).unwrap();
        assert_eq!(c.push_limits, PushLimitSettings::default());
        assert!(matches!(c.push_store, StoreSettings::Memory));
        let c = with(&[
            ("PUSH_LIMIT_BURST_COUNT", "5"),
            ("PUSH_LIMIT_BURST_WINDOW_SECONDS", "2"),
            ("PUSH_LIMIT_DAILY_COUNT", "20"),
            ("PUSH_LIMIT_DAILY_WINDOW_SECONDS", "3600"),
            ("PUSH_PAUSE_AFTER_DENIAL_SECONDS", "60"),
            ("PUSH_LIMITS_STORE_TIMEOUT_MS", "3500"),
            ("PUSH_LIMITS_ON_STORE_FAILURE", "Closed"),
        ])
        .unwrap();
        let p = &c.push_limits;
        assert_eq!((p.burst.count, p.burst.window), (5, Duration::from_secs(2)));
        assert_eq!(
            (p.daily.count, p.daily.window),
            (20, Duration::from_secs(3600))
        );
        assert_eq!(p.pause_after_denial, Duration::from_secs(60));
        assert_eq!(p.store_timeout, Duration::from_millis(3500));
        assert_eq!(p.on_store_failure, OnStoreFailure::Closed);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for (name, bad) in [
            ("PUSH_LIMIT_BURST_COUNT", "0"),
            ("PUSH_LIMIT_BURST_COUNT", "100001"),
            ("PUSH_LIMIT_BURST_WINDOW_SECONDS", "0"),
            ("PUSH_LIMIT_BURST_WINDOW_SECONDS", "86401"),
            ("PUSH_LIMIT_DAILY_COUNT", "-1"),
            ("PUSH_LIMIT_DAILY_COUNT", "100001"),
            ("PUSH_LIMIT_DAILY_WINDOW_SECONDS", "604801"),
            ("PUSH_PAUSE_AFTER_DENIAL_SECONDS", "86401"),
            ("PUSH_PAUSE_AFTER_DENIAL_SECONDS", "ten"),
            ("PUSH_LIMITS_STORE_TIMEOUT_MS", "99"),
        ] {
            let line = one_error(
                &[(name, bad)],
                &format!("{name}: '{bad}' is not a whole number"),
            );
            assert!(line.contains(" from "), "{line}");
        }
        let line = one_error(
            &[("PUSH_LIMITS_ON_STORE_FAILURE", "maybe")],
            "PUSH_LIMITS_ON_STORE_FAILURE: 'maybe' is not one of open",
        );
        assert!(line.contains("closed"), "{line}");
        one_error(
            &[("PUSH_LIMITS_ALLOW_IN_MEMORY", "yes")],
            "PUSH_LIMITS_ALLOW_IN_MEMORY: 'yes' is not true or false",
        );
        one_error(
            &[("PUSH_LIMITS_CONTAINER", "Bad_Name")],
            "PUSH_LIMITS_CONTAINER: 'Bad_Name' is not a container name",
        );
        for bad in ["ab", "-abc", "abc-", "a--b"] {
            one_error(&[("PUSH_LIMITS_CONTAINER", bad)], "PUSH_LIMITS_CONTAINER:");
        }
        let c = with(&[
            ("PUSH_PAUSE_AFTER_DENIAL_SECONDS", "0"),
            ("PUSH_LIMIT_DAILY_COUNT", "2"),
        ])
        .unwrap();
        assert!(c
            .warnings
            .iter()
            .any(|w| w.starts_with("PUSH_PAUSE_AFTER_DENIAL_SECONDS=0")));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.contains("the burst limit never applies")));
    }

    #[test]
    fn the_store_budget_leaves_room_in_the_call_budget() {
        // Half of APPROVAL_WAIT_SECONDS at most: twice per CreateApprovalRequest, plus Authy.
        let line = one_error(
            &[("PUSH_LIMITS_STORE_TIMEOUT_MS", "3501")],
            "PUSH_LIMITS_STORE_TIMEOUT_MS: '3501' is not a whole number of milliseconds from 100 to 3500",
        );
        assert!(line.contains("APPROVAL_WAIT_SECONDS (7 s)"), "{line}");
        one_error(
            &[("APPROVAL_WAIT_SECONDS", "2"), ("PUSH_LIMITS_STORE_TIMEOUT_MS", "1500")],
            "PUSH_LIMITS_STORE_TIMEOUT_MS: '1500' is not a whole number of milliseconds from 100 to 1000",
        );
        // Unset, the default (2 s) shrinks to fit a short wait.
        let c = with(&[("APPROVAL_WAIT_SECONDS", "3")]).unwrap();
        assert_eq!(c.push_limits.store_timeout, Duration::from_millis(1500));
        let c = with(&[("APPROVAL_WAIT_SECONDS", "8")]).unwrap();
        assert_eq!(c.push_limits.store_timeout, Duration::from_millis(2000));
    }

    #[test]
    fn in_azure_the_limits_need_a_shared_store_unless_allowed_per_instance() {
        let azure = [
            ("WEBSITE_INSTANCE_ID", "abc"),
            ("AUTHY_API_KEY", "k"),
            ("CLIENT_CERT_THUMBPRINTS", TP),
        ];
        let e = config(&azure).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(e.0[0].starts_with("AzureWebJobsStorage: not set"), "{e}");
        assert!(e.0[0].contains("PUSH_LIMITS_ALLOW_IN_MEMORY=true"), "{e}");
        let mut allowed = azure.to_vec();
        allowed.push(("PUSH_LIMITS_ALLOW_IN_MEMORY", "true"));
        let c = config(&allowed).unwrap();
        assert!(matches!(c.push_store, StoreSettings::Memory));
        assert!(
            c.warnings.iter().any(|w| w.contains("per instance only")),
            "{:?}",
            c.warnings
        );
        let mut stored = azure.to_vec();
        stored.push(("AzureWebJobsStorage__accountName", "contosoauthy"));
        let c = config(&stored).unwrap();
        assert!(matches!(c.push_store, StoreSettings::Blob(_)));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // Outside Azure, memory is the quiet default.
        assert!(with(&[]).unwrap().warnings.is_empty());
    }

    fn blob(pairs: &[(&str, &str)]) -> BlobSettings {
        match with(pairs).unwrap().push_store {
            StoreSettings::Blob(b) => b,
            StoreSettings::Memory => panic!("memory"),
        }
    }

    #[test]
    fn connection_strings() {
        let b = blob(&[("AzureWebJobsStorage", "UseDevelopmentStorage=true")]);
        assert_eq!(
            b.endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );
        assert_eq!(b.account, "devstoreaccount1");
        assert_eq!(b.container, "b2c-authy-push-limits");
        assert!(matches!(&b.auth, BlobAuth::AccountKey(k) if k.expose_secret() == AZURITE_KEY));

        let full = format!(
            "DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey={KEY};EndpointSuffix=core.windows.net"
        );
        let b = blob(&[
            ("AzureWebJobsStorage", &full),
            ("PUSH_LIMITS_CONTAINER", "limits-1"),
        ]);
        assert_eq!(
            b.endpoint.as_str(),
            "https://contoso.blob.core.windows.net/"
        );
        assert_eq!(b.account, "contoso");
        assert_eq!(b.container, "limits-1");
        assert!(matches!(&b.auth, BlobAuth::AccountKey(k) if k.expose_secret() == KEY));
        assert!(!format!("{b:?}").contains(KEY), "Debug shows the key");

        let b = blob(&[(
            "AzureWebJobsStorage",
            &format!("AccountName=contoso;AccountKey={KEY};EndpointSuffix=core.chinacloudapi.cn"),
        )]);
        assert_eq!(
            b.endpoint.as_str(),
            "https://contoso.blob.core.chinacloudapi.cn/"
        );

        // Azurite spelled out, as its docs give it (explicit BlobEndpoint, path-style).
        let b = blob(&[(
            "AzureWebJobsStorage",
            &format!("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"),
        )]);
        assert_eq!(
            b.endpoint.as_str(),
            "http://127.0.0.1:10000/devstoreaccount1"
        );

        let b = blob(&[(
            "AzureWebJobsStorage",
            "BlobEndpoint=https://contoso.blob.core.windows.net/;SharedAccessSignature=sv=2025-05-05&ss=b&srt=co&sp=rwdc&se=2030-01-01T00:00:00Z&sig=abc%2B",
        )]);
        assert_eq!(b.account, "contoso");
        assert!(matches!(&b.auth, BlobAuth::Sas(s) if s.expose_secret().ends_with("sig=abc%2B")));
    }

    #[test]
    fn bad_connection_strings_name_the_setting_never_the_value() {
        let secret_key = "U0VDUkVULUtFWS1ET05PVExFQUs=";
        for (raw, says) in [
            (format!("AccountName=contoso;AccountKey={secret_key};DefaultEndpointsProtocol=http"), "must use https"),
            ("AccountName=contoso".to_string(), "neither AccountKey nor SharedAccessSignature"),
            (format!("AccountKey={secret_key}"), "neither AccountName nor BlobEndpoint"),
            ("AccountName=contoso;AccountKey=not base64!!".to_string(), "AccountKey is not base64"),
            (secret_key.to_string(), "neither AccountName nor BlobEndpoint"),
            ("just some text".to_string(), "is not a connection string"),
            (
                "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/storage/)".to_string(),
                "unresolved Key Vault reference",
            ),
            ("BlobEndpoint=https://contoso.blob.core.windows.net;SharedAccessSignature=sv=1&sp=r".to_string(), "no sig="),
            (format!("AccountName=c;AccountKey={secret_key};BlobEndpoint=ftp://x"), "BlobEndpoint must use https"),
        ] {
            let line = one_error(&[("AzureWebJobsStorage", &raw)], "AzureWebJobsStorage: ");
            assert!(line.contains(says), "{line}");
            assert!(!line.contains(secret_key) && !line.contains("not base64!!") && !line.contains("sp=r"), "{line}");
        }
    }

    #[test]
    fn identity_based_storage_settings() {
        let b = blob(&[("AzureWebJobsStorage__accountName", "contosoauthy")]);
        assert_eq!(
            b.endpoint.as_str(),
            "https://contosoauthy.blob.core.windows.net/"
        );
        assert_eq!(b.account, "contosoauthy");
        assert!(matches!(
            b.auth,
            BlobAuth::ManagedIdentity { client_id: None }
        ));
        let id = "6f1e2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b";
        let b = blob(&[
            (
                "AzureWebJobsStorage__blobServiceUri",
                "https://contosoauthy.blob.core.windows.net",
            ),
            ("AzureWebJobsStorage__credential", "managedidentity"),
            ("AzureWebJobsStorage__clientId", id),
        ]);
        assert_eq!(b.account, "contosoauthy");
        assert!(matches!(&b.auth, BlobAuth::ManagedIdentity { client_id: Some(c) } if c == id));
        one_error(
            &[("AzureWebJobsStorage__accountName", "Contoso_Authy")],
            "AzureWebJobsStorage__accountName: 'Contoso_Authy' is not a storage account name",
        );
        one_error(
            &[(
                "AzureWebJobsStorage__blobServiceUri",
                "http://contoso.blob.core.windows.net",
            )],
            "AzureWebJobsStorage__blobServiceUri: must be an https URL",
        );
        one_error(
            &[
                ("AzureWebJobsStorage__accountName", "contoso"),
                ("AzureWebJobsStorage__credential", "clientsecret"),
            ],
            "AzureWebJobsStorage__credential: only managedidentity",
        );
        one_error(
            &[
                ("AzureWebJobsStorage__accountName", "contoso"),
                ("AzureWebJobsStorage__clientId", "me"),
            ],
            "AzureWebJobsStorage__clientId: is not a client id",
        );
        // A connection string wins, with a warning.
        let c = with(&[
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("AzureWebJobsStorage__accountName", "contoso"),
        ])
        .unwrap();
        assert!(matches!(&c.push_store, StoreSettings::Blob(b) if b.account == "devstoreaccount1"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    }
}
