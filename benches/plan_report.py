#!/usr/bin/env python3
"""Runs the criterion plan benchmark and prints ns per server for plan() and for the floor (one
plain read of every server), with their ratio.

    python3 benches/plan_report.py          # from the repository root
"""
import json
import pathlib
import subprocess
import sys

root = pathlib.Path(__file__).resolve().parent.parent
subprocess.run(["cargo", "bench", "--bench", "plan", "--", "--noplot"], cwd=root, check=True, stdout=sys.stderr)


def median_ns(kind, n):
    path = root / "target/criterion/plan" / kind / str(n) / "new/estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


print(f"{'servers':>10}{'plan ns/server':>16}{'floor ns/server':>17}{'plan / floor':>14}")
for n in [1_000, 10_000, 100_000, 1_000_000]:
    p, f = median_ns("plan", n) / n, median_ns("floor", n) / n
    print(f"{n:>10}{p:>16.2f}{f:>17.2f}{p / f:>13.1f}x")
print("targets: <= 100 ns per server, within 3x of the floor")
