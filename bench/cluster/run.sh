#!/usr/bin/env bash
# A 3-node Starling cluster on loopback: publisher and subscriber on the same
# node against publisher and subscriber on different nodes, in one run,
# alternating; then the time for membership to declare a killed node dead.
#   bench/cluster/run.sh [OUT_DIR]   (default bench/results/<date>-cluster)
# Needs the release build (scripts/build.sh). About 3 minutes. Ends only the
# processes it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
STARLING=$PWD/build/release/broker/starling
BENCH=$PWD/build/release/bench/starling-bench
OUT=${1:-bench/results/$(date +%F)-cluster}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/starling-cluster-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Ports from a range this script picks once; a clash makes a node exit at start.
base=$((20000 + RANDOM % 20000))
mqtt_port() { echo $((base + $1)); }
http_port() { echo $((base + 10 + $1)); }
cluster_port() { echo $((base + 20 + $1)); }

start_node() {  # start_node N: node nN, joining n1
  local n=$1
  "$STARLING" --node-id "n$n" --mqtt-listen "127.0.0.1:$(mqtt_port "$n")" \
    --http-listen "127.0.0.1:$(http_port "$n")" --data-dir "$WORK/d$n" --threads 1 \
    --cluster-listen "127.0.0.1:$(cluster_port "$n")" --join "127.0.0.1:$(cluster_port 1)" \
    --cluster-secret bench --log-level warn >"$WORK/n$n.log" 2>&1 &
  pids[$n]=$!
}
ready() {  # ready N: until node N says /readyz 200 (at most 20 s)
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$(http_port "$1")/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "node n$1 not ready" >&2; cat "$WORK/n$1.log" >&2; exit 1
}
for n in 1 2 3; do start_node "$n"; done
for n in 1 2 3; do ready "$n"; done

{
  echo "# $(git rev-parse --short HEAD) $(date -u +%FT%TZ), $(nproc) cores, nodes with --threads 1"
  echo "# scenario placement run msgs_per_s p50_ms p99_ms lost dup"
} >"$OUT/raw.txt"
run() {  # run SCENARIO_ARGS... : one line per run, same node then other node
  local name=$1; shift
  for r in $(seq "$RUNS"); do
    for placement in same other; do
      local sub=$(mqtt_port 1)
      [[ $placement == other ]] && sub=$(mqtt_port 2)
      local out
      out=$("$BENCH" --port "$(mqtt_port 1)" --sub-port "$sub" --duration "$DURATION" --warmup 1 "$@")
      echo "$out" >"$OUT/$name-$placement-$r.txt"
      local line
      line=$(tail -1 <<<"$out" | python3 -c 'import json, sys
j = json.load(sys.stdin)
l = j["latency_us"]
print("%.0f %.2f %.2f lost=%d dup=%d" % (j["msgs_per_s"], l["p50"] / 1000, l["p99"] / 1000, j["lost"], j["duplicated"]))')
      echo "$name $placement $r $line" | tee -a "$OUT/raw.txt"
    done
  done
}
# Throughput: open loop. Latency: a fixed rate well below it.
run p2p-qos0-open --scenario p2p --publishers 4 --qos 0 --mqtt 5
run p2p-qos1-open --scenario p2p --publishers 4 --qos 1 --mqtt 5
run p2p-qos1-2k --scenario p2p --publishers 4 --qos 1 --mqtt 5 --rate 500

# Detection: kill -9 n3, poll n1's member list until it says dead.
echo "# detection: seconds from kill -9 to dead on n1" >>"$OUT/raw.txt"
for r in $(seq "$RUNS"); do
  kill -9 "${pids[3]}"; wait "${pids[3]}" 2>/dev/null || true
  start=$(date +%s.%N)
  until curl -s "http://127.0.0.1:$(http_port 1)/api/v1/cluster/members" | grep -q '"node_id":"n3","self":false,"state":"dead"'; do
    sleep 0.05
  done
  took=$(echo "$(date +%s.%N) - $start" | bc)
  echo "detection $r $took" | tee -a "$OUT/raw.txt"
  start_node 3; ready 3
done
