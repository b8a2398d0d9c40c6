#!/usr/bin/env bash
# Micro-benchmarks (Benchmarks/, package-benchmark): codec decode/encode of every packet kind,
# topic match against a 100k-filter index, fan-out of one QoS 0 PUBLISH to 1,000 subscribers.
#
#   scripts/bench-micro.sh            build (release), run every benchmark and check the allocation
#                                     counts against Benchmarks/Thresholds/: exit 1 if one is above
#                                     its threshold (or the build or a run fails); counts below
#                                     their thresholds pass with a notice to lock the gain in
#   scripts/bench-micro.sh --update   build, run and rewrite Benchmarks/Thresholds/ (allocation
#                                     counts only: times are too noisy on shared machines to check)
#   scripts/bench-micro.sh --run      build and run, printing every metric (times included); no check
#
# Further arguments go to the benchmark tool, e.g. `--filter 'fanout-.*'`. Benchmarks/ is a
# package of its own, so the broker's build never compiles the benchmark tooling.
set -euo pipefail
cd "$(dirname "$0")/../Benchmarks"
# Absolute: the benchmark tool does not run in this directory when it checks.
thresholds="$PWD/Thresholds"

mode=check
case "${1:-}" in
    --update) mode=update; shift ;;
    --run) mode=run; shift ;;
esac

case $mode in
    run)
        exec swift package benchmark --no-progress "$@"
        ;;
    update)
        # Only mallocCountTotal is measured for the stored thresholds: a metric missing from a
        # thresholds file is not checked, so times are reported but never fail the check.
        swift package --allow-writing-to-package-directory benchmark thresholds update \
            --metric mallocCountTotal --path "$thresholds" --no-progress "$@"
        echo "==> Benchmarks/Thresholds/ rewritten; review and commit the changed files"
        exit 0
        ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
swift package benchmark thresholds check --path "$thresholds" --no-progress "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# `swift package` exits 1 both for a regression and for counts that are only better than the
# thresholds; the tool's own words tell them apart.
if [ "$status" -eq 0 ]; then
    echo "==> allocation counts equal to Benchmarks/Thresholds/"
elif grep -q "is BETTER than the defined thresholds" "$log" && ! grep -q "is WORSE than the defined thresholds" "$log"; then
    echo "==> allocation counts BELOW Benchmarks/Thresholds/: lock the gain in with scripts/bench-micro.sh --update"
else
    echo "==> FAILED: allocation counts above Benchmarks/Thresholds/, or the build or a benchmark failed (exit status $status)" >&2
    exit 1
fi
