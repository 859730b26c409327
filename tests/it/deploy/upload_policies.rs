//! `deploy/upload-policies.sh`: it uploads only our marked policies, in chain order, after
//! checking that the tenant has the policy our layer builds on and backing up everything it
//! overwrites; `--diff` uploads nothing; foreign policies are refused without `--force`;
//! `--rollback` restores a backup; `--with-base-policies` adds the starter pack for an empty
//! tenant.
//!
//! The fixtures are small rendered-looking policies (PolicyId, BasePolicy, the marker) in the
//! sandbox, not `policies/`; the stub `az` keeps "the tenant" in the folder `tenant/`
//! (`AZ_STUB_POLICIES`): GET answers its files or 404, PUT and DELETE change it.

use std::fs;
use std::path::{Path, PathBuf};

use super::{assert_in_order, assert_no_call, policy_xml, run, Run, Sandbox, TENANT};

const BASE: &str = "B2C_1A_TrustFrameworkBase";
const LOCALIZATION: &str = "B2C_1A_TrustFrameworkLocalization";
const EXTENSIONS: &str = "B2C_1A_TrustFrameworkExtensions";
const LAYER: &str = "B2C_1A_AuthyExtensions";
const SIGNUP: &str = "B2C_1A_signup_signin_authy";
const PROFILE: &str = "B2C_1A_profileedit_authy";
const MARKER: &str = "<!-- b2c-authy:managed-policy -->";
const GRAPH: &str = "https://graph.microsoft.com/beta/trustFramework/policies";

/// One of our policies: [`policy_xml`] with the marker after the XML declaration and a
/// line that tells versions apart.
fn ours(id: &str, base: Option<&str>, version: &str) -> String {
    let xml = policy_xml(id, base, TENANT).replacen("?>\n", &format!("?>\n{MARKER}\n"), 1);
    xml.replace(
        "</TrustFrameworkPolicy>",
        &format!("  <!-- version {version} -->\n</TrustFrameworkPolicy>"),
    )
}

/// A rendered environment folder, `rendered/` (file names chosen so that alphabetical order
/// is wrong), holding our layer and two relying parties, plus a file without the marker: the
/// old extensions file the layer replaced.
fn write_rendered(sb: &Sandbox) {
    sb.write("rendered/a_signup.xml", &ours(SIGNUP, Some(LAYER), "new"));
    sb.write("rendered/b_profile.xml", &ours(PROFILE, Some(LAYER), "new"));
    sb.write(
        "rendered/c_layer.xml",
        &ours(LAYER, Some(EXTENSIONS), "new"),
    );
    sb.write(
        "rendered/TrustFrameworkExtensions.xml",
        &policy_xml(EXTENSIONS, Some(LOCALIZATION), TENANT),
    );
}

/// "The tenant": its own Base, Localization and Extensions (no marker), and `extra`.
fn write_tenant(sb: &Sandbox, extra: &[(&str, String)]) {
    sb.write(
        &format!("tenant/{BASE}.xml"),
        &policy_xml(BASE, None, TENANT),
    );
    sb.write(
        &format!("tenant/{LOCALIZATION}.xml"),
        &policy_xml(LOCALIZATION, Some(BASE), TENANT),
    );
    sb.write(
        &format!("tenant/{EXTENSIONS}.xml"),
        &policy_xml(EXTENSIONS, Some(LOCALIZATION), TENANT),
    );
    for (id, text) in extra {
        sb.write(&format!("tenant/{id}.xml"), text);
    }
}

fn tenant_policy(sb: &Sandbox, id: &str) -> Option<String> {
    fs::read_to_string(sb.path(&format!("tenant/{id}.xml"))).ok()
}

/// The script against the stub, with the stub tenant and backups in `backups/`.
fn upload(sb: &Sandbox, args: &[&str]) -> Run {
    run(sb
        .command("upload-policies.sh")
        .args(args)
        .env("AZ_STUB_POLICIES", sb.path("tenant")))
}

fn upload_rendered(sb: &Sandbox, extra: &[&str]) -> Run {
    let mut args = vec!["--policies-dir", "rendered", "--backup-dir", "backups"];
    args.extend(extra);
    upload(sb, &args)
}

fn put_call(id: &str, file: &str) -> String {
    format!(
        "az rest --method put --uri {GRAPH}/{id}/\\$value --headers Content-Type=application/xml --body @{file} --output-file /dev/null"
    )
}

fn calls_with(sb: &Sandbox, prefix: &str) -> Vec<String> {
    sb.az_calls()
        .into_iter()
        .filter(|c| c.starts_with(prefix))
        .collect()
}

fn puts(sb: &Sandbox) -> Vec<String> {
    calls_with(sb, "az rest --method put")
}

/// The backup folders of the tenant, oldest first.
fn backups(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root.join(TENANT)) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    dirs.sort();
    dirs
}

