//! The user-facing offline policy check, `render-policies --check-against DIR`
//! (`b2c_authy::policy_check`), on the real policies: every environment of
//! `policies/appsettings.json`, rendered, passes against the starter pack it is built on
//! (`../shared/b2c/`, standing in for the admin's prepared pack or tenant), and the command
//! run as a process exits 0 on a copy of that pack and 1, with the problem line, on broken
//! copies. The checks themselves are proven one by one on small inline policies in the
//! library's unit tests.
//!
//! Missing `../shared` skips these tests, except under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{repo_root as repo, skip_or_fail};
use b2c_authy::policies::{self, AppSettings, Environment, StarterPack};
use b2c_authy::policy_check::{self, PolicyFile};

fn policies_dir() -> PathBuf {
    repo().join("policies")
}

/// A fresh temporary folder for one test.
fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "b2c-authy-policy-check-{label}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The starter pack folder an environment is built on (its `StarterPack` setting), or `None`
/// (skipped, or a panic under CI=true) when `../shared` does not hold it.
fn pack_dir(env: &Environment) -> Option<PathBuf> {
    let layer = env
        .layer_settings()
        .unwrap_or_else(|problems| panic!("environment {}: {problems:?}", env.name));
    let folder = match layer.starter_pack {
        StarterPack::SocialAndLocalAccounts => "starterpack",
        StarterPack::LocalAccounts => "starterpack-LocalAccounts",
        StarterPack::SocialAndLocalAccountsWithMfa => "starterpack-SocialAndLocalAccountsWithMfa",
    };
    let dir = repo().join("..").join("shared").join("b2c").join(folder);
    if dir.join("TrustFrameworkBase.xml").is_file() {
        Some(dir)
    } else {
        skip_or_fail(&format!("the starter pack is not in {}", dir.display()));
        None
    }
}

fn settings() -> AppSettings {
    AppSettings::load(&policies_dir().join(policies::SETTINGS_FILE)).unwrap()
}

