//! The deploy scripts against the real Azure CLI's parser.
//!
//! The other modules of [`super`] check what the scripts ask `az` to do with a
//! stub that accepts anything; this one checks that the real CLI accepts each of
//! those calls as written.  Every script runs, for every plan type, with
//! `tests/it/deploy/az_wrapper.py` (beside this file) as `az`: it passes each call's exact
//! argv to the real CLI, signed out (a fresh `AZURE_CONFIG_DIR`) and with the
//! proxies pointed at 127.0.0.1:9, so nothing leaves the machine.  A parse
//! error (exit 2: unknown command or argument, invalid choice, a `--query`
//! that is not JMESPath) fails the test with the command and the CLI's
//! message; "Please run 'az login'" means the call is well formed.  The
//! wrapper then answers with output of the real command's shape, filtered by
//! `--query` with the CLI's own jmespath and printed by the CLI's own
//! formatters, so the script carries on as it would against Azure (and a
//! query that fails on that output is reported too).
//!
//! The CLI is not installed by `cargo test`: `.ci/run` installs it from PyPI
//! into `target/azure-cli-venv` and sets `B2C_AUTHY_REAL_AZ` to its `bin/az`.
//! Without it the tests skip with a message, except under `CI=true`.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::{policy_xml, repo_root, skip_or_fail, Sandbox, SCRIPTS, TENANT, TEST_DIR, THUMBPRINT};

/// The wrapper the scripts run as `az`, in [`TEST_DIR`].
const AZ_WRAPPER: &str = "az_wrapper.py";
/// Scripts run this many at a time: the CLI spends about a second of CPU
/// per call starting up, and CI has 2 cores.
const PARALLEL: usize = 3;

/// The real CLI: `B2C_AUTHY_REAL_AZ`, else `target/azure-cli-venv/bin/az`
/// (where .ci/run installs it), with the Python of its virtual environment
/// beside it (the wrapper uses that environment's jmespath and knack).
fn real_az() -> Option<(PathBuf, PathBuf)> {
    let az = match std::env::var_os("B2C_AUTHY_REAL_AZ") {
        Some(path) => PathBuf::from(path),
        None => repo_root().join("target/azure-cli-venv/bin/az"),
    };
    if !az.is_file() {
        skip_or_fail(&format!(
            "no real Azure CLI at {} (set B2C_AUTHY_REAL_AZ to a virtual environment's bin/az; .ci/run installs one)",
            az.display()
        ));
        return None;
    }
    let python = az.with_file_name("python");
    assert!(
        python.is_file(),
        "{} has no python beside it: B2C_AUTHY_REAL_AZ must be the az of a Python virtual environment with azure-cli installed",
        az.display()
    );
    Some((az, python))
}

/// One call as the wrapper logged it.
#[derive(Debug, Clone)]
struct Call {
    argv: Vec<String>,
    verdict: String,
    seconds: f64,
    cached: bool,
    message: String,
}

impl Call {
    fn line(&self) -> String {
        format!("az {}", self.argv.join(" "))
    }
}

fn read_log(path: &Path, python: &Path) -> Vec<Call> {
    if !path.exists() {
        return Vec::new();
    }
    // JSON lines, turned into tab-separated fields by the venv's Python: no
    // JSON crate needed here.
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys\nfor line in open(sys.argv[1], encoding='utf-8'):\n    e = json.loads(line)\n    print('\\t'.join([json.dumps(e['argv']), e['verdict'], str(e['seconds']), str(e.get('cached', False)), json.dumps(e['message'])]))",
        ])
        .arg(path)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Call {
                argv: parse_json_strings(f[0]),
                verdict: f[1].to_owned(),
                seconds: f[2].parse().unwrap_or(0.0),
                cached: f[3] == "True",
                message: parse_json_strings(&format!("[{}]", f[4]))
                    .pop()
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// A JSON array of strings (as Python's json.dumps writes it).
fn parse_json_strings(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.trim().trim_start_matches('[').chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut item = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => item.push('\n'),
                    Some('t') => item.push('\t'),
                    Some('r') => item.push('\r'),
                    Some('u') => {
                        let hex: String = chars.by_ref().take(4).collect();
                        if let Some(ch) =
                            u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                        {
                            item.push(ch);
                        }
                    }
                    Some(other) => item.push(other),
                    None => {}
                },
                _ => item.push(c),
            }
        }
        out.push(item);
    }
    out
}

