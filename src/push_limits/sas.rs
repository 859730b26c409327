//! An **account SAS** (shared access signature) signed with a storage account key, for the
//! push-limit store when `AzureWebJobsStorage` is a connection string with `AccountKey=`
//! (what `func start`, Azurite and many Function Apps use).
//!
//! Hand-written, and why: the official Azure SDK for Rust has no Shared Key support for Blob
//! Storage. `azure_storage_blob` 1.1.0 authenticates with an Entra ID `TokenCredential` or a
//! SAS URL only (`BlobClient::new(blob_url, credential: Option<Arc<dyn TokenCredential>>, …)`;
//! its CHANGELOG adds `get_user_delegation_key()` "for creating user delegation SAS tokens"),
//! and `azure_storage_sas` 1.0.0 builds *user delegation* SAS only, which needs an Entra ID
//! token in the first place. The legacy `azure_storage` 0.21 crates that did Shared Key are
//! unmaintained. So the key signs an account SAS here, and the SDK is given that SAS.
//!
//! The algorithm: MS docs "Create an account SAS" (learn.microsoft.com/rest/api/storageservices/
//! create-account-sas), version 2020-12-06 and later: the string-to-sign is
//! `accountname\n sp\n ss\n srt\n st\n se\n sip\n spr\n sv\n ses\n` (each field followed by a
//! newline, empty fields empty), signed with HMAC-SHA256 keyed with the base64-decoded account
//! key, the signature base64-encoded into `sig`. Checked against a value computed by the
//! Python Azure SDK (`azure.storage.blob.generate_account_sas`), see the tests.
//!
//! What this SAS allows, nothing more: the Blob service (`ss=b`), containers and blobs
//! (`srt=co`), read, write, delete and create (`sp=rwdc`), https only (`spr=https`) unless the
//! endpoint is plain http on a loopback address (Azurite), for [`TOKEN_LIFETIME`].

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use ring::hmac;

/// The storage service version the SAS is signed for (`sv`). Any version ≥ 2020-12-06 has
/// the string-to-sign above; this one is served by Azure and by Azurite 3.35.
pub const SAS_VERSION: &str = "2025-05-05";

/// How long one SAS is valid. It is renewed after [`RENEW_AFTER`], so a renewal that fails
/// (it cannot: it is local computation) or a clock that jumps has hours of margin.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// A SAS older than this is replaced by a new one before the next request.
pub const RENEW_AFTER: Duration = Duration::from_secs(3600);

/// The start time is set this far in the past, for clock skew between us and the service
/// (MS docs "Best practices when using SAS": "set the start time to be at least 15 minutes
/// in the past").
const CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

/// The fields of one account SAS; [`AccountSas::to_query`] signs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSas<'a> {
    /// `sp`, in the order the docs list them (`rwdlacup…`).
    pub permissions: &'a str,
    /// `ss`: `b` for Blob.
    pub services: &'a str,
    /// `srt`: `s` service, `c` container, `o` object.
    pub resource_types: &'a str,
    /// `st`, ISO 8601 UTC to the second.
    pub start: String,
    /// `se`, ISO 8601 UTC to the second.
    pub expiry: String,
    /// `spr`: `https` or `https,http`.
    pub protocol: &'a str,
    /// `sv`.
    pub version: &'a str,
}

