#!/usr/bin/env bash
# Create or update the Azure resources for the handler: resource group,
# storage account, hosting plan, Linux Function App (runtime custom,
# Functions v4), Key Vault for the Authy key, app settings, HTTPS only,
# TLS 1.2 and required client certificates.  Safe to run again.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRIPT_SUMMARY="Provision (idempotently) the Function App that hosts the handler, with client
certificates required on every path, HTTPS only and minimum TLS 1.2."
SCRIPT_DETAILS="Plan types (--plan-type):
  premium      Elastic Premium (default, SKU --plan-sku, EP1). Always warm; B2C calls
               the API inside a sign-in and gives each call 10 s (one retry), so a
               cold start is paid by the user.
  flex         Flex Consumption. Supports custom handlers; HTTPS, TLS and client
               certificate settings go by ARM PATCH (az resource patch), as ARM
               refuses what az functionapp config set writes back on Flex; the
               script verifies that client certificates really are Required
               afterwards and stops if not.
  consumption  Linux Consumption. Cheapest, cold starts; the plan is retired on
               2028-09-30.
With --key-vault the Authy key is stored in Key Vault and the app setting is a
Key Vault reference read through the app's managed identity; without it the key
is a plain app setting.  The caller needs Owner or User Access Administrator on
the resource group to create the role assignments.  A new role assignment takes
minutes to apply: the script then waits until App Service reports the reference
Resolved (KEYVAULT_REFERENCE_ATTEMPTS checks, default 18, DEPLOY_RETRY_DELAY
seconds apart, default 10; the app is restarted every sixth check, since App
Service reads a reference again only on a restart), restarts the app, and stops
saying so if it never resolves.
Re-running (to rotate thumbprints, say) changes only what is given: optional
settings left out keep their current values, AUTHY_API_KEY may be left unset
when the app already has one, and a Key Vault reference already in place is
kept (with a warning if AUTHY_API_KEY is set without --key-vault).  Give the
same --plan-type and --key-vault as the first run.
The push limits keep their state (push times, pauses, approval request ids and
sign-in codes; no personal data) as blobs in the container
PUSH_LIMITS_CONTAINER of the app's own storage account (the
AzureWebJobsStorage connection); a lifecycle management rule of that account
deletes them --push-limits-expiry-days after their last change (the account's
other lifecycle rules are kept).
With --identity-based-storage the Functions host and the handler reach that
account with the app's managed identity instead of a connection string: the
identity gets Storage Blob Data Owner on the account, AzureWebJobsStorage__accountName
is set, and only then is the AzureWebJobsStorage connection string removed
(after STORAGE_ROLE_WAIT_SECONDS, default 600, when the role is new: Azure RBAC
changes take up to 10 minutes to apply)."

opt --resource-group RESOURCE_GROUP "" "Resource group (created if missing)."
opt --location LOCATION "" "Azure region, e.g. westeurope."
opt --function-app FUNCTION_APP "" "Function App name (globally unique: <name>.azurewebsites.net)."
opt --storage-account STORAGE_ACCOUNT "" "Storage account name for the Functions host (3-24 lowercase letters and digits)."
opt --plan-type PLAN_TYPE premium "Hosting plan: premium, flex or consumption (see above)."
opt --plan-name PLAN_NAME "" "Premium plan name (default: <function-app>-plan)."
opt --plan-sku PLAN_SKU EP1 "Premium plan SKU: EP1, EP2 or EP3."
opt --key-vault KEY_VAULT "" "Key Vault for the Authy API key (created if missing, RBAC mode). Recommended."
opt --authy-secret-name AUTHY_SECRET_NAME authy-api-key "Secret name in the Key Vault."
opt --client-cert-thumbprints CLIENT_CERT_THUMBPRINTS "" "SHA-1 thumbprints the handler accepts, separated by ',' or ';' (see deploy/client-cert.sh)."
opt --client-cert-subject CLIENT_CERT_SUBJECT "" "Optional: CLIENT_CERT_SUBJECT for the handler (expected certificate subject)."
opt --client-cert-issuer CLIENT_CERT_ISSUER "" "Optional: CLIENT_CERT_ISSUER for the handler (expected certificate issuer)."
opt --client-cert-ca CLIENT_CERT_CA "" "Optional: CLIENT_CERT_CA for the handler (CA the client certificate must chain to): PEM text, or a local PEM file whose text is stored."
opt --approval-wait-seconds APPROVAL_WAIT_SECONDS "" "Optional: seconds the handler waits within one B2C call, 1-8 (handler default 7): B2C gives a custom policy's REST call 10 s and one retry."
opt --approval-poll-interval-ms APPROVAL_POLL_INTERVAL_MS "" "Optional: Authy status poll interval in ms, 250-60000."
opt --authy-api-url AUTHY_API_URL "" "Optional: Authy API base URL (handler default when empty)."
opt --authy-approval-message AUTHY_APPROVAL_MESSAGE "" "Optional: text of the push approval request."
opt --authy-approval-ttl-seconds AUTHY_APPROVAL_TTL_SECONDS "" "Optional: lifetime of an approval request in seconds, 10-86400."
opt --authy-send-install-link-via-sms AUTHY_SEND_INSTALL_LINK_VIA_SMS "" "Optional: true or false, whether Authy texts a newly enrolled user a link to install the Authy app (handler default true)."
opt --push-limit-burst-count PUSH_LIMIT_BURST_COUNT "" "Optional: pushes per authy id within the burst window, 1-100000 (handler default 3)."
opt --push-limit-burst-window-seconds PUSH_LIMIT_BURST_WINDOW_SECONDS "" "Optional: the burst window in seconds, 1-86400 (handler default 600)."
opt --push-limit-daily-count PUSH_LIMIT_DAILY_COUNT "" "Optional: pushes per authy id within the daily window, 1-100000 (handler default 10)."
opt --push-limit-daily-window-seconds PUSH_LIMIT_DAILY_WINDOW_SECONDS "" "Optional: the daily window in seconds, 1-604800 (handler default 86400)."
opt --push-pause-after-denial-seconds PUSH_PAUSE_AFTER_DENIAL_SECONDS "" "Optional: seconds new pushes for an authy id pause after its user denies one, 0-86400 (handler default 900)."
opt --push-limits-on-store-failure PUSH_LIMITS_ON_STORE_FAILURE "" "Optional: open or closed, what CreateApprovalRequest does while the storage account cannot be reached (handler default open: send the push, log an ERROR line)."
opt --push-limits-container PUSH_LIMITS_CONTAINER "" "Optional: blob container of the push limits' state (handler default b2c-authy-push-limits); also names the container the lifecycle rule cleans."
opt --push-limits-expiry-days PUSH_LIMITS_EXPIRY_DAYS 7 "Days after its last change that the lifecycle rule deletes a push-limits blob, 2-3650 (the daily window is 24 h)."
flag --identity-based-storage IDENTITY_BASED_STORAGE "Reach the storage account with the app's managed identity (AzureWebJobsStorage__accountName) and remove the AzureWebJobsStorage connection string."
env_opt AUTHY_API_KEY "Twilio Authy API key. Required unless --key-vault already holds the secret or the app already has the setting."
parse_args "$@"

