//! `deploy/clear-authy-id.sh`: how it finds the user (object id or sign-in name), that it
//! clears the authy id with a Graph PATCH of `null`, that a second run (or a user without an
//! authy id) writes nothing and succeeds, and what it refuses before writing: an unknown
//! user, a sign-in name more than one user has, a `--user` that is neither.
//!
//! The stub tenant ([`super::graph_users`]): a PATCH of `null` empties a user's third field.

use std::fs;
use std::process::Command;

use super::graph_users::{assert_not_shown, patches, users, ATTRIBUTE, CLIENT_ID};
use super::{assert_no_call, graph_users, run, Sandbox, TENANT};

const ALICE: &str = "11111111-aaaa-4aaa-8aaa-111111111111";
const BOB: &str = "22222222-bbbb-4bbb-8bbb-222222222222";
const CAROL: &str = "33333333-cccc-4ccc-8ccc-333333333333";
const CAROL_TOO: &str = "55555555-eeee-4eee-8eee-555555555555";

/// The tenant: Alice with authy id 1001, Bob without one, and two users with the sign-in
/// name carol@example.org (one per identity issuer would be the rule; the tenant's data need
/// not follow it).
const USERS: &str = "11111111-aaaa-4aaa-8aaa-111111111111\talice@example.com\t1001
22222222-bbbb-4bbb-8bbb-222222222222\tbob_smith\t
33333333-cccc-4ccc-8ccc-333333333333\tcarol@example.org\t3003
55555555-eeee-4eee-8eee-555555555555\tcarol@example.org\t5005
";

fn tenant(name: &str) -> Sandbox {
    graph_users::tenant(name, USERS)
}

/// The script with the tenant and client id flags and `--user USER`.
fn clear(sb: &Sandbox, user: &str) -> Command {
    graph_users::script(sb, "clear-authy-id.sh", &["--user", user])
}