/// `yyyymmddTHHMMSSZ`, optionally with a `-N` suffix.
fn is_utc_stamp(name: &str) -> bool {
    let stamp = name.split('-').next().unwrap_or("");
    let b = stamp.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

#[test]
fn upload_policies_uploads_only_marked_files_in_chain_order() {
    let sb = Sandbox::new("policies");
    write_rendered(&sb);
    sb.write("rendered/notes.xml", "<not-a-policy/>");
    write_tenant(&sb, &[]);
    let chain_before: Vec<Option<String>> = [BASE, LOCALIZATION, EXTENSIONS]
        .iter()
        .map(|id| tenant_policy(&sb, id))
        .collect();
    upload_rendered(&sb, &[])
        .assert_ok()
        .assert_stderr("ignoring 2 file(s) of rendered without the marker")
        .assert_stderr(&format!(
            "TrustFrameworkExtensions.xml (PolicyId {EXTENSIONS}: no marker)"
        ))
        .assert_stderr("notes.xml (root element is not TrustFrameworkPolicy)")
        .assert_stderr("uploaded 3 policies");
    assert_eq!(
        puts(&sb),
        [
            put_call(LAYER, "rendered/c_layer.xml"),
            put_call(PROFILE, "rendered/b_profile.xml"),
            put_call(SIGNUP, "rendered/a_signup.xml"),
        ]
    );
    // The layer's base was looked up before anything was uploaded.
    let calls = sb.az_calls();
    assert_in_order(
        &calls,
        &[
            "az account show",
            &format!("--method get --uri {GRAPH}/{EXTENSIONS}/"),
            "--method put",
        ],
    );
    // No file of the tenant's chain is uploaded, changed or deleted (only read).
    for id in [BASE, LOCALIZATION, EXTENSIONS] {
        assert_no_call(&calls, &format!("put --uri {GRAPH}/{id}/"));
    }
    assert_no_call(&calls, "--method delete");
    let chain_after: Vec<Option<String>> = [BASE, LOCALIZATION, EXTENSIONS]
        .iter()
        .map(|id| tenant_policy(&sb, id))
        .collect();
    assert_eq!(chain_before, chain_after);
    assert_eq!(
        tenant_policy(&sb, LAYER),
        Some(ours(LAYER, Some(EXTENSIONS), "new"))
    );
}

/// A marked file claiming a PolicyId of the tenant's own chain is not uploaded by default.
#[test]
fn upload_policies_refuses_tenant_chain_ids_in_the_rendered_folder() {
    let sb = Sandbox::new("policies-chain-id");
    write_rendered(&sb);
    sb.write(
        "rendered/TrustFrameworkExtensions.xml",
        &ours(EXTENSIONS, Some(LOCALIZATION), "ours"),
    );
    write_tenant(&sb, &[]);
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr(&format!(
            "{EXTENSIONS} is the tenant's own policy; it is uploaded only with --with-base-policies"
        ));
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
}

#[test]
fn upload_policies_stops_when_the_tenant_lacks_the_layers_base() {
    let sb = Sandbox::new("policies-no-base");
    write_rendered(&sb);
    fs::create_dir_all(sb.path("tenant")).unwrap();
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr(&format!(
            "not in tenant {TENANT}: {EXTENSIONS} (the base of {LAYER})"
        ))
        .assert_stderr("--with-base-policies DIR")
        .assert_stderr("nothing was uploaded");
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
    assert!(backups(&sb.path("backups")).is_empty());
    // The tenant's extensions without the localization it inherits from.
    write_tenant(&sb, &[]);
    fs::remove_file(sb.path(&format!("tenant/{LOCALIZATION}.xml"))).unwrap();
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr(&format!(
            "not in tenant {TENANT}: {LOCALIZATION} (the base of {EXTENSIONS})"
        ));
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
}

/// The backup holds the tenant's text from before the run, with a manifest, in the default
/// folder (`policy-backups/` of the repository), and exists before the first PUT: here the
/// first PUT fails and the backup is there.
#[test]
fn upload_policies_backs_up_before_the_first_put() {
    let sb = Sandbox::new("policies-backup");
    write_rendered(&sb);
    let old_layer = ours(LAYER, Some(EXTENSIONS), "old");
    write_tenant(&sb, &[(LAYER, old_layer.clone())]);
    fs::create_dir_all(sb.path("repo")).unwrap();
    let out = run(sb
        .command("upload-policies.sh")
        .args(["--policies-dir", "rendered"])
        .env("AZ_STUB_POLICIES", sb.path("tenant"))
        .env("REPO_ROOT", sb.path("repo"))
        .env("AZ_STUB_FAIL_ON", "--method put"));
    out.assert_failed()
        .assert_stderr(&format!("upload of {LAYER}"))
        .assert_stderr("Undo the uploads before it with: upload-policies.sh --rollback");
    let dirs = backups(&sb.path("repo/policy-backups"));
    assert_eq!(dirs.len(), 1, "{dirs:?}\n{out}");
    let dir = &dirs[0];
    let name = dir.file_name().unwrap().to_str().unwrap();
    assert!(is_utc_stamp(name), "{name}");
    assert_eq!(
        fs::read_to_string(dir.join(format!("{LAYER}.xml"))).unwrap(),
        old_layer
    );
    let manifest = fs::read_to_string(dir.join("manifest.txt")).unwrap();
    let lines: Vec<&str> = manifest.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            format!("tenant {TENANT}"),
            format!("time {name}"),
            format!("policy {LAYER} SAVED {LAYER}.xml"),
            format!("policy {PROFILE} ABSENT"),
            format!("policy {SIGNUP} ABSENT"),
        ],
        "{manifest}"
    );
    // Only the policies to upload are backed up (nothing of the tenant's chain), and the
    // backup may hold function keys: private.
    let mut files: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            format!("{LAYER}.xml"),
            "manifest.txt".to_owned(),
            "tenant-chain".to_owned()
        ]
    );
    // The tenant's own chain below our layer, as it was, for render-policies --check-against.
    for id in [EXTENSIONS, LOCALIZATION, BASE] {
        assert_eq!(
            fs::read_to_string(dir.join(format!("tenant-chain/{id}.xml"))).ok(),
            tenant_policy(&sb, id),
            "{id}"
        );
    }
    assert!(manifest.contains(&format!(
        "# the run, not touched by --rollback): {EXTENSIONS} {LOCALIZATION} {BASE}\n"
    )));
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "backup folder mode {mode:o}");
    // Every GET came before the one PUT attempted.
    let calls = sb.az_calls();
    let first_put = calls
        .iter()
        .position(|c| c.contains("--method put"))
        .unwrap();
    assert!(calls[first_put + 1..].is_empty(), "{calls:?}");
    assert_eq!(
        calls[..first_put]
            .iter()
            .filter(|c| c.contains("--method get"))
            .count(),
        6,
        "{calls:?}"
    );
}

