#!/usr/bin/python3
"""How many acknowledged QoS 1 messages a persistent subscriber misses while
it moves between nodes: a measurement, not a test (it shows a known gap,
README "Cluster", "Not yet").

Three nodes on loopback; a publisher on n2 publishes QoS 1 one at a time
(each waiting for its PUBACK) while the subscriber's client id reconnects
alternately to n3 and n1, MOVES times, 0.3 s apart. At the end it prints how
many acknowledged messages never reached the subscriber.

Usage: bench/cluster/takeover_loss.py [PATH_TO_STARLING] [MOVES]
(default build/release/broker/starling, 30). About 15 s.
"""
import os
import socket
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from cluster_harness import Cluster, MqttClient, metric, scrape  # noqa: E402

harness.STARLING = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build/release/broker/starling")
MOVES = int(sys.argv[2]) if len(sys.argv) > 2 else 30


def connect(node, client_id, **kw):
    c = MqttClient(client_id)
    c.connect(node, **kw)
    c.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


with Cluster(3) as cluster:
    n1, n2, n3 = cluster.nodes
    sub = connect(n1, "mover", clean_start=False, session_expiry=300)
    sub.subscribe("mv/#", qos=1)
    pub = connect(n2, "mv-pub")
    acked, got = [], set()
    stop = threading.Event()

    def publish():
        i = 0
        while not stop.is_set():
            pub.publish("mv/x", str(i).encode(), qos=1)  # waits for its PUBACK
            acked.append(i)
            i += 1

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        for k in range(MOVES):
            time.sleep(0.3)
            sub.close()  # DISCONNECT; the session stays
            got.update(int(p) for p in sub.msgs.payloads())
            sub = connect((n3, n1)[k % 2], "mover", clean_start=False, session_expiry=300)
        time.sleep(0.5)
    finally:
        stop.set()
        publisher.join()
    time.sleep(1.0)
    sub.close()
    pub.close()
    got.update(int(p) for p in sub.msgs.payloads())
    missing = sorted(set(acked) - got)
    print(f"moves {MOVES}: acknowledged {len(acked)}, received {len(got)}, missing {len(missing)}"
          f"{': ' + ', '.join(map(str, missing[:20])) if missing else ''}")
    # Published on n2 while no node had a route for the subscriber.
    print("n2 dropped for no subscriber:",
          metric(scrape(n2.http_port), "starling_messages_dropped_total", reason="no_subscribers"))
