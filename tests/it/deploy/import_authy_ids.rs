//! `deploy/import-authy-ids.sh`: what it refuses before writing anything (bad rows, unknown
//! users, different existing authy ids), that it writes only what changes (a second run
//! writes nothing), and how it looks users up in Microsoft Graph.
//!
//! The stub tenant: [`super::graph_users`].

use std::fs;
use std::process::Command;

use super::graph_users::{assert_not_shown, patches, users, ATTRIBUTE, CLIENT_ID};
use super::{assert_no_call, graph_users, run, Sandbox, TENANT};

const ALICE: &str = "11111111-aaaa-4aaa-8aaa-111111111111";
const BOB: &str = "22222222-bbbb-4bbb-8bbb-222222222222";
const CAROL: &str = "33333333-cccc-4ccc-8ccc-333333333333";
const DAN: &str = "44444444-dddd-4ddd-8ddd-444444444444";

/// The tenant: Alice and Dan without an authy id, Bob with 2002, Carol with 3003.
const USERS: &str = "11111111-aaaa-4aaa-8aaa-111111111111\talice@example.com\t
22222222-bbbb-4bbb-8bbb-222222222222\tbob_smith\t2002
33333333-cccc-4ccc-8ccc-333333333333\tcarol@example.org\t3003
44444444-dddd-4ddd-8ddd-444444444444\to'brien@example.com\t
";

fn tenant(name: &str) -> Sandbox {
    graph_users::tenant(name, USERS)
}

/// The script with the tenant and client id flags and `--csv ids.csv`.
fn import(sb: &Sandbox) -> Command {
    graph_users::script(sb, "import-authy-ids.sh", &["--csv", "ids.csv"])
}

