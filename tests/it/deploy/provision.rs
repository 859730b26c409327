//! `deploy/provision.sh`: the resources, settings and checks it asks `az` for, per plan type,
//! on a new app and on a re-run; that its range checks are the handler's own.

use std::fs;
use std::process::Command;

use super::{assert_in_order, assert_no_call, repo_root, run, Sandbox, THUMBPRINT};

const AUTHY_KEY: &str = "authy-test-key-3f9c2b";

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
        // 1 + ceil(120 / 5) = 25 calls per approval request, 3 requests a page (the burst
        // limit): the wait page needs 3 × 25 + 6.
        .assert_stderr("one approval request takes up to 25 calls and a wait page up to 3 requests: render the policies with AuthyWaitRetryLimit 81 or more");
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
            "AUTHY_APPROVAL_TTL_SECONDS",
            "PUSH_LIMIT_BURST_COUNT",
            "PUSH_LIMIT_BURST_WINDOW_SECONDS",
            "PUSH_LIMIT_DAILY_COUNT",
            "PUSH_LIMIT_DAILY_WINDOW_SECONDS",
            "PUSH_PAUSE_AFTER_DENIAL_SECONDS",
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
            &["--push-limit-daily-count", "100001"],
            "--push-limit-daily-count must be a whole number of pushes from 1 to 100000, not '100001'",
        ),
        (&["--push-limit-burst-count", "0"], "from 1 to 100000, not '0'"),
        (
            &["--push-limits-on-store-failure", "fail"],
            "--push-limits-on-store-failure must be open or closed, not 'fail'",
        ),
        // The lifecycle rule must outlive the longest window by a day.
        (
            &["--push-limit-daily-window-seconds", "604800"],
            "--push-limits-expiry-days 7 would delete push-limits state that a 604800s window still reads: give at least 8 days",
        ),
        (
            &["--push-limit-daily-window-seconds", "172801", "--push-limits-expiry-days", "3"],
            "--push-limits-expiry-days 3 would delete push-limits state that a 172801s window still reads: give at least 4 days",
        ),
        (
            &["--authy-send-install-link-via-sms", "yes"],
            "--authy-send-install-link-via-sms must be true or false, not 'yes'",
        ),
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
        .args(["--authy-send-install-link-via-sms", "False"])
        .args(["--push-limit-burst-count", "5"])
        .args(["--push-limit-burst-window-seconds", "300"])
        .args(["--push-limit-daily-count", "20"])
        .args(["--push-limit-daily-window-seconds", "43200"])
        .args(["--push-pause-after-denial-seconds", "0"])
        .args(["--push-limits-on-store-failure", "Closed"])
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
        r#""AUTHY_SEND_INSTALL_LINK_VIA_SMS": "False""#.to_owned(),
        r#""PUSH_LIMIT_BURST_COUNT": "5""#.to_owned(),
        r#""PUSH_LIMIT_BURST_WINDOW_SECONDS": "300""#.to_owned(),
        r#""PUSH_LIMIT_DAILY_COUNT": "20""#.to_owned(),
        r#""PUSH_LIMIT_DAILY_WINDOW_SECONDS": "43200""#.to_owned(),
        r#""PUSH_PAUSE_AFTER_DENIAL_SECONDS": "0""#.to_owned(),
        r#""PUSH_LIMITS_ON_STORE_FAILURE": "Closed""#.to_owned(),
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
    run(provision(&sb)
        .args(["--key-vault", "kv"])
        .env_remove("AUTHY_API_KEY")
        .env("AZ_STUB_APP_COUNT", "1")
        .env("AZ_STUB_KV_COUNT", "1")
        // Every role assignment listed as present.
        .env("AZ_STUB_ROLE_COUNT", "1"))
    .assert_ok();
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