#[test]
fn upload_policies_diff_shows_changes_and_uploads_nothing() {
    let sb = Sandbox::new("policies-diff");
    write_rendered(&sb);
    // The tenant's layer differs in one line and in its function key.
    let new_layer = ours(LAYER, Some(EXTENSIONS), "new").replace(
        "</TrustFrameworkPolicy>",
        "<Item Key=\"ServiceUrl\">https://x/api/Register?code=new-secret-key</Item>\n</TrustFrameworkPolicy>",
    );
    sb.write("rendered/c_layer.xml", &new_layer);
    let old_layer = ours(LAYER, Some(EXTENSIONS), "old").replace(
        "</TrustFrameworkPolicy>",
        "<Item Key=\"ServiceUrl\">https://x/api/Register?code=old-secret-key</Item>\n</TrustFrameworkPolicy>",
    );
    write_tenant(&sb, &[(LAYER, old_layer.clone())]);
    let out = upload_rendered(&sb, &["--diff"]);
    out.assert_ok()
        .assert_stdout(&format!("--- {LAYER} (tenant {TENANT}, current)"))
        .assert_stdout("+++ rendered/c_layer.xml (new)")
        .assert_stdout("-  <!-- version old -->")
        .assert_stdout("+  <!-- version new -->")
        .assert_stdout(&format!("=== {SIGNUP}: new policy (rendered/a_signup.xml)"))
        .assert_stdout(&format!("=== {PROFILE}: new policy"))
        .assert_stdout("-<Item Key=\"ServiceUrl\">https://x/api/Register?code=<masked:")
        .assert_stderr("diff only: nothing was uploaded");
    assert!(!out.stdout.contains("secret-key"), "{out}");
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
    assert_no_call(&sb.az_calls(), "--method delete");
    assert_eq!(tenant_policy(&sb, LAYER), Some(old_layer.clone()));
    // What it downloaded stays, without a manifest (nothing to roll back): the tenant's
    // chain for render-policies --check-against, and the current versions of ours.
    let dirs = backups(&sb.path("backups"));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let name = dirs[0].file_name().unwrap().to_str().unwrap();
    assert!(name.ends_with("-diff") && is_utc_stamp(name), "{name}");
    out.assert_stderr(&format!(
        "downloaded into backups/{TENANT}/{name}: tenant-chain/"
    ));
    assert!(!dirs[0].join("manifest.txt").exists());
    for id in [EXTENSIONS, LOCALIZATION, BASE] {
        assert_eq!(
            fs::read_to_string(dirs[0].join(format!("tenant-chain/{id}.xml"))).ok(),
            tenant_policy(&sb, id),
            "{id}"
        );
    }
    assert_eq!(
        fs::read_to_string(dirs[0].join(format!("current/{LAYER}.xml"))).ok(),
        Some(old_layer)
    );
    assert!(!dirs[0].join(format!("current/{SIGNUP}.xml")).exists());
    upload(
        &sb,
        &[
            "--rollback",
            dirs[0].to_str().unwrap(),
            "--backup-dir",
            "backups",
        ],
    )
    .assert_failed()
    .assert_stderr("has no manifest.txt");
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
}

/// A tenant policy with our PolicyId whose current text lacks the marker is someone else's:
/// refused, naming it, before anything is uploaded; with --force it is backed up and
/// overwritten.
#[test]
fn upload_policies_refuses_a_foreign_policy_unless_forced() {
    let sb = Sandbox::new("policies-foreign");
    write_rendered(&sb);
    let foreign = policy_xml(SIGNUP, Some(EXTENSIONS), TENANT);
    write_tenant(&sb, &[(SIGNUP, foreign.clone())]);
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr(&format!("{SIGNUP} (its current text lacks the marker"))
        .assert_stderr("nothing was uploaded")
        .assert_stderr("--force");
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
    assert!(backups(&sb.path("backups")).is_empty());
    assert_eq!(tenant_policy(&sb, SIGNUP), Some(foreign.clone()));

    upload_rendered(&sb, &["--force"])
        .assert_ok()
        .assert_stderr(&format!("--force: overwriting {SIGNUP}"))
        .assert_stderr("uploaded 3 policies");
    assert_eq!(puts(&sb).len(), 3);
    let dirs = backups(&sb.path("backups"));
    assert_eq!(dirs.len(), 1);
    assert_eq!(
        fs::read_to_string(dirs[0].join(format!("{SIGNUP}.xml"))).unwrap(),
        foreign
    );
}

/// The marker counts only right after the XML declaration, where our templates put it: a
/// tenant policy that merely mentions it further down (a comment inside, a CDATA section) is
/// still someone else's, and a local file that does is not uploaded.
#[test]
fn upload_policies_counts_the_marker_only_after_the_declaration() {
    let sb = Sandbox::new("policies-marker-mention");
    write_rendered(&sb);
    let mentions = |id: &str| {
        policy_xml(id, Some(LAYER), TENANT).replace(
            "</TrustFrameworkPolicy>",
            &format!("  {MARKER}\n  <Note><![CDATA[{MARKER}]]></Note>\n</TrustFrameworkPolicy>"),
        )
    };
    let foreign = mentions(SIGNUP);
    write_tenant(&sb, &[(SIGNUP, foreign.clone())]);
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr(&format!("{SIGNUP} (its current text lacks the marker"))
        .assert_stderr("nothing was uploaded");
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
    assert_eq!(tenant_policy(&sb, SIGNUP), Some(foreign));

    // A rendered file that only mentions it is ignored, not uploaded.
    sb.write("rendered/a_signup.xml", &mentions(SIGNUP));
    write_tenant(&sb, &[]);
    fs::remove_file(sb.path(&format!("tenant/{SIGNUP}.xml"))).unwrap();
    upload_rendered(&sb, &[])
        .assert_ok()
        .assert_stderr(&format!("a_signup.xml (PolicyId {SIGNUP}: no marker)"))
        .assert_stderr("uploaded 2 policies");
    assert_eq!(tenant_policy(&sb, SIGNUP), None);
}

