//! Tests of the deployment scripts in `deploy/`, without an Azure account: a module per
//! script, and [`real_az`] for every script against the real Azure CLI's parser.
//!
//! Each script runs under bash in a [`Sandbox`] with a stub `az` first on `PATH`: a copy of
//! `stub-az.sh` beside this file, which shellcheck checks with the scripts.  The stub records every call (arguments quoted with `%q`, one line per call, followed by the
//! contents of `@file` arguments as `| ` lines) and answers canned output, so the tests
//! check which commands run, in which order and with which arguments, and that a failing
//! `az` stops the script with its message.  The certificate tests use the real openssl; the
//! package tests build a real static musl binary.
//!
//! A test that needs a tool this machine lacks (shellcheck, the musl target, the real Azure
//! CLI) skips with a message, except under `CI=true`, where it fails: see [`skip_or_fail`].
//! Run them all with `cargo test --test it deploy::`, one script's with, say,
//! `cargo test --test it deploy::provision::`.

mod all_scripts;
mod clear_authy_id;
mod client_cert;
mod deploy_code;
mod graph_users;
mod import_authy_ids;
mod package;
mod provision;
mod real_az;
mod upload_policies;

use crate::support::{repo_root, skip_or_fail};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The scripts a user runs (lib.sh is sourced by them).
const SCRIPTS: &[&str] = &[
    "package.sh",
    "provision.sh",
    "deploy-code.sh",
    "upload-policies.sh",
    "client-cert.sh",
    "import-authy-ids.sh",
    "clear-authy-id.sh",
];

/// The SHA-1 thumbprint the provision tests pass (in several spellings).
const THUMBPRINT: &str = "653BDBCB798D29A8CF69076D5B107851B7D44640";
/// The B2C tenant of the policy fixtures.
const TENANT: &str = "contoso.onmicrosoft.com";

/// This folder, relative to the repository: the tests' shell and Python files are here.
const TEST_DIR: &str = "tests/it/deploy";
/// The stub `az`; its header lists the AZ_STUB_* variables that change its answers.
const STUB_AZ: &str = "tests/it/deploy/stub-az.sh";

/// A private scratch directory with `bin/` (first on the scripts' `PATH`) and `tmp/` (their
/// `TMPDIR`); removed on drop unless KEEP_DEPLOY_TEST_DIRS is set.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    /// A sandbox with the stub `az` in `bin/`: a copy, with the file's mode (so a stub that
    /// lost its executable bit fails every test), that a test may overwrite.
    fn new(name: &str) -> Sandbox {
        let sandbox = Sandbox::empty(name);
        fs::copy(repo_root().join(STUB_AZ), sandbox.path("bin/az")).unwrap();
        sandbox
    }

    /// A sandbox with nothing in `bin/` yet.
    fn empty(name: &str) -> Sandbox {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "deploy-test-{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::create_dir_all(dir.join("tmp")).unwrap();
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        path
    }

    fn write_executable(&self, rel: &str, contents: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.write(rel, contents);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// `bash deploy/<script>` against the stub `az`, logging to `az.log`.
    fn command(&self, script: &str) -> Command {
        let mut cmd = self.bash(&repo_root().join("deploy").join(script));
        cmd.env("AZ_STUB_LOG", self.path("az.log"));
        cmd
    }

    /// `bash <script>` in the sandbox with a clean environment: only PATH (`bin/` first),
    /// HOME and what the toolchain needs, so nothing from the developer's or CI's environment
    /// (LOCATION, say) leaks in; no retry delays; TMPDIR in the sandbox.
    fn bash(&self, script: &Path) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(script);
        cmd.env_clear();
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", self.path("bin").display()));
        for var in [
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "PYENV_ROOT",
        ] {
            if let Ok(value) = std::env::var(var) {
                cmd.env(var, value);
            }
        }
        cmd.env("DEPLOY_RETRY_DELAY", "0");
        cmd.env("TMPDIR", self.path("tmp"));
        cmd.current_dir(&self.dir);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn az_log(&self) -> String {
        fs::read_to_string(self.path("az.log")).unwrap_or_default()
    }

    /// One entry per `az` call, without the recorded file contents.
    fn az_calls(&self) -> Vec<String> {
        self.az_log()
            .lines()
            .filter(|l| l.starts_with("az "))
            .map(str::to_owned)
            .collect()
    }

    /// The `| ` lines recorded after the first call containing `call`.
    fn az_file_after(&self, call: &str) -> String {
        let log = self.az_log();
        let mut lines = log
            .lines()
            .skip_while(|l| !(l.starts_with("az ") && l.contains(call)));
        assert!(
            lines.next().is_some(),
            "no az call containing {call:?} in\n{log}"
        );
        lines
            .take_while(|l| l.starts_with("| "))
            .map(|l| &l[2..])
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_DEPLOY_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a script run ended; the `assert_*` methods print the whole run when they fail.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_ok(&self) -> &Run {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        self
    }

    fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }

    fn assert_failed(&self) -> &Run {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected failure\n{self}"
        );
        self
    }

    fn assert_stderr(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{self}"
        );
        self
    }

    fn assert_stdout(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{self}"
        );
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("failed to start bash");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Every pattern occurs in a call after the call that matched the previous one.
fn assert_in_order(calls: &[String], patterns: &[&str]) {
    let mut from = 0;
    for pattern in patterns {
        match calls[from..].iter().position(|c| c.contains(pattern)) {
            Some(i) => from += i + 1,
            None => panic!(
                "no call containing {pattern:?} after call #{from}; calls:\n{}",
                calls.join("\n")
            ),
        }
    }
}

fn assert_no_call(calls: &[String], pattern: &str) {
    if let Some(c) = calls.iter().find(|c| c.contains(pattern)) {
        panic!("unexpected call {c:?}; calls:\n{}", calls.join("\n"));
    }
}

/// A minimal B2C policy file: `id` in `tenant`, inheriting from `base`.
fn policy_xml(id: &str, base: Option<&str>, tenant: &str) -> String {
    let base = base
        .map(|b| format!("  <BasePolicy>\n    <TenantId>{tenant}</TenantId>\n    <PolicyId>{b}</PolicyId>\n  </BasePolicy>\n"))
        .unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8" ?>
<TrustFrameworkPolicy xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns="http://schemas.microsoft.com/online/cpim/schemas/2013/06"
  PolicySchemaVersion="0.3.0.0" TenantId="{tenant}" PolicyId="{id}"
  PublicPolicyUri="http://{tenant}/{id}">
{base}</TrustFrameworkPolicy>
"#
    )
}
