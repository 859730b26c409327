//! Fuzzes the `X-ARR-ClientCert` header: the bytes App Service forwards, which the handler
//! decodes and checks before any function runs.
//!
//! Each input is one header value. It goes through `client_cert::decode_header` and the X.509
//! parser, then through `ClientCertPolicy::check` with two policies:
//! - a strict one (a thumbprint no input can match, a subject, an issuer and a pinned CA): it
//!   must refuse every input, and refuse undecodable ones as not base64 / too large;
//! - one that trusts exactly the input's own certificate (its thumbprint, subject and issuer)
//!   and pins a CA it cannot chain to: this drives the validity, subject, issuer and
//!   rustls-webpki chain checks with the fuzzed certificate. It must never refuse it for its
//!   thumbprint, and never accept it (the CA signed nothing).
//!
//! Seeds: `fuzz/seeds/client_cert_header/` (malformed headers) and a certificate made fresh
//! with openssl (docs/testing.md, "Fuzzing"); no certificate is committed.

#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use axum::http::{HeaderMap, HeaderValue};
use b2c_authy::client_cert::{
    decode_header, CertRejection, ClientCertPolicy, ClientCertSettings, Thumbprint,
    CLIENT_CERT_HEADER, MAX_HEADER_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// A CA made at start-up (PEM): pinned by both policies, it signed none of the inputs.
fn ca_pem() -> &'static str {
    static CA: OnceLock<String> = OnceLock::new();
    CA.get_or_init(|| {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fuzz CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("CA").pem()
    })
}

fn strict_policy() -> &'static ClientCertPolicy {
    static POLICY: OnceLock<ClientCertPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        ClientCertPolicy::from_settings(
            &ClientCertSettings {
                thumbprints: Some("00".repeat(20)),
                subject: Some("CN=b2c.contoso.com, O=Contoso".into()),
                issuer: Some("CN=Contoso Issuing CA".into()),
                ca: Some(ca_pem().to_owned()),
                ..Default::default()
            },
            false,
        )
        .expect("strict policy")
    })
}

/// A policy that trusts `thumbprint`, with the subject and issuer when they read back as
/// distinguished names, and the fuzz CA.
fn trusting_policy(thumbprint: Thumbprint, subject: String, issuer: String) -> ClientCertPolicy {
    let settings = |subject: Option<String>, issuer: Option<String>| ClientCertSettings {
        thumbprints: Some(thumbprint.to_string()),
        subject,
        issuer,
        ca: Some(ca_pem().to_owned()),
        ..Default::default()
    };
    ClientCertPolicy::from_settings(&settings(Some(subject), Some(issuer)), false)
        .or_else(|_| ClientCertPolicy::from_settings(&settings(None, None), false))
        .expect("a policy with a valid thumbprint and CA")
}

fuzz_target!(|data: &[u8]| {
    let decoded = decode_header(data);
    match &decoded {
        Ok(der) => assert!(!der.is_empty(), "decoded to nothing"),
        Err(reason) => assert!(matches!(
            reason,
            CertRejection::NotBase64 | CertRejection::TooLarge
        )),
    }
    if data.len() > MAX_HEADER_BYTES {
        assert_eq!(decoded, Err(CertRejection::TooLarge));
    }
    let parsed = decoded.as_ref().ok().and_then(|der| {
        x509_parser::parse_x509_certificate(der)
            .ok()
            .filter(|(rest, _)| rest.is_empty())
            .map(|(_, cert)| (cert.subject().to_string(), cert.issuer().to_string()))
    });

    // Header values may not hold every byte (no control characters but tab): App Service
    // cannot forward those, so only the policies' decoding of the rest is exercised.
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let now = SystemTime::now();
    let mut headers = HeaderMap::new();
    headers.insert(CLIENT_CERT_HEADER, value.clone());

    let rejection = strict_policy()
        .check(&headers, now)
        .expect_err("the strict policy accepted a certificate it does not trust");
    assert!(!rejection.reason.to_string().is_empty());
    if decoded.is_err() {
        assert!(matches!(
            rejection.reason,
            CertRejection::NotBase64 | CertRejection::TooLarge
        ));
    }
    if parsed.is_none() {
        assert!(
            rejection.thumbprint.is_none(),
            "a thumbprint for no certificate"
        );
    }

    if let (Ok(der), Some((subject, issuer))) = (&decoded, parsed) {
        let policy = trusting_policy(Thumbprint::of(der), subject, issuer);
        let rejection = policy
            .check(&headers, now)
            .expect_err("accepted a certificate the pinned CA never signed");
        assert_eq!(rejection.thumbprint, Some(Thumbprint::of(der)));
        assert!(
            !matches!(
                rejection.reason,
                CertRejection::UnknownThumbprint(_)
                    | CertRejection::Missing
                    | CertRejection::NotBase64
                    | CertRejection::NotACertificate(_)
            ),
            "refused a trusted, parsed certificate as {:?}",
            rejection.reason
        );
    }

    // The same header twice is always refused, before decoding.
    headers.append(CLIENT_CERT_HEADER, value);
    let rejection = strict_policy()
        .check(&headers, now)
        .expect_err("two headers accepted");
    assert_eq!(rejection.reason, CertRejection::Repeated(2));
});
