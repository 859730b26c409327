#!/usr/bin/env bash
# Zip-deploy the package built by deploy/package.sh, then print the function
# URLs with their function keys for the policies' settings.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRIPT_SUMMARY="Deploy the handler zip to an existing Function App (zip deploy), then print the
URL of each function with its function key (stderr) and, on stdout, the
PolicySettings entries for policies/appsettings.json: AuthyApiBaseUrl and
<Function>FunctionKey for each function."
SCRIPT_DETAILS="Function keys are secrets: keep a settings file that holds them outside the
repository (render-policies --settings FILE)."

opt --resource-group RESOURCE_GROUP "" "Resource group of the Function App."
opt --function-app FUNCTION_APP "" "Function App name."
opt --zip ZIP_FILE "" "Package to deploy (default: REPO_ROOT/target/deploy/handler.zip)."
opt --functions FUNCTION_NAMES "Register,CreateApprovalRequest,WaitForAuthyApproval" \
    "Comma-separated functions whose URLs to print."
flag --package BUILD_PACKAGE "Run deploy/package.sh first."
parse_args "$@"

require RESOURCE_GROUP FUNCTION_APP
ZIP_FILE="${ZIP_FILE:-$REPO_ROOT/target/deploy/handler.zip}"
require_az
az_app=(--resource-group "$RESOURCE_GROUP" --name "$FUNCTION_APP")

if [[ "${BUILD_PACKAGE:-0}" == 1 ]]; then
    package_args=(--output "$ZIP_FILE")
    is_dry_run && package_args+=(--dry-run)
    # stdout is kept for the URLs: the build's own output goes to stderr.
    "$DEPLOY_DIR/package.sh" "${package_args[@]}" >&2
fi
if [[ ! -f "$ZIP_FILE" ]]; then
    if is_dry_run; then
        warn "$ZIP_FILE does not exist yet (run deploy/package.sh)"
    else
        die "$ZIP_FILE not found: build it with deploy/package.sh (or pass --package)"
    fi
fi

log "deploying $ZIP_FILE to $FUNCTION_APP"
run az functionapp deployment source config-zip "${az_app[@]}" --src "$ZIP_FILE" --output none

# A Flex Consumption app comes back as the raw ARM resource, with the host
# name under `properties` (azure-cli's show_functionapp), other apps
# flattened: read both.  An empty answer would give https:///api/... URLs.
host="$(capture "$FUNCTION_APP.azurewebsites.net" az functionapp show "${az_app[@]}" \
    --query "not_null(properties.defaultHostName, defaultHostName)" --output tsv)"
if [[ -z "$host" || "$host" == None || "$host" == null ]]; then
    die "az functionapp show reported no default host name for $FUNCTION_APP; the function URLs cannot be printed (check the app in the portal: Overview > Default domain)"
fi

# Keys can contain characters that are not safe in a query string.
url_encode() {
    local s="$1" out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
        [A-Za-z0-9._~-]) out+="$c" ;;
        *) out+="$(printf '%%%02X' "'$c")" ;;
        esac
    done
    printf '%s' "$out"
}

IFS=',' read -r -a functions <<<"$FUNCTION_NAMES"
base_url="https://$host/api"
settings=("$(printf '  "AuthyApiBaseUrl": "%s"' "$(json_escape "$base_url")")")
urls=()
for fn in "${functions[@]}"; do
    # The host lists a function's keys only once it has started and indexed
    # the new package, which can take a moment after the deployment.
    key="$(capture_retry '<function-key>' 6 az functionapp function keys list "${az_app[@]}" \
        --function-name "$fn" --query default --output tsv)"
    [[ -n "$key" ]] || die "function $fn has no default key: is $fn/function.json in the package?"
    # The policies put the key into the query string of the ServiceUrl.
    is_dry_run || key="$(url_encode "$key")"
    urls+=("$base_url/$fn?code=$key")
    settings+=("$(printf '  "%sFunctionKey": "%s"' "$fn" "$(json_escape "$key")")")
done

if is_dry_run; then
    log "dry run: the function URLs would be:"
else
    log "deployed; function URLs (they contain the function keys: do not commit them):"
fi
printf '  %s\n' "${urls[@]}" >&2
log "PolicySettings for policies/appsettings.json:"
printf '{\n'
for ((i = 0; i < ${#settings[@]}; i++)); do
    printf '%s%s\n' "${settings[i]}" "$( ((i + 1 == ${#settings[@]})) || printf ',')"
done
printf '}\n'