require RESOURCE_GROUP LOCATION FUNCTION_APP STORAGE_ACCOUNT CLIENT_CERT_THUMBPRINTS
case "$PLAN_TYPE" in
premium | flex | consumption) ;;
*) die "--plan-type must be premium, flex or consumption, not '$PLAN_TYPE'" ;;
esac
PLAN_NAME="${PLAN_NAME:-$FUNCTION_APP-plan}"
[[ "$STORAGE_ACCOUNT" =~ ^[a-z0-9]{3,24}$ ]] ||
    die "storage account name '$STORAGE_ACCOUNT' must be 3-24 lowercase letters and digits"

# The handler refuses to start with a value outside its limits, so check them
# here, before anything changes: check_range FLAG VALUE MIN MAX UNIT.
check_range() {
    local flag="$1" value="$2" min="$3" max="$4" unit="$5"
    [[ -z "$value" ]] && return 0
    if [[ ! "$value" =~ ^[0-9]{1,9}$ ]] || ((10#$value < min || 10#$value > max)); then
        die "$flag must be a whole number of $unit from $min to $max, not '$value'"
    fi
}
# 1-8 s: the handler's limits (config::MAX_APPROVAL_WAIT_SECONDS), 2 s below
# the 10 s B2C gives a custom policy's REST call before its one retry (2 tries
# in all) since April 2025: MicrosoftDocs/azure-docs PRs #126324 (30 s and 3
# tries became 10 s and 2 in api-connectors-overview.md) and #126864 ("10
# seconds for custom policies and 5 seconds for user flows").  The 30 s still
# in custom-policy-rest-api-intro.md is stale.  tests/it/deploy/provision.rs
# ties this line to the handler's constants.
check_range --approval-wait-seconds "$APPROVAL_WAIT_SECONDS" 1 8 seconds
check_range --approval-poll-interval-ms "$APPROVAL_POLL_INTERVAL_MS" 250 60000 milliseconds
check_range --authy-approval-ttl-seconds "$AUTHY_APPROVAL_TTL_SECONDS" 10 86400 seconds
# The push limits (config.rs, push_limit_settings).
check_range --push-limit-burst-count "$PUSH_LIMIT_BURST_COUNT" 1 100000 pushes
check_range --push-limit-burst-window-seconds "$PUSH_LIMIT_BURST_WINDOW_SECONDS" 1 86400 seconds
check_range --push-limit-daily-count "$PUSH_LIMIT_DAILY_COUNT" 1 100000 pushes
check_range --push-limit-daily-window-seconds "$PUSH_LIMIT_DAILY_WINDOW_SECONDS" 1 604800 seconds
check_range --push-pause-after-denial-seconds "$PUSH_PAUSE_AFTER_DENIAL_SECONDS" 0 86400 seconds
if [[ -n "$PUSH_LIMITS_ON_STORE_FAILURE" ]]; then
    case "${PUSH_LIMITS_ON_STORE_FAILURE,,}" in
    open | closed) ;;
    *) die "--push-limits-on-store-failure must be open or closed, not '$PUSH_LIMITS_ON_STORE_FAILURE'" ;;
    esac
