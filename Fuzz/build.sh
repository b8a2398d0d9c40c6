#!/usr/bin/env bash
# Builds the libFuzzer target FuzzDecoder with the fuzzer and address sanitizers.
# Usage: Fuzz/build.sh            (release build, scratch path Fuzz/.build)
#   FUZZ_SCRATCH_PATH=/tmp/x FUZZ_CONFIGURATION=debug Fuzz/build.sh
# Prints the path of the built binary on its last line.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scratch="${FUZZ_SCRATCH_PATH:-$here/.build}"
configuration="${FUZZ_CONFIGURATION:-release}"

# main.swift calls libFuzzer's driver; see Package.swift for why not -parse-as-library.
swift build \
    --package-path "$here" \
    --scratch-path "$scratch" \
    --configuration "$configuration" \
    --product FuzzDecoder \
    -Xswiftc -sanitize=fuzzer,address >&2

echo "$scratch/$configuration/FuzzDecoder"
