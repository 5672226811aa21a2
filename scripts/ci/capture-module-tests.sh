#!/usr/bin/env bash
# Guards: the CUDA capture module's logic, on its numpy backend (no GPU, no torch needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -c "import numpy, pytest" 2>/dev/null || python3 -m pip install -q numpy pytest
python3 -m pytest profiles/cuda -q -p no:cacheprovider
