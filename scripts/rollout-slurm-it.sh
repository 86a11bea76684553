#!/usr/bin/env bash
# `linkwise rollout run` with the slurm executor against a real Slurm: run it through
# scripts/slurm-it.sh, which starts slurmctld/slurmd for one node and exports SLURM_CONF:
#
#   scripts/slurm-it.sh --install --exec 'bash scripts/rollout-slurm-it.sh target/release/linkwise' \
#       target/release/linkwise dgx1-v100
#
# A clean rollout must drain the node before apply (apply checks `sinfo` says drained)
# and resume it after (idle again); a rollout whose apply fails must roll back, leave the
# node drained with the quarantine reason and exit 1. Exit 1 on any failure.
set -uo pipefail
bin=$(readlink -f "${1:?usage: rollout-slurm-it.sh LINKWISE}")
node=$(sinfo -h -o %N | head -1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
db="sqlite:$tmp/fleet.db"
fail=0
say() { echo "rollout-slurm-it: $*"; }
state() { sinfo -h -n "$node" -o %T | head -1; }

# The node must be in service first (ReturnToService=2 brings it up once slurmd registers).
for _ in $(seq 1 30); do
  case "$(state)" in idle*|mixed*|alloc*) break ;; esac
  sleep 1
done
say "node $node is $(state)"

cat > "$tmp/ok.yaml" <<PLAN
change: slurm-ok
executor: slurm
apply: "sinfo -h -n {node} -o %T | grep -q drain && echo {node} >> $tmp/applied"
verify: ["grep -qx {node} $tmp/applied"]
waves: [[$node]]
PLAN
if "$bin" rollout run "$tmp/ok.yaml" --db "$db" --command-timeout 60; then
  s=$(state)
  if grep -qx "$node" "$tmp/applied" && [[ "$s" == idle* || "$s" == mixed* ]]; then
    say "ok: a clean rollout drained $node for apply and resumed it ($s)"
  else
    say "FAIL: after a clean rollout $node is $s; applied: $(cat "$tmp/applied" 2>/dev/null)"
    fail=1
  fi
else
  say "FAIL: the clean rollout exited $?"
  "$bin" rollout status slurm-ok --db "$db"
  fail=1
fi

cat > "$tmp/bad.yaml" <<PLAN
change: slurm-bad
executor: slurm
apply: "exit 3"
rollback: "echo {node} >> $tmp/rolled-back"
waves: [[$node]]
PLAN
"$bin" rollout run "$tmp/bad.yaml" --db "$db" --command-timeout 60
rc=$?
s=$(state)
reason=$(sinfo -h -n "$node" -o %E | head -1)
if [ "$rc" = 1 ] && [[ "$s" == drain* ]] && [[ "$reason" == *"linkwise quarantine"* ]] && grep -qx "$node" "$tmp/rolled-back"; then
  say "ok: a failing apply rolled $node back and left it $s: $reason"
else
  say "FAIL: a failing apply: exit $rc, $node $s ($reason), rolled back: $(cat "$tmp/rolled-back" 2>/dev/null)"
  fail=1
fi
if ! "$bin" fleet quarantine --db "$db" | grep -q "^$node "; then
  say "FAIL: $node is not in the fleet store's quarantine"
  fail=1
fi
scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true
exit $fail
