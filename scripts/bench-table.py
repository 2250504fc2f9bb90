#!/usr/bin/env python3
"""Prints a Markdown table of criterion medians for one group, with each
function's ratio to a baseline function measured in the same run.

usage: scripts/bench-table.py GROUP BASELINE [TARGET_DIR]
e.g.   scripts/bench-table.py seq_region memcpy
"""
import json, os, sys

group, base = sys.argv[1], sys.argv[2]
root = os.path.join(sys.argv[3] if len(sys.argv) > 3 else "target", "criterion", group)
rows = {}
for func in sorted(os.listdir(root)):
    fdir = os.path.join(root, func)
    if not os.path.isdir(fdir) or func == "report":
        continue
    for param in os.listdir(fdir):
        est = os.path.join(fdir, param, "new", "estimates.json")
        bench = os.path.join(fdir, param, "new", "benchmark.json")
        if not os.path.exists(est):
            continue
        median = json.load(open(est))["median"]["point_estimate"]
        tp = json.load(open(bench)).get("throughput") or {}
        nbytes = tp.get("Bytes") or tp.get("BytesDecimal")
        rows.setdefault(param, {})[func] = (median, nbytes)

def size_key(p):
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for u, m in units.items():
        if p.endswith(u):
            return int(p[: -len(u)]) * m
    return p

funcs = sorted({f for r in rows.values() for f in r if f != base})
print(f"| size | {base} | " + " | ".join(f"{f} | {f}/{base}" for f in funcs) + " |")
print("|---|---|" + "---|---|" * len(funcs))
for param in sorted(rows, key=size_key):
    r = rows[param]
    def cell(f):
        med, nbytes = r[f]
        if nbytes:
            return f"{nbytes / med:.1f} GB/s ({med / 1000:.2f} µs)"
        return f"{med:.1f} ns"
    if base not in r:
        continue
    line = f"| {param} | {cell(base)} | "
    for f in funcs:
        if f in r:
            line += f"{cell(f)} | {r[base][0] / r[f][0]:.2f}× | "
        else:
            line += "– | – | "
    print(line)
