#!/usr/bin/env bash
# Runs the whole test suite: Swift unit and integration tests, then the interop suite that
# drives the built broker with paho-mqtt, mosquitto_pub/mosquitto_sub and MQTT.js.
# Installs what it needs first (Debian packages and PyPI), so it works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
command -v mosquitto >/dev/null || need_apt+=(mosquitto)
[ -d /usr/share/nodejs/mqtt ] || need_apt+=(node-mqtt)
command -v node >/dev/null || need_apt+=(nodejs)
[ -f /usr/include/sqlite3.h ] || need_apt+=(libsqlite3-dev)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -c 'import paho.mqtt, pytest, jwt, cryptography' 2>/dev/null || { echo "==> installing paho-mqtt, pytest, pyjwt, cryptography"; pip install -q paho-mqtt pytest pyjwt cryptography; }

echo "==> swift build"
swift build --product roost
echo "==> swift test"
swift test
echo "==> interop tests (paho-mqtt, mosquitto clients, MQTT.js)"
ROOST_BIN="$PWD/.build/debug/roost" python3 -m pytest -q Tests/interop
echo "==> micro-benchmarks: allocation counts against Benchmarks/Thresholds (package-benchmark)"
bash scripts/bench-micro.sh
