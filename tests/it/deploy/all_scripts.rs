//! What holds for every script: shellcheck passes (on the stub `az` too), `--help` and
//! `--dry-run` exist, unknown options and missing parameters are refused with a message.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::{repo_root, run, skip_or_fail, Sandbox, SCRIPTS, STUB_AZ, TEST_DIR};

#[test]
fn shellcheck_passes_on_every_script() {
    let available = Command::new("shellcheck")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        skip_or_fail("shellcheck is not installed");
        return;
    }
    let shell_files = |dir: &str| {
        let mut files: Vec<PathBuf> = fs::read_dir(repo_root().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "sh"))
            .collect();
        files.sort();
        files
    };
    let mut files = shell_files("deploy");
    assert!(
        files.len() > SCRIPTS.len(),
        "expected the scripts and lib.sh in deploy/: {files:?}"
    );
    // The stub az the tests run in place of the real one.
    files.extend(shell_files(TEST_DIR));
    assert!(files.contains(&repo_root().join(STUB_AZ)), "{files:?}");
    let out = run(Command::new("shellcheck")
        .arg("--external-sources")
        .args(&files));
    out.assert_ok();
}

#[test]
fn every_script_is_executable_and_has_help() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new("help");
    for script in SCRIPTS {
        let mode = fs::metadata(repo_root().join("deploy").join(script))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "{script} is not executable");
        let out = run(sb.command(script).arg("--help"));
        out.assert_ok()
            .assert_stdout(&format!("Usage: {script}"))
            .assert_stdout("--dry-run");
    }
    assert!(sb.az_calls().is_empty(), "--help called az");
}

#[test]
fn every_script_rejects_unknown_options() {
    let sb = Sandbox::new("unknown");
    for script in SCRIPTS {
        run(sb.command(script).arg("--no-such-option"))
            .assert_code(2)
            .assert_stderr("unknown option '--no-such-option'");
    }
}

#[test]
fn scripts_name_every_missing_parameter() {
    let sb = Sandbox::new("missing");
    let expected: &[(&str, &[&str])] = &[
        (
            "provision.sh",
            &[
                "--resource-group (or RESOURCE_GROUP)",
                "--location (or LOCATION)",
                "--function-app (or FUNCTION_APP)",
                "--storage-account (or STORAGE_ACCOUNT)",
                "--client-cert-thumbprints (or CLIENT_CERT_THUMBPRINTS)",
            ],
        ),
        (
            "deploy-code.sh",
            &[
                "--resource-group (or RESOURCE_GROUP)",
                "--function-app (or FUNCTION_APP)",
            ],
        ),
        (
            "upload-policies.sh",
            &[
                "--policies-dir (or POLICIES_DIR)",
                "--render (or RENDER_ENVIRONMENT)",
            ],
        ),
        ("client-cert.sh", &["--out-dir (or OUT_DIR)"]),
        ("import-authy-ids.sh", &["--csv (or CSV_FILE)"]),
        ("clear-authy-id.sh", &["--user (or B2C_USER)"]),
    ];
    for (script, missing) in expected {
        let out = run(&mut sb.command(script));
        out.assert_code(2)
            .assert_stderr("missing required parameter");
        for m in *missing {
            out.assert_stderr(m);
        }
    }
    assert!(sb.az_calls().is_empty());
}