/// Policies rendered from the sample settings (policies/appsettings.json: example function
/// keys, the placeholder b2c-extensions-app ids, the contoso API) would upload and then fail
/// every sign-in: refused before any call, naming the file and the values.
#[test]
fn upload_policies_refuses_the_sample_settings_values() {
    let sample = b2c_authy::policies::AppSettings::load(
        &super::repo_root().join("policies/appsettings.json"),
    )
    .unwrap();
    let settings = &sample.environments[0].policy_settings;
    for key in [
        "B2cExtensionsAppClientId",
        "B2cExtensionsAppObjectId",
        "RegisterFunctionKey",
        "AuthyApiBaseUrl",
    ] {
        let value = &settings[key];
        let sb = Sandbox::new("policies-sample-values");
        write_rendered(&sb);
        write_tenant(&sb, &[]);
        let text = ours(SIGNUP, Some(LAYER), "new").replace(
            "</TrustFrameworkPolicy>",
            &format!("  <Item>https://api.example/x?code={value}</Item>\n</TrustFrameworkPolicy>"),
        );
        let text = if key == "RegisterFunctionKey" {
            text
        } else {
            text.replace("?code=", "?c=")
        };
        sb.write("rendered/a_signup.xml", &text);
        for mode in [&[][..], &["--diff"][..]] {
            upload_rendered(&sb, mode)
                .assert_failed()
                .assert_stderr("a_signup.xml holds the sample values of policies/appsettings.json")
                .assert_stderr(
                    value
                        .trim_start_matches("https://")
                        .trim_end_matches("/api"),
                );
        }
        assert!(sb.az_calls().is_empty(), "{key}: {:?}", sb.az_calls());
    }
}

/// Folders whose names hold spaces or glob characters (`[prod]`): the files in them are
/// found, and the rollback command printed can be pasted back into a shell.
#[test]
fn upload_policies_takes_folders_with_spaces_and_brackets() {
    let sb = Sandbox::new("policies-odd-folders");
    write_rendered(&sb);
    write_tenant(&sb, &[]);
    fs::rename(sb.path("rendered"), sb.path("rendered [prod]")).unwrap();
    let run = upload(
        &sb,
        &[
            "--policies-dir",
            "rendered [prod]",
            "--backup-dir",
            "my backups",
        ],
    );
    run.assert_ok().assert_stderr("uploaded 3 policies");
    let dirs = backups(&sb.path("my backups"));
    assert_eq!(dirs.len(), 1);
    let name = dirs[0].file_name().unwrap().to_str().unwrap().to_owned();
    run.assert_stderr(&format!(
        "undo with: upload-policies.sh --rollback 'my backups/{TENANT}/{name}'"
    ));
    let manifest = fs::read_to_string(dirs[0].join("manifest.txt")).unwrap();
    assert!(
        manifest.contains(&format!("--rollback 'my backups/{TENANT}/{name}'")),
        "{manifest}"
    );
}

/// Upload over a tenant holding an older layer and profile policy, then roll back: the saved
/// files are PUT in reverse chain order, the policy that was absent is deleted, and the tenant
/// is as before.  The rollback backed up the state it replaced, so it can be rolled back too.
#[test]
fn upload_policies_rollback_restores_in_reverse_order_and_deletes_new_policies() {
    let sb = Sandbox::new("policies-rollback");
    write_rendered(&sb);
    write_tenant(
        &sb,
        &[
            (LAYER, ours(LAYER, Some(EXTENSIONS), "old")),
            (PROFILE, ours(PROFILE, Some(LAYER), "old")),
        ],
    );
    let snapshot = |sb: &Sandbox| -> Vec<(String, Option<String>)> {
        [BASE, LOCALIZATION, EXTENSIONS, LAYER, PROFILE, SIGNUP]
            .iter()
            .map(|id| ((*id).to_owned(), tenant_policy(sb, id)))
            .collect()
    };
    let before = snapshot(&sb);
    upload_rendered(&sb, &[]).assert_ok();
    let uploaded = snapshot(&sb);
    assert_ne!(before, uploaded);
    let backup = backups(&sb.path("backups")).pop().unwrap();
    let backup = backup.to_str().unwrap().to_owned();

    fs::remove_file(sb.path("az.log")).unwrap();
    upload(&sb, &["--rollback", &backup, "--backup-dir", "backups"])
        .assert_ok()
        .assert_stderr("1 to delete")
        .assert_stderr("undo this rollback with: upload-policies.sh --rollback");
    let calls = sb.az_calls();
    let changes: Vec<&String> = calls
        .iter()
        .filter(|c| c.contains("--method put") || c.contains("--method delete"))
        .collect();
    assert_eq!(
        changes,
        [
            &put_call(PROFILE, &format!("{backup}/{PROFILE}.xml")),
            &put_call(LAYER, &format!("{backup}/{LAYER}.xml")),
            &format!("az rest --method delete --uri {GRAPH}/{SIGNUP} --output none"),
        ],
        "{calls:?}"
    );
    // The current state was read before the first change.
    assert!(calls
        .iter()
        .position(|c| c.contains("--method get"))
        .is_some_and(|g| g < calls
            .iter()
            .position(|c| c.contains("--method put"))
            .unwrap()));
    assert_eq!(snapshot(&sb), before);

    // The rollback's own backup undoes it.
    let dirs = backups(&sb.path("backups"));
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    let undo = dirs.last().unwrap().to_str().unwrap().to_owned();
    assert_ne!(undo, backup);
    upload(&sb, &["--rollback", &undo, "--backup-dir", "backups"]).assert_ok();
    assert_eq!(snapshot(&sb), uploaded);
}

