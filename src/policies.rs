//! Rendering of the B2C custom policies in `policies/` for one environment.
//!
//! The policy files are templates in the format of the Azure AD B2C extension for VS Code
//! ("B2C Build all policies"): `policies/appsettings.json` lists environments,
//!
//! ```json
//! {
//!   "Environments": [
//!     {
//!       "Name": "Development",
//!       "Production": false,
//!       "Tenant": "contoso.onmicrosoft.com",
//!       "PolicySettings": { "AuthyApiBaseUrl": "https://contoso-authy.azurewebsites.net/api" }
//!     }
//!   ]
//! }
//! ```
//!
//! and the policy files name values with placeholders: `{Settings:Tenant}` is the environment's
//! `Tenant`, `{Settings:<Key>}` is `PolicySettings.<Key>` (case-sensitive, inserted verbatim, as
//! the extension does: a value is not XML-escaped, so write `&amp;` for `&`).
//! [`render_environment`] writes every `policies/*.xml`, rendered, to
//! `policies/Environments/<Name>/` ([`environment_dir`]).
//!
//! Unlike the extension, rendering fails, and writes nothing, when any placeholder has no value
//! (unknown key, empty value, or a `{Settings:` without its `}`): the error lists every such
//! placeholder with its file and line. A policy with a placeholder left in it would otherwise
//! be uploaded to B2C as is.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The settings file's name in the policies folder.
pub const SETTINGS_FILE: &str = "appsettings.json";

/// The folder, in the policies folder, that holds one folder of rendered policies per environment.
pub const ENVIRONMENTS_DIR: &str = "Environments";

/// What opens a placeholder; the key runs to the next `}`.
const PLACEHOLDER_START: &str = "{Settings:";

/// The key of `{Settings:Tenant}`, taken from the environment's `Tenant`, not `PolicySettings`.
const TENANT_KEY: &str = "Tenant";

/// `appsettings.json`: the environments policies are rendered for.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct AppSettings {
    /// The environments, in file order. Names are unique (ignoring case) and usable as folder names.
    pub environments: Vec<Environment>,
}

/// One environment: a B2C tenant and the values of its placeholders.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    /// The environment's name, also its output folder name (`Environments/<Name>`).
    pub name: String,
    /// Whether this is a production tenant. Informational, as in the VS Code extension.
    #[serde(default)]
    pub production: bool,
    /// The B2C tenant, for example `contoso.onmicrosoft.com`: the value of `{Settings:Tenant}`.
    pub tenant: String,
    /// Placeholder values: `{Settings:<Key>}` becomes `PolicySettings.<Key>`.
    #[serde(default)]
    pub policy_settings: BTreeMap<String, String>,
}

/// A placeholder with no value, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingValue {
    /// The policy file (template) it is in.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// The placeholder as written, for example `{Settings:AuthyApiBaseUrl}`, or the start of an
    /// unterminated one.
    pub placeholder: String,
    /// Why it has no value.
    pub reason: MissingReason,
}

/// Why a placeholder has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingReason {
    /// Neither `Tenant` nor a `PolicySettings` key of that name.
    UnknownKey,
    /// The value is empty or only white space.
    EmptyValue,
    /// `{Settings:` without a closing `}` on the same line.
    Unterminated,
}

/// Everything that can stop rendering.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// `appsettings.json` is not JSON of the expected shape.
    #[error("{}: not a valid settings file: {source}", path.display())]
    SettingsFormat {
        /// The settings file.
        path: PathBuf,
        /// The parser's message (with line and column).
        source: serde_json::Error,
    },
    /// `appsettings.json` parses but its environments are unusable.
    #[error("{}: {problem}", path.display())]
    InvalidSettings {
        /// The settings file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// No environment of that name.
    #[error("no environment named '{name}' in {}; it has: {}", path.display(), known.join(", "))]
    UnknownEnvironment {
        /// The name asked for.
        name: String,
        /// The settings file.
        path: PathBuf,
        /// The names it has.
        known: Vec<String>,
    },
    /// The policies folder has no `*.xml` file.
    #[error("no policy files (*.xml) in {}", dir.display())]
    NoPolicyFiles {
        /// The policies folder.
        dir: PathBuf,
    },
    /// Placeholders without a value; nothing was written.
    #[error("{}", MissingValues { environment, missing })]
    MissingValues {
        /// The environment being rendered.
        environment: String,
        /// Every placeholder without a value, in file and line order.
        missing: Vec<MissingValue>,
    },
}

