//! Client-certificate authentication of the caller (B2C), fail-closed.
//!
//! B2C's RESTful technical profile with `AuthenticationType=ClientCertificate` presents the
//! certificate of the policy key `B2C_1A_RestApiClientCertificate`. App Service ends TLS at its
//! front end and forwards that certificate to the app in the `X-ARR-ClientCert` header (base64
//! of the DER bytes) — and does nothing else with it: the app must validate it (MS docs
//! "app-service-web-configure-tls-mutual-auth"). With `clientCertMode=Required` the front end
//! has already checked that the caller holds the private key; this layer checks *which*
//! certificate it is.
//!
//! Checks, all of which must pass ([`ClientCertPolicy::check`]):
//! 1. the header is present exactly once, at most [`MAX_HEADER_BYTES`], decodes (base64 DER,
//!    surrounding whitespace and PEM armour tolerated) and parses as one X.509 certificate;
//! 2. `notBefore ≤ now ≤ notAfter`;
//! 3. its SHA-1 [`Thumbprint`] is in the allow-list (several, for rotation);
//! 4. when configured: the subject and/or issuer match, and the certificate chains to the
//!    pinned CA with client-auth usage (rustls-webpki: signatures, validity, EKU).
//!
//! The certificate itself is never logged; rejections log the reason, thumbprint and subject.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls_pki_types::{CertificateDer, TrustAnchor, UnixTime};
use sha1::{Digest, Sha1};

use crate::error::ApiError;

/// The header App Service forwards the client certificate in.
pub const CLIENT_CERT_HEADER: &str = "x-arr-clientcert";

/// Largest accepted header value, in bytes (16 KiB; a 4096-bit RSA certificate is ~2 KiB).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// An accepted certificate closer than this to `notAfter` logs a rotation reminder.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often the rotation reminder repeats for one certificate.
const REMINDER_EVERY: Duration = Duration::from_secs(3600);

/// SHA-1 of the certificate's DER bytes, the identifier Azure and B2C display (upper-case
/// hex, 40 digits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Thumbprint([u8; 20]);

impl Thumbprint {
    /// The thumbprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha1::digest(der).into())
    }

    /// Parses a thumbprint as people paste it: case, spaces and colons ignored
    /// (`ab:cd:…`, `AB CD …`).
    ///
    /// # Errors
    /// When what remains is not 40 hex digits.
    pub fn parse(input: &str) -> Result<Self, String> {
        let hex: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect();
        if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "'{input}' is not a SHA-1 thumbprint (40 hex digits)"
            ));
        }
        let mut bytes = [0u8; 20];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("'{input}' is not hex"))?;
        }
        Ok(Self(bytes))
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A distinguished name compared attribute by attribute, in any order, attribute names
/// case-insensitive (`CN=b2c.contoso.com, O=Contoso` = `O=Contoso,CN=b2c.contoso.com`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistinguishedName(Vec<(String, String)>);

impl DistinguishedName {
    /// Parses `CN=…, O=…`; a `\,` stays inside a value.
    ///
    /// # Errors
    /// When a component has no `=`, or the name is empty.
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = input.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ',' => parts.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        parts.push(current);
        let mut components = Vec::new();
        for part in parts.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
            let (attribute, value) = part
                .split_once('=')
                .ok_or_else(|| format!("'{input}' is not a distinguished name (CN=...)"))?;
            components.push((
                attribute.trim().to_ascii_uppercase(),
                value.trim().to_owned(),
            ));
        }
        if components.is_empty() {
            return Err(format!("'{input}' is not a distinguished name (CN=...)"));
        }
        components.sort();
        Ok(Self(components))
    }

    fn of(name: &x509_parser::x509::X509Name<'_>) -> Option<Self> {
        let oids = x509_parser::objects::oid_registry();
        let mut components = Vec::new();
        for attribute in name.iter_attributes() {
            let short = x509_parser::objects::oid2abbrev(attribute.attr_type(), oids)
                .map(str::to_owned)
                .unwrap_or_else(|_| attribute.attr_type().to_id_string());
            let value = attribute.as_str().ok()?.to_owned();
            components.push((short.to_ascii_uppercase(), value));
        }
        components.sort();
        Some(Self(components))
    }
}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<String> = self.0.iter().map(|(a, v)| format!("{a}={v}")).collect();
        f.write_str(&text.join(", "))
    }
}

