# shellcheck shell=bash
# Sourced by the cluster bench scripts (run.sh, failover.sh) from the
# repository's root, with the name of their work directory under /tmp:
#   . bench/cluster/common.sh starling-cluster-bench
# Gives STARLING, BENCH, WORK (removed on exit), pids (node N's PID in
# pids[N]; what is still running at exit is killed, and only that), a port
# range (mqtt_port/http_port/cluster_port N), start_node and ready.
STARLING=$PWD/build/release/broker/starling
# shellcheck disable=SC2034  # used by the scripts that source this
BENCH=$PWD/build/release/bench/starling-bench
WORK=$(mktemp -d "/tmp/$1.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Ports from a range picked once; a clash makes a node exit at start. Below
# Linux's ephemeral range (32768 and up), which outgoing connections take
# their local ports from: two runs failed there with "cannot listen".
base=$((20000 + RANDOM % 12000))
mqtt_port() { echo $((base + $1)); }
http_port() { echo $((base + 10 + $1)); }
cluster_port() { echo $((base + 20 + $1)); }

start_node() {  # start_node N [FLAGS...]: node nN on $WORK/dN, joining n1, with FLAGS
  local n=$1; shift
  "$STARLING" --node-id "n$n" --mqtt-listen "127.0.0.1:$(mqtt_port "$n")" \
    --http-listen "127.0.0.1:$(http_port "$n")" --data-dir "$WORK/d$n" --threads 1 \
    --cluster-listen "127.0.0.1:$(cluster_port "$n")" --join "127.0.0.1:$(cluster_port 1)" \
    --cluster-secret bench "$@" --log-level warn >"$WORK/n$n.log" 2>&1 &
  pids[$n]=$!
}
ready() {  # ready N: until node N says /readyz 200 (at most 20 s)
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$(http_port "$1")/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "node n$1 not ready" >&2; cat "$WORK/n$1.log" >&2; exit 1
}
