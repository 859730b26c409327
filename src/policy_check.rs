//! The offline check of B2C custom policies: our rendered policies together with the policies
//! they build on (the admin's Base, Localization and Extensions, from the starter pack folder
//! they prepared or from their tenant), resolved by inheritance chain as B2C does.
//!
//! Used by `render-policies --check-against DIR` and by the policy contract test, so that what a
//! user can run is what the tests prove.
//!
//! How B2C puts policies together (MS docs "custom-policy-overview", section "Inheritance
//! model"): every policy names its parent in `BasePolicy/PolicyId`; a relying party policy is
//! the leaf of a chain such as Base ← Localization ← Extensions ← relying party, and it sees the
//! union of the elements of its chain, a child overriding or extending an element with the same
//! id. Ids are matched ignoring case (the starter pack itself writes both `surname` and
//! `surName`). Each policy of ours is checked through ITS chain, itself and its bases: that is
//! all B2C has when it validates the policy on upload, base policies first (MS docs
//! "tutorial-create-user-flows", custom policy pivot: upload Base, Localization, Extensions,
//! then the relying parties). A tenant folder may hold unrelated policies (other relying
//! parties, other layers); an id defined only by one of them resolves nothing for ours.
//!
//! [`check_against`] reports, as [`Problem`] values (never a panic, whatever the input):
//! - a file that is not well-formed XML or not a `TrustFrameworkPolicy` with a `PolicyId`;
//! - a `{Settings:` placeholder left unrendered, in ours or in a policy ours build on;
//! - a `BasePolicy` that no given policy has (with what to do about it), or an inheritance loop;
//! - for each of our policies, every reference (claim type, technical profile, claims
//!   transformation, content definition, display control, user journey, sub journey) that no
//!   policy of ITS chain defines;
//! - every user journey our policies define or name as `DefaultUserJourney`, merged along the
//!   chain by `Order` (MS docs "userjourneys": steps are overridden by `Order`): numbered 1..N,
//!   the last step `SendClaims`, claims exchange ids unique in the journey, every
//!   `ClaimsProviderSelection` naming one of its claims exchanges;
//! - every RESTful technical profile of ours (MS docs "restful-technical-profile"): `ServiceUrl`
//!   https, `AuthenticationType` `ClientCertificate` with a `ClientCertificate` cryptographic key.
//!
//! Not checked here: the XSD (B2C validates the schema on upload) and whatever else B2C's own
//! upload validation refuses (for example a TenantId that is not the tenant's).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::Path;

use roxmltree::{Document, Node};

/// The namespace of every B2C policy element (MS docs "trustframeworkpolicy").
pub const NS: &str = "http://schemas.microsoft.com/online/cpim/schemas/2013/06";

/// What opens a render-time placeholder (see `crate::policies`' module documentation).
const PLACEHOLDER_START: &str = "{Settings:";

/// What a user should do when a base policy is missing.
const MISSING_BASE_ADVICE: &str =
    "download it from your tenant or give the starter pack folder you prepared";

/// The kinds of element our policies refer to by id, and so the kinds of id a chain defines.
const KINDS: [&str; 7] = [
    "ClaimType",
    "TechnicalProfile",
    "ContentDefinition",
    "ClaimsTransformation",
    "UserJourney",
    "SubJourney",
    "DisplayControl",
];

/// One thing wrong with a set of policies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The policy file (as its [`PolicyFile::name`]), or the folder, it is about.
    pub file: String,
    /// The 1-based line in that file, when known.
    pub line: Option<u32>,
    /// What is wrong, and where useful what to do.
    pub message: String,
}

