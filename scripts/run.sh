#!/usr/bin/env bash
# Builds Roost in release mode and runs the broker with its embedded defaults
# (127.0.0.1:1883, anonymous clients allowed, durable store in ./roost-data). Extra arguments
# go to `roost serve`. Installs SQLite's headers (Debian's libsqlite3-dev) if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f /usr/include/sqlite3.h ]; then
    echo "==> installing libsqlite3-dev"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq libsqlite3-dev >/dev/null
fi
swift build -c release --product roost
exec .build/release/roost serve "$@"
