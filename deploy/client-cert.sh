#!/usr/bin/env bash
# Create the client certificate B2C presents to the Function App, export it as
# a PFX that B2C accepts, print its SHA-1 thumbprint, and optionally upload it
# as a B2C policy key.
# shellcheck source-path=SCRIPTDIR
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GRAPH_KEYSETS_URL="https://graph.microsoft.com/beta/trustFramework/keySets"

SCRIPT_SUMMARY="Create a client certificate with openssl (RSA 2048, SHA-256, client-auth
extended key usage), export NAME.pfx with TripleDES-SHA1 encryption (the PFX
format B2C accepts), and print the SHA-1 thumbprint on stdout for
CLIENT_CERT_THUMBPRINTS.  With --pfx, an existing certificate (for example one
issued by your CA) is re-exported and used instead of a new self-signed one."
SCRIPT_DETAILS="With --upload, the PFX is uploaded to the B2C policy key --keyset through
Microsoft Graph (trustFramework/keySets, uploadPkcs12); the keyset is created
if missing.  Sign in first as a service principal of the B2C tenant with the
Graph application permission TrustFrameworkKeySet.ReadWrite.All.
The private key and the PFX are written with mode 600; keep --out-dir outside
the repository."

opt --out-dir OUT_DIR "" "Folder for NAME.key.pem, NAME.cert.pem, NAME.pfx (and NAME.pfx-password)."
opt --name CERT_NAME b2c-authy-client "Base name of the files."
opt --subject CERT_SUBJECT "/CN=b2c-authy-client" "Certificate subject (openssl -subj form)."
opt --days CERT_DAYS 365 "Validity of a new certificate in days."
opt --pfx SOURCE_PFX "" "Use this existing PFX (password in PFX_PASSWORD) instead of creating a certificate."
flag --upload UPLOAD_KEYSET "Upload the PFX as the B2C policy key --keyset."
opt --keyset KEYSET_NAME B2C_1A_RestApiClientCertificate "B2C policy key (keyset) name; the B2C_1A_ prefix is added if missing."
flag --force FORCE "Overwrite existing files in --out-dir."
env_opt PFX_PASSWORD "Password of the PFX. Generated (and saved to NAME.pfx-password) when unset; required with --pfx."
parse_args "$@"

require OUT_DIR
require_cmd openssl "install OpenSSL"
[[ "$CERT_DAYS" =~ ^[1-9][0-9]*$ ]] || die "--days must be a positive whole number, not '$CERT_DAYS'"
[[ -z "$SOURCE_PFX" || -f "$SOURCE_PFX" ]] || die "--pfx file $SOURCE_PFX not found"
if [[ -n "$SOURCE_PFX" && -z "${PFX_PASSWORD:-}" ]]; then
    die "set PFX_PASSWORD to the password of $SOURCE_PFX"
fi
# B2C policy key ids are case-insensitive: b2c_1a_x is B2C_1A_x.
if [[ "${KEYSET_NAME^^}" == B2C_1A_* ]]; then
    KEYSET_NAME="B2C_1A_${KEYSET_NAME:7}"
else
    KEYSET_NAME="B2C_1A_$KEYSET_NAME"
fi
if [[ "${UPLOAD_KEYSET:-0}" == 1 ]]; then
    require_az
fi

key_file="$OUT_DIR/$CERT_NAME.key.pem"
cert_file="$OUT_DIR/$CERT_NAME.cert.pem"
pfx_file="$OUT_DIR/$CERT_NAME.pfx"
password_file="$OUT_DIR/$CERT_NAME.pfx-password"

# Replacing the key of a certificate that B2C still uses breaks sign-ins, so
# existing files are only overwritten on request.
if [[ "${FORCE:-0}" != 1 ]]; then
    for f in "$key_file" "$cert_file" "$pfx_file"; do
        [[ ! -e "$f" ]] || die "$f exists; use --force to replace it, or another --out-dir/--name"
    done
fi
if git -C "$(dirname "$OUT_DIR")" rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
    ! git -C "$(dirname "$OUT_DIR")" check-ignore -q "$OUT_DIR" 2>/dev/null; then
    warn "$OUT_DIR is inside a git work tree and not ignored: do not commit the private key"
fi

# Everything this script writes is private (key, PFX, password).
umask 077
make_tmp_dir
# A folder this run creates is removed again if the run fails before the PFX
# is written, rather than left empty or half-filled.
created_out_dir=0
if ! is_dry_run && [[ ! -d "$OUT_DIR" ]]; then
    mkdir -p "$OUT_DIR"
    created_out_dir=1
fi
abandon() { # abandon MESSAGE
    if ((created_out_dir)); then
        rm -rf "$OUT_DIR"
    fi
    die "$1"
}

if [[ -z "${PFX_PASSWORD:-}" ]]; then
    # 24 random bytes, base64: no quoting issues in JSON or the portal.
    PFX_PASSWORD="$(head -c 24 /dev/urandom | base64)"
    if ! is_dry_run; then
        (umask 077 && printf '%s\n' "$PFX_PASSWORD" >"$password_file")
        log "generated the PFX password: $password_file"
    fi
fi
export PFX_PASSWORD # openssl reads it with env:PFX_PASSWORD, not from argv

