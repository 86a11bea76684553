#!/usr/bin/env bash
# A private PostgreSQL for the fleet store's tests and measurements: Debian's server on
# a temporary data directory and a free port on 127.0.0.1, trust authentication for the
# user `linkwise`, nothing else touched.
#
# Usage:
#   scripts/postgres.sh start DIR    start one in DIR (created); prints its URL on stdout
#                                   (postgres://linkwise@127.0.0.1:PORT/postgres)
#   scripts/postgres.sh stop DIR     stop the server started in DIR, by its PID, and
#                                   remove DIR
#
# start apt-installs `postgresql` when no server is installed and it runs as root (its
# services are kept from starting). As root the server runs as the `postgres` user (the
# server refuses root). Exit 1 when it cannot start; the server log is printed then.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return 0; }
    done
    command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
    return 1
}

start() {
    local dir=$1 bin port user=()
    if ! bin=$(bindir); then
        if [ "$(id -u)" = 0 ]; then
            log "installing Debian's postgresql"
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
                || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
            rm -f /usr/sbin/policy-rc.d
            bin=$(bindir) || { log "postgresql installed but no initdb found"; exit 1; }
        else
            log "no PostgreSQL server installed (apt-get install postgresql, or run as root)"
            exit 1
        fi
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$dir"
        user=(runuser -u postgres --)
    fi
    cd "$dir" # the server user may not be able to enter the caller's directory
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "${user[@]}" "$bin/initdb" -D "$dir/data" -U linkwise --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    "${user[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" start >&2 \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "$port" > "$dir/port"
    echo "postgres://linkwise@127.0.0.1:$port/postgres"
}

stop() {
    local dir=$1 pid
    [ -f "$dir/data/postmaster.pid" ] || { rm -rf "$dir"; return 0; }
    pid=$(head -1 "$dir/data/postmaster.pid")
    # SIGINT: PostgreSQL's fast shutdown (ends sessions, checkpoints, exits).
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) start "${2:?usage: postgres.sh start DIR}" ;;
    stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
    *) sed -n '2,14p' "$0"; exit 2 ;;
esac
