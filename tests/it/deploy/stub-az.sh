#!/usr/bin/env bash
# Stub of the Azure CLI for the deploy-script tests (tests/it/deploy/): records
# each call, then answers canned output.  The tests copy it into a sandbox's
# bin/ as `az`, ahead of any real az on PATH.
#
# AZ_STUB_LOG (required): the call log.  One line per call, `az` and the
#   arguments quoted with printf %q, then the contents of each `@file`
#   argument as `| ` lines.
# AZ_STUB_FAIL_ON: fail (exit 1, an az-like error) any call whose arguments
#   contain this text.
# AZ_STUB_USERS: the users of a B2C tenant, for Microsoft Graph look-ups
#   (GET .../v1.0/users/{id}, GET .../v1.0/users?$filter=identities/any(...))
#   and writes (PATCH .../v1.0/users/{id}, which updates this file; a body
#   {"<attribute>":null} empties the authy id): a file of
#   `objectId<TAB>signInName<TAB>authyId` lines.  Look-ups answer what
#   `--output tsv` prints for the scripts' queries: `objectId<TAB>authyId`.
# AZ_STUB_POLICIES: a folder standing in for the tenant's B2C custom
#   policies, one <PolicyId>.xml each: `az rest` GET of
#   .../trustFramework/policies/{id}/$value copies the file to --output-file
#   or answers 404 Not Found as az does; PUT writes the --body file there,
#   DELETE removes it.  Unset: a tenant without any policy that takes uploads.
# The other AZ_STUB_* variables below override single canned answers; each
# defaults to what a new, correctly configured app would answer.
set -u
{
    printf 'az'
    printf ' %q' "$@"
    printf '\n'
    for arg in "$@"; do
        if [[ "$arg" == @* && -f "${arg#@}" ]]; then
            sed 's/^/| /' "${arg#@}"
        fi
    done
} >>"$AZ_STUB_LOG"
all="$*"
if [[ -n "${AZ_STUB_FAIL_ON:-}" && "$all" == *"$AZ_STUB_FAIL_ON"* ]]; then
    echo "ERROR: (AuthorizationFailed) stub refused: $AZ_STUB_FAIL_ON" >&2
    exit 1
fi
arg_after() {
    local want="$1"
    shift
    while (($# > 0)); do
        if [[ "$1" == "$want" ]]; then
            printf '%s' "${2:-}"
            return
        fi
        shift
    done
}
query="$(arg_after --query "$@")"
case "$all" in
"keyvault secret set"*)
    if [[ -n "${AZ_STUB_SECRET_CAPTURE:-}" ]]; then
        cat "$(arg_after --file "$@")" >"$AZ_STUB_SECRET_CAPTURE"
    fi
    ;;
"account show"*)
    case "$query" in
    id) echo 00000000-0000-0000-0000-00000000aaaa ;;
    tenantId) echo 00000000-0000-0000-0000-00000000bbbb ;;
    user.type) echo "${AZ_STUB_USER_TYPE:-user}" ;;
    user.name) echo 33333333-3333-3333-3333-333333333333 ;;
    *) echo '{"id": "00000000-0000-0000-0000-00000000aaaa"}' ;;
    esac
    ;;
"group exists"*) echo "${AZ_STUB_GROUP_EXISTS:-true}" ;;
"functionapp config appsettings list"*)
    if [[ "$query" == *"'AzureWebJobsStorage'"* ]]; then
        # How many AzureWebJobsStorage connection strings the app has.
        echo "${AZ_STUB_CONNECTION_COUNT:-1}"
    else
        echo "${AZ_STUB_KEY_STATE:-0|0}"
    fi
    ;;
"storage account show"*) echo /subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/appstore ;;
"storage account management-policy show"*)
    # AZ_STUB_LIFECYCLE_RULES: the account's other lifecycle rules, as the
    # script's query prints them (a JSON array); unset: the account has no
    # management policy, which az reports as an error.
    if [[ -z "${AZ_STUB_LIFECYCLE_RULES+set}" ]]; then
        echo "ERROR: (ManagementPolicyNotFound) No ManagementPolicy found for account appstore" >&2
        echo "Code: ManagementPolicyNotFound" >&2
        exit 1
    fi
    printf '%s\n' "$AZ_STUB_LIFECYCLE_RULES"
    ;;
"functionapp config show"*)
    if [[ "$query" == minTlsVersion ]]; then
        echo "${AZ_STUB_TLS_BEFORE:-1.2}"
    else
        echo "${AZ_STUB_SITE_CONFIG:-1.2|Disabled}"
    fi
    ;;