fi
# The handler accepts true or false in any case (config.rs).
if [[ -n "$AUTHY_SEND_INSTALL_LINK_VIA_SMS" ]]; then
    case "${AUTHY_SEND_INSTALL_LINK_VIA_SMS,,}" in
    true | false) ;;
    *) die "--authy-send-install-link-via-sms must be true or false, not '$AUTHY_SEND_INSTALL_LINK_VIA_SMS'" ;;
    esac
fi

# Blob container names: 3-63 lowercase letters, digits and single hyphens,
# starting and ending with a letter or digit (MS docs "Naming and referencing
# containers, blobs, and metadata").
if [[ -n "$PUSH_LIMITS_CONTAINER" ]] &&
    { [[ ! "$PUSH_LIMITS_CONTAINER" =~ ^[a-z0-9]([a-z0-9-]{1,61})[a-z0-9]$ ]] || [[ "$PUSH_LIMITS_CONTAINER" == *--* ]]; }; then
    die "--push-limits-container must be a blob container name (3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit), not '$PUSH_LIMITS_CONTAINER'"
fi
# Not a handler setting (check_range is for those): the lifecycle rule's age.
# At least 2 days, so that no blob is deleted while its 24 h daily window
# (PUSH_LIMIT_DAILY_WINDOW_SECONDS, default 86400) may still count it; the
# lifecycle engine runs about once a day, so a blob lives up to a day longer.
if [[ ! "$PUSH_LIMITS_EXPIRY_DAYS" =~ ^[0-9]{1,9}$ ]] || ((10#$PUSH_LIMITS_EXPIRY_DAYS < 2 || 10#$PUSH_LIMITS_EXPIRY_DAYS > 3650)); then
    die "--push-limits-expiry-days must be a whole number of days from 2 to 3650, not '$PUSH_LIMITS_EXPIRY_DAYS'"
fi
PUSH_LIMITS_EXPIRY_DAYS="$((10#$PUSH_LIMITS_EXPIRY_DAYS))"
# A blob must outlive every window that reads it, by a day (the lifecycle engine's
# pace): the longest of the windows given here or the handler's defaults.
longest_s=86400
for window in "$PUSH_LIMIT_BURST_WINDOW_SECONDS" "$PUSH_LIMIT_DAILY_WINDOW_SECONDS" "$PUSH_PAUSE_AFTER_DENIAL_SECONDS"; do
    [[ -n "$window" ]] && ((10#$window > longest_s)) && longest_s="$((10#$window))"
done
if ((PUSH_LIMITS_EXPIRY_DAYS * 86400 < longest_s + 86400)); then
    die "--push-limits-expiry-days $PUSH_LIMITS_EXPIRY_DAYS would delete push-limits state that a ${longest_s}s window still reads: give at least $(((longest_s + 86400 + 86399) / 86400)) days"
fi

# The wait page of the B2C policies must outlast every approval request it may
# send: each Continue while pending is a failed validation that counts against
# its setting.retryLimit, which the policies take from AuthyWaitRetryLimit. One
# request takes 1 call (the push, answered at once with its code) + one per wait
# budget until it expires; the page may send a new one after each expiry, up to
# the burst limit (docs/policies.md, "The wait page and B2C's retry limit";
# tests/it/policy_contract.rs checks the defaults with the same formula and margin).
if [[ -n "$APPROVAL_WAIT_SECONDS" || -n "$AUTHY_APPROVAL_TTL_SECONDS" || -n "$PUSH_LIMIT_BURST_COUNT" ]]; then
    wait_s="$((10#${APPROVAL_WAIT_SECONDS:-7}))" ttl_s="$((10#${AUTHY_APPROVAL_TTL_SECONDS:-120}))"
    burst="$((10#${PUSH_LIMIT_BURST_COUNT:-3}))"
    calls=$((1 + (ttl_s + wait_s - 1) / wait_s))
    log "with APPROVAL_WAIT_SECONDS=$wait_s, AUTHY_APPROVAL_TTL_SECONDS=$ttl_s and PUSH_LIMIT_BURST_COUNT=$burst (the handler's default where not given) one approval request takes up to $calls calls and a wait page up to $burst requests: render the policies with AuthyWaitRetryLimit $((burst * calls + 6)) or more, and a hosted authy-wait.html needs MAX_CONTINUES of at least $calls and no more than that limit allows"
fi

# CLIENT_CERT_CA: the handler reads a path on the Function App, where a path
# from this machine means nothing, so a local file is stored as its PEM text.
PEM_MARKER="-----BEGIN CERTIFICATE-----"
ca_source=""
if [[ -n "$CLIENT_CERT_CA" && "$CLIENT_CERT_CA" != *"$PEM_MARKER"* ]]; then
    [[ -f "$CLIENT_CERT_CA" ]] ||
        die "--client-cert-ca must be PEM text (with '$PEM_MARKER') or a local PEM file; '$CLIENT_CERT_CA' is neither"
    ca_source="$CLIENT_CERT_CA"
    CLIENT_CERT_CA="$(<"$ca_source")" || die "could not read $ca_source"
    [[ "$CLIENT_CERT_CA" == *"$PEM_MARKER"* ]] ||
        die "$ca_source holds no PEM certificate ('$PEM_MARKER'); convert a DER file with: openssl x509 -inform der -in $ca_source -out ca.pem"
fi

# Thumbprints as the handler compares them: upper-case hex, no separators.
# The handler accepts ',' and ';' between them; the setting is written with ','.
normalize_thumbprints() {
    local list="$1" out="" t
    local -a parts
    IFS=',;' read -r -a parts <<<"$list"
    for t in "${parts[@]}"; do
        t="${t//[[:space:]:]/}"
        [[ -n "$t" ]] || continue
        t="${t^^}"
        [[ "$t" =~ ^[0-9A-F]{40}$ ]] || die "'$t' is not a SHA-1 thumbprint (40 hex digits)"
        out+="${out:+,}$t"
    done
    [[ -n "$out" ]] || die "--client-cert-thumbprints is empty"
    printf '%s' "$out"
}
CLIENT_CERT_THUMBPRINTS="$(normalize_thumbprints "$CLIENT_CERT_THUMBPRINTS")"

require_az
make_tmp_dir
az_rg=(--resource-group "$RESOURCE_GROUP")
# Microsoft.Web API version for the calls that name one (az resource patch,
# az rest): a stable version that has Flex Consumption (functionAppConfig).
WEB_API_VERSION=2024-04-01

subscription="$(capture '<subscription-id>' az account show --query id --output tsv)" ||
    die "not signed in to Azure: run 'az login' (and 'az account set --subscription ...')"
log "subscription $subscription"

# `create` is not safe to repeat for every resource, so look first.
# Called as an `if` condition, where `set -e` does not apply: fail explicitly.
exists_in_group() { # exists_in_group "functionapp plan" NAME
    local count
    # shellcheck disable=SC2086 # $1 is a command group such as "functionapp plan"
    count="$(capture 0 az $1 list "${az_rg[@]}" --query "length([?name=='$2'])" --output tsv)" ||
        die "could not list $1 resources in $RESOURCE_GROUP"
    [[ "$count" != 0 ]]
}

# On a re-run, what AUTHY_API_KEY holds now decides what to write: a Key
# Vault reference is never replaced by a plain key, and an existing key is
# kept when AUTHY_API_KEY is not given.  The query returns counts only, so
# the key itself never reaches this script.
app_exists=0
current_key=none # none, plain or keyvault
group_exists="$(capture true az group exists --name "$RESOURCE_GROUP" --output tsv)" ||
    die "could not check resource group $RESOURCE_GROUP"
if [[ "$group_exists" == true ]] && exists_in_group functionapp "$FUNCTION_APP"; then
    app_exists=1
    key_state="$(capture '0|0' az functionapp config appsettings list --name "$FUNCTION_APP" "${az_rg[@]}" \
        --query "join('|', [to_string(length([?name=='AUTHY_API_KEY'])), to_string(length([?name=='AUTHY_API_KEY' && starts_with(to_string(value), '@Microsoft.KeyVault(')]))])" \
        --output tsv)" || die "could not read the app settings of $FUNCTION_APP"
    IFS='|' read -r key_count keyvault_count <<<"$key_state"
    if [[ "$keyvault_count" != 0 ]]; then
        current_key=keyvault
    elif [[ "$key_count" != 0 ]]; then
        current_key=plain
    fi
fi

# What to do with AUTHY_API_KEY (empty authy_key_setting: leave it as it is).
write_plain_key=0
if [[ -z "$KEY_VAULT" ]]; then
    case "$current_key/${AUTHY_API_KEY:+given}" in
    keyvault/given)
        warn "$FUNCTION_APP reads AUTHY_API_KEY from Key Vault: keeping that reference and ignoring AUTHY_API_KEY; to store a new key, re-run with --key-vault (a new secret version)"
        ;;
    keyvault/) log "keeping the Key Vault reference in AUTHY_API_KEY" ;;
    plain/) log "AUTHY_API_KEY not set: keeping the app's current AUTHY_API_KEY" ;;
    */given) write_plain_key=1 ;;
    *) die "set AUTHY_API_KEY in the environment (or give --key-vault with an existing '$AUTHY_SECRET_NAME' secret)" ;;
    esac
