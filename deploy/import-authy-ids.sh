#!/usr/bin/env bash
# Set the authy id (custom attribute extension_authyId) of the users listed in
# a CSV file, through Microsoft Graph: for tenants whose users enrolled with
# Authy somewhere else than in this tenant's policies.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRIPT_SUMMARY="Set the authy id of the users listed in --csv: the custom attribute the policies
call extension_authyId, in Microsoft Graph extension_<b2c-extensions-app client
id without dashes>_authyId.  Every row is checked before anything is written;
then every user is looked up, and only then are the authy ids written (PATCH
/v1.0/users/{id}).  A user who already has the same authy id is left alone, so
the script can be run again; a user with a different authy id stops it before
the first write unless --overwrite.  With --dry-run the users are looked up and the plan reported, but
nothing is written."
SCRIPT_DETAILS="CSV format: one user a line, 'user,authyId', optionally below a header line
'user,authyId'.  user is the user's object id, or a local account's sign-in
name (the email address or user name of its emailAddress/userName identity);
authyId is the Authy user id, 1 to 20 digits without a leading zero (what the
Authy API returned when the user was registered).  Empty lines are ignored;
quoted fields are not supported (no user or authy id needs them).  Example:
  user,authyId
  6a2b7f0e-1c3d-4e5f-8a9b-0c1d2e3f4a5b,123456789
  alice@example.com,234567890
  bob_smith,345678901
A user listed twice, a malformed row, a user not found in the tenant, or (without
--overwrite) a user who already has a different authy id stops the script before
the first write, with every such line reported.  The exit status is 1 then (or
when anything failed), 0 otherwise; --dry-run reports the same and exits 1 too.
Sign-in names are shown masked (a***@example.com); authy ids are not shown.