#[test]
fn upload_policies_rollback_refuses_a_folder_without_manifest() {
    let sb = Sandbox::new("policies-rollback-bad");
    sb.write(
        &format!("not-a-backup/{LAYER}.xml"),
        &ours(LAYER, None, "x"),
    );
    upload(
        &sb,
        &["--rollback", "not-a-backup", "--backup-dir", "backups"],
    )
    .assert_failed()
    .assert_stderr("not-a-backup has no manifest.txt");
    // A manifest naming a file that holds another policy.
    sb.write(
        "bad-backup/manifest.txt",
        &format!("tenant {TENANT}\ntime 20260101T000000Z\npolicy {SIGNUP} SAVED {SIGNUP}.xml\n"),
    );
    sb.write(
        &format!("bad-backup/{SIGNUP}.xml"),
        &ours(PROFILE, None, "x"),
    );
    upload(
        &sb,
        &["--rollback", "bad-backup", "--backup-dir", "backups"],
    )
    .assert_failed()
    .assert_stderr(&format!(
        "holds PolicyId {PROFILE}, but the manifest says {SIGNUP}"
    ));
    run(sb
        .command("upload-policies.sh")
        .args(["--rollback", "bad-backup", "--diff"]))
    .assert_code(2)
    .assert_stderr("--rollback restores a backup");
    // A manifest that lists one policy twice (in any case).
    sb.write(
        "twice-backup/manifest.txt",
        &format!(
            "tenant {TENANT}\ntime 20260101T000000Z\npolicy {SIGNUP} ABSENT\npolicy {} ABSENT\n",
            SIGNUP.to_lowercase()
        ),
    );
    upload(
        &sb,
        &["--rollback", "twice-backup", "--backup-dir", "backups"],
    )
    .assert_failed()
    .assert_stderr("is listed twice");
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
}

/// A manifest (edited by hand, or from --with-base-policies) that records a policy without
/// the marker as absent: the rollback does not delete the tenant's own policy, nor change
/// anything else, unless --force.
#[test]
fn upload_policies_rollback_deletes_only_our_policies_unless_forced() {
    let sb = Sandbox::new("policies-rollback-foreign");
    write_tenant(&sb, &[(LAYER, ours(LAYER, Some(EXTENSIONS), "old"))]);
    sb.write(
        "backup/manifest.txt",
        &format!(
            "tenant {TENANT}\ntime 20260101T000000Z\npolicy {EXTENSIONS} ABSENT\npolicy {LAYER} ABSENT\n"
        ),
    );
    upload(&sb, &["--rollback", "backup", "--backup-dir", "backups"])
        .assert_failed()
        .assert_stderr(&format!(
            "lacks the marker {MARKER} (not ours): {EXTENSIONS}."
        ))
        .assert_stderr("--force");
    assert_no_call(&sb.az_calls(), "--method delete");
    assert!(tenant_policy(&sb, EXTENSIONS).is_some());
    assert!(tenant_policy(&sb, LAYER).is_some());
    assert!(backups(&sb.path("backups")).is_empty());

    upload(
        &sb,
        &["--rollback", "backup", "--backup-dir", "backups", "--force"],
    )
    .assert_ok()
    .assert_stderr(&format!(
        "--force: deleting policies that are not ours: {EXTENSIONS}"
    ));
    assert_eq!(tenant_policy(&sb, EXTENSIONS), None);
    assert_eq!(tenant_policy(&sb, LAYER), None);
    let dirs = backups(&sb.path("backups"));
    assert_eq!(dirs.len(), 1);
    assert!(dirs[0].join(format!("{EXTENSIONS}.xml")).is_file());
}

/// The starter pack folder an admin prepared: Base, Localization, Extensions next to the
/// pack's own relying parties, which are never taken.
fn write_starter_pack(sb: &Sandbox) {
    sb.write(
        "pack/TrustFrameworkBase.xml",
        &policy_xml(BASE, None, TENANT),
    );
    // PolicyIds are case-insensitive in B2C.
    sb.write(
        "pack/TrustFrameworkLocalization.xml",
        &policy_xml(&LOCALIZATION.to_lowercase(), Some(BASE), TENANT),
    );
    sb.write(
        "pack/TrustFrameworkExtensions.xml",
        &policy_xml(EXTENSIONS, Some(LOCALIZATION), TENANT),
    );
    sb.write(
        "pack/SignUpOrSignin.xml",
        &policy_xml("B2C_1A_signup_signin", Some(EXTENSIONS), TENANT),
    );
}

#[test]
fn upload_policies_with_base_policies_fills_an_empty_tenant() {
    let sb = Sandbox::new("policies-with-base");
    write_rendered(&sb);
    write_starter_pack(&sb);
    fs::create_dir_all(sb.path("tenant")).unwrap();
    upload_rendered(&sb, &["--with-base-policies", "pack"])
        .assert_ok()
        .assert_stderr("--with-base-policies: ignoring 1 file(s)")
        .assert_stderr("SignUpOrSignin.xml (PolicyId B2C_1A_signup_signin)")
        .assert_stderr("uploaded 6 policies");
    assert_eq!(
        puts(&sb),
        [
            put_call(BASE, "pack/TrustFrameworkBase.xml"),
            put_call(
                &LOCALIZATION.to_lowercase(),
                "pack/TrustFrameworkLocalization.xml"
            ),
            put_call(EXTENSIONS, "pack/TrustFrameworkExtensions.xml"),
            put_call(LAYER, "rendered/c_layer.xml"),
            put_call(PROFILE, "rendered/b_profile.xml"),
            put_call(SIGNUP, "rendered/a_signup.xml"),
        ]
    );
    assert_no_call(&sb.az_calls(), "B2C_1A_signup_signin/");
}

