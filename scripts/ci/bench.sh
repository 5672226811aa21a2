#!/usr/bin/env bash
# Guards: the benchmark runs; its numbers are printed for the record, never asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
.build/release/planner-bench
