#!/usr/bin/env bash
# The README's test command. Builds and tests everything, as CI does:
#   1. build/release  Release, -Werror: unit + integration tests
#   2. build/asan     Debug with ASan + UBSan, -Werror: unit + integration tests
#   3. tests/fuzz/run_fuzz.sh (clang-14, bounded time), when present
# Prints "N passed, N failed" last (ctest's counts summed, the fuzz run as one
# test) and exits non-zero on any failure.
#
# Environment: STARLING_BUILD_ROOT (default: build) moves the build trees,
# STARLING_CMAKE_ARGS adds configure arguments (e.g. a compiler launcher).
set -euo pipefail
cd "$(dirname "$0")/.."

build_root=${STARLING_BUILD_ROOT:-build}
read -r -a extra_cmake_args <<<"${STARLING_CMAKE_ARGS:-}"
jobs=2  # a 2-core machine shared with other builds

passed=0
failed=0
problems=()

summary() {
  for problem in "${problems[@]}"; do echo "test.sh: FAILED: $problem"; done
  echo "${passed} passed, ${failed} failed"
}
trap summary EXIT

# configure_and_build DIR CMAKE_ARGS... ; a failed configure stops everything,
# a failed build is recorded and the tests still run (the missing ones fail).
configure_and_build() {
  local dir=$1
  shift
  echo "== configure $dir"
  if ! cmake -S . -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=g++ -DSTARLING_WERROR=ON \
      "$@" "${extra_cmake_args[@]}"; then
    problems+=("configure $dir")
    exit 1
  fi
  echo "== build $dir"
  if ! ninja -C "$dir" -j"$jobs" -k 0; then
    problems+=("build $dir")
  fi
}

# run_ctest DIR [CTEST_ARGS...]: adds ctest's counts to the totals.
run_ctest() {
  local dir=$1 log counts total fails
  shift
  echo "== ctest $dir $*"
  log=$(mktemp)
  if ! (cd "$dir" && ctest --output-on-failure -j"$jobs" "$@") 2>&1 | tee "$log"; then
    problems+=("ctest $dir")
  fi
  # "100% tests passed, 0 tests failed out of 46"
  counts=$(grep -Eo '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)
  rm -f "$log"
  if [[ -z "$counts" ]]; then
    problems+=("ctest $dir ran no tests")
    return
  fi
  fails=$(awk '{print $1}' <<<"$counts")
  total=$(awk '{print $NF}' <<<"$counts")
  passed=$((passed + total - fails))
  failed=$((failed + fails))
}

./scripts/setup.sh

configure_and_build "$build_root/release" -DCMAKE_BUILD_TYPE=Release
run_ctest "$build_root/release"

# halt_on_error: a UBSan finding fails the test instead of scrolling past.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
configure_and_build "$build_root/asan" -DCMAKE_BUILD_TYPE=Debug -DSTARLING_SANITIZE=ON
run_ctest "$build_root/asan"

if [[ -f tests/fuzz/run_fuzz.sh ]]; then
  echo "== fuzz"
  if bash tests/fuzz/run_fuzz.sh; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    problems+=("tests/fuzz/run_fuzz.sh")
  fi
fi

[[ ${#problems[@]} -eq 0 && $failed -eq 0 ]]
