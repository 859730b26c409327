//! The contract between the B2C custom policies (`policies/*.xml`) and the API (`src/functions/`),
//! checked offline so that a claim renamed on one side breaks this test, not a production sign-in.
//!
//! The policies are rendered from `policies/appsettings.json` into a temporary folder (never the
//! git-ignored `policies/Environments/`), once per environment and once per layer variant: the
//! first environment with every `StarterPack` × `SocialProviders` it allows × `AuthyWaitPageScript`
//! (see [`variants`]). The API side comes from the Rust types themselves:
//! request field names by `serde_introspect`, response field names by serializing a sample
//! response. Checked:
//! - every REST technical profile: its `ServiceUrl` names a function with a folder and a
//!   `function.json`; it sends only claims the function reads and expects only claims it returns;
//!   client certificate authentication, JSON body, own error messages, function key from settings;
//!   the page's language as `uiLocale`, always `{Culture:RFC5646}`;
//! - our pages are localized (`check_localization`): `SupportedLanguages` are exactly the API's
//!   languages (`ReplaceAll`), every self-asserted page of ours has its own content definition
//!   with `LocalizedResources` of ours in each language holding every string English has (its
//!   claims', display controls', messages', REST and SSPR strings), unless it is a tenant page
//!   that shows and sets nothing of ours (the lost phone's password page); no page shows a text of
//!   ours as a `DefaultValue`; the
//!   wait page's timeout message is the API's pending message (marker included) in each language
//!   and no other string carries the marker; a button a text names (the policies' or the API's)
//!   is the page's `button_continue` in that language; the phone number's pattern help is the
//!   API's `InvalidPhoneNumber` message;
//! - every technical profile, claim, content definition, claims transformation, user journey and
//!   claims exchange our files reference is defined by our files or the tenant's chain, played by
//!   the variant's starter pack: its Base, Localization and Extensions from `../shared/b2c/` (the
//!   pack's own Extensions stands in for the tenant's); steps are numbered 1..N and end with
//!   SendClaims: `b2c_authy::policy_check::check_against`, the check `render-policies
//!   --check-against` runs for users;
//! - the layer: no file of ours has the PolicyId of a tenant-chain policy (Base, Localization,
//!   Extensions), our layer inherits from `AuthyBasePolicy` and defines no id the pack's chain
//!   defines (it overrides nothing of the tenant's), every file carries the managed-policy marker,
//!   no social identity provider appears unless `SocialProviders` names it, `ScriptExecution`
//!   appears exactly when `AuthyWaitPageScript` is `true`, and Facebook with `LocalAccounts` does
//!   not render;
//! - no journey step writes `extension_authyId` before a WaitForAuthyApproval step has approved
//!   the authy id last registered;
//! - MFA once per SSO session (`AuthyMfaPerSession`): a push step is skipped only when there is
//!   no authy id to push to, or by the session precondition on the same-authy-id claim (a
//!   `CompareClaims` of `extension_authyId` with the authy id our `DefaultSSOSessionProvider`
//!   keeps), and that only in a journey that sets no password of an existing account and enrols
//!   only users without an authy id, after a comparison that runs only with an authy id, before
//!   any phone page; the session's claims are output only by the technical profile that uses
//!   that session management technical profile, copying the authy id, in a step after a push
//!   step that runs only when it approved; no technical profile that calls the API is itself a
//!   session participant; with `AuthyMfaPerSession` false nothing of it is rendered;
//! - every step that sets the password of an existing account (password reset) comes after a
//!   push step that no precondition skips;
//! - no journey calls a function of the API as an orchestration step (a 409 there ends the
//!   journey with an error redirect to the application; on a page B2C shows its message);
//! - every journey step that calls WaitForAuthyApproval is a self-asserted wait page with a page
//!   contract, whose validation technical profiles run CreateApprovalRequest, then
//!   WaitForAuthyApproval (fed CreateApprovalRequest's approvalRequestId, signInCode and
//!   newApprovalRequest), then an assertion that `approvalStatus` is exactly `approved` (with its
//!   own message); which resets `approvalStatus` before each call; and whose `setting.retryLimit`
//!   outlasts every push the burst limit allows with the handler's defaults, with a margin, and
//!   stays above the wait page template's own limit of automatic Continues;
//! - the optional wait page template's `isPendingMessage`, run with Node, takes exactly the API's
//!   "pending" messages (marked with the API's `PENDING_MARKER`), in every language, for pending
//!   and no other `userMessage` of the API in any language (so it never selects
//!   Continue after a limit, a pause or a denial); the whole script, run by Node on a faked
//!   page, selects Continue only after pending answers, never after any other answer nor after
//!   one that replaced a pending answer during its pause; it keeps its script in `<head>`, and its
//!   automatic Continues outlast the approval request;
//! - the lost-phone journey (`AuthyPhoneRecovery`, rendered only with `AuthyPhoneRecovery=true`,
//!   its relying party file only then): a local account's password, then a one-time code mailed
//!   by B2C's verification display control (Microsoft Entra SSPR profiles) to the account's own
//!   address (read from the directory, read-only, checked again on Continue), then the new phone's
//!   enrolment and a push approved on it, then the write; no step skippable (no precondition but
//!   the write's, every step's technical profile with the no-op session provider); its wait page
//!   runs the sign-in wait page's validations;
//! - `../shared/tools/check-b2c-policies --pack NAME` (XSD and references through the whole chain)
//!   passes for every environment and every variant.
//!
//! Each check is also run once on a mutated copy (a claim renamed on either side, a broken
//! reference, a write moved before the approval, CreateApprovalRequest back as an orchestration
//! step or after the wait, the sign-in code not passed on, the approval assertion removed, a retry
//! limit too low, a script moved into `<body>`, a pending matcher that takes a limit message, a
//! tenant PolicyId, a missing marker, a Facebook step or a ScriptExecution where the settings have
//! none, an override of a pack id, a session skip of the password reset's or the phone change's
//! push, a skip on the session alone, a comparison that ignores case or runs without an authy id,
//! a phone page between the comparison and the push, a session claim set before an approval, the
//! wait page as a session participant, the password set before the push) to prove it fails.
//!
//! Missing `../shared`, `xmllint` or `node` skips the checks that need them, except under
//! `CI=true`, where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{repo_root as repo, skip_or_fail};
use b2c_authy::authy::ApprovalStatus;
use b2c_authy::config::{DEFAULT_APPROVAL_TTL_SECONDS, DEFAULT_APPROVAL_WAIT_SECONDS};
use b2c_authy::error::ApiError;
use b2c_authy::functions::{
    create_approval_request, register, wait_for_authy_approval, FUNCTION_NAMES, UI_LOCALE_CLAIM,
};
use b2c_authy::messages::{Language, PENDING_MARKER};
use b2c_authy::policies::{
    self, AppSettings, Environment, LayerSettings, PolicyError, SocialProviders, StarterPack,
};
use b2c_authy::policy_check::{
    self, child, children, closure, descendants, is, is_rest, merged, metadata, profiles, text,
    Parsed, PolicyFile,
};
use b2c_authy::push_limits::{PushLimitSettings, SignInCode};
use roxmltree::{Document, Node};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_aux::serde_introspection::serde_introspect;

/// The claim that holds the authy id in the directory.
const AUTHY_ID_CLAIM: &str = "extension_authyId";
/// The policy key of the client certificate B2C presents to the API.
const CLIENT_CERTIFICATE_KEY: &str = "B2C_1A_RestApiClientCertificate";
/// The REST error messages B2C would otherwise show with the service URL in them.
const REST_ERROR_MESSAGES: [&str; 4] = [
    "DefaultUserMessageIfRequestFailed",
    "UserMessageIfCircuitOpen",
    "UserMessageIfDnsResolutionFailed",
    "UserMessageIfRequestTimeout",
];
/// The claim resolver of the page's language, an RFC 5646 tag (MS docs "claim-resolver-overview",
/// "Culture"), which every REST technical profile sends as `uiLocale`.
const UI_LOCALE_RESOLVER: &str = "{Culture:RFC5646}";
/// The self-asserted metadata whose message B2C shows when an AssertBooleanClaimIsEqualToValue of
/// a validation technical profile fails (MS docs "boolean-transformations").
const ASSERTION_MESSAGE: &str = "UserMessageIfClaimsTransformationBooleanValueIsNotEqual";
/// Failed validations a wait page allows beyond the calls one approval request can take: timeouts,
/// host restarts, the user's own Continues (the README's "The wait page and B2C's retry limit").
const RETRY_LIMIT_MARGIN: u64 = 6;
/// What a page contract for a self-asserted page starts with (MS docs "contentdefinitions",
/// "javascript-and-page-layout": scripts need a page contract).
const SELFASSERTED_CONTRACT: &str = "urn:com:microsoft:aad:b2c:elements:contract:selfasserted:";
/// The starter pack policies that stand in for the tenant's own chain, which our layer builds on.
const STARTER_PACK_BASES: [&str; 3] = [
    "TrustFrameworkBase.xml",
    "TrustFrameworkLocalization.xml",
    "TrustFrameworkExtensions.xml",
];
/// The PolicyIds of the tenant's own chain: never one of our files.
const TENANT_CHAIN_POLICY_IDS: [&str; 3] = [
    "B2C_1A_TrustFrameworkBase",
    "B2C_1A_TrustFrameworkLocalization",
    "B2C_1A_TrustFrameworkExtensions",
];
/// Our layer's file name, which the mutation tests change.
const LAYER_FILE: &str = "AuthyExtensions.xml";
/// The technical profiles of a social sign-in (the starter packs' Facebook steps): none of them
/// may appear with `SocialProviders` `None`.
const SOCIAL_PROFILES: [&str; 5] = [
    "Facebook-OAUTH",
    "AAD-UserReadUsingAlternativeSecurityId",
    "AAD-UserReadUsingAlternativeSecurityId-NoError",
    "SelfAsserted-Social",
    "AAD-UserWriteUsingAlternativeSecurityId",
];

// ---------------------------------------------------------------------------------------------
// The API side

/// The JSON field names one function reads (request) and returns (200 response).
#[derive(Clone, Debug)]
struct FunctionContract {
    reads: BTreeSet<String>,
    returns: BTreeSet<String>,
}

/// Function name → its contract, from the request and response types.
fn api_contract() -> BTreeMap<String, FunctionContract> {
    BTreeMap::from([
        (
            "Register".to_owned(),
            contract_of::<register::RegisterRequest, register::RegisterResponse>(),
        ),
        (
            "CreateApprovalRequest".to_owned(),
            contract_of::<
                create_approval_request::CreateApprovalRequestRequest,
                create_approval_request::CreateApprovalRequestResponse,
            >(),
        ),
        (
            "WaitForAuthyApproval".to_owned(),
            contract_of::<
                wait_for_authy_approval::WaitForAuthyApprovalRequest,
                wait_for_authy_approval::WaitForAuthyApprovalResponse,
            >(),
        ),
    ])
}

/// The JSON values a sample response field may take: a string claim, a boolean claim.
const SAMPLE_FIELD_VALUES: [fn() -> serde_json::Value; 2] = [
    || serde_json::Value::from("1"),
    || serde_json::Value::from(true),
];

/// A sample `Response`: every field one of [`SAMPLE_FIELD_VALUES`], the first combination its
/// own `Deserialize` accepts (the types have a handful of fields: at most 2^n tries).
fn sample_response<Response: DeserializeOwned>() -> Response {
    let fields = serde_introspect::<Response>();
    let kinds = SAMPLE_FIELD_VALUES.len();
    let combinations = kinds.pow(u32::try_from(fields.len()).unwrap());
    let mut last_error = None;
    for combination in 0..combinations {
        let sample: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let kind = combination / kinds.pow(u32::try_from(i).unwrap()) % kinds;
                (f.to_string(), SAMPLE_FIELD_VALUES[kind]())
            })
            .collect();
        match serde_json::from_value(sample.into()) {
            Ok(response) => return response,
            Err(e) => last_error = Some(e),
        }
    }
    panic!(
        "no sample {} (each field a string or a boolean) deserializes ({last_error:?}): teach SAMPLE_FIELD_VALUES its field types",
        std::any::type_name::<Response>()
    )
}

/// Request field names by introspection; response field names by building a sample response
/// ([`sample_response`]), serializing it and reading the keys.
fn contract_of<Request, Response>() -> FunctionContract
where
    Request: DeserializeOwned,
    Response: Serialize + DeserializeOwned,
{
    let reads = serde_introspect::<Request>()
        .iter()
        .map(|f| f.to_string())
        .collect();
    let response: Response = sample_response();
    let returns = match serde_json::to_value(&response).unwrap() {
        serde_json::Value::Object(fields) => fields.keys().cloned().collect(),
        other => panic!(
            "{} serializes to {other}, not an object",
            std::any::type_name::<Response>()
        ),
    };
    FunctionContract { reads, returns }
}

#[test]
fn every_function_has_a_contract_and_a_folder() {
    let api = api_contract();
    let names: BTreeSet<_> = FUNCTION_NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(
        api.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "add the new function to api_contract()"
    );
    for name in FUNCTION_NAMES {
        assert!(
            repo().join(name).join("function.json").is_file(),
            "{name}/function.json is missing"
        );
    }
    // The introspection sees the claims the brief names; the checks below rely on it.
    assert!(api["Register"].reads.contains("phoneNumber"));
    assert!(api["Register"].returns.contains("authyId"));
    assert!(api["WaitForAuthyApproval"]
        .reads
        .contains("approvalRequestId"));
    assert!(api["WaitForAuthyApproval"]
        .returns
        .contains("approvalStatus"));
    // The push's claims (issue 13): the wait page passes CreateApprovalRequest's on to the wait.
    for claim in ["approvalRequestId", "signInCode", "newApprovalRequest"] {
        assert!(
            api["CreateApprovalRequest"].returns.contains(claim),
            "{claim}"
        );
        assert!(api["WaitForAuthyApproval"].reads.contains(claim), "{claim}");
    }
    for claim in ["correlationId", "ipAddress", "applicationName"] {
        assert!(
            api["CreateApprovalRequest"].reads.contains(claim),
            "{claim}"
        );
    }
    assert!(api["WaitForAuthyApproval"].reads.contains("ipAddress"));
    // The page's language (issue 14): every function reads it.
    for name in FUNCTION_NAMES {
        assert!(api[name].reads.contains(UI_LOCALE_CLAIM), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// The policy files

fn policies_dir() -> PathBuf {
    repo().join("policies")
}

/// A policy file: its name and text.
pub(crate) type PolicyText = (String, String);

/// Every environment of `policies/appsettings.json`, rendered (in a temporary folder, removed
/// again): environment name → its policy files.
fn rendered() -> &'static [(String, Vec<PolicyText>)] {
    static RENDERED: OnceLock<Vec<(String, Vec<PolicyText>)>> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let settings = AppSettings::load(&policies_dir().join(policies::SETTINGS_FILE)).unwrap();
        settings
            .environments
            .iter()
            .map(|env| {
                let dir = temp_dir(&format!("contract-{}", env.name));
                let files = policies::render_environment(&policies_dir(), env, &dir).unwrap();
                let texts = files.iter().map(read_policy).collect();
                std::fs::remove_dir_all(&dir).unwrap();
                (env.name.clone(), texts)
            })
            .collect()
    })
}

/// The first environment's rendered policies: the base of the mutation tests (and of the
/// journey tests' wait page, `journey::WaitPage`).
pub(crate) fn sample() -> Vec<PolicyText> {
    rendered()[0].1.clone()
}

/// The first environment's policies rendered with `AuthyPhoneRecovery` `true` (the lost-phone
/// journey's tests, `journey::run_journey`).
pub(crate) fn recovery_sample() -> Vec<PolicyText> {
    variant("SocialAndLocalAccounts/None/script=false/recovery=true")
        .files
        .clone()
}

/// The first environment's policies rendered with `settings` changed (the journey tests'
/// `AuthyMfaPerSession` false).
pub(crate) fn sample_with(settings: &[(&str, &str)]) -> Vec<PolicyText> {
    let all = AppSettings::load(&policies_dir().join(policies::SETTINGS_FILE)).unwrap();
    let mut env = all.environments[0].clone();
    for (key, value) in settings {
        env.policy_settings
            .insert((*key).to_owned(), (*value).to_owned());
    }
    env.name = format!("{}-with-{}", env.name, settings.len());
    let dir = temp_dir(&format!("sample-{}", env.name));
    let files = policies::render_environment(&policies_dir(), &env, &dir).unwrap();
    let texts = files.iter().map(read_policy).collect();
    std::fs::remove_dir_all(&dir).unwrap();
    texts
}

/// One combination of the layer settings, rendered.
struct Variant {
    /// For messages, e.g. `LocalAccounts/None/script=false`.
    name: String,
    /// Its parsed settings.
    settings: LayerSettings,
    /// Its rendered policy files.
    files: Vec<PolicyText>,
}

/// The first environment of `policies/appsettings.json` with `StarterPack`, `SocialProviders`
/// and `AuthyWaitPageScript` set to the given values (with the script, `AuthyWaitPageLoadUri` a
/// hosted page: the built-in one is refused).
fn variant_environment(pack: StarterPack, social: SocialProviders, script: bool) -> Environment {
    let settings = AppSettings::load(&policies_dir().join(policies::SETTINGS_FILE)).unwrap();
    let mut env = settings.environments[0].clone();
    env.name = format!("{pack}-{social}-{script}");
    let set = |env: &mut Environment, key: &str, value: String| {
        env.policy_settings.insert(key.to_owned(), value);
    };
    set(&mut env, policies::STARTER_PACK_KEY, pack.to_string());
    set(&mut env, policies::SOCIAL_PROVIDERS_KEY, social.to_string());
    set(&mut env, policies::WAIT_PAGE_SCRIPT_KEY, script.to_string());
    if script {
        set(
            &mut env,
            policies::WAIT_PAGE_LOAD_URI_KEY,
            "https://contoso.blob.core.windows.net/b2c/authy-wait.html".to_owned(),
        );
    }
    env
}

/// Every StarterPack × SocialProviders it allows × AuthyWaitPageScript × AuthyPhoneRecovery,
/// rendered (named without `/recovery=…` when AuthyPhoneRecovery is `false`).
fn variants() -> &'static [Variant] {
    static VARIANTS: OnceLock<Vec<Variant>> = OnceLock::new();
    VARIANTS.get_or_init(|| {
        let mut variants = Vec::new();
        for pack in StarterPack::ALL {
            for social in SocialProviders::ALL {
                if social == SocialProviders::Facebook && !pack.has_social_accounts() {
                    continue; // refused: a_local_accounts_tenant_gets_no_facebook
                }
                for (script, recovery) in [false, true]
                    .into_iter()
                    .flat_map(|s| [(s, false), (s, true)])
                {
                    let mut env = variant_environment(pack, social, script);
                    if recovery {
                        env.name.push_str("-recovery");
                        env.policy_settings
                            .insert(policies::PHONE_RECOVERY_KEY.to_owned(), "true".to_owned());
                    }
                    let dir = temp_dir(&format!("variant-{}", env.name));
                    let files = policies::render_environment(&policies_dir(), &env, &dir)
                        .unwrap_or_else(|e| panic!("{}: {e}", env.name));
                    let texts = files.iter().map(read_policy).collect();
                    std::fs::remove_dir_all(&dir).unwrap();
                    let recovery = if recovery { "/recovery=true" } else { "" };
                    variants.push(Variant {
                        name: format!("{pack}/{social}/script={script}{recovery}"),
                        settings: env.layer_settings().unwrap(),
                        files: texts,
                    });
                }
            }
        }
        variants
    })
}

/// The policy templates, unrendered.
fn templates() -> Vec<PolicyText> {
    policies::policy_files(&policies_dir())
        .unwrap()
        .iter()
        .map(read_policy)
        .collect()
}

fn read_policy(path: &PathBuf) -> PolicyText {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    (name, text.trim_start_matches('\u{feff}').to_owned())
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("b2c-authy-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn shared_dir() -> PathBuf {
    repo().join("..").join("shared")
}

/// A starter pack's folder in `../shared/b2c/` (as `check-b2c-policies --pack` finds it).
fn pack_dir(pack: StarterPack) -> PathBuf {
    let folder = match pack {
        StarterPack::SocialAndLocalAccounts => "starterpack".to_owned(),
        other => format!("starterpack-{other}"),
    };
    shared_dir().join("b2c").join(folder)
}

/// A starter pack's Base, Localization and Extensions policies, standing in for a tenant's own,
/// or `None` (skipped, or panics under CI=true) when `../shared` is not there.
fn starter_pack(pack: StarterPack) -> Option<Vec<PolicyText>> {
    let dir = pack_dir(pack);
    if !dir.join(STARTER_PACK_BASES[0]).is_file() {
        skip_or_fail(&format!("the starter pack is not in {}", dir.display()));
        return None;
    }
    Some(
        STARTER_PACK_BASES
            .iter()
            .map(|f| read_policy(&dir.join(f)))
            .collect(),
    )
}

/// Our own files, parsed (by the library the user-facing check uses); they must be well-formed.
pub(crate) fn parse(files: &[PolicyText]) -> Vec<Parsed<'_>> {
    let (docs, problems) = policy_check::parse(
        files
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str())),
    );
    assert!(problems.is_empty(), "{problems:#?}");
    docs
}