fi

run az group create --name "$RESOURCE_GROUP" --location "$LOCATION" --output none

run az storage account create --name "$STORAGE_ACCOUNT" "${az_rg[@]}" --location "$LOCATION" \
    --sku Standard_LRS --kind StorageV2 --min-tls-version TLS1_2 \
    --allow-blob-public-access false --https-only true --output none

# Old push-limits state expires: one lifecycle management rule (MS docs
# "lifecycle-management-overview") deletes the block blobs of the container
# some days after their last modification.  A storage account has one
# management policy holding all its rules, and `management-policy create`
# replaces it whole: read the admin's other rules first and write them back
# beside ours.  An account without a policy answers ManagementPolicyNotFound.
LIFECYCLE_RULE=b2c-authy-push-limits-expiry
limits_container="${PUSH_LIMITS_CONTAINER:-b2c-authy-push-limits}"
policy_error="$TMP_DIR/management-policy-show.err"
if other_rules="$(capture '[]' az storage account management-policy show --account-name "$STORAGE_ACCOUNT" "${az_rg[@]}" \
    --query "policy.rules[?name!='$LIFECYCLE_RULE']" --output json 2>"$policy_error")"; then
    :
elif grep -q ManagementPolicyNotFound "$policy_error"; then
    other_rules='[]'
