# Shared by scripts/riscv64-build and scripts/riscv-lab: the cached Debian
# trixie chroot under .cache/riscv64, its mounts, progress lines and timings.
# Source it with REPO and TOOL set; set CACHE first to move the cache, then
# call riscv64_paths once the options are parsed.
# shellcheck shell=bash

START=$SECONDS
step() { printf '==> [%4ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { echo "$TOOL: ERROR: $*" >&2; exit 1; }
impossible() {
    if [ "${SKIP_OK:-0}" = 1 ]; then
        echo "SKIP: $TOOL: $*"
        exit 0
    fi
    echo "$TOOL: $*" >&2
    exit 2
}

CACHE="${CACHE:-$REPO/.cache/riscv64}"
TARGET=riscv64gc-unknown-linux-gnu
IN_REPO=/work                       # repo mount point inside the chroot

# Derived paths; the cache must lie inside the repository (it is reached
# through the repository's mount in the chroot).
riscv64_paths() {
    mkdir -p "$CACHE"
    CACHE="$(cd "$CACHE" && pwd)"
    case "$CACHE/" in
        "$REPO"/*) ;;
        *) die "the cache must be inside the repository ($REPO), got $CACHE" ;;
    esac
    REL_CACHE="${CACHE#"$REPO"/}"
    CHROOT="$CACHE/chroot"
    MARKER="$CHROOT/.linkwise-riscv64-ready"
    TIMINGS="$CACHE/timings.log"
    IN_CACHE="$IN_REPO/$REL_CACHE"
}

RUN_ID="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
TIMES=()
record() { # name seconds
    printf '%s %-22s %5ss\n' "$RUN_ID" "$1" "$2" >>"$TIMINGS"
    TIMES+=("$(printf '%-22s %5ss' "$1" "$2")")
}

MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null ||
            echo "$TOOL: warning: could not unmount ${MOUNTS[$i]}" >&2
    done
    MOUNTS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM
do_mount() { # mount args... -- last arg is the mount point
    local mp="${*: -1}"
    mkdir -p "$mp"
    mount "$@"
    MOUNTS+=("$mp")
}
mount_chroot() {
    do_mount -t proc proc "$CHROOT/proc"
    do_mount --bind /dev "$CHROOT/dev"
    do_mount --bind "$REPO" "$CHROOT$IN_REPO"
    cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf"
}
in_chroot() { # run a bash script in the chroot with a clean environment
    chroot "$CHROOT" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive \
        CARGO_HOME="$IN_CACHE/cargo" CARGO_TARGET_DIR="$IN_CACHE/target" \
        CARGO_TERM_COLOR=never \
        CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER=riscv64-linux-gnu-gcc \
        CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUNNER="qemu-riscv64 -L /usr/riscv64-linux-gnu" \
        CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
        CC_riscv64gc_unknown_linux_gnu=riscv64-linux-gnu-gcc \
        AR_riscv64gc_unknown_linux_gnu=riscv64-linux-gnu-ar \
        SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        bash -euo pipefail -c "$1"
}