impl Problem {
    fn new(file: &str, line: Option<u32>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// A problem at a node of a parsed policy.
    fn at(file: &str, node: Node, message: impl Into<String>) -> Self {
        Self::new(file, Some(line_of(node)), message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A policy file's name (for messages) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// How problems name the file: its path as given, or its file name.
    pub name: String,
    /// Its text, without a byte order mark.
    pub text: String,
}

impl PolicyFile {
    /// A policy file from its name and text (a leading byte order mark is dropped).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text: String = text.into();
        Self {
            name: name.into(),
            text: text.strip_prefix('\u{feff}').unwrap_or(&text).to_owned(),
        }
    }

    /// Its name and text, as [`parse`] takes them.
    pub fn as_pair(&self) -> (&str, &str) {
        (&self.name, &self.text)
    }
}

/// A parsed policy: its file name and document.
pub type Parsed<'a> = (&'a str, Document<'a>);

/// Reads one policy file; `name` in problems is its path as given.
///
/// # Errors
/// A [`Problem`] when the file cannot be read or is not UTF-8.
pub fn read_policy(path: &Path) -> Result<PolicyFile, Problem> {
    let name = path.display().to_string();
    fs::read_to_string(path)
        .map(|text| PolicyFile::new(name.clone(), text))
        .map_err(|e| Problem::new(&name, None, format!("cannot read it: {e}")))
}

/// Reads every `*.xml` file (any case of the extension) directly in `dir`, not in its
/// subfolders, in name order.
///
/// # Errors
/// A [`Problem`] when the folder or one of its files cannot be read, or it has no `*.xml` file.
pub fn read_dir(dir: &Path) -> Result<Vec<PolicyFile>, Problem> {
    let name = dir.display().to_string();
    let entries = fs::read_dir(dir)
        .map_err(|e| Problem::new(&name, None, format!("cannot read the folder: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Problem::new(&name, None, format!("cannot read the folder: {e}")))?
            .path();
        let is_xml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("xml"));
        if is_xml && path.is_file() {
            paths.push(path);
        }
    }
    if paths.is_empty() {
        return Err(Problem::new(&name, None, "no policy files (*.xml) in it"));
    }
    paths.sort();
    paths.iter().map(|p| read_policy(p)).collect()
}

/// Parses policy files given as (name, text) pairs, for example
/// `files.iter().map(PolicyFile::as_pair)`; a file that is not well-formed XML is a problem
/// (with its line), and is left out of the result.
pub fn parse<'a>(
    files: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (Vec<Parsed<'a>>, Vec<Problem>) {
    let mut parsed = Vec::new();
    let mut problems = Vec::new();
    for (name, text) in files {
        match Document::parse(text) {
            Ok(doc) => parsed.push((name, doc)),
            Err(e) => problems.push(Problem::new(
                name,
                Some(e.pos().row),
                format!("not well-formed XML: {e}"),
            )),
        }
    }
    (parsed, problems)
}

// ---------------------------------------------------------------------------------------------
// XML helpers

/// The 1-based line a node starts on.
pub fn line_of(node: Node) -> u32 {
    node.document().text_pos_at(node.range().start).row
}

/// Whether `node` is the B2C policy element `name`.
pub fn is(node: Node, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(NS)
}

/// The B2C policy elements `name` below `node` (and `node` itself), in document order.
pub fn descendants<'a, 'i>(
    node: Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.descendants().filter(move |n| is(*n, name))
}

/// The child elements `name` of `node`.
pub fn children<'a, 'i>(
    node: Node<'a, 'i>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |n| is(*n, name))
}

/// The first child element `name` of `node`.
pub fn child<'a, 'i>(node: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    children(node, name).next()
}

/// A node's text, trimmed; empty when it has none.
pub fn text(node: Node) -> String {
    node.text().unwrap_or_default().trim().to_owned()
}

/// A technical profile's metadata items, key → value (a later item with the same key wins).
pub fn metadata(profile: Node) -> BTreeMap<String, String> {
    child(profile, "Metadata")
        .into_iter()
        .flat_map(|m| children(m, "Item"))
        .map(|item| {
            (
                item.attribute("Key").unwrap_or_default().to_owned(),
                text(item),
            )
        })
        .collect()
}

/// Whether a technical profile definition uses the RESTful provider (MS docs
/// "restful-technical-profile": `Protocol Name="Proprietary" Handler="Web.TPEngine.Providers.RestfulProvider, ..."`).
pub fn is_rest(profile: Node) -> bool {
    child(profile, "Protocol")
        .and_then(|p| p.attribute("Handler"))
        .is_some_and(|h| h.contains("RestfulProvider"))
}

/// Every definition of technical profile `id` in `docs`, in order (B2C merges definitions with
/// the same id along the chain, ignoring case).
pub fn profiles<'a, 'i>(docs: &'a [Parsed<'i>], id: &str) -> Vec<Node<'a, 'i>> {
    docs.iter()
        .flat_map(|(_, doc)| descendants(doc.root(), "TechnicalProfile"))
        .filter(|tp| {
            tp.attribute("Id")
                .is_some_and(|i| i.eq_ignore_ascii_case(id))
        })
        .collect()
}

/// A technical profile as B2C sees it: the definitions of the profiles it includes
/// (`IncludeTechnicalProfile`, transitively), then its own definitions, in order; later ones
/// override earlier ones. Pass `docs` base first, as a chain is.
pub fn merged<'a, 'i>(docs: &'a [Parsed<'i>], id: &str) -> Vec<Node<'a, 'i>> {
    fn collect<'a, 'i>(
        docs: &'a [Parsed<'i>],
        id: &str,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<Node<'a, 'i>>,
    ) {
        if !seen.insert(id.to_lowercase()) {
            return; // an include cycle: B2C refuses it; here it just ends
        }
        let own = profiles(docs, id);
        for include in own
            .iter()
            .flat_map(|tp| children(*tp, "IncludeTechnicalProfile"))
        {
            collect(
                docs,
                include.attribute("ReferenceId").unwrap_or_default(),
                seen,
                out,
            );
        }
        out.extend(own);
    }
    let mut out = Vec::new();
    collect(docs, id, &mut BTreeSet::new(), &mut out);
    out
}

/// The technical profiles a profile runs: itself, its validation technical profiles and
/// included profiles, transitively (ids lowercased).
pub fn closure(docs: &[Parsed], id: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![id.to_lowercase()];
    while let Some(id) = todo.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        for tp in profiles(docs, &id) {
            let referenced = descendants(tp, "ValidationTechnicalProfile")
                .chain(children(tp, "IncludeTechnicalProfile"));
            todo.extend(
                referenced
                    .filter_map(|r| r.attribute("ReferenceId"))
                    .map(str::to_lowercase),
            );
        }
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// The chain

/// A policy's `PolicyId`, when its root is a `TrustFrameworkPolicy` with one.
pub fn policy_id<'a>(doc: &'a Document) -> Option<&'a str> {
    let root = doc.root_element();
    if !is(root, "TrustFrameworkPolicy") {
        return None;
    }
    root.attribute("PolicyId")
        .map(str::trim)
        .filter(|i| !i.is_empty())
}

/// The `BasePolicy/PolicyId` a policy inherits from, if any.
pub fn base_policy_id(doc: &Document) -> Option<String> {
    child(doc.root_element(), "BasePolicy")
        .and_then(|b| child(b, "PolicyId"))
        .map(text)
        .filter(|i| !i.is_empty())
}

