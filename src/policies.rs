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
//!
//! # The layer settings
//!
//! Our policies are a layer on top of the tenant's own Base, Localization and Extensions
//! policies. Four `PolicySettings` keys describe that tenant and a fifth the session behaviour; each has a default used when the
//! key is absent ([`SETTING_DEFAULTS`]), and [`Environment::layer_settings`] parses them:
//!
//! | key | values | default |
//! |---|---|---|
//! | `StarterPack` | `LocalAccounts`, `SocialAndLocalAccounts`, `SocialAndLocalAccountsWithMfa` ([`StarterPack`]) | `SocialAndLocalAccounts` |
//! | `SocialProviders` | `None`, `Facebook` ([`SocialProviders`]); `Facebook` not with `LocalAccounts` | `None` |
//! | `AuthyBasePolicy` | the PolicyId our layer inherits from, `B2C_1A_…` | `B2C_1A_TrustFrameworkExtensions` |
//! | `AuthyWaitPageScript` | `true`, `false`; `true` needs an `AuthyWaitPageLoadUri` of your own, not a built-in `~/tenant/…` page | `false` |
//! | `AuthyPhoneRecovery` | `true`, `false`: the self-service "lost your phone?" relying party (`RecoverPhoneAuthy.xml`) and its journey are rendered only with `true` | `false` |
//! | `AuthyMfaPerSession` | `true`, `false`: `true` lets the sign-in journey skip the push inside a B2C SSO session that already approved one for the same authy id; `false` asks for a push in every journey | `true` |
//!
//! Rendering fails on a bad value, on one of these combinations, on one of these keys misspelt
//! (which would otherwise leave the real key at its default), and on the keys the layer no
//! longer uses ([`REMOVED_KEYS`]), which belong to the tenant's own extensions policy.
//!
//! One key is optional ([`OPTIONAL_KEYS`]): `AuthyApplicationName`, the application name the
//! push shows ("Application"). Absent or empty, the policies do not send it (the block
//! `{If:AuthyApplicationName}` below is dropped); set, it must be at most
//! [`APPLICATION_NAME_MAX_CHARS`] characters without `<`, `>`, `&`, `"`, `'` or control
//! characters (it is inserted into the XML verbatim).
//!
//! # Conditional blocks
//!
//! A template may keep lines only for some settings, with directives written as XML comments
//! (so the template stays well-formed), each alone on its line:
//!
//! ```xml
//! <!--{If:SocialProviders=Facebook}-->
//! <ClaimsProviderSelection TargetClaimsExchangeId="FacebookExchange" />
//! <!--{EndIf}-->
//! ```
//!
//! `{If:Key=V1|V2}` keeps the lines up to its `{EndIf}` when the value of `Key` (as for
//! `{Settings:Key}`, defaults included) is one of the values; `{If:Key!=V1|V2}` when it is none of
//! them. `{If:Key}`, for an optional key ([`OPTIONAL_KEYS`]) only, keeps them when the key has a
//! value that is not blank (a misspelt key is an error, not a block that never renders). Blocks nest; a line is kept when every enclosing block keeps it; the directive lines
//! themselves are never written, and placeholders on dropped lines need no value. For the keys
//! above, every value named must be one of the key's values (a misspelt `Facbook` is an error, not
//! a block that never renders). An unknown or empty key, an `{EndIf}` without `{If}`, an `{If}`
//! without `{EndIf}`, a malformed directive or one that shares its line with other text fails the
//! rendering, with file and line ([`ConditionalError`]).
//!
//! A template whose rendered text has no element left (only the XML declaration, comments and
//! white space: its whole `TrustFrameworkPolicy` sat in a dropped block) is not written at all
//! ([`has_element`]), and an earlier rendering of it is removed: a policy that a setting turns
//! off is neither rendered nor uploaded.
//!
//! After the blocks are dropped, the `Order` attributes of the `OrchestrationStep`s of every
//! `UserJourney` (and `SubJourney`) are renumbered 1..N in document order ([`renumber_steps`]),
//! so a template numbers its steps for the variant with every block kept.

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

/// The marker comment every policy template of ours carries right after the XML declaration:
/// `deploy/upload-policies.sh` uploads only files carrying it and refuses to overwrite a tenant
/// policy whose current text lacks it.
pub const MANAGED_POLICY_MARKER: &str = "<!-- b2c-authy:managed-policy -->";

/// The PolicyId of our layer, which our relying parties inherit from.
pub const LAYER_POLICY_ID: &str = "B2C_1A_AuthyExtensions";

/// `PolicySettings` key: the starter pack the tenant's policies are built on ([`StarterPack`]).
pub const STARTER_PACK_KEY: &str = "StarterPack";
/// `PolicySettings` key: the social identity providers our journeys offer ([`SocialProviders`]).
pub const SOCIAL_PROVIDERS_KEY: &str = "SocialProviders";
/// `PolicySettings` key: the PolicyId our layer inherits from (the tenant's extensions policy).
pub const AUTHY_BASE_POLICY_KEY: &str = "AuthyBasePolicy";
/// `PolicySettings` key: `true` when the wait page runs the optional template's script.
pub const WAIT_PAGE_SCRIPT_KEY: &str = "AuthyWaitPageScript";
/// `PolicySettings` key: `true` when the sign-in journey skips the push inside a B2C SSO session
/// that approved one for the same authy id (`policies/AuthyExtensions.xml`, SM-AuthyMFA).
pub const MFA_PER_SESSION_KEY: &str = "AuthyMfaPerSession";
/// `PolicySettings` key: the wait page's template (`LoadUri` of its content definition).
pub const WAIT_PAGE_LOAD_URI_KEY: &str = "AuthyWaitPageLoadUri";

/// `PolicySettings` key: `true` renders the self-service lost-phone journey (email code, new
/// phone, push on it) and its relying party `B2C_1A_authy_recoverphone`; `false` (the default)
/// renders nothing of it.
pub const PHONE_RECOVERY_KEY: &str = "AuthyPhoneRecovery";

/// `PolicySettings` key: the application name the push shows ("Application"), optional.
pub const APPLICATION_NAME_KEY: &str = "AuthyApplicationName";

/// The longest `AuthyApplicationName`, in characters: what the API shows of an `applicationName`
/// (`functions::MAX_APPLICATION_NAME_CHARS`; this module stays below the API in the layering, so
/// `tests/it/policy_contract.rs` checks that the two agree).
pub const APPLICATION_NAME_MAX_CHARS: usize = 64;

/// The `PolicySettings` keys that may be absent or empty: `{If:Key}` tests whether one is set.
pub const OPTIONAL_KEYS: [&str; 1] = [APPLICATION_NAME_KEY];

/// The values a missing `PolicySettings` key of the layer takes, for placeholders, conditional
/// blocks and [`Environment::layer_settings`] alike.
pub const SETTING_DEFAULTS: [(&str, &str); 6] = [
    (STARTER_PACK_KEY, "SocialAndLocalAccounts"),
    (SOCIAL_PROVIDERS_KEY, "None"),
    (AUTHY_BASE_POLICY_KEY, "B2C_1A_TrustFrameworkExtensions"),
    (WAIT_PAGE_SCRIPT_KEY, "false"),
    (PHONE_RECOVERY_KEY, "false"),
    (MFA_PER_SESSION_KEY, "true"),
];

