# shellcheck shell=bash
#
# Shared helpers for the deploy/*.sh scripts: option parsing (flags or
# environment), --help, --dry-run, error reporting and temporary files.
#
# A script sources this file, declares its options with `opt`/`flag`/`env_opt`,
# calls `parse_args "$@"`, then runs every external command that changes
# something through `run` (or `capture` when it needs the output), so that
# --dry-run prints exactly what a real run would execute.

set -euo pipefail
# Bash 4.4 or later (associative arrays, and errexit inside $(...) so a
# failing command in a helper used as `x="$(helper)"` stops the script).
if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
    echo "${0##*/}: error: bash 4.4 or later is required (on macOS: brew install bash)" >&2
    exit 1
fi
shopt -s inherit_errexit

# Where the scripts live and the repository they deploy.  REPO_ROOT may be
# overridden (the tests point it at a fixture project).
DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="${REPO_ROOT:-$(cd "$DEPLOY_DIR/.." && pwd)}"
SCRIPT_NAME="$(basename "$0")"

# Dry-run output goes to file descriptor 3, a copy of the original stdout:
# inside `$(capture ...)` stdout is the command substitution, and the planned
# command must still reach the user rather than end up in a variable.
exec 3>&1

# Seconds between attempts of `retry`; Azure role assignments and freshly
# deployed functions take a while to become visible.
RETRY_DELAY="${DEPLOY_RETRY_DELAY:-10}"

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

is_dry_run() { [[ "${DRY_RUN:-0}" == 1 ]]; }

