#!/usr/bin/env bash
# Installs the Debian 12 packages Starling needs to build and test.
# Installs only what is missing; runs `apt-get update` only when something is.
# Safe to run any number of times.
#   --bench   also what bench/compare needs: mosquitto (the broker compared
#             with) and gnuplot-nox (the charts)
set -euo pipefail

BENCH=0
for arg in "$@"; do
  case "$arg" in
    --bench) BENCH=1 ;;
    *) echo "setup: unknown argument: $arg (usage: setup.sh [--bench])" >&2; exit 2 ;;
  esac
done

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang-14 libclang-rt-14-dev
  # libraries (DESIGN.md "Dependencies")
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  librocksdb-dev libboost1.81-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev libssl-dev
  libyaml-cpp-dev libcli11-dev libspdlog-dev nlohmann-json3-dev
  # clients this project did not write, used by the integration tests
  python3 python3-paho-mqtt mosquitto-clients
  # a gRPC client for the tests that play a misbehaving cluster peer, and
  # the openssl command that makes the certificates of the cluster TLS test
  python3-grpcio openssl
  # the Prometheus server and promtool, which scrape and check /metrics
  prometheus
  # the load balancer the cluster tests put in front of the nodes
  haproxy
  # ip netns/route, which the partition test builds its network with
  iproute2
)
if [[ $BENCH -eq 1 ]]; then
  PACKAGES+=(mosquitto gnuplot-nox)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "setup: missing packages: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    echo "setup: installing packages needs root. Run as root, or run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
else
  SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
# Packages such as prometheus and haproxy ship a service; the tests start their own
# processes, so keep the installation from starting any (policy-rc.d 101:
# "action forbidden"), unless the machine already has its own policy.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  trap '$SUDO rm -f "$policy"' EXIT
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "setup: installed ${#missing[@]} packages"
