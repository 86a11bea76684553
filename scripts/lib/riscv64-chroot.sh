# Shared by scripts/static-build (scripts/riscv64-build) and scripts/riscv-lab:
# the cached Debian trixie chroot, its lock and mounts, progress lines and timings.
# Source it with REPO and TOOL set; set CACHE after sourcing to move the cache,
# then call riscv64_paths once the options are parsed and riscv64_lock before
# touching the cache.
#
# The cache lies outside the repository, at a path that stays the same across
# clones, so that every run on a machine (CI runs each in a fresh clone) reuses
# it: $LINKWISE_CACHE_DIR/riscv64, else /var/cache/linkwise/riscv64 as root and
# ${XDG_CACHE_HOME:-$HOME/.cache}/linkwise/riscv64 otherwise. It holds
#   chroot/   the Debian trixie chroot (compiler, cross toolchain, qemu)
#   cargo/    CARGO_HOME in the chroot (the crates.io registry), at /cache/cargo
#   target/   the cargo target dir of the riscv64 builds, at /cache/target
#   lab/      the QEMU lab's kernel, busybox and work folder, at /cache/lab
#   lock      held (flock) by whichever run uses the cache
# and logs. The repository itself is never copied: it is bind-mounted at /work
# in the chroot on every run, so a build always sees the clone it runs from.
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

# The default cache folder (see above).
riscv64_default_cache() {
    if [ -n "${LINKWISE_CACHE_DIR:-}" ]; then
        printf '%s/riscv64\n' "${LINKWISE_CACHE_DIR%/}"
    elif [ "$(id -u)" = 0 ]; then
        printf '/var/cache/linkwise/riscv64\n'
    else
        printf '%s/linkwise/riscv64\n' "${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}"
    fi
}

CACHE="$(riscv64_default_cache)"
TARGET=riscv64gc-unknown-linux-gnu
IN_REPO=/work                       # the repository's mount point in the chroot
IN_CACHE=/cache                     # where cargo/, target/ and lab/ appear in the chroot

# Derived paths, once CACHE is final.
riscv64_paths() {
    mkdir -p "$CACHE"
    CACHE="$(cd "$CACHE" && pwd -P)"
    CHROOT="$CACHE/chroot"
    MARKER="$CHROOT/.linkwise-riscv64-ready"
    TIMINGS="$CACHE/timings.log"
    LOCK="$CACHE/lock"
}

# Take the cache's lock (fd 9) for the rest of this process, waiting while
# another run holds it: two runs sharing the chroot would mount their clones
# over each other and write the same target dir. A child of the holder (the
# lab runs scripts/riscv64-build) inherits fd 9, the same open lock, and goes on.
riscv64_lock() {
    command -v flock >/dev/null || die "needs flock (util-linux) to guard the shared cache $CACHE"
    if ! { [ -e /dev/fd/9 ] && [ /dev/fd/9 -ef "$LOCK" ]; }; then
        exec 9>>"$LOCK"
    fi
    if ! flock -n 9; then
        step "waiting for $LOCK: another run is using the cache"
        flock 9
    fi
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
    local d
    do_mount -t proc proc "$CHROOT/proc"
    do_mount --bind /dev "$CHROOT/dev"
    # The clone this run belongs to, at one fixed path (cargo's fingerprints
    # hold absolute paths).
    do_mount --bind "$REPO" "$CHROOT$IN_REPO"
    for d in cargo target lab; do
        mkdir -p "$CACHE/$d"
        do_mount --bind "$CACHE/$d" "$CHROOT$IN_CACHE/$d"
    done
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
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
        CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
        AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
        CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C target-feature=+crt-static" \
        SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        ${http_proxy:+http_proxy="$http_proxy"} ${https_proxy:+https_proxy="$https_proxy"} \
        ${no_proxy:+no_proxy="$no_proxy"} \
        bash -euo pipefail -c "$1"
}

# The package names of the workspace members (root Cargo.toml's members, each
# member's [package] name).
workspace_packages() {
    local m
    for m in $(sed -n '/^members *=/,/\]/p' "$REPO/Cargo.toml" | grep -o '"[^"]*"' | tr -d '"'); do
        sed -n '/^\[package\]/,/^\[/s/^name *= *"\([^"]*\)".*/\1/p' "$REPO/$m/Cargo.toml" 2>/dev/null | head -1
    done
}

# Cargo decides freshness from file times, which compare only within one
# source tree. The target dir is shared by every clone (all mounted at /work),
# so when the tree that built a target there last was another folder, the
# workspace's own packages are cleaned for that target first (the dependencies
# stay built); a stale build of another clone's sources is never reused. One
# stamp per target (riscv64's keeps its old name). Call with the chroot mounted.
riscv64_fresh_sources() { # [rust target; default riscv64's]
    local target="${1:-$TARGET}" stamp last="" pkgs="" p
    stamp="$CACHE/target/.linkwise-source"
    [ "$target" = riscv64gc-unknown-linux-gnu ] || stamp="$stamp.$target"
    [ -f "$stamp" ] && last="$(cat "$stamp")"
    if [ "$last" != "$REPO" ] && [ -d "$CACHE/target/$target" ]; then
        step "the cached $target build was made from ${last:-an unknown tree}: cleaning the workspace packages"
        # `cargo clean --workspace` where cargo has it, else each member by name.
        for p in $(workspace_packages); do pkgs="$pkgs -p $p"; done
        in_chroot "cd $IN_REPO && { cargo clean --quiet --release --target $target --workspace 2>/dev/null ||
            cargo clean --quiet --release --target $target $pkgs; }" ||
            die "cargo clean of the workspace packages failed"
    fi
    mkdir -p "$CACHE/target"
    printf '%s\n' "$REPO" >"$stamp.tmp" && mv -f "$stamp.tmp" "$stamp"
}