/// Why a certificate was refused: the precise reason goes to `developerMessage` and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRejection {
    /// No `X-ARR-ClientCert` header (client certificates off, or `Optional` and none sent).
    #[error("no client certificate (X-ARR-ClientCert header missing)")]
    Missing,
    /// More than one header: ambiguous, refused.
    #[error("X-ARR-ClientCert header sent {0} times")]
    Repeated(usize),
    /// Over [`MAX_HEADER_BYTES`].
    #[error("X-ARR-ClientCert header larger than 16 KiB")]
    TooLarge,
    /// Not base64 (after whitespace and PEM armour are removed).
    #[error("X-ARR-ClientCert is not base64")]
    NotBase64,
    /// Base64 of something that is not one DER X.509 certificate.
    #[error("X-ARR-ClientCert is not an X.509 certificate: {0}")]
    NotACertificate(String),
    /// Past `notAfter`.
    #[error("client certificate {thumbprint} expired at {not_after}")]
    Expired {
        /// Its thumbprint.
        thumbprint: Thumbprint,
        /// RFC 3339.
        not_after: String,
    },
    /// Before `notBefore`.
    #[error("client certificate {thumbprint} is not valid before {not_before}")]
    NotYetValid {
        /// Its thumbprint.
        thumbprint: Thumbprint,
        /// RFC 3339.
        not_before: String,
    },
    /// Not in `CLIENT_CERT_THUMBPRINTS`.
    #[error("client certificate thumbprint {0} is not in CLIENT_CERT_THUMBPRINTS")]
    UnknownThumbprint(Thumbprint),
    /// Subject differs from `CLIENT_CERT_SUBJECT`.
    #[error("client certificate subject '{found}' does not match '{expected}'")]
    SubjectMismatch {
        /// The certificate's subject.
        found: String,
        /// The configured subject.
        expected: String,
    },
    /// Issuer differs from `CLIENT_CERT_ISSUER`.
    #[error("client certificate issuer '{found}' does not match '{expected}'")]
    IssuerMismatch {
        /// The certificate's issuer.
        found: String,
        /// The configured issuer.
        expected: String,
    },
    /// Does not chain to `CLIENT_CERT_CA` for client authentication.
    #[error("client certificate does not chain to the pinned CA for client authentication: {0}")]
    UntrustedChain(String),
}

/// A refused certificate: why, and which one (once it parsed), for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The failed check.
    pub reason: CertRejection,
    /// The certificate's thumbprint, when it parsed.
    pub thumbprint: Option<Thumbprint>,
    /// The certificate's subject, when it parsed.
    pub subject: Option<String>,
}

/// `CLIENT_CERT_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertMode {
    /// Every function call must present an accepted certificate (the default).
    Required,
    /// No check at all: local development only; refused in Azure.
    Disabled,
}

/// A certificate that passed every configured check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedClientCert {
    /// Its thumbprint.
    pub thumbprint: Thumbprint,
    /// Its subject.
    pub subject: String,
    /// Time left until `notAfter`.
    pub expires_in: Duration,
}

/// The configured checks (see the module docs). Built once at startup.
pub struct ClientCertPolicy {
    mode: ClientCertMode,
    /// Accepted thumbprints: more than one while a certificate is rotated.
    thumbprints: Vec<Thumbprint>,
    subject: Option<DistinguishedName>,
    issuer: Option<DistinguishedName>,
    /// The pinned CA as a trust anchor for rustls-webpki.
    ca: Option<TrustAnchor<'static>>,
    /// When each certificate's rotation reminder was last logged.
    reminders: Mutex<HashMap<Thumbprint, std::time::Instant>>,
}

impl fmt::Debug for ClientCertPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertPolicy")
            .field("mode", &self.mode)
            .field("thumbprints", &self.thumbprints)
            .field("subject", &self.subject)
            .field("issuer", &self.issuer)
            .field("ca", &self.ca.is_some())
            .finish()
    }
}

/// The raw `CLIENT_CERT_*` settings.
#[derive(Debug, Clone, Default)]
pub struct ClientCertSettings {
    /// `CLIENT_CERT_MODE`: `required` (default) or `disabled`.
    pub mode: Option<String>,
    /// `CLIENT_CERT_THUMBPRINTS`: separated by `,` or `;`.
    pub thumbprints: Option<String>,
    /// `CLIENT_CERT_SUBJECT`.
    pub subject: Option<String>,
    /// `CLIENT_CERT_ISSUER`.
    pub issuer: Option<String>,
    /// `CLIENT_CERT_CA`: PEM text, or the path of a PEM file.
    pub ca: Option<String>,
}