else
    cat "$policy_error" >&2
    die "could not read the lifecycle management policy of storage account $STORAGE_ACCOUNT"
fi
# The other rules as JSON array elements: the array without its brackets.
other_rules="$(printf '%s' "$other_rules" | sed -e '1s/^[[:space:]]*\[//' -e '$s/\][[:space:]]*$//')"
[[ "$other_rules" =~ [^[:space:]] ]] || other_rules=""
((${#other_rules} == 0)) || log "keeping the other lifecycle rules of storage account $STORAGE_ACCOUNT"
policy_file="$TMP_DIR/management-policy.json"
cat >"$policy_file" <<JSON
{
  "rules": [
    {
      "enabled": true,
      "name": "$LIFECYCLE_RULE",
      "type": "Lifecycle",
      "definition": {
        "actions": {
          "baseBlob": {"delete": {"daysAfterModificationGreaterThan": $PUSH_LIMITS_EXPIRY_DAYS}}
        },
        "filters": {"blobTypes": ["blockBlob"], "prefixMatch": ["$limits_container/"]}
      }
    }${other_rules:+,
$other_rules}
  ]
}
JSON
if is_dry_run; then
    printf '#   lifecycle rule %s: delete blobs under %s/ %s days after their last change\n' \
        "$LIFECYCLE_RULE" "$limits_container" "$PUSH_LIMITS_EXPIRY_DAYS" >&3
fi
run az storage account management-policy create --account-name "$STORAGE_ACCOUNT" "${az_rg[@]}" \
    --policy "@$policy_file" --output none

plan_args=()
case "$PLAN_TYPE" in
premium)
    if exists_in_group "functionapp plan" "$PLAN_NAME"; then
        log "premium plan $PLAN_NAME exists"
    else
        run az functionapp plan create --name "$PLAN_NAME" "${az_rg[@]}" --location "$LOCATION" \
            --sku "$PLAN_SKU" --is-linux true --output none
    fi
    plan_args=(--plan "$PLAN_NAME" --os-type Linux --functions-version 4)
    ;;
consumption)
    plan_args=(--consumption-plan-location "$LOCATION" --os-type Linux --functions-version 4)
    ;;
flex)
    # Flex Consumption is Linux-only and always Functions v4, so the options
    # that choose those for the classic plans are left out.
    plan_args=(--flexconsumption-location "$LOCATION")
    ;;
esac

if ((app_exists)); then
    log "function app $FUNCTION_APP exists; updating its configuration"
else
    run az functionapp create --name "$FUNCTION_APP" "${az_rg[@]}" \
        --storage-account "$STORAGE_ACCOUNT" --runtime custom "${plan_args[@]}" --output none
fi

principal_id="$(capture '<principal-id>' az functionapp identity assign --name "$FUNCTION_APP" "${az_rg[@]}" \
    --query principalId --output tsv)"

# ensure_role PRINCIPAL_ID PRINCIPAL_TYPE ROLE SCOPE; sets role_created=1
# when it had to create the assignment.
role_created=0
ensure_role() {
    local count
    count="$(capture 0 az role assignment list --scope "$4" \
        --query "length([?principalId=='$1' && roleDefinitionName=='$3'])" --output tsv)" ||
        die "could not list the role assignments of $4"
    if [[ "$count" == 0 ]]; then
        run az role assignment create --assignee-object-id "$1" --assignee-principal-type "$2" \
            --role "$3" --scope "$4" --output none
        role_created=1
    fi
}

# Object id and type of whoever runs this script, to let them write the secret.
signed_in_principal() {
    local type app_id
    type="$(capture user az account show --query user.type --output tsv)"
    if [[ "$type" == user ]]; then
        printf 'User '
        capture '<your-object-id>' az ad signed-in-user show --query id --output tsv
    else
        app_id="$(capture '<your-app-id>' az account show --query user.name --output tsv)"
        printf 'ServicePrincipal '
        capture '<your-object-id>' az ad sp show --id "$app_id" --query id --output tsv
    fi
}

# Identity-based host storage (MS docs "functions-reference", "Connecting to
# host storage with an identity"; includes/functions-azurewebjobsstorage-
# permissions.md): "The Storage Blob Data Owner role covers the basic needs of
# Functions host storage"; management roles like Owner are not enough.  The
# handler's push limits (container create, blob read and conditional writes)
# need no more than that.  A system-assigned identity needs only
# __accountName: __credential=managedidentity and __clientId are for a
# user-assigned one.
storage_role_created=0
if [[ "${IDENTITY_BASED_STORAGE:-0}" == 1 ]]; then
    storage_id="$(capture '<storage-account-id>' az storage account show --name "$STORAGE_ACCOUNT" "${az_rg[@]}" \
        --query id --output tsv)"
    role_created=0
    ensure_role "$principal_id" ServicePrincipal "Storage Blob Data Owner" "$storage_id"
    storage_role_created="$role_created"
fi

