"""`az` for tests/it/deploy/real_az.rs: the real Azure CLI's parser, canned answers.

Placed first on PATH (through a small `az` shim) while a deploy script runs.
Each call:

1. runs the real Azure CLI ($REAL_AZ) with the call's exact argv, signed out
   (a fresh AZURE_CONFIG_DIR) and with every proxy pointed at 127.0.0.1:9, so
   nothing leaves the machine.  Exit 2 is a parse error (unknown command or
   argument, invalid choice, a --query that is not JMESPath): the call is
   wrong.  Exit 1 with "Please run 'az login'" means the CLI parsed and
   validated the call and stopped only for want of a sign-in: the call is well
   formed.  Anything else is reported too.
2. then answers like the real command would: a canned result of the command's
   real shape (for a Flex Consumption app, `az functionapp show` is the raw ARM
   resource with `properties.*`), filtered by --query with the CLI's own
   jmespath and printed with the CLI's own knack formatters (json, tsv, none),
   so the script goes on as it would against Azure.  A query that compiles but
   fails on the result (an unknown function, say) is reported as well: the
   real CLI would only find it after signing in.

Every call is appended to $REAL_AZ_LOG as one JSON object: argv, verdict
("ok", "parse-error", "query-error" or "unexpected"), the CLI's exit code,
seconds and message.  The test fails on any verdict but "ok".
"""

import collections
import hashlib
import json
import os
import subprocess
import sys
import time

SUBSCRIPTION = "00000000-0000-0000-0000-00000000aaaa"
TENANT = "00000000-0000-0000-0000-00000000bbbb"
LOGIN_MESSAGES = ("Please run 'az login'", "Please run 'az login' to setup account")


def log(entry):
    with open(os.environ["REAL_AZ_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def run_real_cli(argv):
    env = dict(os.environ)
    # Signed out, no telemetry, nothing but localhost: a request the CLI
    # tried anyway would fail at once on the closed port and show up as an
    # "unexpected" verdict.
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "ALL_PROXY"):
        env[var] = "http://127.0.0.1:9"
    for var in ("NO_PROXY", "no_proxy"):
        env.pop(var, None)
    env["AZURE_CORE_COLLECT_TELEMETRY"] = "false"
    env["AZURE_CORE_NO_COLOR"] = "true"
    env["AZURE_CORE_SURVEY_MESSAGE"] = "false"
    env.pop("AZURE_CORE_ONLY_SHOW_ERRORS", None)
    start = time.monotonic()
    done = subprocess.run([os.environ["REAL_AZ"], *argv], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False)
    return done.returncode, done.stdout, done.stderr, time.monotonic() - start


def cached_verdict(argv):
    """(exit code, stderr, seconds, from cache) of the real CLI for argv.

    Runs of one test share $REAL_AZ_CACHE: an identical argv (many
    provision.sh calls do not depend on the plan type) reaches the CLI once.
    Arguments naming files (@file, --file, --src) hold per-run paths, so
    those calls, whose files the CLI reads while parsing, always run.
    """
    cache = os.environ.get("REAL_AZ_CACHE")
    key = hashlib.sha256(json.dumps(argv).encode()).hexdigest()
    path = os.path.join(cache, key) if cache else None
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            hit = json.load(f)
        return hit["exit"], hit["stderr"], 0.0, True
    code, _, err, seconds = run_real_cli(argv)
    if path:
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"exit": code, "stderr": err}, f)
        os.replace(tmp, path)
    return code, err, seconds, False


def arg(argv, *names):
    """The value after the last of `names` in argv, or None."""
    value = None
    for i, a in enumerate(argv):
        for name in names:
            if a == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif a.startswith(name + "="):
                value = a[len(name) + 1:]
    return value


def site(plan):
    """`az functionapp show`: flattened (Site model) or, for Flex, raw ARM."""
    props = {
        "defaultHostName": "app.azurewebsites.net",
        "httpsOnly": True,
        "clientCertEnabled": True,
        "clientCertMode": "Required",
        "clientCertExclusionPaths": None,
        "serverFarmId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Web/serverfarms/plan",
        "state": "Running",
    }
    common = {
        "id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Web/sites/app",
        "name": "app",
        "kind": "functionapp,linux",
        "location": "westeurope",
        "type": "Microsoft.Web/sites",
    }
    if plan == "flex":
        # azure-cli appservice custom.py show_functionapp: get_raw_functionapp.
        props["sku"] = "FlexConsumption"
        return {**common, "properties": props}
    return {**common, **props, "resourceGroup": "rg", "siteConfig": {"minTlsVersion": None}}