impl ClientCertPolicy {
    /// Validates the settings. `running_in_azure` refuses `disabled`.
    ///
    /// # Errors
    /// One line per problem: unknown mode, `disabled` in Azure, `required` without
    /// thumbprints, a thumbprint that is not 40 hex digits, a subject/issuer that is not a
    /// distinguished name, a CA that does not read or parse.
    pub fn from_settings(
        settings: &ClientCertSettings,
        running_in_azure: bool,
    ) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let mode = match settings
            .mode
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("required") => ClientCertMode::Required,
            Some("disabled") => ClientCertMode::Disabled,
            Some(other) => {
                errors.push(format!(
                    "CLIENT_CERT_MODE: '{other}' is not one of required, disabled"
                ));
                ClientCertMode::Required
            }
        };
        if mode == ClientCertMode::Disabled && running_in_azure {
            errors.push("CLIENT_CERT_MODE: 'disabled' is refused in Azure (WEBSITE_INSTANCE_ID is set): every caller would be accepted".into());
        }
        let mut thumbprints = Vec::new();
        for item in settings
            .thumbprints
            .as_deref()
            .unwrap_or("")
            .split([',', ';'])
            .filter(|s| !s.trim().is_empty())
        {
            match Thumbprint::parse(item.trim()) {
                Ok(t) => thumbprints.push(t),
                Err(e) => errors.push(format!("CLIENT_CERT_THUMBPRINTS: {e}")),
            }
        }
        if mode == ClientCertMode::Required && thumbprints.is_empty() && errors.is_empty() {
            errors.push("CLIENT_CERT_THUMBPRINTS: required (the SHA-1 thumbprints of the certificates B2C presents), unless CLIENT_CERT_MODE=disabled".into());
        }
        let mut name = |setting: &str, value: &Option<String>| {
            value.as_deref().and_then(|v| {
                DistinguishedName::parse(v)
                    .map_err(|e| errors.push(format!("{setting}: {e}")))
                    .ok()
            })
        };
        let subject = name("CLIENT_CERT_SUBJECT", &settings.subject);
        let issuer = name("CLIENT_CERT_ISSUER", &settings.issuer);
        let ca = match settings.ca.as_deref() {
            None => None,
            Some(value) => match load_ca(value) {
                Ok(anchor) => Some(anchor),
                Err(e) => {
                    errors.push(format!("CLIENT_CERT_CA: {e}"));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            mode,
            thumbprints,
            subject,
            issuer,
            ca,
            reminders: Mutex::new(HashMap::new()),
        })
    }

    /// The mode.
    pub fn mode(&self) -> ClientCertMode {
        self.mode
    }

    /// Applies every configured check to the request's headers at `now`.
    /// `Ok(None)` when the mode is `disabled`.
    ///
    /// # Errors
    /// The first failed check, with the certificate's thumbprint and subject once it parsed.
    pub fn check(
        &self,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<Option<AcceptedClientCert>, Rejection> {
        if self.mode == ClientCertMode::Disabled {
            return Ok(None);
        }
        let anonymous = |reason| Rejection {
            reason,
            thumbprint: None,
            subject: None,
        };
        let values: Vec<_> = headers.get_all(CLIENT_CERT_HEADER).iter().collect();
        let value = match values.as_slice() {
            [] => return Err(anonymous(CertRejection::Missing)),
            [one] => *one,
            many => return Err(anonymous(CertRejection::Repeated(many.len()))),
        };
        let der = decode_header(value.as_bytes()).map_err(anonymous)?;
        let (rest, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| anonymous(CertRejection::NotACertificate(e.to_string())))?;
        if !rest.is_empty() {
            return Err(anonymous(CertRejection::NotACertificate(
                "trailing bytes after the certificate".into(),
            )));
        }
        let thumbprint = Thumbprint::of(&der);
        self.validate(&der, &cert, thumbprint, now)
            .map(Some)
            .map_err(|reason| Rejection {
                reason,
                thumbprint: Some(thumbprint),
                subject: Some(cert.subject().to_string()),
            })
    }

    /// Checks 2–4 on a parsed certificate.
    fn validate(
        &self,
        der: &[u8],
        cert: &x509_parser::certificate::X509Certificate<'_>,
        thumbprint: Thumbprint,
        now: SystemTime,
    ) -> Result<AcceptedClientCert, CertRejection> {
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
        let validity = cert.validity();
        if now_secs < validity.not_before.timestamp() {
            return Err(CertRejection::NotYetValid {
                thumbprint,
                not_before: rfc3339(validity.not_before.timestamp()),
            });
        }
        if now_secs > validity.not_after.timestamp() {
            return Err(CertRejection::Expired {
                thumbprint,
                not_after: rfc3339(validity.not_after.timestamp()),
            });
        }
        if !self.thumbprints.contains(&thumbprint) {
            return Err(CertRejection::UnknownThumbprint(thumbprint));
        }
        let subject = DistinguishedName::of(cert.subject());
        if let Some(expected) = &self.subject {
            if subject.as_ref() != Some(expected) {
                return Err(CertRejection::SubjectMismatch {
                    found: cert.subject().to_string(),
                    expected: expected.to_string(),
                });
            }
        }
        if let Some(expected) = &self.issuer {
            if DistinguishedName::of(cert.issuer()).as_ref() != Some(expected) {
                return Err(CertRejection::IssuerMismatch {
                    found: cert.issuer().to_string(),
                    expected: expected.to_string(),
                });
            }
        }
        if let Some(anchor) = &self.ca {
            verify_chain(der, anchor, now)?;
        }
        Ok(AcceptedClientCert {
            thumbprint,
            subject: cert.subject().to_string(),
            expires_in: Duration::from_secs(
                u64::try_from(validity.not_after.timestamp() - now_secs).unwrap_or(0),
            ),
        })
    }

    /// Whether to log the rotation reminder for `accepted` now (at most once an hour per
    /// certificate).
    fn reminder_due(&self, accepted: &AcceptedClientCert) -> bool {
        if accepted.expires_in > EXPIRY_WARNING {
            return false;
        }
        let Ok(mut reminders) = self.reminders.lock() else {
            return true;
        };
        let now = std::time::Instant::now();
        match reminders.get(&accepted.thumbprint) {
            Some(last) if now.duration_since(*last) < REMINDER_EVERY => false,
            _ => {
                reminders.insert(accepted.thumbprint, now);
                true
            }
        }
    }
}

