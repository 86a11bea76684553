#!/usr/bin/env python3
"""Writes random `linkwise alloc --batch` requests: random availability, k = 1..16.

Usage: scripts/alloc-requests.py GPUS COUNT [SEED] > requests.jsonl
Each line: {"count": k, "available": [positions...]} with about 70% of GPUs free.
"""
import json
import random
import sys

gpus = int(sys.argv[1])
count = int(sys.argv[2])
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 42)
for _ in range(count):
    free = [p for p in range(gpus) if rng.random() < 0.7]
    k = rng.randint(1, 16)
    if len(free) < k:
        free = list(range(gpus))
    print(json.dumps({"count": k, "available": free}))