/// A sandbox with `bin/az` (the wrapper) and a fresh AZURE_CONFIG_DIR; the call log goes
/// to `az-calls.jsonl`.
fn wrapper_sandbox(name: &str, python: &Path) -> Sandbox {
    let sb = Sandbox::empty(&format!("real-az-{name}"));
    fs::create_dir_all(sb.path("azure-config")).unwrap();
    let shim = format!(
        "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
        python.display(),
        repo_root().join(TEST_DIR).join(AZ_WRAPPER).display()
    );
    sb.write_executable("bin/az", &shim);
    sb
}

/// One script run through the wrapper.
struct Job {
    name: String,
    script: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Folder holding the scripts (a mutated copy for the negative cases).
    deploy_dir: PathBuf,
    /// Each must start some logged call (command words and arguments).
    expect_calls: Vec<String>,
    /// Each must appear in the script's stdout or stderr.
    expect_output: Vec<String>,
    /// Calls that must not happen.
    forbid_calls: Vec<String>,
}

impl Job {
    fn new(name: &str, script: &str, args: &[&str]) -> Job {
        Job {
            name: name.to_owned(),
            script: script.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
            deploy_dir: repo_root().join("deploy"),
            expect_calls: Vec::new(),
            expect_output: Vec::new(),
            forbid_calls: Vec::new(),
        }
    }
    fn env(mut self, k: &str, v: &str) -> Job {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }
    fn calls(mut self, c: &[&str]) -> Job {
        self.expect_calls.extend(c.iter().map(|s| (*s).to_owned()));
        self
    }
    fn output(mut self, o: &[&str]) -> Job {
        self.expect_output.extend(o.iter().map(|s| (*s).to_owned()));
        self
    }
    fn forbid(mut self, c: &[&str]) -> Job {
        self.forbid_calls.extend(c.iter().map(|s| (*s).to_owned()));
        self
    }
}

struct Outcome {
    name: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    calls: Vec<Call>,
    seconds: f64,
}

impl Outcome {
    fn report(&self) -> String {
        let calls: Vec<String> = self
            .calls
            .iter()
            .map(|c| format!("  [{}] {}", c.verdict, c.line()))
            .collect();
        format!(
            "{}: exit {:?}\n--- calls\n{}\n--- stdout\n{}--- stderr\n{}",
            self.name,
            self.code,
            calls.join("\n"),
            self.stdout,
            self.stderr
        )
    }

    /// Every call the real CLI did not accept, with its message.
    fn rejected(&self) -> Vec<String> {
        self.calls
            .iter()
            .filter(|c| c.verdict != "ok")
            .map(|c| format!("{}: {}\n    {}", c.verdict, c.line(), c.message))
            .collect()
    }
}

