#!/usr/bin/env bash
# Clear one user's authy id (custom attribute extension_authyId) through
# Microsoft Graph, for a user who lost their phone: at their next sign-in the
# policies find no authy id and enrol a new phone, with a push on it, before
# they write the new one.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRIPT_SUMMARY="Clear the authy id of --user (a user who lost their phone): the custom attribute
the policies call extension_authyId, in Microsoft Graph extension_<b2c-extensions-app
client id without dashes>_authyId.  At their next sign-in through
B2C_1A_signup_signin_authy the user finds no authy id and enrols a phone again
(phone page, then a push on that phone) before a new authy id is written.
The user is looked up first (GET /v1.0/users); then the attribute is set to
null (PATCH /v1.0/users/{id} with {\"extension_..._authyId\": null}: Graph docs
\"extensionProperty resource type\", setting a directory extension to null
removes its value).  A user without an authy id is left alone (exit 0), so the
script can be run again.  With --dry-run the user is looked up and the plan
reported, but nothing is written."
SCRIPT_DETAILS="--user is the user's object id, or a local account's sign-in name (the email
address or user name of its emailAddress/userName identity issued by
--tenant).  A sign-in name that more than one user has is refused: give the
object id of the right one (they are listed).  Sign-in names are shown masked
(a***@example.com); authy ids are not shown.

Verify who is asking before you run this: until the user enrols again, their
password alone lets whoever has it enrol a phone of their choice.  The user's
push limits and pauses are not touched: the handler keeps them per authy id,
not per user (see docs/deploy.md, 'Clear the authy id of a user who lost their
phone').

Sign in first as a service principal of the B2C tenant that has the Microsoft
Graph application permission User.ReadWrite.All (admin consent granted;
User.Read.All is enough for --dry-run), as for import-authy-ids.sh:
  az login --service-principal --username <app-id> \\
      --tenant <tenant>.onmicrosoft.com --certificate /path/cert.pem \\
      --allow-no-subscriptions
Exit status: 0 when the authy id was cleared (or there was none), 1 when the
user is not found, the sign-in name is ambiguous, or a Graph call failed."

opt --user B2C_USER "" "The user: object id (GUID) or a local account's sign-in name (email address or user name)."
opt --tenant B2C_TENANT "" "The B2C tenant's default domain, e.g. contoso.onmicrosoft.com: the issuer of local accounts' sign-in names. Default: the Tenant of --environment."
opt --extensions-app-client-id B2C_EXTENSIONS_APP_CLIENT_ID "" "Application (client) id of the tenant's b2c-extensions-app. Default: B2cExtensionsAppClientId of --environment."
opt --environment POLICY_ENVIRONMENT "" "Take --tenant and --extensions-app-client-id from this environment of --settings."
opt --settings SETTINGS_FILE "" "Policy settings file for --environment (default: policies/appsettings.json of the repository)."
parse_args "$@"

require B2C_USER
# Spaces around the value are not part of it (a pasted sign-in name).
user="${B2C_USER#"${B2C_USER%%[![:space:]]*}"}" user="${user%"${user##*[![:space:]]}"}"
# The value itself is not repeated in the messages: it may be a sign-in name.
if [[ "$user" =~ $GUID_RE ]]; then
    user="${user,,}"
    shown="$user"
elif is_sign_in_name "$user"; then
    shown="$(mask_sign_in_name "$user")"
else
    die "--user is neither an object id (GUID) nor a valid email address or user name"
fi

graph_resolve_target
ATTRIBUTE="$(graph_extension_attribute "$B2C_EXTENSIONS_APP_CLIENT_ID" authyId)"
log "user $shown; attribute $ATTRIBUTE, tenant $B2C_TENANT"

# The look-up changes nothing: it also runs under --dry-run, which reports
# what a real run would do.
require_cmd az "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli)"
make_tmp_dir

found="$(graph_find_user "$user" "$B2C_TENANT" "$ATTRIBUTE")" ||
    die "looking up $shown failed (see az's message above); nothing was written. A 403 (Authorization_RequestDenied) means the signed-in identity lacks User.Read.All/User.ReadWrite.All; 'does not exist as a declared property' means no policy has written the attribute in this tenant yet, so no user has an authy id to clear."
[[ -n "$found" ]] || die "no user $shown in tenant $B2C_TENANT; nothing was written"
if [[ "$found" == *$'\n'* ]]; then
    log "error: $(wc -l <<<"$found" | tr -d ' ') users have the sign-in name $shown; nothing was written. Run again with --user set to the object id of the right one:"
    while IFS=$'\t' read -r id _; do
        log "  $id"
    done <<<"$found"
    exit 1
fi
id="${found%%$'\t'*}" current="${found#*$'\t'}"
[[ "$id" =~ $GUID_RE ]] || die "Graph answered an object id that is not a GUID for $shown; nothing was written"
if [[ "$user" != "$id" ]]; then
    shown+=" ($id)"
fi

if [[ -z "$current" ]]; then
    log "$shown has no authy id: nothing to clear (they enrol a phone at their next sign-in)"
    exit 0
fi

# {"extension_..._authyId": null}: the attribute name is checked by
# graph_find_user (letters, digits and _), so it needs no escaping.
body="$TMP_DIR/clear-authy-id.json"
printf '{"%s":null}\n' "$ATTRIBUTE" >"$body"
run az rest --method patch --uri "$GRAPH_V1_URL/users/$id" \
    --headers "Content-Type=application/json" --body "@$body" --output none ||
    die "clearing the authy id of $shown failed; nothing was changed. A 403 means the signed-in identity lacks User.ReadWrite.All."
if is_dry_run; then
    log "dry run, nothing was written; a real run would clear the authy id of $shown"
else
    log "cleared the authy id of $shown: they enrol a new phone at their next sign-in"
fi