# Quote one argument for display so that a printed command can be pasted
# back into a shell: plain words stay as they are, anything else is
# single-quoted.
shell_quote() {
    local arg="$1"
    if [[ "$arg" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
        printf '%s' "$arg"
    elif [[ "$arg" == *"'"* && "$arg" != *[\$\`\"\\!]* ]]; then
        # JMESPath queries are full of single quotes: double quotes read better.
        printf '"%s"' "$arg"
    else
        printf "'%s'" "${arg//\'/\'\\\'\'}"
    fi
}

format_command() {
    local out="" arg
    for arg in "$@"; do
        out+="${out:+ }$(shell_quote "$arg")"
    done
    printf '%s' "$out"
}

# run CMD ARGS...: execute a command, or print it under --dry-run.  On failure
# the command's own error output has already been shown; this adds which
# command failed and returns its status, so `set -e` stops the script.
run() {
    if is_dry_run; then
        printf '+ %s\n' "$(format_command "$@")" >&3
        return 0
    fi
    local status=0
    "$@" || status=$?
    if ((status != 0)); then
        printf '%s: error: command failed (exit %d): %s\n' \
            "$SCRIPT_NAME" "$status" "$(format_command "$@")" >&2
        return "$status"
    fi
}

# capture PLACEHOLDER CMD ARGS...: like `run`, for commands whose output the
# script needs.  Under --dry-run the command is printed and PLACEHOLDER is
# returned instead, so the rest of the plan can still be printed.
capture() {
    local placeholder="$1"
    shift
    if is_dry_run; then
        printf '+ %s\n' "$(format_command "$@")" >&3
        printf '%s\n' "$placeholder"
        return 0
    fi
    run "$@"
}

# retry ATTEMPTS CMD ARGS...: run a command until it succeeds, waiting
# RETRY_DELAY seconds between attempts.  Only for operations that fail while
# Azure catches up (role assignment propagation, host start after a deploy).
retry() {
    local attempts="$1" i
    shift
    for ((i = 1; ; i++)); do
        if run "$@"; then
            return 0
        fi
        if ((i >= attempts)); then
            return 1
        fi
        log "attempt $i of $attempts failed; retrying in ${RETRY_DELAY}s"
        sleep "$RETRY_DELAY"
    done
}

# capture_retry PLACEHOLDER ATTEMPTS CMD ARGS...: `capture` with `retry`.
capture_retry() {
    local placeholder="$1"
    shift
    if is_dry_run; then
        capture "$placeholder" "${@:2}"
        return 0
    fi
    retry "$@"
}

# A private temporary directory, removed when the script exits.  Secrets (the
# Authy key, PFX passwords) only ever touch disk here, never the command line.
TMP_DIR=""
make_tmp_dir() {
    if [[ -z "$TMP_DIR" ]]; then
        TMP_DIR="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/b2c-authy-deploy.XXXXXX")"
        trap 'rm -rf "$TMP_DIR"' EXIT
    fi
}

require_cmd() {
    local cmd="$1" hint="$2"
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found on PATH: $hint"
}

# The Azure CLI is not needed to print a plan, so a dry run works on a
# machine without it.
require_az() {
    is_dry_run || require_cmd az "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli)"
}

# Escape a string for inclusion in a JSON string literal.
json_escape() {
    local s="$1"
    s="${s//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//$'\t'/\\t}"
    s="${s//$'\r'/\\r}"
    s="${s//$'\n'/\\n}"
    printf '%s' "$s"
}

# --- option declarations ----------------------------------------------------
#
# Each option has a flag (--resource-group) and an environment variable
# (RESOURCE_GROUP); the flag wins over the environment, the environment over
# the default.  `env_opt` declares an environment-only value, for secrets that
# must not appear on a command line or in shell history.

SCRIPT_SUMMARY=""
SCRIPT_DETAILS=""
_OPT_FLAGS=()
_OPT_VARS=()
_OPT_KINDS=()
_OPT_HELP=()
declare -A _OPT_DEFAULTS=()

_declare() {
    local kind="$1" flag="$2" var="$3" default="$4" help="$5"
    _OPT_KINDS+=("$kind")
    _OPT_FLAGS+=("$flag")
    _OPT_VARS+=("$var")
    _OPT_HELP+=("$help")
    _OPT_DEFAULTS["$var"]="$default"
    # Keep a value from the environment; otherwise use the default.
    if [[ -z "${!var:-}" ]]; then
        printf -v "$var" '%s' "$default"
    fi
}

# opt --flag VAR DEFAULT "help"
opt() { _declare value "$1" "$2" "$3" "$4"; }
# flag --flag VAR "help"        (VAR=1 when given; also settable as VAR=1)
flag() { _declare flag "$1" "$2" "" "$3"; }
# env_opt VAR "help"            (environment only)
env_opt() { _declare env "" "$1" "" "$2"; }

usage() {
    local i flag var help default
    printf 'Usage: %s [options]\n\n%s\n' "$SCRIPT_NAME" "$SCRIPT_SUMMARY"
    if [[ -n "$SCRIPT_DETAILS" ]]; then
        printf '\n%s\n' "$SCRIPT_DETAILS"
    fi
    printf '\nOptions (each can also be given as the environment variable shown):\n'
    for i in "${!_OPT_FLAGS[@]}"; do
        flag="${_OPT_FLAGS[$i]}" var="${_OPT_VARS[$i]}" help="${_OPT_HELP[$i]}"
        case "${_OPT_KINDS[$i]}" in
        value) printf '  %s VALUE  [%s]\n      %s\n' "$flag" "$var" "$help" ;;
        flag) printf '  %s  [%s=1]\n      %s\n' "$flag" "$var" "$help" ;;
        *) continue ;;
        esac
    done
    printf '  --dry-run  [DRY_RUN=1]\n      Print each command instead of running it.\n'
    printf '  --help\n      Show this help.\n'
    local printed_env=0
    for i in "${!_OPT_FLAGS[@]}"; do
        [[ "${_OPT_KINDS[$i]}" == env ]] || continue
        if ((printed_env == 0)); then
            printf '\nEnvironment only (secrets are never taken from the command line):\n'
            printed_env=1
        fi
        printf '  %s\n      %s\n' "${_OPT_VARS[$i]}" "${_OPT_HELP[$i]}"
    done
    # Defaults are shown last so the help reads as a reference.
    local shown=0
    for i in "${!_OPT_FLAGS[@]}"; do
        [[ "${_OPT_KINDS[$i]}" == value ]] || continue
        var="${_OPT_VARS[$i]}"
        default="${_OPT_DEFAULTS[$var]}"
        [[ -n "$default" ]] || continue
        if ((shown == 0)); then
            printf '\nDefaults:\n'
            shown=1
        fi
        printf '  %s=%s\n' "$var" "$default"
    done
}

parse_args() {
    local i
    while (($# > 0)); do
        local arg="$1" name value="" has_value=0
        shift
        case "$arg" in
        --help | -h)
            usage
            exit 0
            ;;
        --dry-run)
            DRY_RUN=1
            continue
            ;;
        --*=*)
            name="${arg%%=*}"
            value="${arg#*=}"
            has_value=1
            ;;
        --*) name="$arg" ;;
        *) _usage_error "unexpected argument '$arg'" ;;
        esac
        local found=""
        for i in "${!_OPT_FLAGS[@]}"; do
            if [[ -n "${_OPT_FLAGS[$i]}" && "${_OPT_FLAGS[$i]}" == "$name" ]]; then
                found="$i"
                break
            fi
        done
        [[ -n "$found" ]] || _usage_error "unknown option '$name'"
        local var="${_OPT_VARS[$found]}"
        if [[ "${_OPT_KINDS[$found]}" == flag ]]; then
            ((has_value == 0)) || _usage_error "option '$name' takes no value"
            printf -v "$var" '%s' 1
            continue
        fi
        if ((has_value == 0)); then
            (($# > 0)) || _usage_error "option '$name' needs a value"
            value="$1"
            shift
        fi
        printf -v "$var" '%s' "$value"
    done
    DRY_RUN="${DRY_RUN:-0}"
    if is_dry_run; then
        log "dry run: printing commands instead of running them"
    fi
}

_usage_error() {
    printf '%s: error: %s (see --help)\n' "$SCRIPT_NAME" "$1" >&2
    exit 2
}

# require VAR...: stop with one message that names every missing parameter,
# both as flag and as environment variable.
require() {
    local var i missing=()
    for var in "$@"; do
        [[ -n "${!var:-}" ]] && continue
        local how="$var"
        for i in "${!_OPT_VARS[@]}"; do
            if [[ "${_OPT_VARS[$i]}" == "$var" && -n "${_OPT_FLAGS[$i]}" ]]; then
                how="${_OPT_FLAGS[$i]} (or $var)"
            fi
        done
        missing+=("$how")
    done
    if ((${#missing[@]} > 0)); then
        printf '%s: error: missing required parameter(s):\n' "$SCRIPT_NAME" >&2
        printf '  %s\n' "${missing[@]}" >&2
        printf 'See %s --help.\n' "$SCRIPT_NAME" >&2
        exit 2
    fi
}

# --- Microsoft Graph: users and their extension attributes -----------------
#
# Used by import-authy-ids.sh and clear-authy-id.sh (and meant for any script
# that reads or changes one user's authy id).  Reads run under --dry-run too (they change nothing;
# a dry run reports what a real run would do); writes go through `run`.

GRAPH_V1_URL="https://graph.microsoft.com/v1.0"

# A user object id (GUID) in any case; sign-in names are everything else.
GUID_RE='^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$'

# url_encode STRING: percent-encode every byte but the unreserved characters
# of RFC 3986 (A-Z a-z 0-9 - . _ ~), for a value inside a query string.
url_encode() {
    local LC_ALL=C s="$1" out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        if [[ "$c" == [A-Za-z0-9._~-] ]]; then
            out+="$c"
        else
            out+="$(printf '%%%02X' "'$c")"
        fi
    done
    printf '%s' "$out"
}

# odata_string STRING: STRING as an OData string literal, in single quotes,
# a single quote inside doubled (OData ABNF, SQUOTE-in-string).
odata_string() {
    local s="$1"
    printf "'%s'" "${s//\'/\'\'}"
}

# A local account's user name (Graph docs "objectIdentity resource type":
# begins with a letter or digit, then letters, digits, - or _; at most 64
# characters) and a plausible email address (no spaces, control characters,
# commas or double quotes; a domain with a dot).
USER_NAME_RE='^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$'
EMAIL_RE='^[^@[:space:][:cntrl:]",]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$'
# is_sign_in_name NAME: whether NAME can be a local account's sign-in name:
# an email address (at most 254 characters) or a user name.
is_sign_in_name() {
    if [[ "$1" == *@* ]]; then
        ((${#1} <= 254)) && [[ "$1" =~ $EMAIL_RE ]]
    else
        [[ "$1" =~ $USER_NAME_RE ]]
    fi
}

# A domain name such as contoso.onmicrosoft.com.
DOMAIN_RE='^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$'

# graph_resolve_target: fill B2C_TENANT and B2C_EXTENSIONS_APP_CLIENT_ID from
# the environment POLICY_ENVIRONMENT of SETTINGS_FILE (default
# policies/appsettings.json of the repository) where they are still empty
# (its Tenant and PolicySettings.B2cExtensionsAppClientId), then require and
# check both: they end up in Graph URLs and filters, so only plain values
# pass.  For the scripts that declare --tenant, --extensions-app-client-id,
# --environment and --settings (import-authy-ids.sh, clear-authy-id.sh).
graph_resolve_target() {
    local from_settings
    if [[ -n "${POLICY_ENVIRONMENT:-}" ]]; then
        SETTINGS_FILE="${SETTINGS_FILE:-$REPO_ROOT/policies/appsettings.json}"
        [[ -f "$SETTINGS_FILE" ]] || die "settings file $SETTINGS_FILE not found"
        require_cmd python3 "python3 reads --settings"
        # "Tenant<TAB>B2cExtensionsAppClientId" of the environment.
        from_settings="$(python3 - "$SETTINGS_FILE" "$POLICY_ENVIRONMENT" "$SCRIPT_NAME" <<'PY'
import json, sys
path, name, script = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    with open(path, encoding="utf-8-sig") as f:
        settings = json.load(f)
except (OSError, ValueError) as e:
    sys.exit(f"{script}: error: cannot read {path}: {e}")
envs = settings.get("Environments", []) if isinstance(settings, dict) else []
for env in envs if isinstance(envs, list) else []:
    if isinstance(env, dict) and env.get("Name") == name:
        policy = env.get("PolicySettings") or {}
        print(f"{env.get('Tenant') or ''}\t{policy.get('B2cExtensionsAppClientId') or ''}")
        break
else:
    sys.exit(f"{script}: error: no environment named {name!r} in {path}")
PY
)" || exit 1
        B2C_TENANT="${B2C_TENANT:-${from_settings%%$'\t'*}}"
        B2C_EXTENSIONS_APP_CLIENT_ID="${B2C_EXTENSIONS_APP_CLIENT_ID:-${from_settings#*$'\t'}}"
    fi
    require B2C_TENANT B2C_EXTENSIONS_APP_CLIENT_ID
    [[ "$B2C_TENANT" =~ $DOMAIN_RE ]] ||
        die "--tenant '$B2C_TENANT' is not a domain name such as contoso.onmicrosoft.com"
    [[ "$B2C_EXTENSIONS_APP_CLIENT_ID" =~ $GUID_RE ]] ||
        die "--extensions-app-client-id '$B2C_EXTENSIONS_APP_CLIENT_ID' is not an application (client) id (a GUID)"
    [[ "$B2C_EXTENSIONS_APP_CLIENT_ID" != 00000000-0000-0000-0000-* ]] ||
        die "--extensions-app-client-id $B2C_EXTENSIONS_APP_CLIENT_ID is the example placeholder: use the application (client) id of your tenant's b2c-extensions-app (Azure AD B2C > App registrations > All applications)"
}

# graph_extension_attribute CLIENT_ID NAME: the Microsoft Graph name of the
# custom attribute that policies call extension_NAME:
# extension_<b2c-extensions-app client id without dashes>_NAME (MS docs
# "Define custom attributes in Azure AD B2C", user-flow-custom-attributes).
graph_extension_attribute() {
    local id="${1,,}"
    printf 'extension_%s_%s' "${id//-/}" "$2"
}

# mask_sign_in_name NAME: what the logs may show of a sign-in name, as the
# handler masks email addresses (src/domain.rs Email::masked): the first
# character of the local part (none when it is 1 or 2 characters long),
# ***, and @domain.  A user name keeps only its first character the same way.
mask_sign_in_name() {
    local name="$1" local_part domain=""
    if [[ "$name" == *@* ]]; then
        local_part="${name%@*}"
        domain="@${name##*@}"
    else
        local_part="$name"
    fi
    if ((${#local_part} > 2)); then
        printf '%s***%s' "${local_part:0:1}" "$domain"
    else
        printf '***%s' "$domain"
    fi
}

# graph_find_user USER ISSUER ATTRIBUTE: look a user up by object id or by
# sign-in name (a local account's emailAddress or userName identity issued by
# ISSUER, the tenant's default domain such as contoso.onmicrosoft.com) and
# print one "objectId<TAB>value of ATTRIBUTE" line per match (the value empty
# when unset): none when there is no such user.  On any other error prints
# az's message and returns 1.  Needs make_tmp_dir first (az's error output
# goes through a file there).
#
# Graph: GET /v1.0/users/{id}?$select=...; by sign-in name GET /v1.0/users
# ?$filter=identities/any(c:c/issuerAssignedId eq '...' and c/issuer eq
# '...') (Graph docs "List users", "objectIdentity resource type": both
# issuerAssignedId and issuer are required).  Extension attributes are only
# returned when $select names them (Graph docs "Extension attributes").
graph_find_user() {
    local user="$1" issuer="$2" attribute="$3" uri query filter errors status=0 out=""
    [[ -n "$TMP_DIR" ]] || die "graph_find_user: call make_tmp_dir first"
    [[ "$attribute" =~ ^[A-Za-z0-9_]+$ ]] || die "graph_find_user: bad attribute name '$attribute'"
    errors="$TMP_DIR/graph-find-user.err"
    if [[ "$user" =~ $GUID_RE ]]; then
        uri="$GRAPH_V1_URL/users/${user,,}?\$select=id,$attribute"
        query="[[id, $attribute || '']]"
    else
        filter="identities/any(c:c/issuerAssignedId eq $(odata_string "$user") and c/issuer eq $(odata_string "$issuer"))"
        uri="$GRAPH_V1_URL/users?\$filter=$(url_encode "$filter")&\$select=id,$attribute"
        query="value[].[id, $attribute || '']"
    fi
    out="$(az rest --method get --uri "$uri" --query "$query" --output tsv 2>"$errors")" || status=$?
    if ((status == 0)); then
        [[ -z "$out" ]] || printf '%s\n' "$out"
        return 0
    fi
    # An unknown object id is a 404 with this code (Graph docs "Microsoft
    # Graph error responses and resource types").
    if grep -q 'Request_ResourceNotFound' "$errors"; then
        return 0
    fi
    cat "$errors" >&2
    return 1
}