/// Base64 DER → bytes; tolerates surrounding whitespace, line breaks and PEM armour.
///
/// # Errors
/// [`CertRejection::TooLarge`], [`CertRejection::NotBase64`].
pub fn decode_header(value: &[u8]) -> Result<Vec<u8>, CertRejection> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(CertRejection::TooLarge);
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| CertRejection::NotBase64)?
        .trim();
    let body = match text.strip_prefix("-----BEGIN CERTIFICATE-----") {
        Some(rest) => rest
            .trim_end()
            .strip_suffix("-----END CERTIFICATE-----")
            .ok_or(CertRejection::NotBase64)?,
        None => text,
    };
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() {
        return Err(CertRejection::NotBase64);
    }
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| CertRejection::NotBase64)
}

fn rfc3339(unix_seconds: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_seconds).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The pinned CA from inline PEM or a PEM file path.
fn load_ca(value: &str) -> Result<TrustAnchor<'static>, String> {
    let pem_text = if value.contains("-----BEGIN") {
        value.to_owned()
    } else {
        std::fs::read_to_string(value).map_err(|e| format!("cannot read '{value}': {e}"))?
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    pem.parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let der = CertificateDer::from(pem.contents);
    webpki::anchor_from_trusted_cert(&der)
        .map(|anchor| anchor.to_owned())
        .map_err(|e| format!("not usable as a CA: {e:?}"))
}

/// rustls-webpki path building from `der` to `anchor` at `now`, client-auth usage.
fn verify_chain(
    der: &[u8],
    anchor: &TrustAnchor<'static>,
    now: SystemTime,
) -> Result<(), CertRejection> {
    let cert_der = CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&cert_der)
        .map_err(|e| CertRejection::UntrustedChain(format!("{e:?}")))?;
    let time = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        std::slice::from_ref(anchor),
        &[],
        time,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| CertRejection::UntrustedChain(format!("{e:?}")))
}

