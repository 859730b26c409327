//! Tests of the deployment scripts in `deploy/`, without an Azure account.
//!
//! Each script runs under bash with a stub `az` first on `PATH`.  The stub
//! records every call (arguments quoted with `%q`, one line per call, followed
//! by the contents of `@file` arguments as `| ` lines) and answers canned
//! output, so the tests check which commands run, in which order and with
//! which arguments, and that a failing `az` stops the script with its message.
//! The certificate tests use the real openssl; the package tests build a real
//! static musl binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const SCRIPTS: &[&str] = &[
    "package.sh",
    "provision.sh",
    "deploy-code.sh",
    "upload-policies.sh",
    "client-cert.sh",
];

const THUMBPRINT: &str = "653BDBCB798D29A8CF69076D5B107851B7D44640";
const AUTHY_KEY: &str = "authy-test-key-3f9c2b";

/// Package tests install packages and run cargo: one at a time.
static PACKAGE_LOCK: Mutex<()> = Mutex::new(());

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true").unwrap_or(false)
}

const STUB_AZ: &str = r#"#!/usr/bin/env bash
# Stub of the Azure CLI: records the call, then answers canned output.
set -u
{
    printf 'az'
    printf ' %q' "$@"
    printf '\n'
    for arg in "$@"; do
        if [[ "$arg" == @* && -f "${arg#@}" ]]; then
            sed 's/^/| /' "${arg#@}"
        fi
    done
} >>"$AZ_STUB_LOG"
all="$*"
if [[ -n "${AZ_STUB_FAIL_ON:-}" && "$all" == *"$AZ_STUB_FAIL_ON"* ]]; then
    echo "ERROR: (AuthorizationFailed) stub refused: $AZ_STUB_FAIL_ON" >&2
    exit 1
fi
arg_after() {
    local want="$1"
    shift
    while (($# > 0)); do
        if [[ "$1" == "$want" ]]; then
            printf '%s' "${2:-}"
            return
        fi
        shift
    done
}
query="$(arg_after --query "$@")"
case "$all" in
"keyvault secret set"*)
    if [[ -n "${AZ_STUB_SECRET_CAPTURE:-}" ]]; then
        cat "$(arg_after --file "$@")" >"$AZ_STUB_SECRET_CAPTURE"
    fi
    ;;
"account show"*)
    case "$query" in
    id) echo 00000000-0000-0000-0000-00000000aaaa ;;
    tenantId) echo 00000000-0000-0000-0000-00000000bbbb ;;
    user.type) echo "${AZ_STUB_USER_TYPE:-user}" ;;
    user.name) echo 33333333-3333-3333-3333-333333333333 ;;
    *) echo '{"id": "00000000-0000-0000-0000-00000000aaaa"}' ;;
    esac
    ;;
"group exists"*) echo "${AZ_STUB_GROUP_EXISTS:-true}" ;;
"functionapp config appsettings list"*) echo "${AZ_STUB_KEY_STATE:-0|0}" ;;
"functionapp config show"*)
    if [[ "$query" == minTlsVersion ]]; then
        echo "${AZ_STUB_TLS_BEFORE:-1.2}"
    else
        echo "${AZ_STUB_SITE_CONFIG:-1.2|Disabled}"
    fi
    ;;
"ad signed-in-user show"*) echo 11111111-1111-1111-1111-111111111111 ;;
"ad sp show"*) echo 44444444-4444-4444-4444-444444444444 ;;
"functionapp plan list"*) echo "${AZ_STUB_PLAN_COUNT:-0}" ;;
"functionapp list"*) echo "${AZ_STUB_APP_COUNT:-0}" ;;
"functionapp identity assign"*) echo 22222222-2222-2222-2222-222222222222 ;;
"keyvault list"*) echo "${AZ_STUB_KV_COUNT:-0}" ;;
"keyvault show"*)
    if [[ "$query" == id ]]; then
        echo /subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv
    else
        echo https://kv.vault.azure.net/
    fi
    ;;
"role assignment list"*) echo 0 ;;
"functionapp show"*)
    if [[ "$query" == *defaultHostName* ]]; then
        echo "${AZ_STUB_HOST-app.azurewebsites.net}"
    else
        echo "${AZ_STUB_SITE_STATE:-true|true|Required|null}"
    fi
    ;;
