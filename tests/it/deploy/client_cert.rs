//! `deploy/client-cert.sh`, with the real openssl: the certificate and PFX it writes, the
//! re-export of an existing (or legacy RC2) PFX, and the policy-key upload.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{assert_in_order, run, Sandbox};

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is needed for these tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha1_thumbprint(cert: &Path) -> String {
    let out = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-fingerprint",
        "-sha1",
    ]);
    out.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_uppercase()
}

#[test]
fn client_cert_creates_a_pfx_b2c_accepts() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new("cert");
    let out = run(sb.command("client-cert.sh").args([
        "--out-dir",
        "certs",
        "--subject",
        "/CN=test-client",
    ]));
    out.assert_ok();
    let cert = sb.path("certs/b2c-authy-client.cert.pem");
    let pfx = sb.path("certs/b2c-authy-client.pfx");
    let password = sb.path("certs/b2c-authy-client.pfx-password");
    let thumbprint = out.stdout.trim().lines().last().unwrap().to_owned();
    assert_eq!(thumbprint, sha1_thumbprint(&cert));
    assert_eq!(thumbprint.len(), 40);

    let text = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-text"]);
    for expected in [
        "Public-Key: (2048 bit)",
        "TLS Web Client Authentication",
        "CN = test-client",
        "sha256WithRSAEncryption",
    ] {
        assert!(
            text.contains(expected),
            "certificate lacks {expected}:\n{text}"
        );
    }
    // Key and certificate bags both TripleDES-SHA1, MAC SHA-1; no RC2.
    let pass = format!("file:{}", password.display());
    let info = Command::new("openssl")
        .args([
            "pkcs12",
            "-info",
            "-noout",
            "-in",
            pfx.to_str().unwrap(),
            "-passin",
            &pass,
        ])
        .output()
        .unwrap();
    let info =
        String::from_utf8_lossy(&info.stdout).into_owned() + &String::from_utf8_lossy(&info.stderr);
    assert_eq!(
        info.matches("pbeWithSHA1And3-KeyTripleDES-CBC").count(),
        2,
        "{info}"
    );
    assert!(
        info.contains("MAC: sha1") && !info.contains("RC2"),
        "{info}"
    );

    for secret in [sb.path("certs/b2c-authy-client.key.pem"), pfx, password] {
        let mode = fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{secret:?}");
    }
    assert!(sb.az_calls().is_empty());

    // A second run must not replace the key B2C may be using.
    run(sb.command("client-cert.sh").args(["--out-dir", "certs"]))
        .assert_failed()
        .assert_stderr("use --force");
}

