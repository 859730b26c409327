//! `deploy/upload-policies.sh`: which policy files it uploads, in which order, and what it
//! refuses before uploading anything.

use std::fs;
use std::path::Path;

use super::{assert_in_order, assert_no_call, policy_xml, run, Sandbox, TENANT};

const BASE: &str = "B2C_1A_TrustFrameworkBase";
const LOCALIZATION: &str = "B2C_1A_TrustFrameworkLocalization";
const EXTENSIONS: &str = "B2C_1A_TrustFrameworkExtensions";

/// Rendered policies in `rendered/` (file names chosen so that alphabetical
/// order is wrong) and the starter-pack files in `base/`.
fn write_policies(sb: &Sandbox, rendered: &str) {
    sb.write(
        &format!("{rendered}/a_signup.xml"),
        &policy_xml("B2C_1A_signup_signin", Some(EXTENSIONS), TENANT),
    );
    sb.write(
        &format!("{rendered}/b_profile.xml"),
        &policy_xml("B2C_1A_ProfileEdit", Some(EXTENSIONS), TENANT),
    );
    sb.write(
        &format!("{rendered}/c_extensions.xml"),
        &policy_xml(EXTENSIONS, Some(LOCALIZATION), TENANT),
    );
    sb.write(
        "base/y_localization.xml",
        &policy_xml(LOCALIZATION, Some(BASE), TENANT),
    );
    sb.write("base/z_base.xml", &policy_xml(BASE, None, TENANT));
}

fn put_call(id: &str, file: &Path) -> String {
    format!(
        "az rest --method put --uri https://graph.microsoft.com/beta/trustFramework/policies/{id}/\\$value --headers Content-Type=application/xml --body @{}",
        file.display()
    )
}