impl AccountSas<'_> {
    /// The SAS for the push-limit store valid from now (minus clock skew) for
    /// [`TOKEN_LIFETIME`]; `allow_http` only for a loopback http endpoint (Azurite).
    pub fn for_push_limits(now: SystemTime, allow_http: bool) -> AccountSas<'static> {
        AccountSas {
            permissions: "rwdc",
            services: "b",
            resource_types: "co",
            start: iso8601(now.checked_sub(CLOCK_SKEW).unwrap_or(now)),
            expiry: iso8601(now + TOKEN_LIFETIME),
            protocol: if allow_http { "https,http" } else { "https" },
            version: SAS_VERSION,
        }
    }

    /// The string the account key signs (docs "Create an account SAS", "Construct the
    /// signature string", version 2020-12-06 and later). No IP range, no encryption scope.
    pub fn string_to_sign(&self, account: &str) -> String {
        [
            account,
            self.permissions,
            self.services,
            self.resource_types,
            &self.start,
            &self.expiry,
            "", // sip
            self.protocol,
            self.version,
            "", // ses
        ]
        .iter()
        .map(|field| format!("{field}\n"))
        .collect()
    }

    /// The SAS query string (without `?`), signed with `key` (the account key, already
    /// base64-decoded). The result is a secret: never log it.
    pub fn to_query(&self, account: &str, key: &[u8]) -> String {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let tag = hmac::sign(&key, self.string_to_sign(account).as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(tag.as_ref());
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sv", self.version)
            .append_pair("ss", self.services)
            .append_pair("srt", self.resource_types)
            .append_pair("sp", self.permissions)
            .append_pair("se", &self.expiry)
            .append_pair("st", &self.start)
            .append_pair("spr", self.protocol)
            .append_pair("sig", &sig)
            .finish()
    }
}

/// `2026-12-03T15:04:05Z`.
fn iso8601(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Azurite's well-known development account key (public, in Microsoft's docs).
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    fn fixed() -> AccountSas<'static> {
        AccountSas {
            permissions: "rwdc",
            services: "b",
            resource_types: "co",
            start: "2026-01-01T00:00:00Z".into(),
            expiry: "2026-01-02T00:00:00Z".into(),
            protocol: "https",
            version: "2026-10-06",
        }
    }

    #[test]
    fn string_to_sign_has_every_field_and_a_trailing_newline() {
        assert_eq!(
            fixed().string_to_sign("devstoreaccount1"),
            "devstoreaccount1\nrwdc\nb\nco\n2026-01-01T00:00:00Z\n2026-01-02T00:00:00Z\n\nhttps\n2026-10-06\n\n"
        );
    }

    /// The expected `sig` was computed by the Python Azure SDK :
    /// `generate_account_sas("devstoreaccount1", DEV_KEY, ResourceTypes(container=True,
    /// object=True), AccountSasPermissions(read=True, write=True, delete=True, create=True),
    /// expiry=datetime(2026,1,2,tzinfo=utc), start=datetime(2026,1,1,tzinfo=utc),
    /// protocol="https", services=Services(blob=True))` in azure-storage-blob 12.31.1, whose
    /// `sv` is 2026-10-06; its `sts_hook` showed the same string-to-sign as the test above.
    #[test]
    fn signature_matches_the_python_azure_sdk() {
        let key = base64::engine::general_purpose::STANDARD
            .decode(DEV_KEY)
            .unwrap();
        let query = fixed().to_query("devstoreaccount1", &key);
        let sig: String = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "sig")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        assert_eq!(sig, PYTHON_SDK_SIG);
        assert!(query.contains("sv=2026-10-06&ss=b&srt=co&sp=rwdc&se=2026-01-02T00%3A00%3A00Z&st=2026-01-01T00%3A00%3A00Z&spr=https&sig="), "{query}");
    }

    const PYTHON_SDK_SIG: &str = "lYOXu6Exb1r+gc1Y3f3tV8feCNBpstqzir+41E2VPrc=";

    #[test]
    fn push_limit_sas_is_https_only_unless_asked_and_valid_a_day() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let sas = AccountSas::for_push_limits(now, false);
        assert_eq!(sas.protocol, "https");
        assert_eq!(sas.start, iso8601(now - CLOCK_SKEW));
        assert_eq!(sas.expiry, iso8601(now + Duration::from_secs(86_400)));
        assert_eq!(
            AccountSas::for_push_limits(now, true).protocol,
            "https,http"
        );
    }
}
