#!/usr/bin/env bash
# Upload our B2C custom policies (the Authy layer and its relying parties)
# through Microsoft Graph, in chain order, after backing up every policy it
# would overwrite; or show what would change (--diff); or restore a backup
# (--rollback).
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Microsoft Graph beta, trustFrameworkPolicy: GET and PUT
# /trustFramework/policies/{id}/$value (the policy XML), DELETE
# /trustFramework/policies/{id} (MS docs "Get trustFrameworkPolicy", "Update
# or create trustFrameworkPolicy", "Delete trustFrameworkPolicy").
GRAPH_POLICIES_URL="https://graph.microsoft.com/beta/trustFramework/policies"
# What marks a policy as ours: every template carries it right after the XML
# declaration.  Only files carrying it are uploaded, and a tenant policy
# whose current text lacks it is not overwritten without --force.
MARKER='<!-- b2c-authy:managed-policy -->'

SCRIPT_SUMMARY="Upload our B2C custom policies from a rendered environment folder with
Microsoft Graph (PUT /beta/trustFramework/policies/{PolicyId}/\$value): only the
files that start with the marker $MARKER
after the XML declaration (our Authy layer B2C_1A_AuthyExtensions and its
relying parties), in chain order, every policy after the policy it inherits
from (from each file's PolicyId and BasePolicy, not from file names).  Other
files of the folder are listed as ignored.  The tenant's own Base,
Localization and Extensions policies are never uploaded by default."
SCRIPT_DETAILS="Before anything is uploaded:
- no file to upload may hold the sample values of policies/appsettings.json
  (the placeholder b2c-extensions-app ids, example function keys, the contoso
  API URL): render with your own settings file;
- the policy our layer inherits from (the tenant's B2C_1A_TrustFrameworkExtensions
  unless AuthyBasePolicy says otherwise), which is not in the folder, must exist
  in the tenant, and so must the policies it inherits from, down to the root
  (GET .../policies/{id}/\$value; the script stops if one does not).  Every
  downloaded policy must name the files' tenant: a different TenantId means az
  is signed in to another tenant, and the script stops;
- every policy to upload is downloaded.  If one exists and its current text
  lacks the marker (a policy that is not ours), the script stops, naming it,
  unless --force;
- the existing ones are saved into BACKUP_DIR/<tenant>/<UTC yyyymmddTHHMMSSZ>/
  as <PolicyId>.xml, with manifest.txt (tenant, time, chain order, and which
  policies were ABSENT before), and in tenant-chain/ the tenant's policies
  ours build on, as downloaded (never changed or restored by this script; a
  folder to give render-policies --check-against).  The backup folder is what
  --rollback takes.  It may
  hold function keys: it is created readable by you only, and policy-backups/
  is gitignored.
An upload that fails leaves the policies after it untouched: B2C checks each
policy against its already uploaded base.  Undo a run with --rollback and the
folder it printed.

--diff downloads the current versions and prints a unified diff (current
against new) per policy, or 'new policy'; it uploads nothing.  Function keys
(code=...) are masked in the diff.  What it downloaded stays in
BACKUP_DIR/<tenant>/<UTC time>-diff/: tenant-chain/ (the tenant's policies ours
build on; give that folder to render-policies --check-against before a first
upload) and current/ (the tenant's versions of ours).  It has no manifest: it
is not a backup to roll back to.

--rollback DIR restores a backup folder: first it backs up the current state
(so a rollback can be rolled back), then PUTs the saved files in reverse chain
order, then DELETEs (DELETE .../policies/{id}) the policies the manifest
records as ABSENT before, in reverse chain order.  A folder without
manifest.txt is refused, and so is deleting a policy whose current text lacks
the marker (such as the tenant's own Base, Localization or Extensions that
--with-base-policies uploaded) unless --force.

--with-base-policies DIR is for a tenant with no custom policies yet: it also
uploads B2C_1A_TrustFrameworkBase, B2C_1A_TrustFrameworkLocalization and
B2C_1A_TrustFrameworkExtensions from DIR, first (found by PolicyId, compared
case-insensitively as B2C does; other files of DIR are ignored): the starter
pack you downloaded and prepared as in the MS docs tutorial 'Create user flows
and custom policies in Azure AD B2C' (tutorial-create-user-flows).  They carry
no marker: if one already exists in the tenant the script stops unless
--force (and backs it up like everything else).  The former --base-dir option
is gone (it uploaded the starter pack's Base and Localization over the
tenant's); there is no alias.

The tenant is the TenantId of the files (all must name the same one).

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

# --base-dir is gone: say so instead of 'unknown option'.
for arg in "$@"; do
    case "$arg" in
    --base-dir | --base-dir=*)
        _usage_error "--base-dir is gone: the tenant's Base and Localization are no longer uploaded by default; for a tenant with no custom policies yet use --with-base-policies DIR"
        ;;
    esac
done
[[ -z "${BASE_POLICIES_DIR:-}" ]] ||
    _usage_error "BASE_POLICIES_DIR (--base-dir) is gone; for a tenant with no custom policies yet use --with-base-policies DIR (WITH_BASE_POLICIES_DIR)"

opt --policies-dir POLICIES_DIR "" "Folder of rendered policy files (*.xml); only those carrying the marker are uploaded."
opt --render RENDER_ENVIRONMENT "" "Render this environment first (cargo run --release --locked --bin render-policies -- NAME) and upload policies/Environments/NAME."
opt --render-settings RENDER_SETTINGS "" "With --render: settings file for render-policies --settings (one holding real function keys, kept outside the repository)."
opt --backup-dir BACKUP_DIR "$REPO_ROOT/policy-backups" "Where backups go: BACKUP_DIR/<tenant>/<UTC yyyymmddTHHMMSSZ>/."
flag --diff DIFF_ONLY "Show what an upload would change (unified diff per policy); upload nothing."
flag --force FORCE "Overwrite tenant policies that lack the marker (and, with --with-base-policies, existing Base, Localization or Extensions; with --rollback, delete them); they are backed up first."
opt --with-base-policies WITH_BASE_POLICIES_DIR "" "Also upload B2C_1A_TrustFrameworkBase, B2C_1A_TrustFrameworkLocalization and B2C_1A_TrustFrameworkExtensions from this folder, first (for a tenant that has none)."
opt --rollback ROLLBACK_DIR "" "Restore this backup folder (one that holds manifest.txt) instead of uploading."
parse_args "$@"

if [[ -n "$ROLLBACK_DIR" ]]; then
    for conflict in POLICIES_DIR RENDER_ENVIRONMENT RENDER_SETTINGS WITH_BASE_POLICIES_DIR DIFF_ONLY; do
        [[ -z "${!conflict}" ]] || _usage_error "--rollback restores a backup; it takes no other policies or modes ($conflict is set)"
    done
elif [[ -z "$POLICIES_DIR" && -z "$RENDER_ENVIRONMENT" ]]; then
    printf '%s: error: missing required parameter: one of\n  %s\n  %s\n  %s\nSee %s --help.\n' "$SCRIPT_NAME" \
        "--policies-dir (or POLICIES_DIR)" "--render (or RENDER_ENVIRONMENT)" "--rollback (or ROLLBACK_DIR)" "$SCRIPT_NAME" >&2
    exit 2
fi
[[ -z "$RENDER_SETTINGS" || -n "$RENDER_ENVIRONMENT" ]] || die "--render-settings needs --render"
# Both would render one environment and upload another folder (POLICIES_DIR may
# also come from the environment, unseen).
[[ -z "$POLICIES_DIR" || -z "$RENDER_ENVIRONMENT" ]] ||
    _usage_error "--render uploads what it rendered (policies/Environments/$RENDER_ENVIRONMENT): give either --render or --policies-dir (POLICIES_DIR is '$POLICIES_DIR'), not both"
require_cmd python3 "python3 reads the policy files to find their order"
require_az
make_tmp_dir

# py COMMAND ARGS...: the policy file helpers below.
py() {
    python3 - "$@" <<'PY'
import difflib, glob, hashlib, os, re, sys
import xml.etree.ElementTree as ET

NS = "{http://schemas.microsoft.com/online/cpim/schemas/2013/06}"
# The marker counts only where our templates put it: first thing in the file,
# after the XML declaration (a byte order mark and white space aside).  Found
# anywhere else (a comment further down, a CDATA section), it would let a
# policy that merely mentions it pass for ours.
MARKER_TEXT = "<!-- b2c-authy:managed-policy -->"
MARKER = re.compile(r"\s*(?:<\?xml[^>]*\?>\s*)?<!--\s*b2c-authy:managed-policy\s*-->")
TENANT_CHAIN = ("B2C_1A_TrustFrameworkBase", "B2C_1A_TrustFrameworkLocalization",
                "B2C_1A_TrustFrameworkExtensions")
ME = "upload-policies.sh"

def read_policy(path):
    """(PolicyId, base PolicyId or None, TenantId), or an error string."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        return f"not well-formed XML ({e})"
    if root.tag != NS + "TrustFrameworkPolicy":
        return "root element is not TrustFrameworkPolicy"
    pid = root.get("PolicyId")
    if not pid:
        return "no PolicyId attribute"
    base = root.find(f"{NS}BasePolicy/{NS}PolicyId")
    base = base.text.strip() if base is not None and base.text else None
    return pid, base, root.get("TenantId", "")

def has_marker(path):
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        return MARKER.match(f.read()) is not None

def plan(policies_dir, base_dir):
    """Print the upload plan: 'tenant T', 'external ID CHILD' for every base
    outside the uploaded set (it must exist in the tenant), then 'upload ID
    FILE KIND' in chain order (KIND: ours, or base for --with-base-policies)."""
    errors, ignored = [], []
    policies = {}  # lower-case PolicyId -> [PolicyId, file, base, tenant, kind]

    def add(path, parsed, kind):
        pid, base, tenant = parsed
        if pid.lower() in policies:
            errors.append(f"{pid} is defined twice: {policies[pid.lower()][1]} and {path}")
        else:
            policies[pid.lower()] = [pid, path, base, tenant, kind]

    for path in sorted(glob.glob(os.path.join(glob.escape(policies_dir), "*.xml"))):
        marked = has_marker(path)
        parsed = read_policy(path)
        if isinstance(parsed, str):
            if marked:
                errors.append(f"{path}: {parsed}")
            else:
                ignored.append(f"{os.path.basename(path)} ({parsed})")
        elif not marked:
            ignored.append(f"{os.path.basename(path)} (PolicyId {parsed[0]}: no marker)")
        elif parsed[0].lower() in (t.lower() for t in TENANT_CHAIN):
            errors.append(f"{path}: {parsed[0]} is the tenant's own policy; it is uploaded only"
                          " with --with-base-policies, from the folder given there")
        else:
            add(path, parsed, "ours")
    if ignored:
        print(f"{ME}: ignoring {len(ignored)} file(s) of {policies_dir} without the marker:",
              file=sys.stderr)
        for entry in ignored:
            print(f"{ME}:   {entry}", file=sys.stderr)
    if base_dir:
        found, skipped = set(), []
        for path in sorted(glob.glob(os.path.join(glob.escape(base_dir), "*.xml"))):
            parsed = read_policy(path)
            if isinstance(parsed, str):
                skipped.append(f"{os.path.basename(path)} ({parsed})")
            elif parsed[0].lower() in (t.lower() for t in TENANT_CHAIN):
                found.add(parsed[0].lower())
                add(path, parsed, "base")
            else:
                skipped.append(f"{os.path.basename(path)} (PolicyId {parsed[0]})")
        if skipped:
            print(f"{ME}: --with-base-policies: ignoring {len(skipped)} file(s) that are not "
                  f"{', '.join(TENANT_CHAIN)}:", file=sys.stderr)
            for entry in skipped:
                print(f"{ME}:   {entry}", file=sys.stderr)
        for want in TENANT_CHAIN:
            if want.lower() not in found:
                errors.append(f"--with-base-policies {base_dir} has no file with PolicyId {want}")
    if not policies and not errors:
        errors.append(f"no *.xml file carrying the marker {MARKER_TEXT} (after the XML declaration) in {policies_dir}")

    depth, external = {}, {}
    def chain_depth(key, seen=()):
        if key in depth:
            return depth[key]
        pid, path, base, _, _ = policies[key]
        if base is None:
            d = 0
        elif base.lower() in seen + (key,):
            names = [policies[k][0] for k in seen + (key,)] + [base]
            raise ValueError(f"inheritance cycle: {' -> '.join(names)}")
        elif base.lower() not in policies:
            # Outside the uploaded set: the tenant must have it.
            external.setdefault(base.lower(), (base, pid))
            d = 0
        else:
            d = chain_depth(base.lower(), seen + (key,)) + 1
        depth[key] = d
        return d
    for key in sorted(policies):
        try:
            chain_depth(key)
        except ValueError as e:
            errors.append("chain broken: " + e.args[0])

    # The sample values of policies/appsettings.json: a policy rendered from the
    # sample settings would upload and then fail every sign-in (401 from the
    # Function App, or no custom attribute).
    sample = re.compile(r"00000000-0000-0000-0000-00000000000[34]|[?&]code=example-[a-z-]*function-key"
                        r"|contoso-authy\.azurewebsites\.net")
    for _, path, _, _, kind in policies.values():
        if kind != "ours":
            continue
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            found = sorted(set(m.group(0) for m in sample.finditer(f.read())))
        if found:
            shown = ", ".join(found)
            errors.append(f"{path} holds the sample values of policies/appsettings.json ({shown}):"
                          " render it with your own settings file (--render NAME --render-settings FILE)")
    tenants = {}
    for _, path, _, tenant, _ in policies.values():
        if not tenant or tenant.lower().startswith("yourtenant."):
            errors.append(f"{path}: TenantId is '{tenant}'; set it to your B2C tenant")
        tenants.setdefault(tenant.lower(), []).append(os.path.basename(path))
    if len(tenants) > 1:
        errors.append("files name different tenants: " +
                      "; ".join(f"{t}: {', '.join(sorted(f))}" for t, f in sorted(tenants.items())))
    if errors:
        sys.exit("\n".join(f"{ME}: error: {e}" for e in errors))
    tenant = next(iter(policies.values()))[3]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]*", tenant):
        sys.exit(f"{ME}: error: TenantId '{tenant}' is not a domain name")
    print(f"tenant\t{tenant}")
    for base, child in external.values():
        print(f"external\t{base}\t{child}")
    for key in sorted(policies, key=lambda k: (depth[k], policies[k][0].lower())):
        pid, path, _, _, kind = policies[key]
        print(f"upload\t{pid}\t{path}\t{kind}")

def mask(text):
    """Function keys (ServiceUrl ...?code=KEY) replaced by a short hash, so a
    changed key still shows as a changed line."""
    return re.sub(r"([?&]code=)([^&<\"'\s]+)",
                  lambda m: m.group(1) + "<masked:" + hashlib.sha256(m.group(2).encode()).hexdigest()[:8] + ">",
                  text)

def diff(current, new, label_current, label_new):
    def lines(path):
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return mask(f.read()).splitlines(keepends=True)
    out = list(difflib.unified_diff(lines(current), lines(new), label_current, label_new))
    if not out:
        print(f"(no change: {label_new})")
    for line in out:
        sys.stdout.write(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")

def check_saved(path, want):
    """A backup file holds the policy the manifest names."""
    parsed = read_policy(path)
    if isinstance(parsed, str):
        sys.exit(f"{ME}: error: {path}: {parsed}")
    if parsed[0].lower() != want.lower():
        sys.exit(f"{ME}: error: {path} holds PolicyId {parsed[0]}, but the manifest says {want}")

cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "plan":
    plan(args[0], args[1] if len(args) > 1 and args[1] else None)
elif cmd == "marker":
    sys.exit(0 if has_marker(args[0]) else 1)
elif cmd == "diff":
    diff(*args)
elif cmd == "base-of":
    parsed = read_policy(args[0])
    print("" if isinstance(parsed, str) or parsed[1] is None else parsed[1])
elif cmd == "tenant-of":
    parsed = read_policy(args[0])
    print("" if isinstance(parsed, str) else parsed[2])
elif cmd == "check-saved":
    check_saved(*args)
else:
    sys.exit(f"unknown helper command {cmd}")
PY
}

# graph_get ID FILE: download policy ID's current text into FILE.  Returns 0
# when it exists and 3 when Graph answers 404 Not Found (az rest raises
# HTTPError with the reason phrase first: "ERROR: Not Found({...})", azure-cli
# core util.py send_raw_request); any other failure stops the script.  Under
# --dry-run the command is printed and 0 returned.
graph_get() {
    local id="$1" file="$2" status=0
    local call=(az rest --method get --uri "$GRAPH_POLICIES_URL/$id/\$value" --output-file "$file")
    if is_dry_run; then
        printf '+ %s\n' "$(format_command "${call[@]}")" >&3
        return 0
    fi
    "${call[@]}" 2>"$TMP_DIR/get.err" || status=$?
    if ((status == 0)); then
        check_tenant "$id" "$file"
        return 0
    fi
    if grep -q '^ERROR: Not Found' "$TMP_DIR/get.err"; then
        rm -f "$file"
        return 3
    fi
    cat "$TMP_DIR/get.err" >&2
    die "could not read $id from the tenant (command failed: $(format_command "${call[@]}")). A 403 (Authorization_RequestDenied) means the signed-in identity lacks Policy.ReadWrite.TrustFramework: see --help."
}

# check_tenant ID FILE: the downloaded policy names EXPECTED_TENANT.  Graph
# answers for the tenant az is signed in to, which the script cannot name
# (az gives its GUID); a policy of another tenant means the wrong sign-in, and
# nothing may be changed there.
EXPECTED_TENANT=""
check_tenant() {
    local found
    found="$(py tenant-of "$2")"
    if [[ "${found,,}" != "${EXPECTED_TENANT,,}" ]]; then
        die "$1 in the signed-in tenant has TenantId '$found', not $EXPECTED_TENANT: az is signed in to another tenant (az account show); nothing was changed"
    fi
}

graph_put() {
    local id="$1" file="$2"
    # Graph answers with the policy XML, which az rest prints ("Not a json
    # response, outputting to stdout") even with --output none: send the
    # answer to /dev/null instead (azure-cli util/custom.py, rest_call).
    run az rest --method put --uri "$GRAPH_POLICIES_URL/$id/\$value" \
        --headers "Content-Type=application/xml" --body "@$file" --output-file /dev/null
}

graph_delete() {
    run az rest --method delete --uri "$GRAPH_POLICIES_URL/$1" --output none
}

# new_backup_dir TENANT [SUFFIX]: create and print
# BACKUP_DIR/TENANT/<UTC time>SUFFIX/ (then -2, -3... if a run of the same
# second made one already), private to the user: backups may hold function
# keys.
new_backup_dir() {
    local base="$BACKUP_DIR/$1" stamp dir n=1
    stamp="$(date -u +%Y%m%dT%H%M%SZ)${2:-}"
    (umask 077 && mkdir -p "$base")
    dir="$base/$stamp"
    while ! (umask 077 && mkdir "$dir" 2>/dev/null); do
        n=$((n + 1))
        dir="$base/$stamp-$n"
        ((n < 100)) || die "cannot create a backup folder in $base"
    done
    printf '%s\n' "$dir"
}

# fetch_current ID...: download the current text of every ID into
# $TMP_DIR/current/ID.xml; sets ABSENT_NOW to the ids the tenant does not have.
ABSENT_NOW=()
fetch_current() {
    local id status
    mkdir -p "$TMP_DIR/current"
    ABSENT_NOW=()
    for id in "$@"; do
        status=0
        graph_get "$id" "$TMP_DIR/current/$id.xml" || status=$?
        ((status == 0)) || ABSENT_NOW+=("$id")
    done
}

is_absent_now() { [[ " ${ABSENT_NOW[*]} " == *" $1 "* ]]; }

# backup TENANT ID...: save what fetch_current downloaded for every ID (in
# chain order) into a new backup folder, with its manifest; sets SAVED_TO to
# the folder.  The folder and files are private: policies may hold function
# keys.
SAVED_TO=""
# The tenant's policies below ours that the run downloaded (not changed by it).
TENANT_CHAIN_IDS=()
backup() {
    local tenant="$1" id dir lines=()
    shift
    if is_dry_run; then
        SAVED_TO="$BACKUP_DIR/$tenant/<UTC time>"
        log "dry run: the current versions would be saved in $SAVED_TO/"
        return 0
    fi
    umask 077
    dir="$(new_backup_dir "$tenant")"
    for id in "$@"; do
        if is_absent_now "$id"; then
            lines+=("policy $id ABSENT")
        else
            cp "$TMP_DIR/current/$id.xml" "$dir/$id.xml"
            lines+=("policy $id SAVED $id.xml")
        fi
    done
    if ((${#TENANT_CHAIN_IDS[@]} > 0)); then
        mkdir "$dir/tenant-chain"
        for id in "${TENANT_CHAIN_IDS[@]}"; do
            cp "$TMP_DIR/chain/$id.xml" "$dir/tenant-chain/$id.xml"
        done
    fi
    {
        printf '# b2c-authy policy backup. Restore: deploy/upload-policies.sh --rollback %s\n' "$(shell_quote "$dir")"
        printf '# Policies in chain order (base first); SAVED: its text before the run is in the\n'
        printf '# file named; ABSENT: the tenant did not have it (a rollback deletes it).\n'
        if ((${#TENANT_CHAIN_IDS[@]} > 0)); then
            printf '# tenant-chain/ holds the policies ours build on, as they were (not changed by\n'
            printf '# the run, not touched by --rollback): %s\n' "${TENANT_CHAIN_IDS[*]}"
        fi
        printf 'tenant %s\n' "$tenant"
        local name="${dir##*/}"
        printf 'time %s\n' "${name%%-*}"
        printf '%s\n' "${lines[@]}"
    } >"$dir/manifest.txt"
    SAVED_TO="$dir"
}

# --- rollback --------------------------------------------------------------

if [[ -n "$ROLLBACK_DIR" ]]; then
    manifest="$ROLLBACK_DIR/manifest.txt"
    [[ -d "$ROLLBACK_DIR" ]] || die "backup folder $ROLLBACK_DIR not found"
    [[ -f "$manifest" ]] || die "$ROLLBACK_DIR has no manifest.txt: not a backup folder of this script (it restores only what it saved itself)"
    tenant="" order=() saved=() absent=()
    while read -r key id state file extra; do
        case "$key" in
        "" | "#"*) continue ;;
        tenant) tenant="$id" ;;
        time) ;;
        policy)
            [[ "$id" =~ ^[A-Za-z0-9_-]+$ && -z "$extra" ]] || die "$manifest: bad policy line for '$id'"
            # B2C compares PolicyIds case-insensitively: a second line for one policy would
            # restore or delete it twice (the second DELETE fails half-way through).
            for seen in "${order[@]}"; do
                [[ "${seen,,}" != "${id,,}" ]] || die "$manifest: $id is listed twice"
            done
            order+=("$id")
            case "$state" in
            SAVED)
                [[ "$file" == "$id.xml" && -f "$ROLLBACK_DIR/$file" ]] ||
                    die "$manifest: $id is SAVED, but $ROLLBACK_DIR/$id.xml is missing"
                py check-saved "$ROLLBACK_DIR/$file" "$id"
                saved+=("$id")
                ;;
            ABSENT) absent+=("$id") ;;
            *) die "$manifest: $id is neither SAVED nor ABSENT" ;;
            esac
            ;;
        *) die "$manifest: unexpected line '$key ...'" ;;
        esac
    done <"$manifest"
    [[ "$tenant" =~ ^[A-Za-z0-9][A-Za-z0-9.-]*$ ]] || die "$manifest: no valid tenant line"
    EXPECTED_TENANT="$tenant"
    ((${#order[@]} > 0)) || die "$manifest lists no policy"
    log "rolling back $tenant to $ROLLBACK_DIR: ${#saved[@]} to restore, ${#absent[@]} to delete"

    capture '<tenant-id>' az account show --query tenantId --output tsv >/dev/null ||
        die "not signed in to Azure: sign in as the B2C tenant's service principal (see --help)"
    # The current state first, so that this rollback can be rolled back.
    fetch_current "${order[@]}"
    # A policy to delete must be one of ours: a manifest edited by hand (or
    # one from --with-base-policies) may list the tenant's own policies.
    foreign=()
    for id in "${absent[@]}"; do
        if ! is_dry_run && ! is_absent_now "$id" && ! py marker "$TMP_DIR/current/$id.xml"; then
            foreign+=("$id")
        fi
    done
    if ((${#foreign[@]} > 0)); then
        [[ -n "$FORCE" ]] ||
            die "the manifest would have these deleted, but their current text lacks the marker $MARKER (not ours): ${foreign[*]}. Nothing was changed. Delete them anyway with --force (they are backed up first)"
        warn "--force: deleting policies that are not ours: ${foreign[*]}"
    fi
    backup "$tenant" "${order[@]}"
    undo="$SAVED_TO"
    is_dry_run || log "current state saved in $undo"

    for ((i = ${#order[@]} - 1; i >= 0; i--)); do
        id="${order[i]}"
        [[ " ${saved[*]} " == *" $id "* ]] || continue
        log "restoring $id"
        graph_put "$id" "$ROLLBACK_DIR/$id.xml" ||
            die "restoring $id failed; the policies after it in reverse chain order are unchanged. Undo what was restored with --rollback $(shell_quote "$undo")"
    done
    for ((i = ${#order[@]} - 1; i >= 0; i--)); do
        id="${order[i]}"
        [[ " ${absent[*]} " == *" $id "* ]] || continue
        if ! is_dry_run && is_absent_now "$id"; then
            log "$id is already absent"
            continue
        fi
        log "deleting $id (absent before the backup)"
        graph_delete "$id" ||
            die "deleting $id failed. Undo what was restored with --rollback $(shell_quote "$undo")"
    done
    if is_dry_run; then
        log "dry run: nothing was changed"
    else
        log "rolled back to $ROLLBACK_DIR; undo this rollback with: $SCRIPT_NAME --rollback $(shell_quote "$undo")"
    fi
    exit 0
fi

# --- upload or diff ----------------------------------------------------------

POLICIES_DIR="${POLICIES_DIR:-$REPO_ROOT/policies/Environments/$RENDER_ENVIRONMENT}"

if [[ -n "$RENDER_ENVIRONMENT" ]]; then
    log "rendering environment $RENDER_ENVIRONMENT in $REPO_ROOT"
    render_args=()
    if [[ -n "$RENDER_SETTINGS" ]]; then
        [[ -f "$RENDER_SETTINGS" ]] || die "settings file $RENDER_SETTINGS not found"
        # Absolute, because the render command runs in REPO_ROOT.
        render_args=(--settings "$(cd "$(dirname "$RENDER_SETTINGS")" && pwd)/$(basename "$RENDER_SETTINGS")")
    fi
    # Rendering is local (it writes only policies/Environments/NAME, git-ignored), so it runs
    # in a dry run too: the plan below is then made from what this run would upload, not from
    # an older render.
    (
        cd "$REPO_ROOT" || exit
        is_dry_run && log "rendering for real in a dry run too (local files only)"
        DRY_RUN=0 run cargo run --release --locked --bin render-policies -- "${render_args[@]}" "$RENDER_ENVIRONMENT"
    )
fi

if [[ ! -d "$POLICIES_DIR" ]]; then
    if is_dry_run; then
        log "$POLICIES_DIR does not exist (yet); the upload order is known only after rendering"
        exit 0
    fi
    die "policies folder $POLICIES_DIR not found"
fi
if [[ -n "$WITH_BASE_POLICIES_DIR" && ! -d "$WITH_BASE_POLICIES_DIR" ]]; then
    die "base policies folder $WITH_BASE_POLICIES_DIR not found"
fi

plan="$(py plan "$POLICIES_DIR" "$WITH_BASE_POLICIES_DIR")" || exit 1
tenant="" externals=() ids=() files=() kinds=()
while IFS=$'\t' read -r what a b c; do
    case "$what" in
    tenant) tenant="$a" ;;
    external) externals+=("$a"$'\t'"$b") ;;
    upload) ids+=("$a") files+=("$b") kinds+=("$c") ;;
    esac
done <<<"$plan"

EXPECTED_TENANT="$tenant"
log "tenant $tenant; upload order:"
for i in "${!ids[@]}"; do
    log "  ${ids[i]}  (${files[i]})"
done

capture '<tenant-id>' az account show --query tenantId --output tsv >/dev/null ||
    die "not signed in to Azure: sign in as the B2C tenant's service principal (see --help)"

# The bases outside the uploaded set (the tenant's extensions) must exist, and
# so must what they inherit from, down to the root: the tenant's own chain,
# which an upload keeps in its backup folder (tenant-chain/), e.g. for
# render-policies --check-against.
mkdir -p "$TMP_DIR/chain"
missing=()
for entry in "${externals[@]}"; do
    base="${entry%%$'\t'*}" child="${entry#*$'\t'}"
    while [[ -n "$base" ]]; do
        [[ " ${TENANT_CHAIN_IDS[*],,} " != *" ${base,,} "* ]] || break
        status=0
        graph_get "$base" "$TMP_DIR/chain/$base.xml" || status=$?
        if ((status != 0)); then
            missing+=("$base (the base of $child)")
            break
        fi
        TENANT_CHAIN_IDS+=("$base")
        is_dry_run && break
        log "$base, the base of $child, exists in the tenant"
        child="$base"
        base="$(py base-of "$TMP_DIR/chain/$base.xml")"
    done
done
if ((${#missing[@]} > 0)); then
    msg="not in tenant $tenant: ${missing[*]}. Our layer builds on the tenant's own custom policies: upload your Base, Localization and Extensions first (for a tenant with none: --with-base-policies DIR with the starter pack prepared as in the MS docs tutorial-create-user-flows), or set AuthyBasePolicy to the policy it should inherit from"
    if [[ -n "$DIFF_ONLY" ]]; then
        warn "$msg"
    else
        die "$msg; nothing was uploaded"
    fi
fi

if [[ -n "$DIFF_ONLY" ]]; then
    fetch_current "${ids[@]}"
    # Keep what was downloaded: the tenant's chain is what render-policies
    # --check-against needs before a first upload.  No manifest: nothing
    # changed, so there is nothing to roll back.
    if ! is_dry_run; then
        umask 077
        diff_dir="$(new_backup_dir "$tenant" -diff)"
        mkdir "$diff_dir/tenant-chain" "$diff_dir/current"
        for id in "${TENANT_CHAIN_IDS[@]}"; do
            cp "$TMP_DIR/chain/$id.xml" "$diff_dir/tenant-chain/"
        done
        for id in "${ids[@]}"; do
            is_absent_now "$id" || cp "$TMP_DIR/current/$id.xml" "$diff_dir/current/"
        done
    fi
    for i in "${!ids[@]}"; do
        id="${ids[i]}" file="${files[i]}"
        is_dry_run && continue
        if is_absent_now "$id"; then
            printf '=== %s: new policy (%s)\n' "$id" "$file"
            continue
        fi
        printf '=== %s\n' "$id"
        if [[ "${kinds[i]}" == base ]]; then
            printf '(exists in the tenant: an upload would refuse it without --force)\n'
        elif ! py marker "$TMP_DIR/current/$id.xml"; then
            printf '(the current policy lacks the marker, it is not ours: an upload would refuse it without --force)\n'
        fi
        py diff "$TMP_DIR/current/$id.xml" "$file" "$id (tenant $tenant, current)" "$file (new)"
    done
    is_dry_run || log "downloaded into $diff_dir: tenant-chain/ (the tenant's policies ours build on: give this folder to render-policies --check-against) and current/ (the tenant's versions of ours)"
    log "diff only: nothing was uploaded"
    exit 0
fi

# Download every policy to upload, refuse foreign ones, then keep them.
fetch_current "${ids[@]}"
refused=()
for i in "${!ids[@]}"; do
    id="${ids[i]}"
    if is_dry_run || is_absent_now "$id"; then
        continue
    fi
    if [[ "${kinds[i]}" == base ]]; then
        refused+=("$id (already in the tenant; --with-base-policies is for a tenant that has none)")
    elif ! py marker "$TMP_DIR/current/$id.xml"; then
        refused+=("$id (its current text lacks the marker $MARKER after the XML declaration: not ours)")
    fi
done
if ((${#refused[@]} > 0)); then
    if [[ -z "$FORCE" ]]; then
        log "refusing to overwrite:"
        for r in "${refused[@]}"; do
            log "  $r"
        done
        die "nothing was uploaded. Compare with --diff; overwrite with --force (every overwritten policy is backed up first)"
    fi
    for r in "${refused[@]}"; do
        warn "--force: overwriting $r"
    done
fi

backup "$tenant" "${ids[@]}"
is_dry_run || log "backed up into $SAVED_TO (not in the tenant before: ${ABSENT_NOW[*]:-none})"

for i in "${!ids[@]}"; do
    id="${ids[i]}" file="${files[i]}"
    log "uploading $id"
    # An upload that fails leaves the policies after it untouched: B2C checks
    # each policy against its already uploaded base.
    graph_put "$id" "$file" ||
        die "upload of $id ($file) failed; the policies after it were not uploaded. A 403 (Authorization_RequestDenied) means the signed-in identity lacks Policy.ReadWrite.TrustFramework: see --help. Undo the uploads before it with: $SCRIPT_NAME --rollback $(shell_quote "$SAVED_TO")"
done

if is_dry_run; then
    log "dry run: ${#ids[@]} uploads planned, nothing was changed"
else
    log "uploaded ${#ids[@]} policies; undo with: $SCRIPT_NAME --rollback $(shell_quote "$SAVED_TO")"
fi