Graph knows the attribute only once a policy has written it for some user:
B2C registers it the first time an Azure AD technical profile persists the
claim (MS docs \"Define custom attributes in Azure AD B2C\"), not when it is
added under User attributes.  A tenant whose users enrolled with the Authy
sample has it; in any other, enrol one test user through
B2C_1A_signup_signin_authy first, or Graph refuses the writes ('does not
exist as a declared property').

Sign in first as a service principal of the B2C tenant that has the Microsoft
Graph application permission User.ReadWrite.All (admin consent granted;
User.Read.All is enough for --dry-run), as for upload-policies.sh:
  az login --service-principal --username <app-id> \\
      --tenant <tenant>.onmicrosoft.com --certificate /path/cert.pem \\
      --allow-no-subscriptions
Each user takes one Graph call to look up and, when it changes, one to write."

opt --csv CSV_FILE "" "CSV file of 'user,authyId' rows (see above)."
opt --tenant B2C_TENANT "" "The B2C tenant's default domain, e.g. contoso.onmicrosoft.com: the issuer of local accounts' sign-in names. Default: the Tenant of --environment."
opt --extensions-app-client-id B2C_EXTENSIONS_APP_CLIENT_ID "" "Application (client) id of the tenant's b2c-extensions-app. Default: B2cExtensionsAppClientId of --environment."
opt --environment POLICY_ENVIRONMENT "" "Take --tenant and --extensions-app-client-id from this environment of --settings."
opt --settings SETTINGS_FILE "" "Policy settings file for --environment (default: policies/appsettings.json of the repository)."
flag --overwrite OVERWRITE "Replace a different authy id a user already has (default: stop before the first write)."
parse_args "$@"

require CSV_FILE
[[ -f "$CSV_FILE" ]] || die "CSV file $CSV_FILE not found"

graph_resolve_target
ATTRIBUTE="$(graph_extension_attribute "$B2C_EXTENSIONS_APP_CLIENT_ID" authyId)"

# --- 1. every row checked before anything else ------------------------------

# The longest authy id, in digits: AuthyId::MAX_DIGITS in src/domain.rs, the
# type the functions parse authy ids with.
AUTHY_ID_MAX_DIGITS=20
AUTHY_ID_RE="^[1-9][0-9]{0,$((AUTHY_ID_MAX_DIGITS - 1))}\$"

rows_user=() rows_authy=() rows_line=()
bad=()
declare -A first_line_of=()
# A UTF-16 file (Excel's "Unicode text") reads as NUL bytes here.
if (($(tr -cd '\000' <"$CSV_FILE" | wc -c) > 0)); then
    die "$CSV_FILE holds NUL bytes: save it as UTF-8 (or ASCII) text"
fi
line_no=0
while IFS= read -r line || [[ -n "$line" ]]; do
    line_no=$((line_no + 1))
    # A UTF-8 byte order mark before the first line, a CR before each line
    # end (a file saved on Windows): not part of the data.
    ((line_no > 1)) || line="${line#$'\xef\xbb\xbf'}"
    line="${line%$'\r'}"
    [[ "$line" =~ ^[[:space:]]*$ ]] && continue
    if ((${#rows_line[@]} == 0 && ${#bad[@]} == 0)) && [[ "${line,,}" =~ ^[[:space:]]*user[[:space:]]*,[[:space:]]*authyid[[:space:]]*$ ]]; then
        continue # the header
    fi
    # Tabs count as spaces; any other control character (a carriage return
    # in the middle of a line, an escape sequence) is refused.
    if [[ "${line//$'\t'/ }" == *[[:cntrl:]]* ]]; then
        bad+=("line $line_no: control character (such as a carriage return) inside the row")
        continue
    fi
    if [[ "$line" == *'"'* ]]; then
        bad+=("line $line_no: double quote in the row (quoted fields are not supported)")
        continue
    fi
    commas="${line//[^,]/}"
    if ((${#commas} != 1)); then
        bad+=("line $line_no: expected 2 fields 'user,authyId', found $((${#commas} + 1))")
        continue
    fi
    # Spaces and tabs around a field are not part of it.
    user="${line%%,*}" authy="${line#*,}"
    user="${user#"${user%%[![:space:]]*}"}" user="${user%"${user##*[![:space:]]}"}"
    authy="${authy#"${authy%%[![:space:]]*}"}" authy="${authy%"${authy##*[![:space:]]}"}"
    problems=()
    if [[ -z "$user" ]]; then
        problems+=("empty user")
        key=""
    elif [[ "$user" =~ $GUID_RE ]]; then
        user="${user,,}"
        key="$user"
    else
        if ! is_sign_in_name "$user"; then
            problems+=("user is neither an object id (GUID) nor a valid email address or user name")
        fi
        # Sign-in names are case-insensitive.
        key="${user,,}"
    fi
    if [[ ! "$authy" =~ $AUTHY_ID_RE ]]; then
        problems+=("authy id is not 1 to $AUTHY_ID_MAX_DIGITS digits without a leading zero")
    fi
    if [[ -n "$key" && -n "${first_line_of[$key]:-}" ]]; then
        problems+=("user already listed on line ${first_line_of[$key]}")
    fi
    if ((${#problems[@]} > 0)); then
        printf -v joined '%s; ' "${problems[@]}"
        bad+=("line $line_no: ${joined%; }")
        continue
    fi
    first_line_of["$key"]="$line_no"
    rows_user+=("$user") rows_authy+=("$authy") rows_line+=("$line_no")
done <"$CSV_FILE"

if ((${#bad[@]} > 0)); then
    log "error: $CSV_FILE has ${#bad[@]} bad row(s); nothing was looked up or written:"
    for entry in "${bad[@]}"; do
        log "  $entry"
    done
    exit 1
fi
((${#rows_line[@]} > 0)) || die "$CSV_FILE lists no users"
log "$CSV_FILE: ${#rows_line[@]} user(s); attribute $ATTRIBUTE, tenant $B2C_TENANT"

# --- 2. every user looked up before the first write -------------------------

# The look-ups change nothing: they also run under --dry-run, which reports
# what a real run would do.
require_cmd az "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli)"
make_tmp_dir

# show USER [OBJECT_ID]: how a row's user appears in the output: an object
# id as it is, a sign-in name masked, followed by the object id it resolved to.
show() {
    if [[ "$1" =~ $GUID_RE ]]; then
        printf '%s' "$1"
    else
        mask_sign_in_name "$1"
        [[ -z "${2:-}" ]] || printf ' (%s)' "$2"
    fi
}

rows_id=() rows_current=()
unknown=()
declare -A line_of_id=()
for i in "${!rows_line[@]}"; do
    user="${rows_user[$i]}" line_no="${rows_line[$i]}"
    found="$(graph_find_user "$user" "$B2C_TENANT" "$ATTRIBUTE")" ||
        die "looking up the user of line $line_no failed (see az's message above); nothing was written. A 403 (Authorization_RequestDenied) means the signed-in identity lacks User.Read.All/User.ReadWrite.All; 'does not exist as a declared property' means no policy has written the attribute in this tenant yet: see --help."
    if [[ -z "$found" ]]; then
        unknown+=("line $line_no: no user $(show "$user") in the tenant")
        continue
    fi
    if [[ "$found" == *$'\n'* ]]; then
        unknown+=("line $line_no: $(wc -l <<<"$found" | tr -d ' ') users have the sign-in name $(show "$user")")
        continue
    fi
    id="${found%%$'\t'*}" current="${found#*$'\t'}"
    if [[ -n "${line_of_id[$id]:-}" ]]; then
        unknown+=("line $line_no: same user ($id) as line ${line_of_id[$id]}")
        continue
    fi
    line_of_id["$id"]="$line_no"
    rows_id[i]="$id" rows_current[i]="$current"
done
if ((${#unknown[@]} > 0)); then
    log "error: ${#unknown[@]} row(s) name no single user of the tenant; nothing was written:"
    for entry in "${unknown[@]}"; do
        log "  $entry"
    done
    exit 1
fi

# --- 3. the plan, then the writes -------------------------------------------

to_set=() unchanged=0 refused=()
for i in "${!rows_line[@]}"; do
    current="${rows_current[$i]}" want="${rows_authy[$i]}"
    if [[ "$current" == "$want" ]]; then
        unchanged=$((unchanged + 1))
    elif [[ -z "$current" || "${OVERWRITE:-0}" == 1 ]]; then
        to_set+=("$i")
    else
        refused+=("line ${rows_line[$i]}: $(show "${rows_user[$i]}" "${rows_id[$i]}") already has a different authy id")
    fi
done
if ((${#refused[@]} > 0)); then
    log "refusing ${#refused[@]} row(s) whose user already has a different authy id (--overwrite replaces it):"
    for entry in "${refused[@]}"; do
        log "  $entry"
    done
    # All or nothing, like the checks before: a half-imported file is harder to reason about
    # than one that was not imported at all.
    is_dry_run || die "nothing was written (set 0, unchanged $unchanged, refused ${#refused[@]}): remove those rows, or pass --overwrite to replace their authy ids"
fi

set_count=0
for i in "${to_set[@]}"; do
    id="${rows_id[$i]}"
    verb="set"
    [[ -z "${rows_current[$i]}" ]] || verb="replaced"
    body="$TMP_DIR/patch-$i.json"
    printf '{"%s":"%s"}\n' "$ATTRIBUTE" "$(json_escape "${rows_authy[$i]}")" >"$body"
    if ! run az rest --method patch --uri "$GRAPH_V1_URL/users/$id" \
        --headers "Content-Type=application/json" --body "@$body" --output none; then
        die "writing the authy id of line ${rows_line[$i]} ($id) failed after $set_count write(s); run the script again once fixed (users already done are left alone). A 403 means the signed-in identity lacks User.ReadWrite.All; 'does not exist as a declared property' means no policy has written the attribute in this tenant yet: see --help."
    fi
    set_count=$((set_count + 1))
    if is_dry_run; then
        log "line ${rows_line[$i]}: $(show "${rows_user[$i]}" "$id"): would be $verb"
    else
        log "line ${rows_line[$i]}: $(show "${rows_user[$i]}" "$id"): $verb"
    fi
done

summary="set $set_count, unchanged $unchanged"
((${#refused[@]} == 0)) || summary+=", refused ${#refused[@]}"
if is_dry_run; then
    log "dry run, nothing was written; a real run would: $summary"
else
    log "$summary"
fi
((${#refused[@]} == 0)) || exit 1