fn run_job(job: &Job, az: &Path, python: &Path, cache: &Path) -> Outcome {
    let sb = wrapper_sandbox(&job.name, python);
    prepare_fixtures(&sb);
    // "{sandbox}" in arguments and variables: the job's own folder.
    let here = sb.dir.display().to_string();
    let mut cmd = sb.bash(&job.deploy_dir.join(&job.script));
    cmd.args(job.args.iter().map(|a| a.replace("{sandbox}", &here)))
        .env("REAL_AZ", az)
        .env("REAL_AZ_LOG", sb.path("az-calls.jsonl"))
        .env("REAL_AZ_CACHE", cache)
        .env("AZURE_CONFIG_DIR", sb.path("azure-config"));
    for (k, v) in &job.env {
        cmd.env(k, v.replace("{sandbox}", &here));
    }
    let start = Instant::now();
    let out = cmd.output().expect("start bash");
    Outcome {
        name: job.name.clone(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        calls: read_log(&sb.path("az-calls.jsonl"), python),
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Every sandbox gets the same small fixtures: a package to deploy, rendered
/// policies and starter-pack base files, a CA certificate file.
fn prepare_fixtures(sb: &Sandbox) {
    sb.write("handler.zip", "not really a zip");
    let marked = |id: &str, base: Option<&str>| {
        policy_xml(id, base, TENANT).replacen("?>\n", "?>\n<!-- b2c-authy:managed-policy -->\n", 1)
    };
    // Rendered: our layer and a relying party (marked), and a file the script ignores.
    sb.write(
        "rendered/AuthyExtensions.xml",
        &marked(
            "B2C_1A_AuthyExtensions",
            Some("B2C_1A_TrustFrameworkExtensions"),
        ),
    );
    sb.write(
        "rendered/SignUpOrSigninAuthy.xml",
        &marked("B2C_1A_signup_signin_authy", Some("B2C_1A_AuthyExtensions")),
    );
    sb.write(
        "rendered/TrustFrameworkExtensions.xml",
        &policy_xml(
            "B2C_1A_TrustFrameworkExtensions",
            Some("B2C_1A_TrustFrameworkLocalization"),
            TENANT,
        ),
    );
    // A starter pack for --with-base-policies.
    sb.write(
        "base/TrustFrameworkBase.xml",
        &policy_xml("B2C_1A_TrustFrameworkBase", None, TENANT),
    );
    sb.write(
        "base/TrustFrameworkLocalization.xml",
        &policy_xml(
            "B2C_1A_TrustFrameworkLocalization",
            Some("B2C_1A_TrustFrameworkBase"),
            TENANT,
        ),
    );
    sb.write(
        "base/TrustFrameworkExtensions.xml",
        &policy_xml(
            "B2C_1A_TrustFrameworkExtensions",
            Some("B2C_1A_TrustFrameworkLocalization"),
            TENANT,
        ),
    );
    // A backup for --rollback: the layer saved, the relying party absent before.
    sb.write(
        "backup/manifest.txt",
        &format!("tenant {TENANT}\ntime 20260101T000000Z\npolicy B2C_1A_AuthyExtensions SAVED B2C_1A_AuthyExtensions.xml\npolicy B2C_1A_signup_signin_authy ABSENT\n"),
    );
    sb.write(
        "backup/B2C_1A_AuthyExtensions.xml",
        &marked(
            "B2C_1A_AuthyExtensions",
            Some("B2C_1A_TrustFrameworkExtensions"),
        ),
    );
    sb.write(
        "ca.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    // Users by object id and by sign-in name (az_wrapper.py gives each sign-in name's user
    // the authy id 2002): one set, one unchanged, one replaced with --overwrite.
    sb.write(
        "ids.csv",
        "user,authyId\n6a2b7f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b,1001\no'brien@example.com,2002\nbob_smith,3003\n",
    );
}

/// import-authy-ids.sh's arguments for the fixture ids.csv.
const IMPORT_ARGS: &[&str] = &[
    "--csv",
    "{sandbox}/ids.csv",
    "--tenant",
    TENANT,
    "--extensions-app-client-id",
    "abcdef01-2345-6789-abcd-ef0123456789",
    "--overwrite",
];

/// clear-authy-id.sh's arguments: a user by sign-in name.
const CLEAR_ARGS: &[&str] = &[
    "--tenant",
    TENANT,
    "--extensions-app-client-id",
    "abcdef01-2345-6789-abcd-ef0123456789",
    "--user",
    "o'brien@example.com",
];

/// Runs the jobs PARALLEL at a time; returns their outcomes in job order.
fn run_jobs(jobs: &[Job], az: &Path, python: &Path, cache: &Path) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Mutex<HashMap<usize, Outcome>> = Mutex::new(HashMap::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let outcome = run_job(job, az, python, cache);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(i, outcome);
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    (0..jobs.len())
        .map(|i| results.remove(&i).expect("every job ran"))
        .collect()
}

fn provision_args(plan: &str) -> Vec<&str> {
    vec![
        "--resource-group",
        "rg",
        "--location",
        "westeurope",
        "--function-app",
        "app",
        "--storage-account",
        "appstore",
        "--client-cert-thumbprints",
        THUMBPRINT,
        "--plan-type",
        plan,
    ]
}

fn all_jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for plan in ["premium", "flex", "consumption"] {
        let settings_calls: &[&str] = if plan == "flex" {
            &[
                "resource patch --ids /subscriptions/",
                "resource patch --ids /subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg/providers/Microsoft.Web/sites/app/config/web",
            ]
        } else {
            &[
                "functionapp update --name app --resource-group rg --set httpsOnly=true",
                "functionapp config set --name app --resource-group rg --min-tls-version 1.2 --ftps-state Disabled",
            ]
        };
        let mut create: Vec<&str> = vec!["functionapp create --name app"];
        if plan == "premium" {
            create.push("functionapp plan create --name app-plan");
        }
        // A new app with the key in Key Vault and identity-based storage; its account
        // has a lifecycle policy already.
        let mut args = provision_args(plan);
        args.extend(["--key-vault", "kv", "--identity-based-storage"]);
        jobs.push(
            Job::new(&format!("provision-{plan}-new-key-vault"), "provision.sh", &args)
                .env("AUTHY_API_KEY", "authy-test-key")
                .env("REAL_AZ_PLAN", plan)
                .env("STORAGE_ROLE_WAIT_SECONDS", "0")
                .calls(&[
                    "storage account management-policy show --account-name appstore --resource-group rg --query policy.rules[?name!='b2c-authy-push-limits-expiry'] --output json",
                    "storage account management-policy create --account-name appstore --resource-group rg --policy @",
                    "storage account show --name appstore --resource-group rg --query id --output tsv",
                    "role assignment create --assignee-object-id 22222222-2222-2222-2222-222222222222 --assignee-principal-type ServicePrincipal --role Storage Blob Data Owner --scope /subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/appstore",
                    "functionapp config appsettings list --name app --resource-group rg --query length([?name=='AzureWebJobsStorage']) --output tsv",
                    "functionapp config appsettings delete --name app --resource-group rg --setting-names AzureWebJobsStorage --output none",
                ])
                .output(&[
                    "keeping the other lifecycle rules of storage account appstore",
                    "app reaches storage account appstore with its managed identity",
                ])
                // An app still below TLS 1.2, so that the Flex path patches it.
                .env("REAL_AZ_TLS_BEFORE", "1.0")
                .calls(&create)
                .calls(&[
                    "keyvault create --name kv",
                    "keyvault secret set --vault-name kv",
                    "role assignment create",
                    "functionapp config appsettings set",
                    "functionapp show --name app",
                    "functionapp config show --name app",
                    "rest --method get --uri /subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg/providers/Microsoft.Web/sites/app/config/configreferences/appsettings/AUTHY_API_KEY",
                    "functionapp restart --name app",
                ])
                .calls(settings_calls)
                .output(&[&format!(
                    "provisioned app ({plan} plan): HTTPS only, TLS 1.2, client certificate Required"
                )]),
        );
        // A re-run on the existing app: no Key Vault, every optional setting.
        let mut args = provision_args(plan);
        args.extend([
            "--approval-wait-seconds",
            "7",
            "--approval-poll-interval-ms",
            "500",
            "--authy-approval-ttl-seconds",
            "120",
            "--authy-api-url",
            "https://api.authy.com",
            "--authy-approval-message",
            "Sign in to Contoso",
            "--client-cert-subject",
            "CN=b2c-authy-client",
            "--client-cert-issuer",
            "CN=b2c-authy-client",
            "--client-cert-ca",
            "{sandbox}/ca.pem",
        ]);
        jobs.push(
            Job::new(&format!("provision-{plan}-rerun"), "provision.sh", &args)
                .env("REAL_AZ_PLAN", plan)
                // An account without a lifecycle policy: only ours is written.
                .env("REAL_AZ_NO_LIFECYCLE_POLICY", "1")
                // An app still below TLS 1.2, so that the Flex path patches it.
                .env("REAL_AZ_TLS_BEFORE", "1.0")
                .env("REAL_AZ_APP_EXISTS", "1")
                .calls(&[
                    "functionapp list --resource-group rg",
                    "functionapp config appsettings list --name app",
                    "functionapp config appsettings set",
                ])
                .calls(settings_calls)
                .output(&["keeping the app's current AUTHY_API_KEY"])
                .calls(&["storage account management-policy create --account-name appstore"])
                .forbid(&[
                    "functionapp create",
                    "keyvault",
                    "configreferences",
                    "appsettings delete",
                ]),
        );
        jobs.push(
            Job::new(
                &format!("deploy-code-{plan}"),
                "deploy-code.sh",
                &[
                    "--resource-group",
                    "rg",
                    "--function-app",
                    "app",
                    "--zip",
                    "{sandbox}/handler.zip",
                ],
            )
            .env("REAL_AZ_PLAN", plan)
            .calls(&[
                "functionapp deployment source config-zip --resource-group rg --name app --src",
                "functionapp show --resource-group rg --name app --query",
                "functionapp function keys list --resource-group rg --name app --function-name WaitForAuthyApproval",
            ])
            // The host name came through the query, whatever the shape.
            .output(&[
                "\"AuthyApiBaseUrl\": \"https://app.azurewebsites.net/api\"",
                "https://app.azurewebsites.net/api/Register?code=key%2FRegister%2B%3D",
            ]),
        );
    }
    jobs.push(
        Job::new(
            "client-cert-upload",
            "client-cert.sh",
            &["--out-dir", "{sandbox}/certs", "--upload"],
        )
        .calls(&[
            "rest --method get --uri https://graph.microsoft.com/beta/trustFramework/keySets --query",
            "rest --method post --uri https://graph.microsoft.com/beta/trustFramework/keySets --headers",
            "rest --method post --uri https://graph.microsoft.com/beta/trustFramework/keySets/B2C_1A_RestApiClientCertificate/uploadPkcs12",
        ])
        .output(&["uploaded to policy key B2C_1A_RestApiClientCertificate"]),
    );
    jobs.extend(upload_policies_jobs());
    jobs.push(
        Job::new("import-authy-ids", "import-authy-ids.sh", IMPORT_ARGS)
            .calls(&[
                "rest --method get --uri https://graph.microsoft.com/v1.0/users/6a2b7f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b?$select=id,extension_abcdef0123456789abcdef0123456789_authyId --query",
                "rest --method get --uri https://graph.microsoft.com/v1.0/users?$filter=identities%2Fany%28c%3Ac%2FissuerAssignedId%20eq%20%27o%27%27brien%40example.com%27",
                "rest --method patch --uri https://graph.microsoft.com/v1.0/users/6a2b7f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b --headers Content-Type=application/json --body @",
            ])
            .output(&["): replaced", "set 2, unchanged 1"]),
    );
    // A dry run looks users up too, through the same calls.
    let mut dry_run_args = IMPORT_ARGS.to_vec();
    dry_run_args.push("--dry-run");
    jobs.push(
        Job::new(
            "import-authy-ids-dry-run",
            "import-authy-ids.sh",
            &dry_run_args,
        )
        .calls(&["rest --method get --uri https://graph.microsoft.com/v1.0/users?$filter="])
        .output(&["a real run would: set 2, unchanged 1"])
        .forbid(&["--method patch"]),
    );
    // clear-authy-id.sh: by sign-in name (az_wrapper.py gives the user authy id 2002: the
    // PATCH of null runs), by object id (the user has none: no PATCH), and a dry run.
    jobs.push(
        Job::new("clear-authy-id", "clear-authy-id.sh", CLEAR_ARGS)
            .calls(&[
                "rest --method get --uri https://graph.microsoft.com/v1.0/users?$filter=identities%2Fany%28c%3Ac%2FissuerAssignedId%20eq%20%27o%27%27brien%40example.com%27",
                "rest --method patch --uri https://graph.microsoft.com/v1.0/users/",
            ])
            .output(&["cleared the authy id of o***@example.com ("]),
    );
    jobs.push(
        Job::new(
            "clear-authy-id-none",
            "clear-authy-id.sh",
            &[&CLEAR_ARGS[..4], &["--user", "6a2b7f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b"]].concat(),
        )
        .calls(&["rest --method get --uri https://graph.microsoft.com/v1.0/users/6a2b7f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b?$select=id,extension_abcdef0123456789abcdef0123456789_authyId --query"])
        .output(&["6a2b7f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b has no authy id: nothing to clear"])
        .forbid(&["--method patch"]),
    );
    jobs.push(
        Job::new(
            "clear-authy-id-dry-run",
            "clear-authy-id.sh",
            &[CLEAR_ARGS, &["--dry-run"]].concat(),
        )
        .calls(&["rest --method get --uri https://graph.microsoft.com/v1.0/users?$filter="])
        .output(&["a real run would clear the authy id of o***@example.com ("])
        .forbid(&["--method patch"]),
    );
    // package.sh calls no az: its plan runs through the wrapper with no call.
    jobs.push(Job::new(
        "package-dry-run",
        "package.sh",
        &[
            "--dry-run",
            "--skip-install",
            "--output",
            "{sandbox}/out.zip",
        ],
    ));
    jobs
}

const POLICIES: &str = "https://graph.microsoft.com/beta/trustFramework/policies";

/// upload-policies.sh: an upload over existing policies of ours (GET, backup, PUT), --diff,
/// --rollback (PUT and DELETE), and --with-base-policies into an empty tenant (every GET
/// answers 404).
fn upload_policies_jobs() -> Vec<Job> {
    let get = |id: &str| format!("rest --method get --uri {POLICIES}/{id}/$value --output-file ");
    let put = |id: &str| {
        format!("rest --method put --uri {POLICIES}/{id}/$value --headers Content-Type=application/xml --body @")
    };
    let rendered = [
        "--policies-dir",
        "{sandbox}/rendered",
        "--backup-dir",
        "{sandbox}/backups",
    ];
    let all = "B2C_1A_TrustFrameworkBase B2C_1A_TrustFrameworkLocalization B2C_1A_TrustFrameworkExtensions B2C_1A_AuthyExtensions B2C_1A_signup_signin_authy";
    vec![
        Job::new("upload-policies", "upload-policies.sh", &rendered)
            .calls(&[
                "account show --query tenantId",
                &get("B2C_1A_TrustFrameworkExtensions"),
                &get("B2C_1A_AuthyExtensions"),
                &put("B2C_1A_AuthyExtensions"),
                &put("B2C_1A_signup_signin_authy"),
            ])
            .output(&["uploaded 2 policies", "backed up into"])
            .forbid(&["B2C_1A_TrustFrameworkBase", "--method delete"]),
        Job::new(
            "upload-policies-diff",
            "upload-policies.sh",
            &[&rendered[..], &["--diff"]].concat(),
        )
        .env("REAL_AZ_ABSENT_POLICIES", "B2C_1A_signup_signin_authy")
        .calls(&[&get("B2C_1A_AuthyExtensions")])
        .output(&[
            "/rendered/AuthyExtensions.xml (new)",
            "=== B2C_1A_signup_signin_authy: new policy",
        ])
        .forbid(&["--method put", "--method delete"]),
        Job::new(
            "upload-policies-rollback",
            "upload-policies.sh",
            &[
                "--rollback",
                "{sandbox}/backup",
                "--backup-dir",
                "{sandbox}/backups",
            ],
        )
        .calls(&[
            &get("B2C_1A_signup_signin_authy"),
            &put("B2C_1A_AuthyExtensions"),
            &format!(
                "rest --method delete --uri {POLICIES}/B2C_1A_signup_signin_authy --output none"
            ),
        ])
        .output(&["undo this rollback with"]),
        Job::new(
            "upload-policies-with-base",
            "upload-policies.sh",
            &[&rendered[..], &["--with-base-policies", "{sandbox}/base"]].concat(),
        )
        .env("REAL_AZ_ABSENT_POLICIES", all)
        .calls(&[
            &put("B2C_1A_TrustFrameworkBase"),
            &put("B2C_1A_TrustFrameworkExtensions"),
            &put("B2C_1A_signup_signin_authy"),
        ])
        .output(&["uploaded 5 policies"]),
    ]
}

fn check(outcome: &Outcome, job: &Job) -> Vec<String> {
    let mut problems = Vec::new();
    let rejected = outcome.rejected();
    if !rejected.is_empty() {
        problems.push(format!(
            "{}: the real Azure CLI refused:\n  {}",
            job.name,
            rejected.join("\n  ")
        ));
    }
    if outcome.code != Some(0) {
        problems.push(format!("{}: script failed\n{}", job.name, outcome.report()));
        return problems;
    }
    for want in &job.expect_calls {
        if !outcome
            .calls
            .iter()
            .any(|c| c.argv.join(" ").starts_with(want))
        {
            problems.push(format!(
                "{}: no call starting with 'az {want}'\n{}",
                job.name,
                outcome.report()
            ));
        }
    }
    for not in &job.forbid_calls {
        if let Some(c) = outcome
            .calls
            .iter()
            .find(|c| c.argv.join(" ").contains(not))
        {
            problems.push(format!("{}: unexpected call {}", job.name, c.line()));
        }
    }
    for want in &job.expect_output {
        if !outcome.stdout.contains(want) && !outcome.stderr.contains(want) {
            problems.push(format!(
                "{}: output lacks {want:?}\n{}",
                job.name,
                outcome.report()
            ));
        }
    }
    if job.script == "package.sh" && !outcome.calls.is_empty() {
        problems.push(format!("package.sh called az:\n{}", outcome.report()));
    }
    problems
}

/// A cache of the CLI's verdicts shared by the runs of one test: identical
/// argv (many provision.sh calls do not depend on the plan) reach the CLI once.
fn verdict_cache(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "deploy-real-az-cache-{name}-{}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A new script gets a job above: every script of [`SCRIPTS`] runs through the real CLI
/// (checked also where the real CLI is not installed).
#[test]
fn every_script_has_a_real_cli_job() {
    let jobs = all_jobs();
    for script in SCRIPTS {
        assert!(
            jobs.iter().any(|j| j.script == *script),
            "{script} has no job in real_az.rs all_jobs()"
        );
    }
}

/// The wrapper at least compiles, also where the real CLI is not installed and the tests
/// below skip (compiled in memory: nothing is written beside it).
#[test]
fn the_az_wrapper_is_valid_python() {
    let wrapper = repo_root().join(TEST_DIR).join(AZ_WRAPPER);
    let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sys\ncompile(open(sys.argv[1], encoding='utf-8').read(), sys.argv[1], 'exec')",
        ])
        .arg(&wrapper)
        .output()
    else {
        skip_or_fail("python3 is not installed");
        return;
    };
    assert!(
        out.status.success(),
        "{} does not compile:\n{}",
        wrapper.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_az_call_of_every_script_parses_in_the_real_cli() {
    let Some((az, python)) = real_az() else {
        return;
    };
    let version = Command::new(&python)
        .args([
            "-c",
            "from azure.cli.core import __version__; print(__version__)",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let jobs = all_jobs();
    let cache = verdict_cache("all");
    let start = Instant::now();
    let outcomes = run_jobs(&jobs, &az, &python, &cache);
    let wall = start.elapsed().as_secs_f64();
    let _ = fs::remove_dir_all(&cache);

    let mut problems = Vec::new();
    let (mut real_calls, mut cached_calls, mut cli_seconds, mut slowest) = (0, 0, 0.0, 0.0f64);
    for (outcome, job) in outcomes.iter().zip(&jobs) {
        problems.extend(check(outcome, job));
        for c in &outcome.calls {
            if c.cached {
                cached_calls += 1;
            } else {
                real_calls += 1;
                cli_seconds += c.seconds;
                slowest = slowest.max(c.seconds);
            }
        }
        eprintln!(
            "  {:<34} {:>3} az calls, {:>5.1} s",
            outcome.name,
            outcome.calls.len(),
            outcome.seconds
        );
    }
    eprintln!(
        "real Azure CLI {version}: {} scripts, {real_calls} CLI runs ({cached_calls} more answered from the cache), {:.2} s per run on average, slowest {:.2} s; {:.0} s in all, {PARALLEL} scripts at a time",
        jobs.len(),
        if real_calls > 0 { cli_seconds / real_calls as f64 } else { 0.0 },
        slowest,
        wall
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

/// The check above can fail: copies of the scripts, each with one mistake,
/// are caught by the real CLI (or, for a query that only fails on the
/// result, by the wrapper's evaluation of it with the CLI's jmespath).
#[test]
fn the_real_cli_check_catches_a_wrong_call() {
    let Some((az, python)) = real_az() else {
        return;
    };
    let mutants: [(&str, &str, &str, &str, &str); 13] = [
        (
            "provision.sh",
            "--runtime custom",
            "--runtimee custom",
            "parse-error",
            "unrecognized arguments: --runtimee",
        ),
        (
            "provision.sh",
            "--plan \"$PLAN_NAME\" --os-type Linux",
            "--plan \"$PLAN_NAME\" --os-type Linuxx",
            "parse-error",
            "'Linuxx' is not a valid value for '--os-type'",
        ),
        // The lifecycle rule: a query that is not JMESPath, and a merge that drops the
        // admin's rules (caught by the wrapper's check of the policy file).
        (
            "provision.sh",
            "--query \"policy.rules[?name!='$LIFECYCLE_RULE']\"",
            "--query \"policy.rules[?name!='$LIFECYCLE_RULE'\"",
            "parse-error",
            "invalid jmespath_type value",
        ),
        (
            "provision.sh",
            "[[ \"$other_rules\" =~ [^[:space:]] ]] || other_rules=\"\"",
            "other_rules=\"\"",
            "unexpected",
            "the policy's rules are ['b2c-authy-push-limits-expiry'], expected",
        ),
        // Identity-based storage.
        (
            "provision.sh",
            "--query id --output tsv)\"\n    role_created=0",
            "--query id --output tsvv)\"\n    role_created=0",
            "parse-error",
            "'tsvv' is not a valid value for '--output'",
        ),
        (
            "provision.sh",
            "--setting-names AzureWebJobsStorage",
            "--settings-names AzureWebJobsStorage",
            "parse-error",
            "the following arguments are required: --setting-names",
        ),
        (
            "deploy-code.sh",
            "--query \"not_null(properties.defaultHostName, defaultHostName)\"",
            "--query \"not_null(properties.defaultHostName, defaultHostName\"",
            "parse-error",
            "invalid jmespath_type value",
        ),
        (
            "client-cert.sh",
            "--query \"value[].id\"",
            "--query \"value[?lower(id)=='x'].id\"",
            "query-error",
            "Unknown function: lower()",
        ),
        (
            "import-authy-ids.sh",
            "az rest --method patch",
            "az rest --method pach",
            "parse-error",
            "'pach' is not a valid value for '--method'",
        ),
        (
            "clear-authy-id.sh",
            "az rest --method patch",
            "az rest --method patchh",
            "parse-error",
            "'patchh' is not a valid value for '--method'",
        ),
        // A body Graph would refuse (the wrapper checks it: the signed-out CLI does not).
        (
            "clear-authy-id.sh",
            "printf '{\"%s\":null}\\n'",
            "printf '{\"%s\":\"\"}\\n'",
            "unexpected",
            "neither an authy id nor null",
        ),
        (
            "upload-policies.sh",
            "az rest --method delete",
            "az rest --method remove",
            "parse-error",
            "'remove' is not a valid value for '--method'",
        ),
        (
            "upload-policies.sh",
            "--output-file \"$file\")",
            "--output-files \"$file\")",
            "parse-error",
            "unrecognized arguments: --output-files",
        ),
    ];
    let mut jobs = Vec::new();
    let mut copies = Vec::new();
    for (i, (script, from, to, _, _)) in mutants.iter().enumerate() {
        let copy = Sandbox::empty(&format!("mutant-{i}"));
        let dir = copy.path("deploy");
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(repo_root().join("deploy")).unwrap() {
            let entry = entry.unwrap();
            fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
        let text = fs::read_to_string(dir.join(script)).unwrap();
        assert_eq!(
            text.matches(from).count(),
            1,
            "{script} no longer holds {from:?} once: update this test"
        );
        fs::write(dir.join(script), text.replacen(from, to, 1)).unwrap();
        let mut job = match *script {
            "provision.sh" => {
                let mut args = provision_args("premium");
                args.push("--identity-based-storage");
                Job::new(&format!("mutant-{i}"), script, &args)
                    .env("AUTHY_API_KEY", "authy-test-key")
                    .env("STORAGE_ROLE_WAIT_SECONDS", "0")
            }
            "import-authy-ids.sh" => Job::new(&format!("mutant-{i}"), script, IMPORT_ARGS),
            "clear-authy-id.sh" => Job::new(&format!("mutant-{i}"), script, CLEAR_ARGS),
            "deploy-code.sh" => Job::new(
                &format!("mutant-{i}"),
                script,
                &[
                    "--resource-group",
                    "rg",
                    "--function-app",
                    "app",
                    "--zip",
                    "{sandbox}/handler.zip",
                ],
            ),
            // The rollback reads, restores and deletes: every kind of policy call.
            "upload-policies.sh" => Job::new(
                &format!("mutant-{i}"),
                script,
                &[
                    "--rollback",
                    "{sandbox}/backup",
                    "--backup-dir",
                    "{sandbox}/backups",
                ],
            ),
            _ => Job::new(
                &format!("mutant-{i}"),
                script,
                &["--out-dir", "{sandbox}/certs", "--upload"],
            ),
        };
        job.deploy_dir = dir;
        jobs.push(job);
        copies.push(copy);
    }
    let cache = verdict_cache("mutants");
    let outcomes = run_jobs(&jobs, &az, &python, &cache);
    let _ = fs::remove_dir_all(&cache);
    for (outcome, (script, _, to, verdict, message)) in outcomes.iter().zip(&mutants) {
        assert_ne!(
            outcome.code,
            Some(0),
            "{script} with {to:?} succeeded\n{}",
            outcome.report()
        );
        let caught = outcome
            .calls
            .iter()
            .find(|c| c.verdict != "ok")
            .unwrap_or_else(|| {
                panic!(
                    "{script} with {to:?}: no call was refused\n{}",
                    outcome.report()
                )
            });
        assert_eq!(caught.verdict, *verdict, "{}", outcome.report());
        assert!(
            caught.message.contains(message),
            "{script} with {to:?}: expected {message:?} in {:?}",
            caught.message
        );
        // The script stopped at the refused call.
        assert_eq!(
            outcome.calls.last().map(Call::line),
            Some(caught.line()),
            "{}",
            outcome.report()
        );
    }
}