"functionapp function keys list"*) echo "key/$(arg_after --function-name "$@")+=" ;;
"rest --method get --uri /subscriptions/"*/configreferences/*)
    # AZ_STUB_KV_REF_STATUSES: the answer to the first, second, ... call;
    # the last one repeats.
    read -r -a statuses <<<"${AZ_STUB_KV_REF_STATUSES:-Resolved}"
    n="$(grep -c '^az rest --method get --uri /subscriptions/.*/configreferences/' "$AZ_STUB_LOG")"
    ((n <= ${#statuses[@]})) || n="${#statuses[@]}"
    echo "${statuses[n - 1]}"
    ;;
"rest --method get"*) printf '%s\n' ${AZ_STUB_KEYSET_IDS:-} ;;
esac
exit 0
"#;

/// A private scratch directory with a `bin/` holding the stub `az`; removed
/// on drop unless KEEP_DEPLOY_TEST_DIRS is set.
struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    fn new(name: &str) -> Sandbox {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "deploy-scripts-{name}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(dir.join("bin")).unwrap();
        fs::create_dir_all(dir.join("tmp")).unwrap();
        let sandbox = Sandbox { dir };
        sandbox.write_executable("bin/az", STUB_AZ);
        sandbox
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

    /// `bash deploy/<script>` with a clean environment: only PATH (stub
    /// first), HOME and what the toolchain needs, so nothing from the
    /// developer's or CI's environment (LOCATION, say) leaks in.
    fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(repo_root().join("deploy").join(script));
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
        cmd.env("AZ_STUB_LOG", self.path("az.log"));
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

// ---------------------------------------------------------------------------
// All scripts

#[test]
fn shellcheck_passes_on_every_script() {
    let available = Command::new("shellcheck")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        assert!(
            !in_ci(),
            "shellcheck is not installed: .ci/run must install it"
        );
        eprintln!("shellcheck not installed; skipping (CI installs it)");
        return;
    }
    let deploy = repo_root().join("deploy");
    let mut files: Vec<PathBuf> = fs::read_dir(&deploy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    files.sort();
    assert!(
        files.len() > SCRIPTS.len(),
        "expected the scripts and lib.sh in {deploy:?}"
    );
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

// ---------------------------------------------------------------------------
// provision.sh

fn provision(sb: &Sandbox) -> Command {
    let mut cmd = sb.command("provision.sh");
    // Parameters both as flags and as environment variables.
    cmd.args([
        "--resource-group",
        "rg",
        "--location=westeurope",
        "--function-app",
        "app",
    ])
    .env("STORAGE_ACCOUNT", "appstore")
    .env(
        "CLIENT_CERT_THUMBPRINTS",
        "65:3b:db:cb:79:8d:29:a8:cf:69:07:6d:5b:10:78:51:b7:d4:46:40",
    )
    .env("AUTHY_API_KEY", AUTHY_KEY)
    .env("AZ_STUB_SECRET_CAPTURE", sb.path("secret"));
    cmd
}

#[test]
fn provision_premium_with_key_vault_runs_the_calls_in_order() {
    let sb = Sandbox::new("provision-premium");
    let out = run(provision(&sb).args(["--key-vault", "kv"]));
    out.assert_ok().assert_stderr("client certificate Required");
    let calls = sb.az_calls();
    assert_in_order(
        &calls,
        &[
            "az account show --query id",
            "az group exists --name rg",
            "az functionapp list --resource-group rg",
            "az group create --name rg --location westeurope",
            "az storage account create --name appstore --resource-group rg --location westeurope --sku Standard_LRS --kind StorageV2 --min-tls-version TLS1_2",
            "az functionapp plan list --resource-group rg",
            "az functionapp plan create --name app-plan --resource-group rg --location westeurope --sku EP1 --is-linux true",
            "az functionapp create --name app --resource-group rg --storage-account appstore --runtime custom --plan app-plan --os-type Linux --functions-version 4",
            "az functionapp identity assign --name app --resource-group rg --query principalId",
            "az keyvault create --name kv --resource-group rg --location westeurope --enable-rbac-authorization true",
            "az role assignment create --assignee-object-id 11111111-1111-1111-1111-111111111111 --assignee-principal-type User --role Key\\ Vault\\ Secrets\\ Officer",
            "az keyvault secret set --vault-name kv --name authy-api-key --file",
            "az role assignment create --assignee-object-id 22222222-2222-2222-2222-222222222222 --assignee-principal-type ServicePrincipal --role Key\\ Vault\\ Secrets\\ User --scope /subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
            "az functionapp config appsettings set --name app --resource-group rg --settings @",
            "az functionapp update --name app --resource-group rg --set httpsOnly=true --set clientCertEnabled=true --set clientCertMode=Required",
            "az functionapp config set --name app --resource-group rg --min-tls-version 1.2",
            "az functionapp show --name app --resource-group rg --query",
            "az functionapp config show --name app --resource-group rg --query",
            // The app's new role: wait for the reference, then restart.
            "az rest --method get --uri /subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg/providers/Microsoft.Web/sites/app/config/configreferences/appsettings/AUTHY_API_KEY\\?api-version=2024-04-01 --query properties.status --output tsv",
            "az functionapp restart --name app --resource-group rg",
        ],
    );
    // Premium: the classic commands, no ARM PATCH.
    assert_no_call(&calls, "resource patch");
    // A new app: no current settings to read.
    assert_no_call(&calls, "appsettings list");
    assert_eq!(fs::read_to_string(sb.path("secret")).unwrap(), AUTHY_KEY);

    let settings = sb.az_file_after("appsettings set");
    for expected in [
        r#""FUNCTIONS_WORKER_RUNTIME": "custom""#,
        r#""AUTHY_API_KEY": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/authy-api-key/)""#,
        r#""CLIENT_CERT_MODE": "required""#,
        &format!(r#""CLIENT_CERT_THUMBPRINTS": "{THUMBPRINT}""#),
    ] {
        assert!(
            settings.contains(expected),
            "settings lack {expected}:\n{settings}"
        );
    }
    // Optional settings that were not given are left to the handler's defaults
    // (or to what an earlier run set).
    for absent in ["AUTHY_API_URL", "APPROVAL_WAIT_SECONDS"] {
        assert!(!settings.contains(absent), "{absent}: {settings}");
    }
    // The Authy key never reaches a command line or the output.
    assert!(!sb.az_log().contains(AUTHY_KEY));
    assert!(!out.stdout.contains(AUTHY_KEY) && !out.stderr.contains(AUTHY_KEY));
}

#[test]
fn provision_does_not_recreate_existing_resources() {
    let sb = Sandbox::new("provision-existing");
    let out = run(provision(&sb)
        .args(["--key-vault", "kv"])
        .env_remove("AUTHY_API_KEY")
        .env("AZ_STUB_APP_COUNT", "1")
        .env("AZ_STUB_PLAN_COUNT", "1")
        .env("AZ_STUB_KV_COUNT", "1"));
    out.assert_ok()
        .assert_stderr("using the existing secret 'authy-api-key'");
    let calls = sb.az_calls();
    for pattern in [
        "functionapp plan create",
        "functionapp create",
        "keyvault create",
        "keyvault secret set",
    ] {
        assert_no_call(&calls, pattern);
    }
    assert_in_order(
        &calls,
        &[
            "functionapp identity assign",
            "appsettings set",
            "clientCertMode=Required",
            "--min-tls-version 1.2",
        ],
    );
}

#[test]
fn provision_consumption_plan_arguments() {
    let sb = Sandbox::new("provision-consumption");
    run(provision(&sb).env("PLAN_TYPE", "consumption")).assert_ok();
    let calls = sb.az_calls();
    assert_no_call(&calls, "functionapp plan");
    assert_in_order(
        &calls,
        &["az functionapp create --name app --resource-group rg --storage-account appstore --runtime custom --consumption-plan-location westeurope --os-type Linux --functions-version 4"],
    );
}

#[test]
fn provision_flex_plan_without_key_vault() {
    let sb = Sandbox::new("provision-flex");
    let out = run(provision(&sb)
        .args(["--plan-type", "flex", "--approval-wait-seconds", "5"])
        .env("AZ_STUB_TLS_BEFORE", "1.0"));
    out.assert_ok()
        .assert_stderr("plain app setting")
        // ceil(120 / 5) = 24 calls per approval request: the wait page needs 24 + 6.
        .assert_stderr("one approval request takes up to 24 calls: render the policies with AuthyWaitRetryLimit 30 or more");
    let calls = sb.az_calls();
    let create = calls
        .iter()
        .find(|c| c.contains("functionapp create"))
        .expect("no create call");
    assert!(
        create.contains("--runtime custom --flexconsumption-location westeurope"),
        "{create}"
    );
    assert!(!create.contains("--os-type"), "{create}");
    assert_no_call(&calls, "keyvault");
    // Flex: ARM PATCHes that carry only these properties, instead of the
    // commands that write back the whole site or site configuration.
    let site = "/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg/providers/Microsoft.Web/sites/app";
    assert_in_order(
        &calls,
        &[
            "appsettings set",
            &format!(
                r#"az resource patch --ids {site} --api-version 2024-04-01 --properties \{{\"httpsOnly\":\ true\,\ \"clientCertEnabled\":\ true\,\ \"clientCertMode\":\ \"Required\"\}} --output none"#
            ),
            &format!(
                r#"az resource patch --ids {site}/config/web --api-version 2024-04-01 --properties \{{\"minTlsVersion\":\ \"1.2\"\}} --output none"#
            ),
            "az functionapp show --name app --resource-group rg --query join\\(\\'\\|\\'\\,\\ \\[to_string\\(not_null\\(properties.httpsOnly\\,\\ httpsOnly\\)\\)",
            "az functionapp config show",
        ],
    );
    for pattern in [
        "functionapp config set",
        "functionapp update",
        "--ftps-state",
    ] {
        assert_no_call(&calls, pattern);
    }
    // No Key Vault: nothing to wait for.
    assert_no_call(&calls, "configreferences");
    let settings = sb.az_file_after("appsettings set");
    assert!(
        !settings.contains("FUNCTIONS_WORKER_RUNTIME"),
        "Flex rejects this setting:\n{settings}"
    );
    assert!(
        settings.contains(&format!(r#""AUTHY_API_KEY": "{AUTHY_KEY}""#)),
        "{settings}"
    );
    assert!(
        settings.contains(r#""APPROVAL_WAIT_SECONDS": "5""#),
        "{settings}"
    );
    assert!(!calls.iter().any(|c| c.contains(AUTHY_KEY)));
}

#[test]
fn provision_stops_when_client_certificates_are_not_required() {
    let sb = Sandbox::new("provision-optional");
    let out = run(provision(&sb).env("AZ_STUB_SITE_STATE", "true|true|Optional|null"));
    out.assert_failed()
        .assert_stderr("clientCertMode=Optional")
        .assert_stderr("run the script again");
    // Already on premium: no advice to switch to premium.
    assert!(!out.stderr.contains("use --plan-type premium"), "{out}");
    let sb = Sandbox::new("provision-optional-flex");
    run(provision(&sb)
        .args(["--plan-type", "flex"])
        .env("AZ_STUB_SITE_STATE", "true|true|Optional|null"))
    .assert_failed()
    .assert_stderr("If the flex plan does not support these settings, use --plan-type premium");

    let sb = Sandbox::new("provision-exclusions");
    run(provision(&sb).env("AZ_STUB_SITE_STATE", "true|true|Required|/api/health"))
        .assert_failed()
        .assert_stderr("exclusion paths '/api/health'");
}

#[test]
fn provision_stops_at_the_first_failing_az_call() {
    let sb = Sandbox::new("provision-fail");
    run(provision(&sb).env("AZ_STUB_FAIL_ON", "storage account create"))
        .assert_failed()
        .assert_stderr("ERROR: (AuthorizationFailed) stub refused: storage account create")
        .assert_stderr("command failed (exit 1): az storage account create");
    let calls = sb.az_calls();
    assert!(
        calls.last().unwrap().contains("storage account create"),
        "{calls:?}"
    );
    // Only the look-ups that come first (does the app exist?) ran.
    for pattern in ["functionapp plan", "functionapp create", "appsettings set"] {
        assert_no_call(&calls, pattern);
    }
}

#[test]
fn provision_stops_when_not_signed_in() {
    let sb = Sandbox::new("provision-signin");
    run(provision(&sb).env("AZ_STUB_FAIL_ON", "account show"))
        .assert_failed()
        .assert_stderr("not signed in to Azure");
    assert_eq!(sb.az_calls().len(), 1);
}

#[test]
fn provision_dry_run_prints_the_plan_without_calling_az() {
    let sb = Sandbox::new("provision-dry");
    let out = run(provision(&sb).args(["--dry-run", "--key-vault", "kv"]));
    out.assert_ok()
        .assert_stdout("+ az functionapp create --name app --resource-group rg --storage-account appstore --runtime custom --plan app-plan --os-type Linux --functions-version 4")
        .assert_stdout("--set clientCertEnabled=true --set clientCertMode=Required")
        .assert_stdout("+ az functionapp config set --name app --resource-group rg --min-tls-version 1.2")
        .assert_stdout("CLIENT_CERT_MODE=required")
        .assert_stderr("nothing was changed");
    assert!(
        sb.az_calls().is_empty(),
        "dry run called az: {:?}",
        sb.az_calls()
    );
    assert!(!out.stdout.contains(AUTHY_KEY) && !out.stderr.contains(AUTHY_KEY));
}

#[test]
fn provision_rejects_invalid_values() {
    let sb = Sandbox::new("provision-invalid");
    run(provision(&sb).env("CLIENT_CERT_THUMBPRINTS", "not-a-thumbprint"))
        .assert_failed()
        .assert_stderr("is not a SHA-1 thumbprint");
    run(provision(&sb).args(["--plan-type", "basic"]))
        .assert_failed()
        .assert_stderr("--plan-type must be premium, flex or consumption");
    run(provision(&sb).env("STORAGE_ACCOUNT", "Bad_Name"))
        .assert_failed()
        .assert_stderr("must be 3-24 lowercase letters and digits");
    assert!(sb.az_calls().is_empty());

    // A new app needs the key: checked before anything is created.
    let sb = Sandbox::new("provision-nokey");
    run(provision(&sb).env_remove("AUTHY_API_KEY"))
        .assert_failed()
        .assert_stderr("set AUTHY_API_KEY");
    let calls = sb.az_calls();
    for pattern in ["create", "appsettings set", "secret set"] {
        assert_no_call(&calls, pattern);
    }
}

/// The `check_range FLAG "$VAR" MIN MAX UNIT` lines of provision.sh, as
/// (setting name, min, max): `--approval-wait-seconds` checks
/// `APPROVAL_WAIT_SECONDS`.
fn provision_ranges() -> Vec<(String, u64, u64)> {
    let script = fs::read_to_string(repo_root().join("deploy/provision.sh")).unwrap();
    script
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["check_range", flag, _var, min, max, _unit] if flag.starts_with("--") => Some((
                    flag[2..].replace('-', "_").to_uppercase(),
                    min.parse().expect("check_range minimum"),
                    max.parse().expect("check_range maximum"),
                )),
                _ => None,
            }
        })
        .collect()
}

/// Whether the handler's own configuration accepts `name=value`.
fn handler_accepts(name: &str, value: u64) -> bool {
    let value = value.to_string();
    let settings = [
        ("AUTHY_API_KEY", "k"),
        ("CLIENT_CERT_THUMBPRINTS", THUMBPRINT),
        (name, value.as_str()),
    ];
    match b2c_authy::config::Config::from_lookup(|key| {
        settings
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v).to_owned())
    }) {
        Ok(_) => true,
        Err(e) => {
            // Only this setting may be what the handler refuses.
            assert!(
                e.0.iter().all(|l| l.starts_with(&format!("{name}:"))),
                "{e}"
            );
            false
        }
    }
}

/// provision.sh refuses exactly what the handler refuses, so the two cannot
/// drift apart: each range check of the script has the bounds the handler
/// enforces, and `--approval-wait-seconds` stops at
/// `config::MAX_APPROVAL_WAIT_SECONDS`, below B2C's 10 s REST timeout.
#[test]
fn provision_ranges_are_the_handlers() {
    use b2c_authy::config::{B2C_REST_TIMEOUT_SECONDS, MAX_APPROVAL_WAIT_SECONDS};
    let ranges = provision_ranges();
    let names: Vec<&str> = ranges.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "APPROVAL_WAIT_SECONDS",
            "APPROVAL_POLL_INTERVAL_MS",
            "AUTHY_APPROVAL_TTL_SECONDS"
        ],
        "the check_range lines of provision.sh"
    );
    for (name, min, max) in &ranges {
        assert!(handler_accepts(name, *min), "handler refuses {name}={min}");
        assert!(handler_accepts(name, *max), "handler refuses {name}={max}");
        assert!(
            !handler_accepts(name, max + 1),
            "handler accepts {name}={}, provision.sh stops at {max}",
            max + 1
        );
        if *min > 0 {
            assert!(
                !handler_accepts(name, min - 1),
                "handler accepts {name}={}, provision.sh starts at {min}",
                min - 1
            );
        }
    }
    let (_, min, max) = &ranges[0];
    assert_eq!((*min, *max), (1, MAX_APPROVAL_WAIT_SECONDS));
    const { assert!(MAX_APPROVAL_WAIT_SECONDS < B2C_REST_TIMEOUT_SECONDS) };

    // And the script really applies that line: the maximum passes, one more
    // is refused before any az call.
    let sb = Sandbox::new("provision-wait-range");
    let max = MAX_APPROVAL_WAIT_SECONDS.to_string();
    run(provision(&sb).args(["--approval-wait-seconds", &max])).assert_ok();
    assert!(sb
        .az_file_after("appsettings set")
        .contains(&format!(r#""APPROVAL_WAIT_SECONDS": "{max}""#)));
    let sb = Sandbox::new("provision-wait-range-over");
    let over = (MAX_APPROVAL_WAIT_SECONDS + 1).to_string();
    run(provision(&sb).args(["--approval-wait-seconds", &over]))
        .assert_code(1)
        .assert_stderr(&format!("from 1 to {max}, not '{over}'"));
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
}

/// Values the handler refuses at startup are refused before any az call.
#[test]
fn provision_rejects_settings_the_handler_refuses() {
    let sb = Sandbox::new("provision-limits");
    let der = sb.write("ca.der", "0\u{82}\u{1} not PEM");
    for (args, message) in [
        (
            &["--approval-wait-seconds", "9"][..],
            "--approval-wait-seconds must be a whole number of seconds from 1 to 8, not '9'",
        ),
        (&["--approval-wait-seconds", "0"], "from 1 to 8, not '0'"),
        (&["--approval-wait-seconds", "7.5"], "from 1 to 8, not '7.5'"),
        (
            &["--approval-poll-interval-ms", "249"],
            "--approval-poll-interval-ms must be a whole number of milliseconds from 250 to 60000",
        ),
        (&["--approval-poll-interval-ms", "60001"], "from 250 to 60000"),
        (
            &["--authy-approval-ttl-seconds", "9"],
            "--authy-approval-ttl-seconds must be a whole number of seconds from 10 to 86400",
        ),
        (&["--authy-approval-ttl-seconds", "86401"], "from 10 to 86400"),
        (
            &["--client-cert-ca", "/nonexistent/ca.pem"],
            "--client-cert-ca must be PEM text (with '-----BEGIN CERTIFICATE-----') or a local PEM file; '/nonexistent/ca.pem' is neither",
        ),
        (&["--client-cert-ca", der.to_str().unwrap()], "holds no PEM certificate"),
    ] {
        run(provision(&sb).args(args))
            .assert_code(1)
            .assert_stderr(message);
    }
    run(provision(&sb).env("CLIENT_CERT_THUMBPRINTS", format!("{THUMBPRINT};ABCD")))
        .assert_failed()
        .assert_stderr("'ABCD' is not a SHA-1 thumbprint");
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
}

#[test]
fn provision_accepts_what_the_handler_accepts() {
    let sb = Sandbox::new("provision-accepts");
    let other = "0123456789abcdef0123456789ABCDEF01234567";
    let ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let ca = sb.write("certs/ca.pem", ca_pem);
    run(provision(&sb)
        .env(
            "CLIENT_CERT_THUMBPRINTS",
            format!("65 3b db cb 79 8d 29 a8 cf 69 07 6d 5b 10 78 51 b7 d4 46 40; {other}"),
        )
        .args(["--approval-wait-seconds", "8"])
        .args(["--approval-poll-interval-ms", "250"])
        .args(["--authy-approval-ttl-seconds", "86400"])
        .arg("--client-cert-ca")
        .arg(&ca))
    .assert_ok();
    let settings = sb.az_file_after("appsettings set");
    for expected in [
        format!(
            r#""CLIENT_CERT_THUMBPRINTS": "{THUMBPRINT},{}""#,
            other.to_uppercase()
        ),
        r#""APPROVAL_WAIT_SECONDS": "8""#.to_owned(),
        r#""APPROVAL_POLL_INTERVAL_MS": "250""#.to_owned(),
        r#""AUTHY_APPROVAL_TTL_SECONDS": "86400""#.to_owned(),
        // The file's text, not its local path.
        r#""CLIENT_CERT_CA": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----""#
            .to_owned(),
    ] {
        assert!(
            settings.contains(&expected),
            "settings lack {expected}:\n{settings}"
        );
    }

    // PEM text is passed as it is.
    let sb = Sandbox::new("provision-ca-text");
    run(provision(&sb).env("CLIENT_CERT_CA", ca_pem)).assert_ok();
    assert!(sb
        .az_file_after("appsettings set")
        .contains(r#""CLIENT_CERT_CA": "-----BEGIN CERTIFICATE-----\nMIIB"#));
}

/// The README's rotation re-run: `provision.sh --client-cert-thumbprints
/// OLD,NEW` on an existing app changes the thumbprints and nothing else.
#[test]
fn provision_rerun_keeps_the_settings_it_is_not_given() {
    // A Key Vault reference, AUTHY_API_KEY still in the environment, no
    // --key-vault: the reference stays.
    let sb = Sandbox::new("provision-rerun-kv");
    let out = run(provision(&sb)
        .env("AZ_STUB_APP_COUNT", "1")
        .env("AZ_STUB_PLAN_COUNT", "1")
        .env("AZ_STUB_KEY_STATE", "1|1"));
    out.assert_ok()
        .assert_stderr("keeping that reference and ignoring AUTHY_API_KEY");
    let calls = sb.az_calls();
    assert_in_order(
        &calls,
        &[
            "az functionapp list --resource-group rg",
            "az functionapp config appsettings list --name app --resource-group rg --query",
            "az group create",
            "appsettings set",
        ],
    );
    assert_no_call(&calls, "functionapp create");
    let settings = sb.az_file_after("appsettings set");
    assert!(
        settings.contains(&format!(r#""CLIENT_CERT_THUMBPRINTS": "{THUMBPRINT}""#)),
        "{settings}"
    );
    for absent in ["AUTHY_API_KEY", "APPROVAL_WAIT_SECONDS", AUTHY_KEY] {
        assert!(!settings.contains(absent), "{absent}: {settings}");
    }

    // A plain key and no AUTHY_API_KEY: the key stays.
    let sb = Sandbox::new("provision-rerun-plain");
    run(provision(&sb)
        .env_remove("AUTHY_API_KEY")
        .env("AZ_STUB_APP_COUNT", "1")
        .env("AZ_STUB_PLAN_COUNT", "1")
        .env("AZ_STUB_KEY_STATE", "1|0"))
    .assert_ok()
    .assert_stderr("keeping the app's current AUTHY_API_KEY");
    let settings = sb.az_file_after("appsettings set");
    assert!(!settings.contains("AUTHY_API_KEY"), "{settings}");
    assert!(!settings.contains("APPROVAL_WAIT_SECONDS"), "{settings}");
}

#[test]
fn provision_stops_when_tls_or_ftps_were_not_applied() {
    let sb = Sandbox::new("provision-tls");
    run(provision(&sb).env("AZ_STUB_SITE_CONFIG", "1.0|Disabled"))
        .assert_failed()
        .assert_stderr("minTlsVersion=1.0; expected 1.2 (or later)");
    let sb = Sandbox::new("provision-ftps");
    run(provision(&sb).env("AZ_STUB_SITE_CONFIG", "1.2|AllAllowed"))
        .assert_failed()
        .assert_stderr("ftpsState=AllAllowed; expected Disabled");
    let sb = Sandbox::new("provision-tls13");
    run(provision(&sb).env("AZ_STUB_SITE_CONFIG", "1.3|Disabled")).assert_ok();
    // Flex has no FTP(S) publishing: ftpsState is not checked there, TLS is.
    let sb = Sandbox::new("provision-flex-ftps");
    run(provision(&sb)
        .args(["--plan-type", "flex"])
        .env("AZ_STUB_SITE_CONFIG", "1.2|AllAllowed"))
    .assert_ok();
    let sb = Sandbox::new("provision-flex-tls");
    run(provision(&sb)
        .args(["--plan-type", "flex"])
        .env("AZ_STUB_TLS_BEFORE", "1.0")
        .env("AZ_STUB_SITE_CONFIG", "1.0|None"))
    .assert_failed()
    .assert_stderr("minTlsVersion=1.0; expected 1.2 (or later). If the flex plan does not support these settings");
    // Flex, already at TLS 1.2 (new apps are): config/web is not patched at all, since
    // Flex has refused such patches for properties it stores itself.
    let sb = Sandbox::new("provision-flex-tls-ok");
    run(provision(&sb).args(["--plan-type", "flex"])).assert_ok();
    let calls = sb.az_calls();
    assert_no_call(&calls, "config/web");
    // Nothing given about the wait: nothing said about the wait page.
    let sb = Sandbox::new("provision-no-wait");
    let out = run(&mut provision(&sb));
    out.assert_ok();
    assert!(!out.stderr.contains("AuthyWaitRetryLimit"), "{out}");
}

/// Until the app's new role on the vault applies, App Service hands the
/// handler the literal reference: the script waits for it to resolve, then
/// restarts the app; it stops, saying why, when it does not resolve.
#[test]
fn provision_waits_for_the_key_vault_reference() {
    let sb = Sandbox::new("provision-kv-wait");
    let out = run(provision(&sb).args(["--key-vault", "kv"]).env(
        "AZ_STUB_KV_REF_STATUSES",
        "AccessToKeyVaultDenied Initialized Resolved",
    ));
    out.assert_ok()
        .assert_stderr("status 'AccessToKeyVaultDenied'; waiting for the role assignment to apply (check 1 of 18")
        .assert_stderr("status 'Initialized'")
        .assert_stderr("Key Vault reference AUTHY_API_KEY resolved");
    let calls = sb.az_calls();
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.contains("configreferences"))
            .count(),
        3,
        "{calls:?}"
    );
    assert_in_order(
        &calls,
        &[
            "configreferences",
            "configreferences",
            "configreferences",
            "az functionapp restart",
        ],
    );

    // Resolved at once, and the role already existed: no restart.
    let sb = Sandbox::new("provision-kv-resolved");
    let mut cmd = provision(&sb);
    cmd.args(["--key-vault", "kv"])
        .env_remove("AUTHY_API_KEY")
        .env("AZ_STUB_APP_COUNT", "1")
        .env("AZ_STUB_KV_COUNT", "1");
    // Every role assignment listed as present.
    sb.write_executable(
        "bin/az",
        &STUB_AZ.replace(
            r#""role assignment list"*) echo 0 ;;"#,
            r#""role assignment list"*) echo 1 ;;"#,
        ),
    );
    run(&mut cmd).assert_ok();
    let calls = sb.az_calls();
    assert_no_call(&calls, "role assignment create");
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.contains("configreferences"))
            .count(),
        1
    );
    assert_no_call(&calls, "functionapp restart");

    // Never resolved: restart every sixth check (App Service reads a reference again only
    // on a restart), stop after the bounded wait, and say what to do.
    let sb = Sandbox::new("provision-kv-denied");
    run(provision(&sb)
        .args(["--key-vault", "kv"])
        .env("KEYVAULT_REFERENCE_ATTEMPTS", "7")
        .env("AZ_STUB_KV_REF_STATUSES", "AccessToKeyVaultDenied"))
    .assert_failed()
    .assert_stderr("still reports the Key Vault reference AUTHY_API_KEY as 'AccessToKeyVaultDenied' after 7 checks")
    .assert_stderr("'Key Vault Secrets User' on kv")
    .assert_stderr("restart the app (az functionapp restart --resource-group rg --name app)");
    let calls = sb.az_calls();
    let checks_and_restarts: Vec<&str> = calls
        .iter()
        .map(String::as_str)
        .filter(|c| c.contains("configreferences") || c.contains("functionapp restart"))
        .map(|c| {
            if c.contains("restart") {
                "restart"
            } else {
                "check"
            }
        })
        .collect();
    assert_eq!(
        checks_and_restarts,
        ["check", "check", "check", "check", "check", "check", "restart", "check"],
        "{calls:?}"
    );
}

// ---------------------------------------------------------------------------
// deploy-code.sh

fn deploy_code(sb: &Sandbox) -> Command {
    let zip = sb.write("handler.zip", "not really a zip");
    let mut cmd = sb.command("deploy-code.sh");
    cmd.args(["--resource-group", "rg", "--function-app", "app", "--zip"])
        .arg(zip);
    cmd
}

#[test]
fn deploy_code_zip_deploys_then_prints_function_urls() {
    let sb = Sandbox::new("deploy-code");
    let out = run(&mut deploy_code(&sb));
    out.assert_ok();
    let zip = sb.path("handler.zip");
    assert_in_order(
        &sb.az_calls(),
        &[
            &format!(
                "az functionapp deployment source config-zip --resource-group rg --name app --src {}",
                zip.display()
            ),
            "az functionapp show --resource-group rg --name app --query not_null\\(properties.defaultHostName\\,\\ defaultHostName\\) --output tsv",
            "az functionapp function keys list --resource-group rg --name app --function-name Register --query default",
            "--function-name CreateApprovalRequest",
            "--function-name WaitForAuthyApproval",
        ],
    );
    // The stub's keys contain '/', '+' and '=': they must be URL-encoded, as
    // the policies put them into the query string of their ServiceUrl.
    assert_eq!(
        out.stdout,
        "{\n  \"AuthyApiBaseUrl\": \"https://app.azurewebsites.net/api\",\n  \
         \"RegisterFunctionKey\": \"key%2FRegister%2B%3D\",\n  \
         \"CreateApprovalRequestFunctionKey\": \"key%2FCreateApprovalRequest%2B%3D\",\n  \
         \"WaitForAuthyApprovalFunctionKey\": \"key%2FWaitForAuthyApproval%2B%3D\"\n}\n",
        "{out}"
    );
    for f in ["Register", "CreateApprovalRequest", "WaitForAuthyApproval"] {
        out.assert_stderr(&format!(
            "https://app.azurewebsites.net/api/{f}?code=key%2F{f}%2B%3D"
        ));
    }
}

/// No host name (a query that misses the app's shape, say) must not print
/// `https:///api/...` URLs.
#[test]
fn deploy_code_stops_without_a_host_name() {
    for host in ["", "None"] {
        let sb = Sandbox::new("deploy-code-nohost");
        let out = run(deploy_code(&sb).env("AZ_STUB_HOST", host));
        out.assert_failed()
            .assert_stderr("az functionapp show reported no default host name for app");
        assert!(
            !out.stdout.contains("https://") && !out.stderr.contains("https:///"),
            "{out}"
        );
        assert_no_call(&sb.az_calls(), "keys list");
    }
}

#[test]
fn deploy_code_requires_the_package() {
    let sb = Sandbox::new("deploy-code-nozip");
    run(sb.command("deploy-code.sh").args([
        "--resource-group",
        "rg",
        "--function-app",
        "app",
        "--zip",
        "missing.zip",
    ]))
    .assert_failed()
    .assert_stderr("deploy/package.sh");
    assert!(sb.az_calls().is_empty());
}

#[test]
fn deploy_code_stops_when_the_deployment_fails() {
    let sb = Sandbox::new("deploy-code-fail");
    run(deploy_code(&sb).env("AZ_STUB_FAIL_ON", "config-zip"))
        .assert_failed()
        .assert_stderr("stub refused: config-zip");
    assert_no_call(&sb.az_calls(), "keys list");
}

#[test]
fn deploy_code_dry_run() {
    let sb = Sandbox::new("deploy-code-dry");
    run(deploy_code(&sb).arg("--dry-run"))
        .assert_ok()
        .assert_stdout("+ az functionapp deployment source config-zip --resource-group rg --name app --src")
        .assert_stdout("+ az functionapp function keys list --resource-group rg --name app --function-name WaitForAuthyApproval");
    assert!(sb.az_calls().is_empty());
}

// ---------------------------------------------------------------------------
// upload-policies.sh

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

const TENANT: &str = "contoso.onmicrosoft.com";
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

// ---------------------------------------------------------------------------
// client-cert.sh (real openssl)

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
        .assert_stdout("+ az rest --method post --uri https://graph.microsoft.com/beta/trustFramework/keySets/B2C_1A_RestApiClientCertificate/uploadPkcs12");
    assert!(!sb.path("certs").exists());
    assert!(sb.az_calls().is_empty());
}

// ---------------------------------------------------------------------------
// package.sh

const TARGET: &str = "x86_64-unknown-linux-musl";

/// A minimal custom-handler project: a `handler` binary without dependencies,
/// host.json, two function folders, and files that must stay out of the zip.
fn write_fixture_project(sb: &Sandbox) -> PathBuf {
    sb.write(
        "project/Cargo.toml",
        "[package]\nname = \"fixture-handler\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [[bin]]\nname = \"handler\"\npath = \"src/main.rs\"\n\n[workspace]\n",
    );
    sb.write(
        "project/Cargo.lock",
        "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\n\
         version = 3\n\n[[package]]\nname = \"fixture-handler\"\nversion = \"0.1.0\"\n",
    );
    sb.write(
        "project/src/main.rs",
        "fn main() {\n    println!(\"fixture handler\");\n}\n",
    );
    sb.write(
        "project/host.json",
        r#"{"version": "2.0", "customHandler": {"description": {"defaultExecutablePath": "handler"}, "enableForwardingHttpRequest": false}}"#,
    );
    sb.write("project/Register/function.json", r#"{"bindings": []}"#);
    sb.write(
        "project/WaitForAuthyApproval/function.json",
        r#"{"bindings": []}"#,
    );
    sb.write(
        "project/local.settings.json",
        r#"{"Values": {"AUTHY_API_KEY": "local"}}"#,
    );
    sb.write("project/notes/readme.txt", "not a function folder");
    sb.path("project")
}

fn package(sb: &Sandbox, project: &Path, output: &Path, target_dir: &Path) -> Command {
    let mut cmd = sb.command("package.sh");
    cmd.args(["--output".as_ref(), output.as_os_str()])
        .env("REPO_ROOT", project)
        .env("CARGO_TARGET_DIR", target_dir);
    cmd
}

/// (name, Unix mode) of every zip entry, read with python3's zipfile.
fn zip_entries(zip: &Path) -> Vec<(String, u32)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist(): print(f'{i.filename} {i.external_attr >> 16:o}')",
        ])
        .arg(zip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, mode) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), u32::from_str_radix(mode, 8).unwrap())
        })
        .collect()
}