/// The layer in front of the three functions (not `GET /`): rejects with HTTP 403 and the
/// B2C body (`ClientCertificateRejected`) unless [`ClientCertPolicy::check`] passes.
pub async fn require_client_certificate(
    State(policy): State<Arc<ClientCertPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    match policy.check(request.headers(), SystemTime::now()) {
        Ok(None) => next.run(request).await,
        Ok(Some(accepted)) => {
            if policy.reminder_due(&accepted) {
                tracing::warn!(
                    thumbprint = %accepted.thumbprint,
                    subject = %accepted.subject,
                    expires_in_days = accepted.expires_in.as_secs() / 86_400,
                    "client certificate expires within 30 days: upload a new one to B2C and add its thumbprint to CLIENT_CERT_THUMBPRINTS"
                );
            }
            next.run(request).await
        }
        Err(rejection) => {
            tracing::warn!(
                reason = %rejection.reason,
                thumbprint = rejection.thumbprint.map(|t| t.to_string()),
                subject = rejection.subject,
                "client certificate rejected"
            );
            ApiError::ClientCertificateRejected {
                reason: rejection.reason.to_string(),
            }
            .into_response()
        }
    }
}

/// A self-signed client certificate made on the spot (rcgen, ECDSA P-256), with the
/// client-authentication extended key usage B2C's certificates carry: the one the demo
/// accepts, and the one the tests and benchmarks send. Never written to the repository.
///
/// Only with the `simulator` feature (the development tools), which the Azure package leaves
/// out.
#[cfg(feature = "simulator")]
#[derive(Clone)]
pub struct SelfSignedClientCert {
    der: Vec<u8>,
}

#[cfg(feature = "simulator")]
impl SelfSignedClientCert {
    /// A new certificate for `CN=<common_name>`, valid from now for rcgen's default period.
    ///
    /// # Errors
    /// When rcgen cannot make the key or sign the certificate.
    pub fn generate(common_name: &str) -> Result<Self, rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate()?;
        let der = params.self_signed(&key)?.der().to_vec();
        Ok(Self { der })
    }

    /// The certificate as App Service forwards it: the `X-ARR-ClientCert` header value,
    /// base64 of the DER.
    pub fn header_value(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }

    /// Its SHA-1 thumbprint, for `CLIENT_CERT_THUMBPRINTS`.
    pub fn thumbprint(&self) -> Thumbprint {
        Thumbprint::of(&self.der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_parse_as_pasted() {
        let t = Thumbprint::parse("ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01")
            .unwrap();
        assert_eq!(t.to_string(), "ABCDEF0123456789ABCDEF0123456789ABCDEF01");
        assert_eq!(
            Thumbprint::parse(" ABCDEF0123456789 ABCDEF0123456789ABCDEF01 ").unwrap(),
            t
        );
        assert!(Thumbprint::parse("ABCDEF").is_err());
        assert!(Thumbprint::parse("ZZCDEF0123456789ABCDEF0123456789ABCDEF01").is_err());
    }

    #[test]
    fn names_compare_in_any_order() {
        assert_eq!(
            DistinguishedName::parse("CN=b2c.contoso.com, O=Contoso").unwrap(),
            DistinguishedName::parse("o=Contoso,CN=b2c.contoso.com").unwrap()
        );
        assert_ne!(
            DistinguishedName::parse("CN=b2c.contoso.com").unwrap(),
            DistinguishedName::parse("CN=b2c.fabrikam.com").unwrap()
        );
        assert!(DistinguishedName::parse("b2c.contoso.com").is_err());
    }

    #[test]
    fn settings_fail_closed() {
        let err = |s: ClientCertSettings, azure: bool| {
            ClientCertPolicy::from_settings(&s, azure).unwrap_err()
        };
        assert!(err(ClientCertSettings::default(), false)[0]
            .starts_with("CLIENT_CERT_THUMBPRINTS: required"));
        let e = err(
            ClientCertSettings {
                thumbprints: Some("abc".into()),
                ..Default::default()
            },
            false,
        );
        assert!(e[0].contains("40 hex digits"), "{e:?}");
        let e = err(
            ClientCertSettings {
                mode: Some("disabled".into()),
                ..Default::default()
            },
            true,
        );
        assert!(e[0].contains("refused in Azure"), "{e:?}");
        let e = err(
            ClientCertSettings {
                thumbprints: Some("ABCDEF0123456789ABCDEF0123456789ABCDEF01".into()),
                ca: Some("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----".into()),
                ..Default::default()
            },
            false,
        );
        assert!(e[0].starts_with("CLIENT_CERT_CA:"), "{e:?}");
    }
}
