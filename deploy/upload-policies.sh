#!/usr/bin/env bash
# Upload rendered B2C custom policies through Microsoft Graph, base policies
# first, in the order of their inheritance chain.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GRAPH_POLICIES_URL="https://graph.microsoft.com/beta/trustFramework/policies"

SCRIPT_SUMMARY="Upload the B2C custom policies of a rendered environment folder (and the
starter-pack base files) with Microsoft Graph, PUT
/beta/trustFramework/policies/{PolicyId}/\$value, in chain order: every policy
after the policy it inherits from (Base, Localization, Extensions, relying
parties).  The order comes from each file's PolicyId and BasePolicy, not from
file names; a broken chain stops the script before anything is uploaded."
SCRIPT_DETAILS="From --base-dir only the two starter-pack base policies are taken, found by
PolicyId (compared case-insensitively, as B2C does): B2C_1A_TrustFrameworkBase
and B2C_1A_TrustFrameworkLocalization; both must be there.  Every other file in
it (the starter pack's own TrustFrameworkExtensions.xml and relying parties,
which issue tokens without the Authy push) is listed as ignored, never uploaded.

Sign in first as a service principal of the B2C tenant that has the Microsoft
Graph application permission Policy.ReadWrite.TrustFramework (admin consent
granted), preferably with a certificate (PEM holding the private key and the
certificate):
  az login --service-principal --username <app-id> \\
      --tenant <tenant>.onmicrosoft.com --certificate /path/cert.pem \\
      --allow-no-subscriptions
With a client secret, pass it from the environment instead of --certificate:
--password \"\$AZURE_CLIENT_SECRET\" (it is then on az's own command line while
az runs; a certificate or --federated-token avoids that).
A user sign-in ('az login') is refused for this API: the token the Azure CLI
obtains for a user does not carry Policy.ReadWrite.TrustFramework."

opt --policies-dir POLICIES_DIR "" "Folder of rendered policy files (*.xml)."
opt --render RENDER_ENVIRONMENT "" "Render this environment first (cargo run --release --locked --bin render-policies -- NAME) and upload policies/Environments/NAME."
opt --render-settings RENDER_SETTINGS "" "With --render: settings file for render-policies --settings (one holding real function keys, kept outside the repository)."
opt --base-dir BASE_POLICIES_DIR "" "Starter-pack folder (e.g. SocialAndLocalAccounts): only its B2C_1A_TrustFrameworkBase and B2C_1A_TrustFrameworkLocalization policies are uploaded, other files are ignored."
parse_args "$@"

if [[ -z "$POLICIES_DIR" && -z "$RENDER_ENVIRONMENT" ]]; then
    printf '%s: error: missing required parameter: one of\n  %s\n  %s\nSee %s --help.\n' "$SCRIPT_NAME" \
        "--policies-dir (or POLICIES_DIR)" "--render (or RENDER_ENVIRONMENT)" "$SCRIPT_NAME" >&2
    exit 2
fi
[[ -z "$RENDER_SETTINGS" || -n "$RENDER_ENVIRONMENT" ]] || die "--render-settings needs --render"
require_cmd python3 "python3 reads the policy files to find their order"
require_az
POLICIES_DIR="${POLICIES_DIR:-$REPO_ROOT/policies/Environments/$RENDER_ENVIRONMENT}"

if [[ -n "$RENDER_ENVIRONMENT" ]]; then
    log "rendering environment $RENDER_ENVIRONMENT in $REPO_ROOT"
    render_args=()
    if [[ -n "$RENDER_SETTINGS" ]]; then
        [[ -f "$RENDER_SETTINGS" ]] || die "settings file $RENDER_SETTINGS not found"
        # Absolute, because the render command runs in REPO_ROOT.
        render_args=(--settings "$(cd "$(dirname "$RENDER_SETTINGS")" && pwd)/$(basename "$RENDER_SETTINGS")")
    fi
    (
        cd "$REPO_ROOT"
        run cargo run --release --locked --bin render-policies -- "${render_args[@]}" "$RENDER_ENVIRONMENT"
    )
fi

if [[ ! -d "$POLICIES_DIR" ]]; then
    if is_dry_run; then
        log "$POLICIES_DIR does not exist (yet); the upload order is known only after rendering"
        exit 0
    fi
    die "policies folder $POLICIES_DIR not found"
fi
if [[ -n "$BASE_POLICIES_DIR" && ! -d "$BASE_POLICIES_DIR" ]]; then
    die "base policies folder $BASE_POLICIES_DIR not found"
fi

