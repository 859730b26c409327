//! `render-policies`: fills the `{Settings:...}` placeholders of the B2C custom policies in
//! `policies/` from `policies/appsettings.json` and writes them to
//! `policies/Environments/<Name>/`, ready for upload. See [`b2c_authy::policies`].
//!
//! With `--check-against DIR` it then checks each rendered environment together with the
//! policies in DIR (the admin's Base, Localization and Extensions): see
//! [`b2c_authy::policy_check`].

use std::path::PathBuf;
use std::process::ExitCode;

use b2c_authy::policies::{self, AppSettings, PolicyError};
use b2c_authy::policy_check::{self, PolicyFile, Problem};
use clap::Parser;

/// Render the B2C custom policies for one or more environments of appsettings.json.
///
/// Every {Settings:Key} placeholder in POLICIES_DIR/*.xml is replaced with the environment's
/// PolicySettings value ({Settings:Tenant} with its Tenant), and the result is written to
/// POLICIES_DIR/Environments/NAME/ (other .xml files there are removed). Lines between
/// <!--{If:Key=V1|V2}--> (or Key!=V) and <!--{EndIf}--> are kept only when the condition holds,
/// and each journey's steps are then numbered 1..N; a template left with no element (such as
/// RecoverPhoneAuthy.xml with AuthyPhoneRecovery false) is not written. The layer settings
/// StarterPack, SocialProviders, AuthyBasePolicy, AuthyWaitPageScript, AuthyPhoneRecovery and
/// AuthyMfaPerSession are checked first. A placeholder without a value, a bad directive or a bad
/// setting is an error, and then nothing is written.
///
/// With --check-against DIR, each rendered environment is then checked offline together with the
/// policies in DIR: every BasePolicy resolves, every reference of our policies resolves through
/// its own inheritance chain, journeys are numbered 1..N and end with SendClaims, REST technical
/// profiles use https and a client certificate. Exit status 1 when anything is wrong. It does
/// not validate against the XSD, nor all that B2C's own upload validation checks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Environments to render (the Name in appsettings.json); all of them when none is given.
    environments: Vec<String>,
    /// Folder of the policy templates.
    #[arg(long, value_name = "DIR", default_value = "policies")]
    policies_dir: PathBuf,
    /// Settings file [default: POLICIES_DIR/appsettings.json]. Keep one with real function keys
    /// outside the repository and pass it here.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
    /// After rendering, check the rendered policies against the policies (*.xml, not in
    /// subfolders) in DIR: the starter pack folder you downloaded and prepared (its
    /// TrustFrameworkBase, TrustFrameworkLocalization and TrustFrameworkExtensions), or your
    /// tenant's current policies: the tenant-chain/ folder that deploy/upload-policies.sh --diff
    /// (and every upload's backup) saves, or the policies downloaded from the portal.
    /// Every *.xml file there must be a well-formed policy; beyond that, policies in DIR that
    /// ours do not build on are not checked. One of ours replaces a policy of DIR with the same
    /// PolicyId, as the upload would.
    #[arg(long, value_name = "DIR")]
    check_against: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("render-policies: error: {error}");
            if !cli.policies_dir.is_dir() {
                eprintln!(
                    "render-policies: run it from the repository root, or pass --policies-dir"
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// How a run ended, when nothing stopped it.
enum Outcome {
    /// Rendered, and checked without problems when asked to.
    Clean,
    /// The check found problems (printed).
    Problems,
}

/// Everything that can stop a run.
#[derive(Debug, thiserror::Error)]
enum RunError {
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] PolicyError),
    /// The policies to check could not be read.
    #[error("{0}")]
    Read(Problem),
}

fn run(cli: &Cli) -> Result<Outcome, RunError> {
    // Read DIR first: a typo in it should stop the run before anything is written.
    let theirs = match &cli.check_against {
        Some(dir) => Some(policy_check::read_dir(dir).map_err(RunError::Read)?),
        None => None,
    };
    let settings_path = cli
        .settings
        .clone()
        .unwrap_or_else(|| cli.policies_dir.join(policies::SETTINGS_FILE));
    let settings = AppSettings::load(&settings_path)?;
    let environments = if cli.environments.is_empty() {
        settings.environments.iter().collect()
    } else {
        cli.environments
            .iter()
            .map(|name| settings.environment(name, &settings_path))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut outcome = Outcome::Clean;
    for env in environments {
        let out_dir = policies::environment_dir(&cli.policies_dir, &env.name);
        let written = policies::render_environment(&cli.policies_dir, env, &out_dir)?;
        println!(
            "{}: {} policies rendered for tenant {} in {}",
            env.name,
            written.len(),
            env.tenant,
            out_dir.display()
        );
        let (Some(theirs), Some(dir)) = (&theirs, &cli.check_against) else {
            continue;
        };
        let ours = written
            .iter()
            .map(|path| policy_check::read_policy(path))
            .collect::<Result<Vec<PolicyFile>, Problem>>()
            .map_err(RunError::Read)?;
        let problems = policy_check::check_against(&ours, theirs);
        if problems.is_empty() {
            println!(
                "ok: {}: {} policies check out against the {} in {}",
                env.name,
                ours.len(),
                theirs.len(),
                dir.display()
            );
        } else {
            for problem in &problems {
                println!("problem: {}: {problem}", env.name);
            }
            println!(
                "{}: {} problem(s) against the policies in {}",
                env.name,
                problems.len(),
                dir.display()
            );
            outcome = Outcome::Problems;
        }
    }
    Ok(outcome)
}