/// Policy files as the library takes them.
fn policy_files(files: &[PolicyText]) -> Vec<PolicyFile> {
    files
        .iter()
        .map(|(name, text)| PolicyFile::new(name.clone(), text.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The wait page's numbers

/// How many Continues (each a failed validation while pending) one approval request can take with
/// the handler's defaults: the one that sends the push, answered at once with its code, then one
/// per wait budget until the request expires.
fn calls_per_approval() -> u64 {
    1 + DEFAULT_APPROVAL_TTL_SECONDS.div_ceil(DEFAULT_APPROVAL_WAIT_SECONDS)
}

/// How many pushes one wait page may send with the handler's defaults: the burst limit
/// (`PUSH_LIMIT_BURST_COUNT`); a new one after each expired request.
fn pushes_per_page() -> u64 {
    u64::from(PushLimitSettings::default().burst.count)
}

fn wait_template() -> String {
    std::fs::read_to_string(policies_dir().join("templates").join("authy-wait.html")).unwrap()
}

/// The template script's `MAX_CONTINUES`: how many Continues it selects by itself.
fn template_max_continues(template: &str) -> u64 {
    let (_, rest) = template
        .split_once("var MAX_CONTINUES = ")
        .expect("MAX_CONTINUES in authy-wait.html");
    let number = rest.split(';').next().unwrap_or_default();
    number
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("MAX_CONTINUES = '{number}' in authy-wait.html: {e}"))
}

/// The numbers every wait page must respect.
#[derive(Clone, Copy, Debug)]
struct WaitLimits {
    /// [`calls_per_approval`].
    calls_per_approval: u64,
    /// [`pushes_per_page`].
    pushes_per_page: u64,
    /// The template script's own limit of automatic Continues.
    script_continues: u64,
}

impl WaitLimits {
    /// The failed validations a wait page must allow: every push of the page, each for the longer
    /// of its lifetime of calls and the script's run of automatic Continues, plus the margin.
    fn retry_limit_needed(&self) -> u64 {
        self.pushes_per_page * self.calls_per_approval.max(self.script_continues)
            + RETRY_LIMIT_MARGIN
    }
}

fn wait_limits() -> WaitLimits {
    WaitLimits {
        calls_per_approval: calls_per_approval(),
        pushes_per_page: pushes_per_page(),
        script_continues: template_max_continues(&wait_template()),
    }
}

// ---------------------------------------------------------------------------------------------
// XML helpers

/// The function a REST technical profile calls: the last path segment of its `ServiceUrl`.
fn function_of(metadata: &BTreeMap<String, String>) -> Option<String> {
    let url = metadata.get("ServiceUrl")?;
    let path = url.split('?').next().unwrap_or_default();
    path.rsplit('/').next().map(str::to_owned)
}

/// The name B2C uses for a claim in the JSON body: its PartnerClaimType, else its id.
fn partner_name(claim: Node) -> String {
    claim
        .attribute("PartnerClaimType")
        .or(claim.attribute("ClaimTypeReferenceId"))
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Checks: each returns its problems, empty when all is well.

/// REST technical profiles against the API.
fn check_rest_profiles(
    ours: &[(&str, Document)],
    api: &BTreeMap<String, FunctionContract>,
) -> Vec<String> {
    // Each REST technical profile once, however many files define or override it.
    let mut ids: Vec<&str> = Vec::new();
    for (_, doc) in ours {
        for tp in descendants(doc.root(), "TechnicalProfile") {
            let id = tp.attribute("Id").unwrap_or_default();
            let known = ids.iter().any(|i| i.eq_ignore_ascii_case(id));
            if !known && merged(ours, id).iter().any(|d| is_rest(*d)) {
                ids.push(id);
            }
        }
    }
    let mut problems = Vec::new();
    for id in ids {
        let definitions = merged(ours, id);
        let at = format!("REST technical profile '{id}'");
        let meta: BTreeMap<_, _> = definitions.iter().flat_map(|d| metadata(*d)).collect();
        // Elements of every definition, for example its InputClaim elements.
        let elements =
            |name: &'static str| definitions.iter().flat_map(move |d| descendants(*d, name));
        let url = meta.get("ServiceUrl").cloned().unwrap_or_default();
        let Some(function) = function_of(&meta) else {
            problems.push(format!("{at} has no ServiceUrl"));
            continue;
        };
        if !repo().join(&function).join("function.json").is_file() {
            problems.push(format!("{at}: ServiceUrl points at function '{function}', which has no folder {function}/function.json"));
        }
        let Some(contract) = api.get(&function) else {
            problems.push(format!("{at}: ServiceUrl points at '{function}', which is not one of the API's functions {FUNCTION_NAMES:?}"));
            continue;
        };
        for claim in elements("InputClaim") {
            let name = partner_name(claim);
            if !contract.reads.contains(&name) {
                problems.push(format!(
                    "{at} sends claim '{name}', which {function} does not read (it reads {:?})",
                    contract.reads
                ));
            }
        }
        // An output claim with a DefaultValue need not come from the API.
        for claim in elements("OutputClaim").filter(|c| c.attribute("DefaultValue").is_none()) {
            let name = partner_name(claim);
            if !contract.returns.contains(&name) {
                problems.push(format!(
                    "{at} expects output claim '{name}', which {function} never returns (it returns {:?})",
                    contract.returns
                ));
            }
        }
        let expect = |key: &str, value: &str, problems: &mut Vec<String>| {
            if meta.get(key).map(String::as_str) != Some(value) {
                problems.push(format!(
                    "{at}: metadata {key} must be {value}, is {:?}",
                    meta.get(key)
                ));
            }
        };
        expect("AuthenticationType", "ClientCertificate", &mut problems);
        expect("SendClaimsIn", "Body", &mut problems);
        expect("AllowInsecureAuthInProduction", "false", &mut problems);
        // The page's language, so that the userMessage and the push follow it (issue 14):
        // always B2C's {Culture:RFC5646}, never a value from elsewhere in the journey, and
        // resolved only with IncludeClaimResolvingInClaimsHandling (MS docs
        // "claim-resolver-overview"). That the function reads it is checked above.
        expect(
            "IncludeClaimResolvingInClaimsHandling",
            "true",
            &mut problems,
        );
        let locale = elements("InputClaim").find(|c| partner_name(*c) == UI_LOCALE_CLAIM);
        if !locale.is_some_and(|c| {
            c.attribute("DefaultValue") == Some(UI_LOCALE_RESOLVER)
                && c.attribute("AlwaysUseDefaultValue") == Some("true")
        }) {
            problems.push(format!(
                "{at}: must send {UI_LOCALE_CLAIM} as DefaultValue=\"{UI_LOCALE_RESOLVER}\" AlwaysUseDefaultValue=\"true\", sends {:?}",
                locale.map(|c| (c.attribute("DefaultValue"), c.attribute("AlwaysUseDefaultValue")))
            ));
        }
        for key in REST_ERROR_MESSAGES {
            if meta
                .get(key)
                .is_none_or(|m| m.is_empty() || m.contains(&url) || m.contains("http"))
            {
                problems.push(format!(
                    "{at}: metadata {key} must be a message of our own, without the URL"
                ));
            }
        }
        let certificate = elements("Key").any(|k| {
            k.attribute("Id") == Some("ClientCertificate")
                && k.attribute("StorageReferenceId") == Some(CLIENT_CERTIFICATE_KEY)
        });
        if !certificate {
            problems.push(format!(
                "{at}: CryptographicKeys must have ClientCertificate = {CLIENT_CERTIFICATE_KEY}"
            ));
        }
        if !url.starts_with("https://") || !url.contains("?code=") {
            problems.push(format!(
                "{at}: ServiceUrl must be https with the function key in ?code=, is {url}"
            ));
        }
    }
    problems
}

/// No step writes the authy id before WaitForAuthyApproval approved the authy id last registered.
/// Steps are taken in order whatever their preconditions (a step that may run counts).
fn check_write_after_approval(ours: &[(&str, Document)], all: &[(&str, Document)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, doc) in ours {
        for journey in descendants(doc.root(), "UserJourney") {
            let mut approved = false;
            for step in descendants(journey, "OrchestrationStep") {
                let run: BTreeSet<String> = descendants(step, "ClaimsExchange")
                    .filter_map(|e| e.attribute("TechnicalProfileReferenceId"))
                    .flat_map(|id| closure(all, id))
                    .collect();
                let nodes: Vec<_> = run.iter().flat_map(|id| profiles(all, id)).collect();
                let calls = |function: &str| {
                    nodes.iter().any(|tp| {
                        is_rest(*tp) && function_of(&metadata(*tp)).as_deref() == Some(function)
                    })
                };
                if calls("Register") {
                    approved = false;
                }
                if calls("WaitForAuthyApproval") {
                    approved = true;
                }
                let writes = nodes
                    .iter()
                    .flat_map(|tp| descendants(*tp, "PersistedClaim"))
                    .any(|c| {
                        c.attribute("ClaimTypeReferenceId")
                            .is_some_and(|id| id.eq_ignore_ascii_case(AUTHY_ID_CLAIM))
                    });
                if writes && !approved {
                    problems.push(format!(
                        "{file}: journey '{}' step {} writes {AUTHY_ID_CLAIM} before the user approved a push for it",
                        journey.attribute("Id").unwrap_or_default(),
                        step.attribute("Order").unwrap_or_default()
                    ));
                }
            }
        }
    }
    problems
}

/// The last definition of a claims transformation (ids ignore case).
fn claims_transformation<'a, 'i>(
    docs: &'a [(&str, Document<'i>)],
    id: &str,
) -> Option<Node<'a, 'i>> {
    docs.iter()
        .flat_map(|(_, doc)| descendants(doc.root(), "ClaimsTransformation"))
        .filter(|t| {
            t.attribute("Id")
                .is_some_and(|i| i.eq_ignore_ascii_case(id))
        })
        .last()
}

/// The claim a claims transformation binds to one of its transformation claim types.
fn transformation_claim(transformation: Node, element: &'static str, kind: &str) -> Option<String> {
    descendants(transformation, element)
        .find(|c| c.attribute("TransformationClaimType") == Some(kind))
        .and_then(|c| c.attribute("ClaimTypeReferenceId"))
        .map(str::to_lowercase)
}

/// The value of a claims transformation's input parameter.
fn transformation_parameter(transformation: Node, id: &str) -> Option<String> {
    descendants(transformation, "InputParameter")
        .find(|p| p.attribute("Id") == Some(id))
        .and_then(|p| p.attribute("Value"))
        .map(str::to_owned)
}

/// The ReferenceIds of a technical profile's claims transformations of one kind, in order.
fn transformations_of(definitions: &[Node], kind: &'static str) -> Vec<String> {
    definitions
        .iter()
        .flat_map(|d| descendants(*d, kind))
        .filter_map(|t| t.attribute("ReferenceId"))
        .map(str::to_owned)
        .collect()
}

/// Whether technical profile `id` is a claims transformation technical profile whose output claims
/// transformations set a boolean to (`status_claim` == "approved", case-sensitive) and then assert
/// that boolean is true, with nothing overwriting it in between.
fn asserts_approved(all: &[(&str, Document)], id: &str, status_claim: &str) -> bool {
    let definitions = merged(all, id);
    let is_claims_transformation_profile = definitions.iter().any(|d| {
        child(*d, "Protocol")
            .and_then(|p| p.attribute("Handler"))
            .is_some_and(|h| h.contains("ClaimsTransformationProtocolProvider"))
    });
    if !is_claims_transformation_profile {
        return false;
    }
    let mut flag: Option<String> = None;
    for reference in transformations_of(&definitions, "OutputClaimsTransformation") {
        let Some(t) = claims_transformation(all, &reference) else {
            continue;
        };
        let method = t.attribute("TransformationMethod").unwrap_or_default();
        let parameter = |id| transformation_parameter(t, id).unwrap_or_default();
        if method == "CompareClaimToValue"
            && transformation_claim(t, "InputClaim", "inputClaim1").as_deref() == Some(status_claim)
            && parameter("compareTo") == ApprovalStatus::Approved.as_str()
            && parameter("operator").eq_ignore_ascii_case("EQUAL")
            && parameter("ignoreCase").eq_ignore_ascii_case("false")
        {
            flag = transformation_claim(t, "OutputClaim", "outputClaim");
        } else if method == "AssertBooleanClaimIsEqualToValue"
            && flag.is_some()
            && transformation_claim(t, "InputClaim", "inputClaim") == flag
            && parameter("valueToCompareTo").eq_ignore_ascii_case("true")
        {
            return true;
        } else if descendants(t, "OutputClaim").any(|c| {
            c.attribute("ClaimTypeReferenceId")
                .map(str::to_lowercase)
                .as_deref()
                == flag.as_deref()
        }) {
            flag = None; // something else wrote the boolean after the comparison
        }
    }
    false
}

/// Whether technical profile `id` (as merged along the chain) is a REST call of `function`.
fn calls_function(all: &[(&str, Document)], id: &str, function: &str) -> bool {
    merged(all, id)
        .iter()
        .any(|tp| is_rest(*tp) && function_of(&metadata(*tp)).as_deref() == Some(function))
}

/// The claims CreateApprovalRequest returns that WaitForAuthyApproval must be passed in the same
/// Continue: the request to wait for, its code (quoted in the pending message) and whether it was
/// just sent (then the wait answers at once, so the page shows the code before the user approves).
const CREATE_TO_WAIT_CLAIMS: [&str; 3] = ["approvalRequestId", "signInCode", "newApprovalRequest"];

/// The claim type a technical profile binds to API field `partner` in its `element`s
/// (`InputClaim` or `OutputClaim`), lower-cased.
fn claim_for(definitions: &[Node], element: &'static str, partner: &str) -> Option<String> {
    definitions
        .iter()
        .flat_map(|d| descendants(*d, element))
        .find(|c| partner_name(*c) == partner)
        .and_then(|c| c.attribute("ClaimTypeReferenceId"))
        .map(str::to_lowercase)
}

/// No journey calls a function of the API as an orchestration step: a REST technical profile's
/// 409 there ends the journey with an error redirect to the application (MS docs
/// "restful-technical-profile"), so a limit or pause message would never reach the user.
fn check_no_rest_orchestration_steps(
    ours: &[(&str, Document)],
    all: &[(&str, Document)],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, doc) in ours {
        for journey in descendants(doc.root(), "UserJourney") {
            for step in descendants(journey, "OrchestrationStep") {
                for id in descendants(step, "ClaimsExchange")
                    .filter_map(|e| e.attribute("TechnicalProfileReferenceId"))
                {
                    for function in FUNCTION_NAMES {
                        if calls_function(all, id, function) {
                            problems.push(format!(
                                "{file}: journey '{}' step {} calls {function} ('{id}') as an orchestration step: its 409 would end the journey with an error redirect; run it as a validation technical profile of a page",
                                journey.attribute("Id").unwrap_or_default(),
                                step.attribute("Order").unwrap_or_default()
                            ));
                        }
                    }
                }
            }
        }
    }
    problems
}