def canned(words, argv):
    """The result the real command returns (before --query), or None."""
    plan = os.environ.get("REAL_AZ_PLAN", "premium")
    app_exists = os.environ.get("REAL_AZ_APP_EXISTS", "0") == "1"
    cmd = " ".join(words)
    if cmd == "account show":
        return {"id": SUBSCRIPTION, "tenantId": TENANT, "name": "test", "state": "Enabled",
                "isDefault": True, "user": {"name": "someone@example.com", "type": "user"}}
    if cmd == "group exists":
        return app_exists
    if cmd == "functionapp list":
        return [site("premium")] if app_exists else []
    if cmd == "functionapp config appsettings list":
        return [{"name": "AUTHY_API_KEY", "value": "kept-key", "slotSetting": False},
                {"name": "AzureWebJobsStorage", "value": "DefaultEndpointsProtocol=https;AccountName=appstore;AccountKey=a2V5;EndpointSuffix=core.windows.net", "slotSetting": False},
                {"name": "CLIENT_CERT_MODE", "value": "required", "slotSetting": False}]
    if cmd == "storage account show":
        return {"id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/appstore",
                "name": "appstore", "kind": "StorageV2", "location": "westeurope"}
    if cmd == "storage account management-policy show":
        # REAL_AZ_NO_LIFECYCLE_POLICY=1: an account without a management policy, which
        # the service answers with 404 ManagementPolicyNotFound.  Otherwise a policy
        # with an admin's rule and an older version of ours, in the shape the CLI
        # prints (the SDK model's attributes in camelCase).
        if os.environ.get("REAL_AZ_NO_LIFECYCLE_POLICY") == "1":
            return AzError("ERROR: (ManagementPolicyNotFound) No ManagementPolicy found for account appstore\n"
                           "Code: ManagementPolicyNotFound\nMessage: No ManagementPolicy found for account appstore\n")
        def rule(name, prefix, days):
            return {"definition": {"actions": {"baseBlob": {"delete": {"daysAfterModificationGreaterThan": days,
                                                                         "daysAfterLastAccessTimeGreaterThan": None}},
                                               "snapshot": None, "version": None},
                                   "filters": {"blobIndexMatch": None, "blobTypes": ["blockBlob"],
                                               "prefixMatch": [prefix]}},
                    "enabled": True, "name": name, "type": "Lifecycle"}
        return {"id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/appstore/managementPolicies/default",
                "name": "DefaultManagementPolicy", "resourceGroup": "rg",
                "policy": {"rules": [rule("delete-old-logs", "logs/", 90),
                                     rule("b2c-authy-push-limits-expiry", "b2c-authy-push-limits/", 30)]},
                "type": "Microsoft.Storage/storageAccounts/managementPolicies"}
    if cmd in ("functionapp plan list", "keyvault list", "role assignment list"):
        return []
    if cmd == "functionapp identity assign":
        return {"principalId": "22222222-2222-2222-2222-222222222222", "tenantId": TENANT,
                "type": "SystemAssigned", "userAssignedIdentities": None}
    if cmd in ("ad signed-in-user show", "ad sp show"):
        return {"id": "11111111-1111-1111-1111-111111111111"}
    if cmd == "keyvault show":
        return {"id": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
                "name": "kv", "properties": {"vaultUri": "https://kv.vault.azure.net/",
                                             "enableRbacAuthorization": True}}
    if cmd == "functionapp show":
        return site(plan)
    if cmd == "functionapp config show":
        # REAL_AZ_TLS_BEFORE: what provision.sh's first look at minTlsVersion (the Flex
        # path reads it alone, before deciding to patch) finds; read-backs find 1.2.
        before = os.environ.get("REAL_AZ_TLS_BEFORE")
        if before and arg(argv, "--query") == "minTlsVersion":
            return {"minTlsVersion": before}
        return {"id": site(plan)["id"] + "/config/web", "minTlsVersion": "1.2",
                "ftpsState": None if plan == "flex" else "Disabled", "numberOfWorkers": 1}
    if cmd == "functionapp function keys list":
        return {"default": "key/" + (arg(argv, "--function-name") or "") + "+="}
    if cmd == "rest":
        url = arg(argv, "--uri", "--url", "-u") or ""
        method = (arg(argv, "--method", "-m") or "get").lower()
        if "/configreferences/appsettings/" in url:
            return {"id": url.split("?")[0], "name": "AUTHY_API_KEY",
                    "properties": {"reference": "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/authy-api-key/)",
                                   "status": "Resolved", "source": "KeyVault"}}
        if url.endswith("/trustFramework/keySets") and method == "get":
            return {"value": [{"id": "B2C_1A_TokenSigningKeyContainer", "keys": []}]}
        if url.endswith("/uploadPkcs12"):
            return {"kid": "k", "use": "sig", "kty": "RSA"}
        if url.endswith("/trustFramework/keySets"):
            return {"id": "B2C_1A_RestApiClientCertificate", "keys": []}
        if url.startswith("https://graph.microsoft.com/v1.0/users"):
            return graph_users(url, method, arg(argv, "--body", "-b") or "")
        if "/trustFramework/policies/" in url:
            policy_id = url.split("/trustFramework/policies/", 1)[1].split("/", 1)[0]
            if method == "delete":
                return None  # 204 No Content
            # REAL_AZ_ABSENT_POLICIES: space-separated ids the tenant lacks.
            if method == "get" and policy_id in os.environ.get("REAL_AZ_ABSENT_POLICIES", "").split():
                return NotFound(policy_id)
            # Graph answers a GET of .../$value, and an upload, with the policy
            # itself: XML, not JSON.  Ours carry the marker; the tenant's own
            # chain does not.
            marker = "" if policy_id.startswith("B2C_1A_TrustFramework") else "<!-- b2c-authy:managed-policy -->"
            return RawText('<?xml version="1.0" encoding="utf-8"?>' + marker +
                           f'<TrustFrameworkPolicy xmlns="http://schemas.microsoft.com/online/cpim/schemas/2013/06" TenantId="contoso.onmicrosoft.com" PolicyId="{policy_id}"/>')
        return {}
    if cmd == "storage account management-policy create":
        return check_policy(arg(argv, "--policy") or "")
    # Commands that change something; the scripts pass --output none.
    return {}


