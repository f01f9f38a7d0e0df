#!/usr/bin/python3
"""Failover time of persistent sessions (issue 8), for bench/cluster/failover.sh.

On a running 3-node cluster (--replication-factor 2 or more): S persistent
sessions (MQTT 5, session expiry 600, each subscribed at QoS 1 to a topic of
its own) connect to n3 and disconnect cleanly, so n3 owns them and a copy
lives on another node; one QoS 1 message per topic is published on n1 (MQTT
3.1.1: a PUBLISH the cluster could not take closes the connection, so every
PUBACK counts); then n3 is killed (SIGKILL, PID given) and every client
comes back, alternating n1 and n2 from one attempt to the next, every 0.2 s
while its CONNACK is refused (0x89 server busy, or the connection closes),
until CONNACK success, then waits for its queued message. Meanwhile n1's
/api/v1/cluster/members is polled until it says n3 is dead.

Prints one JSON line on stdout (times in seconds from the kill):
  first_resumed_s   first CONNACK success with session present
  p50_resumed_s     median over the sessions of the time their message arrived
  all_resumed_s     every session resumed with its message (null if not all)
  resumed           sessions back with session present and their message
  without_session_present, without_message, not_accepted: must all be 0
  missing           up to 20 "client: what went wrong"
  suspect_s         until n1 first listed n3 as anything but alive (suspect)
  detection_s       until n1 listed n3 as dead (null if not within the timeout)
  refused, closed_before_connack, connack_reasons: the attempts that failed
Exit status 0 when it measured (whatever the result), 2 when the set-up failed.

Usage: failover_time.py --n1 PORT --n2 PORT --n3 PORT --http1 PORT --n3-pid PID
       [--sessions 200] [--timeout 60]
"""
import argparse
import concurrent.futures
import json
import os
import signal
import statistics
import sys
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = "127.0.0.1"
RETRY_S = 0.2


def cid(i):
    return f"failover-{i}"


def topic(i):
    return f"failover/{i}"


def connect_props():
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = 600
    return p


class Conn:
    """One MQTT 5 connection driven by the calling thread (client.loop)."""

    def __init__(self, client_id):
        self.c = mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
        self.connack = None   # (session_present, reason code, monotonic time)
        self.closed = False
        self.suback = None
        self.messages = []    # (monotonic time, topic, payload)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = self._on_subscribe
        self.c.on_message = self._on_message

    def _on_connect(self, c, u, flags, rc, props):
        self.connack = (flags["session present"], rc.value, time.monotonic())

    def _on_disconnect(self, c, u, rc, props=None):
        self.closed = True

    def _on_subscribe(self, c, u, mid, rcs, props):
        self.suback = [r.value for r in rcs]

    def _on_message(self, c, u, msg):
        self.messages.append((time.monotonic(), msg.topic, msg.payload))

    def run_until(self, cond, deadline):
        """Runs the network loop until cond() or the connection closes or the
        deadline passes; returns cond()."""
        while not cond() and not self.closed and time.monotonic() < deadline:
            if self.c.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                self.closed = True
        return cond()

    def open(self, port, clean_start, deadline):
        """Connects; returns the CONNACK (or None: closed or timed out)."""
        try:
            self.c.connect(HOST, port, keepalive=60, clean_start=clean_start,
                           properties=connect_props())
        except OSError:
            self.closed = True
            return None
        self.run_until(lambda: self.connack is not None, deadline)
        return self.connack

    def close(self, deadline=None):
        """A clean DISCONNECT (the session stays: expiry 600) when connected."""
        if not self.closed and self.connack is not None and self.connack[1] == 0:
            self.c.disconnect()
            self.run_until(lambda: False, deadline or time.monotonic() + 5)
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self.closed = True


def make_session(i, n3_port):
    """Session i on n3: connect, subscribe at QoS 1, disconnect cleanly."""
    deadline = time.monotonic() + 20
    conn = Conn(cid(i))
    ack = conn.open(n3_port, True, deadline)
    if ack is None or ack[1] != 0:
        raise RuntimeError(f"{cid(i)}: CONNACK on n3 {ack}")
    conn.c.subscribe(topic(i), qos=1)
    if not conn.run_until(lambda: conn.suback is not None, deadline) or conn.suback != [1]:
        raise RuntimeError(f"{cid(i)}: SUBACK {conn.suback}")
    conn.close(deadline)


def publish_all(n, n1_port):
    """One QoS 1 message per session's topic, from n1, every PUBACK awaited."""
    pub = mqtt.Client(client_id="failover-pub", protocol=mqtt.MQTTv311)
    pub.max_inflight_messages_set(100)
    pub.connect(HOST, n1_port, keepalive=60)
    pub.loop_start()
    try:
        infos = [pub.publish(topic(i), cid(i).encode(), qos=1) for i in range(n)]
        for i, info in enumerate(infos):
            info.wait_for_publish(timeout=20)
            if not info.is_published():
                raise RuntimeError(f"no PUBACK for {topic(i)}")
        pub.disconnect()
    finally:
        pub.loop_stop()


