#!/usr/bin/env bash
# The crate's module dependency graph (cargo-modules), folded to top-level modules: prints the
# edges, fails if a domain module (auth, session, users, admin, lifecycle, cache, …) imports
# the web layer or startup, and prints every import circle between top-level modules.
# Usage: bash scripts/module-graph.sh   (needs: cargo install cargo-modules --version 0.27.0 --locked)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo modules dependencies --lib --no-externs --no-fns --no-traits --no-types --no-sysroot --no-owns 2>/dev/null |
python3 -c '
import re, sys
edges = set()
for line in sys.stdin:
    m = re.search(r"\"logto_signin::(\w+)[^\"]*\" -> \"logto_signin::(\w+)[^\"]*\".*uses", line)
    if m and m.group(1) != m.group(2):
        edges.add((m.group(1), m.group(2)))
nodes = sorted({n for e in edges for n in e})
out = {n: sorted(b for a, b in edges if a == n) for n in nodes}
for n in nodes:
    print(n.ljust(10), "->", ", ".join(out[n]))
web = {"web", "startup"}
bad = sorted((a, b) for a, b in edges if b in web and a not in web)
# Strongly connected components (Tarjan): each one of more than one module is an import circle.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
    for w in out.get(v, []):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop(); on.discard(w); scc.append(w)
            if w == v: break
        if len(scc) > 1: sccs.append(sorted(scc))
for n in nodes:
    if n not in index: visit(n)
print()
print("domain modules importing the web layer:", bad or "none")
print("import circles between top-level modules:", sccs or "none")
sys.exit(1 if bad else 0)
'
