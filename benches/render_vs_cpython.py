#!/usr/bin/env python3
"""Runs the criterion render benchmark and CPython's str.format on the same 16 KiB script and
variables, and prints the medians side by side with the ratios.

    python3 benches/render_vs_cpython.py          # from the repository root
"""
import json
import pathlib
import statistics
import subprocess
import sys
import timeit

root = pathlib.Path(__file__).resolve().parent.parent
script = (root / "benches/data/script-16k.ps1").read_text()
variables = json.loads((root / "benches/data/vars.json").read_text())

# CPython first (it has no separate parse step: every call parses and renders).
expected = script.format(**variables)
timer = timeit.Timer(lambda: script.format(**variables))
loops, _ = timer.autorange()
samples = [timer.timeit(loops) / loops * 1e9 for _ in range(30)]
cpython_ns = statistics.median(samples)

subprocess.run(["cargo", "bench", "--bench", "render", "--", "--noplot"], cwd=root, check=True,
               stdout=sys.stderr)


def median_ns(name):
    path = root / "target/criterion/render" / name / "new/estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


prepared, full = median_ns("prepared"), median_ns("parse_and_render")
print(f"16 KiB script, 30 fields, {len(expected)} bytes out (medians)")
print(f"{'':24}{'time':>12}{'MiB/s':>10}{'vs CPython':>12}")
mib = len(script.encode()) / 2**20
for name, ns in [("CPython str.format", cpython_ns), ("kasm-scale render", prepared),
                 ("kasm-scale parse+render", full)]:
    print(f"{name:24}{ns / 1000:>10.2f}us{mib / (ns / 1e9):>10.0f}{cpython_ns / ns:>11.1f}x")
print(f"targets: render >= 10x (got {cpython_ns / prepared:.1f}x), parse+render >= 3x (got {cpython_ns / full:.1f}x)")