/// Display helper for [`PolicyError::MissingValues`].
struct MissingValues<'a> {
    environment: &'a str,
    missing: &'a [MissingValue],
}

impl fmt::Display for MissingValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "environment '{}': {} placeholder(s) without a value; nothing was rendered:",
            self.environment,
            self.missing.len()
        )?;
        for m in self.missing {
            let why = match m.reason {
                MissingReason::UnknownKey => "no such key in PolicySettings".to_owned(),
                MissingReason::EmptyValue => "its value is empty".to_owned(),
                MissingReason::Unterminated => format!("no closing '}}' after {PLACEHOLDER_START}"),
            };
            write!(
                f,
                "\n  {}:{}: {}: {why}",
                m.file.display(),
                m.line,
                m.placeholder
            )?;
        }
        Ok(())
    }
}

impl AppSettings {
    /// Reads and checks a settings file.
    ///
    /// # Errors
    /// [`PolicyError::Io`] if it cannot be read, [`PolicyError::SettingsFormat`] if it is not of
    /// the shape above, [`PolicyError::InvalidSettings`] for an empty list, an empty, duplicate
    /// (ignoring case) or path-like environment name, an empty `Tenant`, or a `Tenant` key in
    /// `PolicySettings` (which `{Settings:Tenant}` would never use).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: path.to_owned(),
            source,
        })?;
        let settings: Self =
            serde_json::from_str(&text).map_err(|source| PolicyError::SettingsFormat {
                path: path.to_owned(),
                source,
            })?;
        settings
            .check()
            .map_err(|problem| PolicyError::InvalidSettings {
                path: path.to_owned(),
                problem,
            })?;
        Ok(settings)
    }

    /// The environment called `name` (exact match).
    ///
    /// # Errors
    /// [`PolicyError::UnknownEnvironment`], naming the environments there are; `settings_path`
    /// is only used in that message.
    pub fn environment(
        &self,
        name: &str,
        settings_path: &Path,
    ) -> Result<&Environment, PolicyError> {
        self.environments
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| PolicyError::UnknownEnvironment {
                name: name.to_owned(),
                path: settings_path.to_owned(),
                known: self.environments.iter().map(|e| e.name.clone()).collect(),
            })
    }

    fn check(&self) -> Result<(), String> {
        if self.environments.is_empty() {
            return Err("Environments is empty".into());
        }
        let mut seen = Vec::new();
        for env in &self.environments {
            let name = env.name.trim();
            if name.is_empty()
                || name != env.name
                || name == "."
                || name == ".."
                || name.contains(['/', '\\', ':'])
            {
                return Err(format!(
                    "environment name '{}' cannot be a folder name (no '/', '\\', ':', '..', no surrounding spaces)",
                    env.name
                ));
            }
            if seen.contains(&name.to_lowercase()) {
                return Err(format!("environment '{name}' is listed twice"));
            }
            seen.push(name.to_lowercase());
            if env.tenant.trim().is_empty() {
                return Err(format!("environment '{name}' has an empty Tenant"));
            }
            if env.policy_settings.contains_key(TENANT_KEY) {
                return Err(format!(
                    "environment '{name}': PolicySettings must not define Tenant; {{Settings:Tenant}} is the environment's Tenant"
                ));
            }
            let values = std::iter::once((TENANT_KEY, env.tenant.as_str())).chain(
                env.policy_settings
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            );
            for (key, value) in values {
                if !is_xml_text(value) {
                    return Err(format!(
                        "environment '{name}': {key}: write '&' as '&amp;' and '<' as '&lt;' (values go into the XML as they are, e.g. a SAS URL's '&')"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Whether `value` can stand in XML text as it is: no `<`, and every `&` starts an entity
/// (`&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`, `&#…;`).
fn is_xml_text(value: &str) -> bool {
    if value.contains('<') {
        return false;
    }
    value.match_indices('&').all(|(at, _)| {
        let rest = &value[at + 1..];
        let Some(end) = rest.find(';') else {
            return false;
        };
        let entity = &rest[..end];
        matches!(entity, "amp" | "lt" | "gt" | "quot" | "apos")
            || entity
                .strip_prefix("#x")
                .map(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .or_else(|| {
                    entity
                        .strip_prefix('#')
                        .map(|dec| !dec.is_empty() && dec.bytes().all(|b| b.is_ascii_digit()))
                })
                .unwrap_or(false)
    })
}

impl Environment {
    /// The value of `{Settings:<key>}`: `Tenant` for `Tenant`, else `PolicySettings[key]`;
    /// `None` when there is no such key or its value is blank.
    pub fn value(&self, key: &str) -> Option<&str> {
        let value = if key == TENANT_KEY {
            Some(self.tenant.as_str())
        } else {
            self.policy_settings.get(key).map(String::as_str)
        };
        value.filter(|v| !v.trim().is_empty())
    }
}

/// Replaces every `{Settings:<Key>}` in `text` with its value in `env`.
///
/// `file` only labels the [`MissingValue`]s.
///
/// # Errors
/// Every placeholder without a value (unknown key, blank value, unterminated), in order.
pub fn render_text(
    text: &str,
    env: &Environment,
    file: &Path,
) -> Result<String, Vec<MissingValue>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find(PLACEHOLDER_START) {
            out.push_str(&rest[..start]);
            let after = &rest[start + PLACEHOLDER_START.len()..];
            let problem = |placeholder: &str, reason| MissingValue {
                file: file.to_owned(),
                line: index + 1,
                placeholder: placeholder.to_owned(),
                reason,
            };
            let Some(end) = after.find('}') else {
                missing.push(problem(
                    rest[start..].trim_end(),
                    MissingReason::Unterminated,
                ));
                rest = "";
                break;
            };
            let key = &after[..end];
            let placeholder = &rest[start..start + PLACEHOLDER_START.len() + end + 1];
            match env.value(key) {
                Some(value) => out.push_str(value),
                None => {
                    let reason = if env.policy_settings.contains_key(key) {
                        MissingReason::EmptyValue
                    } else {
                        MissingReason::UnknownKey
                    };
                    missing.push(problem(placeholder, reason));
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// The policy templates: the `*.xml` files directly in `policies_dir`, sorted by name.
///
/// # Errors
/// [`PolicyError::Io`] if the folder cannot be read, [`PolicyError::NoPolicyFiles`] if it has
/// no `*.xml` file.
pub fn policy_files(policies_dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let io_error = |source| PolicyError::Io {
        path: policies_dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(policies_dir).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        if path.is_file() && is_xml(&path) {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(PolicyError::NoPolicyFiles {
            dir: policies_dir.to_owned(),
        });
    }
    files.sort();
    Ok(files)
}

/// Where [`render_environment`] writes an environment by default:
/// `<policies_dir>/Environments/<name>`.
pub fn environment_dir(policies_dir: &Path, name: &str) -> PathBuf {
    policies_dir.join(ENVIRONMENTS_DIR).join(name)
}

/// Renders every policy template in `policies_dir` for `env` into `out_dir` (created if
/// needed), file names unchanged, and removes the other `*.xml` files there (left over from a
/// renamed or deleted policy, which an upload of the folder would otherwise include).
///
/// All files are rendered in memory first: on any missing value nothing is written.
/// Returns the written files, sorted.
///
/// # Errors
/// [`PolicyError::MissingValues`] (every placeholder without a value in every file),
/// [`PolicyError::NoPolicyFiles`], [`PolicyError::Io`].
pub fn render_environment(
    policies_dir: &Path,
    env: &Environment,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, PolicyError> {
    let mut rendered = Vec::new();
    let mut missing = Vec::new();
    for template in policy_files(policies_dir)? {
        let text = fs::read_to_string(&template).map_err(|source| PolicyError::Io {
            path: template.clone(),
            source,
        })?;
        match render_text(&text, env, &template) {
            Ok(text) => rendered.push((template, text)),
            Err(found) => missing.extend(found),
        }
    }
    if !missing.is_empty() {
        return Err(PolicyError::MissingValues {
            environment: env.name.clone(),
            missing,
        });
    }

    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| PolicyError::Io { path, source }
    };
    fs::create_dir_all(out_dir).map_err(io_error(out_dir))?;
    let mut written = Vec::new();
    for (template, text) in rendered {
        // `policy_files` only returns paths with a file name.
        let target = out_dir.join(template.file_name().unwrap_or_default());
        fs::write(&target, text).map_err(io_error(&target))?;
        written.push(target);
    }
    for entry in fs::read_dir(out_dir).map_err(io_error(out_dir))? {
        let path = entry.map_err(io_error(out_dir))?.path();
        if path.is_file() && is_xml(&path) && !written.contains(&path) {
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(written)
}

fn is_xml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("xml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        Environment {
            name: "Test".into(),
            production: false,
            tenant: "contoso.onmicrosoft.com".into(),
            policy_settings: BTreeMap::from([
                ("ApiUrl".to_owned(), "https://api.example".to_owned()),
                ("Blank".to_owned(), "  ".to_owned()),
            ]),
        }
    }

    fn render(text: &str) -> Result<String, Vec<MissingValue>> {
        render_text(text, &env(), Path::new("p.xml"))
    }

    #[test]
    fn replaces_tenant_and_policy_settings() {
        let out =
            render("<P TenantId=\"{Settings:Tenant}\">{Settings:ApiUrl}/x {Settings:ApiUrl}</P>\n")
                .unwrap();
        assert_eq!(out, "<P TenantId=\"contoso.onmicrosoft.com\">https://api.example/x https://api.example</P>\n");
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        let text = "<a>{Context:CorrelationId} {Policy:TenantObjectId}</a>\r\nno newline at end";
        assert_eq!(render(text).unwrap(), text);
    }

    #[test]
    fn unknown_key_fails_with_file_and_line() {
        let missing =
            render("<a/>\n<b>{Settings:ApiUrl}</b> <c>{Settings:Nope}</c>\n").unwrap_err();
        assert_eq!(
            missing,
            vec![MissingValue {
                file: PathBuf::from("p.xml"),
                line: 2,
                placeholder: "{Settings:Nope}".into(),
                reason: MissingReason::UnknownKey,
            }]
        );
    }

    #[test]
    fn keys_are_case_sensitive() {
        let missing = render("{Settings:apiurl} {Settings:tenant}").unwrap_err();
        assert_eq!(missing.len(), 2);
        assert!(missing
            .iter()
            .all(|m| m.reason == MissingReason::UnknownKey));
    }

    #[test]
    fn blank_value_fails() {
        let missing = render("{Settings:Blank}").unwrap_err();
        assert_eq!(missing[0].reason, MissingReason::EmptyValue);
    }

    #[test]
    fn unterminated_placeholder_fails() {
        let missing = render("ok {Settings:ApiUrl}\n<a>{Settings:ApiUrl</a>\n").unwrap_err();
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].line, 2);
        assert_eq!(missing[0].reason, MissingReason::Unterminated);
        assert_eq!(missing[0].placeholder, "{Settings:ApiUrl</a>");
    }

    #[test]
    fn every_missing_value_is_reported_in_the_message() {
        let error = PolicyError::MissingValues {
            environment: "Test".into(),
            missing: render("{Settings:A}\n{Settings:Blank}\n").unwrap_err(),
        };
        let message = error.to_string();
        assert!(
            message.contains("environment 'Test': 2 placeholder(s) without a value"),
            "{message}"
        );
        assert!(
            message.contains("p.xml:1: {Settings:A}: no such key in PolicySettings"),
            "{message}"
        );
        assert!(
            message.contains("p.xml:2: {Settings:Blank}: its value is empty"),
            "{message}"
        );
    }

    #[test]
    fn values_must_be_xml_text() {
        assert!(is_xml_text(
            "https://x.blob.core.windows.net/t.html?sv=1&amp;sig=2"
        ));
        assert!(is_xml_text("a &#38; b &#x26; c"));
        assert!(!is_xml_text("https://x/t.html?sv=1&sig=2"));
        assert!(!is_xml_text("a<b"));
        assert!(!is_xml_text("a & b"));
    }

    #[test]
    fn settings_are_checked() {
        let parse = |json: &str| serde_json::from_str::<AppSettings>(json).unwrap().check();
        assert!(parse(r#"{"Environments":[]}"#).is_err());
        assert!(parse(r#"{"Environments":[{"Name":"../x","Tenant":"t"}]}"#).is_err());
        assert!(
            parse(r#"{"Environments":[{"Name":"A","Tenant":"t"},{"Name":"a","Tenant":"t"}]}"#)
                .is_err()
        );
        assert!(parse(r#"{"Environments":[{"Name":"A","Tenant":" "}]}"#).is_err());
        assert!(parse(
            r#"{"Environments":[{"Name":"A","Tenant":"t","PolicySettings":{"Tenant":"x"}}]}"#
        )
        .is_err());
        assert!(parse(
            r#"{"Environments":[{"Name":"A","Production":true,"Tenant":"t","PolicySettings":{}}]}"#
        )
        .is_ok());
    }
}
