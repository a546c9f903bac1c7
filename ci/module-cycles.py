#!/usr/bin/env python3
"""Lists the circles among a crate's top-level modules (from `crate::` paths in code, not in
comments or test modules). Exit 1 when there is one. Usage: module-cycles.py CRATE_SRC_DIR..."""
import collections, glob, os, re, sys

def graph(root):
    files = [f for f in glob.glob(os.path.join(root, "**/*.rs"), recursive=True)
             if os.path.relpath(f, root) not in ("lib.rs", "main.rs") and "/bin/" not in f]
    top = lambda f: os.path.relpath(f, root).split("/")[0].removesuffix(".rs")
    mods = {top(f) for f in files}
    edges = collections.defaultdict(set)
    for f in files:
        code = open(f).read().split("#[cfg(test)]")[0]
        code = "\n".join(l for l in code.splitlines() if not l.strip().startswith("//"))
        names = re.findall(r"crate::(\w+)", code)
        for group in re.findall(r"use crate::\{([^}]*)\}", code):
            names += re.findall(r"\b(\w+)\b", group)
        edges[top(f)] |= {n for n in names if n in mods and n != top(f)}
    return mods, edges

def circles(mods, edges):
    index, low, stack, on, found = {}, {}, [], set(), []
    def visit(v):
        index[v] = low[v] = len(index); stack.append(v); on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop(); on.discard(w); component.append(w)
                if w == v: break
            if len(component) > 1: found.append(sorted(component))
    for v in sorted(mods):
        if v not in index: visit(v)
    return found

status = 0
for root in sys.argv[1:]:
    mods, edges = graph(root)
    found = circles(mods, edges)
    for component in found:
        status = 1
        print(f"{root}: circle among {', '.join(component)}")
        for m in component:
            print(f"  {m} -> {', '.join(sorted(edges[m] & set(component)))}")
    if not found:
        print(f"{root}: {len(mods)} modules, no circle")
sys.exit(status)
