#!/usr/bin/env bash
# Guards: the Debian packages the project needs are installed, and the release build succeeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh
swift build -c release
