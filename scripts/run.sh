#!/usr/bin/env bash
# The README's start command: installs what is missing, builds the Release
# tree and runs starling with the given arguments (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh >&2
cmake --log-level=WARNING -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ >&2
ninja -C build/release -j2 starling >&2
exec build/release/broker/starling "$@"
