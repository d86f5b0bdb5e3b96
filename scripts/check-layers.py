#!/usr/bin/env python3
"""The layer check: every `crate::` path in src/ points down the layers below, never up.

LAYERS is the one statement of the order. Each entry is one line of the diagram, top
first; a module is a top-level file or folder of src/ (`foo.rs` and `foo/` are one).
A module may use the modules on the lines below its own, and nothing else: not a line
above (an upward edge) and not a sibling on its own line (siblings are independent).
Paths inside one module (between its own files) are not checked here; the compiler's
visibility (`pub(crate)` children, private `mod`) and the cycle check cover those.

What counts as a use: `crate::x` anywhere in code (a `use`, a path in an expression, a
type), the names inside `use crate::{...}`, and `super::x` in a top-level file. Comments
are not code, and test code (each `#[cfg(test)]` item, and `tests.rs` files)
may reach up to build its fixtures. src/lib.rs (the root, which re-exports the public
API) and src/main.rs (the binary, its own crate) are outside the layers.

The diagrams in src/lib.rs (`# Layout`) and docs/architecture.md (`## Layers`) list the
same lines; this script checks that too, so the three cannot drift apart.

Usage: python3 scripts/check-layers.py [--edges] [SRC_DIR]
  exit 0 when clean, 1 with each upward or sideways edge named by file and line, 2 when
  the diagrams disagree; --edges prints every edge between top-level modules instead.
"""

import os
import re
import sys

# Top first. Keep src/lib.rs and docs/architecture.md in step (the script checks).
LAYERS = [
    ["cli"],
    ["http"],
    ["mcp"],
    ["rpc"],
    ["app"],
    ["coordinator"],
    ["runner"],
    ["projects", "pubsub", "auth"],
    ["connections", "storage", "events"],
    ["protocol", "config", "support"],
]

# Edges allowed against the order, each with the reason it is still there:
# {("from", "to"): "why"}. The goal is an empty dict.
EXCEPTIONS = {}

OUTSIDE = {"lib", "main"}


def rank_of():
    ranks = {}
    for i, line in enumerate(LAYERS):
        for name in line:
            if name in ranks:
                sys.exit(f"check-layers: {name} is listed twice in LAYERS")
            ranks[name] = i
    return ranks


def strip_comments(line):
    # Good enough for this code base: no `//` inside the string literals that matter
    # here (a `crate::` path in a string would be no use of a module either way).
    return re.sub(r"//.*", "", line)


def without_tests(lines):
    """The lines with each `#[cfg(test)]` item blanked (kept as empty lines, so that
    line numbers still match the file): the attribute, any further attributes, and the
    item up to its `;` or its closing brace."""
    out, i = list(lines), 0
    while i < len(out):
        if out[i].strip() != "#[cfg(test)]":
            i += 1
            continue
        depth, opened = 0, False
        while i < len(out):
            line = out[i]
            out[i] = ""
            i += 1
            if line.strip().startswith("#["):
                continue
            depth += line.count("{") - line.count("}")
            opened = opened or "{" in line
            if (opened and depth <= 0) or (not opened and line.rstrip().endswith(";")):
                break
    return out


