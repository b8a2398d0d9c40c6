#!/usr/bin/env bash
# Builds FuzzDecoder (build.sh) and fuzzes for SECONDS (default 600).
# Usage: Fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
# New inputs go to $FUZZ_WORK/corpus (default Fuzz/.build/corpus), seeded from Fuzz/corpus;
# crashers go to $FUZZ_ARTIFACTS (default Fuzz/artifacts/, kept out of git: copy each into
# Tests/MQTTCodecTests/CodecCrasherTests.swift). FUZZ_SCRATCH_PATH is passed on to build.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-600}"
shift || true
work="${FUZZ_WORK:-$here/.build}"
artifacts="${FUZZ_ARTIFACTS:-$here/artifacts}"
binary="$("$here/build.sh" | tail -n 1)"
mkdir -p "$work/corpus" "$artifacts"
exec "$binary" "$work/corpus" "$here/corpus" \
    -dict="$here/mqtt.dict" \
    -max_total_time="$seconds" \
    -max_len=4096 \
    -timeout=10 \
    -artifact_prefix="$artifacts/" \
    -print_final_stats=1 \
    "$@"
