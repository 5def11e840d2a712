#!/bin/sh
# Runs a libFuzzer target on a scratch copy of its seed corpus, so that what it finds never
# lands in the source tree; a crashing input goes where -artifact_prefix says.
# Usage: run_fuzzer.sh FUZZER SEED_DIR [libFuzzer flags...]
set -eu
fuzzer=$1 seeds=$2
shift 2
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp -R "$seeds"/. "$corpus"/
# UBSan reports and carries on by default: make undefined behaviour a finding.
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"$fuzzer" "$@" "$corpus"