class Resume:
    """Brings session i back after the kill; fills in the result fields."""

    def __init__(self, i, ports):
        self.i = i
        self.ports = ports
        self.connack_t = None
        self.message_t = None
        self.node = None
        self.present = None
        self.problem = None
        self.attempts = 0
        self.refused = 0
        self.closed = 0
        self.reasons = {}

    def run(self, go, box):
        go.wait()
        deadline = box["deadline"]
        i = self.i
        while time.monotonic() < deadline:
            k = (i + self.attempts) % 2
            self.attempts += 1
            conn = Conn(cid(i))
            ack = conn.open(self.ports[k], False, deadline)
            if ack is None or ack[1] != 0:
                if ack is None:
                    self.closed += 1
                else:
                    self.refused += 1
                    self.reasons[ack[1]] = self.reasons.get(ack[1], 0) + 1
                conn.close()
                time.sleep(RETRY_S)
                continue
            if self.connack_t is None:
                self.connack_t, self.node, self.present = ack[2], f"n{k + 1}", bool(ack[0])
            if not ack[0]:
                self.problem = f"CONNACK on n{k + 1} without session present"
                conn.close()
                return
            got = conn.run_until(lambda: conn.messages, deadline)
            if got:
                t, tp, payload = conn.messages[0]
                if tp != topic(i) or payload != cid(i).encode():
                    self.problem = f"wrong message {tp} {payload!r}"
                self.message_t = t
                conn.close()
                return
            conn.close()
            if time.monotonic() < deadline:  # lost after CONNACK: come back again
                time.sleep(RETRY_S)
        if self.connack_t is None:
            self.problem = f"not accepted within the timeout ({self.attempts} attempts)"
        elif self.message_t is None:
            self.problem = f"resumed on {self.node}, message not received within the timeout"


def detect(http1, go, box, out):
    go.wait()
    deadline = box["deadline"]
    t0 = out["t0"]
    url = f"http://{HOST}:{http1}/api/v1/cluster/members"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                body = json.load(r)
            state = next((m["state"] for m in body["data"] if m["node_id"] == "n3"), None)
            if state not in ("alive", None) and out["suspect_s"] is None:
                out["suspect_s"] = time.monotonic() - t0
            if state == "dead":
                out["detection_s"] = time.monotonic() - t0
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)


def r3(x):
    return None if x is None else round(x, 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n1", type=int, required=True)
    ap.add_argument("--n2", type=int, required=True)
    ap.add_argument("--n3", type=int, required=True)
    ap.add_argument("--http1", type=int, required=True)
    ap.add_argument("--n3-pid", type=int, required=True)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()

    t = time.monotonic()
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda i: make_session(i, a.n3), range(a.sessions)))
        setup_s = time.monotonic() - t
        publish_all(a.sessions, a.n1)
    except Exception as e:  # noqa: BLE001 - reported, and the script says it failed
        print(f"set-up failed: {e}", file=sys.stderr)
        return 2
    print(f"{a.sessions} sessions on n3 in {setup_s:.1f} s, {a.sessions} messages queued",
          file=sys.stderr)

    go = threading.Event()
    shared = {"t0": None, "detection_s": None, "suspect_s": None}
    resumes = [Resume(i, (a.n1, a.n2)) for i in range(a.sessions)]
    # The threads exist before the kill; the deadline is set once it is known.
    box = {}
    threads = [threading.Thread(target=r.run, args=(go, box), daemon=True) for r in resumes]
    threads.append(threading.Thread(target=detect, args=(a.http1, go, box, shared), daemon=True))
    for th in threads:
        th.start()
    os.kill(a.n3_pid, signal.SIGKILL)
    t0 = time.monotonic()
    shared["t0"] = t0
    box["deadline"] = t0 + a.timeout
    go.set()
    for th in threads:
        th.join(timeout=max(0.0, t0 + a.timeout + 10 - time.monotonic()))

    ok = [r for r in resumes if r.problem is None and r.message_t is not None]
    connacks = [r.connack_t - t0 for r in resumes if r.connack_t is not None and r.present]
    msgs = sorted(r.message_t - t0 for r in ok)
    missing = [f"{cid(r.i)}: {r.problem or 'still running at the end'}"
               for r in resumes if r not in ok]
    reasons = {}
    for r in resumes:
        for k, v in r.reasons.items():
            reasons[f"0x{k:02x}"] = reasons.get(f"0x{k:02x}", 0) + v
    result = {
        "sessions": a.sessions,
        "first_resumed_s": r3(min(connacks)) if connacks else None,
        "p50_resumed_s": r3(statistics.median(msgs)) if msgs else None,
        "all_resumed_s": r3(max(msgs)) if len(ok) == a.sessions else None,
        "resumed": len(ok),
        "without_session_present": sum(1 for r in resumes if r.present is False),
        "without_message": sum(1 for r in resumes if r.present and r not in ok),
        "not_accepted": sum(1 for r in resumes if r.connack_t is None),
        "missing": missing[:20],
        "suspect_s": r3(shared["suspect_s"]),
        "detection_s": r3(shared["detection_s"]),
        "on_n1": sum(1 for r in resumes if r.node == "n1"),
        "on_n2": sum(1 for r in resumes if r.node == "n2"),
        "attempts": sum(r.attempts for r in resumes),
        "refused": sum(r.refused for r in resumes),
        "closed_before_connack": sum(r.closed for r in resumes),
        "connack_reasons": reasons,
        "timeout_s": a.timeout,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