/// The policies of a set by `PolicyId` (lowercased): index into the parsed policies.
struct Index<'a, 'i> {
    docs: &'a [Parsed<'i>],
    by_id: BTreeMap<String, usize>,
}

impl<'a, 'i> Index<'a, 'i> {
    /// The chain of policy `at`, base first and `at` last; or the problem that breaks it.
    fn chain(&self, at: usize) -> Result<Vec<usize>, Problem> {
        let mut chain = vec![at];
        let mut current = at;
        while let Some(base) = base_policy_id(&self.docs[current].1) {
            let (file, doc) = &self.docs[current];
            let node = child(doc.root_element(), "BasePolicy").unwrap_or(doc.root_element());
            let Some(&next) = self.by_id.get(&base.to_lowercase()) else {
                return Err(Problem::at(
                    file,
                    node,
                    format!("BasePolicy '{base}' is not among the policies given: {MISSING_BASE_ADVICE}"),
                ));
            };
            if chain.contains(&next) {
                return Err(Problem::at(
                    file,
                    node,
                    format!("BasePolicy '{base}' closes an inheritance loop"),
                ));
            }
            chain.push(next);
            current = next;
        }
        chain.reverse();
        Ok(chain)
    }
}

/// Checks `ours` (our rendered policies) together with `theirs` (the policies they build on: a
/// starter pack folder, or a tenant's policies), as described in the module documentation. A
/// policy of ours replaces one of theirs with the same `PolicyId`, as an upload would. Returns
/// every problem found, in file and line order; empty when all is well.
pub fn check_against(ours: &[PolicyFile], theirs: &[PolicyFile]) -> Vec<Problem> {
    let mut problems = BTreeSet::new();
    for file in ours {
        problems.extend(check_placeholders(file));
    }
    // Each policy with the file it came from, to parse each chain on its own (a parsed
    // Document borrows its text and cannot be shared between chains).
    let mut docs: Vec<Parsed> = Vec::new();
    let mut sources: Vec<&PolicyFile> = Vec::new();
    let mut our_count = 0;
    for (n, file) in ours.iter().chain(theirs).enumerate() {
        let (parsed, parse_problems) = parse([file.as_pair()]);
        problems.extend(parse_problems);
        for doc in parsed {
            docs.push(doc);
            sources.push(file);
            if n < ours.len() {
                our_count += 1;
            }
        }
    }

    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (file, doc)) in docs.iter().enumerate() {
        let Some(id) = policy_id(doc) else {
            problems.insert(Problem::at(
                file,
                doc.root_element(),
                "not a B2C custom policy (a TrustFrameworkPolicy with a PolicyId)",
            ));
            continue;
        };
        match by_id.get(&id.to_lowercase()) {
            // Ours come first: theirs of the same id is what an upload of ours replaces.
            Some(&other) if other < our_count && i >= our_count => {}
            Some(&other) => {
                problems.insert(Problem::at(
                    file,
                    doc.root_element(),
                    format!(
                        "PolicyId '{id}' is also the PolicyId of {}: keep one of them",
                        docs[other].0
                    ),
                ));
            }
            None => {
                by_id.insert(id.to_lowercase(), i);
            }
        }
    }
    let index = Index { docs: &docs, by_id };

    // Theirs that some chain of ours goes through: the ones an upload of ours depends on.
    let mut depended_on = BTreeSet::new();
    for (at, (_, doc)) in docs.iter().enumerate().take(our_count) {
        if policy_id(doc).is_none() {
            continue;
        }
        let chain = match index.chain(at) {
            Ok(chain) => chain,
            Err(problem) => {
                problems.insert(problem);
                continue;
            }
        };
        let (chain_docs, _) = parse(chain.iter().map(|&i| sources[i].as_pair()));
        problems.extend(check_policy(&chain_docs));
        depended_on.extend(chain.into_iter().filter(|&i| i >= our_count));
    }
    for i in depended_on {
        problems.extend(check_placeholders(sources[i]));
    }
    problems.into_iter().collect()
}

/// Placeholders left in a file: `{Settings:` anywhere in its text, with the line.
pub fn check_placeholders(file: &PolicyFile) -> Vec<Problem> {
    file.text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.contains(PLACEHOLDER_START))
        .map(|(n, line)| {
            let at = line.find(PLACEHOLDER_START).unwrap_or_default();
            let placeholder: String = line[at..].chars().take_while(|c| *c != '}').collect();
            Problem::new(
                &file.name,
                Some(u32::try_from(n + 1).unwrap_or(u32::MAX)),
                format!("unrendered placeholder {placeholder}}}: render the policies with render-policies"),
            )
        })
        .collect()
}

/// Every check of one policy of ours, given its chain (base first, the policy last).
fn check_policy(chain: &[Parsed]) -> Vec<Problem> {
    let Some((ours, bases)) = chain.split_last() else {
        return Vec::new();
    };
    let ours = std::slice::from_ref(ours);
    let mut problems = check_references(ours, bases);
    problems.extend(check_journeys(chain));
    problems.extend(check_rest_profiles(chain));
    problems
}

/// The PolicyIds of `docs` joined base first, for messages: `A <- B <- C`.
fn chain_text(docs: &[&Parsed]) -> String {
    docs.iter()
        .map(|(file, doc)| policy_id(doc).unwrap_or(file).to_owned())
        .collect::<Vec<_>>()
        .join(" <- ")
}

