//! The conformance suite: Twilio's own Authy clients run against the built-in simulator,
//! each asserting what the library itself expects of Authy (see the scripts' headers).
//!
//! - Python: PyPI `authy` 2.2.6 (twilio/authy-python) runs `tests/conformance/authy_python.py`.
//!   `.ci/run` installs it into the virtual environment `target/authy-python-venv` and sets
//!   `B2C_AUTHY_PY_AUTHY` to its `bin/python`.
//! - Node: npm `authy-client` 1.1.4 (ruimarinho/authy-client, strict response schemas) runs
//!   `tests/conformance/authy_client.mjs`. `.ci/run` installs it with `npm ci` from
//!   `tests/conformance/package.json` + `package-lock.json` into `target/authy-client-npm` and
//!   sets `B2C_AUTHY_CLIENT_NPM` to that folder.
//!
//! Each test starts the simulator on port 0 (answering after [`APPROVE_AFTER`]), runs the
//! script as a process with the simulator's URL and key, and fails with the script's output
//! (one `ok`/`FAIL` line per library call) unless it exits 0. Without the installs the tests
//! skip with a message, except under `CI=true`, where they fail.

use crate::support::{repo_root, skip_or_fail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The simulator answers approval requests after this long: the scripts poll until then.
const APPROVE_AFTER: Duration = Duration::from_millis(500);
/// The key the simulator accepts; the scripts also try a wrong one.
const KEY: &str = "conformance-key-7d2e";
/// A script that takes longer has hung (each polls for at most 20 s per request).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

/// `var` if set, else `default` under the repository; `None` (after [`skip_or_fail`]) when
/// `probe` (a file inside it; empty: the path itself) is missing.
fn installed(var: &str, default: &str, probe: &str) -> Option<PathBuf> {
    let path = match std::env::var_os(var) {
        Some(path) => PathBuf::from(path),
        None => repo_root().join(default),
    };
    let file = if probe.is_empty() {
        path.clone()
    } else {
        path.join(probe)
    };
    if !file.is_file() {
        skip_or_fail(&format!(
            "{} is missing (set {var}; .ci/run installs it into {default})",
            file.display()
        ));
        return None;
    }
    Some(path)
}

/// Starts a simulator, runs `program args... <simulator URL> <key> extra...`, and asserts it
/// exits 0; its output is in the failure message.
async fn run_against_simulator(program: &Path, script: &str, extra: &[&Path]) {
    let base = crate::support::spawn_simulator(APPROVE_AFTER, KEY).await;
    let mut command = tokio::process::Command::new(program);
    command
        .arg(repo_root().join(script))
        .arg(&base)
        .arg(KEY)
        .args(extra)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish in {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} against the simulator: {}\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        stdout.lines().any(|l| l == "all passed") && !stdout.contains("FAIL"),
        "{script} exited 0 without passing every check:\n{stdout}"
    );
}

/// The Python library's install, or `None` after [`skip_or_fail`].
fn python_authy() -> Option<PathBuf> {
    installed(
        "B2C_AUTHY_PY_AUTHY",
        "target/authy-python-venv/bin/python",
        "",
    )
}

/// The npm prefix holding `node_modules/authy-client`, or `None` after [`skip_or_fail`].
fn npm_authy_client() -> Option<PathBuf> {
    installed(
        "B2C_AUTHY_CLIENT_NPM",
        "target/authy-client-npm",
        "node_modules/authy-client/package.json",
    )
}

/// Runs `program args` and returns its trimmed stdout, failing on a non-zero exit.
fn stdout_of(program: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} {args:?}: {}\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The pinned versions are the ones installed (and under `CI=true`, that both are): the
/// suites below are only meaningful with the libraries whose expectations they quote.
#[test]
fn the_pinned_client_libraries_are_installed() {
    if let Some(python) = python_authy() {
        let version = stdout_of(&python, &["-c", "import authy; print(authy.__version__)"]);
        assert_eq!(version, "2.2.6", "PyPI authy in {}", python.display());
    }
    if let Some(prefix) = npm_authy_client() {
        let manifest = prefix.join("node_modules/authy-client/package.json");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        let json: serde_json::Value = serde_json::from_str(&text).expect("package.json is JSON");
        assert_eq!(
            json["version"],
            "1.1.4",
            "npm authy-client in {}",
            prefix.display()
        );
        let node = stdout_of(Path::new("node"), &["--version"]);
        assert!(node.starts_with('v'), "node --version: {node}");
    }
}

#[tokio::test]
async fn twilio_authy_python_accepts_the_simulator() {
    let Some(python) = python_authy() else {
        return;
    };
    run_against_simulator(&python, "tests/conformance/authy_python.py", &[]).await;
}

#[tokio::test]
async fn npm_authy_client_accepts_the_simulator() {
    let Some(prefix) = npm_authy_client() else {
        return;
    };
    let node = PathBuf::from("node");
    run_against_simulator(&node, "tests/conformance/authy_client.mjs", &[&prefix]).await;
}