/// `PolicySettings` keys of earlier versions, which the layer no longer uses, and why: rendering
/// fails while one is still there, so that a value meant for B2C is not silently dropped.
pub const REMOVED_KEYS: [(&str, &str); 3] = [
    (
        "FacebookClientId",
        "the Facebook app id belongs in your own TrustFrameworkExtensions policy (technical profile Facebook-OAUTH); set SocialProviders to Facebook to offer it in our journeys",
    ),
    (
        "IdentityExperienceFrameworkAppId",
        "it belongs in your own TrustFrameworkExtensions policy (technical profile login-NonInteractive), which our layer inherits from",
    ),
    (
        "ProxyIdentityExperienceFrameworkAppId",
        "it belongs in your own TrustFrameworkExtensions policy (technical profile login-NonInteractive), which our layer inherits from",
    ),
];

/// Whether `key`, a `PolicySettings` key as written, is a near miss of one of the layer keys that
/// may be absent ([`SETTING_DEFAULTS`], [`OPTIONAL_KEYS`]): the same key in other case, or at
/// most two characters added, removed or changed (Levenshtein distance, compared ignoring ASCII
/// case). Returns the key it was meant to be. Such a misspelling is never an error elsewhere:
/// no template names it, and the real key, absent, silently takes its default (a misspelt
/// `"AuthyMfaPerSesion": "false"` would leave the push skipped within SSO sessions).
fn misspelt_layer_key(key: &str) -> Option<&'static str> {
    SETTING_DEFAULTS
        .iter()
        .map(|(k, _)| *k)
        .chain(OPTIONAL_KEYS)
        .find(|known| *known != key && edit_distance_ignoring_case(known, key) <= 2)
}

/// The Levenshtein distance between `a` and `b`, in characters, ASCII letters compared ignoring
/// case.
fn edit_distance_ignoring_case(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The built-in page layouts B2C serves itself (`~/tenant/templates/...`, MS docs
/// "contentdefinitions"): they carry no script of ours.
const BUILT_IN_PAGE_PREFIX: &str = "~/";

/// The Azure AD B2C custom policy starter pack a tenant's Base, Localization and Extensions
/// policies are built on (Azure-Samples/active-directory-b2c-custom-policy-starterpack; MS docs
/// "tutorial-create-user-flows").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StarterPack {
    /// `LocalAccounts`: email and password only, no social identity provider.
    LocalAccounts,
    /// `SocialAndLocalAccounts`: local accounts and Facebook.
    SocialAndLocalAccounts,
    /// `SocialAndLocalAccountsWithMfa`: as `SocialAndLocalAccounts`, plus phone MFA.
    SocialAndLocalAccountsWithMfa,
}

impl StarterPack {
    /// Every pack.
    pub const ALL: [Self; 3] = [
        Self::LocalAccounts,
        Self::SocialAndLocalAccounts,
        Self::SocialAndLocalAccountsWithMfa,
    ];

    /// The setting's spelling, also the pack's folder name in the starter pack repository.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalAccounts => "LocalAccounts",
            Self::SocialAndLocalAccounts => "SocialAndLocalAccounts",
            Self::SocialAndLocalAccountsWithMfa => "SocialAndLocalAccountsWithMfa",
        }
    }

    /// Whether the pack's Base policy defines the social identity provider technical profiles
    /// (Facebook-OAUTH, AAD-UserReadUsingAlternativeSecurityId, SelfAsserted-Social, ...).
    pub fn has_social_accounts(self) -> bool {
        self != Self::LocalAccounts
    }
}

impl fmt::Display for StarterPack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `StarterPack` value that names no starter pack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a starter pack: use LocalAccounts, SocialAndLocalAccounts or SocialAndLocalAccountsWithMfa (the pack your tenant's TrustFrameworkBase was built from)")]
pub struct UnknownStarterPack(pub String);

impl std::str::FromStr for StarterPack {
    type Err = UnknownStarterPack;

    /// Exact, case-sensitive spelling, as the conditional blocks compare it.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|pack| pack.as_str() == value)
            .ok_or_else(|| UnknownStarterPack(value.to_owned()))
    }
}

/// The social identity providers our journeys offer besides local accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocialProviders {
    /// `None`: local accounts only; no social button appears.
    None,
    /// `Facebook`: the starter pack's Facebook-OAUTH, configured in the tenant's own extensions
    /// policy (its app id) and policy key B2C_1A_FacebookSecret.
    Facebook,
}

impl SocialProviders {
    /// Every value.
    pub const ALL: [Self; 2] = [Self::None, Self::Facebook];

    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Facebook => "Facebook",
        }
    }
}

impl fmt::Display for SocialProviders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `SocialProviders` value that is neither `None` nor `Facebook`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a social provider setting: use None or Facebook")]
pub struct UnknownSocialProviders(pub String);

impl std::str::FromStr for SocialProviders {
    type Err = UnknownSocialProviders;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == value)
            .ok_or_else(|| UnknownSocialProviders(value.to_owned()))
    }
}

/// A boolean setting that is neither `true` nor `false` (lower case, as in JSON).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not true or false")]
pub struct NotABoolean(pub String);

fn parse_bool(value: &str) -> Result<bool, NotABoolean> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(NotABoolean(other.to_owned())),
    }
}

/// The parsed layer settings of one environment (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSettings {
    /// `StarterPack`.
    pub starter_pack: StarterPack,
    /// `SocialProviders`.
    pub social_providers: SocialProviders,
    /// `AuthyBasePolicy`: the PolicyId our layer inherits from.
    pub authy_base_policy: String,
    /// `AuthyWaitPageScript`.
    pub wait_page_script: bool,
    /// `AuthyPhoneRecovery`: whether the self-service lost-phone journey is rendered.
    pub phone_recovery: bool,
    /// `AuthyMfaPerSession`.
    pub mfa_per_session: bool,
}

/// Whether `value`, set for one of the typed keys, is one of its values: `Ok(())` for any other
/// key. The conditional blocks use it to refuse values that could never match.
fn check_typed_value(key: &str, value: &str) -> Result<(), String> {
    let result = match key {
        STARTER_PACK_KEY => value
            .parse::<StarterPack>()
            .map(drop)
            .map_err(|e| e.to_string()),
        SOCIAL_PROVIDERS_KEY => value
            .parse::<SocialProviders>()
            .map(drop)
            .map_err(|e| e.to_string()),
        WAIT_PAGE_SCRIPT_KEY | PHONE_RECOVERY_KEY | MFA_PER_SESSION_KEY => {
            parse_bool(value).map(drop).map_err(|e| e.to_string())
        }
        _ => Ok(()),
    };
    result.map_err(|e| format!("{key}: {e}"))
}

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

/// A conditional block directive that cannot be applied, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionalError {
    /// The policy file (template) it is in.
    pub file: PathBuf,
    /// 1-based line number (of the `{If}` for an `{If}` without `{EndIf}`).
    pub line: usize,
    /// The line as written, trimmed.
    pub directive: String,
    /// What is wrong.
    pub problem: ConditionalProblem,
}