# policy_order POLICIES_DIR [BASE_DIR]: print "PolicyId<TAB>file" lines in
# upload order, or fail naming the problem.  Every policy of POLICIES_DIR is
# uploaded; of BASE_DIR only the two starter-pack base policies.
policy_order() {
    python3 - "$@" <<'PY'
import glob, os, sys
import xml.etree.ElementTree as ET

NS = "{http://schemas.microsoft.com/online/cpim/schemas/2013/06}"
# The only policies taken from --base-dir.  The starter pack's folders also
# hold their own extensions policy and relying parties, which would issue
# tokens without the Authy push.
BASE_ONLY = ("B2C_1A_TrustFrameworkBase", "B2C_1A_TrustFrameworkLocalization")
# B2C compares PolicyIds case-insensitively: so do the keys here.
errors, policies = [], {}  # lower-case PolicyId -> (PolicyId, file, base PolicyId or None, TenantId)

def read_policy(path):
    """(PolicyId, base PolicyId or None, TenantId), or an error string."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        return f"{path}: not well-formed XML ({e})"
    if root.tag != NS + "TrustFrameworkPolicy":
        return f"{path}: root element is not TrustFrameworkPolicy"
    pid = root.get("PolicyId")
    if not pid:
        return f"{path}: no PolicyId attribute"
    base = root.find(f"{NS}BasePolicy/{NS}PolicyId")
    base = base.text.strip() if base is not None and base.text else None
    return pid, base, root.get("TenantId", "")

def add(path, parsed):
    pid, base, tenant = parsed
    key = pid.lower()
    if key in policies:
        errors.append(f"{pid} is defined twice: {policies[key][1]} and {path}")
    else:
        policies[key] = (pid, path, base, tenant)

policies_dir = sys.argv[1]
base_dir = sys.argv[2] if len(sys.argv) > 2 else None
for path in sorted(glob.glob(os.path.join(policies_dir, "*.xml"))):
    parsed = read_policy(path)
    if isinstance(parsed, str):
        errors.append(parsed)
    else:
        add(path, parsed)

if base_dir is not None:
    found, ignored = set(), []
    for path in sorted(glob.glob(os.path.join(base_dir, "*.xml"))):
        parsed = read_policy(path)
        if isinstance(parsed, str):
            ignored.append(f"{os.path.basename(path)} ({parsed.split(': ', 1)[1]})")
        elif parsed[0].lower() in (b.lower() for b in BASE_ONLY):
            found.add(parsed[0].lower())
            add(path, parsed)
        else:
            ignored.append(f"{os.path.basename(path)} (PolicyId {parsed[0]})")
    if ignored:
        print(f"upload-policies.sh: --base-dir: ignoring {len(ignored)} file(s) that are not "
              f"{' or '.join(BASE_ONLY)}:", file=sys.stderr)
        for entry in ignored:
            print(f"upload-policies.sh:   {entry}", file=sys.stderr)
    for want in BASE_ONLY:
        if want.lower() not in found:
            errors.append(f"--base-dir {base_dir} has no file with PolicyId {want}"
                          " (the starter pack's TrustFramework"
                          f"{want.rsplit('TrustFramework', 1)[1]}.xml, TenantId set to your tenant)")

if not policies and not errors:
    errors.append("no *.xml policy files found in " + ", ".join(sys.argv[1:]))

# Depth in the chain: 0 for a policy without a base, base depth + 1 otherwise.
depth = {}
def chain_depth(key, seen=()):
    if key in depth:
        return depth[key]
    pid, path, base, _ = policies[key]
    if base is None:
        d = 0
    elif base.lower() in seen + (key,):
        names = [policies[k][0] for k in seen + (key,)] + [base]
        raise ValueError(f"inheritance cycle: {' -> '.join(names)}")
    elif base.lower() not in policies:
        raise KeyError(f"{pid} ({path}) inherits from {base}, which is in none of the given folders;"
                       f" add the starter-pack file with --base-dir or to the rendered folder")
    else:
        d = chain_depth(base.lower(), seen + (key,)) + 1
    depth[key] = d
    return d

for pid in sorted(policies):
    try:
        chain_depth(pid)
    except (KeyError, ValueError) as e:
        errors.append("chain broken: " + e.args[0])

# Policies of one tenant only; starter-pack files that were never edited
# still name the placeholder tenant and would be rejected by B2C anyway.
tenants = {}
for _, path, _, tenant in policies.values():
    if not tenant or tenant.lower().startswith("yourtenant."):
        errors.append(f"{path}: TenantId is '{tenant}'; set it to your B2C tenant")
    tenants.setdefault(tenant.lower(), []).append(os.path.basename(path))
if len(tenants) > 1:
    errors.append("files name different tenants: " +
                  "; ".join(f"{t}: {', '.join(sorted(f))}" for t, f in sorted(tenants.items())))

if errors:
    sys.exit("\n".join("upload-policies.sh: error: " + e for e in errors))
for key in sorted(policies, key=lambda k: (depth[k], policies[k][0])):
    print(f"{policies[key][0]}\t{policies[key][1]}")
PY
}

folders=("$POLICIES_DIR")
[[ -z "$BASE_POLICIES_DIR" ]] || folders+=("$BASE_POLICIES_DIR")
order="$(policy_order "${folders[@]}")" || exit 1

log "upload order:"
while IFS=$'\t' read -r policy_id file; do
    log "  $policy_id  ($file)"
done <<<"$order"

tenant="$(capture '<tenant-id>' az account show --query tenantId --output tsv)" ||
    die "not signed in to Azure: sign in as the B2C tenant's service principal (see --help)"
log "uploading to tenant $tenant"

while IFS=$'\t' read -r policy_id file; do
    log "uploading $policy_id"
    # An upload that fails leaves the policies after it untouched: B2C checks
    # each policy against its already uploaded base.
    # Graph answers with the policy XML, which az rest prints ("Not a json
    # response, outputting to stdout") even with --output none: send the
    # answer to /dev/null instead (azure-cli util/custom.py, rest_call).
    if ! run az rest --method put --uri "$GRAPH_POLICIES_URL/$policy_id/\$value" \
        --headers "Content-Type=application/xml" --body "@$file" --output-file /dev/null; then
        die "upload of $policy_id ($file) failed; the policies after it were not uploaded. A 403 (Authorization_RequestDenied) means the signed-in identity lacks Policy.ReadWrite.TrustFramework: see --help."
    fi
done <<<"$order"

count="$(wc -l <<<"$order" | tr -d ' ')"
if is_dry_run; then
    log "dry run: $count uploads planned, nothing was changed"
else
    log "uploaded $count policies"
fi
