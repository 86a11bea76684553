#!/usr/bin/env python3
"""Score the GPUs Slurm handed out against linkwise's choice on the same availability.

Usage: slurm-compare.py LINKWISE PROFILE GRES_CONF AVAILABLE N SLURM_IDX...

AVAILABLE and each SLURM_IDX are Slurm GRES index lists ("0,3", "0-2,5", "" for none);
Slurm's GRES index i is the i-th GPU line of GRES_CONF, whose File=/dev/nvidiaM names
linkwise's GPU M. Prints one JSON object: both sets as linkwise GPU indices, their
scores and a verdict per Slurm set ("same", "better" or "worse", by islands, hosts, ring
bottleneck, then total NVLink bandwidth).
"""

import json
import re
import subprocess
import sys


def expand(spec):
    out = []
    for part in filter(None, spec.split(",")):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def minors(gres_conf):
    """Slurm GRES index -> /dev/nvidia minor, in gres.conf line order."""
    out = []
    with open(gres_conf) as f:
        for line in f:
            m = re.search(r"\bFile=/dev/nvidia(\d+)\b", line)
            if m and re.search(r"\bName=gpu\b", line):
                out.append(int(m.group(1)))
    return out


def alloc(linkwise, profile, available, n):
    cmd = [linkwise, "alloc", "--source", f"profile:{profile}", "--count", str(n), "-o", "json"]
    if available:
        cmd += ["--available", ",".join(map(str, available))]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def key(score):
    return (score["islands"], score["hosts"], -score["bottleneckMbps"], -score["totalMbps"])


def main():
    linkwise, profile, gres_conf, available, n = sys.argv[1:6]
    n = int(n)
    to_gpu = minors(gres_conf)
    avail = sorted(to_gpu[i] for i in expand(available))
    best = alloc(linkwise, profile, avail, n)
    out = {"linkwise": {"gpus": best["devices"], "score": best["score"]}, "slurm": []}
    for spec in sys.argv[6:]:
        got = sorted(to_gpu[i] for i in expand(spec))
        if len(got) != n:
            out["slurm"].append({"gpus": got, "verdict": "wrong-count"})
            continue
        mine = alloc(linkwise, profile, got, n)
        a, b = key(mine["score"]), key(best["score"])
        verdict = "same" if a == b else ("worse" if a > b else "better")
        out["slurm"].append({"gpus": got, "score": mine["score"], "verdict": verdict})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