"ad signed-in-user show"*) echo 11111111-1111-1111-1111-111111111111 ;;
"ad sp show"*) echo 44444444-4444-4444-4444-444444444444 ;;
"functionapp plan list"*) echo "${AZ_STUB_PLAN_COUNT:-0}" ;;
"functionapp list"*) echo "${AZ_STUB_APP_COUNT:-0}" ;;
"functionapp identity assign"*) echo 22222222-2222-2222-2222-222222222222 ;;
"keyvault list"*) echo "${AZ_STUB_KV_COUNT:-0}" ;;
"keyvault show"*)
    if [[ "$query" == id ]]; then
        echo /subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv
    else
        echo https://kv.vault.azure.net/
    fi
    ;;
"role assignment list"*) echo "${AZ_STUB_ROLE_COUNT:-0}" ;;
"functionapp show"*)
    if [[ "$query" == *defaultHostName* ]]; then
        echo "${AZ_STUB_HOST-app.azurewebsites.net}"
    else
        echo "${AZ_STUB_SITE_STATE:-true|true|Required|null}"
    fi
    ;;
"functionapp function keys list"*) echo "key/$(arg_after --function-name "$@")+=" ;;
"rest --method get --uri https://graph.microsoft.com/v1.0/users/"*)
    uri="$(arg_after --uri "$@")"
    id="${uri#*/v1.0/users/}"
    id="${id%%\?*}"
    found="$(awk -F '\t' -v id="${id,,}" 'tolower($1) == id { print $1 "\t" $3 }' "$AZ_STUB_USERS")"
    if [[ -z "$found" ]]; then
        printf 'ERROR: Not Found({"error":{"code":"Request_ResourceNotFound","message":"Resource %s does not exist or one of its queried reference-property objects are not present."}})\n' "'$id'" >&2
        exit 1
    fi
    printf '%s\n' "$found"
    ;;
"rest --method get --uri https://graph.microsoft.com/v1.0/users?"*)
    uri="$(arg_after --uri "$@")"
    decoded="$(printf '%b' "${uri//%/\\x}")"
    # identities/any(c:c/issuerAssignedId eq 'NAME' and c/issuer eq '...'),
    # NAME with each single quote doubled (OData).
    name="${decoded#*issuerAssignedId eq \'}"
    name="${name%%\' and c/issuer eq *}"
    name="${name//\'\'/\'}"
    awk -F '\t' -v name="${name,,}" 'tolower($2) == name { print $1 "\t" $3 }' "$AZ_STUB_USERS"
    ;;
"rest --method patch --uri https://graph.microsoft.com/v1.0/users/"*)
    uri="$(arg_after --uri "$@")"
    id="${uri#*/v1.0/users/}"
    body="$(arg_after --body "$@")"
    value="$(sed -n 's/^{"[^"]*":"\([0-9]*\)"}$/\1/p' "${body#@}")"
    awk -F '\t' -v OFS='\t' -v id="${id,,}" -v value="$value" \
        'tolower($1) == id { $3 = value } { print }' "$AZ_STUB_USERS" >"$AZ_STUB_USERS.new"
    mv "$AZ_STUB_USERS.new" "$AZ_STUB_USERS"
    ;;
"rest --method "*" --uri https://graph.microsoft.com/beta/trustFramework/policies/"*)
    method="$(arg_after --method "$@")"
    id="$(arg_after --uri "$@")"
    id="${id#https://graph.microsoft.com/beta/trustFramework/policies/}"
    id="${id%/\$value}"
    stored="${AZ_STUB_POLICIES:-/nonexistent}/$id.xml"
    case "$method" in
    get)
        if [[ ! -f "$stored" ]]; then
            # What az rest prints for a 404 (azure-cli core util.py, send_raw_request).
            printf 'ERROR: Not Found({"error":{"code":"AADB2C","message":"Policy \x27%s\x27 does not exist."}})\n' "$id" >&2
            exit 1
        fi
        cp "$stored" "$(arg_after --output-file "$@")"
        ;;
    put)
        body="$(arg_after --body "$@")"
        if [[ -n "${AZ_STUB_POLICIES:-}" ]]; then
            cp "${body#@}" "$stored"
        fi
        ;;
    delete) rm -f "$stored" ;;
    esac
    ;;
"rest --method get --uri /subscriptions/"*/configreferences/*)
    # AZ_STUB_KV_REF_STATUSES: the answer to the first, second, ... call;
    # the last one repeats.
    read -r -a statuses <<<"${AZ_STUB_KV_REF_STATUSES:-Resolved}"
    n="$(grep -c '^az rest --method get --uri /subscriptions/.*/configreferences/' "$AZ_STUB_LOG")"
    ((n <= ${#statuses[@]})) || n="${#statuses[@]}"
    echo "${statuses[n - 1]}"
    ;;
"rest --method get"*)
    # AZ_STUB_KEYSET_IDS: space-separated ids of the existing key sets.
    tr ' ' '\n' <<<"${AZ_STUB_KEYSET_IDS:-}"
    ;;
esac
exit 0