/// Every reference in `ours` resolves to an element defined in `ours` or `bases` (ids ignore
/// case): claim types, technical profiles (also `IncludeTechnicalProfile`, validation and
/// session management ones), claims transformations, content definitions (also the
/// `ContentDefinitionReferenceId` metadata item), display controls, user journeys, sub journeys,
/// and the claim of a `SubjectNamingInfo` or of a precondition's first `Value`.
///
/// For a policy's whole chain pass the policy as `ours` and its base policies as `bases`
/// (MS docs "custom-policy-overview": a policy sees what its chain defines, nothing else).
pub fn check_references(ours: &[Parsed], bases: &[Parsed]) -> Vec<Problem> {
    let mut defined: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (_, doc) in bases.iter().chain(ours) {
        for kind in KINDS {
            let ids = descendants(doc.root(), kind)
                .filter_map(|n| n.attribute("Id"))
                .map(str::to_lowercase);
            defined.entry(kind).or_default().extend(ids);
        }
    }
    let chain: Vec<&Parsed> = bases.iter().chain(ours).collect();
    let chain = chain_text(&chain);
    let mut problems = Vec::new();
    for (file, doc) in ours {
        let mut need = |node: Node, kind: &str, id: &str, what: &str| {
            let known = defined
                .get(kind)
                .is_some_and(|ids| ids.contains(&id.to_lowercase()));
            if !known {
                problems.push(Problem::at(
                    file,
                    node,
                    format!("{what} references {kind} '{id}', which no policy of its chain defines ({chain})"),
                ));
            }
        };
        for node in doc.descendants().filter(|n| n.is_element()) {
            let tag = node.tag_name().name();
            for (attribute, kind) in [
                ("ClaimTypeReferenceId", "ClaimType"),
                ("TechnicalProfileReferenceId", "TechnicalProfile"),
                ("CpimIssuerTechnicalProfileReferenceId", "TechnicalProfile"),
                ("ContentDefinitionReferenceId", "ContentDefinition"),
                ("DisplayControlReferenceId", "DisplayControl"),
                ("UserJourneyReferenceId", "UserJourney"),
                ("SubJourneyReferenceId", "SubJourney"),
            ] {
                if let Some(id) = node.attribute(attribute) {
                    need(node, kind, id, tag);
                }
            }
            let kind = match tag {
                "ValidationTechnicalProfile"
                | "IncludeTechnicalProfile"
                | "UseTechnicalProfileForSessionManagement" => Some("TechnicalProfile"),
                "InputClaimsTransformation" | "OutputClaimsTransformation" => {
                    Some("ClaimsTransformation")
                }
                "DefaultUserJourney" => Some("UserJourney"),
                _ => None,
            };
            if let (Some(kind), Some(id)) = (kind, node.attribute("ReferenceId")) {
                need(node, kind, id, tag);
            }
            if tag == "Item" && node.attribute("Key") == Some("ContentDefinitionReferenceId") {
                need(
                    node,
                    "ContentDefinition",
                    &text(node),
                    "Metadata ContentDefinitionReferenceId",
                );
            }
            if tag == "SubjectNamingInfo" {
                if let Some(claim) = node.attribute("ClaimType") {
                    need(node, "ClaimType", claim, tag);
                }
            }
            // The first Value of a ClaimsExist or ClaimEquals precondition is a claim.
            if tag == "Precondition" {
                if let Some(claim) = child(node, "Value") {
                    need(claim, "ClaimType", &text(claim), "Precondition");
                }
            }
        }
    }
    problems
}

/// The user journeys the last policy of `chain` defines or names as `DefaultUserJourney`, each
/// checked by [`check_journey`] along the chain.
pub fn check_journeys(chain: &[Parsed]) -> Vec<Problem> {
    let Some((_, leaf)) = chain.last() else {
        return Vec::new();
    };
    let mut ids: BTreeSet<String> = descendants(leaf.root(), "UserJourney")
        .filter_map(|j| j.attribute("Id"))
        .map(str::to_lowercase)
        .collect();
    ids.extend(
        descendants(leaf.root(), "DefaultUserJourney")
            .filter_map(|j| j.attribute("ReferenceId"))
            .map(str::to_lowercase),
    );
    ids.iter().flat_map(|id| check_journey(chain, id)).collect()
}