if [[ -n "$KEY_VAULT" ]]; then
    if exists_in_group keyvault "$KEY_VAULT"; then
        log "key vault $KEY_VAULT exists"
    else
        run az keyvault create --name "$KEY_VAULT" "${az_rg[@]}" --location "$LOCATION" \
            --enable-rbac-authorization true --output none
    fi
    vault_id="$(capture '<key-vault-id>' az keyvault show --name "$KEY_VAULT" --query id --output tsv)"
    vault_uri="$(capture "https://$KEY_VAULT.vault.azure.net/" az keyvault show --name "$KEY_VAULT" \
        --query properties.vaultUri --output tsv)"
    if [[ -n "${AUTHY_API_KEY:-}" ]]; then
        caller="$(signed_in_principal)"
        read -r caller_type caller_id <<<"$caller"
        ensure_role "$caller_id" "$caller_type" "Key Vault Secrets Officer" "$vault_id"
        # The key goes through a private file, never the command line.
        # Retried: a new role assignment takes a few minutes to apply.
        printf '%s' "$AUTHY_API_KEY" >"$TMP_DIR/authy-api-key"
        retry 12 az keyvault secret set --vault-name "$KEY_VAULT" --name "$AUTHY_SECRET_NAME" \
            --file "$TMP_DIR/authy-api-key" --encoding utf-8 --output none
    else
        log "AUTHY_API_KEY not set: using the existing secret '$AUTHY_SECRET_NAME' in $KEY_VAULT"
    fi
    role_created=0
    ensure_role "$principal_id" ServicePrincipal "Key Vault Secrets User" "$vault_id"
    app_role_created="$role_created"
    # Versionless URI: a new secret version is picked up without redeploying.
    authy_key_setting="@Microsoft.KeyVault(SecretUri=${vault_uri%/}/secrets/$AUTHY_SECRET_NAME/)"
elif ((write_plain_key)); then
    warn "no --key-vault: the Authy API key is stored as a plain app setting"
    authy_key_setting="$AUTHY_API_KEY"
else
    authy_key_setting=""
fi

# App settings go through a JSON file (`--settings @file`) so the Authy key
# never appears in the process list.
settings=()
add_setting() { [[ -z "$2" ]] || settings+=("$1" "$2"); }
if [[ "$PLAN_TYPE" != flex ]]; then
    # Flex Consumption takes the runtime from the app's configuration and
    # rejects FUNCTIONS_WORKER_RUNTIME as an app setting.
    add_setting FUNCTIONS_WORKER_RUNTIME custom
fi
add_setting AUTHY_API_KEY "$authy_key_setting"
add_setting AUTHY_API_URL "$AUTHY_API_URL"
add_setting AUTHY_APPROVAL_MESSAGE "$AUTHY_APPROVAL_MESSAGE"
add_setting AUTHY_APPROVAL_TTL_SECONDS "$AUTHY_APPROVAL_TTL_SECONDS"
add_setting AUTHY_SEND_INSTALL_LINK_VIA_SMS "$AUTHY_SEND_INSTALL_LINK_VIA_SMS"
add_setting APPROVAL_WAIT_SECONDS "$APPROVAL_WAIT_SECONDS"
add_setting APPROVAL_POLL_INTERVAL_MS "$APPROVAL_POLL_INTERVAL_MS"
add_setting CLIENT_CERT_MODE required
add_setting CLIENT_CERT_THUMBPRINTS "$CLIENT_CERT_THUMBPRINTS"
add_setting CLIENT_CERT_SUBJECT "$CLIENT_CERT_SUBJECT"
add_setting CLIENT_CERT_ISSUER "$CLIENT_CERT_ISSUER"
add_setting CLIENT_CERT_CA "$CLIENT_CERT_CA"
add_setting PUSH_LIMIT_BURST_COUNT "$PUSH_LIMIT_BURST_COUNT"
add_setting PUSH_LIMIT_BURST_WINDOW_SECONDS "$PUSH_LIMIT_BURST_WINDOW_SECONDS"
add_setting PUSH_LIMIT_DAILY_COUNT "$PUSH_LIMIT_DAILY_COUNT"
add_setting PUSH_LIMIT_DAILY_WINDOW_SECONDS "$PUSH_LIMIT_DAILY_WINDOW_SECONDS"
add_setting PUSH_PAUSE_AFTER_DENIAL_SECONDS "$PUSH_PAUSE_AFTER_DENIAL_SECONDS"
add_setting PUSH_LIMITS_ON_STORE_FAILURE "$PUSH_LIMITS_ON_STORE_FAILURE"
add_setting PUSH_LIMITS_CONTAINER "$PUSH_LIMITS_CONTAINER"
if [[ "${IDENTITY_BASED_STORAGE:-0}" == 1 ]]; then
    # Written beside the connection string, which the host keeps using while
    # both are there; the connection string goes only further down.
    add_setting AzureWebJobsStorage__accountName "$STORAGE_ACCOUNT"
fi