/// Every journey step that calls WaitForAuthyApproval is a wait page that asks
/// CreateApprovalRequest first, cannot be passed without `approvalStatus` "approved" and does not
/// end the journey before its pushes do.
fn check_wait_pages(
    ours: &[(&str, Document)],
    all: &[(&str, Document)],
    limits: WaitLimits,
) -> Vec<String> {
    let approved = ApprovalStatus::Approved.as_str();
    let calls_wait = |id: &str| calls_function(all, id, "WaitForAuthyApproval");
    let calls_create = |id: &str| calls_function(all, id, "CreateApprovalRequest");
    let mut problems = Vec::new();
    if limits.script_continues < limits.calls_per_approval {
        problems.push(format!(
            "authy-wait.html: MAX_CONTINUES = {} automatic Continues do not outlast an approval request ({} calls with the handler's defaults)",
            limits.script_continues, limits.calls_per_approval
        ));
    }
    for (file, doc) in ours {
        for journey in descendants(doc.root(), "UserJourney") {
            let journey_id = journey.attribute("Id").unwrap_or_default();
            for step in descendants(journey, "OrchestrationStep") {
                let at = format!(
                    "{file}: journey '{journey_id}' step {}",
                    step.attribute("Order").unwrap_or_default()
                );
                for page_id in descendants(step, "ClaimsExchange")
                    .filter_map(|e| e.attribute("TechnicalProfileReferenceId"))
                {
                    if !closure(all, page_id).iter().any(|id| calls_wait(id)) {
                        continue;
                    }
                    let page = merged(all, page_id);
                    let self_asserted = page.iter().any(|d| {
                        child(*d, "Protocol")
                            .and_then(|p| p.attribute("Handler"))
                            .is_some_and(|h| h.contains("SelfAssertedAttributeProvider"))
                    });
                    if !self_asserted {
                        problems.push(format!("{at}: '{page_id}' calls WaitForAuthyApproval outside a self-asserted wait page, where no assertion can follow it"));
                        continue;
                    }
                    let meta: BTreeMap<_, _> = page.iter().flat_map(|d| metadata(*d)).collect();
                    let validations: Vec<Node> = page
                        .iter()
                        .flat_map(|d| descendants(*d, "ValidationTechnicalProfile"))
                        .collect();
                    let reference =
                        |v: &Node| v.attribute("ReferenceId").unwrap_or_default().to_owned();
                    let Some(rest_at) = validations.iter().position(|v| calls_wait(&reference(v)))
                    else {
                        problems.push(format!("{at}: '{page_id}' does not call WaitForAuthyApproval as a validation technical profile of its own"));
                        continue;
                    };
                    let rest = validations[rest_at];
                    let rest_id = reference(&rest);
                    if rest.attribute("ContinueOnError") == Some("true") {
                        problems.push(format!("{at}: '{rest_id}' has ContinueOnError=true: a failed wait would not stop the page"));
                    }
                    let rest_definitions = merged(all, &rest_id);
                    match validations.iter().position(|v| calls_create(&reference(v))) {
                        Some(create_at) if create_at < rest_at => {
                            let create = validations[create_at];
                            let create_id = reference(&create);
                            if create.attribute("ContinueOnError") == Some("true")
                                || child(create, "Preconditions").is_some()
                            {
                                problems.push(format!("{at}: '{create_id}' on '{page_id}' has ContinueOnError=true or preconditions: every Continue must get the journey's approval request, and stop on a refusal"));
                            }
                            let create_definitions = merged(all, &create_id);
                            for partner in CREATE_TO_WAIT_CLAIMS {
                                let returned = claim_for(&create_definitions, "OutputClaim", partner);
                                let passed = claim_for(&rest_definitions, "InputClaim", partner);
                                if returned.is_none() || returned != passed {
                                    problems.push(format!("{at}: '{rest_id}' is not passed the {partner} that '{create_id}' returns (output claim {returned:?}, input claim {passed:?})"));
                                }
                            }
                        }
                        _ => problems.push(format!("{at}: '{page_id}' does not run CreateApprovalRequest as a validation technical profile before '{rest_id}': the first Continue must send the push, and one after an expired request a new one")),
                    }
                    let status_claim = rest_definitions
                        .iter()
                        .flat_map(|d| descendants(*d, "OutputClaim"))
                        .find(|c| partner_name(*c) == "approvalStatus")
                        .and_then(|c| c.attribute("ClaimTypeReferenceId"))
                        .map(str::to_lowercase);
                    let Some(status_claim) = status_claim else {
                        problems.push(format!(
                            "{at}: '{rest_id}' keeps no approvalStatus output claim to check"
                        ));
                        continue;
                    };
                    let resets = transformations_of(&rest_definitions, "InputClaimsTransformation")
                        .iter()
                        .filter_map(|r| claims_transformation(all, r))
                        .any(|t| {
                            t.attribute("TransformationMethod") == Some("CreateStringClaim")
                                && transformation_claim(t, "OutputClaim", "createdClaim").as_deref()
                                    == Some(status_claim.as_str())
                                && transformation_parameter(t, "value")
                                    .is_some_and(|v| v != approved)
                        });
                    if !resets {
                        problems.push(format!("{at}: '{rest_id}' does not reset {status_claim} before the call (an InputClaimsTransformation CreateStringClaim other than '{approved}'), so an earlier '{approved}' would survive a 200 without one"));
                    }
                    let asserted = validations[rest_at + 1..].iter().any(|v| {
                        child(*v, "Preconditions").is_none()
                            && asserts_approved(all, &reference(v), &status_claim)
                    });
                    if !asserted {
                        problems.push(format!("{at}: no validation technical profile after '{rest_id}' on '{page_id}' asserts that {status_claim} is '{approved}' (CompareClaimToValue, then AssertBooleanClaimIsEqualToValue), so any HTTP 200 would pass the wait"));
                    }
                    if meta.get(ASSERTION_MESSAGE).is_none_or(|m| m.is_empty()) {
                        problems.push(format!("{at}: '{page_id}' has no {ASSERTION_MESSAGE} for a failed approval assertion"));
                    }
                    let needed = limits.retry_limit_needed();
                    match meta.get("setting.retryLimit").map(|v| v.parse::<u64>()) {
                        None => problems.push(format!("{at}: '{page_id}' has no setting.retryLimit: B2C would end the journey (AADB2C90157) long before the approval request expires; it needs at least {needed}")),
                        Some(Err(e)) => problems.push(format!("{at}: '{page_id}' setting.retryLimit is not a whole number: {e}")),
                        Some(Ok(limit)) => {
                            if limit < needed {
                                problems.push(format!("{at}: '{page_id}' setting.retryLimit {limit} is below {needed}: {} pushes a page may send (PUSH_LIMIT_BURST_COUNT) × {} Continues each (1 + AUTHY_APPROVAL_TTL_SECONDS {DEFAULT_APPROVAL_TTL_SECONDS} / APPROVAL_WAIT_SECONDS {DEFAULT_APPROVAL_WAIT_SECONDS}, or the script's MAX_CONTINUES {} if more) plus a margin of {RETRY_LIMIT_MARGIN}", limits.pushes_per_page, limits.calls_per_approval, limits.script_continues));
                            }
                            if limit <= limits.script_continues {
                                problems.push(format!("{at}: '{page_id}' setting.retryLimit {limit} is not above authy-wait.html's MAX_CONTINUES {}: the script alone would end the journey (AADB2C90157)", limits.script_continues));
                            }
                        }
                    }
                    let content = meta
                        .get("ContentDefinitionReferenceId")
                        .cloned()
                        .unwrap_or_default();
                    let data_uri = all
                        .iter()
                        .flat_map(|(_, d)| descendants(d.root(), "ContentDefinition"))
                        .filter(|c| {
                            c.attribute("Id")
                                .is_some_and(|i| i.eq_ignore_ascii_case(&content))
                        })
                        .filter_map(|c| child(c, "DataUri").map(text))
                        .last()
                        .unwrap_or_default();
                    if !data_uri.starts_with(SELFASSERTED_CONTRACT) {
                        problems.push(format!("{at}: content definition '{content}' of '{page_id}' has DataUri '{data_uri}', not a page contract {SELFASSERTED_CONTRACT}<version>: its template's script would not run"));
                    }
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Localization (issue 14): our pages in the API's languages

/// One localized string: (ElementType, ElementId or "", StringId).
pub(crate) type StringKey = (String, String, String);

/// The strings of `LocalizedResources` `id` in our files, `None` when no file defines it.
pub(crate) fn localized_strings(
    ours: &[(&str, Document)],
    id: &str,
) -> Option<BTreeMap<StringKey, String>> {
    let resources = ours
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "LocalizedResources"))
        .find(|r| r.attribute("Id") == Some(id))?;
    Some(
        descendants(resources, "LocalizedString")
            .map(|s| {
                let attribute = |name| s.attribute(name).unwrap_or_default().to_owned();
                (
                    (
                        attribute("ElementType"),
                        attribute("ElementId"),
                        attribute("StringId"),
                    ),
                    s.text().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    )
}

/// The key of a `UxElement` string.
fn ux(id: &str) -> StringKey {
    ("UxElement".to_owned(), String::new(), id.to_owned())
}

/// The key of an `ErrorMessage` string.
fn error_message(id: &str) -> StringKey {
    ("ErrorMessage".to_owned(), String::new(), id.to_owned())
}

/// The key of a string of claim type `claim`.
fn claim_string(claim: &str, id: &str) -> StringKey {
    ("ClaimType".to_owned(), claim.to_owned(), id.to_owned())
}

/// Whether `text` starts with the API's pending marker (leading white space ignored), as the wait
/// page script's `isPendingMessage` reads it.
fn starts_with_pending_marker(text: &str) -> bool {
    text.trim_start().starts_with(PENDING_MARKER.trim())
}

/// The strings of a verification display control, `ElementType="DisplayControl"` with `ElementId`
/// the control's id (MS docs "localization-string-ids", "Verification display control user
/// interface elements", page layout 2.1.0 or later).
const VERIFICATION_CONTROL_STRINGS: [&str; 9] = [
    "intro_msg",
    "success_send_code_msg",
    "failure_send_code_msg",
    "success_verify_code_msg",
    "failure_verify_code_msg",
    "but_send_code",
    "but_verify_code",
    "but_send_new_code",
    "but_change_claims",
];
/// The message B2C shows when Continue is selected before a verification display control
/// verified its claims (same docs and section).
const VERIFICATION_NOT_DONE_MESSAGE: &str = "UserMessageIfVerificationControlClaimsNotVerified";
/// The error messages of a Microsoft Entra SSPR technical profile, by its `Operation`, which the
/// self-asserted page shows and localizes (MS docs "aad-sspr-technical-profile", "UI elements";
/// "localization-string-ids", "Microsoft Entra SSPR").
const SSPR_SEND_CODE_MESSAGES: [&str; 2] = ["UserMessageIfInternalError", "UserMessageIfThrottled"];
const SSPR_VERIFY_CODE_MESSAGES: [&str; 5] = [
    "UserMessageIfChallengeExpired",
    "UserMessageIfInternalError",
    "UserMessageIfThrottled",
    "UserMessageIfVerificationFailedNoRetry",
    "UserMessageIfVerificationFailedRetryAllowed",
];

/// The validation technical profiles a self-asserted page runs: its own and those of the actions
/// of the display controls it shows (technical profile ids, in document order).
fn page_validations(ours: &[(&str, Document)], page: Node) -> Vec<String> {
    let own = descendants(page, "ValidationTechnicalProfile")
        .filter_map(|v| v.attribute("ReferenceId"))
        .map(str::to_owned);
    let controls = display_controls(ours, page)
        .into_iter()
        .flat_map(|control| {
            descendants(control, "ValidationClaimsExchangeTechnicalProfile")
                .filter_map(|v| v.attribute("TechnicalProfileReferenceId"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
    own.chain(controls).collect()
}

/// The display controls of ours a page shows (its `DisplayClaim`s with a
/// `DisplayControlReferenceId`).
fn display_controls<'a, 'i>(ours: &'a [(&str, Document<'i>)], page: Node) -> Vec<Node<'a, 'i>> {
    descendants(page, "DisplayClaim")
        .filter_map(|c| c.attribute("DisplayControlReferenceId"))
        .filter_map(|id| {
            ours.iter()
                .flat_map(|(_, d)| descendants(d.root(), "DisplayControl"))
                .find(|c| c.attribute("Id") == Some(id))
        })
        .collect()
}

/// The validation technical profiles a page runs (see [`page_validations`]) that our files define:
/// their error messages are ours.
fn validations_of_ours(ours: &[(&str, Document)], page: Node) -> Vec<String> {
    page_validations(ours, page)
        .into_iter()
        .filter(|id| !merged(ours, id).is_empty())
        .collect()
}

/// What the English `LocalizedResources` of a self-asserted page of ours must hold:
/// `button_continue`; the `DisplayName` (and `UserHelpText`, `PatternHelpText` where the claim
/// type has them) of every claim of ours with a `UserInputType` that it shows (input, output and
/// display claims, and the display claims of its display controls); a verification display
/// control's strings and `UserMessageIfVerificationControlClaimsNotVerified`; every `UserMessageIf…`
/// message its metadata sets (the assertion messages, say); the REST error messages of every REST
/// validation technical profile and the messages of every Microsoft Entra SSPR one (its own or its
/// display controls'); the strings its `GetLocalizedStringsTransformation`s take. Claims of the
/// tenant's chain are not ours to localize (their strings are the tenant's Localization policy's).
fn page_strings(ours: &[(&str, Document)], page: Node) -> BTreeSet<StringKey> {
    let mut needed: BTreeSet<StringKey> = BTreeSet::from([ux("button_continue")]);
    let controls = display_controls(ours, page);
    let shown = ["OutputClaims", "InputClaims", "DisplayClaims"]
        .into_iter()
        .filter_map(|list| child(page, list))
        .chain(controls.iter().filter_map(|c| child(*c, "DisplayClaims")))
        .flat_map(|list| {
            descendants(list, "OutputClaim")
                .chain(descendants(list, "InputClaim"))
                .chain(descendants(list, "DisplayClaim"))
                .filter_map(|c| c.attribute("ClaimTypeReferenceId"))
                .collect::<Vec<_>>()
        });
    for claim in shown {
        let Some(claim_type) = ours
            .iter()
            .flat_map(|(_, d)| descendants(d.root(), "ClaimType"))
            .find(|t| t.attribute("Id") == Some(claim))
        else {
            continue; // the tenant's
        };
        if child(claim_type, "UserInputType").is_none() {
            continue; // not shown
        }
        needed.insert(claim_string(claim, "DisplayName"));
        if child(claim_type, "UserHelpText").is_some() {
            needed.insert(claim_string(claim, "UserHelpText"));
        }
        if descendants(claim_type, "Pattern").any(|p| p.attribute("HelpText").is_some()) {
            needed.insert(claim_string(claim, "PatternHelpText"));
        }
    }
    for control in &controls {
        if control.attribute("UserInterfaceControlType") == Some("VerificationControl") {
            let id = control.attribute("Id").unwrap_or_default();
            needed.extend(
                VERIFICATION_CONTROL_STRINGS
                    .iter()
                    .map(|s| ("DisplayControl".to_owned(), id.to_owned(), (*s).to_owned())),
            );
            needed.insert(error_message(VERIFICATION_NOT_DONE_MESSAGE));
        }
    }
    needed.extend(
        metadata(page)
            .keys()
            .filter(|k| k.starts_with("UserMessageIf"))
            .map(|k| error_message(k)),
    );
    for id in page_validations(ours, page) {
        let definitions = merged(ours, &id);
        if definitions.iter().any(|d| is_rest(*d)) {
            needed.extend(REST_ERROR_MESSAGES.iter().map(|k| error_message(k)));
        }
        if handler(&definitions).contains("AadSsprProtocolProvider") {
            let operation = definitions
                .iter()
                .rev()
                .find_map(|d| metadata(*d).get("Operation").cloned());
            let messages: &[&str] = match operation.as_deref() {
                Some("SendCode") => &SSPR_SEND_CODE_MESSAGES,
                _ => &SSPR_VERIFY_CODE_MESSAGES,
            };
            needed.extend(messages.iter().map(|k| error_message(k)));
        }
        // The message a failed assertion shows (MS docs "boolean-transformations",
        // AssertBooleanClaimIsEqualToValue; "string-transformations", AssertStringClaimsAreEqual).
        for reference in transformations_of(&definitions, "OutputClaimsTransformation") {
            let method = claims_transformation(ours, &reference)
                .and_then(|t| t.attribute("TransformationMethod"));
            if let Some(message) = method.and_then(assertion_message) {
                needed.insert(error_message(message));
            }
        }
    }
    for reference in descendants(page, "InputClaimsTransformation")
        .chain(descendants(page, "OutputClaimsTransformation"))
        .filter_map(|t| t.attribute("ReferenceId"))
    {
        let Some(transformation) = claims_transformation(ours, reference) else {
            continue;
        };
        if transformation.attribute("TransformationMethod")
            == Some("GetLocalizedStringsTransformation")
        {
            needed.extend(
                descendants(transformation, "OutputClaim")
                    .filter_map(|c| c.attribute("TransformationClaimType"))
                    .map(|id| {
                        (
                            "GetLocalizedStringsTransformationClaimType".to_owned(),
                            String::new(),
                            id.to_owned(),
                        )
                    }),
            );
        }
    }
    needed
}

/// The self-asserted technical profile's message id for a failed assertion of a claims
/// transformation method (MS docs "boolean-transformations": the page's
/// `UserMessageIfClaimsTransformationBooleanValueIsNotEqual`; "string-transformations":
/// `UserMessageIfClaimsTransformationStringsAreNotEqual`); `None` for a method that asserts nothing.
fn assertion_message(method: &str) -> Option<&'static str> {
    match method {
        "AssertBooleanClaimIsEqualToValue" => Some(ASSERTION_MESSAGE),
        "AssertStringClaimsAreEqual" => Some("UserMessageIfClaimsTransformationStringsAreNotEqual"),
        _ => None,
    }
}

/// Our pages localized in exactly the API's languages (`src/messages.toml`), in agreement with
/// the API's texts:
/// - one `<Localization Enabled="true">` whose `SupportedLanguages` are [`Language::ALL`],
///   English the default, `ReplaceAll` (Append would list a language of the tenant's
///   Localization twice, which B2C refuses);
/// - every self-asserted page of ours has a content definition of ours that references
///   `LocalizedResources` of ours for each language, each with the strings English has, none
///   empty, English with at least [`page_strings`] (its claims', display controls', messages'
///   and REST, SSPR, failed assertions' and `GetLocalizedStringsTransformation` strings);
/// - except a page on a content definition of the tenant's chain (the lost phone's password
///   page on the starter pack's `api.localaccountsignin`) that shows only the chain's claims,
///   sets no `UserMessageIf…` message, shows no display control of ours and runs no validation
///   technical profile of ours: it is the tenant's page, whose strings are the tenant's
///   Localization policy's (README, "Your own pages (sign-in, sign-up) keep the strings of your
///   Localization policy"), and a content definition of ours would have to copy and override
///   them in our five languages;
/// - no page shows a claim of ours with a `DefaultValue` (a text that would be English in every
///   language);
/// - the wait page's `UserMessageIfRequestTimeout` is the API's pending message in that
///   language, marker included, and no other string of ours starts with the marker;
/// - every string (ours, and every `userMessage` of the API) whose English text names the English
///   `button_continue` names the page's `button_continue` in its own language;
/// - the phone number's `PatternHelpText` is the API's `InvalidPhoneNumber` message.
fn check_localization(ours: &[(&str, Document)]) -> Vec<String> {
    let mut problems = Vec::new();
    let tags: Vec<&str> = Language::ALL.iter().map(|l| l.tag()).collect();
    let localizations: Vec<Node> = ours
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "Localization"))
        .collect();
    match localizations.as_slice() {
        [localization] => {
            if localization.attribute("Enabled") != Some("true") {
                problems.push("Localization is not Enabled=\"true\"".to_owned());
            }
            let supported = child(*localization, "SupportedLanguages");
            let listed: Vec<String> = supported
                .iter()
                .flat_map(|s| descendants(*s, "SupportedLanguage"))
                .map(text)
                .collect();
            if listed != tags {
                problems.push(format!("SupportedLanguages are {listed:?}, not the API's languages {tags:?} (src/messages.toml)"));
            }
            let default = supported.and_then(|s| s.attribute("DefaultLanguage"));
            let merge = supported.and_then(|s| s.attribute("MergeBehavior"));
            if default != Some(Language::En.tag()) || merge != Some("ReplaceAll") {
                problems.push(format!("SupportedLanguages must have DefaultLanguage=\"en\" MergeBehavior=\"ReplaceAll\" (Append lists a language of the tenant's Localization twice, which B2C refuses), has {default:?} {merge:?}"));
            }
        }
        other => problems.push(format!(
            "our layer must have one Localization element, has {}",
            other.len()
        )),
    }
    // The API's messages in every language, by error, to compare with English.
    let api_messages: Vec<(&str, Vec<String>)> = {
        let all = every_user_message();
        let per_language = all.len() / Language::ALL.len();
        (0..per_language)
            .map(|i| {
                (
                    all[i].0,
                    (0..Language::ALL.len())
                        .map(|l| all[l * per_language + i].1.clone())
                        .collect(),
                )
            })
            .collect()
    };
    let pages: Vec<Node> = ours
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "TechnicalProfile"))
        .filter(|tp| {
            child(*tp, "Protocol")
                .and_then(|p| p.attribute("Handler"))
                .is_some_and(|h| h.contains("SelfAssertedAttributeProvider"))
        })
        .collect();
    for page in pages {
        let page_id = page.attribute("Id").unwrap_or_default();
        let meta = metadata(page);
        let content = meta
            .get("ContentDefinitionReferenceId")
            .cloned()
            .unwrap_or_default();
        let at = format!("page '{page_id}' (content definition '{content}')");
        let needed = page_strings(ours, page);
        // A text of ours fixed by a default value is English in every language.
        for input in child(page, "InputClaims")
            .into_iter()
            .flat_map(|c| descendants(c, "InputClaim"))
            .filter(|c| {
                c.attribute("DefaultValue")
                    .is_some_and(|v| !v.trim().is_empty())
            })
        {
            let claim = input.attribute("ClaimTypeReferenceId").unwrap_or_default();
            let shown = needed.contains(&claim_string(claim, "DisplayName"));
            if shown {
                problems.push(format!("{at}: shows claim '{claim}' with a DefaultValue, the same text in every language: take it from the page's LocalizedResources with a GetLocalizedStringsTransformation"));
            }
        }
        let Some(definition) = ours
            .iter()
            .flat_map(|(_, d)| descendants(d.root(), "ContentDefinition"))
            .find(|c| c.attribute("Id") == Some(content.as_str()))
        else {
            // The tenant's page (say the starter pack's sign-in page): fine while nothing on it is
            // ours, whose strings only our own content definition could localize.
            let ours_on_it: Vec<&StringKey> = needed
                .iter()
                .filter(|k| **k != ux("button_continue"))
                .collect();
            let validations = validations_of_ours(ours, page);
            if !ours_on_it.is_empty() || !validations.is_empty() {
                problems.push(format!("{at}: the content definition is not ours, so its strings cannot be localized without overriding the tenant's, yet the page shows or sets strings of ours {ours_on_it:?} or runs validation technical profiles of ours {validations:?}"));
            }
            continue;
        };
        let references: BTreeMap<String, String> =
            descendants(definition, "LocalizedResourcesReference")
                .map(|r| {
                    (
                        r.attribute("Language").unwrap_or_default().to_owned(),
                        r.attribute("LocalizedResourcesReferenceId")
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect();
        let mut strings: Vec<BTreeMap<StringKey, String>> = Vec::new();
        for tag in &tags {
            let resolved = references
                .get(*tag)
                .and_then(|id| localized_strings(ours, id));
            match resolved {
                Some(s) => strings.push(s),
                None => {
                    problems.push(format!(
                        "{at}: no LocalizedResources of ours for language '{tag}' (reference {:?})",
                        references.get(*tag)
                    ));
                    strings.push(BTreeMap::new());
                }
            }
        }
        if references.len() != tags.len() {
            problems.push(format!(
                "{at}: references LocalizedResources for {:?}, not exactly {tags:?}",
                references.keys().collect::<Vec<_>>()
            ));
        }
        let english = &strings[0];
        for key in &needed {
            if !english.contains_key(key) {
                problems.push(format!("{at}: no English string {key:?}"));
            }
        }
        let calls_wait = descendants(page, "ValidationTechnicalProfile")
            .filter_map(|v| v.attribute("ReferenceId"))
            .any(|id| calls_function(ours, id, "WaitForAuthyApproval"));
        let english_button = english.get(&ux("button_continue")).cloned();
        for (language, local) in Language::ALL.iter().zip(&strings) {
            let tag = language.tag();
            let keys: BTreeSet<_> = local.keys().collect();
            let english_keys: BTreeSet<_> = english.keys().collect();
            if keys != english_keys {
                problems.push(format!(
                    "{at} [{tag}]: strings differ from English: missing {:?}, extra {:?}",
                    english_keys.difference(&keys).collect::<Vec<_>>(),
                    keys.difference(&english_keys).collect::<Vec<_>>()
                ));
            }
            for (key, value) in local {
                if value.trim().is_empty() {
                    problems.push(format!("{at} [{tag}]: {key:?} is empty"));
                }
            }
            // The pending marker: exactly in the wait page's timeout message, which is the API's
            // pending message in this language.
            let timeout = error_message("UserMessageIfRequestTimeout");
            for (key, value) in local {
                let pending_expected = calls_wait && *key == timeout;
                if pending_expected {
                    let api = ApiError::ApprovalPending { sign_in_code: None }
                        .user_message_in(*language)
                        .into_owned();
                    if *value != api {
                        problems.push(format!("{at} [{tag}]: UserMessageIfRequestTimeout is {value:?}, not the API's pending message {api:?} (with its marker, so the wait page script continues after it)"));
                    }
                } else if starts_with_pending_marker(value) {
                    problems.push(format!("{at} [{tag}]: {key:?} starts with the pending marker: the wait page script would select Continue after it"));
                }
            }
            // Buttons named in the texts are this page's, in this language.
            let (Some(english_button), Some(button)) =
                (english_button.as_deref(), local.get(&ux("button_continue")))
            else {
                continue;
            };
            for (key, value) in local {
                let names_button = english.get(key).is_some_and(|e| e.contains(english_button));
                if names_button && !value.contains(button.as_str()) {
                    problems.push(format!("{at} [{tag}]: {key:?} {value:?} does not name the button as the page labels it, '{button}'"));
                }
            }
            if calls_wait {
                let i = Language::ALL
                    .iter()
                    .position(|l| l == language)
                    .unwrap_or(0);
                for (code, texts) in &api_messages {
                    if texts[0].contains(english_button) && !texts[i].contains(button.as_str()) {
                        problems.push(format!("{at} [{tag}]: the API's {code} message {:?} (src/messages.toml) does not name the wait page's button '{button}'", texts[i]));
                    }
                }
            }
            if let Some(pattern_help) = local.get(&claim_string("phoneNumber", "PatternHelpText")) {
                let api = ApiError::InvalidPhoneNumber {
                    reason: String::new(),
                }
                .user_message_in(*language)
                .into_owned();
                if *pattern_help != api {
                    problems.push(format!("{at} [{tag}]: phoneNumber's PatternHelpText {pattern_help:?} is not the API's InvalidPhoneNumber message {api:?}"));
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The lost-phone journey (AuthyPhoneRecovery=true)

/// The journey of the "lost your phone?" relying party.
const RECOVERY_JOURNEY: &str = "AuthyPhoneRecovery";
/// Its relying party's template, rendered only when AuthyPhoneRecovery is `true`.
const RECOVERY_FILE: &str = "RecoverPhoneAuthy.xml";
/// The directory attribute a local account signs in with: its email address, verified at sign-up.
const DIRECTORY_EMAIL_CLAIM: &str = "signInNames.emailAddress";
/// The starter packs' validation technical profile that checks a local account's password.
const PASSWORD_CHECK: &str = "login-NonInteractive";
/// The sign-in's wait page, whose validations every other wait page runs too.
const SIGN_IN_WAIT_PAGE: &str = "SelfAsserted-AuthyWaitForApproval";

/// A technical profile's protocol handler (the last definition that names one).
fn handler(definitions: &[Node]) -> String {
    definitions
        .iter()
        .filter_map(|d| child(*d, "Protocol").and_then(|p| p.attribute("Handler")))
        .next_back()
        .unwrap_or_default()
        .to_owned()
}

/// The session management technical profile a technical profile uses, as merged (the last one
/// named wins), and whether it is the no-op provider, which never skips anything (MS docs
/// "custom-policy-reference-sso", NoopSSOSessionProvider).
fn session_is_noop(all: &[(&str, Document)], id: &str) -> Result<(), String> {
    let session = merged(all, id)
        .iter()
        .flat_map(|d| children(*d, "UseTechnicalProfileForSessionManagement"))
        .filter_map(|s| s.attribute("ReferenceId"))
        .last()
        .map(str::to_owned);
    match session {
        Some(session) if handler(&merged(all, &session)).contains("NoopSSOSessionProvider") => {
            Ok(())
        }
        other => Err(format!(
            "'{id}' uses session management {other:?}, not the no-op provider: an SSO session could skip it"
        )),
    }
}

/// The claims (lower-cased) a claims transformation of `method` reads as `input` and writes as
/// `output`, for every such transformation `definitions` run as output claims transformations.
fn transformations_by_method(
    all: &[(&str, Document)],
    definitions: &[Node],
    method: &str,
) -> Vec<(Vec<String>, Option<String>)> {
    transformations_of(definitions, "OutputClaimsTransformation")
        .iter()
        .filter_map(|r| claims_transformation(all, r))
        .filter(|t| t.attribute("TransformationMethod") == Some(method))
        .map(|t| {
            let inputs = descendants(t, "InputClaim")
                .filter_map(|c| c.attribute("ClaimTypeReferenceId"))
                .map(str::to_lowercase)
                .collect();
            (
                inputs,
                transformation_claim(t, "OutputClaim", "outputClaim"),
            )
        })
        .collect()
}

// MFA once per SSO session, and password reset

/// The claim B2C's `DefaultSSOSessionProvider` session management technical profiles read and
/// write: what `policies/AuthyExtensions.xml`'s SM-AuthyMFA is.
const DEFAULT_SSO_PROVIDER: &str = "DefaultSSOSessionProvider";
/// The directory attribute (partner claim type) an AAD write persists to set an account's
/// password (the starter packs' AAD-UserWritePasswordUsingObjectId and
/// AAD-UserWriteUsingLogonEmail persist `newPassword` as `password`).
const PASSWORD_CLAIM: &str = "password";
/// How B2C spells a true boolean claim for a `ClaimEquals` precondition (.NET's `bool.ToString()`).
const TRUE_IN_PRECONDITION: &str = "True";

/// One `Precondition` of a step: its type, `ExecuteActionsIf` and values (claims lower-cased
/// in the first value only).
#[derive(Debug, Clone, PartialEq, Eq)]
struct StepCondition {
    kind: String,
    execute_if: bool,
    values: Vec<String>,
}

/// One orchestration step of a journey, as the session checks see it.
struct JourneyStep {
    /// Its `Order`.
    order: String,
    /// The technical profiles its claims exchanges reference, directly.
    exchanges: Vec<String>,
    /// Those and everything they run (validation, included), lower-cased.
    runs: BTreeSet<String>,
    conditions: Vec<StepCondition>,
}

fn journey_steps_of(journey: Node, all: &[(&str, Document)]) -> Vec<JourneyStep> {
    descendants(journey, "OrchestrationStep")
        .map(|step| {
            let exchanges: Vec<String> = descendants(step, "ClaimsExchange")
                .filter_map(|e| e.attribute("TechnicalProfileReferenceId"))
                .map(str::to_owned)
                .collect();
            let runs = exchanges.iter().flat_map(|id| closure(all, id)).collect();
            let conditions = descendants(step, "Precondition")
                .map(|c| {
                    let mut values: Vec<String> = descendants(c, "Value").map(text).collect();
                    if let Some(first) = values.first_mut() {
                        *first = first.to_lowercase();
                    }
                    StepCondition {
                        kind: c.attribute("Type").unwrap_or_default().to_owned(),
                        execute_if: c.attribute("ExecuteActionsIf") == Some("true"),
                        values,
                    }
                })
                .collect();
            JourneyStep {
                order: step.attribute("Order").unwrap_or_default().to_owned(),
                exchanges,
                runs,
                conditions,
            }
        })
        .collect()
}

/// The email verification a page runs, when it has one that proves the user reads the mail of
/// one claim: a `VerificationControl` display control whose `SendCode` and `VerifyCode` actions
/// are Microsoft Entra SSPR technical profiles (`AadSsprProtocolProvider`, `Operation` named as
/// the action, no precondition) sending and checking the code for the same `emailAddress` claim,
/// the code being the control's `VerificationCode` display claim. Returns that claim, lower-cased.
fn verified_email_claim(all: &[(&str, Document)], page: &[Node]) -> Result<String, String> {
    let controls: Vec<String> = page
        .iter()
        .flat_map(|d| descendants(*d, "DisplayClaim"))
        .filter_map(|c| c.attribute("DisplayControlReferenceId"))
        .map(str::to_lowercase)
        .collect();
    let mut why = Vec::new();
    for control in all
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "DisplayControl"))
        .filter(|c| {
            c.attribute("Id")
                .is_some_and(|id| controls.contains(&id.to_lowercase()))
        })
    {
        let id = control.attribute("Id").unwrap_or_default();
        if control.attribute("UserInterfaceControlType") != Some("VerificationControl") {
            why.push(format!(
                "display control '{id}' is not a VerificationControl"
            ));
            continue;
        }
        let code_claim = descendants(control, "DisplayClaim")
            .find(|c| c.attribute("ControlClaimType") == Some("VerificationCode"))
            .and_then(|c| c.attribute("ClaimTypeReferenceId"))
            .map(str::to_lowercase);
        let mut emails = Vec::new();
        for action in ["SendCode", "VerifyCode"] {
            let exchanges: Vec<Node> = descendants(control, "Action")
                .filter(|a| a.attribute("Id") == Some(action))
                .flat_map(|a| descendants(a, "ValidationClaimsExchangeTechnicalProfile"))
                .collect();
            let sspr = exchanges.iter().find_map(|e| {
                let tp = e.attribute("TechnicalProfileReferenceId")?;
                let definitions = merged(all, tp);
                let meta: BTreeMap<_, _> = definitions.iter().flat_map(|d| metadata(*d)).collect();
                let is_sspr = handler(&definitions).contains("AadSsprProtocolProvider")
                    && meta.get("Operation").map(String::as_str) == Some(action)
                    && child(*e, "Preconditions").is_none();
                let email = claim_for(&definitions, "InputClaim", "emailAddress")?;
                let code = claim_for(&definitions, "InputClaim", "verificationCode");
                (is_sspr && (action == "SendCode" || (code.is_some() && code == code_claim)))
                    .then_some(email)
            });
            match sspr {
                Some(email) => emails.push(email),
                None => why.push(format!("display control '{id}' has no {action} action with a Microsoft Entra SSPR technical profile (Operation {action}, emailAddress{}, no precondition)", if action == "VerifyCode" { " and the control's VerificationCode claim" } else { "" })),
            }
        }
        match emails.as_slice() {
            [sent, verified] if sent == verified => return Ok(sent.clone()),
            [_, _] => why.push(format!(
                "display control '{id}' sends the code to one claim and verifies it for another: {emails:?}"
            )),
            _ => {}
        }
    }
    Err(if why.is_empty() {
        "it has no email verification display control".to_owned()
    } else {
        why.join("; ")
    })
}

/// Every claims transformation technical profile of ours has an output claim: "The OutputClaims
/// element is mandatory. Provide at least one output claim returned by the technical profile"
/// (MS docs "claims-transformation-technical-profile").
fn check_claims_transformation_profiles(ours: &[(&str, Document)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, doc) in ours {
        for tp in descendants(doc.root(), "TechnicalProfile") {
            let is_transformation_profile = child(tp, "Protocol")
                .and_then(|p| p.attribute("Handler"))
                .is_some_and(|h| h.contains("ClaimsTransformationProtocolProvider"));
            if is_transformation_profile && descendants(tp, "OutputClaim").next().is_none() {
                problems.push(format!(
                    "{file}: claims transformation technical profile '{}' has no output claim",
                    tp.attribute("Id").unwrap_or_default()
                ));
            }
        }
    }
    problems
}

/// Where a page's validations, in the order B2C runs them (its validation technical profiles
/// that stop the page on failure, each one's output claims transformations in order), first fail
/// unless `claim` exists (DoesClaimExist into a boolean, then AssertBooleanClaimIsEqualToValue
/// true on that boolean, nothing overwriting it in between), and first assert that `claim` equals
/// `other` (AssertStringClaimsAreEqual): positions in that sequence (MS docs
/// "general-transformations" DoesClaimExist, "boolean-transformations", "string-transformations").
fn existence_and_equality_checks(
    all: &[(&str, Document)],
    page: &[Node],
    claim: &str,
    other: &str,
) -> (Option<usize>, Option<usize>) {
    let (claim, other) = (claim.to_lowercase(), other.to_lowercase());
    let sequence: Vec<Node> = page
        .iter()
        .flat_map(|d| descendants(*d, "ValidationTechnicalProfile"))
        .filter(|v| {
            v.attribute("ContinueOnError") != Some("true") && child(*v, "Preconditions").is_none()
        })
        .filter_map(|v| v.attribute("ReferenceId"))
        .flat_map(|v| transformations_of(&merged(all, v), "OutputClaimsTransformation"))
        .filter_map(|r| claims_transformation(all, &r))
        .collect();
    let mut flag: Option<String> = None;
    let mut exists_at = None;
    let mut equal_at = None;
    for (at, t) in sequence.iter().enumerate() {
        let method = t.attribute("TransformationMethod").unwrap_or_default();
        let output = transformation_claim(*t, "OutputClaim", "outputClaim");
        if method == "DoesClaimExist"
            && transformation_claim(*t, "InputClaim", "inputClaim").as_deref()
                == Some(claim.as_str())
        {
            flag = output;
        } else if method == "AssertBooleanClaimIsEqualToValue"
            && flag.is_some()
            && transformation_claim(*t, "InputClaim", "inputClaim") == flag
            && transformation_parameter(*t, "valueToCompareTo")
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            exists_at = exists_at.or(Some(at));
        } else if method == "AssertStringClaimsAreEqual" {
            let inputs: BTreeSet<String> = descendants(*t, "InputClaim")
                .filter_map(|c| c.attribute("ClaimTypeReferenceId"))
                .map(str::to_lowercase)
                .collect();
            if inputs == BTreeSet::from([claim.clone(), other.clone()]) {
                equal_at = equal_at.or(Some(at));
            }
        } else if descendants(*t, "OutputClaim")
            .any(|c| c.attribute("ClaimTypeReferenceId").map(str::to_lowercase) == flag)
        {
            flag = None; // something else wrote the boolean after the existence check
        }
    }
    (exists_at, equal_at)
}

/// The lost-phone journey: the authy id is written only after the password of a local account,
/// then a one-time code mailed to the account's own address (read from the directory, shown
/// read-only, checked again on Continue: first that the account has one at all, then that the
/// verified address is it), then the new phone's enrolment and a push approved on
/// it; no step can be skipped (no precondition but the write's, every step's technical profile
/// with the no-op session provider); its wait page runs the sign-in wait page's validations.
/// (That no journey writes an authy id before a push approved on it: [`check_write_after_approval`];
/// that every wait page is sound: [`check_wait_pages`].)
fn check_recovery_journeys(ours: &[(&str, Document)], all: &[(&str, Document)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, doc) in ours {
        for journey in descendants(doc.root(), "UserJourney")
            .filter(|j| j.attribute("Id") == Some(RECOVERY_JOURNEY))
        {
            let at = |step: Node| {
                format!(
                    "{file}: journey '{RECOVERY_JOURNEY}' step {}",
                    step.attribute("Order").unwrap_or_default()
                )
            };
            let steps: Vec<Node> = descendants(journey, "OrchestrationStep").collect();
            let exchanges = |step: &Node| -> Vec<String> {
                descendants(*step, "ClaimsExchange")
                    .filter_map(|e| e.attribute("TechnicalProfileReferenceId"))
                    .map(str::to_owned)
                    .collect()
            };
            let runs = |step: &Node, test: &dyn Fn(&str) -> bool| {
                exchanges(step)
                    .iter()
                    .flat_map(|id| closure(all, id))
                    .any(|id| test(&id))
            };
            let writes = |step: &Node| {
                exchanges(step)
                    .iter()
                    .flat_map(|id| closure(all, id))
                    .flat_map(|id| profiles(all, &id))
                    .flat_map(|tp| descendants(tp, "PersistedClaim"))
                    .any(|c| {
                        c.attribute("ClaimTypeReferenceId")
                            .is_some_and(|id| id.eq_ignore_ascii_case(AUTHY_ID_CLAIM))
                    })
            };
            let first = |test: &dyn Fn(&Node) -> bool| steps.iter().position(test);
            let password = first(&|s| {
                exchanges(s).iter().any(|id| {
                    let page = merged(all, id);
                    handler(&page).contains("SelfAssertedAttributeProvider")
                        && page
                            .iter()
                            .flat_map(|d| descendants(*d, "ValidationTechnicalProfile"))
                            .any(|v| {
                                v.attribute("ReferenceId")
                                    .is_some_and(|r| r.eq_ignore_ascii_case(PASSWORD_CHECK))
                                    && v.attribute("ContinueOnError") != Some("true")
                                    && child(v, "Preconditions").is_none()
                            })
                })
            });
            let email = first(&|s| {
                exchanges(s)
                    .iter()
                    .any(|id| verified_email_claim(all, &merged(all, id)).is_ok())
            });
            let register = first(&|s| runs(s, &|id| calls_function(all, id, "Register")));
            let wait = first(&|s| runs(s, &|id| calls_function(all, id, "WaitForAuthyApproval")));
            let write = first(&|s| writes(s));
            let journey_at = format!("{file}: journey '{RECOVERY_JOURNEY}'");
            let order = [
                ("a password page validated by login-NonInteractive", password),
                ("an email page with a one-time code (Microsoft Entra SSPR verification display control)", email),
                ("the phone page (Register)", register),
                ("a wait page (WaitForAuthyApproval)", wait),
                ("the write of extension_authyId", write),
            ];
            for pair in order.windows(2) {
                match (pair[0].1, pair[1].1) {
                    (Some(a), Some(b)) if a < b => {}
                    (None, _) => {
                        problems.push(format!("{journey_at} has no step with {}", pair[0].0))
                    }
                    (_, None) => {
                        problems.push(format!("{journey_at} has no step with {}", pair[1].0))
                    }
                    _ => problems.push(format!(
                        "{journey_at}: {} must come before {}",
                        pair[0].0, pair[1].0
                    )),
                }
            }
            // The email page: the address is the directory's, read-only, checked again on Continue.
            if let Some(email_at) = email {
                let step = steps[email_at];
                for id in exchanges(&step) {
                    let page = merged(all, &id);
                    let Ok(claim) = verified_email_claim(all, &page) else {
                        continue;
                    };
                    let input_type = all
                        .iter()
                        .flat_map(|(_, d)| descendants(d.root(), "ClaimType"))
                        .filter(|c| {
                            c.attribute("Id")
                                .is_some_and(|i| i.eq_ignore_ascii_case(&claim))
                        })
                        .filter_map(|c| child(c, "UserInputType").map(text))
                        .last();
                    if input_type.as_deref() != Some("Readonly") {
                        problems.push(format!("{}: the email claim '{claim}' of '{id}' has UserInputType {input_type:?}, not Readonly: the user could type another address", at(step)));
                    }
                    let directory = DIRECTORY_EMAIL_CLAIM.to_lowercase();
                    // Filled from the directory by an earlier step, and set by no other earlier step.
                    let mut filled = false;
                    for earlier in &steps[..email_at] {
                        for tp in exchanges(earlier) {
                            let definitions = merged(all, &tp);
                            let reads_directory = handler(&definitions)
                                .contains("AzureActiveDirectoryProvider")
                                && definitions
                                    .iter()
                                    .flat_map(|d| metadata(*d))
                                    .any(|(k, v)| k == "Operation" && v == "Read")
                                && claim_for(&definitions, "OutputClaim", DIRECTORY_EMAIL_CLAIM)
                                    .is_some();
                            let copies = transformations_by_method(all, &definitions, "CopyClaim")
                                .iter()
                                .any(|(inputs, output)| {
                                    inputs == std::slice::from_ref(&directory)
                                        && output.as_deref() == Some(claim.as_str())
                                });
                            if reads_directory && copies {
                                filled = true;
                            } else if closure(all, &tp).iter().flat_map(|i| profiles(all, i)).any(
                                |d| {
                                    descendants(d, "OutputClaim").any(|c| {
                                        c.attribute("ClaimTypeReferenceId")
                                            .is_some_and(|c| c.eq_ignore_ascii_case(&claim))
                                    })
                                },
                            ) {
                                problems.push(format!("{}: '{tp}' sets the email claim '{claim}' otherwise than from the directory's {DIRECTORY_EMAIL_CLAIM}", at(*earlier)));
                            }
                        }
                    }
                    if !filled {
                        problems.push(format!("{}: no earlier step reads {DIRECTORY_EMAIL_CLAIM} from the directory (AAD Read) and copies it into '{claim}' (CopyClaim): the code could go to an address that is not the account's", at(step)));
                    }
                    let checked = page
                        .iter()
                        .flat_map(|d| descendants(*d, "ValidationTechnicalProfile"))
                        .filter(|v| {
                            v.attribute("ContinueOnError") != Some("true")
                                && child(*v, "Preconditions").is_none()
                        })
                        .filter_map(|v| v.attribute("ReferenceId"))
                        .any(|v| {
                            transformations_by_method(
                                all,
                                &merged(all, v),
                                "AssertStringClaimsAreEqual",
                            )
                            .iter()
                            .any(|(inputs, _)| {
                                let inputs: BTreeSet<&String> = inputs.iter().collect();
                                inputs == BTreeSet::from([&claim, &directory])
                            })
                        });
                    if !checked {
                        problems.push(format!("{}: '{id}' does not assert on Continue that '{claim}' is still the directory's {DIRECTORY_EMAIL_CLAIM} (AssertStringClaimsAreEqual): a read-only field is still a form field", at(step)));
                    }
                    // An account without the directory's address (signs in by user name only): the
                    // docs do not say what AssertStringClaimsAreEqual does with an absent input claim,
                    // so the page must fail first on the address's absence.
                    let (exists_at, equal_at) =
                        existence_and_equality_checks(all, &page, DIRECTORY_EMAIL_CLAIM, &claim);
                    match (exists_at, equal_at) {
                        (Some(e), Some(q)) if e < q => {}
                        (None, _) => problems.push(format!("{}: '{id}' does not fail on Continue when the account has no {DIRECTORY_EMAIL_CLAIM} (DoesClaimExist, then AssertBooleanClaimIsEqualToValue true): for an account that signs in by user name only, the address check would compare the form's '{claim}' with an absent claim", at(step))),
                        (Some(_), None) => {} // reported above: no address check at all
                        _ => problems.push(format!("{}: '{id}' checks that the account has a {DIRECTORY_EMAIL_CLAIM} only after comparing '{claim}' with it: the check must come first", at(step))),
                    }
                }
            }
            // The new phone: nothing between its enrolment and its wait page sets another authy id.
            if let (Some(register_at), Some(wait_at)) = (register, wait) {
                for step in &steps[register_at + 1..wait_at] {
                    if runs(step, &|id| {
                        profiles(all, id).iter().any(|d| {
                            descendants(*d, "OutputClaim").any(|c| {
                                c.attribute("ClaimTypeReferenceId")
                                    .is_some_and(|c| c.eq_ignore_ascii_case(AUTHY_ID_CLAIM))
                            })
                        })
                    }) {
                        problems.push(format!("{}: sets {AUTHY_ID_CLAIM} between the new phone's enrolment and its wait page: the push might not go to the new phone", at(*step)));
                    }
                }
            }
            // Nothing skipped: no precondition but the write's, on the enrolment flag; no SSO.
            for step in &steps {
                let is_write = write.is_some_and(|w| std::ptr::eq(step, &steps[w]));
                for precondition in descendants(*step, "Precondition") {
                    let claim = child(precondition, "Value").map(text).unwrap_or_default();
                    if !(is_write && claim == "newAuthyEnrollment") {
                        problems.push(format!("{}: a precondition on '{claim}' could skip it (only the write may have one, on newAuthyEnrollment)", at(*step)));
                    }
                }
                for id in exchanges(step) {
                    if let Err(why) = session_is_noop(all, &id) {
                        problems.push(format!("{}: {why}", at(*step)));
                    }
                }
            }
            // Its wait pages run what the sign-in's wait page runs, in the same order.
            let validations = |id: &str| -> Vec<String> {
                merged(all, id)
                    .iter()
                    .flat_map(|d| descendants(*d, "ValidationTechnicalProfile"))
                    .filter_map(|v| v.attribute("ReferenceId"))
                    .map(str::to_lowercase)
                    .collect()
            };
            if let Some(wait_at) = wait {
                for id in exchanges(&steps[wait_at]) {
                    if validations(&id) != validations(SIGN_IN_WAIT_PAGE) {
                        problems.push(format!(
                            "{}: '{id}' runs {:?}, not what {SIGN_IN_WAIT_PAGE} runs ({:?})",
                            at(steps[wait_at]),
                            validations(&id),
                            validations(SIGN_IN_WAIT_PAGE)
                        ));
                    }
                }
            }
        }
    }
    problems
}

impl JourneyStep {
    fn calls(&self, all: &[(&str, Document)], function: &str) -> bool {
        self.runs.iter().any(|id| calls_function(all, id, function))
    }

    /// Whether the step asks for a push: a wait page (CreateApprovalRequest, WaitForAuthyApproval).
    fn pushes(&self, all: &[(&str, Document)]) -> bool {
        self.calls(all, "CreateApprovalRequest") || self.calls(all, "WaitForAuthyApproval")
    }

    /// Whether anything the step runs outputs `claim`, itself or by a claims transformation.
    fn outputs(&self, all: &[(&str, Document)], claim: &str) -> bool {
        self.runs.iter().any(|id| outputs_claim(all, id, claim))
    }

    /// Whether the step sets the password of an existing account (a persisted `password` in an
    /// AAD write that does not create the account, unlike the sign-up's).
    fn writes_existing_password(&self, all: &[(&str, Document)]) -> bool {
        self.runs.iter().any(|id| {
            merged(all, id).iter().any(|tp| {
                let creates = metadata(*tp).get("RaiseErrorIfClaimsPrincipalAlreadyExists")
                    == Some(&"true".to_owned());
                !creates
                    && descendants(*tp, "PersistedClaim")
                        .any(|c| partner_name(c).eq_ignore_ascii_case(PASSWORD_CLAIM))
            })
        })
    }

    fn has_condition(&self, kind: &str, execute_if: bool, values: &[&str]) -> bool {
        self.conditions.iter().any(|c| {
            c.kind == kind
                && c.execute_if == execute_if
                && c.values.len() == values.len()
                && c.values
                    .iter()
                    .zip(values)
                    .enumerate()
                    .all(|(i, (have, want))| {
                        if i == 0 {
                            have.eq_ignore_ascii_case(want)
                        } else {
                            have == want
                        }
                    })
        })
    }

    /// A phone page that runs only without an authy id (enrolment of a user who has none).
    fn enrols_only_without_authy_id(&self) -> bool {
        self.has_condition("ClaimsExist", true, &[AUTHY_ID_CLAIM])
    }
}

/// Whether technical profile `id` (merged) outputs `claim`: an output claim, or the output of one
/// of its claims transformations.
fn outputs_claim(all: &[(&str, Document)], id: &str, claim: &str) -> bool {
    let definitions = merged(all, id);
    let direct = definitions
        .iter()
        .flat_map(|d| descendants(*d, "OutputClaim"))
        .filter(|c| c.parent().is_some_and(|p| is(p, "OutputClaims")))
        .filter(|c| {
            c.parent()
                .and_then(|p| p.parent())
                .is_some_and(|tp| is(tp, "TechnicalProfile"))
        })
        .any(|c| {
            c.attribute("ClaimTypeReferenceId")
                .is_some_and(|i| i.eq_ignore_ascii_case(claim))
        });
    let transformed = ["InputClaimsTransformation", "OutputClaimsTransformation"]
        .into_iter()
        .flat_map(|kind| transformations_of(&definitions, kind))
        .filter_map(|r| claims_transformation(all, &r))
        .any(|t| {
            descendants(t, "OutputClaim").any(|c| {
                c.attribute("ClaimTypeReferenceId")
                    .is_some_and(|i| i.eq_ignore_ascii_case(claim))
            })
        });
    direct || transformed
}

/// The session management technical profile `id` uses (the last one along its includes).
fn session_manager(all: &[(&str, Document)], id: &str) -> Option<String> {
    merged(all, id)
        .iter()
        .flat_map(|d| children(*d, "UseTechnicalProfileForSessionManagement"))
        .filter_map(|u| u.attribute("ReferenceId"))
        .last()
        .map(str::to_owned)
}

fn is_default_sso(all: &[(&str, Document)], id: &str) -> bool {
    merged(all, id).iter().any(|d| {
        child(*d, "Protocol")
            .and_then(|p| p.attribute("Handler"))
            .is_some_and(|h| h.contains(DEFAULT_SSO_PROVIDER))
    })
}

/// Our session claims: what our `DefaultSSOSessionProvider` technical profiles persist or issue
/// (lower-cased), with the technical profile that keeps each.
fn our_session_claims(
    ours: &[(&str, Document)],
    all: &[(&str, Document)],
) -> BTreeMap<String, String> {
    let mut claims = BTreeMap::new();
    for (_, doc) in ours {
        for tp in descendants(doc.root(), "TechnicalProfile") {
            let Some(id) = tp.attribute("Id") else {
                continue;
            };
            if !is_default_sso(all, id) {
                continue;
            }
            for c in descendants(tp, "PersistedClaim").chain(descendants(tp, "OutputClaim")) {
                if let Some(claim) = c.attribute("ClaimTypeReferenceId") {
                    claims.insert(claim.to_lowercase(), id.to_owned());
                }
            }
        }
    }
    claims
}

/// The claims that say "this session approved the authy id the directory holds": the output of
/// a `CompareClaims` (EQUAL, case-sensitive) of `extension_authyId` with a claim our session keeps.
fn same_authy_id_claims(
    all: &[(&str, Document)],
    session: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    all.iter()
        .flat_map(|(_, d)| descendants(d.root(), "ClaimsTransformation"))
        .filter(|t| t.attribute("TransformationMethod") == Some("CompareClaims"))
        .filter(|t| {
            let one = transformation_claim(*t, "InputClaim", "inputClaim1");
            let two = transformation_claim(*t, "InputClaim", "inputClaim2");
            let authy = AUTHY_ID_CLAIM.to_lowercase();
            let pair = match (one, two) {
                (Some(a), Some(b)) if a == authy => Some(b),
                (Some(a), Some(b)) if b == authy => Some(a),
                _ => None,
            };
            pair.is_some_and(|other| session.contains_key(&other))
                && transformation_parameter(*t, "operator")
                    .is_some_and(|o| o.eq_ignore_ascii_case("EQUAL"))
                && transformation_parameter(*t, "ignoreCase")
                    .is_some_and(|o| o.eq_ignore_ascii_case("false"))
        })
        .filter_map(|t| transformation_claim(t, "OutputClaim", "outputClaim"))
        .collect()
}

/// MFA once per SSO session, proved on the journeys:
/// - a push step may be skipped only by "no authy id" (nothing to push to) or by the session
///   precondition: `ClaimEquals` true on a same-authy-id claim ([`same_authy_id_claims`]);
/// - the session precondition only in a journey that writes no password of an existing account
///   (password reset) and enrols only users without an authy id (not a phone change), after the
///   step computing that claim, which runs only with an authy id, before any phone page, with
///   nothing but such enrolment-only phone pages in between that could change the authy id;
/// - our session claims are output only by technical profiles that use the session management
///   technical profile keeping them, which copy the claim from `extension_authyId`, in steps that
///   follow a push step (no phone page in between) and run only when it returned "approved";
///   the same-authy-id claim only by technical profiles that compute it, false by default;
/// - no technical profile that calls the API uses a `DefaultSSOSessionProvider` (B2C would skip
///   it, the push, in a session whatever the authy id).
fn check_session_skips(ours: &[(&str, Document)], all: &[(&str, Document)]) -> Vec<String> {
    let mut problems = Vec::new();
    let session = our_session_claims(ours, all);
    let matches = same_authy_id_claims(all, &session);
    let approved = ApprovalStatus::Approved.as_str();
    let authy_id = AUTHY_ID_CLAIM.to_lowercase();

    // Who outputs the session and same-authy-id claims, and with which session manager.
    for (_, doc) in ours {
        for tp in descendants(doc.root(), "TechnicalProfile") {
            let Some(id) = tp.attribute("Id") else {
                continue;
            };
            if is_default_sso(all, id) {
                continue;
            }
            let manager = session_manager(all, id);
            if FUNCTION_NAMES
                .iter()
                .any(|f| closure(all, id).iter().any(|c| calls_function(all, c, f)))
                && manager.as_deref().is_some_and(|m| is_default_sso(all, m))
            {
                problems.push(format!("'{id}' calls the API and uses the DefaultSSOSessionProvider '{}': in an SSO session B2C would skip it, and its push, whatever authy id the directory holds", manager.clone().unwrap_or_default()));
            }
            for (claim, keeper) in &session {
                if !outputs_claim(all, id, claim) {
                    continue;
                }
                let copies = transformations_of(&merged(all, id), "OutputClaimsTransformation")
                    .iter()
                    .filter_map(|r| claims_transformation(all, r))
                    .any(|t| {
                        t.attribute("TransformationMethod") == Some("CopyClaim")
                            && transformation_claim(t, "InputClaim", "inputClaim").as_deref()
                                == Some(authy_id.as_str())
                            && transformation_claim(t, "OutputClaim", "outputClaim").as_deref()
                                == Some(claim.as_str())
                    });
                if manager.as_deref() != Some(keeper.as_str()) || !copies {
                    problems.push(format!("'{id}' outputs the session claim {claim}: only a technical profile that copies it from {AUTHY_ID_CLAIM} right after an approval, with the session management technical profile '{keeper}', may"));
                }
            }
            for claim in &matches {
                if !outputs_claim(all, id, claim) {
                    continue;
                }
                let definitions = merged(all, id);
                let computes = transformations_of(&definitions, "OutputClaimsTransformation")
                    .iter()
                    .filter_map(|r| claims_transformation(all, r))
                    .any(|t| {
                        t.attribute("TransformationMethod") == Some("CompareClaims")
                            && transformation_claim(t, "OutputClaim", "outputClaim").as_deref()
                                == Some(claim.as_str())
                    });
                let false_first = definitions
                    .iter()
                    .flat_map(|d| descendants(*d, "OutputClaim"))
                    .filter(|c| {
                        c.attribute("ClaimTypeReferenceId")
                            .is_some_and(|i| i.eq_ignore_ascii_case(claim))
                    })
                    .all(|c| {
                        c.attribute("DefaultValue") == Some("false")
                            && c.attribute("AlwaysUseDefaultValue") == Some("true")
                    });
                if !computes || !false_first {
                    problems.push(format!("'{id}' outputs {claim}, which skips the push: only the comparison of {AUTHY_ID_CLAIM} with the session's approved authy id may, false unless equal"));
                }
            }
        }
    }

    for (file, doc) in ours {
        for journey in descendants(doc.root(), "UserJourney") {
            let journey_id = journey.attribute("Id").unwrap_or_default();
            let steps = journey_steps_of(journey, all);
            let at = |s: &JourneyStep| format!("{file}: journey '{journey_id}' step {}", s.order);
            let writes_password = steps.iter().any(|s| s.writes_existing_password(all));
            let re_enrols = steps
                .iter()
                .any(|s| s.calls(all, "Register") && !s.enrols_only_without_authy_id());
            for (index, step) in steps.iter().enumerate() {
                // Steps that set a session claim: after a push step, only when it approved.
                for (claim, _) in session.iter().filter(|(c, _)| step.outputs(all, c)) {
                    let last_push = steps[..index].iter().rposition(|s| s.pushes(all));
                    let re_registered = last_push.is_some_and(|p| {
                        steps[p + 1..index].iter().any(|s| s.calls(all, "Register"))
                    });
                    if last_push.is_none() || re_registered {
                        problems.push(format!("{}: sets the session claim {claim} without a push step before it for the same authy id", at(step)));
                    }
                    if !step.has_condition("ClaimEquals", false, &["approvalStatus", approved]) {
                        problems.push(format!("{}: sets the session claim {claim} without the precondition that the wait page returned approvalStatus '{approved}' in this journey", at(step)));
                    }
                }
                if !step.pushes(all) {
                    continue;
                }
                for condition in &step.conditions {
                    let no_authy_id = condition.kind == "ClaimsExist"
                        && !condition.execute_if
                        && condition.values == [authy_id.clone()];
                    let session_skip = condition.kind == "ClaimEquals"
                        && condition.execute_if
                        && condition.values.len() == 2
                        && matches.contains(&condition.values[0])
                        && condition.values[1] == TRUE_IN_PRECONDITION;
                    if !no_authy_id && !session_skip {
                        problems.push(format!("{}: asks for the push, but its precondition {condition:?} may skip it: only 'no {AUTHY_ID_CLAIM}' or the session's same-authy-id claim may", at(step)));
                        continue;
                    }
                    if !session_skip {
                        continue;
                    }
                    let claim = &condition.values[0];
                    if writes_password {
                        problems.push(format!("{}: the SSO session may skip the push of a journey that sets a password (password reset must always ask)", at(step)));
                    }
                    if re_enrols {
                        problems.push(format!("{}: the SSO session may skip the push of a journey that enrols a phone for a user who has one (a phone change must always ask)", at(step)));
                    }
                    let Some(compare) = steps[..index].iter().rposition(|s| s.outputs(all, claim))
                    else {
                        problems.push(format!(
                            "{}: skipped on {claim}, which no step before it computes",
                            at(step)
                        ));
                        continue;
                    };
                    let compare_step = &steps[compare];
                    if !compare_step.has_condition("ClaimsExist", false, &[AUTHY_ID_CLAIM]) {
                        problems.push(format!("{}: computes {claim} without the precondition that {AUTHY_ID_CLAIM} exists: a user without an authy id must enrol and approve, session or not", at(compare_step)));
                    }
                    if steps[..compare].iter().any(|s| s.calls(all, "Register")) {
                        problems.push(format!("{}: computes {claim} after a phone page: it must compare the directory's authy id", at(compare_step)));
                    }
                    for between in &steps[compare + 1..index] {
                        if between.outputs(all, AUTHY_ID_CLAIM)
                            && !between.enrols_only_without_authy_id()
                        {
                            problems.push(format!("{}: may change {AUTHY_ID_CLAIM} between the session comparison (step {}) and the push it skips", at(between), compare_step.order));
                        }
                    }
                }
            }
        }
    }
    problems
}

/// In every journey, a step that sets the password of an existing account comes after a push
/// step that no precondition skips.
fn check_password_after_approval(
    ours: &[(&str, Document)],
    all: &[(&str, Document)],
) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, doc) in ours {
        for journey in descendants(doc.root(), "UserJourney") {
            let steps = journey_steps_of(journey, all);
            for (index, step) in steps.iter().enumerate() {
                if !step.writes_existing_password(all) {
                    continue;
                }
                let approved_before = steps[..index]
                    .iter()
                    .any(|s| s.pushes(all) && s.conditions.is_empty());
                if !approved_before {
                    problems.push(format!(
                        "{file}: journey '{}' step {} sets the password ('{}') before a push step that always runs",
                        journey.attribute("Id").unwrap_or_default(),
                        step.order,
                        step.exchanges.join("', '")
                    ));
                }
            }
        }
    }
    problems
}

/// Every check on one set of rendered policies (and the starter pack, when there).
fn check_all(
    ours: &[PolicyText],
    pack: Option<&[PolicyText]>,
    api: &BTreeMap<String, FunctionContract>,
) -> Vec<String> {
    let pack_files = pack.unwrap_or_default();
    let all_files = [pack_files, ours].concat();
    // References and journeys through each policy's chain: what `render-policies --check-against`
    // reports to users.
    let chained = if pack_files.is_empty() {
        Vec::new()
    } else {
        policy_check::check_against(&policy_files(ours), &policy_files(pack_files))
    };
    let (ours, all) = (parse(ours), parse(&all_files));
    let mut problems = check_rest_profiles(&ours, api);
    problems.extend(chained.iter().map(ToString::to_string));
    problems.extend(check_write_after_approval(&ours, &all));
    problems.extend(check_no_rest_orchestration_steps(&ours, &all));
    problems.extend(check_wait_pages(&ours, &all, wait_limits()));
    problems.extend(check_localization(&ours));
    // It follows the pack's own profiles (the password check, AAD-Common, SM-Noop).
    if !pack_files.is_empty() {
        problems.extend(check_recovery_journeys(&ours, &all));
    }
    problems.extend(check_claims_transformation_profiles(&ours));
    problems.extend(check_session_skips(&ours, &all));
    problems.extend(check_password_after_approval(&ours, &all));
    problems
}

// ---------------------------------------------------------------------------------------------
// Tests

/// The starter pack each environment of `policies/appsettings.json` names.
fn environment_packs() -> BTreeMap<String, StarterPack> {
    let settings = AppSettings::load(&policies_dir().join(policies::SETTINGS_FILE)).unwrap();
    settings
        .environments
        .iter()
        .map(|env| {
            let layer = env
                .layer_settings()
                .unwrap_or_else(|p| panic!("{}: {p:?}", env.name));
            (env.name.clone(), layer.starter_pack)
        })
        .collect()
}

#[test]
fn policies_match_the_api_and_resolve_through_the_starter_pack() {
    let packs = environment_packs();
    for (environment, files) in rendered() {
        let pack = starter_pack(packs[environment]);
        let problems = check_all(files, pack.as_deref(), &api_contract());
        assert!(
            problems.is_empty(),
            "environment {environment}:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn every_variant_matches_the_api_and_resolves_through_its_pack() {
    for variant in variants() {
        let pack = starter_pack(variant.settings.starter_pack);
        let problems = check_all(&variant.files, pack.as_deref(), &api_contract());
        assert!(
            problems.is_empty(),
            "variant {}:\n{}",
            variant.name,
            problems.join("\n")
        );
    }
}

#[test]
fn the_journeys_are_the_ones_the_readme_describes() {
    for variant in variants() {
        let ours = parse(&variant.files);
        let journeys: BTreeSet<_> = ours
            .iter()
            .flat_map(|(_, d)| descendants(d.root(), "DefaultUserJourney"))
            .filter_map(|j| j.attribute("ReferenceId"))
            .collect();
        let mut expected = BTreeSet::from([
            "PasswordResetWithAuthy",
            "ProfileEditAuthyPhone",
            "SignUpOrSignInWithAuthy",
        ]);
        // The lost-phone relying party, and its journey in our layer, only when it is on.
        if variant.settings.phone_recovery {
            expected.insert(RECOVERY_JOURNEY);
        }
        assert_eq!(journeys, expected, "{}", variant.name);
        let defined = ours
            .iter()
            .flat_map(|(_, d)| descendants(d.root(), "UserJourney"))
            .any(|j| j.attribute("Id") == Some(RECOVERY_JOURNEY));
        assert_eq!(defined, variant.settings.phone_recovery, "{}", variant.name);
        let files: Vec<&str> = variant.files.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            files.contains(&RECOVERY_FILE),
            variant.settings.phone_recovery,
            "{}: {files:?}",
            variant.name
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The layer: what our files may and may not be on top of the tenant's chain.

/// The PolicyId of a policy file and the PolicyId of its BasePolicy.
fn policy_ids(doc: &Document) -> (String, Option<String>) {
    let root = doc.root_element();
    let id = root.attribute("PolicyId").unwrap_or_default().to_owned();
    let base = child(root, "BasePolicy")
        .and_then(|b| child(b, "PolicyId"))
        .map(text);
    (id, base)
}

/// Our files are not the tenant's chain: no Base, Localization or Extensions PolicyId among them;
/// the layer inherits from `AuthyBasePolicy`, every other file from the layer.
fn layer_chain_problems(files: &[PolicyText], settings: &LayerSettings) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, doc) in &parse(files) {
        let (id, base) = policy_ids(doc);
        if TENANT_CHAIN_POLICY_IDS
            .iter()
            .any(|tenant| tenant.eq_ignore_ascii_case(&id))
        {
            problems.push(format!("{file}: PolicyId {id} is a policy of the tenant's own chain, which uploading ours would overwrite"));
        }
        let expected = if id.eq_ignore_ascii_case(policies::LAYER_POLICY_ID) {
            settings.authy_base_policy.as_str()
        } else {
            policies::LAYER_POLICY_ID
        };
        if base.as_deref() != Some(expected) {
            problems.push(format!("{file}: BasePolicy is {base:?}, not {expected}"));
        }
    }
    if !parse(files)
        .iter()
        .any(|(_, d)| policy_ids(d).0 == policies::LAYER_POLICY_ID)
    {
        problems.push(format!(
            "no file has PolicyId {}",
            policies::LAYER_POLICY_ID
        ));
    }
    problems
}

/// Every file starts with the XML declaration and then the managed-policy marker.
fn marker_problems(files: &[PolicyText]) -> Vec<String> {
    files
        .iter()
        .filter(|(_, text)| {
            let after_declaration = text
                .trim_start()
                .strip_prefix("<?xml")
                .and_then(|t| t.split_once("?>"))
                .map(|(_, rest)| rest.trim_start());
            !after_declaration.is_some_and(|rest| rest.starts_with(policies::MANAGED_POLICY_MARKER))
        })
        .map(|(file, _)| {
            format!(
                "{file}: {} does not follow the XML declaration: deploy/upload-policies.sh would not upload it",
                policies::MANAGED_POLICY_MARKER
            )
        })
        .collect()
}

/// No social identity provider unless `SocialProviders` names one: no social technical profile,
/// nothing Facebook in any element or attribute (comments aside). With Facebook, both journeys
/// offer it.
fn social_problems(files: &[PolicyText], social: SocialProviders) -> Vec<String> {
    let docs = parse(files);
    let mut problems = Vec::new();
    let mut facebook_exchanges = BTreeSet::new();
    for (file, doc) in &docs {
        for node in doc.descendants().filter(|n| n.is_element()) {
            let values = node
                .attributes()
                .map(|a| a.value().to_owned())
                .chain(node.text().map(str::to_owned));
            for value in values {
                let social_profile = SOCIAL_PROFILES
                    .iter()
                    .any(|p| p.eq_ignore_ascii_case(value.trim()));
                let facebook = value.to_lowercase().contains("facebook");
                if social == SocialProviders::None && (social_profile || facebook) {
                    problems.push(format!(
                        "{file}: <{}> names '{}', a social sign-in, but SocialProviders is None",
                        node.tag_name().name(),
                        value.trim()
                    ));
                }
            }
            if is(node, "ClaimsExchange")
                && node.attribute("TechnicalProfileReferenceId") == Some("Facebook-OAUTH")
            {
                if let Some(journey) = node.ancestors().find(|a| is(*a, "UserJourney")) {
                    facebook_exchanges
                        .insert(journey.attribute("Id").unwrap_or_default().to_owned());
                }
            }
        }
    }
    if social == SocialProviders::Facebook {
        for journey in ["SignUpOrSignInWithAuthy", "ProfileEditAuthyPhone"] {
            if !facebook_exchanges.contains(journey) {
                problems.push(format!(
                    "journey '{journey}' offers no Facebook-OAUTH, but SocialProviders is Facebook"
                ));
            }
        }
    }
    problems
}

/// `ScriptExecution` `Allow` in every relying party exactly when the wait page script is on.
fn script_problems(files: &[PolicyText], script: bool) -> Vec<String> {
    let mut problems = Vec::new();
    for (file, doc) in &parse(files) {
        let everywhere: Vec<String> = descendants(doc.root(), "ScriptExecution")
            .map(text)
            .collect();
        for rp in descendants(doc.root(), "RelyingParty") {
            let here: Vec<String> = descendants(rp, "ScriptExecution").map(text).collect();
            if script && here != ["Allow"] {
                problems.push(format!("{file}: AuthyWaitPageScript is true but the relying party has ScriptExecution {here:?}, not Allow: the wait page template's script would not run"));
            }
        }
        if !script && !everywhere.is_empty() {
            problems.push(format!("{file}: ScriptExecution {everywhere:?}, but AuthyWaitPageScript is false: no page may run a script"));
        }
    }
    problems
}

/// The ids our layer defines that the tenant's chain (the pack) defines too: our layer would
/// override the tenant's definitions, and change its other policies' behaviour.
fn override_problems(ours: &[PolicyText], pack: &[PolicyText]) -> Vec<String> {
    const KINDS: [&str; 7] = [
        "ClaimType",
        "TechnicalProfile",
        "ClaimsTransformation",
        "ContentDefinition",
        "UserJourney",
        "SubJourney",
        "DisplayControl",
    ];
    let defined = |docs: &[(&str, Document)], kind: &'static str| -> BTreeSet<String> {
        docs.iter()
            .filter(|(_, d)| descendants(d.root(), "RelyingParty").next().is_none())
            .flat_map(|(_, d)| descendants(d.root(), kind))
            .filter_map(|n| n.attribute("Id"))
            .map(str::to_lowercase)
            .collect()
    };
    let (ours, pack) = (parse(ours), parse(pack));
    let mut problems = Vec::new();
    for kind in KINDS {
        for id in defined(&ours, kind).intersection(&defined(&pack, kind)) {
            problems.push(format!("our layer defines {kind} '{id}', which the tenant's chain defines too: ours would override it"));
        }
    }
    problems
}

/// Asserts that `problems` is empty, naming the variant.
fn assert_none(variant: &Variant, what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "variant {} ({what}):\n{}",
        variant.name,
        problems.join("\n")
    );
}

#[test]
fn our_files_are_a_layer_on_top_of_the_tenants_chain() {
    for variant in variants() {
        assert_none(
            variant,
            "chain",
            layer_chain_problems(&variant.files, &variant.settings),
        );
        assert_none(variant, "marker", marker_problems(&variant.files));
        assert_none(
            variant,
            "social",
            social_problems(&variant.files, variant.settings.social_providers),
        );
        assert_none(
            variant,
            "script",
            script_problems(&variant.files, variant.settings.wait_page_script),
        );
        if let Some(pack) = starter_pack(variant.settings.starter_pack) {
            assert_none(
                variant,
                "overrides",
                override_problems(&variant.files, &pack),
            );
        }
    }
    assert_eq!(marker_problems(&templates()), Vec::<String>::new());
    // The variants cover what they should: all packs, Facebook on the social ones, both scripts,
    // the lost-phone journey off and on.
    let names: Vec<&str> = variants().iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names.len(), 20, "{names:?}");
}

/// The claims `REST-Authy-CreateApprovalRequest` sends in `files`, by their API names.
fn create_inputs(files: &[PolicyText]) -> BTreeSet<String> {
    let docs = parse(files);
    merged(&docs, "REST-Authy-CreateApprovalRequest")
        .iter()
        .flat_map(|d| descendants(*d, "InputClaim"))
        .map(partner_name)
        .collect()
}

#[test]
fn the_application_name_is_sent_only_when_set() {
    // The sample leaves AuthyApplicationName empty: not sent.
    assert!(
        !create_inputs(&sample()).contains("applicationName"),
        "{:?}",
        create_inputs(&sample())
    );
    let mut env = variant_environment(
        StarterPack::SocialAndLocalAccounts,
        SocialProviders::None,
        false,
    );
    env.policy_settings.insert(
        policies::APPLICATION_NAME_KEY.to_owned(),
        "Contoso Shop".to_owned(),
    );
    let dir = temp_dir("application-name");
    let files: Vec<PolicyText> = policies::render_environment(&policies_dir(), &env, &dir)
        .unwrap()
        .iter()
        .map(read_policy)
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(create_inputs(&files).contains("applicationName"));
    // render-policies allows the names the API shows in full.
    assert_eq!(
        policies::APPLICATION_NAME_MAX_CHARS,
        b2c_authy::functions::MAX_APPLICATION_NAME_CHARS
    );
    let (_, layer) = files.iter().find(|(f, _)| f == LAYER_FILE).unwrap();
    assert!(layer.contains(r#"ClaimTypeReferenceId="applicationName" DefaultValue="Contoso Shop""#));
    let pack = starter_pack(StarterPack::SocialAndLocalAccounts);
    let problems = check_all(&files, pack.as_deref(), &api_contract());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_local_accounts_tenant_gets_no_facebook() {
    let env = variant_environment(StarterPack::LocalAccounts, SocialProviders::Facebook, false);
    let dir = temp_dir("local-facebook");
    let error = policies::render_environment(&policies_dir(), &env, &dir).unwrap_err();
    assert!(
        matches!(error, PolicyError::InvalidLayerSettings { .. }),
        "{error}"
    );
    assert!(!dir.exists(), "nothing is written");
}

/// The variant called `name`.
fn variant(name: &str) -> &'static Variant {
    variants()
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no variant {name}"))
}

/// `files` with the text of `file` edited by `edit`, which must change it (else the test fails,
/// saying that `what` is not in `file`): the one place every mutation helper below edits.
fn edited(
    files: &[PolicyText],
    file: &str,
    what: &str,
    edit: impl Fn(&str) -> String,
) -> Vec<PolicyText> {
    let mutated: Vec<PolicyText> = files
        .iter()
        .map(|(f, t)| (f.clone(), if f == file { edit(t) } else { t.clone() }))
        .collect();
    assert_ne!(mutated, files, "{what} is not in {file}");
    mutated
}

/// `files` with one text replacement in `file`, which must change it.
fn replaced(files: &[PolicyText], file: &str, from: &str, to: &str) -> Vec<PolicyText> {
    edited(files, file, &format!("'{from}'"), |t| {
        t.replacen(from, to, 1)
    })
}

#[test]
fn layer_violations_are_reported() {
    let local = variant("LocalAccounts/None/script=false");
    let settings = &local.settings;
    // Our layer under the tenant's extensions' PolicyId: the upload would replace the tenant's.
    let problems = layer_chain_problems(
        &replaced(
            &local.files,
            LAYER_FILE,
            r#"PolicyId="B2C_1A_AuthyExtensions""#,
            r#"PolicyId="B2C_1A_TrustFrameworkExtensions""#,
        ),
        settings,
    );
    assert_reported(&problems, &["is a policy of the tenant's own chain"]);
    // A relying party that skips our layer.
    let problems = layer_chain_problems(
        &replaced(
            &local.files,
            "SignUpOrSigninAuthy.xml",
            "<PolicyId>B2C_1A_AuthyExtensions<",
            "<PolicyId>B2C_1A_TrustFrameworkExtensions<",
        ),
        settings,
    );
    assert_reported(&problems, &["SignUpOrSigninAuthy.xml: BasePolicy is Some(\"B2C_1A_TrustFrameworkExtensions\"), not B2C_1A_AuthyExtensions"]);
    // No marker.
    let problems = marker_problems(&replaced(
        &local.files,
        "ProfileEditAuthy.xml",
        policies::MANAGED_POLICY_MARKER,
        "<!-- -->",
    ));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("ProfileEditAuthy.xml:")),
        "{problems:#?}"
    );
    // A Facebook step without SocialProviders=Facebook.
    let problems = social_problems(
        &replaced(
            &local.files,
            LAYER_FILE,
            r#"TechnicalProfileReferenceId="LocalAccountSignUpWithLogonEmail" />"#,
            r#"TechnicalProfileReferenceId="LocalAccountSignUpWithLogonEmail" /><ClaimsExchange Id="FacebookExchange" TechnicalProfileReferenceId="Facebook-OAUTH" />"#,
        ),
        SocialProviders::None,
    );
    assert_reported(&problems, &["'Facebook-OAUTH', a social sign-in"]);
    // SocialProviders=Facebook, but a journey without it.
    let facebook = variant("SocialAndLocalAccounts/Facebook/script=false");
    let problems = social_problems(
        &replaced(
            &facebook.files,
            LAYER_FILE,
            r#"<ClaimsExchange Id="FacebookExchange" TechnicalProfileReferenceId="Facebook-OAUTH" />"#,
            "",
        ),
        SocialProviders::Facebook,
    );
    assert_reported(
        &problems,
        &["journey 'SignUpOrSignInWithAuthy' offers no Facebook-OAUTH"],
    );
    // ScriptExecution without the script, and none with it.
    let problems = script_problems(&replaced(&local.files, "SignUpOrSigninAuthy.xml", "<TechnicalProfile Id=\"PolicyProfile\">", "<UserJourneyBehaviors><ScriptExecution>Allow</ScriptExecution></UserJourneyBehaviors><TechnicalProfile Id=\"PolicyProfile\">"), false);
    assert_reported(&problems, &["SignUpOrSigninAuthy.xml: ScriptExecution [\"Allow\"], but AuthyWaitPageScript is false"]);
    let script = variant("LocalAccounts/None/script=true");
    let problems = script_problems(
        &replaced(
            &script.files,
            "ProfileEditAuthy.xml",
            "<ScriptExecution>Allow</ScriptExecution>",
            "",
        ),
        true,
    );
    assert_reported(&problems, &["ProfileEditAuthy.xml: AuthyWaitPageScript is true but the relying party has ScriptExecution []"]);
    // Our layer redefining a technical profile of the tenant's chain.
    let Some(pack) = starter_pack(StarterPack::LocalAccounts) else {
        return;
    };
    let problems = override_problems(
        &replaced(
            &local.files,
            LAYER_FILE,
            r#"<TechnicalProfile Id="AAD-UserReadAuthyIdUsingObjectId">"#,
            r#"<TechnicalProfile Id="AAD-UserReadUsingObjectId">"#,
        ),
        &pack,
    );
    assert_reported(&problems, &["TechnicalProfile 'aad-userreadusingobjectid'"]);
}

#[test]
fn renaming_a_claim_in_a_policy_breaks_the_contract() {
    let api = api_contract();
    let renamed: Vec<PolicyText> = sample()
        .into_iter()
        .map(|(f, t)| {
            (
                f,
                t.replace(
                    r#"PartnerClaimType="authyId""#,
                    r#"PartnerClaimType="authyIdentifier""#,
                ),
            )
        })
        .collect();
    assert_ne!(renamed, sample(), "the mutation must change something");
    let problems = check_all(&renamed, None, &api);
    let about: Vec<_> = problems
        .iter()
        .filter(|p| p.contains("'authyIdentifier'"))
        .collect();
    // Register's output, CreateApprovalRequest's and WaitForAuthyApproval's input.
    assert_eq!(about.len(), 3, "{problems:#?}");
    assert!(
        about
            .iter()
            .any(|p| p.contains("REST-Authy-Register") && p.contains("never returns")),
        "{about:#?}"
    );
    assert!(
        about
            .iter()
            .any(|p| p.contains("REST-Authy-WaitForAuthyApproval") && p.contains("does not read")),
        "{about:#?}"
    );
}

#[test]
fn renaming_a_field_in_the_api_breaks_the_contract() {
    let files = sample();

    let mut api = api_contract();
    api.get_mut("Register").unwrap().returns.remove("authyId");
    let problems = check_all(&files, None, &api);
    assert_reported(
        &problems,
        &["REST-Authy-Register", "'authyId'", "never returns"],
    );

    // The sign-in code no longer returned: the page could not show it.
    let mut api = api_contract();
    api.get_mut("CreateApprovalRequest")
        .unwrap()
        .returns
        .remove("signInCode");
    let problems = check_all(&files, None, &api);
    assert_reported(
        &problems,
        &[
            "REST-Authy-CreateApprovalRequest",
            "'signInCode'",
            "never returns",
        ],
    );

    let mut api = api_contract();
    api.get_mut("WaitForAuthyApproval")
        .unwrap()
        .reads
        .remove("approvalRequestId");
    let problems = check_all(&files, None, &api);
    assert_reported(
        &problems,
        &[
            "REST-Authy-WaitForAuthyApproval",
            "'approvalRequestId'",
            "does not read",
        ],
    );
}

/// Applies one text replacement to the rendered extensions policy.
fn mutate(from: &str, to: &str) -> Vec<PolicyText> {
    replaced(&sample(), LAYER_FILE, from, to)
}

#[test]
fn a_service_url_without_a_function_folder_breaks_the_contract() {
    let problems = check_all(
        &mutate("/WaitForAuthyApproval?", "/WaitForApproval?"),
        None,
        &api_contract(),
    );
    assert_reported(&problems, &["no folder WaitForApproval/function.json"]);
}

#[test]
fn a_rest_profile_without_the_page_language_is_reported() {
    let api = api_contract();
    // Left out of one profile: its messages would be English on every page.
    let line = r#"
            <InputClaim ClaimTypeReferenceId="uiLocale" DefaultValue="{Culture:RFC5646}" AlwaysUseDefaultValue="true" />"#;
    let problems = check_all(&mutate(line, ""), None, &api);
    assert_eq!(
        problems
            .iter()
            .filter(|p| p.contains("must send uiLocale"))
            .count(),
        1,
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("REST technical profile 'REST-Authy-Register'")),
        "{problems:#?}"
    );
    // A resolver other than the page's culture, or a value the journey could override.
    for (from, to) in [
        (
            r#"DefaultValue="{Culture:RFC5646}""#,
            r#"DefaultValue="{Culture:LanguageName}""#,
        ),
        (
            r#"DefaultValue="{Culture:RFC5646}" AlwaysUseDefaultValue="true""#,
            r#"DefaultValue="{Culture:RFC5646}""#,
        ),
    ] {
        let problems = check_all(&mutate(from, to), None, &api);
        assert!(
            problems.iter().any(|p| p.contains("must send uiLocale")),
            "{from} -> {to}: {problems:#?}"
        );
    }
    // Claim resolvers not resolved in the profile's claims: B2C would send the text
    // "{Culture:RFC5646}" itself.
    let problems = check_all(
        &mutate(
            r#"<Item Key="IncludeClaimResolvingInClaimsHandling">true</Item>"#,
            r#"<Item Key="IncludeClaimResolvingInClaimsHandling">false</Item>"#,
        ),
        None,
        &api,
    );
    assert_reported(
        &problems,
        &["metadata IncludeClaimResolvingInClaimsHandling must be true"],
    );
    // The API no longer reading it: every profile sends a claim it does not read.
    let mut api = api_contract();
    api.get_mut("WaitForAuthyApproval")
        .unwrap()
        .reads
        .remove(UI_LOCALE_CLAIM);
    let problems = check_all(&sample(), None, &api);
    assert_reported(
        &problems,
        &["sends claim 'uiLocale'", "REST-Authy-WaitForAuthyApproval"],
    );
}

#[test]
fn broken_references_are_reported() {
    let Some(pack) = starter_pack(StarterPack::SocialAndLocalAccounts) else {
        return;
    };
    let api = api_contract();
    let steps = journey_steps(&sample(), "SignUpOrSignInWithAuthy");
    for (from, to, expected) in [
        (
            r#"<ValidationTechnicalProfile ReferenceId="REST-Authy-CreateApprovalRequest""#,
            r#"<ValidationTechnicalProfile ReferenceId="REST-Authy-CreateApproval""#,
            "TechnicalProfile 'REST-Authy-CreateApproval'".to_owned(),
        ),
        (
            "<Value>newAuthyEnrollment</Value>",
            "<Value>newAuthyEnrolment</Value>",
            "ClaimType 'newAuthyEnrolment'".to_owned(),
        ),
        (
            r#"<Item Key="ContentDefinitionReferenceId">api.selfasserted.authywait<"#,
            r#"<Item Key="ContentDefinitionReferenceId">api.selfasserted.wait<"#,
            "ContentDefinition 'api.selfasserted.wait'".to_owned(),
        ),
        (
            r#"ValidationClaimsExchangeId="LocalAccountSigninEmailExchange""#,
            r#"ValidationClaimsExchangeId="LocalAccountSigninEmailExchang""#,
            "'LocalAccountSigninEmailExchang' matches no claims exchange".to_owned(),
        ),
        (
            r#"<OrchestrationStep Order="2""#,
            r#"<OrchestrationStep Order="20""#,
            format!("not 1..{steps}"),
        ),
    ] {
        let problems = check_all(&mutate(from, to), Some(&pack), &api);
        assert!(
            problems.iter().any(|p| p.contains(&expected)),
            "{from} -> {to}: {problems:#?}"
        );
    }
}

#[test]
fn writing_the_authy_id_before_approval_is_reported() {
    // The sign-up/sign-in wait page replaced by the write: the write now comes before any approval.
    let mutated = mutate(
        r#"<ClaimsExchange Id="AuthyWaitForApproval" TechnicalProfileReferenceId="SelfAsserted-AuthyWaitForApproval" />"#,
        r#"<ClaimsExchange Id="AuthyWaitForApproval" TechnicalProfileReferenceId="AAD-UserWriteAuthyIdUsingObjectId" />"#,
    );
    let problems = check_all(&mutated, None, &api_contract());
    let step = step_of(&sample(), "SignUpOrSignInWithAuthy", "AuthyWaitForApproval");
    let expected = format!("'SignUpOrSignInWithAuthy' step {step} writes extension_authyId before");
    assert!(
        problems.iter().any(|p| p.contains(&expected)),
        "{problems:#?}"
    );
    // Profile edit: the new phone's wait removed, so only the old phone approved.
    let mutated = mutate(
        r#"<ClaimsExchange Id="AuthyWaitForApprovalNewPhone" TechnicalProfileReferenceId="SelfAsserted-AuthyWaitForApproval" />"#,
        r#"<ClaimsExchange Id="AuthyWaitForApprovalNewPhone" TechnicalProfileReferenceId="REST-Authy-CreateApprovalRequest" />"#,
    );
    let problems = check_all(&mutated, None, &api_contract());
    let step = step_of(&sample(), "ProfileEditAuthyPhone", "AADUserWriteAuthyId");
    let expected = format!("'ProfileEditAuthyPhone' step {step} writes extension_authyId before");
    assert!(
        problems.iter().any(|p| p.contains(&expected)),
        "{problems:#?}"
    );
}

/// The session precondition of the sign-in journey's wait page, as rendered.
const SESSION_PRECONDITION: &str = r#"<Precondition Type="ClaimEquals" ExecuteActionsIf="true">
              <Value>authyMfaSessionMatches</Value>
              <Value>True</Value>
              <Action>SkipThisOrchestrationStep</Action>
            </Precondition>"#;

/// Whether `problems` has one that contains every part of `expected`.
fn reported(problems: &[String], expected: &[&str]) -> bool {
    problems
        .iter()
        .any(|p| expected.iter().all(|e| p.contains(e)))
}

/// Asserts that one of `problems` contains every one of `expected`.
#[track_caller]
fn assert_reported(problems: &[String], expected: &[&str]) {
    assert!(
        reported(problems, expected),
        "expected a problem with {expected:?} in {problems:#?}"
    );
}

#[test]
fn the_sso_session_skips_only_the_sign_in_push_for_the_same_authy_id() {
    // Not vacuous: the rendered sign-in wait page carries the session precondition.
    let sample = sample();
    let layer = &sample.iter().find(|(f, _)| f == LAYER_FILE).unwrap().1;
    assert_eq!(layer.matches(SESSION_PRECONDITION).count(), 1, "{layer}");
    let api = api_contract();
    let step = |journey, exchange| step_of(&sample, journey, exchange);
    let sign_in_wait = step("SignUpOrSignInWithAuthy", "AuthyWaitForApproval");
    let sign_in_compare = step("SignUpOrSignInWithAuthy", "AuthyCompareSessionAuthyId");
    let sign_in_phone = step("SignUpOrSignInWithAuthy", "AuthyPhoneEnrollment");
    let reset_wait = step("PasswordResetWithAuthy", "AuthyWaitForApproval");
    let current_phone = step("ProfileEditAuthyPhone", "AuthyWaitForApprovalCurrentPhone");
    let cases: Vec<(&str, Vec<PolicyText>, Vec<String>)> = vec![
        (
            "the password reset's push skipped by the session",
            mutate(
                &format!("<!-- Wait page: always. -->\n        <OrchestrationStep Order=\"{reset_wait}\" Type=\"ClaimsExchange\">"),
                &format!("<!-- Wait page: always. -->\n        <OrchestrationStep Order=\"{reset_wait}\" Type=\"ClaimsExchange\">\n          <Preconditions>\n            {SESSION_PRECONDITION}\n          </Preconditions>"),
            ),
            vec![format!("journey 'PasswordResetWithAuthy' step {reset_wait}"), "password reset must always ask".into()],
        ),
        (
            "the phone change's push skipped by the session",
            mutate(
                "</Preconditions>\n          <ClaimsExchanges>\n            <ClaimsExchange Id=\"AuthyWaitForApprovalCurrentPhone\"",
                &format!("  {SESSION_PRECONDITION}\n          </Preconditions>\n          <ClaimsExchanges>\n            <ClaimsExchange Id=\"AuthyWaitForApprovalCurrentPhone\""),
            ),
            vec![format!("journey 'ProfileEditAuthyPhone' step {current_phone}"), "a phone change must always ask".into()],
        ),
        (
            "the sign-in push skipped by the session alone, whatever authy id it approved",
            mutate("<Value>authyMfaSessionMatches</Value>\n              <Value>True</Value>", "<Value>isActiveAuthyMFASession</Value>\n              <Value>True</Value>"),
            vec![format!("journey 'SignUpOrSignInWithAuthy' step {sign_in_wait}"), "may skip it".into()],
        ),
        (
            "a case-insensitive comparison of the authy ids",
            mutate(
                "TransformationClaimType=\"inputClaim2\" />\n        </InputClaims>\n        <InputParameters>\n          <InputParameter Id=\"operator\" DataType=\"string\" Value=\"EQUAL\" />\n          <InputParameter Id=\"ignoreCase\" DataType=\"string\" Value=\"false\" />",
                "TransformationClaimType=\"inputClaim2\" />\n        </InputClaims>\n        <InputParameters>\n          <InputParameter Id=\"operator\" DataType=\"string\" Value=\"EQUAL\" />\n          <InputParameter Id=\"ignoreCase\" DataType=\"string\" Value=\"true\" />",
            ),
            vec![format!("journey 'SignUpOrSignInWithAuthy' step {sign_in_wait}"), "may skip it".into()],
        ),
        (
            "the comparison run for a user without an authy id",
            mutate("<Precondition Type=\"ClaimsExist\" ExecuteActionsIf=\"false\">\n              <Value>extension_authyId</Value>", "<Precondition Type=\"ClaimsExist\" ExecuteActionsIf=\"false\">\n              <Value>email</Value>"),
            vec![format!("journey 'SignUpOrSignInWithAuthy' step {sign_in_compare}"), "without the precondition that extension_authyId exists".into()],
        ),
        (
            "a phone page that may run for a user with an authy id, between the comparison and the push",
            mutate("<Precondition Type=\"ClaimsExist\" ExecuteActionsIf=\"true\">\n              <Value>extension_authyId</Value>", "<Precondition Type=\"ClaimsExist\" ExecuteActionsIf=\"true\">\n              <Value>isActiveAuthyMFASession</Value>"),
            vec![format!("journey 'SignUpOrSignInWithAuthy' step {sign_in_phone}"), "may change extension_authyId between the session comparison".into()],
        ),
        (
            "the same-authy-id claim set true by the phone page",
            mutate(
                r#"<OutputClaim ClaimTypeReferenceId="newAuthyEnrollment" DefaultValue="true" AlwaysUseDefaultValue="true" />"#,
                r#"<OutputClaim ClaimTypeReferenceId="newAuthyEnrollment" DefaultValue="true" AlwaysUseDefaultValue="true" /><OutputClaim ClaimTypeReferenceId="authyMfaSessionMatches" DefaultValue="true" AlwaysUseDefaultValue="true" />"#,
            ),
            vec!["'SelfAsserted-AuthyPhoneEnrollment' outputs authymfasessionmatches".into()],
        ),
        (
            "the session's authy id set by the phone page (before any approval)",
            mutate(
                r#"<OutputClaim ClaimTypeReferenceId="newAuthyEnrollment" DefaultValue="true" AlwaysUseDefaultValue="true" />"#,
                r#"<OutputClaim ClaimTypeReferenceId="newAuthyEnrollment" DefaultValue="true" AlwaysUseDefaultValue="true" /><OutputClaim ClaimTypeReferenceId="authyMfaSessionAuthyId" />"#,
            ),
            vec!["'SelfAsserted-AuthyPhoneEnrollment' outputs the session claim authymfasessionauthyid".into()],
        ),
        (
            "the session remembered without an approval in this journey",
            mutate("<Value>approvalStatus</Value>\n              <Value>approved</Value>", "<Value>approvalStatus</Value>\n              <Value>pending</Value>"),
            vec!["without the precondition that the wait page returned approvalStatus 'approved'".into()],
        ),
        (
            "the session remembered before the push",
            mutate(
                r#"<ClaimsExchange Id="AuthyCompareSessionAuthyId" TechnicalProfileReferenceId="Authy-CompareSessionAuthyId" />"#,
                r#"<ClaimsExchange Id="AuthyCompareSessionAuthyId" TechnicalProfileReferenceId="Authy-RememberApprovalInSession" />"#,
            ),
            vec![format!("journey 'SignUpOrSignInWithAuthy' step {sign_in_compare}"), "without a push step before it".into()],
        ),
        (
            "the wait page itself a session participant (B2C would skip its push in a session)",
            mutate(
                "<ValidationTechnicalProfile ReferenceId=\"Authy-AssertApproved\" />\n          </ValidationTechnicalProfiles>\n          <UseTechnicalProfileForSessionManagement ReferenceId=\"SM-Noop\" />",
                "<ValidationTechnicalProfile ReferenceId=\"Authy-AssertApproved\" />\n          </ValidationTechnicalProfiles>\n          <UseTechnicalProfileForSessionManagement ReferenceId=\"SM-AuthyMFA\" />",
            ),
            vec!["'SelfAsserted-AuthyWaitForApproval' calls the API and uses the DefaultSSOSessionProvider 'SM-AuthyMFA'".into()],
        ),
    ];
    let pack = starter_pack(StarterPack::SocialAndLocalAccounts);
    for (what, files, expected) in cases {
        if pack.is_none() && what.contains("password reset") {
            continue; // its password step is the pack's: skipped (or failed under CI=true) above
        }
        let problems = check_all(&files, pack.as_deref(), &api);
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        assert!(
            reported(&problems, &expected),
            "{what}: expected {expected:?} in {problems:#?}"
        );
    }
}

#[test]
fn password_reset_sets_the_password_only_after_a_push() {
    let Some(pack) = starter_pack(StarterPack::SocialAndLocalAccounts) else {
        return;
    };
    let sample = sample();
    let reset_wait = step_of(&sample, "PasswordResetWithAuthy", "AuthyWaitForApproval");
    // Not vacuous: the check sees the pack's password write in the rendered journey, after the push.
    let all_files = [pack.as_slice(), sample.as_slice()].concat();
    let all = parse(&all_files);
    let journey = all
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "UserJourney"))
        .find(|j| j.attribute("Id") == Some("PasswordResetWithAuthy"))
        .unwrap();
    let steps = journey_steps_of(journey, &all);
    let password_at: Vec<usize> = (0..steps.len())
        .filter(|i| steps[*i].writes_existing_password(&all))
        .collect();
    let push_at: Vec<usize> = (0..steps.len())
        .filter(|i| steps[*i].pushes(&all))
        .collect();
    assert_eq!(password_at.len(), 1, "one password step");
    assert_eq!(push_at.len(), 1, "one push step");
    assert!(push_at[0] < password_at[0]);
    // The new password before the push: the wait step sets the password instead.
    let mutated = mutate(
        &format!("<!-- Wait page: always. -->\n        <OrchestrationStep Order=\"{reset_wait}\" Type=\"ClaimsExchange\">\n          <ClaimsExchanges>\n            <ClaimsExchange Id=\"AuthyWaitForApproval\" TechnicalProfileReferenceId=\"SelfAsserted-AuthyWaitForApproval\" />"),
        &format!("<!-- Wait page: always. -->\n        <OrchestrationStep Order=\"{reset_wait}\" Type=\"ClaimsExchange\">\n          <ClaimsExchanges>\n            <ClaimsExchange Id=\"AuthyWaitForApproval\" TechnicalProfileReferenceId=\"LocalAccountWritePasswordUsingObjectId\" />"),
    );
    let problems = check_all(&mutated, Some(&pack), &api_contract());
    let expected = format!("journey 'PasswordResetWithAuthy' step {reset_wait} sets the password ('LocalAccountWritePasswordUsingObjectId') before a push step that always runs");
    assert!(reported(&problems, &[&expected]), "{problems:#?}");
    // The push made optional (skipped once an authy id exists): the password may come first.
    let mutated = mutate(
        &format!("<!-- Wait page: always. -->\n        <OrchestrationStep Order=\"{reset_wait}\" Type=\"ClaimsExchange\">"),
        &format!("<!-- Wait page: always. -->\n        <OrchestrationStep Order=\"{reset_wait}\" Type=\"ClaimsExchange\">\n          <Preconditions><Precondition Type=\"ClaimsExist\" ExecuteActionsIf=\"true\"><Value>extension_authyId</Value><Action>SkipThisOrchestrationStep</Action></Precondition></Preconditions>"),
    );
    let problems = check_all(&mutated, Some(&pack), &api_contract());
    assert!(reported(&problems, &["journey 'PasswordResetWithAuthy'", "sets the password ('LocalAccountWritePasswordUsingObjectId') before a push step that always runs"]), "{problems:#?}");
    assert!(
        reported(
            &problems,
            &[
                &format!("journey 'PasswordResetWithAuthy' step {reset_wait}"),
                "may skip it"
            ]
        ),
        "{problems:#?}"
    );
}

#[test]
fn without_mfa_per_session_no_push_is_ever_skipped_by_the_session() {
    for pack in StarterPack::ALL {
        for social in SocialProviders::ALL {
            if social == SocialProviders::Facebook && !pack.has_social_accounts() {
                continue;
            }
            let mut env = variant_environment(pack, social, false);
            env.name.push_str("-per-journey");
            env.policy_settings
                .insert(policies::MFA_PER_SESSION_KEY.to_owned(), "false".to_owned());
            assert!(!env.layer_settings().unwrap().mfa_per_session);
            let dir = temp_dir(&format!("variant-{}", env.name));
            let files: Vec<PolicyText> = policies::render_environment(&policies_dir(), &env, &dir)
                .unwrap()
                .iter()
                .map(read_policy)
                .collect();
            std::fs::remove_dir_all(&dir).unwrap();
            let layer = &files.iter().find(|(f, _)| f == LAYER_FILE).unwrap().1;
            for absent in [
                "<Value>authyMfaSessionMatches</Value>",
                r#"TechnicalProfileReferenceId="Authy-CompareSessionAuthyId""#,
                r#"TechnicalProfileReferenceId="Authy-RememberApprovalInSession""#,
            ] {
                assert!(!layer.contains(absent), "{pack}/{social}: {absent}");
            }
            let problems = check_all(&files, starter_pack(pack).as_deref(), &api_contract());
            assert!(
                problems.is_empty(),
                "{pack}/{social}:\n{}",
                problems.join("\n")
            );
            // And the CI's checker (XSD, references through the pack's chain), when there.
            let tool = shared_dir().join("tools").join("check-b2c-policies");
            if tool.is_file() && Command::new("xmllint").arg("--version").output().is_ok() {
                let (passed, output) = shared_check(&tool, &env.name, pack, &files);
                assert!(
                    passed,
                    "check-b2c-policies --pack {pack} failed for {}:\n{output}",
                    env.name
                );
            } else {
                skip_or_fail("check-b2c-policies or xmllint is not there");
            }
        }
    }
}

#[test]
fn a_function_called_as_an_orchestration_step_is_reported() {
    // The old journeys: CreateApprovalRequest as a step of its own, whose 409 (a limit, a pause)
    // would end the journey with an error redirect.
    let mutated = mutate(
        r#"<ClaimsExchange Id="AuthyWaitForApproval" TechnicalProfileReferenceId="SelfAsserted-AuthyWaitForApproval" />"#,
        r#"<ClaimsExchange Id="AuthyWaitForApproval" TechnicalProfileReferenceId="REST-Authy-CreateApprovalRequest" />"#,
    );
    let problems = check_all(&mutated, None, &api_contract());
    let step = step_of(&sample(), "SignUpOrSignInWithAuthy", "AuthyWaitForApproval");
    let expected = format!("journey 'SignUpOrSignInWithAuthy' step {step} calls CreateApprovalRequest ('REST-Authy-CreateApprovalRequest') as an orchestration step");
    assert!(
        problems.iter().any(|p| p.contains(&expected)),
        "{problems:#?}"
    );
    // Not one step of the rendered journeys calls the API directly.
    for variant in variants() {
        let docs = parse(&variant.files);
        assert_none(
            variant,
            "orchestration steps",
            check_no_rest_orchestration_steps(&docs, &docs),
        );
    }
}

#[test]
fn a_wait_page_that_does_not_ask_for_the_push_first_is_reported() {
    let limits = wait_limits();
    let create = r#"<ValidationTechnicalProfile ReferenceId="REST-Authy-CreateApprovalRequest" />"#;
    let wait = r#"<ValidationTechnicalProfile ReferenceId="REST-Authy-WaitForAuthyApproval" />"#;
    for (from, to, expected) in [
        // No CreateApprovalRequest on the page: nothing sends the push.
        (
            create.to_owned(),
            String::new(),
            "does not run CreateApprovalRequest as a validation technical profile before",
        ),
        // The wait before the push.
        (
            format!("{create}\n            {wait}"),
            format!("{wait}\n            {create}"),
            "does not run CreateApprovalRequest as a validation technical profile before",
        ),
        // A refused push would not stop the page.
        (
            create.to_owned(),
            create.replace(" />", r#" ContinueOnError="true" />"#),
            "has ContinueOnError=true or preconditions",
        ),
        // The pending message could not quote the code.
        (
            r#"<InputClaim ClaimTypeReferenceId="signInCode" />"#.to_owned(),
            String::new(),
            "is not passed the signInCode that 'REST-Authy-CreateApprovalRequest' returns",
        ),
        // The first Continue would wait instead of showing the code at once.
        (
            r#"<OutputClaim ClaimTypeReferenceId="newApprovalRequest" />"#.to_owned(),
            String::new(),
            "is not passed the newApprovalRequest that 'REST-Authy-CreateApprovalRequest' returns",
        ),
        // The wait would be passed another claim than the request CreateApprovalRequest returned.
        (
            r#"<OutputClaim ClaimTypeReferenceId="approvalRequestId" />"#.to_owned(),
            r#"<OutputClaim ClaimTypeReferenceId="objectId" PartnerClaimType="approvalRequestId" />"#
                .to_owned(),
            "is not passed the approvalRequestId that 'REST-Authy-CreateApprovalRequest' returns",
        ),
    ] {
        let problems = wait_page_problems(&mutate(&from, &to), limits);
        assert_every_wait_step(&problems, expected, &format!("{from} -> {to}"));
    }
}

#[test]
fn policy_templates_hold_no_function_keys() {
    for (file, text) in templates() {
        let doc = Document::parse(&text).unwrap();
        for tp in descendants(doc.root(), "TechnicalProfile").filter(|tp| is_rest(*tp)) {
            let url = metadata(tp).remove("ServiceUrl").unwrap_or_default();
            let (base, key) = url.split_once("?code=").unwrap_or((&url, ""));
            assert!(
                base.starts_with("{Settings:") && key.starts_with("{Settings:") && key.ends_with('}') && !key[1..].contains('{'),
                "{file}: ServiceUrl '{url}' must be {{Settings:...}}/<Function>?code={{Settings:...}}, nothing literal"
            );
        }
    }
}

/// One `userMessage` of every way the API can answer a user-facing error, pending ones with and
/// without a sign-in code, in every language of the messages table: (code, message).
fn every_user_message() -> Vec<(&'static str, String)> {
    let minutes = std::time::Duration::from_secs(600);
    let detail = || "detail".to_owned();
    let mut errors = vec![
        ApiError::MissingClaim { claim: "authyId" },
        ApiError::InvalidPhoneNumber { reason: detail() },
        ApiError::InvalidEmail,
        ApiError::InvalidAuthyId,
        ApiError::InvalidApprovalRequestId,
        ApiError::ApprovalPending { sign_in_code: None },
        ApiError::ApprovalDenied {
            pause: Some(minutes),
        },
        ApiError::ApprovalDenied { pause: None },
        ApiError::ApprovalExpired,
        ApiError::PushLimitReached {
            retry_after: minutes,
        },
        ApiError::PushesPaused {
            retry_after: minutes,
        },
        ApiError::PushRequestInProgress,
        ApiError::PushLimitsUnavailable,
        ApiError::ApprovalRequestNotFound { detail: detail() },
        ApiError::ApprovalRequestMismatch,
        ApiError::AuthyUserNotFound { detail: detail() },
        ApiError::AuthyThrottled { detail: detail() },
        ApiError::AuthyUnavailable { detail: detail() },
        ApiError::AuthyRejected { detail: detail() },
        ApiError::AuthyApiKeyRejected,
        ApiError::MalformedRequest { detail: detail() },
        ApiError::UnsupportedMediaType,
        ApiError::PayloadTooLarge,
        ApiError::MethodNotAllowed,
        ApiError::RequestTimeout,
        ApiError::NotFound,
        ApiError::Internal,
        ApiError::ClientCertificateRejected { reason: detail() },
    ];
    for code in ["00", "07", "47", "99"] {
        errors.push(ApiError::ApprovalPending {
            sign_in_code: Some(SignInCode::parse(code).expect("a two-digit sign-in code")),
        });
    }
    Language::ALL
        .iter()
        .flat_map(|language| {
            errors
                .iter()
                .map(|e| (e.code(), e.user_message_in(*language).into_owned()))
        })
        .collect()
}

/// The template script's definitions, from `var PENDING_MARKER` up to (not including)
/// `function pendingShown`: constants and pure functions, no DOM access.
fn template_definitions(template: &str) -> &str {
    let start = template
        .find("var PENDING_MARKER = ")
        .expect("PENDING_MARKER in authy-wait.html");
    let end = template[start..]
        .find("function pendingShown()")
        .expect("function pendingShown in authy-wait.html");
    &template[start..start + end]
}

/// What `script` prints, run by Node with `args` (its `process.argv[1..]`); `None` (after
/// [`skip_or_fail`]) without Node.
fn run_node(script: &str, args: &[String]) -> Option<String> {
    let output = match Command::new("node")
        .arg("-e")
        .arg(script)
        .args(args)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            skip_or_fail(&format!("node is not installed ({e})"));
            return None;
        }
    };
    assert!(
        output.status.success(),
        "node: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).expect("UTF-8 from node"))
}

/// `isPendingMessage(text)` of the script `definitions`, run by Node for each of `texts`;
/// `None` (after [`skip_or_fail`]) without Node.
fn run_is_pending_message(definitions: &str, texts: &[String]) -> Option<Vec<bool>> {
    let script = format!(
        "{definitions}\nprocess.stdout.write(JSON.stringify(JSON.parse(process.argv[1]).map(isPendingMessage)));"
    );
    let output = run_node(&script, &[serde_json::to_string(texts).unwrap()])?;
    Some(serde_json::from_str(&output).expect("a JSON array of booleans"))
}

/// The texts whose `isPendingMessage` differs from "is an ApprovalPending userMessage".
fn pending_matcher_problems(template: &str) -> Option<Vec<String>> {
    let messages = every_user_message();
    let texts: Vec<String> = messages.iter().map(|(_, m)| m.clone()).collect();
    let answers = run_is_pending_message(template_definitions(template), &texts)?;
    assert_eq!(answers.len(), messages.len());
    Some(
        messages
            .iter()
            .zip(answers)
            .filter(|((code, _), pending)| (*code == "ApprovalPending") != *pending)
            .map(|((code, message), pending)| {
                format!("{code}: isPendingMessage({message:?}) is {pending}")
            })
            .collect(),
    )
}

#[test]
fn the_wait_page_template_continues_after_exactly_the_apis_pending_messages() {
    let template = wait_template();
    // The script's marker is the API's, as Node reads the script's string.
    let Some(marker) = run_node(
        &format!(
            "{}\nprocess.stdout.write(JSON.stringify(PENDING_MARKER));",
            template_definitions(&template)
        ),
        &[],
    ) else {
        return;
    };
    assert_eq!(
        serde_json::from_str::<String>(&marker).unwrap(),
        PENDING_MARKER.trim()
    );
    // Run by Node on every userMessage in every language: pending exactly for ApprovalPending,
    // so never after PushLimitReached, PushesPaused, ApprovalDenied or any other answer.
    let problems = pending_matcher_problems(&template).unwrap();
    assert_eq!(problems, Vec::<String>::new());
    // The REST technical profiles' own messages (B2C shows them when the handler did not answer):
    // only WaitForAuthyApproval's timeout, a harmless one, says pending, as the API would.
    let file = std::fs::read_to_string(repo().join("policies/AuthyExtensions.xml")).unwrap();
    let doc = Document::parse(&file).unwrap();
    let own: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("Item"))
        .filter_map(|n| {
            let key = n.attribute("Key")?;
            REST_ERROR_MESSAGES.contains(&key).then_some(())?;
            let profile = n.ancestors().find(|a| a.has_tag_name("TechnicalProfile"))?;
            let id = profile.attribute("Id")?;
            Some((
                format!("{id} {key}"),
                n.text().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    assert!(own.len() >= 12, "{own:?}");
    let texts: Vec<String> = own.iter().map(|(_, text)| text.clone()).collect();
    let answers = run_is_pending_message(template_definitions(&template), &texts).unwrap();
    for ((at, text), pending) in own.iter().zip(answers) {
        let timeout = at == "REST-Authy-WaitForAuthyApproval UserMessageIfRequestTimeout";
        assert_eq!(pending, timeout, "{at}: {text:?}");
    }
    // White space as a page may lay it out still matches; the marker alone, elsewhere, or
    // missing does not.
    let texts = [
        "  \u{23F3} Approve the request in the Authy app only if it shows code 47,\n then select Continue. ",
        "\u{23F3}\u{a0}Apruebe la solicitud en la aplicación Authy y, después, seleccione Continuar.",
        "\u{23F3}Authy アプリで要求を承認してから、[続行] を選択してください。",
        " \u{23F3} ",
        "Approve the request \u{23F3} in the Authy app, then select Continue.",
        "Approve the request in the Authy app, then select Continue.",
        "\u{231B} Approve the request in the Authy app, then select Continue.",
    ]
    .map(str::to_owned);
    let answers = run_is_pending_message(template_definitions(&template), &texts).unwrap();
    assert_eq!(
        answers,
        [true, true, true, false, false, false, false],
        "{texts:#?}"
    );

    // Mutated: the old matcher compared English text; it misses the pending messages of every
    // other language (the page would wait for a Continue by hand), and a loose English match
    // takes PushRequestInProgress's "..., then select Continue." for pending.
    let english = template.replace(
        "return message.length > PENDING_MARKER.length",
        "return /then select Continue\\.$/.test(message) || message.length > PENDING_MARKER.length && false",
    );
    assert_ne!(english, template, "the mutation must change the template");
    let problems = pending_matcher_problems(&english).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("PushRequestInProgress: ") && p.ends_with(" is true")),
        "{problems:#?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("ApprovalPending: ")
            && p.contains("[続行]")
            && p.ends_with(" is false")),
        "{problems:#?}"
    );
}

/// A page B2C would render, faked for Node around the template's whole script: the Continue
/// button, one page-level error, a `MutationObserver` and timers run in order. Each click of
/// Continue is answered with the next entry of `answers` (the messages shown one after the
/// other before any timer runs); no entry left ends the run. Prints `{"clicks": n}`.
const FAKE_PAGE: &str = r#"
const answers = JSON.parse(process.argv[1]);
let clicks = 0, clicked = false, observer = null;
const timers = [];
const error = { nodeType: 1, textContent: "", style: {}, attrs: { "aria-hidden": "true" },
  getAttribute(n) { return n in this.attrs ? this.attrs[n] : null; },
  closest(selector) { return selector === ".error.pageLevel" ? this : null; } };
const button = { disabled: false, listeners: [],
  addEventListener(type, f) { if (type === "click") this.listeners.push(f); },
  click() { clicks++; clicked = true; this.listeners.forEach(f => f({ isTrusted: false })); } };
global.document = { readyState: "complete", addEventListener() {},
  getElementById(id) { return id === "continue" ? button : id === "api" ? {} : null; },
  querySelectorAll(selector) { return selector === ".error.pageLevel" ? [error] : []; } };
global.window = { setTimeout(f) { timers.push(f); } };
global.MutationObserver = class { constructor(f) { observer = f; } observe() {} };
function show(message) {
  error.textContent = message;
  error.attrs["aria-hidden"] = "false";
  observer([{ target: error }]);
}
/*SCRIPT*/
for (let step = 0; step < 10000; step++) {
  if (clicked) {
    clicked = false;
    const answer = answers.shift();
    if (answer === undefined) break;
    answer.forEach(show);
    continue;
  }
  const timer = timers.shift();
  if (!timer) break;
  timer();
}
process.stdout.write(JSON.stringify({ clicks }));
"#;

/// How many times the template's script (from `template`) selects Continue on [`FAKE_PAGE`]
/// given `answers`; `None` (after [`skip_or_fail`]) without Node.
fn clicks_on_fake_page(template: &str, answers: &[Vec<String>]) -> Option<u64> {
    let start = template.find("<script>").expect("<script>") + "<script>".len();
    let end = template.find("</script>").expect("</script>");
    let script = FAKE_PAGE.replace("/*SCRIPT*/", &template[start..end]);
    let output = run_node(&script, &[serde_json::to_string(answers).unwrap()])?;
    let answer: serde_json::Value = serde_json::from_str(&output).unwrap();
    Some(answer["clicks"].as_u64().unwrap())
}

#[test]
fn the_wait_page_script_stops_at_the_first_answer_that_is_not_pending() {
    let template = wait_template();
    let pending = ApiError::ApprovalPending {
        sign_in_code: SignInCode::parse("47"),
    }
    .user_message()
    .into_owned();
    // In every language: pending answers all along, then one that is not.
    for language in Language::ALL {
        let pending = ApiError::ApprovalPending {
            sign_in_code: SignInCode::parse("47"),
        }
        .user_message_in(language)
        .into_owned();
        let denied = ApiError::ApprovalDenied {
            pause: Some(std::time::Duration::from_secs(900)),
        }
        .user_message_in(language)
        .into_owned();
        let answers = [
            vec![pending.clone()],
            vec![pending.clone()],
            vec![denied],
            vec![pending],
        ];
        let Some(clicks) = clicks_on_fake_page(&template, &answers) else {
            return;
        };
        assert_eq!(clicks, 3, "{language:?}");
    }
    let one = |m: &str| vec![m.to_owned()];
    // Pending all along: the first Continue, then one per pending answer, up to MAX_CONTINUES.
    let max = template_max_continues(&template);
    let Some(clicks) = clicks_on_fake_page(&template, &vec![one(&pending); 40]) else {
        return;
    };
    assert_eq!(clicks, max);
    // Two pending answers, then any other answer: 3 Continues, none after it, though the page
    // would answer pending again (a new push after an expired request, say).
    for (code, message) in every_user_message() {
        if code == "ApprovalPending" {
            continue;
        }
        let answers = [
            one(&pending),
            one(&pending),
            one(&message),
            one(&pending),
            one(&pending),
        ];
        let clicks = clicks_on_fake_page(&template, &answers).unwrap();
        assert_eq!(clicks, 3, "{code}: {message}");
    }
    // An answer that replaces a pending one during the pause before the next Continue (the
    // pending message was still shown when B2C answered ApprovalExpired): no Continue for it.
    let expired = ApiError::ApprovalExpired.user_message().into_owned();
    let answers = [
        one(&pending),
        vec![pending.clone(), expired.clone()],
        one(&pending),
    ];
    assert_eq!(clicks_on_fake_page(&template, &answers), Some(2));
    // Mutated: the old script continued after the pause whatever the page then showed, and so
    // would have sent a new push after the expired request.
    let old = template.replace(
        "window.setTimeout(continueIfStillPending, PAUSE_MS);",
        "window.setTimeout(selectContinue, PAUSE_MS);",
    );
    assert_ne!(old, template, "the mutation must change the template");
    // (The third Continue is that push, answered pending, and the fourth follows it.)
    assert_eq!(clicks_on_fake_page(&old, &answers), Some(4));
}

/// Checks the wait pages of `files` (no starter pack needed: the wait page is ours).
fn wait_page_problems(files: &[PolicyText], limits: WaitLimits) -> Vec<String> {
    let docs = parse(files);
    check_wait_pages(&docs, &docs, limits)
}

#[test]
fn every_wait_page_asserts_approved_and_outlasts_the_approval_request() {
    let limits = wait_limits();
    // The numbers the README gives: 1 + 120 s / 7 s → 19 Continues; the script selects Continue
    // 19 times in a row; 3 pushes a page → a retry limit of 3 × 19 + 6 = 63.
    assert_eq!(
        limits.calls_per_approval, 19,
        "{limits:?}: update the README's formula"
    );
    assert_eq!(limits.pushes_per_page, 3, "{limits:?}");
    assert_eq!(limits.retry_limit_needed(), 63, "{limits:?}");
    assert_eq!(
        limits.script_continues, limits.calls_per_approval,
        "{limits:?}"
    );
    for (environment, files) in rendered() {
        let problems = wait_page_problems(files, limits);
        assert!(
            problems.is_empty(),
            "environment {environment}:\n{}",
            problems.join("\n")
        );
    }
}

/// The wait steps every journey has: (journey, claims exchange id).
const WAIT_STEPS: [(&str, &str); 4] = [
    ("SignUpOrSignInWithAuthy", "AuthyWaitForApproval"),
    ("ProfileEditAuthyPhone", "AuthyWaitForApprovalCurrentPhone"),
    ("ProfileEditAuthyPhone", "AuthyWaitForApprovalNewPhone"),
    ("PasswordResetWithAuthy", "AuthyWaitForApproval"),
];

/// How many steps a journey has in `files`.
fn journey_steps(files: &[PolicyText], journey: &str) -> usize {
    parse(files)
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "UserJourney"))
        .filter(|j| j.attribute("Id") == Some(journey))
        .map(|j| descendants(j, "OrchestrationStep").count())
        .sum()
}

