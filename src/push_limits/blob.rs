//! The push-limit store in Azure Blob Storage: the Function App's own storage account
//! (`AzureWebJobsStorage`), or Azurite locally. Shared by every instance the Functions host
//! scales out to, so the limits hold for the whole app.
//!
//! Each document is a block blob (a few hundred bytes of JSON) in one container
//! (`PUSH_LIMITS_CONTAINER`, default `b2c-authy-push-limits`, created at startup when absent),
//! named by the keyed hash [`super::PushLimits`] computes. Optimistic concurrency is Blob
//! Storage's own (MS docs "Managing concurrency in Blob storage"):
//! - read: `Get Blob`; 404 → `None`; the `ETag` is the version;
//! - write: `Put Blob` with `If-None-Match: *` ([`Condition::Absent`]) or `If-Match: <etag>`
//!   ([`Condition::Matches`]); 409 `BlobAlreadyExists` / 412 `ConditionNotMet` → a lost race,
//!   `Ok(Err(Conflict))`;
//! - delete: `Delete Blob` with `If-Match`; 404 (gone) and 412 (changed since) are fine.
//!
//! Client: the official Azure SDK for Rust (`azure_storage_blob` 1.x over `azure_core` 1.x;
//! `azure_identity` 1.x for a managed identity). Credentials, [`BlobAuth`]:
//! - a connection string with `AccountKey=`: an account SAS signed with the key
//!   ([`super::sas`], which says why it is hand-written), renewed hourly, valid 24 h;
//! - a connection string with `SharedAccessSignature=`: that SAS, as given;
//! - identity-based settings: an Entra ID token of the Function App's managed identity
//!   (`ManagedIdentityCredential`: on App Service from `IDENTITY_ENDPOINT` and
//!   `IDENTITY_HEADER`), which needs the role "Storage Blob Data Contributor" on the account.
//!
//! One HTTP transport (our reqwest client, rustls) serves the blob client and the
//! credential. Its timeouts and the SDK's retry policy are cut to the store budget
//! (`PUSH_LIMITS_STORE_TIMEOUT_MS`, default 2 s): the SDK's defaults (8 retries, up to a
//! minute, 20 s connect and 60 s read timeouts) would otherwise turn one store call into
//! minutes; [`super::PushLimits`] times out every check anyway.
//!
//! No message this module makes carries a key, a SAS or a connection string: errors are
//! built from the HTTP status and the service's error code, the transport's errors are
//! stripped of their URL (which would carry the SAS).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{
    AsyncRawResponse, ClientOptions, Context, ExponentialRetryOptions, HttpClient, RequestContent,
    RetryOptions, StatusCode, Transport,
};
use azure_identity::{ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId};
use azure_storage_blob::models::{
    BlobClientDeleteOptions, BlobClientDownloadOptions, BlockBlobClientUploadOptions,
};
use azure_storage_blob::{BlobContainerClient, BlobContainerClientOptions};
use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::sas::{AccountSas, RENEW_AFTER};
use super::store::{Condition, Conflict, Etag, StoreError, Versioned};

/// The container of the push-limit documents unless `PUSH_LIMITS_CONTAINER` says otherwise.
pub const DEFAULT_CONTAINER: &str = "b2c-authy-push-limits";

/// Where the blob store is and how it authenticates, as parsed from the settings by
/// [`crate::config`]. `Debug` shows no secret.
#[derive(Clone, Debug)]
pub struct BlobSettings {
    /// The Blob service endpoint, without query: `https://ACCOUNT.blob.core.windows.net/`,
    /// or Azurite's `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: Url,
    /// The storage account's name, for the startup log line and the account SAS.
    pub account: String,
    /// How requests are authorised.
    pub auth: BlobAuth,
    /// The container (`PUSH_LIMITS_CONTAINER`).
    pub container: String,
    /// A root certificate (PEM) to trust besides the public ones. No setting sets it: the
    /// tests' own certificate authority for an https Azurite. `None` from the config.
    pub extra_root_ca_pem: Option<Vec<u8>>,
}

/// How the blob store authenticates; see the module docs.
#[derive(Clone, Debug)]
pub enum BlobAuth {
    /// `AccountKey=` of a connection string (base64; checked by the config): an account SAS
    /// is signed with it.
    AccountKey(SecretString),
    /// `SharedAccessSignature=` of a connection string, used as given.
    Sas(SecretString),
    /// The app's managed identity: system-assigned (`None`) or the user-assigned identity
    /// with this client id (`AzureWebJobsStorage__clientId`).
    ManagedIdentity {
        /// `AzureWebJobsStorage__clientId`.
        client_id: Option<String>,
    },
}

