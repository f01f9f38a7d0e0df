#!/usr/bin/python3
"""Chaos: the nodes of a 3-node cluster go down one after the other while
clients publish and subscribe through a load balancer, and no message the
cluster acknowledged is lost, no persistent session is lost, and a QoS 2
subscription gets each QoS 2 message once.

Three nodes, each on a data directory that outlives its process, behind
HAProxy. Two MQTT 3.1.1 publishers (QoS 1 on chaos/q1, QoS 2 on chaos/q2;
3.1.1 so that a publish the cluster could not take ends the connection
instead of being acknowledged) publish q1-0, q1-1, ... one at a time, each
waiting for its PUBACK / PUBCOMP; after a failure or a lost connection a
publisher connects again and goes on with the next number (a payload is
never sent twice). Two MQTT 5 subscribers (clean start off, session expiry
600 s) subscribe to chaos/# at QoS 1 and at QoS 2; each connects again on
its own after a lost connection, and must then find its session (session
present 1). Each round takes one node down, n1, n2, n3:

  test_kill_and_restart_under_load: kill -9, wait until the others declare
    it dead (its sessions' copies take over), start it again on the same
    id, ports and data directory, wait until the cluster has converged;
  test_rolling_restart: SIGTERM, wait for it to exit (status 0), start it
    again the same way, converge.

Then the publishers stop and the subscribers get what is left. A
subscriber's deliveries are paho's on_message calls (for QoS 2: at
PUBREL). The client's half of the session -- QoS 2 messages PUBREC'd but
not yet released -- is kept across the paho objects (a new one per
connection), as MQTT requires of a client resuming a session; without it
paho answers the PUBREL of such a message with PUBCOMP and drops it.

A node that dies on its own fails the test at once. With CHAOS_LOG_DIR set
(and ulimit -c unlimited), the nodes' logs and core files are kept there.

Usage: test_chaos.py PATH_TO_STARLING [Chaos.test_...]
"""
import collections
import glob
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

from cluster_harness import Cluster, ClusterTest, HAProxy, dump_logs
from harness import MqttClient, http_json, main, wait_until

ROUNDS = 3             # one node down per round: n1, n2, n3
ROUND = 14.0           # seconds from one round's start to the next (death is declared in ~7 s)
PACE = 0.005           # between two publishes: at most ~200 messages a second per publisher
ACK_TIMEOUT = 5.0      # a publish not acknowledged by then failed
RETRY = 0.5            # between two connection attempts
EXPIRY = 600           # subscribers' session expiry
DRAIN = 20.0           # at most this long for the subscribers to get the rest
MAX_SEQ = 100000       # bounds each publisher's loop
MAX_ATTEMPTS = 2000    # bounds each connecting loop (RETRY apart: longer than any run)
FILTER = "chaos/#"