def uses(path, top):
    """(line number, module, text) for each crate-level module the file's code names."""
    if os.path.basename(path) == "tests.rs":
        return []
    lines = open(path, encoding="utf-8").read().split("\n")
    code = "\n".join(without_tests([strip_comments(l) for l in lines]))
    found = []

    def add(offset, name):
        line_no = code.count("\n", 0, offset) + 1
        found.append((line_no, name, lines[line_no - 1].strip()))

    for m in re.finditer(r"\bcrate::(\w+)", code):
        add(m.start(), m.group(1))
    # `use crate::{a, b::c, d::{e, f}}`: the names at the first level of the braces.
    for m in re.finditer(r"\bcrate::\{", code):
        depth, i, token_start = 1, m.end(), m.end()
        while depth and i < len(code):
            c = code[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            if depth == 1 and c in ",{" or depth == 0:
                name = re.match(r"\s*(\w+)", code[token_start:i + 1])
                if name and name.group(1) != "self":
                    add(token_start + name.start(1), name.group(1))
                token_start = i + 1
            i += 1
    if top:  # in a top-level file, `super::` is the crate root
        for m in re.finditer(r"(?<!::)\bsuper::(\w+)", code):
            add(m.start(), m.group(1))
    return found


def check_edges(src, ranks, edges=None):
    errors = []
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src)
            first = rel.split(os.sep)[0]
            module = first[:-3] if first.endswith(".rs") else first
            if module in OUTSIDE:
                continue
            if module not in ranks:
                errors.append(f"{path}: module `{module}` is in no layer; add it to LAYERS "
                              f"in scripts/check-layers.py and to both diagrams")
                continue
            for line_no, name, text in uses(path, top=os.sep not in rel):
                if name == module or name not in ranks:
                    continue
                if edges is not None:
                    edges.setdefault(module, set()).add(name)
                if (module, name) in EXCEPTIONS:
                    continue
                mine, theirs = ranks[module], ranks[name]
                if theirs < mine:
                    kind = "upward edge"
                elif theirs == mine:
                    kind = "sideways edge between siblings"
                else:
                    continue
                errors.append(
                    f"{path}:{line_no}: {kind} {module} -> {name} "
                    f"({module} is on layer {mine + 1}, {name} on layer {theirs + 1}; "
                    f"a module uses only the layers below it)\n    {text}")
    return errors


def diagram(path, heading):
    """The module names of each line of the first ```text block after `heading`."""
    if not os.path.exists(path):
        return None
    text = open(path, encoding="utf-8").read()
    at = text.find(heading)
    if at < 0:
        return None
    start = text.find("```text", at)
    end = text.find("```", start + 7)
    rows, continued = [], False
    for raw in text[start + 7:end].split("\n"):
        line = re.sub(r"^//! ?", "", raw)
        if not re.match(r"^ \w", line):
            continue  # blank, or a continuation of the line above
        first_column = re.split(r"\s{2,}", line.strip())[0]
        names = [re.sub(r"(/|\.rs)$", "", n) for n in re.split(r"[,\s]+", first_column) if n]
        if rows and continued:  # a first column ending in a comma goes on below
            rows[-1] += names
        else:
            rows.append(names)
        continued = first_column.endswith(",")
    return rows


def main():
    args = [a for a in sys.argv[1:] if a != "--edges"]
    src = args[0] if args else "src"
    ranks = rank_of()
    if "--edges" in sys.argv[1:]:
        edges = {}
        check_edges(src, ranks, edges)
        for line in LAYERS:
            for module in line:
                below = sorted(edges.get(module, ()), key=lambda m: (ranks[m], m))
                print(f"{module:<12}-> {' '.join(below) or '(nothing)'}")
        return 0
    errors = check_edges(src, ranks)
    for e in errors:
        print(e, file=sys.stderr)
    repo = os.path.dirname(os.path.abspath(src))
    drift = []
    for path, heading in ((os.path.join(src, "lib.rs"), "# Layout"),
                          (os.path.join(repo, "docs", "architecture.md"), "## Layers")):
        rows = diagram(path, heading)
        if rows != LAYERS:
            drift.append(f"{path}: the diagram under `{heading}` lists {rows}, "
                         f"scripts/check-layers.py LAYERS is {LAYERS}")
    for d in drift:
        print(d, file=sys.stderr)
    if errors:
        print(f"check-layers: {len(errors)} edge(s) against the layer order", file=sys.stderr)
        return 1
    if drift:
        return 2
    print(f"check-layers: {sum(len(l) for l in LAYERS)} modules on {len(LAYERS)} layers, "
          f"every crate:: path points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