#[test]
fn import_sets_missing_ids_and_a_second_run_writes_nothing() {
    let sb = tenant("import");
    // A header, a UTF-8 byte order mark and CRLF line ends, as Excel saves a CSV; an
    // upper-case object id; spaces around fields; an empty line.
    sb.write(
        "ids.csv",
        "\u{feff}user,authyId\r\nalice@example.com,1001\r\n\r\nbob_smith , 2002\r\n44444444-DDDD-4DDD-8DDD-444444444444,4004",
    );
    let out = run(&mut import(&sb));
    out.assert_ok()
        .assert_stderr("ids.csv: 3 user(s)")
        .assert_stderr(&format!("attribute {ATTRIBUTE}, tenant {TENANT}"))
        .assert_stderr(&format!("line 2: a***@example.com ({ALICE}): set"))
        .assert_stderr(&format!("line 5: {DAN}: set"))
        .assert_stderr("set 2, unchanged 1");
    assert_not_shown(&out, &["alice@example.com", "1001", "4004"]);
    let written = patches(&sb);
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(written[0].starts_with(&format!(
        "az rest --method patch --uri https://graph.microsoft.com/v1.0/users/{ALICE} --headers Content-Type=application/json --body @"
    )));
    assert!(written[0].ends_with("--output none"), "{}", written[0]);
    assert!(written[1].contains(&format!("/v1.0/users/{DAN} ")));
    assert_eq!(
        sb.az_file_after(&format!("users/{ALICE} ")),
        format!(r#"{{"{ATTRIBUTE}":"1001"}}"#)
    );
    assert_eq!(
        sb.az_file_after(&format!("users/{DAN} ")),
        format!(r#"{{"{ATTRIBUTE}":"4004"}}"#)
    );
    // Every look-up comes before the first write.
    let calls = sb.az_calls();
    let first_patch = calls
        .iter()
        .position(|c| c.contains("--method patch"))
        .unwrap();
    assert_eq!(first_patch, 3, "{calls:?}");
    assert!(users(&sb).contains(&format!("{ALICE}\talice@example.com\t1001\n")));

    // Idempotent: the second run looks everyone up and writes nothing.
    fs::remove_file(sb.path("az.log")).unwrap();
    let before = users(&sb);
    let out = run(&mut import(&sb));
    out.assert_ok().assert_stderr("set 0, unchanged 3");
    assert_eq!(sb.az_calls().len(), 3, "{:?}", sb.az_calls());
    assert!(patches(&sb).is_empty());
    assert_eq!(users(&sb), before);
}

#[test]
fn import_looks_users_up_by_object_id_or_sign_in_name() {
    let sb = tenant("import-lookup");
    sb.write("ids.csv", &format!("{BOB},2002\nCarol@Example.org,3003\n"));
    run(&mut import(&sb))
        .assert_ok()
        .assert_stderr("set 0, unchanged 2");
    let calls = sb.az_calls();
    assert_eq!(
        calls[0],
        format!(
            r"az rest --method get --uri https://graph.microsoft.com/v1.0/users/{BOB}\?\$select=id\,{ATTRIBUTE} --query \[\[id\,\ {ATTRIBUTE}\ \|\|\ \'\'\]\] --output tsv"
        )
    );
    // identities/any(c:c/issuerAssignedId eq 'Carol@Example.org' and c/issuer eq 'contoso...'),
    // percent-encoded.
    assert_eq!(
        calls[1],
        format!(
            r"az rest --method get --uri https://graph.microsoft.com/v1.0/users\?\$filter=identities%2Fany%28c%3Ac%2FissuerAssignedId%20eq%20%27Carol%40Example.org%27%20and%20c%2Fissuer%20eq%20%27contoso.onmicrosoft.com%27%29\&\$select=id\,{ATTRIBUTE} --query value\[\].\[id\,\ {ATTRIBUTE}\ \|\|\ \'\'\] --output tsv"
        )
    );
}

#[test]
fn import_escapes_a_quote_in_a_sign_in_name() {
    let sb = tenant("import-quote");
    sb.write("ids.csv", "o'brien@example.com,4004\n");
    let out = run(&mut import(&sb));
    out.assert_ok()
        .assert_stderr(&format!("line 1: o***@example.com ({DAN}): set"));
    assert_not_shown(&out, &["o'brien"]);
    // 'o''brien@example.com': the quote doubled inside the OData string, then
    // percent-encoded like every other character that is not unreserved.
    let calls = sb.az_calls();
    assert!(
        calls[0].contains("issuerAssignedId%20eq%20%27o%27%27brien%40example.com%27%20and%20c%2Fissuer%20eq%20%27contoso.onmicrosoft.com%27%29"),
        "{calls:?}"
    );
    assert_eq!(patches(&sb).len(), 1);
    assert!(users(&sb).contains(&format!("{DAN}\to'brien@example.com\t4004")));
}

#[test]
fn import_refuses_a_bad_csv_before_any_call() {
    let sb = tenant("import-bad");
    let lines = [
        /* 1 */ "user,authyId",
        /* 2 */ "alice@example.com,1001",
        /* 3 */ "bob_smith,abc",
        /* 4 */ "carol@example.org,0303",
        /* 5 */ "44444444-dddd-4ddd-8ddd-444444444444,123456789012345678901",
        /* 6 */ "dave@example.com,",
        /* 7 */ ",1234",
        /* 8 */ "erin@example.com,1234,5678",
        /* 9 */ "frank@example.com",
        /* 10 */ "\"grace@example.com\",1234",
        /* 11 */ "heidi@example.com\r,1234",
        /* 12 */ "not an email@example.com,1234",
        /* 13 */ "-ivan,1234",
        /* 14 */ "ALICE@example.com,1001",
        /* 15 */ "judy@example,1234",
        /* 16 */ "11111111-aaaa-4aaa-8aaa-11111111111,1234",
        /* 17 */ "",
        /* 18 */ "12345678901234567890,1",
        /* 19 */ "mallory@example.com,+1234",
        /* 20 */ "user,authyId",
    ];
    sb.write("ids.csv", &(lines.join("\n") + "\n"));
    let out = run(&mut import(&sb));
    out.assert_code(1)
        .assert_stderr("has 15 bad row(s); nothing was looked up or written");
    let not_digits = "authy id is not 1 to 20 digits without a leading zero";
    let not_user = "user is neither an object id (GUID) nor a valid email address or user name";
    for (line, why) in [
        (3, not_digits),
        (4, not_digits),
        (5, not_digits),
        (6, not_digits),
        (7, "empty user"),
        (8, "expected 2 fields 'user,authyId', found 3"),
        (9, "expected 2 fields 'user,authyId', found 1"),
        (10, "double quote in the row"),
        (11, "control character"),
        (12, not_user),
        (13, not_user),
        (14, "user already listed on line 2"),
        (15, not_user),
        (19, not_digits),
        (20, not_digits),
    ] {
        out.assert_stderr(&format!("line {line}: {why}"));
    }
    // Line 16 is not quite an object id, but a valid user name (letters, digits, - and _),
    // as is line 18's: they are looked up like any sign-in name once the file is good.
    assert!(
        !out.stderr.contains("line 2:")
            && !out.stderr.contains("line 16:")
            && !out.stderr.contains("line 18:"),
        "{out}"
    );
    assert_not_shown(&out, &["alice@example.com", "1001"]);
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
    assert_eq!(users(&sb), USERS);
}

#[test]
fn import_refuses_a_file_that_is_not_utf8_text() {
    let sb = tenant("import-utf16");
    // "user,authyId" as Excel's "Unicode text" (UTF-16 little endian) saves it.
    let utf16: Vec<u8> = "\u{feff}user,authyId\r\nalice@example.com,1001\r\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    fs::write(sb.path("ids.csv"), utf16).unwrap();
    run(&mut import(&sb))
        .assert_code(1)
        .assert_stderr("ids.csv holds NUL bytes: save it as UTF-8");
    assert!(sb.az_calls().is_empty());
}

#[test]
fn import_refuses_unknown_users_before_any_write() {
    let sb = tenant("import-unknown");
    sb.write(
        "ids.csv",
        "alice@example.com,1001\n99999999-9999-4999-8999-999999999999,9009\nnobody@example.com,8008\n",
    );
    let out = run(&mut import(&sb));
    out.assert_code(1)
        .assert_stderr("2 row(s) name no single user of the tenant; nothing was written")
        .assert_stderr("line 2: no user 99999999-9999-4999-8999-999999999999 in the tenant")
        .assert_stderr("line 3: no user n***@example.com in the tenant");
    assert_not_shown(&out, &["nobody@"]);
    // Every user was looked up, nobody written.
    assert_eq!(sb.az_calls().len(), 3, "{:?}", sb.az_calls());
    assert!(patches(&sb).is_empty());
    assert_eq!(users(&sb), USERS);
}

#[test]
fn import_refuses_one_user_listed_twice_under_two_names() {
    let sb = tenant("import-same-user");
    sb.write(
        "ids.csv",
        &format!("alice@example.com,1001\n{ALICE},1001\n"),
    );
    run(&mut import(&sb))
        .assert_code(1)
        .assert_stderr(&format!("line 2: same user ({ALICE}) as line 1"));
    assert!(patches(&sb).is_empty());
}

#[test]
fn import_dry_run_looks_up_and_writes_nothing() {
    let sb = tenant("import-dry");
    sb.write("ids.csv", "alice@example.com,1001\nbob_smith,2002\n");
    let out = run(import(&sb).arg("--dry-run"));
    out.assert_ok()
        .assert_stderr(&format!("line 1: a***@example.com ({ALICE}): would be set"))
        .assert_stderr("dry run, nothing was written; a real run would: set 1, unchanged 1")
        .assert_stdout(&format!(
            "+ az rest --method patch --uri https://graph.microsoft.com/v1.0/users/{ALICE} "
        ));
    // The look-ups ran (a dry run reports what would change), the write did not.
    assert_eq!(sb.az_calls().len(), 2, "{:?}", sb.az_calls());
    assert_no_call(&sb.az_calls(), "--method patch");
    assert_eq!(users(&sb), USERS);
}

#[test]
fn import_refuses_to_replace_a_different_id_without_overwrite() {
    let sb = tenant("import-overwrite");
    sb.write(
        "ids.csv",
        "alice@example.com,1001\nbob_smith,2999\ncarol@example.org,3003\n",
    );
    let out = run(&mut import(&sb));
    out.assert_code(1)
        .assert_stderr("refusing 1 row(s) whose user already has a different authy id")
        .assert_stderr(&format!(
            "line 2: b*** ({BOB}) already has a different authy id"
        ))
        .assert_stderr("nothing was written (set 0, unchanged 1, refused 1)");
    assert_not_shown(&out, &["2002", "2999"]);
    assert!(patches(&sb).is_empty(), "{:?}", patches(&sb));
    assert_eq!(users(&sb), USERS);

    // A dry run reports the same refusal.
    fs::remove_file(sb.path("az.log")).unwrap();
    run(import(&sb).arg("--dry-run"))
        .assert_code(1)
        .assert_stderr("a real run would: set 1, unchanged 1, refused 1");

    // --overwrite replaces it, and writes the rest.
    fs::remove_file(sb.path("az.log")).unwrap();
    run(import(&sb).arg("--overwrite"))
        .assert_ok()
        .assert_stderr(&format!("line 2: b*** ({BOB}): replaced"))
        .assert_stderr("set 2, unchanged 1");
    assert_eq!(
        sb.az_file_after(&format!("users/{BOB} ")),
        format!(r#"{{"{ATTRIBUTE}":"2999"}}"#)
    );
    assert!(users(&sb).contains(&format!("{BOB}\tbob_smith\t2999\n")));
    // Carol already had hers: left alone.
    assert_no_call(
        &sb.az_calls(),
        &format!("patch --uri https://graph.microsoft.com/v1.0/users/{CAROL}"),
    );
}

#[test]
fn import_stops_at_a_failed_write() {
    let sb = tenant("import-fail");
    sb.write("ids.csv", &format!("alice@example.com,1001\n{DAN},4004\n"));
    run(import(&sb).env(
        "AZ_STUB_FAIL_ON",
        format!("patch --uri https://graph.microsoft.com/v1.0/users/{ALICE}"),
    ))
    .assert_code(1)
    .assert_stderr("writing the authy id of line 1")
    .assert_stderr("failed after 0 write(s); run the script again")
    .assert_stderr("User.ReadWrite.All");
    assert_eq!(patches(&sb).len(), 1);
    assert_eq!(users(&sb), USERS);
}

#[test]
fn import_takes_the_tenant_and_client_id_from_an_environment() {
    let sb = tenant("import-env");
    sb.write("ids.csv", "alice@example.com,1001\n");
    let settings = |client_id: &str| {
        format!(
            r#"{{"Environments": [
  {{"Name": "Other", "Tenant": "other.onmicrosoft.com", "PolicySettings": {{"B2cExtensionsAppClientId": "55555555-5555-4555-8555-555555555555"}}}},
  {{"Name": "Live", "Tenant": "{TENANT}", "PolicySettings": {{"B2cExtensionsAppClientId": "{client_id}"}}}}
]}}"#
        )
    };
    sb.write("settings.json", &settings(CLIENT_ID));
    let env_import = |sb: &Sandbox| {
        let mut cmd = sb.command("import-authy-ids.sh");
        cmd.env("AZ_STUB_USERS", sb.path("users.tsv")).args([
            "--environment",
            "Live",
            "--settings",
            "settings.json",
            "--csv",
            "ids.csv",
        ]);
        cmd
    };
    run(&mut env_import(&sb))
        .assert_ok()
        .assert_stderr(&format!("attribute {ATTRIBUTE}, tenant {TENANT}"));
    assert!(sb.az_calls()[0].contains("c%2Fissuer%20eq%20%27contoso.onmicrosoft.com%27"));

    // The example settings' placeholder is not a b2c-extensions-app.
    sb.write(
        "settings.json",
        &settings("00000000-0000-0000-0000-000000000003"),
    );
    run(&mut env_import(&sb))
        .assert_code(1)
        .assert_stderr("is the example placeholder");
    run(import(&sb).args(["--extensions-app-client-id", "not-a-guid"]))
        .assert_code(1)
        .assert_stderr("is not an application (client) id");
    run(import(&sb).args(["--tenant", "contoso.onmicrosoft.com') or (1 eq 1"]))
        .assert_code(1)
        .assert_stderr("is not a domain name");
    run(sb.command("import-authy-ids.sh").args([
        "--environment",
        "Nowhere",
        "--settings",
        "settings.json",
        "--csv",
        "ids.csv",
    ]))
    .assert_code(1)
    .assert_stderr("no environment named 'Nowhere'");
}

#[test]
fn import_stops_at_a_failed_look_up_before_any_write() {
    let sb = tenant("import-lookup-fail");
    sb.write("ids.csv", &format!("{ALICE},1001\nbob_smith,2999\n"));
    run(import(&sb).env("AZ_STUB_FAIL_ON", "bob_smith"))
        .assert_code(1)
        .assert_stderr("stub refused: bob_smith")
        .assert_stderr("looking up the user of line 2 failed")
        .assert_stderr("nothing was written")
        .assert_stderr("User.Read.All");
    assert_eq!(sb.az_calls().len(), 2, "{:?}", sb.az_calls());
    assert!(patches(&sb).is_empty());
}