/// The lifecycle rule that lets old push-limits state expire: written after the storage
/// account exists, before the app; it names the container the handler uses.
#[test]
fn provision_lets_old_push_limits_state_expire() {
    let sb = Sandbox::new("provision-lifecycle");
    run(&mut provision(&sb)).assert_ok();
    let calls = sb.az_calls();
    assert_in_order(
        &calls,
        &[
            "az storage account create --name appstore",
            "az storage account management-policy show --account-name appstore --resource-group rg --query policy.rules\\[\\?name\\!=\\'b2c-authy-push-limits-expiry\\'\\] --output json",
            "az storage account management-policy create --account-name appstore --resource-group rg --policy @",
            "az functionapp create --name app",
        ],
    );
    let policy = sb.az_file_after("management-policy create");
    let compact: String = policy.split_whitespace().collect();
    for expected in [
        r#""name":"b2c-authy-push-limits-expiry""#,
        r#""enabled":true"#,
        r#""type":"Lifecycle""#,
        r#""baseBlob":{"delete":{"daysAfterModificationGreaterThan":7}}"#,
        r#""filters":{"blobTypes":["blockBlob"],"prefixMatch":["b2c-authy-push-limits/"]}"#,
    ] {
        assert!(
            compact.contains(expected),
            "policy lacks {expected}:\n{policy}"
        );
    }
    // Only our rule: the account had no policy.
    assert_eq!(compact.matches(r#""name":"#).count(), 1, "{policy}");
    // Not given: the handler's default container, no setting written.
    assert!(!sb
        .az_file_after("appsettings set")
        .contains("PUSH_LIMITS_CONTAINER"));

    // A container and an age of our own: the rule follows them, the setting is written.
    let sb = Sandbox::new("provision-lifecycle-custom");
    run(provision(&sb).args([
        "--push-limits-container",
        "contoso-limits",
        "--push-limits-expiry-days",
        "02",
    ]))
    .assert_ok();
    let compact: String = sb
        .az_file_after("management-policy create")
        .split_whitespace()
        .collect();
    assert!(
        compact.contains(r#""daysAfterModificationGreaterThan":2}"#),
        "{compact}"
    );
    assert!(
        compact.contains(r#""prefixMatch":["contoso-limits/"]"#),
        "{compact}"
    );
    assert!(sb
        .az_file_after("appsettings set")
        .contains(r#""PUSH_LIMITS_CONTAINER": "contoso-limits""#));
}

/// The account's management policy holds the admin's rules too, and `create` replaces it
/// whole: they are written back beside ours (and an older version of ours is replaced).
#[test]
fn provision_keeps_the_accounts_other_lifecycle_rules() {
    let sb = Sandbox::new("provision-lifecycle-merge");
    let admin_rules = r#"[
  {
    "definition": {"actions": {"baseBlob": {"tierToCool": {"daysAfterModificationGreaterThan": 30}}},
                   "filters": {"blobTypes": ["blockBlob"], "prefixMatch": ["logs/"]}},
    "enabled": true,
    "name": "cool-old-logs",
    "type": "Lifecycle"
  },
  {
    "definition": {"actions": {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": 365}}},
                   "filters": {"blobTypes": ["blockBlob"]}},
    "enabled": false,
    "name": "delete-year-old",
    "type": "Lifecycle"
  }
]"#;
    run(provision(&sb).env("AZ_STUB_LIFECYCLE_RULES", admin_rules))
        .assert_ok()
        .assert_stderr("keeping the other lifecycle rules of storage account appstore");
    let policy = sb.az_file_after("management-policy create");
    let compact: String = policy.split_whitespace().collect();
    assert!(
        compact.starts_with(r#"{"rules":[{"enabled":true,"name":"b2c-authy-push-limits-expiry""#),
        "{policy}"
    );
    let admin: String = admin_rules.split_whitespace().collect();
    let admin = &admin[1..admin.len() - 1];
    assert!(
        compact.ends_with(&format!(",{admin}]}}")),
        "the admin's rules, as they were:\n{policy}"
    );

    // An empty list of other rules (a policy with only ours): only ours.
    let sb = Sandbox::new("provision-lifecycle-only-ours");
    run(provision(&sb).env("AZ_STUB_LIFECYCLE_RULES", "[]")).assert_ok();
    let compact: String = sb
        .az_file_after("management-policy create")
        .split_whitespace()
        .collect();
    assert!(compact.ends_with("}}}]}"), "{compact}");
    assert_eq!(compact.matches(r#""name":"#).count(), 1, "{compact}");
}

/// A policy that cannot be read (not "no policy": say, no permission) stops the script
/// before it could replace the admin's rules with ours alone.
#[test]
fn provision_stops_when_the_lifecycle_policy_cannot_be_read() {
    let sb = Sandbox::new("provision-lifecycle-denied");
    run(provision(&sb).env("AZ_STUB_FAIL_ON", "management-policy show"))
        .assert_failed()
        .assert_stderr("ERROR: (AuthorizationFailed) stub refused: management-policy show")
        .assert_stderr(
            "could not read the lifecycle management policy of storage account appstore",
        );
    let calls = sb.az_calls();
    assert_no_call(&calls, "management-policy create");
    assert_no_call(&calls, "functionapp create");
}

#[test]
fn provision_rejects_bad_push_limits_storage_options() {
    let sb = Sandbox::new("provision-lifecycle-invalid");
    for (args, message) in [
        (
            &["--push-limits-expiry-days", "1"][..],
            "--push-limits-expiry-days must be a whole number of days from 2 to 3650, not '1'",
        ),
        (
            &["--push-limits-expiry-days", "3651"],
            "from 2 to 3650, not '3651'",
        ),
        (
            &["--push-limits-expiry-days", "1.5"],
            "from 2 to 3650, not '1.5'",
        ),
        (&["--push-limits-expiry-days", ""], "from 2 to 3650, not ''"),
        (
            &["--push-limits-container", "Limits"],
            "--push-limits-container must be a blob container name",
        ),
        (&["--push-limits-container", "ab"], "not 'ab'"),
        (&["--push-limits-container", "a--b"], "not 'a--b'"),
        (&["--push-limits-container", "-ab"], "not '-ab'"),
        (&["--push-limits-container", "ab-"], "not 'ab-'"),
        (
            &["--push-limits-container", &"a".repeat(64)],
            "must be a blob container name",
        ),
    ] {
        run(provision(&sb).args(args))
            .assert_code(1)
            .assert_stderr(message);
    }
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
    let sb = Sandbox::new("provision-lifecycle-longest");
    run(provision(&sb).args(["--push-limits-container", &"a".repeat(63)])).assert_ok();
    // Exactly a day beyond the longest window: accepted.
    let sb = Sandbox::new("provision-lifecycle-window");
    run(provision(&sb).args([
        "--push-pause-after-denial-seconds",
        "86400",
        "--push-limit-daily-window-seconds",
        "172800",
        "--push-limits-expiry-days",
        "3",
    ]))
    .assert_ok();
}

/// `--identity-based-storage`: the role first, then the identity-based setting beside the
/// connection string, and only then the connection string goes.
#[test]
fn provision_switches_to_identity_based_storage_in_a_safe_order() {
    let sb = Sandbox::new("provision-identity-storage");
    let storage_id =
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/appstore";
    let out = run(provision(&sb)
        .arg("--identity-based-storage")
        .env("STORAGE_ROLE_WAIT_SECONDS", "0"));
    out.assert_ok()
        .assert_stderr("waiting 0s for the new Storage Blob Data Owner role of app to apply")
        .assert_stderr("app reaches storage account appstore with its managed identity");
    let calls = sb.az_calls();
    assert_in_order(
        &calls,
        &[
            "az functionapp create --name app",
            "az functionapp identity assign --name app",
            "az storage account show --name appstore --resource-group rg --query id --output tsv",
            &format!("az role assignment list --scope {storage_id} --query length\\(\\[\\?principalId==\\'22222222-2222-2222-2222-222222222222\\'\\ \\&\\&\\ roleDefinitionName==\\'Storage\\ Blob\\ Data\\ Owner\\'\\]\\)"),
            &format!("az role assignment create --assignee-object-id 22222222-2222-2222-2222-222222222222 --assignee-principal-type ServicePrincipal --role Storage\\ Blob\\ Data\\ Owner --scope {storage_id}"),
            "az functionapp config appsettings set --name app",
            "az functionapp config appsettings list --name app --resource-group rg --query length\\(\\[\\?name==\\'AzureWebJobsStorage\\'\\]\\) --output tsv",
            "az functionapp config appsettings delete --name app --resource-group rg --setting-names AzureWebJobsStorage --output none",
        ],
    );
    let settings = sb.az_file_after("appsettings set");
    assert!(
        settings.contains(r#""AzureWebJobsStorage__accountName": "appstore""#),
        "{settings}"
    );
    // A system-assigned identity: no __credential or __clientId, and the connection
    // string is never written.
    for absent in ["__credential", "__clientId", r#""AzureWebJobsStorage":"#] {
        assert!(!settings.contains(absent), "{absent}: {settings}");
    }

    // Re-run: the role is there and the connection string already gone: nothing to do.
    let sb = Sandbox::new("provision-identity-storage-rerun");
    run(provision(&sb)
        .arg("--identity-based-storage")
        .env_remove("AUTHY_API_KEY")
        .env("AZ_STUB_APP_COUNT", "1")
        .env("AZ_STUB_PLAN_COUNT", "1")
        .env("AZ_STUB_KEY_STATE", "1|0")
        .env("AZ_STUB_ROLE_COUNT", "1")
        .env("AZ_STUB_CONNECTION_COUNT", "0"))
    .assert_ok()
    .assert_stderr("app already reaches its storage without a connection string");
    let calls = sb.az_calls();
    assert_no_call(&calls, "role assignment create");
    assert_no_call(&calls, "appsettings delete");

    // The role exists from an earlier run, the connection string is still there: it goes
    // at once, without the wait for a new role.
    let sb = Sandbox::new("provision-identity-storage-old-role");
    let out = run(provision(&sb)
        .arg("--identity-based-storage")
        .env("AZ_STUB_ROLE_COUNT", "1")
        .env("STORAGE_ROLE_WAIT_SECONDS", "3600"));
    out.assert_ok();
    assert!(!out.stderr.contains("waiting"), "{out}");
    assert_in_order(&sb.az_calls(), &["appsettings set", "appsettings delete"]);

    // The role cannot be created: the connection string stays.
    let sb = Sandbox::new("provision-identity-storage-denied");
    run(provision(&sb)
        .arg("--identity-based-storage")
        .env("AZ_STUB_FAIL_ON", "Storage Blob Data Owner --scope"))
    .assert_failed();
    assert_no_call(&sb.az_calls(), "appsettings delete");
}

/// Without `--identity-based-storage` the storage connection is left as it is.
#[test]
fn provision_leaves_the_storage_connection_alone_by_default() {
    let sb = Sandbox::new("provision-connection-string");
    run(&mut provision(&sb)).assert_ok();
    let calls = sb.az_calls();
    for pattern in [
        "Storage Blob Data Owner",
        "appsettings delete",
        "storage account show",
    ] {
        assert_no_call(&calls, pattern);
    }
    assert!(!sb
        .az_file_after("appsettings set")
        .contains("AzureWebJobsStorage"));
}
