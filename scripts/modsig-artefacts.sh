#!/usr/bin/env bash
# Makes the real artefacts the module-signature tests check linkwise modsig against:
#   - RSA-2048, RSA-4096 ("another key") and ECDSA P-384 signing keys with self-signed
#     certificates, made by openssl the way the kernel's certs/Makefile makes its key;
#   - a real module (from Debian's signed kernel package, its own signature cut off)
#     signed by the kernel's own scripts/sign-file with each key (sha256, sha512, sha384),
#     plus .ko.xz, .ko.zst and .ko.gz copies;
#   - Debian-signed modules and the kernel image (vmlinuz) they belong to;
#   - what kmod's modinfo says of each (signer, sig_key, sig_hashalgo): facts.tsv.
# Usage: scripts/modsig-artefacts.sh OUTDIR
# Needs: sign-file (linux-kbuild-*), modinfo (kmod), openssl, xz, zstd, gzip, dpkg-deb;
# installed with apt-get when missing and running as root. The Debian kernel package
# (~70 MB) is cached in ${LINKWISE_CACHE_DIR:-/var/cache/linkwise}/modsig.
set -euo pipefail
out="${1:?usage: $0 OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

need_pkgs=()
sign_file="$(ls -1 /usr/lib/linux-kbuild-*/scripts/sign-file 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$sign_file" ] || need_pkgs+=(linux-kbuild-6.1)
command -v modinfo >/dev/null || need_pkgs+=(kmod)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v zstd >/dev/null || need_pkgs+=(zstd)
command -v xz >/dev/null || need_pkgs+=(xz-utils)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "modsig-artefacts: need ${need_pkgs[*]} (run as root to install)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${need_pkgs[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get install -y -q "${need_pkgs[@]}" >/dev/null; }
    sign_file="$(ls -1 /usr/lib/linux-kbuild-*/scripts/sign-file | sort -V | tail -1)"
fi

# The newest signed Debian kernel image package this machine's apt knows.
cache="${LINKWISE_CACHE_DIR:-/var/cache/linkwise}/modsig"
mkdir -p "$cache"
newest_image() {
    apt-cache search --names-only '^linux-image-[0-9.]+-[0-9]+-amd64$' | awk '{print $1}' | sort -V | tail -1
}
pkg="$(newest_image)"
if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    apt-get update -q >/dev/null 2>&1 || true
    pkg="$(newest_image)"
fi
[ -n "$pkg" ] || { echo "modsig-artefacts: no linux-image-*-amd64 package known to apt (run apt-get update)" >&2; exit 1; }
deb="$(ls -1 "$cache"/"${pkg}"_*.deb 2>/dev/null | tail -1 || true)"
if [ -z "$deb" ]; then
    (cd "$cache" && { apt-get download -q "$pkg" >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && apt-get download -q "$pkg" >/dev/null 2>&1; }; })
    deb="$(ls -1 "$cache"/"${pkg}"_*.deb | tail -1)"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/deb"
mkdir -p "$out/debian"
cp "$work"/deb/boot/vmlinuz-* "$out/debian/vmlinuz"
# Two small Debian-signed modules (uncompressed .ko in 6.1; .ko.xz in later kernels).
mapfile -t small < <(find "$work/deb/lib/modules" -name '*.ko*' -size -20k -printf '%s %p\n' | sort -n | head -2 | cut -d' ' -f2-)
for m in "${small[@]}"; do cp "$m" "$out/debian/"; done

# Signing keys, as certs/Makefile makes the kernel's (x509.genkey style).
cat > "$work/x509.genkey" <<'GENKEY'
[ req ]
default_bits = 4096
distinguished_name = req_distinguished_name
prompt = no
string_mask = utf8only
x509_extensions = myexts

[ req_distinguished_name ]
O = linkwise test
CN = linkwise test signing key

[ myexts ]
basicConstraints=critical,CA:FALSE
keyUsage=digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
GENKEY
mkkey() { # name, openssl key options..., CN
    local name="$1" cn="$2"; shift 2
    sed "s/^CN = .*/CN = $cn/" "$work/x509.genkey" > "$work/$name.genkey"
    openssl req -new -nodes -utf8 -sha256 -days 36500 -batch -x509 -config "$work/$name.genkey" \
        "$@" -outform PEM -out "$out/$name.crt" -keyout "$out/$name.key" 2>/dev/null
    openssl x509 -in "$out/$name.crt" -outform DER -out "$out/$name.der"
}
mkkey rsa "linkwise test RSA key" -newkey rsa:2048
mkkey ecdsa "linkwise test ECDSA key" -newkey ec -pkeyopt ec_paramgen_curve:secp384r1
mkkey other "linkwise other key" -newkey rsa:4096

# The base module: the first small Debian module with its signature cut off.
python3 - "${small[0]}" "$work/base.ko" <<'PY'
import struct, sys, lzma
data = open(sys.argv[1], "rb").read()
if data[:6] == b"\xfd7zXZ\x00":
    data = lzma.decompress(data)
magic = b"~Module signature appended~\n"
assert data.endswith(magic), "the Debian module is not signed"
sig_len = struct.unpack(">I", data[-40 + 8:-28])[0]
open(sys.argv[2], "wb").write(data[: len(data) - 40 - sig_len])
PY
cp "$work/base.ko" "$out/unsigned.ko"
sign() { # output, hash, key name
    cp "$work/base.ko" "$out/$1"
    "$sign_file" "$2" "$out/$3.key" "$out/$3.crt" "$out/$1"
}
sign rsa-sha256.ko sha256 rsa
sign rsa-sha512.ko sha512 rsa
sign ecdsa-sha384.ko sha384 ecdsa
sign other-sha256.ko sha256 other
xz --check=crc32 --lzma2=dict=1MiB -k -c "$out/rsa-sha256.ko" > "$out/rsa-sha256.ko.xz"
zstd -q -c "$out/ecdsa-sha384.ko" > "$out/ecdsa-sha384.ko.zst"
gzip -9 -n -c "$out/rsa-sha512.ko" > "$out/rsa-sha512.ko.gz"

# What modinfo says: file, signer, sig_key, sig_hashalgo (empty for unsigned).
: > "$out/facts.tsv"
for f in "$out"/*.ko "$out"/*.ko.* "$out"/debian/*.ko*; do
    printf '%s\t%s\t%s\t%s\n' "${f#"$out"/}" \
        "$(modinfo -F signer "$f" 2>/dev/null | head -1)" \
        "$(modinfo -F sig_key "$f" 2>/dev/null | head -1)" \
        "$(modinfo -F sig_hashalgo "$f" 2>/dev/null | head -1)" >> "$out/facts.tsv"
done
echo "modsig artefacts in $out ($(basename "$deb"))"
cat "$out/facts.tsv"