fn extract(zip: &Path, entry: &str, dest: &Path) {
    let status = Command::new("python3")
        .args([
            "-c",
            "import os, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\nopen(sys.argv[3], 'wb').write(z.read(sys.argv[2]))\nos.chmod(sys.argv[3], z.getinfo(sys.argv[2]).external_attr >> 16 & 0o777)",
        ])
        .arg(zip)
        .arg(entry)
        .arg(dest)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Static: an ELF executable without a program interpreter (PT_INTERP), so
/// it does not depend on the host image's dynamic loader and libc.
fn assert_static_elf(path: &Path) {
    let elf = fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{path:?} is not ELF");
    assert_eq!(elf[4], 2, "not 64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        let p_type = u32::from_le_bytes(elf[at..at + 4].try_into().unwrap());
        assert_ne!(p_type, 3, "{path:?} has a PT_INTERP: dynamically linked");
    }
    if let Ok(out) = Command::new("file").arg(path).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("statically linked") || text.contains("static-pie linked"),
            "file(1) says: {text}"
        );
    }
}

fn assert_handler_zip(zip: &Path, expected: &[&str], scratch: &Path) {
    let entries = zip_entries(zip);
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expected, "zip entries");
    let handler_mode = entries.iter().find(|(n, _)| n == "handler").unwrap().1;
    assert_eq!(
        handler_mode & 0o777,
        0o755,
        "handler must stay executable: {handler_mode:o}"
    );
    let handler = scratch.join("handler-extracted");
    extract(zip, "handler", &handler);
    assert_static_elf(&handler);
}

