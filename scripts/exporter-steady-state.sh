#!/usr/bin/env bash
# Steady-state cost of the agent's exporter: runs `linkwise agent` on a profile with a
# 1 s collection interval, scrapes /metrics every second for DURATION seconds, and reports
# the agent's CPU (user+system over the window, as % of one core), its RSS at the end,
# and scrape latency (curl time_total: min / median / max) and size.
#
# Usage: scripts/exporter-steady-state.sh LINKWISE [PROFILE] [DURATION]   (default nvl72, 60)
set -euo pipefail
bin=$(readlink -f "${1:?usage: exporter-steady-state.sh LINKWISE [PROFILE] [DURATION]}")
profile=${2:-nvl72}
duration=${3:-60}
command -v curl >/dev/null || { echo "needs curl" >&2; exit 2; }
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
port=$((30000 + RANDOM % 20000))
"$bin" agent --source "profile:$profile" --kubelet-dir "$dir" --nfd-features-dir none \
  --no-annotation --pod-resources-socket "$dir/none.sock" --slurm-job-dir "$dir/jobs" \
  --metrics-addr "127.0.0.1:$port" --metrics-interval 1 2>"$dir/log" &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
sleep 3 # past start-up and the first collections
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
c0=$(cpu)
t0=$(date +%s.%N)
: > "$dir/times"
for _ in $(seq 1 "$duration"); do
  curl -s -o "$dir/body" -w '%{time_total}\n' "http://127.0.0.1:$port/metrics" >> "$dir/times"
  sleep 1
done
c1=$(cpu)
t1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
# Baseline in the same run: the same bytes served as a static file by Python's
# http.server, 30 back-to-back fetches of each.
mkdir -p "$dir/static" && cp "$dir/body" "$dir/static/metrics"
sport=$((port + 1))
(cd "$dir/static" && exec python3 -m http.server "$sport" --bind 127.0.0.1 >/dev/null 2>&1) &
spid=$!
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$sport/metrics" && break; sleep 0.1; done
: > "$dir/ours" ; : > "$dir/static.t"
for _ in $(seq 1 30); do
  curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/metrics" >> "$dir/ours"
  curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$sport/metrics" >> "$dir/static.t"
done
kill "$spid" 2>/dev/null
python3 - "$c0" "$c1" "$t0" "$t1" "$ticks" "$rss" "$dir/times" "$(wc -c < "$dir/body")" "$profile" "$dir/ours" "$dir/static.t" <<'PY'
import statistics, sys
c0, c1, t0, t1, ticks, rss = map(float, sys.argv[1:7])
times = sorted(float(x) * 1000 for x in open(sys.argv[7]) if x.strip())
size, profile = int(sys.argv[8]), sys.argv[9]
cpu = (c1 - c0) / ticks / (t1 - t0) * 100
print(f"profile {profile}: {len(times)} scrapes of {size} bytes over {t1 - t0:.0f} s, collection every 1 s")
print(f"agent CPU {cpu:.2f}% of one core; RSS {rss / 1024:.1f} MiB")
print(f"scrape latency (curl total) min {times[0]:.2f} ms, median {statistics.median(times):.2f} ms, max {times[-1]:.2f} ms")
ours = statistics.median(float(x) * 1000 for x in open(sys.argv[10]) if x.strip())
static = statistics.median(float(x) * 1000 for x in open(sys.argv[11]) if x.strip())
print(f"back to back: /metrics median {ours:.2f} ms vs the same bytes as a static file (python http.server) {static:.2f} ms: ratio {ours / static:.2f}")
PY