#[test]
fn the_rendered_policies_pass_against_their_starter_pack() {
    for env in &settings().environments {
        let Some(pack) = pack_dir(env) else { return };
        let out = temp_dir(&format!("render-{}", env.name));
        let written = policies::render_environment(&policies_dir(), env, &out).unwrap();
        let ours: Vec<PolicyFile> = written
            .iter()
            .map(|p| policy_check::read_policy(p).unwrap())
            .collect();
        let theirs = policy_check::read_dir(&pack).unwrap();
        let problems = policy_check::check_against(&ours, &theirs);
        std::fs::remove_dir_all(&out).unwrap();
        assert!(
            problems.is_empty(),
            "environment {} against {}:\n{}",
            env.name,
            pack.display(),
            problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Copies the files of `from` into `to` (created), and its subfolders except `skip`.
fn copy_dir(from: &Path, to: &Path, skip: &str) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_dir() {
            if name != skip {
                copy_dir(&path, &to.join(name), skip);
            }
        } else {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

fn render_and_check(policies: &Path, dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_render-policies"))
        .arg("--policies-dir")
        .arg(policies)
        .arg("--check-against")
        .arg(dir)
        .output()
        .unwrap()
}

fn describe(output: &Output) -> String {
    format!(
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn render_policies_check_against_exits_0_on_the_pack_and_1_on_a_broken_copy() {
    let settings = settings();
    let Some(env) = settings.environments.first() else {
        panic!("no environment in appsettings.json")
    };
    let Some(pack) = pack_dir(env) else { return };
    let root = temp_dir("cli");
    let policies = root.join("policies");
    copy_dir(&policies_dir(), &policies, policies::ENVIRONMENTS_DIR);
    let tenant = root.join("tenant");
    copy_dir(&pack, &tenant, "");

    let output = render_and_check(&policies, &tenant);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", describe(&output));
    for env in &settings.environments {
        assert!(
            stdout.contains(&format!("ok: {}: ", env.name)),
            "{}",
            describe(&output)
        );
    }

    // A tenant without its Localization policy: the chain breaks, and the user is told what to do.
    std::fs::rename(
        tenant.join("TrustFrameworkLocalization.xml"),
        root.join("TrustFrameworkLocalization.xml"),
    )
    .unwrap();
    let output = render_and_check(&policies, &tenant);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stdout.lines().any(|l| l.starts_with("problem: ")
            && l.contains(
                "BasePolicy 'B2C_1A_TrustFrameworkLocalization' is not among the policies given"
            )
            && l.contains("download it from your tenant")),
        "{}",
        describe(&output)
    );
    std::fs::rename(
        root.join("TrustFrameworkLocalization.xml"),
        tenant.join("TrustFrameworkLocalization.xml"),
    )
    .unwrap();

    // A tenant whose Base calls the object id otherwise: our references to it break. The
    // unchanged claim in an unrelated policy of the folder does not resolve them.
    let base = tenant.join("TrustFrameworkBase.xml");
    let text = std::fs::read_to_string(&base).unwrap();
    let renamed = text.replacen(
        r#"<ClaimType Id="objectId">"#,
        r#"<ClaimType Id="objectIdentifier">"#,
        1,
    );
    assert_ne!(renamed, text, "the pack's Base has no objectId claim");
    std::fs::write(&base, renamed).unwrap();
    std::fs::write(
        tenant.join("Unrelated.xml"),
        r#"<TrustFrameworkPolicy xmlns="http://schemas.microsoft.com/online/cpim/schemas/2013/06" PolicyId="B2C_1A_Unrelated">
  <BuildingBlocks><ClaimsSchema><ClaimType Id="objectId" /></ClaimsSchema></BuildingBlocks>
</TrustFrameworkPolicy>"#,
    )
    .unwrap();
    let output = render_and_check(&policies, &tenant);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        stdout.lines().any(|l| l.starts_with("problem: ")
            && l.contains("references ClaimType 'objectId', which no policy of its chain defines")),
        "{}",
        describe(&output)
    );

    // A folder that is not there: an error before anything is rendered.
    let output = render_and_check(&policies, &root.join("no-such-folder"));
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot read the folder"),
        "{}",
        describe(&output)
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// A tenant that runs the Authy sample (azure-ad-b2c/samples, `policies/custom-mfa-authy-app`):
/// its extensions policy is `B2C_1A_AuthyApp_TrustFrameworkExtensions`, built directly on
/// `B2C_1A_TrustFrameworkBase`, without Localization. Played here by the pack's own Base and
/// Extensions with that PolicyId and BasePolicy: with `AuthyBasePolicy` pointing at it, our
/// layer checks out; with the default `AuthyBasePolicy`, which that tenant lacks, the check
/// says so.
#[test]
fn a_tenant_shaped_like_the_authy_sample_checks_out_with_authy_base_policy_set() {
    let mut env = settings().environments[0].clone();
    env.policy_settings
        .insert("StarterPack".into(), "SocialAndLocalAccounts".into());
    let Some(pack) = pack_dir(&env) else { return };
    let tenant = temp_dir("sample-tenant");
    std::fs::copy(
        pack.join("TrustFrameworkBase.xml"),
        tenant.join("TrustFrameworkBase.xml"),
    )
    .unwrap();
    let extensions = std::fs::read_to_string(pack.join("TrustFrameworkExtensions.xml"))
        .unwrap()
        .replace(
            "B2C_1A_TrustFrameworkExtensions",
            "B2C_1A_AuthyApp_TrustFrameworkExtensions",
        )
        .replace(
            "<PolicyId>B2C_1A_TrustFrameworkLocalization</PolicyId>",
            "<PolicyId>B2C_1A_TrustFrameworkBase</PolicyId>",
        );
    assert!(extensions.contains("<PolicyId>B2C_1A_TrustFrameworkBase</PolicyId>"));
    std::fs::write(
        tenant.join("AuthyApp_TrustFrameworkExtensions.xml"),
        extensions,
    )
    .unwrap();
    let theirs = policy_check::read_dir(&tenant).unwrap();

    let check = |env: &Environment| {
        let out = temp_dir("sample-tenant-rendered");
        let written = policies::render_environment(&policies_dir(), env, &out).unwrap();
        let ours: Vec<PolicyFile> = written
            .iter()
            .map(|p| policy_check::read_policy(p).unwrap())
            .collect();
        std::fs::remove_dir_all(&out).unwrap();
        policy_check::check_against(&ours, &theirs)
    };
    let default_base = check(&env);
    assert!(
        default_base
            .iter()
            .any(|p| p.to_string().contains("B2C_1A_TrustFrameworkExtensions")),
        "the missing default base must be reported: {default_base:?}"
    );
    env.policy_settings.insert(
        "AuthyBasePolicy".into(),
        "B2C_1A_AuthyApp_TrustFrameworkExtensions".into(),
    );
    let problems = check(&env);
    std::fs::remove_dir_all(&tenant).unwrap();
    assert!(
        problems.is_empty(),
        "{}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
