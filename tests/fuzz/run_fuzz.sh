#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan) and runs the decoder
# fuzzer for a bounded time. Fails on any crash, leak, sanitizer report or
# round-trip mismatch. FUZZ_SECONDS overrides the 60 s default.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
build=build/fuzz

CC=clang-14 CXX=clang++-14 cmake -S . -B "$build" -G Ninja -DSTARLING_FUZZ=ON -DSTARLING_WERROR=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
ninja -C "$build" -j2 decoder_fuzz make_decoder_corpus

seeds="$build/decoder-seeds"
work="$build/decoder-corpus"
rm -rf "$seeds"
mkdir -p "$seeds" "$work"
"$build/tests/fuzz/make_decoder_corpus" "$seeds" >/dev/null
cp -n tests/fuzz/decoder/corpus/* "$seeds"/ 2>/dev/null || true

echo "fuzz: running decoder_fuzz for ${seconds}s"
"$build/tests/fuzz/decoder_fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$build/" "$work" "$seeds" 2>"$build/decoder_fuzz.log" || {
  tail -n 60 "$build/decoder_fuzz.log"
  echo "fuzz: decoder_fuzz FAILED (log: $build/decoder_fuzz.log)"
  exit 1
}
grep -E "^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+.*DONE" "$build/decoder_fuzz.log" | tr '\n' ' '
echo
echo "fuzz: decoder_fuzz passed"