impl BlobAuth {
    /// For the startup log line.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AccountKey(_) => "account key (account SAS)",
            Self::Sas(_) => "shared access signature",
            Self::ManagedIdentity { client_id: None } => "managed identity (system-assigned)",
            Self::ManagedIdentity { client_id: Some(_) } => "managed identity (user-assigned)",
        }
    }
}

/// Blob Storage; see the module docs.
pub struct BlobStore {
    container: BlobContainerClient,
    description: String,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("store", &self.description)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// A client for `settings` whose every request is cut off after `timeout` (the store
    /// budget). Creates the container when absent; "already exists" is fine. Fails when the
    /// account cannot be reached or refuses the credentials — at startup, not at the first
    /// sign-in.
    ///
    /// # Errors
    /// A message naming the endpoint and what failed, never a secret.
    pub async fn connect(settings: &BlobSettings, timeout: Duration) -> Result<Self, StoreError> {
        let store = Self::new(settings, timeout)?;
        match store.container.create(None).await {
            Ok(_) => {}
            Err(e) if e.http_status() == Some(StatusCode::Conflict) => {}
            Err(e) => {
                return Err(StoreError(format!(
                    "cannot create the container '{}' at {}: {}",
                    settings.container,
                    endpoint_for_log(&settings.endpoint),
                    describe(&e)
                )))
            }
        }
        Ok(store)
    }

    /// The client without touching the network.
    ///
    /// # Errors
    /// A bad key or a client the SDK refuses (e.g. a token credential over http).
    pub fn new(settings: &BlobSettings, timeout: Duration) -> Result<Self, StoreError> {
        let transport = Transport::new(Arc::new(Http::new(
            timeout,
            settings.extra_root_ca_pem.as_deref(),
        )?));
        let mut client_options = ClientOptions {
            transport: Some(transport.clone()),
            retry: retry_options(timeout),
            ..Default::default()
        };
        let mut credential: Option<Arc<dyn TokenCredential>> = None;
        match &settings.auth {
            BlobAuth::AccountKey(key) => {
                let key = base64::engine::general_purpose::STANDARD
                    .decode(key.expose_secret())
                    .map_err(|_| StoreError("the account key is not base64".into()))?;
                let allow_http = settings.endpoint.scheme() == "http";
                client_options
                    .per_call_policies
                    .push(Arc::new(SasPolicy::Signed(Arc::new(SignedSas {
                        account: settings.account.clone(),
                        key,
                        allow_http,
                        current: Mutex::new(None),
                    }))));
            }
            BlobAuth::Sas(sas) => {
                let pairs = url::form_urlencoded::parse(
                    sas.expose_secret().trim_start_matches('?').as_bytes(),
                )
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
                client_options
                    .per_call_policies
                    .push(Arc::new(SasPolicy::Fixed(pairs)));
            }
            BlobAuth::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: ClientOptions {
                        transport: Some(transport),
                        retry: retry_options(timeout),
                        ..Default::default()
                    },
                };
                credential = Some(
                    ManagedIdentityCredential::new(Some(options))
                        .map_err(|e| StoreError(format!("managed identity: {}", describe(&e))))?,
                );
            }
        }
        let mut url = settings.endpoint.clone();
        url.set_query(None);
        url.path_segments_mut()
            .map_err(|()| StoreError("the blob endpoint is not a base URL".into()))?
            .pop_if_empty()
            .push(&settings.container);
        let container = BlobContainerClient::new(
            url,
            credential,
            Some(BlobContainerClientOptions {
                client_options,
                ..Default::default()
            }),
        )
        .map_err(|e| StoreError(format!("blob client: {}", describe(&e))))?;
        Ok(Self {
            container,
            description: format!(
                "Azure Blob Storage, account {} at {}, container {}, {}",
                settings.account,
                endpoint_for_log(&settings.endpoint),
                settings.container,
                settings.auth.kind()
            ),
        })
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let blob = self.container.blob_client(key);
        let download = match blob
            .download(Some(BlobClientDownloadOptions::default()))
            .await
        {
            Ok(d) => d,
            Err(e) if e.http_status() == Some(StatusCode::NotFound) => return Ok(None),
            Err(e) => return Err(StoreError(format!("read: {}", describe(&e)))),
        };
        let etag = download
            .properties
            .etag
            .as_ref()
            .map(|e| Etag(e.to_string()))
            .ok_or_else(|| StoreError("read: the answer has no ETag".into()))?;
        let body = download
            .body
            .collect()
            .await
            .map_err(|e| StoreError(format!("read: {}", describe(&e))))?;
        Ok(Some(Versioned {
            body: body.to_vec(),
            etag,
        }))
    }

    pub(super) async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: &Condition,
    ) -> Result<Result<Etag, Conflict>, StoreError> {
        let blob = self.container.blob_client(key).block_blob_client();
        let mut options = BlockBlobClientUploadOptions {
            blob_content_type: Some("application/json".into()),
            ..Default::default()
        };
        match condition {
            Condition::Absent => options.if_none_match = Some("*".into()),
            Condition::Matches(etag) => options.if_match = Some(etag.0.clone().into()),
        }
        let content: RequestContent<azure_core::Bytes, _> = azure_core::Bytes::from(body).into();
        match blob.upload(content, Some(options)).await {
            Ok(result) => result
                .etag
                .map(|e| Ok(Etag(e.to_string())))
                .ok_or_else(|| StoreError("write: the answer has no ETag".into())),
            Err(e)
                if matches!(
                    e.http_status(),
                    Some(StatusCode::Conflict | StatusCode::PreconditionFailed)
                ) =>
            {
                Ok(Err(Conflict))
            }
            Err(e) => Err(StoreError(format!("write: {}", describe(&e)))),
        }
    }

    pub(super) async fn delete(&self, key: &str, etag: &Etag) -> Result<(), StoreError> {
        let blob = self.container.blob_client(key);
        let options = BlobClientDeleteOptions {
            if_match: Some(etag.0.clone().into()),
            ..Default::default()
        };
        match blob.delete(Some(options)).await {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.http_status(),
                    Some(StatusCode::NotFound | StatusCode::PreconditionFailed)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(StoreError(format!("delete: {}", describe(&e)))),
        }
    }

    pub(super) fn describe(&self) -> String {
        self.description.clone()
    }
}