#[test]
fn upload_policies_in_chain_order() {
    let sb = Sandbox::new("policies");
    write_policies(&sb, "rendered");
    let out = run(sb.command("upload-policies.sh").args([
        "--policies-dir",
        "rendered",
        "--base-dir",
        "base",
    ]));
    out.assert_ok().assert_stderr("uploaded 5 policies");
    let calls = sb.az_calls();
    let puts: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("az rest --method put"))
        .collect();
    let expected = [
        put_call(BASE, Path::new("base/z_base.xml")),
        put_call(LOCALIZATION, Path::new("base/y_localization.xml")),
        put_call(EXTENSIONS, Path::new("rendered/c_extensions.xml")),
        put_call("B2C_1A_ProfileEdit", Path::new("rendered/b_profile.xml")),
        put_call("B2C_1A_signup_signin", Path::new("rendered/a_signup.xml")),
    ];
    assert_eq!(puts.len(), expected.len(), "{calls:?}");
    for (call, want) in puts.iter().zip(&expected) {
        assert!(
            call.starts_with(want.as_str()),
            "\n got: {call}\nwant: {want}"
        );
    }
    // Graph answers a policy upload with the policy's XML, which az rest
    // would print despite --output none: it goes to /dev/null.
    for put in &puts {
        assert!(put.ends_with("--output-file /dev/null"), "{put}");
    }
    // The tenant check comes before the first upload, and the body is the file.
    assert!(calls[0].starts_with("az account show"), "{calls:?}");
    assert!(sb
        .az_file_after(&format!("policies/{EXTENSIONS}/"))
        .contains(&format!(r#"PolicyId="{EXTENSIONS}""#)));
}

/// The folder users pass as --base-dir: the starter pack's
/// SocialAndLocalAccounts, with its own extensions policy and relying parties
/// next to Base and Localization.  Those would issue tokens without the Authy
/// push: only Base and Localization may be taken from it.
#[test]
fn upload_policies_takes_only_base_and_localization_from_base_dir() {
    let sb = Sandbox::new("policies-starter");
    write_policies(&sb, "rendered");
    // PolicyIds are case-insensitive in B2C.
    sb.write(
        "base/y_localization.xml",
        &policy_xml(&LOCALIZATION.to_lowercase(), Some(BASE), TENANT),
    );
    sb.write(
        "base/TrustFrameworkExtensions.xml",
        &policy_xml(EXTENSIONS, Some(LOCALIZATION), TENANT),
    );
    sb.write(
        "base/SignUpOrSignin.xml",
        &policy_xml("B2C_1A_signup_signin", Some(EXTENSIONS), TENANT),
    );
    sb.write(
        "base/PasswordReset.xml",
        &policy_xml("B2C_1A_PasswordReset", Some(EXTENSIONS), TENANT),
    );
    sb.write("base/notes.xml", "<not-a-policy/>");
    let out = run(sb.command("upload-policies.sh").args([
        "--policies-dir",
        "rendered",
        "--base-dir",
        "base",
    ]));
    out.assert_ok()
        .assert_stderr("--base-dir: ignoring 4 file(s)")
        .assert_stderr("TrustFrameworkExtensions.xml (PolicyId B2C_1A_TrustFrameworkExtensions)")
        .assert_stderr("SignUpOrSignin.xml (PolicyId B2C_1A_signup_signin)")
        .assert_stderr("PasswordReset.xml (PolicyId B2C_1A_PasswordReset)")
        .assert_stderr("notes.xml (root element is not TrustFrameworkPolicy)")
        .assert_stderr("uploaded 5 policies");
    let calls = sb.az_calls();
    let puts: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("az rest --method put"))
        .collect();
    let expected = [
        put_call(BASE, Path::new("base/z_base.xml")),
        put_call(
            &LOCALIZATION.to_lowercase(),
            Path::new("base/y_localization.xml"),
        ),
        put_call(EXTENSIONS, Path::new("rendered/c_extensions.xml")),
        put_call("B2C_1A_ProfileEdit", Path::new("rendered/b_profile.xml")),
        put_call("B2C_1A_signup_signin", Path::new("rendered/a_signup.xml")),
    ];
    assert_eq!(puts.len(), expected.len(), "{calls:?}");
    for (call, want) in puts.iter().zip(&expected) {
        assert!(
            call.starts_with(want.as_str()),
            "\n got: {call}\nwant: {want}"
        );
    }
    assert_no_call(&calls, "PasswordReset");
}

#[test]
fn upload_policies_needs_base_and_localization_in_base_dir() {
    let sb = Sandbox::new("policies-starter-missing");
    write_policies(&sb, "rendered");
    fs::remove_file(sb.path("base/y_localization.xml")).unwrap();
    sb.write(
        "base/TrustFrameworkExtensions.xml",
        &policy_xml(LOCALIZATION, Some(BASE), TENANT).replace(
            &format!(r#"PolicyId="{LOCALIZATION}""#),
            &format!(r#"PolicyId="{EXTENSIONS}""#),
        ),
    );
    run(sb.command("upload-policies.sh").args([
        "--policies-dir",
        "rendered",
        "--base-dir",
        "base",
    ]))
    .assert_failed()
    .assert_stderr(&format!(
        "--base-dir base has no file with PolicyId {LOCALIZATION}"
    ));
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
}

#[test]
fn upload_policies_refuses_a_broken_chain() {
    let sb = Sandbox::new("policies-broken");
    write_policies(&sb, "rendered");
    run(sb
        .command("upload-policies.sh")
        .args(["--policies-dir", "rendered"]))
    .assert_failed()
    .assert_stderr(&format!("chain broken: {EXTENSIONS}"))
    .assert_stderr(&format!(
        "inherits from {LOCALIZATION}, which is in none of the given folders"
    ));
    assert!(
        sb.az_calls().is_empty(),
        "nothing may be uploaded: {:?}",
        sb.az_calls()
    );
}

#[test]
fn upload_policies_refuses_placeholder_or_mixed_tenants() {
    let sb = Sandbox::new("policies-tenant");
    write_policies(&sb, "rendered");
    sb.write(
        "base/z_base.xml",
        &policy_xml(BASE, None, "yourtenant.onmicrosoft.com"),
    );
    run(sb.command("upload-policies.sh").args([
        "--policies-dir",
        "rendered",
        "--base-dir",
        "base",
    ]))
    .assert_failed()
    .assert_stderr("TenantId is 'yourtenant.onmicrosoft.com'")
    .assert_stderr("files name different tenants");
    assert!(sb.az_calls().is_empty());
}

#[test]
fn upload_policies_refuses_duplicates() {
    let sb = Sandbox::new("policies-dup");
    write_policies(&sb, "rendered");
    sb.write("rendered/base_copy.xml", &policy_xml(BASE, None, TENANT));
    run(sb.command("upload-policies.sh").args([
        "--policies-dir",
        "rendered",
        "--base-dir",
        "base",
    ]))
    .assert_failed()
    .assert_stderr(&format!("{BASE} is defined twice"));
}

#[test]
fn upload_policies_stops_at_the_first_failed_upload() {
    let sb = Sandbox::new("policies-fail");
    write_policies(&sb, "rendered");
    run(sb
        .command("upload-policies.sh")
        .args(["--policies-dir", "rendered", "--base-dir", "base"])
        .env("AZ_STUB_FAIL_ON", LOCALIZATION))
    .assert_failed()
    .assert_stderr(&format!("stub refused: {LOCALIZATION}"))
    .assert_stderr(&format!("upload of {LOCALIZATION}"))
    .assert_stderr("Policy.ReadWrite.TrustFramework");
    let calls = sb.az_calls();
    assert!(calls.last().unwrap().contains(LOCALIZATION), "{calls:?}");
    assert_no_call(&calls, EXTENSIONS);
}

#[test]
fn upload_policies_can_render_first() {
    let sb = Sandbox::new("policies-render");
    write_policies(&sb, "rendered-template");
    // A stub cargo that "renders" by copying the template into the folder
    // the real render command writes.
    sb.write_executable(
        "bin/cargo",
        r#"#!/usr/bin/env bash
printf '%s\n' "$PWD" "$*" >"$CARGO_STUB_LOG"
env="${*: -1}"
mkdir -p "policies/Environments/$env"
cp "$TEMPLATE"/*.xml "policies/Environments/$env/"
"#,
    );
    fs::create_dir_all(sb.path("repo")).unwrap();
    let settings = sb.write("secret-settings/appsettings.json", "{}");
    let out = run(sb
        .command("upload-policies.sh")
        .args(["--render", "Test", "--base-dir", "base"])
        .args(["--render-settings", "secret-settings/appsettings.json"])
        .env("REPO_ROOT", sb.path("repo"))
        .env("TEMPLATE", sb.path("rendered-template"))
        .env("CARGO_STUB_LOG", sb.path("cargo.log")));
    out.assert_ok();
    let cargo = fs::read_to_string(sb.path("cargo.log")).unwrap();
    assert_eq!(
        cargo,
        format!(
            "{}\nrun --release --locked --bin render-policies -- --settings {} Test\n",
            sb.path("repo").display(),
            settings.display()
        )
    );
    let rendered = sb.path("repo/policies/Environments/Test/a_signup.xml");
    assert_in_order(
        &sb.az_calls(),
        &[
            BASE,
            LOCALIZATION,
            EXTENSIONS,
            &put_call("B2C_1A_signup_signin", &rendered),
        ],
    );
}

#[test]
fn upload_policies_dry_run_prints_the_uploads() {
    let sb = Sandbox::new("policies-dry");
    write_policies(&sb, "rendered");
    let out = run(sb.command("upload-policies.sh").args([
        "--dry-run",
        "--policies-dir",
        "rendered",
        "--base-dir",
        "base",
    ]));
    out.assert_ok();
    let printed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("+ az rest --method put"))
        .collect();
    assert_eq!(printed.len(), 5, "{out}");
    assert!(
        printed[0].contains(&format!("policies/{BASE}/\\$value"))
            || printed[0].contains(&format!("policies/{BASE}/$value")),
        "{out}"
    );
    assert!(printed[4].contains("B2C_1A_signup_signin"), "{out}");
    assert!(sb.az_calls().is_empty());
}
