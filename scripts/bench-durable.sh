#!/usr/bin/env bash
# Durable QoS 1 benchmark (issue #3): 100 publisher -> subscriber pairs, QoS 1, 64-byte
# payloads, max rate, persistent sessions (MQTT 3.1.1, clean session 0), so every message is
# handed to the store before its PUBACK. Roost with fsync=full and fsync=normal, beside
# Mosquitto's in-memory QoS 1 pairs figure (bench.sh scenario b, clean sessions, no
# persistence) from the same run. Broker pinned to core 0, generator to core 1.
#
# usage: scripts/bench-durable.sh [RUNS (3)] [DURATION_S (10)]
# needs: ../shared/bench (mqttload is built here from its source), mosquitto, a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-3}"
DURATION="${2:-10}"
BENCH_SRC="${BENCH_SRC:-../shared/bench}"
WORK="$(mktemp -d /tmp/roost-bench-durable.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cp "$BENCH_SRC/mqttload.c" "$BENCH_SRC/Makefile" "$WORK/"
make -s -C "$WORK" mqttload >/dev/null
MQTTLOAD="$WORK/mqttload"
MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
swift build -c release --product roost >/dev/null
ROOST="$PWD/.build/release/roost"
PORT=18860

# run NAME CLEAN BROKER-COMMAND...: one measurement; prints "rate lost dups rss_kb rows/msg"
run() {
    local name="$1" clean="$2"; shift 2
    rm -rf "$WORK/data"
    taskset -c 0 "$@" >"$WORK/$name.log" 2>&1 &
    local pid=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    local out
    out="$(taskset -c 1 "$MQTTLOAD" pairs -p $PORT -n 100 -q 1 -m 64 -b 200 -d "$DURATION" -w 2 -C "$clean" -Q -B $pid | grep '^RESULT')"
    kill -TERM $pid; wait $pid 2>/dev/null || true
    python3 - "$out" "$WORK/$name.log" <<'PY'
import json, re, sys
r = json.loads(sys.argv[1].split(" ", 1)[1])
log = open(sys.argv[2], errors="replace").read()
m = re.search(r"store.changes=(\d+) store.commits=(\d+).*store.rows_written=(\d+)", log)
rows = "%.2f" % (int(m.group(3)) / max(r["sent"], 1)) if m else "-"
print("%.0f %d %d %d %s" % (r["recv_rate"], r["lost"], r["duplicates"], r["broker"]["rss_kb_after"], rows))
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

declare -A RATES
for i in $(seq "$RUNS"); do
    for mode in full normal; do
        line="$(run "roost-$mode-$i" 0 "$ROOST" serve --listen 127.0.0.1:$PORT --threads 1 --max-queued-messages 0 \
            --data-dir "$WORK/data" --fsync $mode --log-level info)"
        echo "run $i roost fsync=$mode: $line (msg/s lost dups rss_kb rows_written/msg)"
        RATES[$mode]+="${line%% *}"$'\n'
    done
    line="$(run "mosquitto-$i" 1 "$MOSQUITTO" -p $PORT)"
    echo "run $i mosquitto in memory: $line"
    RATES[mosq]+="${line%% *}"$'\n'
done
mosq="$(printf '%s' "${RATES[mosq]}" | median)"
echo
echo "| broker | QoS 1 pairs msg/s (median of $RUNS) | ratio to Mosquitto in memory |"
echo "|---|---|---|"
for mode in full normal; do
    value="$(printf '%s' "${RATES[$mode]}" | median)"
    echo "| Roost, durable, fsync=$mode | $value | $(python3 -c "print('%.2f' % ($value / $mosq))")x |"
done
echo "| Mosquitto 2.0.11, in memory (no persistence) | $mosq | 1.00x |"
