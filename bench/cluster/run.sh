#!/usr/bin/env bash
# A 3-node Starling cluster on loopback: publisher and subscriber on the same
# node against publisher and subscriber on different nodes, in one run,
# alternating; then the time for membership to declare a killed node dead.
#   bench/cluster/run.sh [OUT_DIR]   (default bench/results/<date>-cluster)
# Needs the release build (scripts/build.sh). About 3 minutes. Ends only the
# processes it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-bench/results/$(date +%F)-cluster}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
mkdir -p "$OUT"
. bench/cluster/common.sh starling-cluster-bench

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
