#!/usr/bin/env python3
"""Checks that README.md and docs/*.md say only what the current code does.

    python3 scripts/ci/check_docs.py [--bin .build/release] [FILE.md ...]

- Every relative link resolves to a file, and a link's #anchor to a heading of that file.
- Every repository path written in backticks or in a code block exists.
- Every `--flag` written after `planner SUBCOMMAND` (or `planner-cpu-capture`) is one that the
  command's --help lists.
- Every ```console block runs: each `$ command` line is run with the build folder on PATH from the
  repository root, and the lines after it are its expected output, in order, each equal to a line of
  what the command printed (trailing spaces ignored); a line `...` stands for any number of lines,
  and `[exit N]` for the exit status (0 when absent).
- In README.md's table of figures (the one whose header has a `from` column), every number with a
  unit (`%`, `x`, `ms`, `tok/s`) in a row occurs in the output of the row's command, or in the row's
  file, named in backticks in that column.

Prints one line per problem and exits 1 if there is any.
"""
import argparse
import glob
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOP_DIRS = ("examples/", "profiles/", "experiments/", "Sources/", "scripts/", "docs/", "Tests/", ".ci/")
# Words in a path that stand for a value the reader chooses.
PLACEHOLDER = re.compile(r"[A-Z]{2,}|<|\*|\.\.\.|\{")

problems = []


