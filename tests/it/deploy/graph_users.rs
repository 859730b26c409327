//! What the tests of the two scripts that write authy ids through Microsoft Graph share
//! ([`super::clear_authy_id`], [`super::import_authy_ids`]): the stub tenant's users, the
//! script with the tenant and client id flags, what it wrote, and what it must not show.
//!
//! The stub `az` holds the tenant's users in the file `AZ_STUB_USERS` (`objectId<TAB>
//! signInName<TAB>authyId` lines), answers the scripts' look-ups from it and applies their
//! PATCHes to it, so a second run sees what the first one wrote.

use std::fs;
use std::process::Command;

use super::{Run, Sandbox, TENANT};

/// The b2c-extensions-app client id the tests pass, and the Graph attribute it gives.
pub(super) const CLIENT_ID: &str = "ABCDEF01-2345-6789-ABCD-EF0123456789";
pub(super) const ATTRIBUTE: &str = "extension_abcdef0123456789abcdef0123456789_authyId";

/// A sandbox whose stub tenant holds `users` (`AZ_STUB_USERS` lines).
pub(super) fn tenant(name: &str, users: &str) -> Sandbox {
    let sb = Sandbox::new(name);
    sb.write("users.tsv", users);
    sb
}

/// `script` against the sandbox's tenant: `--tenant` and `--extensions-app-client-id`, then
/// `args`.
pub(super) fn script(sb: &Sandbox, script: &str, args: &[&str]) -> Command {
    let mut cmd = sb.command(script);
    cmd.env("AZ_STUB_USERS", sb.path("users.tsv"));
    cmd.args(["--tenant", TENANT, "--extensions-app-client-id", CLIENT_ID]);
    cmd.args(args);
    cmd
}

/// The tenant's users now (`AZ_STUB_USERS` lines).
pub(super) fn users(sb: &Sandbox) -> String {
    fs::read_to_string(sb.path("users.tsv")).unwrap()
}

/// The Graph writes (`az rest --method patch`) the scripts made, in order.
pub(super) fn patches(sb: &Sandbox) -> Vec<String> {
    sb.az_calls()
        .into_iter()
        .filter(|c| c.starts_with("az rest --method patch"))
        .collect()
}

/// Nothing of `secrets` (sign-in names, authy ids) appears in the output.
pub(super) fn assert_not_shown(out: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(
            !out.stdout.contains(s) && !out.stderr.contains(s),
            "{s:?} shown\n{out}"
        );
    }
}
