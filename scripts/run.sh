#!/usr/bin/env bash
# Builds Roost in release mode and runs the broker with its embedded defaults
# (127.0.0.1:1883, anonymous clients allowed). Extra arguments go to `roost serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product roost
exec .build/release/roost serve "$@"