/// The rendered `Order` of the step of `journey` that holds claims exchange `exchange` (step
/// numbers differ with the settings).
fn step_of(files: &[PolicyText], journey: &str, exchange: &str) -> String {
    parse(files)
        .iter()
        .flat_map(|(_, d)| descendants(d.root(), "UserJourney"))
        .filter(|j| j.attribute("Id") == Some(journey))
        .flat_map(|j| descendants(j, "OrchestrationStep"))
        .find(|s| descendants(*s, "ClaimsExchange").any(|e| e.attribute("Id") == Some(exchange)))
        .and_then(|s| s.attribute("Order"))
        .unwrap_or_else(|| panic!("journey {journey} has no claims exchange {exchange}"))
        .to_owned()
}

/// Asserts that `problems` report `expected` for every wait step.
fn assert_every_wait_step(problems: &[String], expected: &str, what: &str) {
    for (journey, exchange) in WAIT_STEPS {
        let step = step_of(&sample(), journey, exchange);
        let at = format!("journey '{journey}' step {step}:");
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&at) && p.contains(expected)),
            "{what}: expected '{expected}' at {at}\n{problems:#?}"
        );
    }
}

#[test]
fn a_wait_page_that_takes_any_200_for_approved_is_reported() {
    let limits = wait_limits();
    for (from, to, expected) in [
        // The assertion no longer runs.
        (
            r#"<ValidationTechnicalProfile ReferenceId="Authy-AssertApproved" />"#,
            "",
            "asserts that approvalstatus is 'approved'",
        ),
        // The assertion runs before the call, not after it.
        (
            "<ValidationTechnicalProfile ReferenceId=\"REST-Authy-WaitForAuthyApproval\" />\n            <ValidationTechnicalProfile ReferenceId=\"Authy-AssertApproved\" />",
            "<ValidationTechnicalProfile ReferenceId=\"Authy-AssertApproved\" />\n            <ValidationTechnicalProfile ReferenceId=\"REST-Authy-WaitForAuthyApproval\" />",
            "asserts that approvalstatus is 'approved'",
        ),
        // The comparison accepts another value.
        (
            r#"<InputParameter Id="compareTo" DataType="string" Value="approved" />"#,
            r#"<InputParameter Id="compareTo" DataType="string" Value="pending" />"#,
            "asserts that approvalstatus is 'approved'",
        ),
        // The assertion checks another claim than the comparison's result.
        (
            r#"<InputClaim ClaimTypeReferenceId="authyApproved" TransformationClaimType="inputClaim" />"#,
            r#"<InputClaim ClaimTypeReferenceId="newAuthyEnrollment" TransformationClaimType="inputClaim" />"#,
            "asserts that approvalstatus is 'approved'",
        ),
        // No message of our own for a failed assertion.
        (
            r#"<Item Key="UserMessageIfClaimsTransformationBooleanValueIsNotEqual">"#,
            r#"<Item Key="UserMessageIfSomethingElse">"#,
            "has no UserMessageIfClaimsTransformationBooleanValueIsNotEqual",
        ),
        // An "approved" from the first wait of profile edit would survive into the second.
        (
            r#"<InputClaimsTransformation ReferenceId="ResetApprovalStatus" />"#,
            "",
            "does not reset approvalstatus before the call",
        ),
    ] {
        let problems = wait_page_problems(&mutate(from, to), limits);
        assert_every_wait_step(&problems, expected, &format!("{from} -> {to}"));
    }
}

