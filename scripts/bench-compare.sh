#!/usr/bin/env bash
# Runs the neutral benchmark suite (../shared/bench/bench.sh) against Mosquitto and Roost in
# one sitting and prints the ratio table against issue #5's targets; writes the JSON results,
# the table (Markdown) and a plot (SVG) to OUT_DIR.
#
# usage: scripts/bench-compare.sh [-r RUNS (3)] [-s SCENARIOS (a,b,c,d,e,f)] [-u] [-t THREADS] [-o OUT_DIR]
# Mosquitto runs with the suite's mosquitto-bench.conf (port 18840).
#   -u  unpinned (bench.sh -u): Roost gets every core (2 event loops), the generator 2 threads
#   -t  Roost's event loops (default: 1 pinned, every core unpinned)
# ROOST_ARGS (environment): more `roost serve` flags, e.g. ROOST_ARGS="--delivery-flush-interval 10".
# BROKERS (environment): "mosquitto roost" (default), or one of them.
# needs: ../shared/bench, mosquitto (apt-get install -y mosquitto), a C compiler; builds Roost
# in release mode. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=3
SCENARIOS=a,b,c,d,e,f
UNPINNED=""
THREADS=""
OUT="bench-results/$(date +%Y%m%d-%H%M%S)"
while getopts "r:s:ut:o:" flag; do
    case "$flag" in
        r) RUNS="$OPTARG" ;;
        s) SCENARIOS="$OPTARG" ;;
        u) UNPINNED="-u" ;;
        t) THREADS="$OPTARG" ;;
        o) OUT="$OPTARG" ;;
        *) echo "usage: $0 [-r RUNS] [-s a,b,...] [-u] [-t THREADS] [-o OUT_DIR]" >&2; exit 2 ;;
    esac
done
BENCH_SRC="${BENCH_SRC:-../shared/bench}"
[ -f "$BENCH_SRC/bench.sh" ] || { echo "bench-compare: $BENCH_SRC/bench.sh not found (set BENCH_SRC)" >&2; exit 1; }
MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
[ -x "$MOSQUITTO" ] || { echo "bench-compare: mosquitto not found: apt-get install -y mosquitto" >&2; exit 1; }
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d /tmp/roost-bench-compare.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
cp -r "$BENCH_SRC"/. "$WORK/"
chmod -R u+w "$WORK"
make -s -C "$WORK" >/dev/null
echo "==> swift build -c release"
swift build -c release --product roost >/dev/null
ROOST="$PWD/.build/release/roost"
if [ -z "$THREADS" ]; then
    THREADS=1
    [ -n "$UNPINNED" ] && THREADS="$(nproc)"
fi

BROKERS="${BROKERS:-mosquitto roost}"
if [[ " $BROKERS " == *" mosquitto "* ]]; then
    echo "==> mosquitto ($RUNS runs of $SCENARIOS)"
    (cd "$WORK" && ./bench.sh $UNPINNED -r "$RUNS" -s "$SCENARIOS" -n mosquitto -p 18840 -o "$OUT/mosquitto.json" \
        -- "$MOSQUITTO" -c mosquitto-bench.conf) | tee "$OUT/mosquitto.txt"
fi
if [[ " $BROKERS " == *" roost "* ]]; then
    echo "==> roost ($RUNS runs of $SCENARIOS, $THREADS event loop(s)) ${ROOST_ARGS:-}"
    rm -rf "$WORK/roost-data"
    # shellcheck disable=SC2086
    (cd "$WORK" && ./bench.sh $UNPINNED -r "$RUNS" -s "$SCENARIOS" -n roost -p 18871 -o "$OUT/roost.json" \
        -- "$ROOST" serve --listen 127.0.0.1:18871 --threads "$THREADS" --max-queued-messages 0 --data-dir "$WORK/roost-data" ${ROOST_ARGS:-}) \
        | tee "$OUT/roost.txt"
fi
if [ -f "$OUT/mosquitto.json" ] && [ -f "$OUT/roost.json" ]; then
    python3 scripts/bench-table.py "$OUT/mosquitto.json" "$OUT/roost.json" --markdown "$OUT/table.md" --svg "$OUT/plot.svg"
fi
echo "==> results in $OUT"