/// Few, short retries: two more tries, 50 ms apart growing, all within the budget. A store
/// that is down is reported (and `PUSH_LIMITS_ON_STORE_FAILURE` decides) in seconds, not
/// minutes.
fn retry_options(budget: Duration) -> RetryOptions {
    let budget_ms = i64::try_from(budget.as_millis()).unwrap_or(i64::MAX);
    RetryOptions::exponential(ExponentialRetryOptions {
        initial_delay: azure_core::time::Duration::milliseconds(50),
        max_retries: 2,
        max_total_elapsed: azure_core::time::Duration::milliseconds(budget_ms),
        max_delay: azure_core::time::Duration::milliseconds(budget_ms / 2),
    })
}

/// An error of the SDK in words fit for a log line: the HTTP status and the service's error
/// code, or the kind of failure — never the error's own text for transport errors (it could
/// quote the request URL, SAS included).
fn describe(e: &azure_core::Error) -> String {
    match e.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => match error_code {
            Some(code) => format!("HTTP {} {code}", u16::from(*status)),
            None => format!("HTTP {}", u16::from(*status)),
        },
        ErrorKind::Connection => "cannot connect".into(),
        ErrorKind::Io => "connection failed or timed out".into(),
        ErrorKind::DataConversion => "unexpected answer".into(),
        // The credential's messages name the identity endpoint's answer; scrubbed anyway.
        ErrorKind::Credential => format!("credential: {}", scrub(&e.to_string())),
        _ => scrub(&e.to_string()),
    }
}

/// Cuts any `sig=` value out of a message, should one ever quote a SAS.
fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("sig=") {
        out.push_str(&rest[..at + 4]);
        out.push_str("REDACTED");
        rest = &rest[at + 4..];
        let end = rest.find(['&', ' ', ')', '"']).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The endpoint as logged: scheme, host, port and path (it never has a query here).
fn endpoint_for_log(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    let _ = url.set_password(None);
    let _ = url.set_username("");
    url.to_string()
}

/// A SAS as query pairs, decoded.
type QueryPairs = Vec<(String, String)>;

/// The account SAS signed with the key, renewed after [`RENEW_AFTER`].
struct SignedSas {
    account: String,
    key: Vec<u8>,
    allow_http: bool,
    /// The current SAS and when it was made.
    current: Mutex<Option<(Instant, QueryPairs)>>,
}

impl SignedSas {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((made, pairs)) = current.as_ref() {
            if made.elapsed() < RENEW_AFTER {
                return pairs.clone();
            }
        }
        let query = AccountSas::for_push_limits(SystemTime::now(), self.allow_http)
            .to_query(&self.account, &self.key);
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        *current = Some((Instant::now(), pairs.clone()));
        pairs
    }
}

