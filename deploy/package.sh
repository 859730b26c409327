#!/usr/bin/env bash
# Build the custom handler as a static musl binary and zip what the Functions
# host needs: handler, host.json and the function folders.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TARGET_TRIPLE=x86_64-unknown-linux-musl

SCRIPT_SUMMARY="Build the 'handler' binary for $TARGET_TRIPLE, strip it, and write a zip
with handler (executable), host.json and every top-level folder that holds a
function.json, ready for deploy/deploy-code.sh."
SCRIPT_DETAILS="Why musl: a glibc binary built on a newer distribution does not start on the
older images the Functions host runs on; a static binary has no such dependency.
The script installs what the build needs: the Rust target (rustup target add)
and a musl C compiler for crates with C code (apt-get install musl-tools).
local.settings.json, target/ and everything else stay out of the zip."

opt --output OUTPUT "" "Zip file to write (default: REPO_ROOT/target/deploy/handler.zip)."
opt --bin HANDLER_BIN handler "Cargo binary to package; it is renamed to 'handler' in the zip."
flag --skip-install SKIP_INSTALL "Do not install the Rust target or musl-tools (they must already be present)."
parse_args "$@"

OUTPUT="${OUTPUT:-$REPO_ROOT/target/deploy/handler.zip}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
BINARY="$TARGET_DIR/$TARGET_TRIPLE/release/$HANDLER_BIN"

require_cmd python3 "python3 writes the zip and checks the binary"
[[ -f "$REPO_ROOT/Cargo.toml" ]] || die "no Cargo.toml in $REPO_ROOT"
[[ -f "$REPO_ROOT/host.json" ]] || die "no host.json in $REPO_ROOT: the Functions host needs it"

# Function folders: top-level directories with a function.json.  Found by
# looking rather than listed here, so a new function cannot be forgotten.
FUNCTION_DIRS=()
for f in "$REPO_ROOT"/*/function.json; do
    [[ -f "$f" ]] || continue
    FUNCTION_DIRS+=("$(basename "$(dirname "$f")")")
done
((${#FUNCTION_DIRS[@]} > 0)) || die "no function folders (*/function.json) in $REPO_ROOT"

# The host starts whatever host.json names; a mismatch only shows up as a
# host that never becomes healthy, so check it before the build.
python3 - "$REPO_ROOT/host.json" <<'PY'
import json, sys
with open(sys.argv[1]) as f:
    exe = json.load(f).get("customHandler", {}).get("description", {}).get("defaultExecutablePath")
if exe != "handler":
    sys.exit(f"package.sh: error: host.json customHandler.description.defaultExecutablePath is {exe!r}, expected 'handler'")
PY

as_root() {
    if ((EUID == 0)); then
        run "$@"
    elif command -v sudo >/dev/null 2>&1; then
        run sudo "$@"
    else
        die "need root (or sudo) to run: $(format_command "$@")"
    fi
}

# Tool output goes to stderr: stdout is only the path of the zip.
install_build_tools() {
    require_cmd rustup "the musl target is installed with rustup (https://rustup.rs)"
    if ! rustup target list --installed | grep -qx "$TARGET_TRIPLE"; then
        run rustup target add "$TARGET_TRIPLE" >&2
    fi
    # ring (used by rustls) compiles C and assembly; for a musl target cc-rs
    # needs a musl C compiler, which Debian and Ubuntu ship as musl-tools.
    if ! command -v musl-gcc >/dev/null 2>&1; then
        command -v apt-get >/dev/null 2>&1 ||
            die "musl-gcc not found and apt-get is unavailable: install your distribution's musl tools (musl-gcc)"
        as_root apt-get update >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools >&2
    fi
}

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
    install_build_tools
fi

# Strip through Cargo's profile override instead of editing Cargo.toml or
# depending on binutils' strip; --locked builds exactly the reviewed lock file.
# --no-default-features leaves out the `simulator` feature (the demo, the Authy
# simulator, AUTHY_SIMULATOR=embedded): the binary that runs in Azure cannot start
# a simulator at all.
log "building $HANDLER_BIN for $TARGET_TRIPLE"
(
    cd "$REPO_ROOT"
    run >&2 env CARGO_PROFILE_RELEASE_STRIP=symbols CC_x86_64_unknown_linux_musl=musl-gcc \
        cargo build --release --locked --no-default-features --target "$TARGET_TRIPLE" --bin "$HANDLER_BIN"
)

if is_dry_run; then
    log "would write $OUTPUT with: handler host.json ${FUNCTION_DIRS[*]}"
    exit 0
fi

mkdir -p "$(dirname "$OUTPUT")"
python3 - "$BINARY" "$REPO_ROOT" "$OUTPUT" "${FUNCTION_DIRS[@]}" <<'PY'
import os, stat, struct, sys, zipfile

binary, root, output, *function_dirs = sys.argv[1:]

def fail(msg):
    sys.exit(f"package.sh: error: {msg}")

# A binary that needs a dynamic loader (PT_INTERP) depends on the host
# image's libc: exactly what this build exists to avoid.
with open(binary, "rb") as f:
    elf = f.read()
if elf[:4] != b"\x7fELF" or elf[4] != 2:
    fail(f"{binary} is not a 64-bit ELF file")
phoff, = struct.unpack_from("<Q", elf, 0x20)
phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
for i in range(phnum):
    p_type, = struct.unpack_from("<I", elf, phoff + i * phentsize)
    if p_type == 3:  # PT_INTERP
        fail(f"{binary} is dynamically linked (has an ELF interpreter)")

entries = [("handler", binary, 0o755), ("host.json", os.path.join(root, "host.json"), 0o644)]
for d in sorted(function_dirs):
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            entries.append((os.path.relpath(path, root).replace(os.sep, "/"), path, 0o644))

tmp = output + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for arcname, path, mode in entries:
        # Fixed timestamps make the zip reproducible; Unix mode bits in
        # external_attr keep handler executable after extraction on Linux.
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(path, "rb") as f:
            z.writestr(info, f.read())
os.replace(tmp, output)
for arcname, _, mode in entries:
    print(f"  {oct(mode)[2:]} {arcname}", file=sys.stderr)
PY
log "wrote $OUTPUT"
printf '%s\n' "$OUTPUT"
