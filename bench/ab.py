#!/usr/bin/python3
"""Before and after a change on one node: two starling binaries under the same
starling-bench, alternating run by run (A B, B A, ...), a fresh process and
data directory per run, --threads 2, MQTT 5, 64-byte payloads, 5 s after 1 s
of warm-up. Prints each run and the medians of msgs/s.

Usage: bench/ab.py BASE_STARLING NEW_STARLING [RUNS]   (default 3: 18 runs of
about 8 s, some 2.5 minutes)
Build the base in its own tree, e.g. git worktree add /tmp/base <commit>,
then cmake + ninja there (starling only).
"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A = ("base", sys.argv[1])
B = ("new", sys.argv[2])
BENCH = os.path.join(ROOT, "build/release/bench/starling-bench")
FANIN = ["--scenario", "fanin", "--publishers", "4", "--subscribers", "1", "--mqtt", "5", "--payload", "64"]
SCEN = [("fanin-q1", FANIN + ["--qos", "1", "--window", "32"]),
        ("fanin-q0-window", FANIN + ["--qos", "0", "--window", "32"]),
        ("fanout-q0", ["--scenario", "fanout", "--subscribers", "100", "--mqtt", "5", "--payload", "64", "--qos", "0", "--window", "32"])]
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def run(binary, args):
    port = free_port(); d = tempfile.mkdtemp(prefix="ab-")
    p = subprocess.Popen([binary, "--node-id", "ab", "--mqtt-listen", f"127.0.0.1:{port}", "--http-listen", "off",
                          "--threads", "2", "--data-dir", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try: socket.create_connection(("127.0.0.1", port), 0.2).close(); break
            except OSError: time.sleep(0.05)
        out = subprocess.run([BENCH, "--port", str(port), "--duration", "5", "--warmup", "1", "--broker-pid", str(p.pid)] + args,
                             capture_output=True, text=True, timeout=60).stdout
        for line in out.splitlines():
            if line.startswith('{"scenario":'): return json.loads(line)
    finally:
        p.send_signal(signal.SIGKILL); p.wait(); shutil.rmtree(d, ignore_errors=True)
res = {}
for name, args in SCEN:
    for r in range(RUNS):
        for label, binary in (A, B) if r % 2 == 0 else (B, A):
            j = run(binary, args)
            v = j and j.get("msgs_per_s")
            res.setdefault((name, label), []).append(v)
            print(name, label, v, j and j.get("latency_us", {}).get("p99") if j else None, flush=True)
print()
for (name, label), vs in sorted(res.items()):
    ok = sorted(v for v in vs if v)
    print(f"{name:16} {label:14} median {ok[len(ok)//2] if ok else None:>12}  runs {vs}")
