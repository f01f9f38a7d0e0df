#!/usr/bin/env bash
# Replicated persistent sessions (issue 8) on a 3-node Starling cluster on
# loopback: what copies cost QoS 1 (--replication-factor 1, 2 and 3 side by
# side, alternating, a fresh cluster per run), and how long the sessions of a
# killed node take to come back on the others (failover_time.py).
#   bench/cluster/failover.sh [OUT_DIR]   (default bench/results/<date>-failover)
# RUNS (3), DURATION (5 s), SESSIONS (200) from the environment. Needs the
# release build (scripts/build.sh) and python3-paho-mqtt. About 3 minutes.
# Ends only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}  # Debian's, which has paho
OUT=${1:-bench/results/$(date +%F)-failover}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
SESSIONS=${SESSIONS:-200}
RATE=${RATE:-500}  # the latency runs: msgs/s per publisher
mkdir -p "$OUT"
. bench/cluster/common.sh starling-failover-bench

converged() {  # converged: until every node lists all three alive (at most 20 s)
  local n
  for _ in $(seq 200); do
    for n in 1 2 3; do
      curl -sf "http://127.0.0.1:$(http_port "$n")/api/v1/cluster/members" | "$PY" -c 'import json, sys
sys.exit(sum(m["state"] == "alive" for m in json.load(sys.stdin)["data"]) != 3)' || continue 2
    done
    return 0
  done
  echo "cluster did not converge" >&2; exit 1
}
start_cluster() {  # start_cluster RF: on fresh data dirs
  for n in 1 2 3; do rm -rf "$WORK/d$n"; start_node "$n" --replication-factor "$1"; done
  for n in 1 2 3; do ready "$n"; done
  converged
}
stop_cluster() {  # SIGTERM each node still running, SIGKILL after 10 s, and wait for it
  local n
  for n in "${!pids[@]}"; do kill "${pids[$n]}" 2>/dev/null || true; done
  for n in "${!pids[@]}"; do
    for _ in $(seq 100); do kill -0 "${pids[$n]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${pids[$n]}" 2>/dev/null || true
    wait "${pids[$n]}" 2>/dev/null || true
  done
  pids=()
}

{
  echo "# $(git rev-parse --short HEAD) $(date -u +%FT%TZ), $(nproc) cores, nodes with --threads 1"
  echo "# a fresh 3-node cluster per run; p2p 4 pairs, QoS 1, MQTT 5, persistent subscribers on n2, publishers on n1"
  echo "# qos1: open loop; qos1-rate$RATE: --rate $RATE per publisher, same cluster"
  echo "# mode rf run msgs_per_s p50_ms p99_ms lost dup"
} >"$OUT/raw.txt"
bench() {  # bench NAME RF RUN ARGS...: one line in raw.txt
  local name=$1 rf=$2 r=$3; shift 3
  local out rc=0
  out=$("$BENCH" --scenario p2p --publishers 4 --qos 1 --mqtt 5 --persistent \
    --port "$(mqtt_port 1)" --sub-port "$(mqtt_port 2)" --duration "$DURATION" --warmup 1 "$@") || rc=$?
  echo "$out" >"$OUT/$name-rf$rf-$r.txt"
  local line
  line=$(tail -1 <<<"$out" | "$PY" -c 'import json, sys
j = json.load(sys.stdin)
l = j["latency_us"]
print("%.0f %.2f %.2f lost=%d dup=%d" % (j["msgs_per_s"], l["p50"] / 1000, l["p99"] / 1000, j["lost"], j["duplicated"]))' 2>/dev/null) ||
    line="no result"
  [[ $rc == 0 ]] || line="$line exit=$rc"
  echo "$name rf=$rf $r $line" | tee -a "$OUT/raw.txt"
}
for r in $(seq "$RUNS"); do
  for rf in 1 2 3; do
    start_cluster "$rf"
    bench qos1 "$rf" "$r"
    bench "qos1-rate$RATE" "$rf" "$r" --rate "$RATE"
    stop_cluster
  done
done

# Failover: RF 2, SESSIONS offline sessions owned by n3, one queued message
# each; kill -9 n3 and bring them back on n1/n2 (failover_time.py).
{
  echo "# failover: --replication-factor 2, $SESSIONS offline sessions on n3 with one queued QoS 1 message each;"
  echo "# kill -9 n3, clients retry every 0.2 s alternating n1/n2; seconds from the kill (JSON of failover_time.py)"
} >>"$OUT/raw.txt"
for r in $(seq "$RUNS"); do
  start_cluster 2
  rc=0
  json=$("$PY" bench/cluster/failover_time.py --n1 "$(mqtt_port 1)" --n2 "$(mqtt_port 2)" \
    --n3 "$(mqtt_port 3)" --http1 "$(http_port 1)" --n3-pid "${pids[3]}" --sessions "$SESSIONS" \
    2>"$OUT/failover-$r.log") || rc=$?
  kill -9 "${pids[3]}" 2>/dev/null || true  # killed already, unless the set-up failed
  wait "${pids[3]}" 2>/dev/null || true
  unset 'pids[3]'
  [[ $rc == 0 ]] || json="failed exit=$rc: $(tail -1 "$OUT/failover-$r.log")"
  echo "failover $r $json" | tee -a "$OUT/raw.txt"
  stop_cluster
done