settings_file="$TMP_DIR/appsettings.json"
{
    printf '{'
    for ((i = 0; i < ${#settings[@]}; i += 2)); do
        ((i == 0)) || printf ','
        printf '\n  "%s": "%s"' "${settings[i]}" "$(json_escape "${settings[i + 1]}")"
    done
    printf '\n}\n'
} >"$settings_file"
if is_dry_run; then
    for ((i = 0; i < ${#settings[@]}; i += 2)); do
        value="${settings[i + 1]}"
        [[ "${settings[i]}" == AUTHY_API_KEY && -z "$KEY_VAULT" ]] && value="<AUTHY_API_KEY>"
        [[ "${settings[i]}" == CLIENT_CERT_CA ]] && value="<PEM certificate${ca_source:+ from $ca_source}>"
        printf '#   %s=%s\n' "${settings[i]}" "$value" >&3
    done
fi
# --output none: the command would otherwise print every setting, key included.
run az functionapp config appsettings set --name "$FUNCTION_APP" "${az_rg[@]}" \
    --settings "@$settings_file" --output none

# Client certificates Required with no exclusion paths: the front end refuses
# any TLS connection without a certificate, and the handler then checks the
# forwarded certificate against CLIENT_CERT_THUMBPRINTS.
if [[ "$PLAN_TYPE" == flex ]]; then
    # Flex Consumption: `az functionapp config set` reads the whole site
    # configuration and writes it back, and ARM refuses several of its
    # properties on Flex sites (FtpsState, Use32BitWorkerProcess,
    # NetFrameworkVersion, ...: "for Flex Consumption sites is invalid",
    # Azure/azure-cli#31414); `az functionapp update --set` likewise PUTs the
    # whole site.  An ARM PATCH (`az resource patch`, which sends
    # {"properties": ...}) carries only the properties named here.  Flex has
    # no FTP(S) publishing, so ftpsState is neither set nor checked.
    site_id="/subscriptions/$subscription/resourceGroups/$RESOURCE_GROUP/providers/Microsoft.Web/sites/$FUNCTION_APP"
    run az resource patch --ids "$site_id" --api-version "$WEB_API_VERSION" \
        --properties '{"httpsOnly": true, "clientCertEnabled": true, "clientCertMode": "Required"}' --output none
    # Reports show Flex refusing updates of config/web for properties it stores
    # itself (Azure/azure-functions-host#10643: "Site.SiteConfig.
    # FunctionAppScaleLimit for Flex Consumption sites is invalid"), and new
    # apps already default to TLS 1.2: patch only when the app is below it.
    current_tls="$(capture 1.2 az functionapp config show --name "$FUNCTION_APP" "${az_rg[@]}" \
        --query minTlsVersion --output tsv)"
    if [[ ! "$current_tls" =~ ^1\.[2-9]$ ]]; then
        run az resource patch --ids "$site_id/config/web" --api-version "$WEB_API_VERSION" \
            --properties '{"minTlsVersion": "1.2"}' --output none ||
            die "$FUNCTION_APP reports minTlsVersion=$current_tls and ARM refused to set 1.2 (the message above); set Minimum Inbound TLS Version to 1.2 in the portal (Settings > Configuration > General settings), then run this script again"
    fi
else
    run az functionapp update --name "$FUNCTION_APP" "${az_rg[@]}" \
        --set httpsOnly=true --set clientCertEnabled=true --set clientCertMode=Required --output none
    run az functionapp config set --name "$FUNCTION_APP" "${az_rg[@]}" \
        --min-tls-version 1.2 --ftps-state Disabled --output none
fi

# Read the settings back: a plan that ignores them (or an exclusion path left
# from earlier) would silently expose the API to any caller.
if [[ "$PLAN_TYPE" == premium ]]; then
    not_applied="run the script again; if it persists, check the app's TLS/SSL and certificate settings in the portal."
else
    not_applied="If the $PLAN_TYPE plan does not support these settings, use --plan-type premium."
fi
# `az functionapp show` prints a Flex app as the raw ARM resource, with these
# fields under `properties` (azure-cli appservice custom.py, show_functionapp:
# get_raw_functionapp for Flex), and other apps flattened: read both shapes.
state="$(capture 'true|true|Required|null' az functionapp show --name "$FUNCTION_APP" "${az_rg[@]}" \
    --query "join('|', [to_string(not_null(properties.httpsOnly, httpsOnly)), to_string(not_null(properties.clientCertEnabled, clientCertEnabled)), to_string(not_null(properties.clientCertMode, clientCertMode)), to_string(not_null(properties.clientCertExclusionPaths, clientCertExclusionPaths))])" \
    --output tsv)"
IFS='|' read -r https_only cert_enabled cert_mode cert_exclusions <<<"$state"
if [[ "$https_only" != true || "$cert_enabled" != true || "$cert_mode" != Required ]]; then
    die "$FUNCTION_APP reports httpsOnly=$https_only clientCertEnabled=$cert_enabled clientCertMode=$cert_mode; expected true/true/Required. $not_applied"
fi
if [[ -n "$cert_exclusions" && "$cert_exclusions" != null ]]; then
    die "$FUNCTION_APP has client certificate exclusion paths '$cert_exclusions'; remove them (portal: Configuration > General settings) so every path requires a certificate"
fi
site_config="$(capture '1.2|Disabled' az functionapp config show --name "$FUNCTION_APP" "${az_rg[@]}" \
    --query "join('|', [to_string(minTlsVersion), to_string(ftpsState)])" --output tsv)"
IFS='|' read -r min_tls ftps_state <<<"$site_config"
if [[ ! "$min_tls" =~ ^1\.[2-9]$ ]]; then
    die "$FUNCTION_APP reports minTlsVersion=$min_tls; expected 1.2 (or later). $not_applied"
fi
if [[ "$PLAN_TYPE" != flex && "$ftps_state" != Disabled ]]; then
    die "$FUNCTION_APP reports ftpsState=$ftps_state; expected Disabled. $not_applied"
fi

# Identity-based storage, last step: remove the connection string, once the
# identity's role can have applied ("it can take up to 10 minutes for changes
# to take effect", MS docs "troubleshoot Azure RBAC"), so that the app never
# runs without a way to its storage.  A re-run finds it gone and does nothing.
if [[ "${IDENTITY_BASED_STORAGE:-0}" == 1 ]]; then
    connection_count="$(capture 1 az functionapp config appsettings list --name "$FUNCTION_APP" "${az_rg[@]}" \
        --query "length([?name=='AzureWebJobsStorage'])" --output tsv)" ||
        die "could not read the app settings of $FUNCTION_APP"
    if [[ "$connection_count" != 0 ]]; then
        if ((storage_role_created)); then
            wait_s="${STORAGE_ROLE_WAIT_SECONDS:-600}"
            log "waiting ${wait_s}s for the new Storage Blob Data Owner role of $FUNCTION_APP to apply before removing the AzureWebJobsStorage connection string (STORAGE_ROLE_WAIT_SECONDS)"
            is_dry_run || sleep "$wait_s"
        fi
        # --output none: the command would otherwise print every setting.
        run az functionapp config appsettings delete --name "$FUNCTION_APP" "${az_rg[@]}" \
            --setting-names AzureWebJobsStorage --output none
        log "$FUNCTION_APP reaches storage account $STORAGE_ACCOUNT with its managed identity (AzureWebJobsStorage__accountName); the connection string is removed"
    else
        log "$FUNCTION_APP already reaches its storage without a connection string"
    fi
fi

# With --key-vault the app reads AUTHY_API_KEY through its managed identity.
# Until a new role assignment applies (it can take minutes), App Service
# passes the literal @Microsoft.KeyVault(...) text instead, which the handler
# refuses at startup.  So wait, boundedly, until App Service reports the
# reference Resolved (the status the portal shows under Configuration; ARM
# operation WebApps_GetAppSettingKeyVaultReference), then restart the app if
# it may have started before that.
if [[ -n "$KEY_VAULT" ]]; then
    reference_uri="/subscriptions/$subscription/resourceGroups/$RESOURCE_GROUP/providers/Microsoft.Web/sites/$FUNCTION_APP/config/configreferences/appsettings/AUTHY_API_KEY?api-version=$WEB_API_VERSION"
    attempts="${KEYVAULT_REFERENCE_ATTEMPTS:-18}"
    for ((attempt = 1; ; attempt++)); do
        ref_status="$(capture Resolved az rest --method get --uri "$reference_uri" \
            --query properties.status --output tsv)" || ref_status="unknown (could not be read)"
        [[ "$ref_status" == Resolved ]] && break
        if ((attempt >= attempts)); then
            die "App Service still reports the Key Vault reference AUTHY_API_KEY as '$ref_status' after $attempts checks ${RETRY_DELAY}s apart. Everything else is provisioned, but the handler will not start until the reference resolves: the app's identity needs 'Key Vault Secrets User' on $KEY_VAULT (a new role assignment can take several minutes to apply) and the secret '$AUTHY_SECRET_NAME' must exist. Once it does, restart the app (az functionapp restart --resource-group $RESOURCE_GROUP --name $FUNCTION_APP): App Service reads a Key Vault reference again only on a restart or a settings change."
        fi
        log "Key Vault reference AUTHY_API_KEY: status '$ref_status'; waiting for the role assignment to apply (check $attempt of $attempts, next in ${RETRY_DELAY}s)"
        # App Service caches a reference's value and status and reads the vault
        # again on a restart or a settings change (MS docs
        # "app-service-key-vault-references"): restart every sixth check so that
        # a role that has applied in the meantime is seen.
        if ((attempt % 6 == 0)); then
            run az functionapp restart --name "$FUNCTION_APP" "${az_rg[@]}" --output none
        fi
        sleep "$RETRY_DELAY"
    done
    log "Key Vault reference AUTHY_API_KEY resolved"
    if ((attempt > 1 || app_role_created)); then
        # The restart that the settings change caused may have come too early.
        log "restarting $FUNCTION_APP so that the handler starts with the secret"
        run az functionapp restart --name "$FUNCTION_APP" "${az_rg[@]}" --output none
    fi
fi

if is_dry_run; then
    log "dry run complete: nothing was changed"
    exit 0
fi
log "provisioned $FUNCTION_APP ($PLAN_TYPE plan): HTTPS only, TLS 1.2, client certificate Required"
log "next: deploy/package.sh && deploy/deploy-code.sh --resource-group $RESOURCE_GROUP --function-app $FUNCTION_APP"