#[test]
fn package_dry_run_prints_the_build() {
    let sb = Sandbox::new("package-dry");
    let project = write_fixture_project(&sb);
    let zip = sb.path("out/handler.zip");
    let out = run(package(&sb, &project, &zip, &sb.path("target")).arg("--dry-run"));
    out.assert_ok()
        .assert_stdout(&format!(
            "cargo build --release --locked --target {TARGET} --bin handler"
        ))
        .assert_stdout("CARGO_PROFILE_RELEASE_STRIP=symbols")
        .assert_stderr("would write");
    assert!(!zip.exists());
}

#[test]
fn package_refuses_a_host_json_for_another_executable() {
    let sb = Sandbox::new("package-hostjson");
    let project = write_fixture_project(&sb);
    sb.write(
        "project/host.json",
        r#"{"version": "2.0", "customHandler": {"description": {"defaultExecutablePath": "app"}}}"#,
    );
    let _guard = PACKAGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    run(&mut package(
        &sb,
        &project,
        &sb.path("handler.zip"),
        &sb.path("target"),
    ))
    .assert_failed()
    .assert_stderr("defaultExecutablePath is 'app', expected 'handler'");
}

#[test]
fn package_builds_a_static_handler_zip() {
    let sb = Sandbox::new("package-fixture");
    let project = write_fixture_project(&sb);
    let zip = sb.path("out/handler.zip");
    let _guard = PACKAGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = run(&mut package(&sb, &project, &zip, &sb.path("target")));
    out.assert_ok();
    assert_eq!(out.stdout.trim(), zip.display().to_string());
    assert_handler_zip(
        &zip,
        &[
            "handler",
            "host.json",
            "Register/function.json",
            "WaitForAuthyApproval/function.json",
        ],
        &sb.dir,
    );
    let ran = Command::new(sb.path("handler-extracted")).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "fixture handler\n");
}

/// The real handler, once the repository has host.json and its functions.
/// Reuses target/ so that it is incremental.
#[test]
fn package_builds_the_real_handler() {
    let root = repo_root();
    if !root.join("host.json").exists() {
        assert!(!in_ci(), "host.json is missing from the repository");
        eprintln!("no host.json yet; skipping the package test of the real handler");
        return;
    }
    let mut functions: Vec<String> = fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("function.json").is_file())
        .map(|e| format!("{}/function.json", e.file_name().to_string_lossy()))
        .collect();
    functions.sort();
    for f in ["Register", "CreateApprovalRequest", "WaitForAuthyApproval"] {
        assert!(
            functions.contains(&format!("{f}/function.json")),
            "missing {f}/function.json"
        );
    }
    let sb = Sandbox::new("package-real");
    let zip = sb.path("handler.zip");
    let _guard = PACKAGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    run(&mut package(&sb, &root, &zip, &root.join("target"))).assert_ok();
    let mut expected = vec!["handler".to_owned(), "host.json".to_owned()];
    expected.extend(functions);
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_handler_zip(&zip, &expected, &sb.dir);
}