/// Why a conditional block directive cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionalProblem {
    /// `{If:Key...}` names neither `Tenant`, a `PolicySettings` key nor a key with a default.
    UnknownKey(String),
    /// `{If:Key...}` names a key whose value is empty or only white space.
    EmptyValue(String),
    /// A value the key can never have (the message says which values it can have).
    InvalidValue(String),
    /// `{If:Key}` names a key that is not optional ([`OPTIONAL_KEYS`]).
    NotOptional(String),
    /// Not `<!--{If:Key=V1|V2}-->`, `<!--{If:Key!=V1|V2}-->` or `<!--{EndIf}-->`.
    Malformed,
    /// A directive that shares its line with other text.
    NotAlone,
    /// `{EndIf}` with no `{If}` open.
    EndIfWithoutIf,
    /// `{If}` never closed by an `{EndIf}`.
    IfWithoutEndIf,
}

impl fmt::Display for ConditionalProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownKey(key) => write!(f, "no such key '{key}' in PolicySettings"),
            Self::EmptyValue(key) => write!(f, "the value of '{key}' is empty"),
            Self::InvalidValue(why) => f.write_str(why),
            Self::NotOptional(key) => write!(
                f,
                "{{If:{key}}} tests whether an optional key is set, and '{key}' is not one of {OPTIONAL_KEYS:?}"
            ),
            Self::Malformed => f.write_str(
                "not a conditional directive: write <!--{If:Key=Value1|Value2}-->, <!--{If:Key!=Value}-->, <!--{If:OptionalKey}--> or <!--{EndIf}-->",
            ),
            Self::NotAlone => f.write_str(
                "a conditional directive must stand alone on its line, as <!--{If:Key=Value}--> or <!--{EndIf}-->",
            ),
            Self::EndIfWithoutIf => f.write_str("{EndIf} without an open {If}"),
            Self::IfWithoutEndIf => f.write_str("{If} without its {EndIf}"),
        }
    }
}

/// What [`render_text`] found wrong in one template: conditional block errors (then placeholders
/// are not looked at), or else placeholders without a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateErrors {
    /// Conditional block directives that cannot be applied, in line order.
    pub conditionals: Vec<ConditionalError>,
    /// Placeholders, on the lines kept, without a value, in line order.
    pub missing: Vec<MissingValue>,
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
    /// The layer settings of an environment are unusable (see [`Environment::layer_settings`]);
    /// nothing was written.
    #[error("environment '{environment}': PolicySettings cannot be used; nothing was rendered:{}", problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    InvalidLayerSettings {
        /// The environment being rendered.
        environment: String,
        /// Every problem, one sentence each, starting with the key.
        problems: Vec<String>,
    },
    /// Conditional block directives that cannot be applied; nothing was written.
    #[error("{}", ConditionalErrors { environment, errors })]
    Conditionals {
        /// The environment being rendered.
        environment: String,
        /// Every such directive, in file and line order.
        errors: Vec<ConditionalError>,
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

/// Display helper for [`PolicyError::Conditionals`].
struct ConditionalErrors<'a> {
    environment: &'a str,
    errors: &'a [ConditionalError],
}

impl fmt::Display for ConditionalErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "environment '{}': {} conditional block directive(s) cannot be applied; nothing was rendered:",
            self.environment,
            self.errors.len()
        )?;
        for e in self.errors {
            write!(
                f,
                "\n  {}:{}: {}: {}",
                e.file.display(),
                e.line,
                e.directive,
                e.problem
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
    /// The value of `{Settings:<key>}`: `Tenant` for `Tenant`, else `PolicySettings[key]`, else
    /// the key's default ([`SETTING_DEFAULTS`]); `None` when there is no such key or its value is
    /// blank.
    pub fn value(&self, key: &str) -> Option<&str> {
        let value = if key == TENANT_KEY {
            Some(self.tenant.as_str())
        } else {
            self.policy_settings
                .get(key)
                .map(String::as_str)
                .or_else(|| {
                    SETTING_DEFAULTS
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, v)| *v)
                })
        };
        value.filter(|v| !v.trim().is_empty())
    }

    /// The layer settings (module docs, "The layer settings"), parsed and checked together.
    ///
    /// # Errors
    /// Every problem, one sentence each starting with the key: a value that is empty or not one
    /// of the key's values, `SocialProviders` `Facebook` with `StarterPack` `LocalAccounts`,
    /// `AuthyWaitPageScript` `true` with a built-in (`~/...`) `AuthyWaitPageLoadUri`, an
    /// `AuthyBasePolicy` that is not a custom policy id (or is our layer itself), a key of
    /// [`REMOVED_KEYS`].
    pub fn layer_settings(&self) -> Result<LayerSettings, Vec<String>> {
        let mut problems = Vec::new();
        for (key, why) in REMOVED_KEYS {
            if self.policy_settings.contains_key(key) {
                problems.push(format!("{key} is no longer used, remove it: {why}"));
            }
        }
        for key in self.policy_settings.keys() {
            if let Some(meant) = misspelt_layer_key(key) {
                let effect = match self.value(meant) {
                    Some(value) => format!("{meant} takes its default, {value}"),
                    None => format!("{meant} stays unset"),
                };
                problems.push(format!(
                    "{key} is not a setting; did you mean {meant}? As written it would be ignored and {effect}"
                ));
            }
        }
        let mut typed = |key: &str| match self.value(key) {
            Some(value) => match check_typed_value(key, value) {
                Ok(()) => Some(value.to_owned()),
                Err(problem) => {
                    problems.push(problem);
                    None
                }
            },
            None => {
                problems.push(format!("{key}: the value is empty"));
                None
            }
        };
        let starter_pack = typed(STARTER_PACK_KEY).and_then(|v| v.parse::<StarterPack>().ok());
        let social_providers =
            typed(SOCIAL_PROVIDERS_KEY).and_then(|v| v.parse::<SocialProviders>().ok());
        let wait_page_script = typed(WAIT_PAGE_SCRIPT_KEY).and_then(|v| parse_bool(&v).ok());
        let phone_recovery = typed(PHONE_RECOVERY_KEY).and_then(|v| parse_bool(&v).ok());
        let mfa_per_session = typed(MFA_PER_SESSION_KEY).and_then(|v| parse_bool(&v).ok());
        let authy_base_policy = typed(AUTHY_BASE_POLICY_KEY);

        if let Some(base) = &authy_base_policy {
            let custom_policy_id = base.len() > "B2C_1A_".len()
                && base[.."B2C_1A_".len()].eq_ignore_ascii_case("B2C_1A_")
                && base
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !custom_policy_id {
                problems.push(format!(
                    "{AUTHY_BASE_POLICY_KEY}: '{base}' is not a custom policy id (B2C_1A_ followed by letters, digits, '_' or '-'); name your tenant's extensions policy, usually B2C_1A_TrustFrameworkExtensions"
                ));
            } else if base.eq_ignore_ascii_case(LAYER_POLICY_ID) {
                problems.push(format!(
                    "{AUTHY_BASE_POLICY_KEY}: '{base}' is our layer itself; name your tenant's extensions policy, usually B2C_1A_TrustFrameworkExtensions"
                ));
            }
        }
        if let Some(name) = self.value(APPLICATION_NAME_KEY) {
            if name.chars().count() > APPLICATION_NAME_MAX_CHARS
                || name.chars().any(|c| c.is_control() || "<>&\"'".contains(c))
            {
                problems.push(format!(
                    "{APPLICATION_NAME_KEY}: '{name}' must be at most {APPLICATION_NAME_MAX_CHARS} characters, without < > & \" ' or control characters (or empty: no application name in the push)"
                ));
            }
        }
        if starter_pack.is_some_and(|pack| !pack.has_social_accounts())
            && social_providers == Some(SocialProviders::Facebook)
        {
            problems.push(format!(
                "{SOCIAL_PROVIDERS_KEY}: Facebook needs a starter pack with social accounts, and the LocalAccounts pack's TrustFrameworkBase defines no Facebook-OAUTH: set {SOCIAL_PROVIDERS_KEY} to None, or {STARTER_PACK_KEY} to the pack your tenant's policies are built on"
            ));
        }
        if wait_page_script == Some(true) {
            if let Some(uri) = self
                .value(WAIT_PAGE_LOAD_URI_KEY)
                .filter(|u| u.trim_start().starts_with(BUILT_IN_PAGE_PREFIX))
            {
                problems.push(format!(
                    "{WAIT_PAGE_SCRIPT_KEY}: true, but {WAIT_PAGE_LOAD_URI_KEY} '{uri}' is a page layout B2C serves itself, which carries no script: host policies/templates/authy-wait.html and point {WAIT_PAGE_LOAD_URI_KEY} at it, or set {WAIT_PAGE_SCRIPT_KEY} to false"
                ));
            }
        }
        match (
            starter_pack,
            social_providers,
            authy_base_policy,
            wait_page_script,
            phone_recovery,
            mfa_per_session,
        ) {
            (
                Some(starter_pack),
                Some(social_providers),
                Some(authy_base_policy),
                Some(script),
                Some(phone_recovery),
                Some(mfa_per_session),
            ) if problems.is_empty() => Ok(LayerSettings {
                starter_pack,
                social_providers,
                authy_base_policy,
                wait_page_script: script,
                phone_recovery,
                mfa_per_session,
            }),
            _ => Err(problems),
        }
    }
}

