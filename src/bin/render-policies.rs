//! `render-policies`: fills the `{Settings:...}` placeholders of the B2C custom policies in
//! `policies/` from `policies/appsettings.json` and writes them to
//! `policies/Environments/<Name>/`, ready for upload. See [`b2c_authy::policies`].

use std::path::PathBuf;
use std::process::ExitCode;

use b2c_authy::policies::{self, AppSettings, PolicyError};
use clap::Parser;

/// Render the B2C custom policies for one or more environments of appsettings.json.
///
/// Every {Settings:Key} placeholder in POLICIES_DIR/*.xml is replaced with the environment's
/// PolicySettings value ({Settings:Tenant} with its Tenant), and the result is written to
/// POLICIES_DIR/Environments/NAME/ (other .xml files there are removed). Lines between
/// <!--{If:Key=V1|V2}--> (or Key!=V) and <!--{EndIf}--> are kept only when the condition holds,
/// and each journey's steps are then numbered 1..N. The layer settings StarterPack,
/// SocialProviders, AuthyBasePolicy and AuthyWaitPageScript are checked first. A placeholder
/// without a value, a bad directive or a bad setting is an error, and then nothing is written.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
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

fn run(cli: &Cli) -> Result<(), PolicyError> {
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
    }
    Ok(())
}
