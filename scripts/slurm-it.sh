#!/usr/bin/env bash
# Real-Slurm integration test and steering measurement: Debian's slurmctld, slurmd and
# munge on localhost with fake GPU device files and the gres.conf linkwise generates.
#
# Usage:
#   scripts/slurm-it.sh [--install] LINKWISE [PROFILE...]        test (default dgx1-v100 nvlink-bridge-pairs)
#   scripts/slurm-it.sh --measure [--install] LINKWISE [PROFILE...]   print the steering table
#   scripts/slurm-it.sh --exec CMD LINKWISE PROFILE        run CMD against the running Slurm
# Environment: LINKS=lanes|steer (gres.conf Links=), JOB_SUBMIT_LUA=FILE (installed as
# job_submit.lua with JobSubmitPlugins=lua), EXTRA_NODES=N (N more nodes without GPUs,
# HOST-2.., each its own slurmd on its own port: a multi-node cluster on one host).
#
# Test: for each profile, with Links= as NVLink lanes, `srun --gres=gpu:2` and `srun
# --gpus=2` must each get an NVLink-connected pair; with the mitigation (gres --links steer
# and deploy/slurm/job_submit.lua) the rewrite must happen and 2- and 4-GPU jobs on a free
# node, and a 2-GPU job beside a 1-GPU job, must get sets as good as `linkwise alloc`'s.
# Exit 1 on any failure.
# Measure: N = 1..GPUs for both request forms, with every GPU free and again while a job
# holds some GPUs, each compared with `linkwise alloc` on the same availability
# (scripts/slurm-compare.py); prints a Markdown table.
#
# --install apt-installs slurmctld slurmd slurm-client munge when missing. Without root,
# mknod, the packages, or on a host that has real /dev/nvidia* files, it prints SKIP and
# exits 0. Everything runs privately: its own munged (own key and socket), its own ports,
# state and logs in a temporary folder. Every daemon it starts is stopped by PID and every
# device file it made is removed, whatever happens.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
lua=$(cd "$here/.." && pwd)/deploy/slurm/job_submit.lua
mode=test
exec_cmd=
install=
while [ $# -gt 0 ]; do
  case "$1" in
    --measure) mode=measure ;;
    --install) install=1 ;;
    --exec) mode=exec; exec_cmd=$2; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) break ;;
  esac
  shift
done
bin=$(readlink -f "${1:?usage: slurm-it.sh [--measure] [--install] LINKWISE [PROFILE...]}")
shift
profiles=("$@")
[ ${#profiles[@]} -gt 0 ] || profiles=(dgx1-v100 nvlink-bridge-pairs)

skip() { echo "SKIP slurm-it: $*"; exit 0; }
log() { echo "slurm-it: $*" >&2; }

[ "$(id -u)" = 0 ] || skip "needs root (mknod, daemons as root); run it as root to test against a real Slurm"
if [ -n "$install" ]; then
  need=()
  for p in slurmctld slurmd slurm-client munge; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    # The packages' own services must not start: this script runs private daemons.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null 2>&1
    rc=$?
    rm -f /usr/sbin/policy-rc.d
    [ $rc = 0 ] || skip "apt-get install ${need[*]} failed (no Debian archive reachable?)"
  fi
fi
for b in slurmctld slurmd srun sbatch sinfo scontrol munged; do
  command -v "$b" >/dev/null || skip "$b not installed (Debian: slurmctld slurmd slurm-client munge; or pass --install)"
done
ls /dev/nvidia[0-9]* >/dev/null 2>&1 && skip "/dev/nvidia* exist (a real GPU host): not touching them"

dir=
made=()
pids=()
steps_before=$(pgrep -x slurmstepd | tr '\n' ' ')

stop_slurm() {
  # Slurm daemons first (no new job steps after this), then the job step daemons they
  # left, then munged, all by the PIDs this script started.
  local p sig
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 1 30); do
    local alive=
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for sig in TERM KILL; do
    for p in $(pgrep -x slurmstepd); do
      case " $steps_before " in *" $p "*) ;; *) kill -s "$sig" "$p" 2>/dev/null ;; esac
    done
    sleep 0.2
  done
  pids=()
  for f in "${made[@]}"; do rm -f "$f"; done
  made=()
  [ -n "$dir" ] && rm -rf "$dir"
  dir=
}
trap stop_slurm EXIT
trap 'exit 130' INT TERM