if [[ -z "$SOURCE_PFX" ]]; then
    # Self-signed, for development and test: B2C's documentation asks for a
    # CA-signed certificate in production (use --pfx with that one).
    log "creating a self-signed client certificate ($CERT_SUBJECT, $CERT_DAYS days)"
    run openssl req -x509 -newkey rsa:2048 -sha256 -days "$CERT_DAYS" -nodes \
        -keyout "$key_file" -out "$cert_file" -subj "$CERT_SUBJECT" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
        -addext "extendedKeyUsage=clientAuth" ||
        abandon "could not create the certificate (see openssl's message above)"
    pfx_inputs=(-in "$cert_file" -inkey "$key_file")
else
    log "re-exporting $SOURCE_PFX"
    # Key and certificates unencrypted in the private temp dir only.  A PFX
    # encrypted with RC2 or another old algorithm (as many CAs and Windows
    # still export) is read by OpenSSL 3 only with -legacy: try that second.
    read_opts=()
    if is_dry_run; then
        run openssl pkcs12 -in "$SOURCE_PFX" -passin env:PFX_PASSWORD -nodes -out "$TMP_DIR/source.pem"
    elif ! openssl pkcs12 -in "$SOURCE_PFX" -passin env:PFX_PASSWORD -nodes \
        -out "$TMP_DIR/source.pem" 2>"$TMP_DIR/openssl.err"; then
        if openssl pkcs12 -legacy -in "$SOURCE_PFX" -passin env:PFX_PASSWORD -nodes \
            -out "$TMP_DIR/source.pem" 2>/dev/null; then
            log "$SOURCE_PFX uses legacy encryption (e.g. RC2): read with openssl -legacy"
            read_opts=(-legacy)
        else
            abandon "could not read $SOURCE_PFX, also not with openssl -legacy: wrong PFX_PASSWORD, not a PKCS#12 file, or an encryption this OpenSSL cannot read. openssl said: $(head -n 3 "$TMP_DIR/openssl.err")"
        fi
    fi
    run openssl pkcs12 "${read_opts[@]}" -in "$SOURCE_PFX" -passin env:PFX_PASSWORD -clcerts -nokeys \
        -out "$cert_file" || abandon "could not extract the certificate from $SOURCE_PFX"
    pfx_inputs=(-in "$TMP_DIR/source.pem")
fi

# TripleDES-SHA1 for both the key and the certificate bags, SHA-1 MAC: the
# PKCS#12 encryption B2C accepts.  Spelled out rather than OpenSSL 3's
# -legacy, which encrypts the certificates with RC2-40 and needs the legacy
# provider; these options work on OpenSSL 1.1 and 3 alike.
run openssl pkcs12 -export "${pfx_inputs[@]}" -out "$pfx_file" -name "$CERT_NAME" \
    -passout env:PFX_PASSWORD -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 ||
    abandon "could not write $pfx_file (see openssl's message above)"

fingerprint="$(capture 'sha1 Fingerprint=<thumbprint>' openssl x509 -in "$cert_file" -noout -fingerprint -sha1)"
thumbprint="${fingerprint#*=}"
thumbprint="${thumbprint//:/}"
thumbprint="${thumbprint^^}"
expiry="$(capture 'notAfter=<expiry>' openssl x509 -in "$cert_file" -noout -enddate)"
log "certificate $cert_file, expires ${expiry#notAfter=}"
log "PFX for B2C: $pfx_file"

if [[ "${UPLOAD_KEYSET:-0}" == 1 ]]; then
    # B2C starts using an uploaded key at once; a Function App that does not
    # yet accept its thumbprint would refuse every call from then on.
    log "uploading to $KEYSET_NAME: CLIENT_CERT_THUMBPRINTS of the Function App must already include $thumbprint"
    # Key set ids are case-insensitive in B2C, and JMESPath cannot lower-case:
    # list the ids and compare here, then use the existing key set's spelling.
    keyset_ids="$(capture '' az rest --method get --uri "$GRAPH_KEYSETS_URL" \
        --query "value[].id" --output tsv)"
    keyset_id=""
    while IFS= read -r id; do
        if [[ -n "$id" && "${id,,}" == "${KEYSET_NAME,,}" ]]; then
            keyset_id="$id"
        fi
    done <<<"$keyset_ids"
    if [[ -z "$keyset_id" ]]; then
        # The service adds the B2C_1A_ prefix to the id it is given.
        run az rest --method post --uri "$GRAPH_KEYSETS_URL" \
            --headers "Content-Type=application/json" \
            --body "{\"id\": \"${KEYSET_NAME#B2C_1A_}\"}" --output none
        keyset_id="$KEYSET_NAME"
    elif [[ "$keyset_id" != "$KEYSET_NAME" ]]; then
        log "policy key $KEYSET_NAME exists as $keyset_id (B2C ids are case-insensitive)"
    fi
    # The request body holds the PFX and its password: a private file, never argv.
    body_file="$TMP_DIR/upload-pkcs12.json"
    if ! is_dry_run; then
        printf '{"key": "%s", "password": "%s"}\n' \
            "$(base64 <"$pfx_file" | tr -d '\n')" "$(json_escape "$PFX_PASSWORD")" >"$body_file"
    fi
    run az rest --method post --uri "$GRAPH_KEYSETS_URL/$keyset_id/uploadPkcs12" \
        --headers "Content-Type=application/json" --body "@$body_file" --output none
    if is_dry_run; then
        log "dry run: nothing was uploaded to policy key $keyset_id"
    else
        log "uploaded to policy key $keyset_id"
    fi
fi

log "SHA-1 thumbprint (for CLIENT_CERT_THUMBPRINTS):"
printf '%s\n' "$thumbprint"