/// User journey `id` as B2C sees it at the end of `chain` (base first): its orchestration steps
/// merged by `Order`, a later definition's step replacing an earlier one with the same `Order`
/// (MS docs "userjourneys", "custom-policy-overview"). Checked: every `Order` a number, in
/// ascending order within each definition; the merged steps numbered 1..N; the last one
/// `SendClaims`; claims exchange ids unique in the journey; every `ClaimsProviderSelection`
/// naming one of its claims exchanges. Problems are placed at the journey's last definition.
/// A journey no policy of the chain defines gives no problem here ([`check_references`]
/// reports the reference).
pub fn check_journey(chain: &[Parsed], id: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut steps: BTreeMap<usize, Node> = BTreeMap::new();
    let mut last: Option<(&str, Node)> = None;
    for (file, doc) in chain {
        for journey in descendants(doc.root(), "UserJourney").filter(|j| {
            j.attribute("Id")
                .is_some_and(|i| i.eq_ignore_ascii_case(id))
        }) {
            let name = journey.attribute("Id").unwrap_or(id);
            let mut previous = 0;
            for step in descendants(journey, "OrchestrationStep") {
                let order = step.attribute("Order").unwrap_or_default();
                match order.trim().parse::<usize>() {
                    Ok(n) if n >= 1 => {
                        if n <= previous {
                            problems.push(Problem::at(
                                file,
                                step,
                                format!("journey '{name}': step Order={n} comes after Order={previous}"),
                            ));
                        }
                        previous = n;
                        steps.insert(n, step);
                    }
                    _ => problems.push(Problem::at(
                        file,
                        step,
                        format!("journey '{name}': orchestration step Order='{order}' is not a number from 1"),
                    )),
                }
            }
            last = Some((file, journey));
        }
    }
    let Some((file, journey)) = last else {
        return problems;
    };
    let name = journey.attribute("Id").unwrap_or(id);
    let at = |message: String| Problem::at(file, journey, format!("journey '{name}': {message}"));
    let orders: Vec<usize> = steps.keys().copied().collect();
    if orders != (1..=orders.len()).collect::<Vec<_>>() {
        problems.push(at(format!(
            "orchestration steps are numbered {orders:?}, not 1..{}",
            orders.len()
        )));
    }
    match steps.iter().next_back() {
        Some((_, step)) if step.attribute("Type") == Some("SendClaims") => {}
        Some((order, _)) => problems.push(at(format!(
            "the last step (Order={order}) is not SendClaims"
        ))),
        None => problems.push(at("has no orchestration steps".to_owned())),
    }
    let mut exchanges = BTreeSet::new();
    for exchange in steps
        .values()
        .flat_map(|s| descendants(*s, "ClaimsExchange"))
    {
        let exchange_id = exchange.attribute("Id").unwrap_or_default();
        if !exchanges.insert(exchange_id.to_lowercase()) {
            problems.push(at(format!("claims exchange '{exchange_id}' is used twice")));
        }
    }
    for (order, step) in &steps {
        for selection in descendants(*step, "ClaimsProviderSelection") {
            for attribute in ["TargetClaimsExchangeId", "ValidationClaimsExchangeId"] {
                if let Some(target) = selection.attribute(attribute) {
                    if !exchanges.contains(&target.to_lowercase()) {
                        problems.push(at(format!(
                            "step {order}: {attribute} '{target}' matches no claims exchange of the journey"
                        )));
                    }
                }
            }
        }
    }
    problems
}

/// A URL for messages: without its query, which may hold a function key.
fn masked_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_owned(),
    }
}

