#!/usr/bin/env bash
# Guards: every link, path and flag in README.md and docs/ exists, every console example prints what
# the document shows, and every figure in README.md's table occurs in its source.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 scripts/ci/check_docs.py --bin .build/release