#[test]
fn upload_policies_with_base_policies_refuses_existing_bases_without_force() {
    let sb = Sandbox::new("policies-with-base-existing");
    write_rendered(&sb);
    write_starter_pack(&sb);
    write_tenant(&sb, &[]);
    let tenant_base = tenant_policy(&sb, BASE);
    upload_rendered(&sb, &["--with-base-policies", "pack"])
        .assert_failed()
        .assert_stderr(&format!(
            "{BASE} (already in the tenant; --with-base-policies is for a tenant that has none)"
        ))
        .assert_stderr(&format!("{EXTENSIONS} (already in the tenant"))
        .assert_stderr("nothing was uploaded");
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
    assert_eq!(tenant_policy(&sb, BASE), tenant_base);

    upload_rendered(&sb, &["--with-base-policies", "pack", "--force"])
        .assert_ok()
        .assert_stderr("uploaded 6 policies");
    let dir = backups(&sb.path("backups")).pop().unwrap();
    assert_eq!(
        fs::read_to_string(dir.join(format!("{BASE}.xml"))).ok(),
        tenant_base
    );
}

#[test]
fn upload_policies_says_base_dir_is_gone() {
    let sb = Sandbox::new("policies-base-dir");
    write_rendered(&sb);
    for args in [
        &["--policies-dir", "rendered", "--base-dir", "pack"][..],
        &["--policies-dir", "rendered", "--base-dir=pack"][..],
    ] {
        upload(&sb, args)
            .assert_code(2)
            .assert_stderr("--base-dir is gone")
            .assert_stderr("--with-base-policies DIR");
    }
    run(sb
        .command("upload-policies.sh")
        .args(["--policies-dir", "rendered"])
        .env("BASE_POLICIES_DIR", "pack"))
    .assert_code(2)
    .assert_stderr("BASE_POLICIES_DIR (--base-dir) is gone");
    let help = run(sb.command("upload-policies.sh").arg("--help"));
    help.assert_ok()
        .assert_stdout("--base-dir option\nis gone")
        .assert_stdout("Policy.ReadWrite.TrustFramework")
        .assert_stdout("The backup folder is what\n  --rollback takes");
    assert!(sb.az_calls().is_empty());
}

#[test]
fn upload_policies_refuses_a_cycle() {
    let sb = Sandbox::new("policies-cycle");
    write_rendered(&sb);
    sb.write("rendered/c_layer.xml", &ours(LAYER, Some(SIGNUP), "new"));
    write_tenant(&sb, &[]);
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr("chain broken: inheritance cycle");
    assert!(sb.az_calls().is_empty(), "{:?}", sb.az_calls());
}

#[test]
fn upload_policies_refuses_placeholder_or_mixed_tenants() {
    let sb = Sandbox::new("policies-tenant");
    write_rendered(&sb);
    sb.write(
        "rendered/a_signup.xml",
        &ours(SIGNUP, Some(LAYER), "new").replace(TENANT, "yourtenant.onmicrosoft.com"),
    );
    write_tenant(&sb, &[]);
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr("TenantId is 'yourtenant.onmicrosoft.com'")
        .assert_stderr("files name different tenants");
    assert!(sb.az_calls().is_empty());
}

#[test]
fn upload_policies_refuses_duplicates() {
    let sb = Sandbox::new("policies-dup");
    write_rendered(&sb);
    sb.write(
        "rendered/layer_copy.xml",
        &ours(LAYER, Some(EXTENSIONS), "x"),
    );
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr(&format!("{LAYER} is defined twice"));
    assert!(sb.az_calls().is_empty());
}

#[test]
fn upload_policies_stops_at_the_first_failed_upload() {
    let sb = Sandbox::new("policies-fail");
    write_rendered(&sb);
    write_tenant(&sb, &[]);
    run(sb
        .command("upload-policies.sh")
        .args(["--policies-dir", "rendered", "--backup-dir", "backups"])
        .env("AZ_STUB_POLICIES", sb.path("tenant"))
        .env("AZ_STUB_FAIL_ON", format!("{PROFILE}/$value --headers")))
    .assert_failed()
    .assert_stderr(&format!("upload of {PROFILE}"))
    .assert_stderr("Policy.ReadWrite.TrustFramework")
    .assert_stderr("--rollback backups/");
    let calls = sb.az_calls();
    assert!(calls.last().unwrap().contains(PROFILE), "{calls:?}");
    assert_no_call(&calls, &format!("put --uri {GRAPH}/{SIGNUP}"));
}

/// A GET failing with anything but 404 (here: refused) stops the script before any PUT.
#[test]
fn upload_policies_stops_when_a_policy_cannot_be_read() {
    let sb = Sandbox::new("policies-get-fail");
    write_rendered(&sb);
    write_tenant(&sb, &[]);
    run(sb
        .command("upload-policies.sh")
        .args(["--policies-dir", "rendered", "--backup-dir", "backups"])
        .env("AZ_STUB_POLICIES", sb.path("tenant"))
        .env("AZ_STUB_FAIL_ON", format!("{PROFILE}/$value --output-file")))
    .assert_failed()
    .assert_stderr(&format!("stub refused: {PROFILE}"))
    .assert_stderr(&format!("could not read {PROFILE} from the tenant"));
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
    assert!(backups(&sb.path("backups")).is_empty());
}