# start_slurm PROFILE: private munged, slurmctld and slurmd for the profile's GPUs.
start_slurm() {
  local profile=$1 n i node gpu_type cpus mem port x partition_nodes
  local -a extra
  dir=$(mktemp -d /tmp/linkwise-slurm-it.XXXXXX)
  chmod 755 "$dir"
  n=$("$bin" topo --source "profile:$profile" -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["gpus"]))') ||
    { echo "FAIL slurm-it: linkwise topo --source profile:$profile failed"; exit 1; }
  for ((i = 0; i < n; i++)); do
    mknod -m 666 "/dev/nvidia$i" c 195 "$i" 2>/dev/null || skip "mknod /dev/nvidia$i not permitted"
    made+=("/dev/nvidia$i")
  done
  node=$(hostname -s)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
  chmod 700 "$dir/munge"
  # Cores= in the profile's gres.conf name the profile's cores; this machine has its own.
  "$bin" slurm gres --links "${LINKS:-lanes}" --source "profile:$profile" --node-name "$node" | sed -E 's/ Cores=[0-9,-]+//' > "$dir/gres.conf"
  gpu_type=$(grep -m1 -o 'Type=[a-z0-9]*' "$dir/gres.conf" | cut -d= -f2)
  cpus=$(nproc)
  mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
  # Ports away from the defaults and from the previous run's (TIME_WAIT).
  port=$((20000 + (RANDOM % 20000) * 2))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=linkwise
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldPort=$port
SlurmdPort=$((port + 1))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MpiDefault=none
${JOB_SUBMIT_LUA:+JobSubmitPlugins=lua}
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:$gpu_type:$n State=UNKNOWN
CONF
  extra=()
  for ((i = 2; i <= ${EXTRA_NODES:-0} + 1; i++)); do
    extra+=("$node-$i")
    echo "NodeName=$node-$i NodeAddr=127.0.0.1 NodeHostname=$node Port=$((port + i)) CPUs=$cpus RealMemory=$mem State=UNKNOWN" >> "$dir/slurm.conf"
  done
  partition_nodes=$(IFS=,; echo "$node${extra[*]:+,${extra[*]}}")
  echo "PartitionName=debug Nodes=$partition_nodes Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES" >> "$dir/slurm.conf"

  if [ -n "${JOB_SUBMIT_LUA:-}" ]; then cp "$JOB_SUBMIT_LUA" "$dir/job_submit.lua"; fi
  export SLURM_CONF=$dir/slurm.conf

  dd if=/dev/urandom of="$dir/munge/key" bs=1024 count=1 2>/dev/null && chmod 400 "$dir/munge/key"
  munged -f -F --socket="$dir/munge/socket" --key-file="$dir/munge/key" \
    --pid-file="$dir/munge/pid" --seed-file="$dir/munge/seed" >"$dir/log/munged.out" 2>&1 &
  pids+=($!)
  disown $!
  for _ in $(seq 1 50); do [ -S "$dir/munge/socket" ] && break; sleep 0.1; done
  [ -S "$dir/munge/socket" ] || { cat "$dir/log/munged.out"; skip "munged does not start here"; }
  slurmctld -D -i >"$dir/log/ctld.out" 2>&1 &
  pids+=($!)
  disown $!
  slurmd -D >"$dir/log/slurmd.out" 2>&1 &
  pids+=($!)
  disown $!
  for x in "${extra[@]}"; do
    slurmd -D -N "$x" >"$dir/log/slurmd-$x.out" 2>&1 &
    pids+=($!)
    disown $!
  done
  for _ in $(seq 1 150); do
    if [ "$(sinfo -h -N -o %t 2>/dev/null | grep -cx idle)" = $((${EXTRA_NODES:-0} + 1)) ]; then return 0; fi
    sleep 0.2
  done
  echo "FAIL slurm-it: Slurm did not reach idle for $profile within 30 s; logs:"
  tail -n 20 "$dir"/log/* 2>/dev/null
  exit 1
}

# job_gpus REQ...: run one job step, print Slurm's GRES index list for it.
job_gpus() {
  timeout 60 srun -N1 -n1 "$@" bash -c 'echo "${SLURM_STEP_GPUS:-${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-}}}"' 2>>"$dir/log/srun.err"
}

# hold K: a batch job that keeps K GPUs; prints "JOBID IDX".
hold() {
  local id idx
  id=$(sbatch --parsable -N1 -n1 --gres=gpu:"$1" -o /dev/null --wrap 'sleep 3600') || return 1
  for _ in $(seq 1 100); do
    idx=$(scontrol -d show job "$id" 2>/dev/null | grep -o 'GRES=gpu[^ ]*(IDX:[^)]*)' | sed -E 's/.*IDX:([^)]*)\)/\1/')
    [ -n "$idx" ] && { echo "$id $idx"; return 0; }
    sleep 0.1
  done
  return 1
}

complement() { # complement N IDXLIST -> free indices
  python3 - "$1" "$2" <<'PY'
import sys
n, spec = int(sys.argv[1]), sys.argv[2]
used = set()
for p in filter(None, spec.split(",")):
    a, _, b = p.partition("-")
    used.update(range(int(a), int(b or a) + 1))
print(",".join(str(i) for i in range(n) if i not in used))
PY
}

gpu_count() { grep -c 'Name=gpu' "$dir/gres.conf"; }

fmt_set() { # fmt_set COMPARE_JSON WHICH(linkwise|0|1...)
  python3 - "$1" "$2" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
w = sys.argv[2]
x = d["linkwise"] if w == "linkwise" else d["slurm"][int(w)]
if "score" not in x:
    print(",".join(map(str, x["gpus"])) + " (" + x.get("verdict", "?") + ")")
    sys.exit()
s = x["score"]
ring = s["bottleneckMbps"] / 1000
txt = ",".join(map(str, x["gpus"])) + f" ({s['islands']} isl, ring {ring:g})"
if w != "linkwise" and x["verdict"] != "same":
    txt = f"**{txt} {x['verdict']}**"
print(txt)
PY
}

measure_profile() {
  local profile=$1 n k held id idx avail N a b cmp
  start_slurm "$profile"
  n=$(gpu_count)
  for k in 0 1 3; do
    [ "$k" -lt "$n" ] || continue
    held=""
    id=""
    if [ "$k" -gt 0 ]; then
      read -r id idx < <(hold "$k") || { echo "FAIL slurm-it: holding $k GPUs did not start"; exit 1; }
      held=$idx
    fi
    avail=$(complement "$n" "$held")
    for ((N = 1; N <= n - k; N++)); do
      a=$(job_gpus --gres=gpu:"$N")
      b=$(job_gpus --gpus="$N")
      cmp=$(python3 "$here/slurm-compare.py" "$bin" "$profile" "$dir/gres.conf" "$avail" "$N" "$a" "$b") ||
        { echo "FAIL slurm-it: comparing $a / $b failed"; exit 1; }
      echo "| \`$profile\` | ${LINKS:-lanes}${JOB_SUBMIT_LUA:+ + lua} | ${held:--} | $N | $(fmt_set "$cmp" 0) | $(fmt_set "$cmp" 1) | $(fmt_set "$cmp" linkwise) |"
    done
    [ -n "$id" ] && scancel "$id" && sleep 0.5
  done
  stop_slurm
}

# check WHAT AVAIL REQ...: run `srun REQ`, compare with linkwise on AVAIL; WHAT is
# "nvlink" (every pair of the GPUs NVLink-connected) or "same" (as good as linkwise's).
check() {
  local what=$1 avail=$2 got cmp res
  shift 2
  local n=${*##*[:=]}
  got=$(job_gpus "$@")
  if [ -z "$got" ]; then
    echo "FAIL slurm-it: $cur: srun $* gave no GPUs: $(tail -n 3 "$dir/log/srun.err" 2>/dev/null)"
    return 1
  fi
  cmp=$(python3 "$here/slurm-compare.py" "$bin" "$cur" "$dir/gres.conf" "$avail" "$n" "$got") || {
    echo "FAIL slurm-it: $cur: comparing srun $* -> $got failed"
    return 1
  }
  res=$(python3 - "$cmp" "$what" "$(
    "$bin" topo --source "profile:$cur" -o json
  )" <<'PY'
import json, sys
d, what, topo = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
s = d["slurm"][0]
gpus = s["gpus"]
cells = [topo["matrix"][a][b] for a in gpus for b in gpus if a < b]
ok = all(c.startswith("NV") for c in cells) if what == "nvlink" else s["verdict"] in ("same", "better")
print(("ok" if ok else "bad") + " GPUs " + ",".join(map(str, gpus)) + " (" + " ".join(cells) + "; "
      + s["verdict"] + " vs linkwise " + ",".join(map(str, d["linkwise"]["gpus"])) + ")")
PY
  )
  echo "slurm-it: $cur [$config]: srun $* -> ${res#* } [$what]"
  [ "${res%% *}" = ok ] || { echo "FAIL slurm-it: $cur [$config]: srun $* did not get $what"; return 1; }
}

test_profile() {
  local profile=$1 fail=0 n all id idx
  cur=$profile
  # As Slurm ships (Links = NVLink lanes): a pair must be NVLink-connected.
  config=lanes
  LINKS=lanes start_slurm "$profile"
  n=$(gpu_count)
  all=$(complement "$n" "")
  check nvlink "$all" --gres=gpu:2 || fail=1
  check nvlink "$all" --gpus=2 || fail=1
  stop_slurm
  # Mitigated (steering Links + job_submit.lua): the rewrite must happen, and jobs of 2
  # and 4 GPUs on a free node, and of 2 next to a 1-GPU job, must be as good as linkwise's.
  config="steer + lua"
  LINKS=steer JOB_SUBMIT_LUA=$lua start_slurm "$profile"
  check same "$all" --gres=gpu:2 || fail=1
  if ! grep -q 'linkwise: job from uid' "$dir/log/slurmctld.log"; then
    echo "FAIL slurm-it: $profile: job_submit.lua did not rewrite --gres=gpu:2 (slurmctld.log below)"
    grep -i -E 'lua|job_submit' "$dir/log/slurmctld.log" | tail -n 5
    fail=1
  fi
  [ "$n" -ge 4 ] && { check same "$all" --gres=gpu:4 || fail=1; }
  if read -r id idx < <(hold 1); then
    check same "$(complement "$n" "$idx")" --gres=gpu:2 || fail=1
    scancel "$id"
  else
    echo "FAIL slurm-it: $profile: a 1-GPU holding job did not start"
    fail=1
  fi
  stop_slurm
  return $fail
}

if [ "$mode" = exec ]; then
  start_slurm "${profiles[0]}"
  bash -c "$exec_cmd"
  rc=$?
  stop_slurm
  exit $rc
fi

if [ "$mode" = measure ]; then
  echo "| profile | Links= | held by another job | N | \`srun --gres=gpu:N\` | \`srun --gpus=N\` | \`linkwise alloc --count N\` |"
  echo "|---|---|---|---|---|---|---|"
  for p in "${profiles[@]}"; do
    LINKS=lanes measure_profile "$p"
    LINKS=steer measure_profile "$p"
    LINKS=steer JOB_SUBMIT_LUA=$lua measure_profile "$p"
  done
  exit 0
fi

status=0
for p in "${profiles[@]}"; do test_profile "$p" || status=1; done
[ $status = 0 ] && echo "PASS slurm-it (${profiles[*]})"
exit $status
