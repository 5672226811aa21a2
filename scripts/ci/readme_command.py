#!/usr/bin/env python3
"""Prints one of the two commands README.md starts with: `main` (the first ```sh block: the main
job) or `tests` (the second: the test command), so that CI runs exactly what a new user reads.

    bash -c "$(python3 scripts/ci/readme_command.py main)"
"""
import os
import re
import sys

which = sys.argv[1] if len(sys.argv) > 1 else ""
if which not in ("main", "tests"):
    sys.exit("usage: readme_command.py main|tests")
readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8").read()
blocks = re.findall(r"^```sh\n(.*?)^```", readme, flags=re.S | re.M)
if len(blocks) < 2:
    sys.exit("README.md must start with two ```sh blocks: the main job and the test command")
command = blocks[0 if which == "main" else 1].strip()
if "\n" in command:
    sys.exit(f"README.md's {which} command must be one line, got: {command!r}")
print(command)
