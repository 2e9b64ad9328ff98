#!/usr/bin/env python3
"""Holds the house rules of `src/` that no compiler checks: imports between
files run one way (no circle), and no file grows past about 600 lines.

A file's dependencies are the other files its `crate::`, `super::` and
`self::` paths name, outside `#[cfg(test)] mod tests`. A layer's front page
(`lib.rs`, a `mod.rs`) only declares modules and re-exports, so its paths
are not counted as dependencies, and a path through one is followed to the
file that defines the item. Comments are skipped. `LAYERS_VERBOSE=1`
prints the graph. Exits non-zero, naming the circle or the
file, when a rule is broken.
"""

import glob
import os
import re
import sys

MAX_LINES = 600


def module_path(path):
    parts = os.path.relpath(path, "src")[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return [] if parts == ["lib"] else parts


PATH = re.compile(r"\b(crate|super|self)::((?:[A-Za-z_][A-Za-z0-9_]*::)*)(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)")


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    files = sorted(glob.glob("src/**/*.rs", recursive=True))
    by_module = {tuple(module_path(f)): f for f in files}
    # What each front page re-exports, item name -> the file defining it.
    exports = {}
    for f in files:
        if f.endswith(("mod.rs", "lib.rs")):
            me = module_path(f)
            names = {}
            for sub, items in re.findall(r"pub(?:\(crate\))? use (?:self|crate)::([a-z_:]+)::\{?([^;}]*)\}?;", open(f).read()):
                base = me if f.endswith("mod.rs") else []
                target = by_module.get(tuple(base + sub.split("::")))
                for item in re.split(r"[,\s]+", items):
                    if item and target:
                        names[item] = target
            exports[f] = names

    def resolve(module, segments):
        module = list(module)
        for i, seg in enumerate(segments):
            if tuple(module + [seg]) in by_module:
                module.append(seg)
                continue
            here = by_module.get(tuple(module))
            # Through front pages that re-export the item, to its file.
            while seg in exports.get(here, {}) and exports[here][seg] != here:
                here = exports[here][seg]
            return here
        return by_module.get(tuple(module))

    graph = {}
    for f in files:
        text = open(f, encoding="utf-8").read()
        cut = text.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            text = text[:cut]
        # Comments (doc links among them) name items without importing them.
        text = "\n".join(line for line in text.split("\n") if not line.lstrip().startswith("//"))
        deps = set()
        if not f.endswith(("mod.rs", "lib.rs")):
            me = module_path(f)
            for root, middle, last in PATH.findall(text):
                base = {"crate": [], "super": me[:-1], "self": me}[root]
                prefix = [m for m in middle.split("::") if m]
                tails = [t.strip() for t in last.strip("{}").split(",")] if last.startswith("{") else [last]
                for tail in tails:
                    first = tail.split("::")[0].strip()
                    if not first or first == "self":
                        target = resolve(base, prefix)
                    else:
                        target = resolve(base, prefix + [first])
                    if target and target != f:
                        deps.add(target)
        graph[f] = deps

    failed = False
    state = {}

    def visit(node, stack):
        nonlocal failed
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                circle = stack[stack.index(dep):] + [dep]
                print("import circle: " + " -> ".join(circle))
                failed = True
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = "done"

    for f in files:
        if f not in state:
            visit(f, [])
    for f in files:
        lines = sum(1 for _ in open(f, encoding="utf-8"))
        if lines > MAX_LINES:
            print(f"{f}: {lines} lines, over {MAX_LINES}: split it by idea")
            failed = True
    if os.environ.get("LAYERS_VERBOSE"):
        for f in files:
            print(f, "->", ", ".join(sorted(graph[f])))
    if failed:
        sys.exit(1)
    print(f"layers: {len(files)} files in src/, no import circle, none over {MAX_LINES} lines")


if __name__ == "__main__":
    main()