/// The RESTful technical profiles the last policy of `chain` defines, merged along the chain
/// ([`merged`]): `ServiceUrl` https, `AuthenticationType` `ClientCertificate` and a
/// `ClientCertificate` cryptographic key (MS docs "restful-technical-profile", "secure-rest-api").
pub fn check_rest_profiles(chain: &[Parsed]) -> Vec<Problem> {
    let Some((file, leaf)) = chain.last() else {
        return Vec::new();
    };
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for tp in descendants(leaf.root(), "TechnicalProfile") {
        let id = tp.attribute("Id").unwrap_or_default();
        if !seen.insert(id.to_lowercase()) {
            continue;
        }
        let definitions = merged(chain, id);
        if !definitions.iter().any(|d| is_rest(*d)) {
            continue;
        }
        let at = |message: String| {
            Problem::at(
                file,
                tp,
                format!("RESTful technical profile '{id}': {message}"),
            )
        };
        let meta: BTreeMap<String, String> =
            definitions.iter().flat_map(|d| metadata(*d)).collect();
        let url = meta
            .get("ServiceUrl")
            .map(String::as_str)
            .unwrap_or_default();
        let https = url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        if !https {
            problems.push(at(format!(
                "ServiceUrl must be https, is '{}': B2C sends the claims and the function key in it, and refuses plain http in production",
                masked_url(url)
            )));
        }
        match meta.get("AuthenticationType").map(String::as_str) {
            Some("ClientCertificate") => {
                let key = definitions
                    .iter()
                    .flat_map(|d| descendants(*d, "Key"))
                    .any(|k| k.attribute("Id") == Some("ClientCertificate"));
                if !key {
                    problems.push(at("AuthenticationType ClientCertificate needs a CryptographicKeys Key Id=\"ClientCertificate\" naming the certificate's policy key".to_owned()));
                }
            }
            other => problems.push(at(format!(
                "AuthenticationType must be ClientCertificate, is {}: the Authy API accepts only calls with B2C's client certificate",
                other.map_or("missing".to_owned(), |o| format!("'{o}'"))
            ))),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy with `body` inside its `TrustFrameworkPolicy`.
    fn policy(id: &str, base: Option<&str>, body: &str) -> String {
        let base = base.map_or(String::new(), |b| {
            format!("<BasePolicy><TenantId>t.onmicrosoft.com</TenantId><PolicyId>{b}</PolicyId></BasePolicy>")
        });
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<TrustFrameworkPolicy xmlns=\"{NS}\" PolicySchemaVersion=\"0.3.0.0\" TenantId=\"t.onmicrosoft.com\" PolicyId=\"{id}\">\n{base}\n{body}\n</TrustFrameworkPolicy>\n"
        )
    }

    fn journey(id: &str, steps: &[(&str, &str)]) -> String {
        let steps: String = steps
            .iter()
            .map(|(order, step)| match *step {
                "SendClaims" => format!("<OrchestrationStep Order=\"{order}\" Type=\"SendClaims\" CpimIssuerTechnicalProfileReferenceId=\"JwtIssuer\" />\n"),
                tp => format!("<OrchestrationStep Order=\"{order}\" Type=\"ClaimsExchange\"><ClaimsExchanges><ClaimsExchange Id=\"{tp}Exchange\" TechnicalProfileReferenceId=\"{tp}\" /></ClaimsExchanges></OrchestrationStep>\n"),
            })
            .collect();
        format!("<UserJourney Id=\"{id}\"><OrchestrationSteps>\n{steps}</OrchestrationSteps></UserJourney>")
    }

    /// The tenant's side: Base ← Extensions, and an unrelated policy on Base.
    fn theirs() -> Vec<PolicyFile> {
        let base = policy(
            "B2C_1A_Base",
            None,
            &format!(
                r#"<BuildingBlocks><ClaimsSchema><ClaimType Id="objectId" /></ClaimsSchema>
<ContentDefinitions><ContentDefinition Id="api.selfasserted" /></ContentDefinitions></BuildingBlocks>
<ClaimsProviders><ClaimsProvider><TechnicalProfiles>
<TechnicalProfile Id="JwtIssuer" /><TechnicalProfile Id="Login" />
</TechnicalProfiles></ClaimsProvider></ClaimsProviders>
<UserJourneys>{}</UserJourneys>"#,
                journey("SignIn", &[("1", "Login"), ("2", "SendClaims")])
            ),
        );
        let extensions = policy(
            "B2C_1A_Extensions",
            Some("B2C_1A_Base"),
            r#"<BuildingBlocks><ClaimsSchema><ClaimType Id="email" /></ClaimsSchema></BuildingBlocks>"#,
        );
        let unrelated = policy(
            "B2C_1A_Unrelated",
            Some("B2C_1A_Base"),
            r#"<BuildingBlocks><ClaimsSchema><ClaimType Id="onlyElsewhere" /></ClaimsSchema></BuildingBlocks>"#,
        );
        vec![
            PolicyFile::new("tenant/Base.xml", base),
            PolicyFile::new("tenant/Extensions.xml", extensions),
            PolicyFile::new("tenant/Unrelated.xml", unrelated),
        ]
    }

    const REST: &str = r#"<TechnicalProfile Id="REST-Authy">
  <Protocol Name="Proprietary" Handler="Web.TPEngine.Providers.RestfulProvider, Web.TPEngine, Version=1.0.0.0, Culture=neutral, PublicKeyToken=null" />
  <Metadata>
    <Item Key="ServiceUrl">https://authy.example.net/api/Register?code=secret-key</Item>
    <Item Key="AuthenticationType">ClientCertificate</Item>
  </Metadata>
  <CryptographicKeys><Key Id="ClientCertificate" StorageReferenceId="B2C_1A_Cert" /></CryptographicKeys>
  <InputClaims><InputClaim ClaimTypeReferenceId="email" /></InputClaims>
  <OutputClaims><OutputClaim ClaimTypeReferenceId="authyId" /></OutputClaims>
</TechnicalProfile>"#;

    /// Our layer on the tenant's extensions, and a relying party on it.
    fn ours_with(layer_id: &str, layer_base: &str) -> Vec<PolicyFile> {
        let layer = policy(
            layer_id,
            Some(layer_base),
            &format!(
                r#"<BuildingBlocks><ClaimsSchema><ClaimType Id="authyId" /></ClaimsSchema></BuildingBlocks>
<ClaimsProviders><ClaimsProvider><TechnicalProfiles>
{REST}
<TechnicalProfile Id="Wait"><Metadata><Item Key="ContentDefinitionReferenceId">api.selfasserted</Item></Metadata></TechnicalProfile>
</TechnicalProfiles></ClaimsProvider></ClaimsProviders>
<UserJourneys>{}</UserJourneys>"#,
                journey(
                    "SignInAuthy",
                    &[
                        ("1", "Login"),
                        ("2", "REST-Authy"),
                        ("3", "Wait"),
                        ("4", "SendClaims")
                    ]
                )
            ),
        );
        let rp = policy(
            "B2C_1A_signin_authy",
            Some(layer_id),
            r#"<RelyingParty><DefaultUserJourney ReferenceId="SignInAuthy" />
<TechnicalProfile Id="PolicyProfile"><OutputClaims><OutputClaim ClaimTypeReferenceId="objectId" PartnerClaimType="sub" /></OutputClaims>
<SubjectNamingInfo ClaimType="sub" /></TechnicalProfile></RelyingParty>"#,
        );
        vec![
            PolicyFile::new("AuthyExtensions.xml", layer),
            PolicyFile::new("SignInAuthy.xml", rp),
        ]
    }

    fn ours() -> Vec<PolicyFile> {
        ours_with("B2C_1A_AuthyExtensions", "B2C_1A_Extensions")
    }

    /// `ours()` with one replacement in the layer, which must change it.
    fn mutated(from: &str, to: &str) -> Vec<PolicyFile> {
        let mut files = ours();
        let changed = files[0].text.replacen(from, to, 1);
        assert_ne!(changed, files[0].text, "'{from}' is not in the layer");
        files[0].text = changed;
        files
    }

    fn messages(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(Problem::to_string).collect()
    }

    /// Asserts exactly one problem contains `expected`, and returns it.
    fn one(problems: &[Problem], expected: &str) -> Problem {
        let found: Vec<_> = problems
            .iter()
            .filter(|p| p.to_string().contains(expected))
            .collect();
        assert_eq!(found.len(), 1, "'{expected}' in {:#?}", messages(problems));
        found[0].clone()
    }

    /// The relying party's claim `sub` is a partner claim, not a claim type: it must be known.
    fn with_sub(mut files: Vec<PolicyFile>) -> Vec<PolicyFile> {
        files[0].text = files[0].text.replace(
            r#"<ClaimType Id="authyId" />"#,
            r#"<ClaimType Id="authyId" /><ClaimType Id="sub" />"#,
        );
        files
    }

    #[test]
    fn a_layer_on_the_tenants_extensions_passes() {
        let problems = check_against(&with_sub(ours()), &theirs());
        assert!(problems.is_empty(), "{:#?}", messages(&problems));
    }

    #[test]
    fn an_unknown_claim_in_subject_naming_info_is_reported() {
        let problems = check_against(&ours(), &theirs());
        let p = one(&problems, "SubjectNamingInfo references ClaimType 'sub'");
        assert_eq!(p.file, "SignInAuthy.xml");
        assert_eq!(p.line, Some(6), "{p}");
    }

    #[test]
    fn ours_replacing_the_tenants_extensions_passes_too() {
        // The earlier layout: our extensions policy takes the PolicyId of the tenant's.
        let ours = with_sub(ours_with("B2C_1A_Extensions", "B2C_1A_Base"));
        let mut theirs = theirs();
        // Our file holds what the tenant's extensions had.
        theirs.remove(1);
        let problems = check_against(&ours, &theirs);
        // The email claim was only in the tenant's extensions, which ours replaces.
        one(&problems, "InputClaim references ClaimType 'email'");
        assert_eq!(problems.len(), 1, "{:#?}", messages(&problems));
        // And with the tenant's extensions in the folder, ours still replaces it.
        let problems = check_against(&ours, &self::theirs());
        one(&problems, "InputClaim references ClaimType 'email'");
    }

    #[test]
    fn a_missing_base_policy_is_reported_with_what_to_do() {
        let mut theirs = theirs();
        theirs.remove(1);
        let problems = check_against(&with_sub(ours()), &theirs);
        let p = one(
            &problems,
            "BasePolicy 'B2C_1A_Extensions' is not among the policies given",
        );
        assert!(p.message.contains("download it from your tenant"), "{p}");
        assert_eq!((p.file.as_str(), p.line), ("AuthyExtensions.xml", Some(3)));
        // The relying party's chain breaks at the same place: reported once, not per leaf.
        assert_eq!(problems.len(), 1, "{:#?}", messages(&problems));
    }

    #[test]
    fn a_reference_only_an_unrelated_policy_defines_is_reported() {
        let ours = with_sub(mutated(
            r#"<InputClaim ClaimTypeReferenceId="email" />"#,
            r#"<InputClaim ClaimTypeReferenceId="onlyElsewhere" />"#,
        ));
        let problems = check_against(&ours, &theirs());
        let p = one(
            &problems,
            "InputClaim references ClaimType 'onlyElsewhere', which no policy of its chain defines (B2C_1A_Base <- B2C_1A_Extensions <- B2C_1A_AuthyExtensions)",
        );
        assert_eq!(p.file, "AuthyExtensions.xml");
        assert_eq!(problems.len(), 1, "{:#?}", messages(&problems));
        // Ids ignore case, as in B2C.
        let ours = with_sub(mutated(
            r#"<InputClaim ClaimTypeReferenceId="email" />"#,
            r#"<InputClaim ClaimTypeReferenceId="EMAIL" />"#,
        ));
        assert_eq!(check_against(&ours, &theirs()), vec![]);
    }

    #[test]
    fn every_kind_of_broken_reference_is_reported() {
        for (from, to, expected) in [
            (
                r#"TechnicalProfileReferenceId="Wait""#,
                r#"TechnicalProfileReferenceId="Wiat""#,
                "ClaimsExchange references TechnicalProfile 'Wiat'",
            ),
            (
                "<Item Key=\"ContentDefinitionReferenceId\">api.selfasserted<",
                "<Item Key=\"ContentDefinitionReferenceId\">api.selfassert<",
                "Metadata ContentDefinitionReferenceId references ContentDefinition 'api.selfassert'",
            ),
            (
                r#"CpimIssuerTechnicalProfileReferenceId="JwtIssuer""#,
                r#"CpimIssuerTechnicalProfileReferenceId="JwtIssuer2""#,
                "references TechnicalProfile 'JwtIssuer2'",
            ),
        ] {
            let problems = check_against(&with_sub(mutated(from, to)), &theirs());
            one(&problems, expected);
        }
        let mut ours = with_sub(ours());
        ours[1].text = ours[1].text.replace("SignInAuthy\"", "SignInAuth\"");
        one(
            &check_against(&ours, &theirs()),
            "DefaultUserJourney references UserJourney 'SignInAuth'",
        );
    }

    #[test]
    fn a_broken_journey_is_reported() {
        for (from, to, expected) in [
            (
                r#"Order="3""#,
                r#"Order="5""#,
                "journey 'SignInAuthy': orchestration steps are numbered [1, 2, 4, 5], not 1..4",
            ),
            (
                r#"Order="4" Type="SendClaims""#,
                r#"Order="4" Type="ClaimsExchange""#,
                "journey 'SignInAuthy': the last step (Order=4) is not SendClaims",
            ),
            (
                r#"Id="WaitExchange""#,
                r#"Id="LoginExchange""#,
                "claims exchange 'LoginExchange' is used twice",
            ),
            (
                r#"Order="2""#,
                r#"Order="two""#,
                "orchestration step Order='two' is not a number",
            ),
        ] {
            let problems = check_against(&with_sub(mutated(from, to)), &theirs());
            let p = one(&problems, expected);
            assert_eq!(p.file, "AuthyExtensions.xml");
        }
        // A selection naming no exchange of the journey.
        let ours = with_sub(mutated(
            r#"<OrchestrationStep Order="1" Type="ClaimsExchange">"#,
            r#"<OrchestrationStep Order="1" Type="CombinedSignInAndSignUp"><ClaimsProviderSelections><ClaimsProviderSelection TargetClaimsExchangeId="FacebookExchange" /></ClaimsProviderSelections>"#,
        ));
        one(
            &check_against(&ours, &theirs()),
            "step 1: TargetClaimsExchangeId 'FacebookExchange' matches no claims exchange of the journey",
        );
    }

    #[test]
    fn a_journey_is_merged_by_order_along_the_chain() {
        // The relying party overrides step 3 of our journey (replacing it, not adding a step).
        let mut ours = with_sub(ours());
        ours[1].text = ours[1].text.replace(
            "<RelyingParty>",
            &format!(
                "<UserJourneys>{}</UserJourneys><RelyingParty>",
                journey("SignInAuthy", &[("3", "Login")])
            ),
        );
        let problems = check_against(&ours, &theirs());
        // Login is now used in steps 1 and 3: the merged journey shows it.
        one(&problems, "claims exchange 'LoginExchange' is used twice");
        assert_eq!(problems.len(), 1, "{:#?}", messages(&problems));
    }

    #[test]
    fn an_insecure_rest_profile_is_reported_without_its_key() {
        let problems = check_against(
            &with_sub(mutated("https://authy", "http://authy")),
            &theirs(),
        );
        let p = one(&problems, "RESTful technical profile 'REST-Authy': ServiceUrl must be https, is 'http://authy.example.net/api/Register?…'");
        assert!(!p.message.contains("secret-key"), "{p}");

        let problems = check_against(
            &with_sub(mutated(">ClientCertificate</Item>", ">None</Item>")),
            &theirs(),
        );
        one(
            &problems,
            "AuthenticationType must be ClientCertificate, is 'None'",
        );

        let problems = check_against(
            &with_sub(mutated(
                r#"<Key Id="ClientCertificate""#,
                r#"<Key Id="BasicAuthenticationUsername""#,
            )),
            &theirs(),
        );
        one(
            &problems,
            "needs a CryptographicKeys Key Id=\"ClientCertificate\"",
        );
    }

    #[test]
    fn malformed_xml_is_a_problem_not_a_panic() {
        let ours = with_sub(mutated("</Metadata>", "</Metadta>"));
        let problems = check_against(&ours, &theirs());
        let p = one(&problems, "not well-formed XML");
        assert_eq!(p.file, "AuthyExtensions.xml");
        assert!(p.line.is_some_and(|l| l > 1), "{p}");
        // Whatever the input: empty, binary-ish, not a policy.
        for text in ["", "\u{0}", "<a/>", "<TrustFrameworkPolicy/>", "<<<"] {
            let files = [PolicyFile::new("x.xml", text)];
            let problems = check_against(&files, &files);
            assert!(!problems.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn a_leftover_placeholder_is_reported() {
        let ours = with_sub(mutated(
            "https://authy.example.net/api",
            "{Settings:AuthyApiBaseUrl}",
        ));
        let problems = check_against(&ours, &theirs());
        let p = one(
            &problems,
            "unrendered placeholder {Settings:AuthyApiBaseUrl}",
        );
        assert_eq!((p.file.as_str(), p.line), ("AuthyExtensions.xml", Some(9)));

        // In the tenant's: reported in a policy ours build on, not in an unrelated one.
        let mut theirs = theirs();
        for file in &mut theirs[1..] {
            file.text = file.text.replace(
                "TenantId=\"t.onmicrosoft.com\"",
                "TenantId=\"{Settings:Tenant}\"",
            );
        }
        let problems = check_against(&with_sub(self::ours()), &theirs);
        one(
            &problems,
            "tenant/Extensions.xml:2: unrendered placeholder {Settings:Tenant}",
        );
        assert_eq!(problems.len(), 1, "{:#?}", messages(&problems));
    }

    #[test]
    fn loops_duplicates_and_foreign_files_are_reported() {
        let mut theirs = theirs();
        theirs[0].text = theirs[0]
            .text
            .replace("PolicyId=\"B2C_1A_Base\">", "PolicyId=\"B2C_1A_Base\"><BasePolicy><PolicyId>B2C_1A_Extensions</PolicyId></BasePolicy>");
        one(
            &check_against(&with_sub(ours()), &theirs),
            "closes an inheritance loop",
        );

        let mut theirs = self::theirs();
        theirs.push(PolicyFile::new("tenant/Copy.xml", theirs[1].text.clone()));
        one(
            &check_against(&with_sub(ours()), &theirs),
            "PolicyId 'B2C_1A_Extensions' is also the PolicyId of tenant/Extensions.xml",
        );

        let mut theirs = self::theirs();
        theirs.push(PolicyFile::new("tenant/notes.xml", "<notes/>"));
        one(
            &check_against(&with_sub(ours()), &theirs),
            "tenant/notes.xml:1: not a B2C custom policy",
        );
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let file = PolicyFile::new("a.xml", "\u{feff}<a/>");
        assert_eq!(file.text, "<a/>");
    }
}