#[test]
fn a_retry_limit_that_ends_the_wait_too_early_is_reported() {
    let limits = wait_limits();
    let needed = limits.retry_limit_needed();
    let rendered_limit = |files: &[PolicyText]| {
        let (_, text) = files.iter().find(|(f, _)| f == LAYER_FILE).unwrap();
        let (_, rest) = text
            .split_once(r#"<Item Key="setting.retryLimit">"#)
            .unwrap();
        rest.split('<').next().unwrap().to_owned()
    };
    let limit = rendered_limit(&sample());
    let item = |value: &str| format!(r#"<Item Key="setting.retryLimit">{value}</Item>"#);

    // No limit: B2C's own (6 in the one report) would end the wait after a few pending answers.
    let problems = wait_page_problems(&mutate(&item(&limit), ""), limits);
    assert_every_wait_step(
        &problems,
        "has no setting.retryLimit",
        "retry limit removed",
    );

    // One below what the approval request's lifetime needs.
    let problems = wait_page_problems(
        &mutate(&item(&limit), &item(&(needed - 1).to_string())),
        limits,
    );
    assert_every_wait_step(
        &problems,
        &format!("setting.retryLimit {} is below {needed}", needed - 1),
        "retry limit too low",
    );

    // The template script would use up the limit by itself.
    let problems = wait_page_problems(
        &sample(),
        WaitLimits {
            script_continues: 63,
            ..limits
        },
    );
    assert_every_wait_step(
        &problems,
        "is not above authy-wait.html's MAX_CONTINUES 63",
        "script limit too high",
    );

    // One push more a page (a higher burst limit) needs a higher retry limit.
    let problems = wait_page_problems(
        &sample(),
        WaitLimits {
            pushes_per_page: limits.pushes_per_page + 1,
            ..limits
        },
    );
    assert_every_wait_step(
        &problems,
        &format!("is below {}", needed + limits.calls_per_approval),
        "burst limit raised",
    );

    // The script would stop selecting Continue before the approval request expires.
    let problems = wait_page_problems(
        &sample(),
        WaitLimits {
            script_continues: 10,
            ..limits
        },
    );
    assert_reported(
        &problems,
        &["MAX_CONTINUES = 10 automatic Continues do not outlast"],
    );
}

#[test]
fn a_wait_page_without_a_page_contract_is_reported() {
    let problems = wait_page_problems(
        &mutate(
            "<DataUri>urn:com:microsoft:aad:b2c:elements:contract:selfasserted:2.1.7</DataUri>\n        <Metadata>\n          <Item Key=\"DisplayName\">Authy approval page</Item>",
            "<DataUri>urn:com:microsoft:aad:b2c:elements:selfasserted:1.1.0</DataUri>\n        <Metadata>\n          <Item Key=\"DisplayName\">Authy approval page</Item>",
        ),
        wait_limits(),
    );
    assert_every_wait_step(&problems, "not a page contract", "DataUri without contract");
}

/// Where `<script` occurs outside `<head>…</head>` in an HTML template (comments ignored), and
/// whether it has a script at all.
fn scripts_outside_head(html: &str) -> Vec<String> {
    let mut text = html.to_lowercase();
    while let Some(start) = text.find("<!--") {
        let end = text[start..]
            .find("-->")
            .map_or(text.len(), |e| start + e + 3);
        text.replace_range(start..end, "");
    }
    let head = match (text.find("<head"), text.find("</head>")) {
        (Some(start), Some(end)) if start < end => start..end,
        _ => return vec!["no <head>…</head>".to_owned()],
    };
    let scripts: Vec<usize> = text.match_indices("<script").map(|(at, _)| at).collect();
    if scripts.is_empty() {
        return vec!["no <script> at all".to_owned()];
    }
    scripts
        .into_iter()
        .filter(|at| !head.contains(at))
        .map(|at| {
            let line = text[..at].lines().count().max(1);
            format!("a <script> outside <head> (around line {line} without comments)")
        })
        .collect()
}

#[test]
fn the_wait_page_template_keeps_its_script_in_head() {
    let template = wait_template();
    assert_eq!(scripts_outside_head(&template), Vec::<String>::new());
    // Mutated: the script moved to the end of <body>, where page layout selfasserted 2.1.21 and
    // later break it.
    let (before, after) = template.split_once("</head>").unwrap();
    let start = before.find("  <script>").unwrap();
    let script = &before[start..];
    let moved = format!(
        "{}</head>{}",
        &before[..start],
        after.replace("</body>", &format!("{script}</body>"))
    );
    let problems = scripts_outside_head(&moved);
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

/// Runs `../shared/tools/check-b2c-policies --pack PACK` on `files` (written to a temporary
/// folder): (whether it passed with 0 errors, its output).
fn shared_check(
    tool: &PathBuf,
    label: &str,
    pack: StarterPack,
    files: &[PolicyText],
) -> (bool, String) {
    let dir = temp_dir(&format!("check-{}", label.replace('/', "-")));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let output = Command::new(tool)
        .args(["--pack", pack.as_str()])
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let passed = output.status.success() && stdout.contains(": 0 error(s)");
    (
        passed,
        format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
    )
}

/// `../shared/tools/check-b2c-policies --pack NAME` on every rendered environment and every
/// variant, each against its own starter pack (whose Extensions stands in for the tenant's): XSD,
/// placeholders, references through Base, Localization and Extensions, REST hygiene.
#[test]
fn rendered_policies_pass_check_b2c_policies() {
    let tool = shared_dir().join("tools").join("check-b2c-policies");
    if !tool.is_file() {
        return skip_or_fail(&format!("{} is not there", tool.display()));
    }
    if Command::new("xmllint").arg("--version").output().is_err() {
        return skip_or_fail("xmllint is not installed (Debian package libxml2-utils)");
    }
    let packs = environment_packs();
    let environments = rendered()
        .iter()
        .map(|(name, files)| (format!("environment {name}"), packs[name], files));
    let variants = variants().iter().map(|v| {
        (
            format!("variant {}", v.name),
            v.settings.starter_pack,
            &v.files,
        )
    });
    for (label, pack, files) in environments.chain(variants) {
        let (passed, output) = shared_check(&tool, &label, pack, files);
        assert!(
            passed,
            "check-b2c-policies --pack {pack} failed for {label}:\n{output}"
        );
    }
    // The checker can fail: the Facebook steps against the LocalAccounts pack, which has none.
    let facebook = variant("SocialAndLocalAccounts/Facebook/script=false");
    let (passed, output) = shared_check(
        &tool,
        "mutated",
        StarterPack::LocalAccounts,
        &facebook.files,
    );
    assert!(
        !passed && output.contains("'Facebook-OAUTH'"),
        "check-b2c-policies accepted Facebook on LocalAccounts:\n{output}"
    );
}

/// Applies one text replacement, everywhere, to the rendered extensions policy.
fn mutate_all(from: &str, to: &str) -> Vec<PolicyText> {
    edited(&sample(), LAYER_FILE, &format!("'{from}'"), |t| {
        t.replace(from, to)
    })
}

/// The localization problems of `files`.
fn localization_problems(files: &[PolicyText]) -> Vec<String> {
    check_localization(&parse(files))
}

#[test]
fn our_pages_are_localized_in_the_apis_languages() {
    // In the sample and in every variant (check_all runs it too).
    assert_eq!(localization_problems(&sample()), Vec::<String>::new());
    for variant in variants() {
        assert_none(
            variant,
            "localization",
            localization_problems(&variant.files),
        );
    }
    let expect = |files: Vec<PolicyText>, what: &str, wanted: &[&str]| {
        let problems = localization_problems(&files);
        for want in wanted {
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{what}: no problem with '{want}' in {problems:#?}"
            );
        }
    };
    // The German button relabelled: the messages that name „Weiter“ no longer match the page.
    expect(
        mutate_all(
            r#"StringId="button_continue">Weiter<"#,
            r#"StringId="button_continue">Fortfahren<"#,
        ),
        "German button",
        &[
            "[de]: the API's ApprovalPending message",
            "[de]: the API's ApprovalExpired message",
            "page 'SelfAsserted-AuthyPhoneEnrollment' (content definition 'api.selfasserted.authyphone') [de]: (\"ErrorMessage\", \"\", \"UserMessageIfRequestTimeout\")",
            "[de]: (\"GetLocalizedStringsTransformationClaimType\", \"\", \"authyWaitMessage\")",
        ],
    );
    // A language dropped from the list, or the tenant's list appended to.
    expect(
        mutate("<SupportedLanguage>ja</SupportedLanguage>", ""),
        "ja unsupported",
        &["SupportedLanguages are [\"en\", \"es\", \"fr\", \"de\"]"],
    );
    expect(
        mutate(r#"MergeBehavior="ReplaceAll""#, r#"MergeBehavior="Append""#),
        "Append",
        &["MergeBehavior=\"ReplaceAll\""],
    );
    // The French timeout message of the wait page without the marker: the script would stop.
    expect(
        mutate("\u{23F3} Approuvez la demande", "Approuvez la demande"),
        "French timeout",
        &["[fr]: UserMessageIfRequestTimeout is \"Approuvez"],
    );
    // The marker on a message that is not pending (the phone page's timeout).
    expect(
        mutate(
            r#"StringId="UserMessageIfRequestTimeout">The Authy service"#,
            "StringId=\"UserMessageIfRequestTimeout\">\u{23F3} The Authy service",
        ),
        "marker on the phone page",
        &["starts with the pending marker"],
    );
    // A Japanese string missing, a reference to resources that do not exist.
    let ja_circuit = r#"<LocalizedString ElementType="ErrorMessage" StringId="UserMessageIfCircuitOpen">Authy サービスは現在利用できません。数分後にもう一度お試しください。</LocalizedString>"#;
    expect(
        mutate(ja_circuit, ""),
        "ja string missing",
        &["[ja]: strings differ from English: missing [(\"ErrorMessage\", \"\", \"UserMessageIfCircuitOpen\")]"],
    );
    expect(
        mutate(
            r#"LocalizedResourcesReferenceId="api.selfasserted.authywait.es""#,
            r#"LocalizedResourcesReferenceId="api.selfasserted.authywait.sp""#,
        ),
        "dangling reference",
        &["no LocalizedResources of ours for language 'es'"],
    );
    // The phone page back on the tenant's content definition.
    expect(
        mutate(
            ">api.selfasserted.authyphone</Item>",
            ">api.selfasserted</Item>",
        ),
        "tenant's content definition",
        &["page 'SelfAsserted-AuthyPhoneEnrollment' (content definition 'api.selfasserted'): the content definition is not ours"],
    );
    // The phone page's pattern help out of step with the API's message.
    expect(
        mutate(
            "zum Beispiel +49 151 23456789.</LocalizedString>",
            "z. B. +49 151 23456789.</LocalizedString>",
        ),
        "pattern help",
        &["[de]: phoneNumber's PatternHelpText"],
    );
    // The wait page's paragraph no longer localized (the English default value back).
    expect(
        mutate(
            r#"<LocalizedString ElementType="GetLocalizedStringsTransformationClaimType" StringId="authyWaitMessage">Select"#,
            r#"<LocalizedString ElementType="UxElement" StringId="authyWaitMessage">Select"#,
        ),
        "paragraph",
        &["no English string (\"GetLocalizedStringsTransformationClaimType\""],
    );
}

/// `files` with the first `from` after the first `anchor` in our layer replaced by `to` (which
/// must change it).
fn replaced_after(files: &[PolicyText], anchor: &str, from: &str, to: &str) -> Vec<PolicyText> {
    let what = format!("'{from}' after '{anchor}'");
    edited(files, LAYER_FILE, &what, |t| match t.find(anchor) {
        Some(at) => format!("{}{}", &t[..at], t[at..].replacen(from, to, 1)),
        None => t.to_owned(),
    })
}

/// Each property of the lost-phone journey, broken once in a rendered copy, is reported.
#[test]
fn a_weakened_lost_phone_journey_is_reported() {
    let recovery = variant("SocialAndLocalAccounts/None/script=false/recovery=true");
    let Some(pack) = starter_pack(recovery.settings.starter_pack) else {
        return;
    };
    let pack = Some(pack);
    let api = api_contract();
    assert_eq!(
        check_all(&recovery.files, pack.as_deref(), &api),
        Vec::<String>::new()
    );
    let journey = r#"<UserJourney Id="AuthyPhoneRecovery">"#;
    let email_exchange = r#"<ClaimsExchange Id="AuthyRecoveryEmail" TechnicalProfileReferenceId="SelfAsserted-AuthyRecoveryEmail" />"#;
    let write_exchange = r#"<ClaimsExchange Id="AADUserWriteAuthyId" TechnicalProfileReferenceId="AAD-UserWriteAuthyIdUsingObjectId" />"#;
    let wait_exchange = r#"<ClaimsExchange Id="AuthyRecoveryWaitForApprovalNewPhone" TechnicalProfileReferenceId="SelfAsserted-AuthyRecoveryWaitForApproval" />"#;
    let swapped = |files: &[PolicyText], a: &str, b: &str| {
        let files = replaced_after(files, journey, a, "SWAPPED");
        let files = replaced_after(&files, journey, b, a);
        replaced_after(&files, journey, "SWAPPED", b)
    };
    let cases: Vec<(&str, Vec<PolicyText>, &str)> = vec![
        (
            "no email page",
            replaced_after(&recovery.files, journey, r#"TechnicalProfileReferenceId="SelfAsserted-AuthyRecoveryEmail""#, r#"TechnicalProfileReferenceId="AAD-AuthyRecoveryReadEmailUsingObjectId""#),
            "has no step with an email page",
        ),
        (
            "the email page after the write",
            swapped(&recovery.files, email_exchange, write_exchange),
            "must come before the write of extension_authyId",
        ),
        (
            "no password page",
            replaced_after(&recovery.files, journey, r#"TechnicalProfileReferenceId="SelfAsserted-AuthyRecovery-LocalAccountSignin""#, r#"TechnicalProfileReferenceId="AAD-AuthyRecoveryReadEmailUsingObjectId""#),
            "has no step with a password page",
        ),
        (
            "the code sent by something that is not Microsoft Entra SSPR",
            replaced_after(&recovery.files, r#"Id="AadSspr-AuthyRecoverySendCode""#, "AadSsprProtocolProvider", "ClaimsTransformationProtocolProvider"),
            "has no step with an email page",
        ),
        (
            "the code verified for another claim than the one it was sent to",
            replaced_after(&recovery.files, r#"Id="AadSspr-AuthyRecoveryVerifyCode""#, r#"ClaimTypeReferenceId="authyRecoveryEmail" PartnerClaimType="emailAddress""#, r#"ClaimTypeReferenceId="signInName" PartnerClaimType="emailAddress""#),
            "has no step with an email page",
        ),
        (
            "an address the user can type",
            replaced_after(&recovery.files, r#"<ClaimType Id="authyRecoveryEmail">"#, "<UserInputType>Readonly</UserInputType>", "<UserInputType>TextBox</UserInputType>"),
            "not Readonly",
        ),
        (
            "the address copied from what the user typed at sign-in",
            replaced_after(&recovery.files, r#"Id="CopyDirectoryEmailToRecoveryEmail""#, r#"ClaimTypeReferenceId="signInNames.emailAddress""#, r#"ClaimTypeReferenceId="signInName""#),
            "no earlier step reads signInNames.emailAddress from the directory",
        ),
        (
            "no check on Continue that the address is still the directory's",
            replaced_after(&recovery.files, r#"Id="SelfAsserted-AuthyRecoveryEmail""#, r#"<ValidationTechnicalProfile ReferenceId="Authy-AssertRecoveryEmailIsDirectoryEmail" />"#, ""),
            "does not assert on Continue",
        ),
        (
            "no check on Continue that the account has an email address",
            replaced_after(&recovery.files, r#"Id="SelfAsserted-AuthyRecoveryEmail""#, r#"<ValidationTechnicalProfile ReferenceId="Authy-AssertAccountHasDirectoryEmail" />"#, ""),
            "does not fail on Continue when the account has no signInNames.emailAddress",
        ),
        (
            "the check that the account has an email address after the address comparison",
            replaced_after(
                &replaced_after(&recovery.files, r#"Id="SelfAsserted-AuthyRecoveryEmail""#, r#"<ValidationTechnicalProfile ReferenceId="Authy-AssertAccountHasDirectoryEmail" />"#, ""),
                r#"Id="SelfAsserted-AuthyRecoveryEmail""#,
                r#"<ValidationTechnicalProfile ReferenceId="Authy-AssertRecoveryEmailIsDirectoryEmail" />"#,
                r#"<ValidationTechnicalProfile ReferenceId="Authy-AssertRecoveryEmailIsDirectoryEmail" /><ValidationTechnicalProfile ReferenceId="Authy-AssertAccountHasDirectoryEmail" />"#,
            ),
            "only after comparing",
        ),
        (
            "the existence check asserting false",
            replaced_after(&recovery.files, r#"Id="AssertAccountHasDirectoryEmail""#, r#"Value="true""#, r#"Value="false""#),
            "does not fail on Continue when the account has no signInNames.emailAddress",
        ),
        (
            "the existence check on another claim",
            replaced_after(&recovery.files, r#"Id="CheckAccountHasDirectoryEmail""#, r#"ClaimTypeReferenceId="signInNames.emailAddress""#, r#"ClaimTypeReferenceId="authyRecoveryEmail""#),
            "does not fail on Continue when the account has no signInNames.emailAddress",
        ),
        (
            "an SSO session skipping the password page",
            replaced_after(&recovery.files, r#"Id="SelfAsserted-AuthyRecovery-LocalAccountSignin""#, r#"<UseTechnicalProfileForSessionManagement ReferenceId="SM-Noop" />"#, r#"<UseTechnicalProfileForSessionManagement ReferenceId="SM-AAD" />"#),
            "not the no-op provider",
        ),
        (
            "an SSO session skipping the new phone's wait page",
            replaced_after(&recovery.files, r#"Id="SelfAsserted-AuthyRecoveryWaitForApproval""#, r#"<UseTechnicalProfileForSessionManagement ReferenceId="SM-Noop" />"#, r#"<UseTechnicalProfileForSessionManagement ReferenceId="SM-AAD" />"#),
            "not the no-op provider",
        ),
        (
            "a precondition that skips the email page",
            replaced_after(&recovery.files, journey, &format!("<ClaimsExchanges>\n            {email_exchange}"), &format!("<Preconditions><Precondition Type=\"ClaimsExist\" ExecuteActionsIf=\"true\"><Value>objectIdFromSession</Value><Action>SkipThisOrchestrationStep</Action></Precondition></Preconditions><ClaimsExchanges>\n            {email_exchange}")),
            "a precondition on 'objectIdFromSession' could skip it",
        ),
        (
            "the write before the push on the new phone",
            swapped(&recovery.files, wait_exchange, write_exchange),
            "writes extension_authyId before the user approved a push for it",
        ),
        (
            "a claims transformation technical profile without an output claim",
            replaced_after(&recovery.files, r#"Id="Authy-AssertRecoveryEmailIsDirectoryEmail""#, r#"<OutputClaim ClaimTypeReferenceId="authyRecoveryEmailChecked" DefaultValue="true" AlwaysUseDefaultValue="true" />"#, ""),
            "'Authy-AssertRecoveryEmailIsDirectoryEmail' has no output claim",
        ),
        (
            "a wait page without the approval assertion",
            replaced_after(&recovery.files, r#"Id="SelfAsserted-AuthyRecoveryWaitForApproval""#, r#"<ValidationTechnicalProfile ReferenceId="Authy-AssertApproved" />"#, ""),
            "not what SelfAsserted-AuthyWaitForApproval runs",
        ),
    ];
    for (what, files, expected) in cases {
        let problems = check_all(&files, pack.as_deref(), &api);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{what}: expected a problem with '{expected}', got {problems:#?}"
        );
    }
}

/// The lost phone's pages (AuthyPhoneRecovery=true): the email page's strings are all localized,
/// and its password page may stay on the tenant's sign-in content definition only while nothing
/// on it is ours. Each property broken once is reported.
#[test]
fn the_lost_phone_pages_are_localized() {
    let files = recovery_sample();
    assert_eq!(localization_problems(&files), Vec::<String>::new());
    let signin = r#"<TechnicalProfile Id="SelfAsserted-AuthyRecovery-LocalAccountSignin">"#;
    let email_en = r#"<LocalizedResources Id="api.selfasserted.authyrecoveryemail.en">"#;
    let email_de = r#"<LocalizedResources Id="api.selfasserted.authyrecoveryemail.de">"#;
    let email_es = r#"<LocalizedResources Id="api.selfasserted.authyrecoveryemail.es">"#;
    let tenant_page = "page 'SelfAsserted-AuthyRecovery-LocalAccountSignin' (content definition 'api.localaccountsignin'): the content definition is not ours, so its strings cannot be localized without overriding the tenant's";
    let email_page = "page 'SelfAsserted-AuthyRecoveryEmail' (content definition 'api.selfasserted.authyrecoveryemail')";
    let control = "AuthyRecoveryEmailVerificationControl";
    let cases: Vec<(&str, Vec<PolicyText>, String)> = vec![
        (
            "a claim of ours shown on the tenant's sign-in page",
            replaced_after(
                &files,
                signin,
                r#"<OutputClaim ClaimTypeReferenceId="objectId" />"#,
                r#"<OutputClaim ClaimTypeReferenceId="objectId" /><OutputClaim ClaimTypeReferenceId="authyRecoveryEmail" />"#,
            ),
            format!("{tenant_page}, yet the page shows or sets strings of ours [(\"ClaimType\", \"authyRecoveryEmail\", \"DisplayName\")"),
        ),
        (
            "a message of ours set on the tenant's sign-in page",
            replaced_after(
                &files,
                signin,
                "<Item Key=\"setting.operatingMode\">Email</Item>",
                "<Item Key=\"setting.operatingMode\">Email</Item><Item Key=\"UserMessageIfThrottled\">Too many codes.</Item>",
            ),
            format!("{tenant_page}, yet the page shows or sets strings of ours [(\"ErrorMessage\", \"\", \"UserMessageIfThrottled\")]"),
        ),
        (
            "a validation of ours on the tenant's sign-in page",
            replaced_after(
                &files,
                signin,
                r#"<ValidationTechnicalProfile ReferenceId="login-NonInteractive" />"#,
                r#"<ValidationTechnicalProfile ReferenceId="login-NonInteractive" /><ValidationTechnicalProfile ReferenceId="Authy-AssertRecoveryEmailIsDirectoryEmail" />"#,
            ),
            "runs validation technical profiles of ours [\"Authy-AssertRecoveryEmailIsDirectoryEmail\"]".to_owned(),
        ),
        (
            "the display control's Send button not in English",
            replaced_after(
                &files,
                email_en,
                &format!(r#"<LocalizedString ElementType="DisplayControl" ElementId="{control}" StringId="but_send_code">Send verification code</LocalizedString>"#),
                "",
            ),
            format!("{email_page}: no English string (\"DisplayControl\", \"{control}\", \"but_send_code\")"),
        ),
        (
            "a German display control string missing",
            replaced_after(
                &files,
                email_de,
                &format!(r#"<LocalizedString ElementType="DisplayControl" ElementId="{control}" StringId="but_verify_code">Code prüfen</LocalizedString>"#),
                "",
            ),
            format!("{email_page} [de]: strings differ from English: missing [(\"DisplayControl\", \"{control}\", \"but_verify_code\")]"),
        ),
        (
            "the code claim of the display control not in English",
            replaced_after(
                &files,
                email_en,
                r#"ElementId="authyRecoveryVerificationCode" StringId="DisplayName""#,
                r#"ElementId="authyRecoveryVerificationCode" StringId="PlaceholderText""#,
            ),
            format!("{email_page}: no English string (\"ClaimType\", \"authyRecoveryVerificationCode\", \"DisplayName\")"),
        ),
        (
            "an SSPR message not in English",
            replaced_after(
                &files,
                email_en,
                r#"StringId="UserMessageIfChallengeExpired""#,
                r#"StringId="UserMessageIfChallengeGone""#,
            ),
            format!("{email_page}: no English string (\"ErrorMessage\", \"\", \"UserMessageIfChallengeExpired\")"),
        ),
        (
            "the address check's message not in English",
            replaced_after(
                &files,
                email_en,
                r#"StringId="UserMessageIfClaimsTransformationStringsAreNotEqual""#,
                r#"StringId="UserMessageIfStringsDiffer""#,
            ),
            format!("{email_page}: no English string (\"ErrorMessage\", \"\", \"UserMessageIfClaimsTransformationStringsAreNotEqual\")"),
        ),
        (
            "the no-address check's message neither set on the page nor in English",
            replaced_after(
                &replaced_after(
                    &files,
                    r#"<TechnicalProfile Id="SelfAsserted-AuthyRecoveryEmail">"#,
                    r#"<Item Key="UserMessageIfClaimsTransformationBooleanValueIsNotEqual">"#,
                    r#"<Item Key="UserMessageIfNoAddress">"#,
                ),
                email_en,
                r#"StringId="UserMessageIfClaimsTransformationBooleanValueIsNotEqual""#,
                r#"StringId="UserMessageIfNoAddress""#,
            ),
            format!("{email_page}: no English string (\"ErrorMessage\", \"\", \"UserMessageIfClaimsTransformationBooleanValueIsNotEqual\")"),
        ),
        (
            "the new phone's wait page paragraph fixed in English again",
            replaced_after(
                &files,
                r#"<TechnicalProfile Id="SelfAsserted-AuthyRecoveryWaitForApproval">"#,
                r#"<InputClaim ClaimTypeReferenceId="authyWaitMessage" />"#,
                r#"<InputClaim ClaimTypeReferenceId="authyWaitMessage" DefaultValue="Select Continue." AlwaysUseDefaultValue="true" />"#,
            ),
            "page 'SelfAsserted-AuthyRecoveryWaitForApproval' (content definition 'api.selfasserted.authywait'): shows claim 'authyWaitMessage' with a DefaultValue".to_owned(),
        ),
        (
            "the new phone's wait page paragraph missing in French",
            replaced_after(
                &files,
                r#"<LocalizedResources Id="api.selfasserted.authywait.fr">"#,
                r#"StringId="authyRecoveryWaitMessage""#,
                r#"StringId="authyRecoveryWaitText""#,
            ),
            "page 'SelfAsserted-AuthyRecoveryWaitForApproval' (content definition 'api.selfasserted.authywait') [fr]: strings differ from English: missing [(\"GetLocalizedStringsTransformationClaimType\", \"\", \"authyRecoveryWaitMessage\")]".to_owned(),
        ),
        (
            "a Spanish text that names another Continue button",
            replaced_after(&files, email_es, "Seleccione Continuar.", "Seleccione Siguiente."),
            format!("{email_page} [es]: (\"DisplayControl\", \"{control}\", \"success_verify_code_msg\")"),
        ),
    ];
    for (what, files, expected) in cases {
        let problems = localization_problems(&files);
        assert!(
            problems.iter().any(|p| p.contains(&expected)),
            "{what}: expected a problem with '{expected}', got {problems:#?}"
        );
    }
}