#[test]
fn clear_by_sign_in_name_patches_null_and_a_second_run_writes_nothing() {
    let sb = tenant("clear");
    // Any case, spaces around it: sign-in names are case-insensitive.
    let out = run(&mut clear(&sb, " Alice@Example.com "));
    out.assert_ok()
        .assert_stderr(&format!(
            "user A***@Example.com; attribute {ATTRIBUTE}, tenant {TENANT}"
        ))
        .assert_stderr(&format!(
            "cleared the authy id of A***@Example.com ({ALICE}): they enrol a new phone at their next sign-in"
        ));
    assert_not_shown(&out, &["alice@", "Alice@", "1001"]);
    let calls = sb.az_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    // The look-up by sign-in name, then the write.
    assert!(
        calls[0].starts_with(r"az rest --method get --uri https://graph.microsoft.com/v1.0/users\?\$filter=identities%2Fany%28c%3Ac%2FissuerAssignedId%20eq%20%27Alice%40Example.com%27%20and%20c%2Fissuer%20eq%20%27contoso.onmicrosoft.com%27%29"),
        "{calls:?}"
    );
    assert!(
        calls[1].starts_with(&format!(
            "az rest --method patch --uri https://graph.microsoft.com/v1.0/users/{ALICE} --headers Content-Type=application/json --body @"
        )),
        "{calls:?}"
    );
    assert!(calls[1].ends_with("--output none"), "{}", calls[1]);
    // Graph removes a directory extension's value when it is set to null.
    assert_eq!(
        sb.az_file_after(&format!("users/{ALICE} ")),
        format!(r#"{{"{ATTRIBUTE}":null}}"#)
    );
    assert!(users(&sb).contains(&format!("{ALICE}\talice@example.com\t\n")));
    // Nobody else changed.
    assert_eq!(
        users(&sb).replacen(&format!("{ALICE}\talice@example.com\t\n"), "", 1),
        USERS.replacen(&format!("{ALICE}\talice@example.com\t1001\n"), "", 1)
    );

    // Idempotent: the second run finds no authy id, writes nothing, and succeeds.
    fs::remove_file(sb.path("az.log")).unwrap();
    run(&mut clear(&sb, "alice@example.com"))
        .assert_ok()
        .assert_stderr(&format!(
            "a***@example.com ({ALICE}) has no authy id: nothing to clear"
        ));
    assert_eq!(sb.az_calls().len(), 1, "{:?}", sb.az_calls());
    assert!(patches(&sb).is_empty());
}

#[test]
fn clear_by_object_id() {
    let sb = tenant("clear-id");
    let out = run(&mut clear(&sb, &ALICE.to_uppercase()));
    out.assert_ok()
        .assert_stderr(&format!("cleared the authy id of {ALICE}:"));
    assert_not_shown(&out, &["1001"]);
    let calls = sb.az_calls();
    assert_eq!(
        calls[0],
        format!(
            r"az rest --method get --uri https://graph.microsoft.com/v1.0/users/{ALICE}\?\$select=id\,{ATTRIBUTE} --query \[\[id\,\ {ATTRIBUTE}\ \|\|\ \'\'\]\] --output tsv"
        )
    );
    assert_eq!(patches(&sb).len(), 1);
    assert!(users(&sb).contains(&format!("{ALICE}\talice@example.com\t\n")));

    // A user who never enrolled: nothing to do, success.
    fs::remove_file(sb.path("az.log")).unwrap();
    run(&mut clear(&sb, BOB))
        .assert_ok()
        .assert_stderr(&format!("{BOB} has no authy id: nothing to clear"));
    assert!(patches(&sb).is_empty());
}

#[test]
fn clear_dry_run_looks_up_and_writes_nothing() {
    let sb = tenant("clear-dry");
    let out = run(clear(&sb, "alice@example.com").arg("--dry-run"));
    out.assert_ok()
        .assert_stderr(&format!(
            "dry run, nothing was written; a real run would clear the authy id of a***@example.com ({ALICE})"
        ))
        .assert_stdout(&format!(
            "+ az rest --method patch --uri https://graph.microsoft.com/v1.0/users/{ALICE} --headers Content-Type=application/json --body @"
        ));
    // The look-up ran (a dry run reports what would change), the write did not.
    assert_eq!(sb.az_calls().len(), 1, "{:?}", sb.az_calls());
    assert_no_call(&sb.az_calls(), "--method patch");
    assert_eq!(users(&sb), USERS);
}

#[test]
fn clear_refuses_an_unknown_user() {
    let sb = tenant("clear-unknown");
    let out = run(&mut clear(&sb, "nobody@example.com"));
    out.assert_code(1).assert_stderr(&format!(
        "no user n***@example.com in tenant {TENANT}; nothing was written"
    ));
    assert_not_shown(&out, &["nobody@"]);
    let unknown = "99999999-9999-4999-8999-999999999999";
    run(&mut clear(&sb, unknown))
        .assert_code(1)
        .assert_stderr(&format!("no user {unknown} in tenant"));
    assert_eq!(sb.az_calls().len(), 2, "{:?}", sb.az_calls());
    assert!(patches(&sb).is_empty());
    assert_eq!(users(&sb), USERS);
}

#[test]
fn clear_refuses_a_sign_in_name_of_two_users() {
    let sb = tenant("clear-ambiguous");
    let out = run(&mut clear(&sb, "carol@example.org"));
    out.assert_code(1)
        .assert_stderr("2 users have the sign-in name c***@example.org; nothing was written")
        .assert_stderr("with --user set to the object id of the right one")
        .assert_stderr(&format!("  {CAROL}\n"))
        .assert_stderr(&format!("  {CAROL_TOO}\n"));
    assert_not_shown(&out, &["carol@", "3003", "5005"]);
    assert!(patches(&sb).is_empty());
    // By object id, one of them.
    run(&mut clear(&sb, CAROL_TOO)).assert_ok();
    assert_eq!(
        users(&sb),
        USERS.replace(
            &format!("{CAROL_TOO}\tcarol@example.org\t5005"),
            &format!("{CAROL_TOO}\tcarol@example.org\t")
        )
    );
}

#[test]
fn clear_refuses_a_user_that_is_neither_before_any_call() {
    let sb = tenant("clear-bad");
    for bad in [
        "not an email@example.com",
        "-ivan",
        "judy@example",
        "o'brien@example.com\"",
        "mallory@example.com,1234",
        "",
    ] {
        let out = run(&mut clear(&sb, bad));
        if bad.is_empty() {
            out.assert_code(2).assert_stderr("--user (or B2C_USER)");
        } else {
            out.assert_code(1).assert_stderr(
                "--user is neither an object id (GUID) nor a valid email address or user name",
            );
            // The value is not echoed: it may be someone's sign-in name.
            assert_not_shown(&out, &[bad]);
        }
    }
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
}

#[test]
fn clear_stops_at_a_failed_look_up_or_write() {
    let sb = tenant("clear-fail");
    run(clear(&sb, "bob_smith").env("AZ_STUB_FAIL_ON", "bob_smith"))
        .assert_code(1)
        .assert_stderr("stub refused: bob_smith")
        .assert_stderr("looking up b*** failed")
        .assert_stderr("nothing was written")
        .assert_stderr("User.Read.All");
    assert!(patches(&sb).is_empty());

    fs::remove_file(sb.path("az.log")).unwrap();
    run(clear(&sb, ALICE).env("AZ_STUB_FAIL_ON", "--method patch"))
        .assert_code(1)
        .assert_stderr(&format!("clearing the authy id of {ALICE} failed"))
        .assert_stderr("User.ReadWrite.All");
    assert_eq!(patches(&sb).len(), 1);
    assert_eq!(users(&sb), USERS);
}

#[test]
fn clear_takes_the_tenant_and_client_id_from_an_environment() {
    let sb = tenant("clear-env");
    sb.write(
        "settings.json",
        &format!(
            r#"{{"Environments": [
  {{"Name": "Live", "Tenant": "{TENANT}", "PolicySettings": {{"B2cExtensionsAppClientId": "{CLIENT_ID}"}}}}
]}}"#
        ),
    );
    let env_clear = |sb: &Sandbox, environment: &str| {
        let mut cmd = sb.command("clear-authy-id.sh");
        cmd.env("AZ_STUB_USERS", sb.path("users.tsv")).args([
            "--environment",
            environment,
            "--settings",
            "settings.json",
            "--user",
            "alice@example.com",
        ]);
        cmd
    };
    run(&mut env_clear(&sb, "Live"))
        .assert_ok()
        .assert_stderr(&format!("attribute {ATTRIBUTE}, tenant {TENANT}"));
    assert!(sb.az_calls()[0].contains("c%2Fissuer%20eq%20%27contoso.onmicrosoft.com%27"));
    run(&mut env_clear(&sb, "Nowhere"))
        .assert_code(1)
        .assert_stderr("clear-authy-id.sh: error: no environment named 'Nowhere'");
    run(clear(&sb, ALICE).args(["--tenant", "contoso.onmicrosoft.com') or (1 eq 1"]))
        .assert_code(1)
        .assert_stderr("is not a domain name");
    run(clear(&sb, ALICE).args([
        "--extensions-app-client-id",
        "00000000-0000-0000-0000-000000000003",
    ]))
    .assert_code(1)
    .assert_stderr("is the example placeholder");
}