def problem(path, line, text):
    problems.append(f"{os.path.relpath(path, ROOT)}:{line}: {text}")


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[`*_]", "", s)
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def anchors(path):
    out = set()
    in_code = False
    for line in open(path, encoding="utf-8"):
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def blocks(lines):
    """Yields (kind, first line number, body lines) of every fenced block."""
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w*)\s*$", lines[i])
        if m:
            kind, start = m.group(1), i + 1
            j = start
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            yield kind, start + 1, lines[start:j]
            i = j + 1
        else:
            i += 1


def check_links(path, text):
    for n, line in enumerate(text.splitlines(), 1):
        for target in re.findall(r"\]\(([^)\s]+)\)", line):
            if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
                continue
            file, _, anchor = target.partition("#")
            dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(dest):
                problem(path, n, f"link to {target}: {os.path.relpath(dest, ROOT)} does not exist")
            elif anchor and dest.endswith(".md") and anchor not in anchors(dest):
                problem(path, n, f"link to {target}: no heading with anchor #{anchor}")


def path_words(s):
    for w in s.split():
        w = w.strip("\"'(),;:")
        if w.startswith("../"):
            w = w[3:]
        if w.startswith(TOP_DIRS) and not PLACEHOLDER.search(w):
            yield w.rstrip(".")


def check_paths(path, lines):
    in_code = False
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        spans = [line] if in_code else re.findall(r"`([^`]+)`", line)
        for s in spans:
            for w in path_words(s):
                if not glob.glob(os.path.join(ROOT, w)):
                    problem(path, n, f"path {w} does not exist")


help_cache = {}


def help_text(binary, words):
    """The --help of `binary words...` (a subcommand, or a subcommand's action)."""
    key = (binary, tuple(words))
    if key not in help_cache:
        r = subprocess.run([os.path.join(BIN, binary)] + words + ["--help"], cwd=ROOT, capture_output=True,
                           text=True, env=environment())
        help_cache[key] = r.stdout + r.stderr
    return help_cache[key]


SUBCOMMANDS = {"sweep", "plan", "simulate", "serve", "validate", "catalog", "run", "profile"}


def check_flags(path, lines):
    in_code = False
    for n, line in enumerate(lines, 1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        spans = [line.lstrip("$ ")] if in_code else re.findall(r"`([^`]+)`", line)
        for s in spans:
            for m in re.finditer(r"(?:^|[\s/])(planner-cpu-capture|planner)((?:\s+[^|;&`\s]+)*)", s):
                binary, words = m.group(1), m.group(2).split()
                command = []
                if binary == "planner":
                    if not words or words[0] not in SUBCOMMANDS:
                        continue
                    command = words[:2] if words[0] == "profile" and words[1:2] in (["import"], ["show"]) else words[:1]
                for w in words:
                    f = re.match(r"^\[?(--[a-z][a-z0-9-]*)", w)
                    if f and f.group(1) != "--help" and f.group(1) not in help_text(binary, command):
                        problem(path, n, f"flag {f.group(1)} is not an option of {' '.join([binary] + command)}")


def environment():
    env = dict(os.environ)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["COLUMNS"] = "200"
    return env


def run(command):
    r = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, env=environment(),
                       stdin=subprocess.DEVNULL, timeout=600)
    return r.returncode, (r.stdout + r.stderr).splitlines()


def check_console(path, start, body):
    i = 0
    while i < len(body):
        if not body[i].startswith("$ "):
            problem(path, start + i, "a console block must start with a '$ ' command line")
            return
        command, line_no = body[i][2:], start + i
        i += 1
        expected = []
        while i < len(body) and not body[i].startswith("$ "):
            expected.append(body[i])
            i += 1
        want_status = 0
        if expected and re.match(r"^\[exit \d+\]$", expected[-1]):
            want_status = int(expected[-1][6:-1])
            expected = expected[:-1]
        status, got = run(command)
        if status != want_status:
            tail = " | ".join(got[-3:])
            problem(path, line_no, f"`{command}` exited {status}, expected {want_status}: {tail}")
            continue
        got = [g.rstrip() for g in got]
        pos = 0
        gap_allowed = False
        for e in expected:
            e = e.rstrip()
            if e == "...":
                gap_allowed = True
                continue
            if gap_allowed:
                try:
                    pos = got.index(e, pos) + 1
                except ValueError:
                    problem(path, line_no, f"`{command}` no longer prints: {e}")
                    break
            else:
                if pos < len(got) and got[pos] == e:
                    pos += 1
                else:
                    found = got[pos] if pos < len(got) else "(end of output)"
                    problem(path, line_no, f"`{command}` prints {found!r} where the document shows {e!r}")
                    break
            gap_allowed = False


FIGURE = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?)\s?(%|x\b|ms\b|tok/s)")


def check_figures(path, lines):
    header = None
    for n, line in enumerate(lines, 1):
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = [c.lower() for c in cells]
            continue
        if "from" not in header or set(line) <= set("|-: "):
            continue
        source = cells[header.index("from")]
        names = re.findall(r"`([^`]+)`", source)
        if not names:
            problem(path, n, "a figures row must name its command or file in backticks in the 'from' column")
            continue
        text = ""
        for name in names:
            if os.path.isfile(os.path.join(ROOT, name)):
                text += open(os.path.join(ROOT, name), encoding="utf-8").read()
            else:
                status, out = run(name)
                if status != 0:
                    problem(path, n, f"`{name}` exited {status}")
                text += "\n".join(out)
        figures = " ".join(c for i, c in enumerate(cells) if header[i] != "from")
        for value, unit in FIGURE.findall(figures):
            if not re.search(r"(?<![\d.])" + re.escape(value) + r"\s?" + re.escape(unit), text):
                problem(path, n, f"figure {value}{unit} does not occur in what {', '.join(names)} gives")


def main():
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=".build/release")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    BIN = os.path.abspath(os.path.join(ROOT, a.bin))
    files = a.files or [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    for f in files:
        f = os.path.abspath(f)
        text = open(f, encoding="utf-8").read()
        lines = text.splitlines()
        check_links(f, text)
        check_paths(f, lines)
        check_flags(f, lines)
        for kind, start, body in blocks(lines):
            if kind == "console":
                check_console(f, start, body)
        if os.path.basename(f) == "README.md":
            check_figures(f, lines)
    for p in problems:
        print(p)
    sys.stdout.flush()
    if problems:
        print(f"{len(problems)} problem(s) in the documentation", file=sys.stderr)
        sys.exit(1)
    print(f"documentation checked: {len(files)} files")


if __name__ == "__main__":
    main()