/// Replaces every `{Settings:<Key>}` in `text` with its value in `env`, after dropping the
/// conditional blocks whose condition does not hold (module docs), and renumbers the journeys'
/// steps ([`renumber_steps`]).
///
/// `file` only labels the errors.
///
/// # Errors
/// Every conditional directive that cannot be applied, in order; when there is none, every
/// placeholder without a value (unknown key, blank value, unterminated) on the lines kept.
pub fn render_text(text: &str, env: &Environment, file: &Path) -> Result<String, TemplateErrors> {
    let lines = select_lines(text, env, file).map_err(|conditionals| TemplateErrors {
        conditionals,
        missing: Vec::new(),
    })?;
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    for (number, line) in lines {
        replace_placeholders(line, number, env, file, &mut out, &mut missing);
    }
    if missing.is_empty() {
        Ok(renumber_steps(&out))
    } else {
        Err(TemplateErrors {
            conditionals: Vec::new(),
            missing,
        })
    }
}

/// Appends `line` (line `number` of `file`) to `out` with its placeholders replaced; records the
/// placeholders without a value in `missing`.
fn replace_placeholders(
    line: &str,
    number: usize,
    env: &Environment,
    file: &Path,
    out: &mut String,
    missing: &mut Vec<MissingValue>,
) {
    let mut rest = line;
    while let Some(start) = rest.find(PLACEHOLDER_START) {
        out.push_str(&rest[..start]);
        let after = &rest[start + PLACEHOLDER_START.len()..];
        let problem = |placeholder: &str, reason| MissingValue {
            file: file.to_owned(),
            line: number,
            placeholder: placeholder.to_owned(),
            reason,
        };
        let Some(end) = after.find('}') else {
            missing.push(problem(
                rest[start..].trim_end(),
                MissingReason::Unterminated,
            ));
            return;
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

/// One template line, as the conditional blocks see it.
enum Directive<'a> {
    /// Not a directive: text to keep or drop.
    Text,
    /// `{If:key=values}`, or `{If:key!=values}` (`negated`).
    If {
        key: &'a str,
        negated: bool,
        values: Vec<&'a str>,
    },
    /// `{If:key}`: whether an optional key is set.
    IfSet { key: &'a str },
    /// `{EndIf}`.
    EndIf,
    /// A line that holds a directive but cannot be one.
    Invalid(ConditionalProblem),
}

fn directive(line: &str) -> Directive<'_> {
    // Any case: a directive misspelt `{if:` or `{endif}` must fail, not pass for a comment
    // whose block is then always kept.
    let lower = line.to_ascii_lowercase();
    if !lower.contains("{if:") && !lower.contains("{endif") {
        return Directive::Text;
    }
    let trimmed = line.trim();
    let Some(inner) = trimmed
        .strip_prefix("<!--")
        .and_then(|l| l.strip_suffix("-->"))
    else {
        return Directive::Invalid(ConditionalProblem::NotAlone);
    };
    if inner.contains("-->") || inner.contains("<!--") {
        return Directive::Invalid(ConditionalProblem::NotAlone);
    }
    let inner = inner.trim();
    if inner == "{EndIf}" {
        return Directive::EndIf;
    }
    let Some(body) = inner.strip_prefix("{If:").and_then(|b| b.strip_suffix('}')) else {
        return Directive::Invalid(if inner.starts_with('{') && inner.ends_with('}') {
            ConditionalProblem::Malformed
        } else {
            ConditionalProblem::NotAlone
        });
    };
    let (key, negated, values) = match (body.split_once("!="), body.split_once('=')) {
        (Some((key, values)), _) => (key, true, values),
        (None, Some((key, values))) => (key, false, values),
        (None, None) => {
            let key = body.trim();
            if key.is_empty() || key.contains(|c: char| c.is_whitespace() || "{}=!|".contains(c)) {
                return Directive::Invalid(ConditionalProblem::Malformed);
            }
            return Directive::IfSet { key };
        }
    };
    let key = key.trim();
    let values: Vec<&str> = values.split('|').map(str::trim).collect();
    let bad_key =
        key.is_empty() || key.contains(|c: char| c.is_whitespace() || "{}=!|".contains(c));
    if bad_key
        || values
            .iter()
            .any(|v| v.is_empty() || v.contains(['{', '}', '=']))
    {
        return Directive::Invalid(ConditionalProblem::Malformed);
    }
    Directive::If {
        key,
        negated,
        values,
    }
}

/// Whether the block of `{If:key=values}` (or `!=`) is kept for `env`.
fn condition_holds(
    env: &Environment,
    key: &str,
    negated: bool,
    values: &[&str],
) -> Result<bool, ConditionalProblem> {
    let Some(actual) = env.value(key) else {
        return Err(
            if env.policy_settings.contains_key(key) || key == TENANT_KEY {
                ConditionalProblem::EmptyValue(key.to_owned())
            } else {
                ConditionalProblem::UnknownKey(key.to_owned())
            },
        );
    };
    for value in values {
        check_typed_value(key, value).map_err(ConditionalProblem::InvalidValue)?;
    }
    Ok(values.contains(&actual) != negated)
}

/// The lines of `text` to render, with their 1-based line numbers: conditional blocks applied,
/// directive lines left out.
fn select_lines<'t>(
    text: &'t str,
    env: &Environment,
    file: &Path,
) -> Result<Vec<(usize, &'t str)>, Vec<ConditionalError>> {
    let mut kept = Vec::new();
    let mut errors = Vec::new();
    // The open blocks: (line number, directive, whether it keeps its lines).
    let mut open: Vec<(usize, &str, bool)> = Vec::new();
    let error = |line: usize, directive: &str, problem| ConditionalError {
        file: file.to_owned(),
        line,
        directive: directive.to_owned(),
        problem,
    };
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        match directive(line) {
            Directive::Text => {
                if open.iter().all(|(_, _, keep)| *keep) {
                    kept.push((number, line));
                }
            }
            Directive::If {
                key,
                negated,
                values,
            } => {
                let keep = condition_holds(env, key, negated, &values).unwrap_or_else(|problem| {
                    errors.push(error(number, line.trim(), problem));
                    true
                });
                open.push((number, line.trim(), keep));
            }
            Directive::IfSet { key } => {
                let keep = if OPTIONAL_KEYS.contains(&key) {
                    env.value(key).is_some()
                } else {
                    errors.push(error(
                        number,
                        line.trim(),
                        ConditionalProblem::NotOptional(key.to_owned()),
                    ));
                    true
                };
                open.push((number, line.trim(), keep));
            }
            Directive::EndIf => {
                if open.pop().is_none() {
                    errors.push(error(
                        number,
                        line.trim(),
                        ConditionalProblem::EndIfWithoutIf,
                    ));
                }
            }
            Directive::Invalid(problem) => errors.push(error(number, line.trim(), problem)),
        }
    }
    for (number, directive, _) in open {
        errors.push(error(number, directive, ConditionalProblem::IfWithoutEndIf));
    }
    if errors.is_empty() {
        Ok(kept)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// Whether `xml` holds an element: anything but the XML declaration (or another processing
/// instruction), comments and text. [`render_environment`] writes no file for a template whose
/// rendered text has none.
pub fn has_element(xml: &str) -> bool {
    let mut rest = xml;
    while let Some(at) = rest.find('<') {
        rest = &rest[at..];
        let end = if rest.starts_with("<!--") {
            "-->"
        } else if rest.starts_with("<?") {
            "?>"
        } else {
            return true;
        };
        match rest.find(end) {
            Some(e) => rest = &rest[e + end.len()..],
            None => return false,
        }
    }
    false
}

/// Renumbers the `Order` attribute of the `OrchestrationStep` elements of every `UserJourney` and
/// `SubJourney` of a policy 1..N in document order, leaving all other text as it is. Comments are
/// skipped; a step without an `Order` attribute is left alone (and still counted).
pub fn renumber_steps(xml: &str) -> String {
    /// Whether `rest` starts with the tag `<name` (not a longer name such as `<UserJourneys`).
    fn opens(rest: &str, name: &str) -> bool {
        rest.strip_prefix(name).is_some_and(|after| {
            after
                .chars()
                .next()
                .is_some_and(|c| c.is_whitespace() || c == '>' || c == '/')
        })
    }
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    let mut step: Option<usize> = None; // Some(steps so far) inside a journey
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = if rest.starts_with("<!--") {
            rest.find("-->").map_or(rest.len(), |e| e + 3)
        } else if opens(rest, "<UserJourney") || opens(rest, "<SubJourney") {
            step = Some(0);
            1
        } else if opens(rest, "</UserJourney") || opens(rest, "</SubJourney") {
            step = None;
            1
        } else if let (Some(count), true) = (step.as_mut(), opens(rest, "<OrchestrationStep")) {
            *count += 1;
            let tag_end = rest.find('>').map_or(rest.len(), |e| e + 1);
            out.push_str(&with_order(&rest[..tag_end], *count));
            rest = &rest[tag_end..];
            continue;
        } else {
            1
        };
        out.push_str(&rest[..end]);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The start tag `tag` with the value of its `Order` attribute replaced by `order`.
fn with_order(tag: &str, order: usize) -> String {
    for (at, _) in tag.match_indices("Order") {
        let preceded_by_space = tag[..at].ends_with(char::is_whitespace);
        let after = tag[at + "Order".len()..].trim_start();
        let Some(value) = after.strip_prefix('=').map(str::trim_start) else {
            continue;
        };
        let Some(quote) = value.chars().next().filter(|q| *q == '"' || *q == '\'') else {
            continue;
        };
        let Some(len) = value[1..].find(quote) else {
            continue;
        };
        if !preceded_by_space {
            continue;
        }
        let value_start = tag.len() - value.len() + 1;
        return format!(
            "{}{order}{}",
            &tag[..value_start],
            &tag[value_start + len..]
        );
    }
    tag.to_owned()
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
/// The layer settings are checked first ([`Environment::layer_settings`]); all files are then
/// rendered in memory: on any error nothing is written. A template whose rendered text has no
/// element ([`has_element`]: its policy sat in a block its settings drop) is not written, and
/// its file from an earlier rendering is removed. Returns the written files, sorted.
///
/// # Errors
/// [`PolicyError::InvalidLayerSettings`], [`PolicyError::Conditionals`] (every directive that
/// cannot be applied in every file), [`PolicyError::MissingValues`] (every placeholder without a
/// value in every file), [`PolicyError::NoPolicyFiles`], [`PolicyError::Io`].
pub fn render_environment(
    policies_dir: &Path,
    env: &Environment,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, PolicyError> {
    env.layer_settings()
        .map_err(|problems| PolicyError::InvalidLayerSettings {
            environment: env.name.clone(),
            problems,
        })?;
    let mut rendered = Vec::new();
    let mut conditionals = Vec::new();
    let mut missing = Vec::new();
    for template in policy_files(policies_dir)? {
        let text = fs::read_to_string(&template).map_err(|source| PolicyError::Io {
            path: template.clone(),
            source,
        })?;
        match render_text(&text, env, &template) {
            // Nothing left but the declaration and comments: a policy its settings turn off.
            Ok(text) if !has_element(&text) => {}
            Ok(text) => rendered.push((template, text)),
            Err(found) => {
                conditionals.extend(found.conditionals);
                missing.extend(found.missing);
            }
        }
    }
    if !conditionals.is_empty() {
        return Err(PolicyError::Conditionals {
            environment: env.name.clone(),
            errors: conditionals,
        });
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
        render_text(text, &env(), Path::new("p.xml")).map_err(|e| {
            assert!(e.conditionals.is_empty(), "{:?}", e.conditionals);
            e.missing
        })
    }

    fn env_with(settings: &[(&str, &str)]) -> Environment {
        let mut env = env();
        for (k, v) in settings {
            env.policy_settings.insert((*k).to_owned(), (*v).to_owned());
        }
        env
    }

    fn render_in(env: &Environment, text: &str) -> Result<String, TemplateErrors> {
        render_text(text, env, Path::new("p.xml"))
    }

    /// The conditional errors of rendering `text`: (line, problem).
    fn conditional_errors(env: &Environment, text: &str) -> Vec<(usize, ConditionalProblem)> {
        let errors = render_in(env, text).unwrap_err();
        assert!(errors.missing.is_empty(), "{errors:?}");
        errors
            .conditionals
            .into_iter()
            .map(|e| (e.line, e.problem))
            .collect()
    }

    const FACEBOOK_BLOCK: &str = "<a>\n  <!--{If:SocialProviders=Facebook}-->\n  <fb/>\n  <!--{EndIf}-->\n  <local/>\n</a>\n";

    #[test]
    fn conditional_blocks_are_kept_or_dropped_by_the_setting() {
        let none = render_in(&env(), FACEBOOK_BLOCK).unwrap();
        assert_eq!(none, "<a>\n  <local/>\n</a>\n");
        let facebook = render_in(
            &env_with(&[("SocialProviders", "Facebook")]),
            FACEBOOK_BLOCK,
        )
        .unwrap();
        assert_eq!(facebook, "<a>\n  <fb/>\n  <local/>\n</a>\n");
    }

    #[test]
    fn an_optional_key_keeps_its_block_only_when_set() {
        let text = "<a>\n<!--{If:AuthyApplicationName}-->\n<n>{Settings:AuthyApplicationName}</n>\n<!--{EndIf}-->\n</a>\n";
        // Absent, empty or blank: the block and its placeholder go.
        for env in [
            env(),
            env_with(&[("AuthyApplicationName", "")]),
            env_with(&[("AuthyApplicationName", "  ")]),
        ] {
            assert_eq!(render_in(&env, text).unwrap(), "<a>\n</a>\n");
        }
        let named = env_with(&[("AuthyApplicationName", "Contoso Shop")]);
        assert_eq!(
            render_in(&named, text).unwrap(),
            "<a>\n<n>Contoso Shop</n>\n</a>\n"
        );
    }

    #[test]
    fn an_application_name_that_would_break_the_xml_or_the_push_is_refused() {
        for bad in [
            "Contoso & Co",
            "<b>",
            "Say \"hi\"",
            "it's",
            "tab\there",
            &"x".repeat(APPLICATION_NAME_MAX_CHARS + 1),
        ] {
            let problems = layer_problems(&[("AuthyApplicationName", bad)]);
            assert!(
                problems.starts_with("AuthyApplicationName: '"),
                "{bad}: {problems}"
            );
        }
        for good in [
            "",
            "Contoso Shop",
            "Café Zürich",
            &"x".repeat(APPLICATION_NAME_MAX_CHARS),
        ] {
            assert!(
                env_with(&[("AuthyApplicationName", good)])
                    .layer_settings()
                    .is_ok(),
                "{good}"
            );
        }
    }

    #[test]
    fn conditions_take_alternatives_negation_and_nest() {
        let text = "<!--{If:StarterPack=LocalAccounts|SocialAndLocalAccountsWithMfa}-->\nA\n<!--{If:AuthyWaitPageScript!=true}-->\nB\n<!--{EndIf}-->\n<!--{EndIf}-->\n<!--{If:ApiUrl=https://api.example}-->\nC\n<!--{EndIf}-->\n";
        let mfa = env_with(&[("StarterPack", "SocialAndLocalAccountsWithMfa")]);
        assert_eq!(render_in(&mfa, text).unwrap(), "A\nB\nC\n");
        let mut script = mfa.clone();
        script
            .policy_settings
            .insert("AuthyWaitPageScript".into(), "true".into());
        assert_eq!(render_in(&script, text).unwrap(), "A\nC\n");
        // The default StarterPack is SocialAndLocalAccounts: the outer block, nested one included, goes.
        assert_eq!(render_in(&env(), text).unwrap(), "C\n");
    }

    #[test]
    fn placeholders_in_dropped_blocks_need_no_value_and_lines_keep_their_numbers() {
        let text = "<!--{If:SocialProviders=Facebook}-->\n{Settings:FacebookAppId}\n<!--{EndIf}-->\n{Settings:Nope}\n";
        let missing = render(text).unwrap_err();
        assert_eq!(missing.len(), 1, "{missing:?}");
        assert_eq!(missing[0].placeholder, "{Settings:Nope}");
        assert_eq!(missing[0].line, 4, "the template's line, not the output's");
    }

    #[test]
    fn conditional_errors_name_their_line() {
        let env = env();
        assert_eq!(
            conditional_errors(&env, "a\n<!--{If:Nope=x}-->\n<!--{EndIf}-->\n"),
            vec![(2, ConditionalProblem::UnknownKey("Nope".into()))]
        );
        assert_eq!(
            conditional_errors(&env, "<!--{If:Blank=x}-->\n<!--{EndIf}-->\n"),
            vec![(1, ConditionalProblem::EmptyValue("Blank".into()))]
        );
        assert_eq!(
            conditional_errors(&env, "a\n<!--{EndIf}-->\n"),
            vec![(2, ConditionalProblem::EndIfWithoutIf)]
        );
        assert_eq!(
            conditional_errors(
                &env,
                "a\n<!--{If:ApiUrl=x}-->\n<!--{If:ApiUrl=y}-->\n<!--{EndIf}-->\n"
            ),
            vec![(2, ConditionalProblem::IfWithoutEndIf)]
        );
        assert_eq!(
            conditional_errors(&env, "<x/><!--{If:ApiUrl=x}-->\n<!--{EndIf}-->\n"),
            // Not taken for an If, so the EndIf has none.
            vec![
                (1, ConditionalProblem::NotAlone),
                (2, ConditionalProblem::EndIfWithoutIf)
            ]
        );
        assert_eq!(
            conditional_errors(&env, "<!-- see {If:ApiUrl=x} -->\n"),
            vec![(1, ConditionalProblem::NotAlone)]
        );
        // {If:Key} only for an optional key: a misspelt one must not drop its block silently.
        assert_eq!(
            conditional_errors(&env, "<!--{If:ApiUrl}-->\n<!--{EndIf}-->\n"),
            vec![(1, ConditionalProblem::NotOptional("ApiUrl".into()))]
        );
        assert_eq!(
            conditional_errors(&env, "<!--{If:AuthyApplicatonName}-->\n<!--{EndIf}-->\n"),
            vec![(
                1,
                ConditionalProblem::NotOptional("AuthyApplicatonName".into())
            )]
        );
        for malformed in [
            "<!--{If:}-->",
            "<!--{If:Authy ApplicationName}-->",
            "<!--{If:=x}-->",
            "<!--{If:ApiUrl=}-->",
            "<!--{If:ApiUrl=a||b}-->",
            "<!--{EndIf:x}-->",
            "<!--{if:ApiUrl=x}-->",
            "<!--{endif}-->",
            "<!--{ENDIF}-->",
        ] {
            assert_eq!(
                conditional_errors(&env, &format!("{malformed}\n<!--{{EndIf}}-->\n"))[0],
                (1, ConditionalProblem::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn conditions_on_typed_keys_must_name_their_values() {
        let errors = conditional_errors(
            &env(),
            "<!--{If:SocialProviders=Facbook}-->\n<!--{EndIf}-->\n<!--{If:AuthyWaitPageScript!=yes}-->\n<!--{EndIf}-->\n<!--{If:StarterPack=Local}-->\n<!--{EndIf}-->\n<!--{If:AuthyPhoneRecovery=on}-->\n<!--{EndIf}-->\n",
        );
        let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![1, 3, 5, 7], "{errors:?}");
        let messages: Vec<String> = errors.iter().map(|(_, p)| p.to_string()).collect();
        assert!(
            messages[0].contains("'Facbook' is not a social provider setting"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("'yes' is not true or false"),
            "{messages:?}"
        );
        assert!(
            messages[2].contains("'Local' is not a starter pack"),
            "{messages:?}"
        );
        assert!(
            messages[3].contains("AuthyPhoneRecovery: 'on' is not true or false"),
            "{messages:?}"
        );
    }

    #[test]
    fn only_a_declaration_and_comments_is_no_element() {
        for empty in [
            "",
            "\n",
            "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n<!-- b2c-authy:managed-policy -->\n<!--\n  <a/> in a comment\n-->\n",
            "<!-- unterminated <a/>",
            "<?xml unterminated <a/>",
        ] {
            assert!(!has_element(empty), "{empty:?}");
        }
        for element in [
            "<a/>",
            "<?xml version=\"1.0\"?>\n<!-- x -->\n<TrustFrameworkPolicy/>",
            "text <b>",
        ] {
            assert!(has_element(element), "{element:?}");
        }
    }

    #[test]
    fn a_template_its_settings_turn_off_is_neither_written_nor_left_behind() {
        let base = std::env::temp_dir().join(format!(
            "b2c-authy-policies-off-unit-{}",
            std::process::id()
        ));
        let templates = base.join("templates");
        let out = base.join("out");
        fs::create_dir_all(&templates).unwrap();
        fs::write(templates.join("a.xml"), "<a/>\n").unwrap();
        fs::write(
            templates.join("recover.xml"),
            "<?xml version=\"1.0\"?>\n<!-- marker -->\n<!--{If:AuthyPhoneRecovery=true}-->\n<P>{Settings:ApiUrl}</P>\n<!--{EndIf}-->\n",
        )
        .unwrap();
        let on = env_with(&[("AuthyPhoneRecovery", "true")]);
        let written = render_environment(&templates, &on, &out).unwrap();
        assert_eq!(written.len(), 2, "{written:?}");
        assert_eq!(
            fs::read_to_string(out.join("recover.xml")).unwrap(),
            "<?xml version=\"1.0\"?>\n<!-- marker -->\n<P>https://api.example</P>\n"
        );
        // Off (the default): not written, and the earlier rendering is gone.
        let written = render_environment(&templates, &env(), &out).unwrap();
        assert_eq!(written, vec![out.join("a.xml")]);
        assert!(!out.join("recover.xml").exists());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn conditional_errors_are_reported_with_file_and_line() {
        let error = PolicyError::Conditionals {
            environment: "Test".into(),
            errors: render_in(&env(), "a\n<!--{If:Nope=x}-->\n")
                .unwrap_err()
                .conditionals,
        };
        let message = error.to_string();
        assert!(
            message
                .contains("environment 'Test': 2 conditional block directive(s) cannot be applied"),
            "{message}"
        );
        assert!(
            message.contains("p.xml:2: <!--{If:Nope=x}-->: no such key 'Nope' in PolicySettings"),
            "{message}"
        );
        assert!(
            message.contains("p.xml:2: <!--{If:Nope=x}-->: {If} without its {EndIf}"),
            "{message}"
        );
    }

    #[test]
    fn journey_steps_are_renumbered_after_blocks_are_dropped() {
        let text = r#"<UserJourneys>
  <!-- <OrchestrationStep Order="7"> in a comment stays -->
  <UserJourney Id="A">
    <OrchestrationStep Order="1" Type="X"/>
<!--{If:SocialProviders=Facebook}-->
    <OrchestrationStep Order="2" Type="Social"/>
<!--{EndIf}-->
    <OrchestrationStep Type="Y"
        Order = '3'>
      <Value>Order="9"</Value>
    </OrchestrationStep>
    <OrchestrationStep Order="4" Type="SendClaims"/>
  </UserJourney>
  <UserJourney Id="B"><OrchestrationSteps><OrchestrationStep Order="5" Type="SendClaims"/></OrchestrationSteps></UserJourney>
</UserJourneys>
<UserJourneyBehaviors><OrchestrationStep Order="8"/></UserJourneyBehaviors>
"#;
        let out = render_in(&env(), text).unwrap();
        assert_eq!(
            out,
            text.replace("<!--{If:SocialProviders=Facebook}-->\n    <OrchestrationStep Order=\"2\" Type=\"Social\"/>\n<!--{EndIf}-->\n", "")
                .replace("Order = '3'", "Order = '2'")
                .replace(r#"Order="4""#, r#"Order="3""#)
                .replace(r#"Order="5""#, r#"Order="1""#)
        );
        // With the block kept, the numbers are the template's.
        let facebook = env_with(&[("SocialProviders", "Facebook")]);
        let kept = render_in(&facebook, text).unwrap();
        assert!(
            kept.contains(r#"<OrchestrationStep Order="2" Type="Social"/>"#),
            "{kept}"
        );
        assert!(kept.contains("Order = '3'"), "{kept}");
    }

    #[test]
    fn layer_settings_have_defaults() {
        let settings = env().layer_settings().unwrap();
        assert_eq!(
            settings,
            LayerSettings {
                starter_pack: StarterPack::SocialAndLocalAccounts,
                social_providers: SocialProviders::None,
                authy_base_policy: "B2C_1A_TrustFrameworkExtensions".into(),
                wait_page_script: false,
                phone_recovery: false,
                mfa_per_session: true,
            }
        );
        assert_eq!(
            env().value("AuthyBasePolicy"),
            Some("B2C_1A_TrustFrameworkExtensions")
        );
    }

    #[test]
    fn starter_packs_parse_by_their_exact_names() {
        for pack in StarterPack::ALL {
            assert_eq!(pack.as_str().parse::<StarterPack>(), Ok(pack));
        }
        let error = "localaccounts".parse::<StarterPack>().unwrap_err();
        assert_eq!(error, UnknownStarterPack("localaccounts".into()));
        assert!(error.to_string().contains(
            "use LocalAccounts, SocialAndLocalAccounts or SocialAndLocalAccountsWithMfa"
        ));
        assert_eq!("Facebook".parse(), Ok(SocialProviders::Facebook));
        assert!("facebook".parse::<SocialProviders>().is_err());
    }

    /// The problems of an environment with these settings, joined.
    fn layer_problems(settings: &[(&str, &str)]) -> String {
        env_with(settings).layer_settings().unwrap_err().join("\n")
    }

    #[test]
    fn bad_layer_settings_are_refused_with_a_message() {
        let problems = layer_problems(&[
            ("StarterPack", "Social"),
            ("SocialProviders", "Google"),
            ("AuthyWaitPageScript", "yes"),
            ("AuthyPhoneRecovery", "True"),
            ("AuthyMfaPerSession", "True"),
        ]);
        assert!(
            problems.contains("StarterPack: 'Social' is not a starter pack"),
            "{problems}"
        );
        assert!(
            problems.contains("SocialProviders: 'Google' is not a social provider setting"),
            "{problems}"
        );
        assert!(
            problems.contains("AuthyWaitPageScript: 'yes' is not true or false"),
            "{problems}"
        );
        assert!(
            problems.contains("AuthyPhoneRecovery: 'True' is not true or false"),
            "{problems}"
        );
        assert!(
            problems.contains("AuthyMfaPerSession: 'True' is not true or false"),
            "{problems}"
        );
        let problems = layer_problems(&[("SocialProviders", " ")]);
        assert!(
            problems.contains("SocialProviders: the value is empty"),
            "{problems}"
        );
        for base in [
            "TrustFrameworkExtensions",
            "B2C_1A_",
            "B2C_1A_x y",
            "b2c_1a_authyextensions",
        ] {
            let problems = layer_problems(&[("AuthyBasePolicy", base)]);
            assert!(
                problems.starts_with(&format!("AuthyBasePolicy: '{base}'")),
                "{problems}"
            );
        }
        assert!(
            env_with(&[("AuthyBasePolicy", "B2C_1A_Contoso-Extensions_v2")])
                .layer_settings()
                .is_ok()
        );
    }

    #[test]
    fn facebook_needs_a_pack_with_social_accounts() {
        let problems = layer_problems(&[
            ("StarterPack", "LocalAccounts"),
            ("SocialProviders", "Facebook"),
        ]);
        assert!(
            problems
                .contains("SocialProviders: Facebook needs a starter pack with social accounts"),
            "{problems}"
        );
        for pack in ["SocialAndLocalAccounts", "SocialAndLocalAccountsWithMfa"] {
            let settings = env_with(&[("StarterPack", pack), ("SocialProviders", "Facebook")])
                .layer_settings()
                .unwrap();
            assert_eq!(settings.social_providers, SocialProviders::Facebook);
        }
        assert!(env_with(&[("StarterPack", "LocalAccounts")])
            .layer_settings()
            .is_ok());
    }

    #[test]
    fn the_wait_page_script_needs_a_page_of_our_own() {
        let problems = layer_problems(&[
            ("AuthyWaitPageScript", "true"),
            (
                "AuthyWaitPageLoadUri",
                "~/tenant/templates/AzureBlue/selfAsserted.cshtml",
            ),
        ]);
        assert!(problems.contains("AuthyWaitPageLoadUri '~/tenant/templates/AzureBlue/selfAsserted.cshtml' is a page layout B2C serves itself"), "{problems}");
        let own = env_with(&[
            ("AuthyWaitPageScript", "true"),
            (
                "AuthyWaitPageLoadUri",
                "https://contoso.blob.core.windows.net/b2c/authy-wait.html",
            ),
        ]);
        assert!(own.layer_settings().unwrap().wait_page_script);
        // Without the script, the built-in page is the default and fine.
        assert!(env_with(&[(
            "AuthyWaitPageLoadUri",
            "~/tenant/templates/AzureBlue/selfAsserted.cshtml"
        )])
        .layer_settings()
        .is_ok());
    }

    #[test]
    fn misspelt_layer_keys_are_refused_with_the_key_meant() {
        // Each would otherwise be ignored while the real key takes its default: here the push
        // would still be skipped within SSO sessions, against the setting's intent.
        let problems = layer_problems(&[("AuthyMfaPerSesion", "false")]);
        assert!(
            problems.contains("AuthyMfaPerSesion is not a setting; did you mean AuthyMfaPerSession? As written it would be ignored and AuthyMfaPerSession takes its default, true"),
            "{problems}"
        );
        for (key, meant) in [
            ("authyMfaPerSession", "AuthyMfaPerSession"),
            ("AuthyPhoneRecover", "AuthyPhoneRecovery"),
            ("AuthyPhoneRecoveryy", "AuthyPhoneRecovery"),
            ("StarterPak", "StarterPack"),
            ("SocialProvider", "SocialProviders"),
            ("AuthyWaitPageScipt", "AuthyWaitPageScript"),
            ("AuthyBasePolicys", "AuthyBasePolicy"),
            ("AuthyAplicationName", "AuthyApplicationName"),
        ] {
            let problems = layer_problems(&[(key, "true")]);
            assert!(
                problems.contains(&format!("{key} is not a setting; did you mean {meant}?")),
                "{key}: {problems}"
            );
        }
        // The keys themselves, and every other key of the shipped settings file, pass.
        let shipped: AppSettings =
            serde_json::from_str(include_str!("../policies/appsettings.json")).unwrap();
        for env in &shipped.environments {
            env.layer_settings().unwrap();
        }
        assert_eq!(edit_distance_ignoring_case("kitten", "Sitting"), 3);
        assert_eq!(edit_distance_ignoring_case("", "ab"), 2);
    }

    #[test]
    fn removed_keys_are_refused_with_where_they_went() {
        let problems = layer_problems(&[
            ("FacebookClientId", "1"),
            ("IdentityExperienceFrameworkAppId", "2"),
        ]);
        assert!(problems.contains("FacebookClientId is no longer used, remove it: the Facebook app id belongs in your own TrustFrameworkExtensions"), "{problems}");
        assert!(
            problems.contains("IdentityExperienceFrameworkAppId is no longer used"),
            "{problems}"
        );
    }

    #[test]
    fn render_environment_writes_nothing_on_bad_layer_settings() {
        let base =
            std::env::temp_dir().join(format!("b2c-authy-policies-unit-{}", std::process::id()));
        let templates = base.join("templates");
        let out = base.join("out");
        fs::create_dir_all(&templates).unwrap();
        fs::write(templates.join("a.xml"), FACEBOOK_BLOCK).unwrap();
        let bad = env_with(&[
            ("StarterPack", "LocalAccounts"),
            ("SocialProviders", "Facebook"),
        ]);
        let error = render_environment(&templates, &bad, &out).unwrap_err();
        assert!(
            matches!(&error, PolicyError::InvalidLayerSettings { environment, problems } if environment == "Test" && problems.len() == 1),
            "{error}"
        );
        assert!(error.to_string().starts_with("environment 'Test': PolicySettings cannot be used; nothing was rendered:\n  SocialProviders: Facebook"), "{error}");
        assert!(!out.exists());
        let written = render_environment(&templates, &env(), &out).unwrap();
        assert_eq!(
            fs::read_to_string(&written[0]).unwrap(),
            "<a>\n  <local/>\n</a>\n"
        );
        fs::remove_dir_all(&base).unwrap();
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
