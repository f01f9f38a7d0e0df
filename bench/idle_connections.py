#!/usr/bin/python3
"""Resident memory per idle MQTT connection: starts starling on a free loopback
port, opens N connections that each send a 3.1.1 CONNECT and then stay silent,
and reports the growth of the broker's RSS divided by N.

Usage: bench/idle_connections.py PATH_TO_STARLING [N=5000]
"""
import re
import resource
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
N = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
resource.setrlimit(resource.RLIMIT_NOFILE, (N + 200, N + 200))
d = tempfile.mkdtemp()
log = open(d + "/log", "w")
p = subprocess.Popen([sys.argv[1], "--mqtt-listen", "127.0.0.1:0", "--http-listen", "off", "--data-dir", d, "--threads", "2"], stderr=log, stdout=log)
port = None
for _ in range(100):
    m = re.search(r"listener mqtt bound to 127\.0\.0\.1:(\d+)", open(d + "/log").read())
    if m: port = int(m.group(1)); break
    time.sleep(0.05)
def rss():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1]) * 1024
def connect_pkt(cid):
    body = struct.pack("!H", 4) + b"MQTT" + bytes([4, 2]) + struct.pack("!H", 600) + struct.pack("!H", len(cid)) + cid
    return bytes([0x10, len(body)]) + body
time.sleep(0.3)
base = rss()
socks = []
for i in range(N):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(connect_pkt(f"idle-{i}".encode()))
    socks.append(s)
for s in socks:
    assert s.recv(4)[:2] == b"\x20\x02"
time.sleep(1)
after = rss()
print(f"{N} idle connections: RSS {base/1e6:.1f} MB -> {after/1e6:.1f} MB, {(after-base)/N:.0f} bytes per connection")
for s in socks:
    s.close()
p.terminate()
p.wait(10)
log.close()
shutil.rmtree(d, ignore_errors=True)