/// Adds the SAS to every request's query (a per-call policy: once per call, before the
/// SDK's retries).
enum SasPolicy {
    Signed(Arc<SignedSas>),
    Fixed(Vec<(String, String)>),
}

impl std::fmt::Debug for SasPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SasPolicy(REDACTED)")
    }
}

#[async_trait::async_trait]
impl Policy for SasPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut azure_core::http::Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let pairs = match self {
            Self::Signed(signed) => signed.pairs(),
            Self::Fixed(pairs) => pairs.clone(),
        };
        {
            let url = request.url_mut();
            let mut query = url.query_pairs_mut();
            for (k, v) in &pairs {
                query.append_pair(k, v);
            }
        }
        match next.split_first() {
            Some((policy, rest)) => policy.send(ctx, request, rest).await,
            None => Err(azure_core::Error::with_message(
                ErrorKind::Other,
                "no transport after the SAS policy",
            )),
        }
    }
}

/// The HTTP transport of the blob client and the managed-identity credential: one reqwest
/// client (rustls, connection pool), every request cut off after the store budget, no
/// redirects (REST services do not redirect; a redirect would carry the SAS elsewhere).
#[derive(Debug)]
struct Http(reqwest::Client);

impl Http {
    fn new(timeout: Duration, extra_root_ca_pem: Option<&[u8]>) -> Result<Self, StoreError> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = extra_root_ca_pem {
            let ca = reqwest::Certificate::from_pem(pem)
                .map_err(|_| StoreError("the extra root certificate is not PEM".into()))?;
            builder = builder.add_root_certificate(ca);
        }
        builder
            .connect_timeout(timeout)
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map(Self)
            .map_err(|e| StoreError(format!("HTTP client: {}", e.without_url())))
    }
}

#[async_trait::async_trait]
impl HttpClient for Http {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<AsyncRawResponse> {
        let method =
            reqwest::Method::from_bytes(request.method().as_str().as_bytes()).map_err(|_| {
                azure_core::Error::with_message(ErrorKind::Other, "unknown HTTP method")
            })?;
        let mut builder = self.0.request(method, request.url().clone());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let body = match request.body() {
            azure_core::http::Body::Bytes(bytes) => bytes.clone(),
            azure_core::http::Body::SeekableStream(_) => {
                // Our documents are a few hundred bytes: the SDK sends them as bytes.
                return Err(azure_core::Error::with_message(
                    ErrorKind::Other,
                    "streamed request bodies are not supported",
                ));
            }
        };
        let transport_error = |e: reqwest::Error| {
            let kind = if e.is_connect() {
                ErrorKind::Connection
            } else {
                ErrorKind::Io
            };
            // Without the URL: it carries the SAS.
            azure_core::Error::with_error(kind, e.without_url(), "storage request failed")
        };
        let response = builder.body(body).send().await.map_err(transport_error)?;
        let status = response.status().as_u16();
        let mut headers = azure_core::http::headers::Headers::new();
        for (name, value) in response.headers() {
            if let Ok(value) = value.to_str() {
                headers.insert(name.as_str().to_owned(), value.to_owned());
            }
        }
        let bytes = response.bytes().await.map_err(transport_error)?;
        let stream = futures_util::stream::once(async move { Ok(bytes) });
        Ok(AsyncRawResponse::new(
            status.into(),
            headers,
            Box::pin(stream),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_signatures() {
        assert_eq!(
            scrub("GET http://x/c/b?sv=1&sig=abc%2Bdef&se=2 failed"),
            "GET http://x/c/b?sv=1&sig=REDACTED&se=2 failed"
        );
        assert_eq!(scrub("sig=zzz"), "sig=REDACTED");
        assert_eq!(scrub("nothing here"), "nothing here");
    }

    #[test]
    fn description_names_account_endpoint_and_kind_only() {
        let store = BlobStore::new(
            &BlobSettings {
                endpoint: Url::parse("http://127.0.0.1:10000/devstoreaccount1").unwrap(),
                account: "devstoreaccount1".into(),
                auth: BlobAuth::AccountKey(SecretString::from("a2V5a2V5a2V5")),
                container: "c1".into(),
                extra_root_ca_pem: None,
            },
            Duration::from_secs(2),
        )
        .unwrap();
        let d = store.describe();
        assert!(
            d.contains("devstoreaccount1") && d.contains("container c1"),
            "{d}"
        );
        assert!(!d.contains("a2V5"), "{d}");
        assert_eq!(
            store.container.url().as_str(),
            "http://127.0.0.1:10000/devstoreaccount1/c1"
        );
    }
}
