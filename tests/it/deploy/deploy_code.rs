//! `deploy/deploy-code.sh`: the zip deployment and the function URLs and keys it prints.

use std::process::Command;

use super::{assert_in_order, assert_no_call, run, Sandbox};

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
