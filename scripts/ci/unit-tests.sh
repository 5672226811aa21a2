#!/usr/bin/env bash
# Guards: the unit tests, run by README.md's second command exactly as written (last in CI, so that
# the test summary is the last line printed).
set -euo pipefail
cd "$(dirname "$0")/../.."
command="$(python3 scripts/ci/readme_command.py tests)"
echo "$ $command"
bash -c "$command"