#[test]
fn client_cert_uploads_the_policy_key() {
    let sb = Sandbox::new("cert-upload");
    let out = run(sb
        .command("client-cert.sh")
        .args([
            "--out-dir",
            "certs",
            "--upload",
            "--keyset",
            "AuthyClientCert",
        ])
        .env("PFX_PASSWORD", "pa\"ss word"));
    out.assert_ok();
    let base = "https://graph.microsoft.com/beta/trustFramework/keySets";
    assert_in_order(
        &sb.az_calls(),
        &[
            &format!("az rest --method get --uri {base} --query value\\[\\].id --output tsv"),
            &format!(r#"az rest --method post --uri {base} --headers Content-Type=application/json --body \{{\"id\":\ \"AuthyClientCert\"\}}"#),
            &format!("az rest --method post --uri {base}/B2C_1A_AuthyClientCert/uploadPkcs12 --headers Content-Type=application/json --body @"),
        ],
    );
    let body = sb.az_file_after("uploadPkcs12");
    assert!(body.contains(r#""password": "pa\"ss word""#), "{body}");
    // The uploaded key is the PFX that was written, and opens with the password.
    let pfx = fs::read(sb.path("certs/b2c-authy-client.pfx")).unwrap();
    let key_b64 = body
        .split(r#""key": ""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let decoded = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(key_b64.as_bytes())?;
            c.wait_with_output()
        });
    assert_eq!(decoded.unwrap().stdout, pfx);
    assert!(
        !sb.path("certs/b2c-authy-client.pfx-password").exists(),
        "a given password is not written"
    );
    assert!(
        !sb.az_calls().iter().any(|c| c.contains("ss word")),
        "the password must not be on the command line"
    );

    // An existing keyset gets a new key, no second keyset; ids compare
    // case-insensitively, as B2C's do, and the existing spelling is used.
    let sb = Sandbox::new("cert-upload-existing");
    run(sb
        .command("client-cert.sh")
        .args(["--out-dir", "certs", "--upload"])
        .env(
            "AZ_STUB_KEYSET_IDS",
            "B2C_1A_Other B2C_1A_RESTAPICLIENTCERTIFICATE",
        ))
    .assert_ok()
    .assert_stderr("exists as B2C_1A_RESTAPICLIENTCERTIFICATE");
    let calls = sb.az_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[1].contains("keySets/B2C_1A_RESTAPICLIENTCERTIFICATE/uploadPkcs12"),
        "{calls:?}"
    );
    // A lower-case prefix is the prefix.
    let sb = Sandbox::new("cert-upload-prefix");
    run(sb.command("client-cert.sh").args([
        "--out-dir",
        "certs",
        "--upload",
        "--keyset",
        "b2c_1a_Mine",
    ]))
    .assert_ok();
    assert_in_order(
        &sb.az_calls(),
        &[
            r#"--body \{\"id\":\ \"Mine\"\}"#,
            "keySets/B2C_1A_Mine/uploadPkcs12",
        ],
    );
}

#[test]
fn client_cert_stops_when_the_upload_fails() {
    let sb = Sandbox::new("cert-upload-fail");
    run(sb
        .command("client-cert.sh")
        .args(["--out-dir", "certs", "--upload"])
        .env("AZ_STUB_FAIL_ON", "uploadPkcs12"))
    .assert_failed()
    .assert_stderr("stub refused: uploadPkcs12");
}

#[test]
fn client_cert_re_exports_an_existing_pfx() {
    let sb = Sandbox::new("cert-pfx");
    run(sb
        .command("client-cert.sh")
        .args(["--out-dir", "first"])
        .env("PFX_PASSWORD", "secret-1"))
    .assert_ok();
    let first = sha1_thumbprint(&sb.path("first/b2c-authy-client.cert.pem"));
    let out = run(sb
        .command("client-cert.sh")
        .args(["--out-dir", "second", "--pfx", "first/b2c-authy-client.pfx"])
        .env("PFX_PASSWORD", "secret-1"));
    out.assert_ok();
    assert_eq!(out.stdout.trim(), first);
    assert_eq!(
        sha1_thumbprint(&sb.path("second/b2c-authy-client.cert.pem")),
        first
    );
    run(sb.command("client-cert.sh").args([
        "--out-dir",
        "third",
        "--pfx",
        "first/b2c-authy-client.pfx",
    ]))
    .assert_failed()
    .assert_stderr("set PFX_PASSWORD");
}

/// A PFX as older tools and many CAs export it: certificates encrypted with
/// RC2-40, which OpenSSL 3 reads only with -legacy.
#[test]
fn client_cert_re_exports_a_legacy_rc2_pfx() {
    let sb = Sandbox::new("cert-legacy");
    let (key, cert, pfx) = (
        sb.path("issued.key"),
        sb.path("issued.pem"),
        sb.path("issued.pfx"),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=issued-by-ca",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    let export = |legacy: bool| {
        let mut cmd = Command::new("openssl");
        cmd.args(["pkcs12", "-export"]);
        if legacy {
            cmd.arg("-legacy");
        }
        cmd.arg("-in")
            .arg(&cert)
            .arg("-inkey")
            .arg(&key)
            .arg("-out")
            .arg(&pfx)
            .args(["-passout", "pass:legacy-pw"]);
        cmd.status().is_ok_and(|s| s.success())
    };
    // OpenSSL 3: -legacy; OpenSSL 1.1 has no -legacy and uses RC2-40 anyway.
    assert!(
        export(true) || export(false),
        "could not export a legacy PFX"
    );
    let info = pfx_info(&pfx, "pass:legacy-pw");
    assert!(info.contains("RC2"), "not an RC2 PFX:\n{info}");

    let out = run(sb
        .command("client-cert.sh")
        .args(["--out-dir", "out", "--pfx", "issued.pfx"])
        .env("PFX_PASSWORD", "legacy-pw"));
    out.assert_ok();
    assert_eq!(out.stdout.trim(), sha1_thumbprint(&cert));
    let info = pfx_info(&sb.path("out/b2c-authy-client.pfx"), "pass:legacy-pw");
    assert_eq!(
        info.matches("pbeWithSHA1And3-KeyTripleDES-CBC").count(),
        2,
        "{info}"
    );
    assert!(!info.contains("RC2"), "{info}");

    // A wrong password: a clear message, and no empty folder left behind.
    run(sb
        .command("client-cert.sh")
        .args(["--out-dir", "fresh", "--pfx", "issued.pfx"])
        .env("PFX_PASSWORD", "wrong"))
    .assert_failed()
    .assert_stderr("could not read issued.pfx, also not with openssl -legacy: wrong PFX_PASSWORD");
    assert!(!sb.path("fresh").exists(), "the out-dir was left behind");
}

/// `openssl pkcs12 -info` output, stdout and stderr.  It names the
/// encryption of each bag even where OpenSSL 3 cannot decrypt it (RC2).
fn pfx_info(pfx: &Path, pass: &str) -> String {
    let out = Command::new("openssl")
        .args(["pkcs12", "-info", "-noout", "-passin", pass, "-in"])
        .arg(pfx)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn client_cert_dry_run_writes_nothing() {
    let sb = Sandbox::new("cert-dry");
    let out =
        run(sb
            .command("client-cert.sh")
            .args(["--dry-run", "--out-dir", "certs", "--upload"]));
    out.assert_ok()
        .assert_stdout("+ openssl req -x509 -newkey rsa:2048 -sha256 -days 365 -nodes")
        .assert_stdout("extendedKeyUsage=clientAuth")
        .assert_stdout("+ openssl pkcs12 -export")
        .assert_stdout("-keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1")
        .assert_stdout("+ az rest --method post --uri https://graph.microsoft.com/beta/trustFramework/keySets/B2C_1A_RestApiClientCertificate/uploadPkcs12")
        .assert_stderr("dry run: nothing was uploaded to policy key");
    assert!(
        !out.stderr
            .contains("client-cert.sh: uploaded to policy key"),
        "a dry run must not say it uploaded: {}",
        out.stderr
    );
    assert!(!sb.path("certs").exists());
    assert!(sb.az_calls().is_empty());
}