def check_policy(policy):
    """`--policy @file` of provision.sh: the CLI parses the JSON only once signed in, so
    check here that it is JSON, has provision.sh's rule once, and kept the admin's rule
    that `management-policy show` answered (unless the account had no policy)."""
    try:
        with open(policy[1:] if policy.startswith("@") else policy, encoding="utf-8") as f:
            rules = json.load(f)["rules"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return AzError(f"ERROR: az wrapper: --policy is not a management policy: {type(e).__name__}: {e}\n")
    names = [r.get("name") for r in rules]
    want = ["b2c-authy-push-limits-expiry"]
    if os.environ.get("REAL_AZ_NO_LIFECYCLE_POLICY") != "1":
        want.append("delete-old-logs")
    if sorted(names) != sorted(want):
        return AzError(f"ERROR: az wrapper: the policy's rules are {names}, expected {want}\n")
    return {"policy": {"rules": rules}}


def graph_users(url, method, body):
    """Microsoft Graph /v1.0/users, as import-authy-ids.sh and clear-authy-id.sh call it."""
    from urllib.parse import parse_qs, urlsplit
    parts = urlsplit(url)
    if method == "patch":
        return check_user_patch(body) or None  # 204 No Content: az rest prints nothing
    query = parse_qs(parts.query)
    select = query.get("$select", ["id"])[0].split(",")
    context = "https://graph.microsoft.com/v1.0/$metadata#users(" + ",".join(select) + ")"
    if parts.path.startswith("/v1.0/users/"):
        # A user without the attribute: Graph leaves an unset extension out.
        return {"@odata.context": context + "/$entity", "id": parts.path.rsplit("/", 1)[1]}
    # By sign-in name: one user, its id drawn from the filter, with the
    # selected extension attributes set to 2002.
    digest = hashlib.sha256(query.get("$filter", [""])[0].encode()).hexdigest()
    user = {"id": f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"}
    user.update({name: "2002" for name in select if name.startswith("extension_")})
    return {"@odata.context": context, "value": [user]}


def check_user_patch(body):
    """`--body @file` of a PATCH of a user: the CLI sends it as it is once signed in, so
    check here what Graph would refuse: it must be a JSON object of directory extension
    attributes (extension_<32 hex digits>_<name>), each an authy id (a string of digits)
    or null, which removes the value (Graph docs "extensionProperty resource type")."""
    import re
    try:
        with open(body[1:] if body.startswith("@") else body, encoding="utf-8") as f:
            patch = json.load(f)
    except (OSError, ValueError) as e:
        return AzError(f"ERROR: az wrapper: --body is not JSON: {type(e).__name__}: {e}\n")
    if not isinstance(patch, dict) or not patch:
        return AzError(f"ERROR: az wrapper: --body is not a JSON object of attributes: {patch!r}\n")
    for name, value in patch.items():
        if not re.fullmatch(r"extension_[0-9a-f]{32}_[A-Za-z0-9]+", name):
            return AzError(f"ERROR: az wrapper: --body sets {name!r}, not a directory extension attribute\n")
        if value is not None and not (isinstance(value, str) and re.fullmatch(r"[1-9][0-9]{0,19}", value)):
            return AzError(f"ERROR: az wrapper: --body sets {name} to {value!r}, neither an authy id nor null\n")
    return None


class RawText(str):
    """A non-JSON `az rest` answer."""


class NotFound(str):
    """An HTTP 404 answer to `az rest`."""


class AzError(str):
    """An error the service answers (printed as the CLI prints it, exit 1)."""


def main():
    argv = sys.argv[1:]
    words = []
    for a in argv:
        if a.startswith("-"):
            break
        words.append(a)
    code, err, seconds, cached = cached_verdict(argv)
    entry = {"argv": argv, "exit": code, "seconds": round(seconds, 3), "cached": cached}
    if code == 2:
        log({**entry, "verdict": "parse-error", "message": err.strip()})
        sys.stderr.write(err)
        sys.exit(2)
    if code == 0 or not any(m in err for m in LOGIN_MESSAGES):
        log({**entry, "verdict": "unexpected", "message": err.strip()})
        sys.stderr.write(f"az wrapper: the signed-out CLI neither refused the call nor asked for a sign-in:\n{err}")
        sys.exit(3)

    from jmespath import compile as compile_jmespath, Options
    from knack.output import CommandResultItem, format_json, format_tsv

    result = canned(words, argv)
    if isinstance(result, NotFound):
        # azure-cli core util.py send_raw_request raises HTTPError(reason(body)),
        # printed as "ERROR: ..." with exit 1; nothing is written to --output-file.
        log({**entry, "verdict": "ok", "message": err.strip()})
        sys.stderr.write('ERROR: Not Found({"error":{"code":"AADB2C","message":"Policy \'%s\' not found."}})\n' % result)
        sys.exit(1)
    if isinstance(result, AzError):
        # A wrong policy file is the script's mistake; ManagementPolicyNotFound is an answer.
        verdict = "unexpected" if result.startswith("ERROR: az wrapper:") else "ok"
        log({**entry, "verdict": verdict, "message": result.strip() if verdict != "ok" else err.strip()})
        sys.stderr.write(result)
        sys.exit(1)
    output_file = arg(argv, "--output-file") if words == ["rest"] else None
    if isinstance(result, RawText):
        if output_file:
            with open(output_file, "w", encoding="utf-8") as f:
                f.write(result)
            result = None
        else:
            # azure-cli util/custom.py rest_call
            sys.stderr.write("WARNING: Not a json response, outputting to stdout. For binary data "
                             'suggest use "--output-file" to write to a file\n')
            print(result)
            result = None
    query = arg(argv, "--query")
    if query is not None and result is not None:
        try:
            result = compile_jmespath(query).search(result, Options(collections.OrderedDict))
        except Exception as e:  # pylint: disable=broad-except
            log({**entry, "verdict": "query-error", "message": f"--query {query!r}: {type(e).__name__}: {e}"})
            sys.stderr.write(f"ERROR: Invalid jmespath query supplied for `--query`: {e}\n")
            sys.exit(1)
    log({**entry, "verdict": "ok", "message": err.strip()})
    output = (arg(argv, "--output", "-o") or "json").lower()
    # knack cli.py: nothing is printed for a None result.
    if result is not None and output != "none":
        formatter = format_tsv if output == "tsv" else format_json
        sys.stdout.write(formatter(CommandResultItem(result)))


if __name__ == "__main__":
    main()