#[test]
fn upload_policies_can_render_first() {
    let sb = Sandbox::new("policies-render");
    write_rendered(&sb);
    write_tenant(&sb, &[]);
    // A stub cargo that "renders" by copying the fixture into the folder the real render
    // command writes.
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
        .args(["--render", "Test", "--backup-dir", "backups"])
        .args(["--render-settings", "secret-settings/appsettings.json"])
        .env("AZ_STUB_POLICIES", sb.path("tenant"))
        .env("REPO_ROOT", sb.path("repo"))
        .env("TEMPLATE", sb.path("rendered"))
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
    // --render with a folder to upload (here from the environment) would upload something
    // else than it rendered.
    fs::remove_file(sb.path("cargo.log")).unwrap();
    run(sb
        .command("upload-policies.sh")
        .args(["--render", "Test", "--backup-dir", "backups"])
        .env("POLICIES_DIR", sb.path("rendered"))
        .env("REPO_ROOT", sb.path("repo"))
        .env("CARGO_STUB_LOG", sb.path("cargo.log")))
    .assert_code(2)
    .assert_stderr("give either --render or --policies-dir");
    assert!(!sb.path("cargo.log").exists());
    let rendered = sb.path("repo/policies/Environments/Test/a_signup.xml");
    assert_in_order(
        &sb.az_calls(),
        &[
            &format!("put --uri {GRAPH}/{LAYER}/"),
            &put_call(SIGNUP, rendered.to_str().unwrap()),
        ],
    );

    // A dry run renders for real (local files only), so its plan is that of this render, not
    // of an older one left in the folder.
    fs::remove_dir_all(sb.path("repo/policies")).unwrap();
    let out = run(sb
        .command("upload-policies.sh")
        .args(["--render", "Test", "--backup-dir", "backups", "--dry-run"])
        .env("AZ_STUB_POLICIES", sb.path("tenant"))
        .env("REPO_ROOT", sb.path("repo"))
        .env("TEMPLATE", sb.path("rendered"))
        .env("CARGO_STUB_LOG", sb.path("cargo.log")));
    out.assert_ok()
        .assert_stderr("rendering for real in a dry run too");
    assert!(sb.path("cargo.log").exists(), "the render did not run");
    assert!(rendered.is_file(), "the render wrote nothing");
    assert!(
        out.stdout.contains(&format!("{GRAPH}/{SIGNUP}/"))
            || out.stderr.contains(&format!("{GRAPH}/{SIGNUP}/")),
        "the plan lacks the rendered relying party"
    );
}

#[test]
fn upload_policies_dry_run_prints_the_calls() {
    let sb = Sandbox::new("policies-dry");
    write_rendered(&sb);
    let out = upload_rendered(&sb, &["--dry-run"]);
    out.assert_ok();
    let printed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("+ az "))
        .collect();
    let puts: Vec<&&str> = printed
        .iter()
        .filter(|l| l.starts_with("+ az rest --method put"))
        .collect();
    assert_eq!(puts.len(), 3, "{out}");
    assert!(puts[0].contains(&format!("policies/{LAYER}/")), "{out}");
    assert!(puts[2].contains(SIGNUP), "{out}");
    // The reads come first: the layer's base, then every policy to upload.
    assert!(
        printed[1].starts_with("+ az rest --method get --uri")
            && printed[1].contains(&format!("{GRAPH}/{EXTENSIONS}/")),
        "{out}"
    );
    assert_eq!(
        printed
            .iter()
            .filter(|l| l.contains("--method get"))
            .count(),
        4,
        "{out}"
    );
    assert!(sb.az_calls().is_empty());
    assert!(!sb.path("backups").exists());
}

/// Graph answers for whatever tenant az is signed in to: a downloaded policy naming another
/// tenant stops both an upload and a rollback before anything changes there.
#[test]
fn upload_policies_stops_in_the_wrong_tenant() {
    let sb = Sandbox::new("policies-wrong-tenant");
    write_rendered(&sb);
    let other = "fabrikam.onmicrosoft.com";
    sb.write(
        &format!("tenant/{EXTENSIONS}.xml"),
        &policy_xml(EXTENSIONS, Some(LOCALIZATION), other),
    );
    sb.write(
        &format!("tenant/{SIGNUP}.xml"),
        &ours(SIGNUP, Some(LAYER), "theirs").replace(TENANT, other),
    );
    upload_rendered(&sb, &[])
        .assert_failed()
        .assert_stderr(&format!(
            "{EXTENSIONS} in the signed-in tenant has TenantId '{other}', not {TENANT}"
        ));
    assert!(puts(&sb).is_empty(), "{:?}", sb.az_calls());
    // A rollback whose only change would be a DELETE.
    sb.write(
        "backup/manifest.txt",
        &format!("tenant {TENANT}\ntime 20260101T000000Z\npolicy {SIGNUP} ABSENT\n"),
    );
    upload(&sb, &["--rollback", "backup", "--backup-dir", "backups"])
        .assert_failed()
        .assert_stderr(&format!(
            "{SIGNUP} in the signed-in tenant has TenantId '{other}'"
        ));
    assert_no_call(&sb.az_calls(), "--method delete");
    assert!(tenant_policy(&sb, SIGNUP).is_some());
    assert!(backups(&sb.path("backups")).is_empty());
}

