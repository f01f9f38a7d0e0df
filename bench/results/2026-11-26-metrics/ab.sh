#!/bin/bash
# A/B: base vs new starling under starling-bench; alternating, 3 pairs.
BENCH=/work/main/build/release/bench/starling-bench
run() { # bin scenario args...
  local bin=$1; shift
  local d=$(mktemp -d)
  $bin --node-id ab --mqtt-listen 127.0.0.1:0 --http-listen off --data-dir $d/data --threads 2 > $d/log 2>&1 &
  local pid=$!
  for i in $(seq 50); do grep -q "listener mqtt bound" $d/log && break; sleep 0.1; done
  local port=$(grep -o "listener mqtt bound to 127.0.0.1:[0-9]*" $d/log | grep -o "[0-9]*$")
  $BENCH --port $port --broker-pid $pid "$@" 2>/dev/null | grep '^{' | python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(j["msgs_per_s"], j["latency_us"]["p50"], j["latency_us"]["p99"], j["broker_cpu_pct"], j["lost"])'
  kill $pid; wait $pid 2>/dev/null; rm -rf $d
}
for pair in 1 2 3; do
  for v in base new; do
    bin=/tmp/base/build/broker/starling; [ $v = new ] && bin=/work/main/build/release/broker/starling
    echo "$v fanin-q1 $(run $bin --scenario fanin --publishers 4 --subscribers 1 --qos 1 --payload 64 --duration 6 --warmup 2)"
    echo "$v fanout-q0 $(run $bin --scenario fanout --subscribers 8 --qos 0 --payload 64 --rate 20000 --duration 6 --warmup 2)"
    echo "$v pingpong-q1 $(run $bin --scenario pingpong --publishers 4 --qos 1 --payload 64 --duration 6 --warmup 2)"
  done
done