class Events:
    """A time-stamped account of the run, printed at the end."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.lines = []
        self.printed = False
        self.crashed = set()       # pids told dead
        self.lock = threading.Lock()

    def __call__(self, text):
        with self.lock:
            self.lines.append(f"  {time.monotonic() - self.t0:6.1f}s {text}")

    def show(self, title=""):
        if not self.printed:
            print(title + "\n".join(self.lines), flush=True)
        self.printed = True


def open_client(c, lb, **kw):
    """CONNECT through the load balancer: the CONNACK (present, rc, props),
    or None when the connection ended before one."""
    try:
        ack = c.connect(lb, expect_rc=None, timeout=ACK_TIMEOUT, **kw)
        if ack[1] == 0:
            c.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return ack
    except Exception:  # noqa: BLE001 - reset or closed before CONNACK: try again
        return None


class Publisher(threading.Thread):
    """TAG-0, TAG-1, ... to chaos/TAG, one at a time, until halted."""

    def __init__(self, lb, events, halt, tag, qos):
        super().__init__(daemon=True)
        self.lb, self.events, self.halt, self.tag, self.qos = lb, events, halt, tag, qos
        self.sent = 0
        self.acked = []          # payloads, in order
        self.failed = 0          # publishes not acknowledged
        self.refused = collections.Counter()   # CONNACK rc -> times
        self.error = None

    def connect(self):
        for attempts in range(1, MAX_ATTEMPTS + 1):
            if self.halt.is_set():
                break
            c = MqttClient(f"chaos-pub-{self.tag}", version=4)
            ack = open_client(c, self.lb)
            if ack is not None and ack[1] == 0:
                if attempts > 1:
                    self.events(f"{self.tag} publisher connected after {attempts} attempts")
                return c
            if ack is not None:
                self.refused[ack[1]] += 1
            c.close()
            self.halt.wait(RETRY)
        return None

    def run(self):
        client = None
        try:
            for seq in range(MAX_SEQ):
                client = client or self.connect()
                if client is None:
                    break
                payload = f"{self.tag}-{seq}"
                self.sent += 1
                try:
                    client.publish(f"chaos/{self.tag}", payload.encode(), qos=self.qos,
                                   timeout=ACK_TIMEOUT)
                except AssertionError as e:
                    self.failed += 1
                    self.events(f"{payload} not acknowledged: {str(e).split(': ', 1)[-1]}")
                    client.close()
                    client = None
                    continue
                self.acked.append(payload)
                if self.halt.wait(PACE):
                    break
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            if client is not None:
                client.close()


class Subscriber(threading.Thread):
    """A persistent MQTT 5 subscriber to chaos/# at qos that connects again
    whenever its connection ends, until halted."""

    def __init__(self, lb, nodes, events, halt, qos):
        super().__init__(daemon=True)
        self.lb, self.nodes, self.events, self.halt, self.qos = lb, nodes, events, halt, qos
        self.cid = f"chaos-sub-q{qos}"
        self.lock = threading.Lock()
        self.got = collections.Counter()       # payload -> on_message calls
        self.qos_of = {}                       # payload -> QoS it was delivered at
        # paho keeps a QoS 2 message from PUBREC to PUBREL in _in_messages and
        # delivers it at PUBREL: the client's part of the session, shared by
        # every paho object of this subscriber (paho mutates it in place).
        self.inflight = collections.OrderedDict()
        self.subscribed = threading.Event()
        self.resumed = 0                       # connections after the first subscription
        self.not_present = 0                   # ... of them without the session
        self.refused = collections.Counter()   # CONNACK rc -> times
        self.problems = []

    def on_message(self, client, userdata, msg):
        payload = bytes(msg.payload).decode()
        with self.lock:
            self.got[payload] += 1
            self.qos_of[payload] = msg.qos

    def delivered(self):
        with self.lock:
            return set(self.got)

    def run(self):
        attempts = 0
        try:
            for _ in range(MAX_ATTEMPTS):
                if self.halt.is_set():
                    break
                attempts += 1
                c = MqttClient(self.cid, version=5)
                c.c.on_message = self.on_message
                c.c._in_messages = self.inflight
                try:
                    ack = open_client(c, self.lb, clean_start=False, session_expiry=EXPIRY)
                    if ack is None or ack[1] != 0:
                        if ack is not None:
                            self.refused[ack[1]] += 1
                        self.halt.wait(RETRY)
                        continue
                    if self.subscribed.is_set():
                        self.resumed += 1
                        self.events(f"{self.cid} connected after {attempts} attempts, "
                                    f"session present {ack[0]}, on {where(self.nodes, self.cid)}")
                        if ack[0] != 1:
                            self.not_present += 1
                    attempts = 0
                    if not self.subscribed.is_set() or ack[0] != 1:
                        granted = c.subscribe(FILTER, qos=self.qos, timeout=ACK_TIMEOUT)
                        if granted != [self.qos]:
                            self.problems.append(f"{self.cid}: SUBACK {granted}")
                        if not self.subscribed.is_set():
                            self.events(f"{self.cid} subscribed on {where(self.nodes, self.cid)}")
                        self.subscribed.set()
                    while not self.halt.is_set() and c.disconnected is None:
                        self.halt.wait(0.1)
                    if c.disconnected is not None:
                        self.events(f"{self.cid} disconnected (rc {c.disconnected[0]})")
                except AssertionError as e:   # no SUBACK: connect again
                    self.events(f"{self.cid}: {e}")
                finally:
                    c.close()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.problems.append(f"{self.cid} crashed: {e!r}")


def crashed(brokers, events):
    """Node processes that ended without the test ending them (kill9 would
    not notice one): told once in the events, core file kept if CHAOS_LOG_DIR."""
    found = []
    for b in brokers:
        if b.proc is None or b.proc.poll() is None or b.killed or b.signalled:
            continue
        found.append(b.node_id)
        if b.pid not in events.crashed:
            events.crashed.add(b.pid)
            events(f"{b.node_id} (pid {b.pid}) died on its own: status {b.proc.returncode}")
            keep = os.environ.get("CHAOS_LOG_DIR")   # and ulimit -c unlimited
            if keep:
                os.makedirs(keep, exist_ok=True)
            for core in glob.glob(os.path.join(b.tmp, "core*")) if keep and b.tmp else ():
                shutil.copy(core, os.path.join(keep, f"{b.node_id}-{b.pid}-core"))
    return found


def where(nodes, client_id):
    """The nodes whose /api/v1/clients lists the client (copies are not listed)."""
    found = []
    for b in list(nodes):
        try:
            if b.alive() and http_json(b.http_port, "GET", f"/api/v1/clients/{client_id}")[0] == 200:
                found.append(b.node_id)
        except Exception:  # noqa: BLE001 - a node going down meanwhile
            pass
    return "/".join(found) or "?"


class Chaos(ClusterTest):
    def restart(self, c, i, dirs, events, brokers):
        """node i again: same id, ports and data directory."""
        old = c.nodes[i]
        seeds = ",".join(f"127.0.0.1:{b.cluster_port}" for b in c.nodes if b is not old)
        new = c.start_node(old.node_id, "--mqtt-listen", f"127.0.0.1:{old.port}",
                           "--cluster-listen", f"127.0.0.1:{old.cluster_port}",
                           "--http-listen", f"127.0.0.1:{old.http_port}",
                           "--join", seeds,
                           join=False, data_dir=dirs[i])
        c.nodes[i] = new
        brokers.append(new)
        events(f"{new.node_id} started again (pid {new.pid})")
        c.wait_converged(timeout=40.0)
        self.check_alive(brokers, events)
        events("converged")

    def check_alive(self, brokers, events):
        self.assertEqual(crashed(brokers, events), [], "nodes died by themselves")

    def kill_and_restart(self, c, i, dirs, events, brokers):
        victim = c.nodes[i]
        self.check_alive(brokers, events)
        victim.kill9()
        events(f"kill -9 {victim.node_id}")
        others = [b for b in c.nodes if b.alive()]
        took = c.wait_state(others, victim.node_id, "dead", 30.0)
        events(f"{victim.node_id} declared dead {took:.1f}s later")
        self.restart(c, i, dirs, events, brokers)

    def terminate_and_restart(self, c, i, dirs, events, brokers):
        victim = c.nodes[i]
        self.check_alive(brokers, events)
        victim.send_signal(signal.SIGTERM)
        events(f"SIGTERM {victim.node_id}")
        status = victim.wait_exit(45.0)
        events(f"{victim.node_id} exited with status {status}")
        self.assertEqual(status, 0, f"{victim.node_id} exit status after SIGTERM")
        self.restart(c, i, dirs, events, brokers)

    def chaos(self, label, disrupt):
        dirs = [tempfile.mkdtemp(prefix="starling-chaos-") for _ in range(3)]
        events, brokers, threads = Events(), [], []
        halt_pubs, halt_subs = threading.Event(), threading.Event()
        try:
            with Cluster(0) as c:
                try:
                    for i, d in enumerate(dirs):
                        c.nodes.append(c.start_node(f"n{i + 1}", data_dir=d))
                        brokers.append(c.nodes[-1])
                    c.wait_converged(timeout=30.0)
                    with HAProxy(c.nodes) as lb:
                        self.run_load(label, disrupt, c, lb, dirs, events, brokers, threads,
                                      halt_pubs, halt_subs)
                except BaseException:
                    crashed(brokers, events)
                    events.show()
                    dump_logs(brokers)
                    raise
                finally:
                    halt_pubs.set()
                    halt_subs.set()
                    for t in threads:
                        t.join(ACK_TIMEOUT + 10)
        finally:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)
            keep = os.environ.get("CHAOS_LOG_DIR")   # for a look at the nodes' logs afterwards
            if keep:
                os.makedirs(keep, exist_ok=True)
                for k, b in enumerate(brokers):
                    with open(os.path.join(keep, f"{k}-{b.node_id}-{b.pid}.log"), "w") as f:
                        f.write(b.log_text)

    def run_load(self, label, disrupt, c, lb, dirs, events, brokers, threads, halt_pubs,
                 halt_subs):
        subs = [Subscriber(lb, c.nodes, events, halt_subs, qos) for qos in (1, 2)]
        pubs = [Publisher(lb, events, halt_pubs, f"q{qos}", qos) for qos in (1, 2)]
        threads += subs + pubs
        for s in subs:
            s.start()
        for s in subs:
            wait_until(s.subscribed.is_set, 30.0, interval=0.05, message=f"{s.cid} to subscribe")
        for p in pubs:
            p.start()
        wait_until(lambda: all(p.acked for p in pubs), 30.0, interval=0.05,
                   message="a first acknowledged message from each publisher")
        per_round = []
        try:
            for r in range(ROUNDS):
                start, before = time.monotonic(), [len(p.acked) for p in pubs]
                events(f"round {r + 1}")
                disrupt(c, r % len(c.nodes), dirs, events, brokers)
                # The load goes on until the round's time is up.
                halt_pubs.wait(max(0.0, start + ROUND - time.monotonic()))
                per_round.append([len(p.acked) - b for p, b in zip(pubs, before)])
        finally:
            halt_pubs.set()
            for p in pubs:
                p.join(ACK_TIMEOUT + 10)
        events("publishers stopped")
        self.check_alive(brokers, events)
        acked = set().union(*(p.acked for p in pubs))
        sent = sum(p.sent for p in pubs)
        try:
            wait_until(lambda: all(acked <= s.delivered() for s in subs), DRAIN, interval=0.1)
        except AssertionError:
            pass  # counted as lost below
        events("drained" if all(acked <= s.delivered() for s in subs) else "drain timed out")
        halt_subs.set()
        for s in subs:
            s.join(ACK_TIMEOUT + 10)

        events.show(f"\n  {label}:\n")
        for p in pubs:
            print(f"  publisher {p.tag}: sent {p.sent}, acknowledged {len(p.acked)}, "
                  f"not acknowledged {p.failed}, CONNACK refusals {dict(p.refused)}")
        print(f"  acknowledged per round (q1, q2): {per_round}")
        problems = [f"publisher {p.tag}: {p.error!r}" for p in pubs if p.error is not None]
        problems += [f"{t} still running" for t in threads if t.is_alive()]
        for s in subs:
            with s.lock:
                got, qos_of = dict(s.got), dict(s.qos_of)
            lost = sorted(acked - got.keys(), key=lambda m: (m[:2], int(m[3:])))
            twice = sorted(m for m, n in got.items() if n > 1)
            twice_qos2 = [m for m in twice if qos_of[m] == 2]
            print(f"  {s.cid}: sent {sent}, acknowledged {len(acked)}, delivered {len(got)}, "
                  f"lost {len(lost)}, duplicated {len(twice)} ({len(twice_qos2)} at QoS 2); "
                  f"reconnects {s.resumed}, session not present {s.not_present}, "
                  f"CONNACK refusals {dict(s.refused)}", flush=True)
            if lost or twice:  # here too: a CI log may keep only the start of the assertion
                print(f"    lost: {lost[:30]}; duplicated: {twice[:30]}", flush=True)
            problems += s.problems
            if lost:
                problems.append(f"{s.cid}: {len(lost)} acknowledged messages lost: {lost[:30]}")
            if twice_qos2:
                problems.append(f"{s.cid}: {len(twice_qos2)} QoS 2 messages delivered more "
                                f"than once: {twice_qos2[:30]}")
            if s.not_present:
                problems.append(f"{s.cid}: {s.not_present} of {s.resumed} reconnects "
                                f"without the session")
            if s.resumed == 0:
                problems.append(f"{s.cid}: never lost its connection, so it showed nothing")
        for r, counts in enumerate(per_round):
            if min(counts) == 0:
                problems.append(f"round {r + 1}: a publisher had nothing acknowledged: {counts}")
        self.assertEqual(problems, [])

    def test_kill_and_restart_under_load(self):
        self.chaos("kill -9 and restart, n1..n3", self.kill_and_restart)

    def test_rolling_restart(self):
        self.chaos("rolling restart (SIGTERM), n1..n3", self.terminate_and_restart)


if __name__ == "__main__":
    main()