/// The three starter packs (`../shared/b2c`, never copied into the project) standing in for
/// a tenant: their Base, Localization, Extensions and relying parties, TenantId set to ours.
/// An upload of our layer reads the pack's chain down to Base, keeps it in the backup, and
/// changes no file of the tenant but ours; the pack folder as it is downloaded (placeholder
/// TenantId) is refused by --with-base-policies.
#[test]
fn upload_policies_leaves_each_starter_pack_tenant_untouched() {
    let shared = super::repo_root().join("../shared/b2c");
    for pack in [
        "starterpack",
        "starterpack-LocalAccounts",
        "starterpack-SocialAndLocalAccountsWithMfa",
    ] {
        let dir = shared.join(pack);
        if !dir.join("TrustFrameworkBase.xml").is_file() {
            super::skip_or_fail(&format!("the starter pack is not in {}", dir.display()));
            return;
        }
        let sb = Sandbox::new(&format!("policies-{pack}"));
        write_rendered(&sb);
        fs::create_dir_all(sb.path("tenant")).unwrap();
        let mut tenant_files = Vec::new();
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = fs::read_to_string(&path).unwrap();
            let Some(id) = text
                .split("PolicyId=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
            else {
                continue;
            };
            let text = text.replace("yourtenant.onmicrosoft.com", TENANT);
            sb.write(&format!("tenant/{id}.xml"), &text);
            tenant_files.push((id.to_owned(), text));
        }
        assert!(tenant_files.len() >= 5, "{pack}: {tenant_files:?}");
        upload_rendered(&sb, &[])
            .assert_ok()
            .assert_stderr(&format!("{BASE}, the base of {LOCALIZATION}, exists"))
            .assert_stderr("uploaded 3 policies");
        for (id, text) in &tenant_files {
            assert_eq!(tenant_policy(&sb, id).as_ref(), Some(text), "{pack}: {id}");
        }
        let backup = backups(&sb.path("backups")).pop().unwrap();
        for id in [BASE, LOCALIZATION, EXTENSIONS] {
            let kept = fs::read_to_string(backup.join(format!("tenant-chain/{id}.xml"))).ok();
            assert_eq!(kept, tenant_policy(&sb, id), "{pack}: {id}");
        }
        upload_rendered(&sb, &["--with-base-policies", dir.to_str().unwrap()])
            .assert_failed()
            .assert_stderr("TenantId is 'yourtenant.onmicrosoft.com'");
    }
}

/// Our real templates, rendered with `AuthyPhoneRecovery` off (the default) and on: off, the
/// lost-phone relying party is not rendered, so nothing of it is uploaded; on, it is uploaded
/// after the layer it inherits from.
#[test]
fn upload_policies_uploads_the_lost_phone_relying_party_only_when_it_is_rendered() {
    const RECOVERY: &str = "B2C_1A_authy_recoverphone";
    let policies = super::repo_root().join("policies");
    let sample =
        b2c_authy::policies::AppSettings::load(&policies.join("appsettings.json")).unwrap();
    for recovery in ["false", "true"] {
        let sb = Sandbox::new(&format!("policies-recovery-{recovery}"));
        write_tenant(&sb, &[]);
        let mut env = sample.environments[0].clone();
        env.tenant = TENANT.into();
        for (key, value) in [
            (
                "B2cExtensionsAppClientId",
                "11111111-2222-3333-4444-555555555555",
            ),
            (
                "B2cExtensionsAppObjectId",
                "66666666-7777-8888-9999-000000000000",
            ),
            (
                "AuthyApiBaseUrl",
                "https://b2c-authy-test.azurewebsites.net/api",
            ),
            ("RegisterFunctionKey", "k1"),
            ("CreateApprovalRequestFunctionKey", "k2"),
            ("WaitForAuthyApprovalFunctionKey", "k3"),
            ("AuthyPhoneRecovery", recovery),
        ] {
            env.policy_settings.insert(key.into(), value.into());
        }
        let written =
            b2c_authy::policies::render_environment(&policies, &env, &sb.path("rendered")).unwrap();
        let out = upload_rendered(&sb, &[]);
        out.assert_ok();
        let puts = puts(&sb);
        if recovery == "true" {
            assert_eq!(written.len(), 5, "{written:?}");
            out.assert_stderr("uploaded 5 policies");
            assert_in_order(
                &puts,
                &[
                    &format!("{GRAPH}/{LAYER}/"),
                    &put_call(RECOVERY, "rendered/RecoverPhoneAuthy.xml"),
                ],
            );
            assert!(tenant_policy(&sb, RECOVERY).is_some());
        } else {
            assert_eq!(written.len(), 4, "{written:?}");
            out.assert_stderr("uploaded 4 policies");
            assert!(!puts.iter().any(|p| p.contains(RECOVERY)), "{puts:#?}");
            assert!(tenant_policy(&sb, RECOVERY).is_none());
        }
    }
}

/// The relying party of the password reset with a push.
const PASSWORD_RESET: &str = "B2C_1A_passwordreset_authy";

#[test]
fn upload_policies_uploads_every_relying_party_of_the_rendered_templates() {
    // The real templates of policies/, rendered with settings other than the sample values
    // (which the script refuses): the layer first, then all three relying parties.
    let files = crate::policy_contract::sample_with(&[
        (
            "B2cExtensionsAppClientId",
            "7d9c3e51-0b4a-4f6e-9a2d-5c8b1e3f7a60",
        ),
        (
            "B2cExtensionsAppObjectId",
            "2e6f8a1c-4d3b-4b9e-8c7a-0f5d9e1b3c24",
        ),
        (
            "AuthyApiBaseUrl",
            "https://fabrikam-authy.azurewebsites.net/api",
        ),
        ("RegisterFunctionKey", "k1"),
        ("CreateApprovalRequestFunctionKey", "k2"),
        ("WaitForAuthyApprovalFunctionKey", "k3"),
    ]);
    let sb = Sandbox::new("policies-real");
    for (name, text) in &files {
        sb.write(&format!("rendered/{name}"), text);
    }
    write_tenant(&sb, &[]);
    upload_rendered(&sb, &[])
        .assert_ok()
        .assert_stderr(&format!("uploaded {} policies", files.len()));
    let puts = puts(&sb);
    assert_eq!(
        puts.first(),
        Some(&put_call(LAYER, "rendered/AuthyExtensions.xml"))
    );
    for (id, file) in [
        (SIGNUP, "SignUpOrSigninAuthy.xml"),
        (PROFILE, "ProfileEditAuthy.xml"),
        (PASSWORD_RESET, "PasswordResetAuthy.xml"),
    ] {
        assert!(
            puts.contains(&put_call(id, &format!("rendered/{file}"))),
            "{id}: {puts:#?}"
        );
    }
    assert_eq!(puts.len(), 4, "{puts:#?}");
}
