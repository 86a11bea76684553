#!/usr/bin/env bash
# `linkwise rollout run` with the slurm executor against a real Slurm of three nodes: run
# it through scripts/slurm-it.sh, which starts slurmctld and one slurmd per node (the
# extra nodes on ports of their own) and exports SLURM_CONF:
#
#   EXTRA_NODES=2 scripts/slurm-it.sh --install \
#       --exec 'bash scripts/rollout-slurm-it.sh target/release/linkwise' target/release/linkwise dgx1-v100
#
# A clean rollout (a canary, then a wave of two) must drain each node before its apply —
# waiting for the job running there to end (the apply checks `sinfo` says drained and
# `squeue` lists nothing) — and resume it after: every node idle again. A rollout whose
# apply fails on the second wave's node must roll it back, leave it drained with the
# quarantine reason, record the quarantine, leave the third wave's node untouched (never
# drained, still pending) and exit 1. Exit 1 on any failure.
set -uo pipefail
bin=$(readlink -f "${1:?usage: rollout-slurm-it.sh LINKWISE}")
mapfile -t nodes < <(sinfo -h -N -o %N | sort -u)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db="sqlite:$tmp/fleet.db"
fail=0
say() { echo "rollout-slurm-it: $*"; }
state() { sinfo -h -n "$1" -o %T | head -1; }
if [ "${#nodes[@]}" -lt 3 ]; then
  say "FAIL: needs three Slurm nodes (EXTRA_NODES=2 for slurm-it.sh); sinfo has ${nodes[*]}"
  exit 1
fi
a=${nodes[0]} b=${nodes[1]} c=${nodes[2]}

# Every node in service first (ReturnToService=2 brings them up once their slurmd registers).
for n in "$a" "$b" "$c"; do
  for _ in $(seq 1 30); do
    case "$(state "$n")" in idle*|mixed*|alloc*) break ;; esac
    sleep 1
  done
  say "node $n is $(state "$n")"
done

# A job on the second node: its drain must wait for it.
job=$(sbatch --parsable -w "$b" -N1 -n1 -o /dev/null --wrap 'sleep 4') || { say "FAIL: sbatch"; exit 1; }
for _ in $(seq 1 50); do
  [ "$(squeue -h -j "$job" -o %T)" = RUNNING ] && break
  sleep 0.2
done
say "job $job runs on $b: $(squeue -h -j "$job" -o '%T %N')"

cat > "$tmp/ok.yaml" <<PLAN
change: slurm-ok
executor: slurm
apply: "sinfo -h -n {node} -o %T | grep -q drain && [ -z \"\$(squeue -h -w {node})\" ] && echo {node} >> $tmp/applied"
verify: ["grep -qx {node} $tmp/applied"]
waves: [[$a], [$b, $c]]
PLAN
if "$bin" rollout run "$tmp/ok.yaml" --db "$db" --command-timeout 60 --drain-timeout 60; then
  ok=1
  for n in "$a" "$b" "$c"; do
    s=$(state "$n")
    if ! grep -qx "$n" "$tmp/applied" || ! [[ "$s" == idle* || "$s" == mixed* ]]; then
      say "FAIL: after a clean rollout $n is $s; applied: $(tr '\n' ' ' < "$tmp/applied" 2>/dev/null)"
      ok=0 fail=1
    fi
  done
  [ "$ok" = 1 ] && say "ok: a clean rollout drained $a, $b (after job $job ended) and $c for apply and resumed them"
else
  say "FAIL: the clean rollout exited $?"
  "$bin" rollout status slurm-ok --db "$db"
  fail=1
fi

cat > "$tmp/bad.yaml" <<PLAN
change: slurm-bad
executor: slurm
apply: "[ {node} != $b ] && echo {node} >> $tmp/applied-bad"
rollback: "echo {node} >> $tmp/rolled-back"
waves: [[$a], [$b], [$c]]
PLAN
"$bin" rollout run "$tmp/bad.yaml" --db "$db" --command-timeout 60
rc=$?
sb=$(state "$b") sa=$(state "$a") sc=$(state "$c")
reason=$(sinfo -h -n "$b" -o %E | head -1)
if [ "$rc" = 1 ] && [[ "$sb" == drain* ]] && [[ "$reason" == *"linkwise quarantine"* ]] \
  && [ "$(cat "$tmp/rolled-back" 2>/dev/null)" = "$b" ] && [[ "$sa" == idle* ]] && [[ "$sc" == idle* ]]; then
  say "ok: a failing apply rolled $b back and left it $sb ($reason); $a done and idle, $c untouched ($sc)"
else
  say "FAIL: a failing apply: exit $rc; $a $sa, $b $sb ($reason), $c $sc; rolled back: $(cat "$tmp/rolled-back" 2>/dev/null)"
  fail=1
fi
if "$bin" rollout status slurm-bad --db "$db" -o json | python3 -c '
import json, sys
s = json.load(sys.stdin)
nodes = {n["node"]: n["state"] for n in s["nodes"]}
touched = {l.get("node") for l in s["log"] if l.get("command")}
sys.exit(0 if nodes[sys.argv[3]] == "pending" and sys.argv[3] not in touched and nodes[sys.argv[2]] == "quarantined" and nodes[sys.argv[1]] == "done" else 1)
' "$a" "$b" "$c"; then
  say "ok: the store says $a done, $b quarantined, $c pending with no command run on it"
else
  say "FAIL: rollout status of slurm-bad:"
  "$bin" rollout status slurm-bad --db "$db"
  fail=1
fi
if ! "$bin" fleet quarantine --db "$db" | grep -q "^$b "; then
  say "FAIL: $b is not in the fleet store's quarantine"
  fail=1
fi
scontrol update NodeName="$b" State=RESUME >/dev/null 2>&1 || true
exit $fail
