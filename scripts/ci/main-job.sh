#!/usr/bin/env bash
# Guards: README.md's first command, the main job (the default `planner sweep`), runs as written.
set -euo pipefail
cd "$(dirname "$0")/../.."
command="$(python3 scripts/ci/readme_command.py main)"
echo "$ $command"
bash -c "$command"
