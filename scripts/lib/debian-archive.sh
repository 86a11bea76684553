# Which Debian archive (and apt proxy) to bootstrap a chroot from: the host's
# own apt configuration, or LINKWISE_DEBIAN_MIRROR. Sourced by
# scripts/riscv64-build; no mirror address is written into the scripts, so a
# site with its own mirror or proxy works unchanged.
# shellcheck shell=bash

# debian_archive_sources [ETC_APT]: "URI SUITE" for every enabled binary
# (`deb`) source of the host's apt configuration, in the order apt reads them:
# sources.list, then sources.list.d/*.list (one-line format) and
# sources.list.d/*.sources (deb822), the latter two by file name. Only http,
# https and file URIs (what debootstrap can fetch from); trailing slashes
# dropped.
debian_archive_sources() {
    local etc="${1:-/etc/apt}" f files=()
    [ -f "$etc/sources.list" ] && files+=("$etc/sources.list")
    for f in "$etc"/sources.list.d/*.list "$etc"/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 0
    # sort by name within sources.list.d, as apt does (sources.list stays first).
    local sorted=() rest=()
    for f in "${files[@]}"; do
        case "$f" in "$etc/sources.list") sorted+=("$f") ;; *) rest+=("$f") ;; esac
    done
    if [ "${#rest[@]}" -gt 0 ]; then
        while IFS= read -r f; do sorted+=("$f"); done < <(printf '%s\n' "${rest[@]}" | LC_ALL=C sort)
    fi
    for f in "${sorted[@]}"; do
        case "$f" in
            *.sources) awk '
                function flush(   i, j, nu, ns, u, s) {
                    if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) != "no") {
                        nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
                        for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++)
                            if (u[i] != "" && s[j] != "") print u[i], s[j]
                    }
                    types = uris = suites = enabled = ""; field = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ { # continuation of the previous field
                    v = $0; sub(/^[ \t]+/, "", v)
                    if (field == "types") types = types " " v
                    else if (field == "uris") uris = uris " " v
                    else if (field == "suites") suites = suites " " v
                    next
                }
                {
                    k = $0; sub(/:.*/, "", k); k = tolower(k)
                    v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
                    field = k
                    if (k == "types") types = v
                    else if (k == "uris") uris = v
                    else if (k == "suites") suites = v
                    else if (k == "enabled") enabled = v
                }
                END { flush() }
            ' "$f" ;;
            *) awk '
                { sub(/#.*/, "") }
                $1 == "deb" {
                    line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
                    if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
                    n = split(line, w, /[ \t]+/)
                    if (n >= 2) print w[1], w[2]
                }
            ' "$f" ;;
        esac
    done | while read -r uri suite; do
        case "$uri" in http://*|https://*|file:/*) ;; *) continue ;; esac
        while [ "${uri%/}" != "$uri" ]; do uri="${uri%/}"; done
        printf '%s %s\n' "$uri" "$suite"
    done
}

# debian_archive_candidates [ETC_APT]: the distinct archive URIs of the host's
# apt sources that can hold a release (security archives skipped: they hold
# no full release), in apt's order.
debian_archive_candidates() {
    debian_archive_sources "${1:-/etc/apt}" | awk '
        $2 ~ /-security$/ || $2 ~ /\/updates$/ { next }
        !seen[$1]++ { print $1 }
    '
}

# debian_archive_has SUITE URI: whether URI serves dists/SUITE/Release (true
# when curl is missing: debootstrap will tell).
debian_archive_has() {
    command -v curl >/dev/null || return 0
    curl -fsS --max-time 30 -o /dev/null "$2/dists/$1/Release" 2>/dev/null
}

# debian_archive SUITE [ETC_APT]: print the archive to bootstrap SUITE from:
# LINKWISE_DEBIAN_MIRROR when set (taken as is), else the first archive of the
# host's apt sources that serves dists/SUITE/Release (a Debian host's main
# archive serves every Debian suite; riscv64 is an official architecture since
# trixie, so the main archive has it). Fails, printing what it tried on stderr,
# when none does.
debian_archive() {
    local suite="$1" etc="${2:-/etc/apt}" uri tried=()
    if [ -n "${LINKWISE_DEBIAN_MIRROR:-}" ]; then
        printf '%s\n' "${LINKWISE_DEBIAN_MIRROR%/}"
        return 0
    fi
    while IFS= read -r uri; do
        if debian_archive_has "$suite" "$uri"; then
            printf '%s\n' "$uri"
            return 0
        fi
        tried+=("$uri")
    done < <(debian_archive_candidates "$etc")
    if [ "${#tried[@]}" -eq 0 ]; then
        echo "no archive in the host's apt sources ($etc/sources.list, $etc/sources.list.d/*.list, *.sources)" >&2
    else
        echo "no archive in the host's apt sources serves dists/$suite/Release (tried: ${tried[*]})" >&2
    fi
    return 1
}

# apt_proxy_env: print http_proxy=... / https_proxy=... lines for the proxies
# the host's apt uses (Acquire::http::Proxy, Acquire::https::Proxy), unless the
# environment already sets them; "DIRECT" and "false" mean no proxy.
apt_proxy_env() {
    command -v apt-config >/dev/null || return 0
    local scheme var value
    for scheme in http https; do
        var="${scheme}_proxy"
        [ -n "${!var:-}" ] && continue
        value="$(apt-config dump 2>/dev/null |
            sed -n "s/^Acquire::$scheme::Proxy \"\(.*\)\";\$/\1/Ip" | head -1)"
        case "$value" in ''|DIRECT|direct|false) continue ;; esac
        printf '%s=%s\n' "$var" "$value"
    done
}
