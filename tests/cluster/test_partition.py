#!/usr/bin/python3
"""A network partition: one node of three is cut off from everything while
its persistent sessions' clients and publishers carry on, then the network
heals. No message acknowledged to its publisher may be lost (QoS 1: at least
once, QoS 2: exactly once), and once healed exactly one node holds each
session.

The network is built from Linux network namespaces (`ip netns`, so the test
needs root; without root, or when `ip netns add` fails, it is skipped): a hub
namespace with a bridge, one namespace per node (n1..n3) joined to the bridge
by a veth pair, eth0 = 10.X.0.11..13/24, and a veth from the test's own (root)
namespace into the bridge, 10.X.0.1/24, from which the paho clients and the
HTTP checks reach the nodes. X comes from the test's PID (the first 10.X.0.0/24
no route of the root namespace uses); every namespace and link name carries
the PID. n1 is cut off by taking its eth0 down inside its namespace (no extra
package: its packets go nowhere and nothing reaches it, the other nodes and
clients see a black hole) and healed by taking it up again. The namespaces,
the root veth and every process started (by PID) are removed at the end, even
on failure.

Scenario: a persistent QoS 1 and a persistent QoS 2 subscriber (MQTT 5, clean
start off, session expiry 600 s) on n1, both on PREFIX/#; a QoS 1 and a QoS 2
publisher (MQTT 3.1.1, so a publish the cluster could not take ends the
connection without PUBACK/PUBCOMP) on n2, one message at a time with sequence
payloads, reconnecting to n2/n3 on failure. After a few seconds n1 is cut
off; the subscribers' sockets are closed from the test side (a client whose
network broke does so after its keep-alive; paho would not notice a black
hole soon) and they reconnect to n2/n3 every 0.5 s until accepted (the
cluster refuses while n1 is not yet declared dead), with session present.
Publishing goes on, n1 is healed, the three nodes see each other alive,
publishing goes on a little and stops. Checked then: every acknowledged
message reached each subscriber (QoS 1 at least once; exactly once where it
is delivered at QoS 2), and exactly one node answers GET /api/v1/clients/<id>
with 200 for each subscriber (within 15 s). A node process that ends on its
own (a crash) fails the test at once. Sent, acknowledged, delivered, lost and
duplicated are printed for each publisher/subscriber pair. About 30 s when
all goes well; every wait is bounded (about 3.5 min at worst).

The subscribers keep one paho Client object each across reconnects: paho
1.6 delivers a QoS 2 message at its PUBREL and keeps those waiting for it in
the Client object (clean start off), so a new object would lose them by
itself. A QoS 2 id still waiting for its PUBREL at the end is reported.

Two more tests cut off the node that keeps a session's copy instead of the
owner (test_a_copy_cut_off_...): the copy misses what the client completes
meanwhile, which must not come back when the network heals, nor when the
owner dies later and the copy there takes over. In the second, the copy's
node reaches the other node before the owner as the network heals (a
blackhole route between the two, removed 0.5 s later). About 30 s each.

Usage: test_partition.py PATH_TO_STARLING [Partition.test_...]
"""
import collections
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from cluster_harness import SECRET
from harness import Broker, MqttClient, main, wait_until

MQTT_PORT, HTTP_PORT, CLUSTER_PORT = 1883, 8080, 7946   # inside each node's namespace
SESSION_EXPIRY = 600
TRAFFIC = 3.0          # seconds of publishing before the cut, after reconnecting, after healing
RECONNECT = 30.0       # bound on both subscribers getting back in after the cut
HEAL = 30.0            # bound on the three nodes seeing each other alive again
DRAIN = 15.0           # bound on the acknowledged messages arriving after the publishing
QUIET = 1.0            # then this long for a late second copy to show
CONVERGE = 15.0        # bound on exactly one node listing each session
PUBLISH_TIMEOUT = 10.0  # a publish not acknowledged by then counts as not acknowledged
STOP_TIMEOUT = 15.0


def run(*args, check=True):
    """An `ip` command; with check, AssertionError (with its stderr) on failure."""
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: exit status {r.returncode}: {r.stderr.strip()}")
    return r


def netns_unavailable():
    """Why namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "needs root for ip netns (network namespaces)"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    return None


class Net:
    """The namespaces, the bridge and the veths (see the module docstring)."""

    def __init__(self, n):
        pid = os.getpid()
        self.n = n
        self.hub = f"stp{pid}-hub"
        self.ns = [f"stp{pid}-n{i + 1}" for i in range(n)]
        self.root_veth = f"stp{pid}r"       # at most 15 characters: pids have at most 7 digits
        self.octet = None
        self.made = []                      # namespaces made, for removal
        self.links = []                     # veths made in the root namespace (one end of each pair)

    def ip_of(self, i):
        return f"10.{self.octet}.0.{11 + i}"

    def _pick_octet(self):
        used = run("ip", "-4", "route", "show", "table", "all").stdout + run("ip", "-4", "addr").stdout
        start = os.getpid() % 200
        for k in range(200):
            x = 20 + (start + k) % 200
            if not re.search(rf"\b10\.{x}\.", used):
                return x
        raise AssertionError("no free 10.X.0.0/24 for the test network")

    def __enter__(self):
        try:
            self.octet = self._pick_octet()
            pid = os.getpid()
            for ns in [self.hub] + self.ns:
                r = run("ip", "netns", "add", ns, check=False)
                if r.returncode != 0:
                    raise unittest.SkipTest(f"cannot create a network namespace "
                                            f"(ip netns add {ns}: {r.stderr.strip()})")
                self.made.append(ns)
                run("ip", "-n", ns, "link", "set", "lo", "up")
            run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
            run("ip", "-n", self.hub, "link", "set", "br0", "up")
            for i, ns in enumerate(self.ns):
                # Made in the root namespace under unique names, then moved.
                a, b = f"stp{pid}a{i + 1}", f"stp{pid}b{i + 1}"
                run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
                self.links.append(a)            # until moved: removed with the pair on failure
                run("ip", "link", "set", b, "netns", self.hub)
                run("ip", "link", "set", a, "netns", ns)
                run("ip", "-n", ns, "link", "set", a, "name", "eth0")
                run("ip", "-n", ns, "addr", "add", f"{self.ip_of(i)}/24", "dev", "eth0")
                run("ip", "-n", ns, "link", "set", "eth0", "up")
                run("ip", "-n", self.hub, "link", "set", b, "master", "br0", "up")
            hub_side = f"stp{pid}h"
            run("ip", "link", "add", self.root_veth, "type", "veth", "peer", "name", hub_side)
            self.links.append(self.root_veth)
            run("ip", "link", "set", hub_side, "netns", self.hub)
            run("ip", "-n", self.hub, "link", "set", hub_side, "master", "br0", "up")
            run("ip", "addr", "add", f"10.{self.octet}.0.1/24", "dev", self.root_veth)
            run("ip", "link", "set", self.root_veth, "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def cut(self, i):
        run("ip", "-n", self.ns[i], "link", "set", "eth0", "down")

    def block(self, i, j):
        """No packet between nodes i and j (a blackhole route on each side);
        both still reach the rest. Gone with the namespaces at the end."""
        run("ip", "-n", self.ns[i], "route", "add", "blackhole", f"{self.ip_of(j)}/32")
        run("ip", "-n", self.ns[j], "route", "add", "blackhole", f"{self.ip_of(i)}/32")

    def unblock(self, i, j):
        run("ip", "-n", self.ns[i], "route", "del", "blackhole", f"{self.ip_of(j)}/32")
        run("ip", "-n", self.ns[j], "route", "del", "blackhole", f"{self.ip_of(i)}/32")

    def heal(self, i):
        run("ip", "-n", self.ns[i], "link", "set", "eth0", "up")

    def __exit__(self, *exc):
        for link in self.links:             # those moved into a namespace are not here any more
            if os.path.exists(f"/sys/class/net/{link}"):
                run("ip", "link", "del", link, check=False)
        self.links = []
        for ns in reversed(self.made):      # the veths inside go with them
            run("ip", "netns", "del", ns, check=False)
        self.made = []
        return False


@contextlib.contextmanager
def ns_node(net, i, join=None):
    """One starling process inside the namespace of node i, on fixed ports of
    its own address (a harness Broker: `ip netns exec` execs starling in place,
    so it is stopped by its PID); its log's tail is shown when the test fails,
    or always with PARTITION_SHOW_LOGS=1 (to see which way a passing run went)."""
    name = f"n{i + 1}"
    with Broker("--cluster-secret", SECRET, *(["--join", join] if join else []),
                node_id=name, name=name, http=True, cluster=True,
                prefix=["ip", "netns", "exec", net.ns[i]], host=net.ip_of(i),
                ports={"mqtt": MQTT_PORT, "http": HTTP_PORT, "cluster": CLUSTER_PORT},
                stop_timeout=STOP_TIMEOUT) as node:
        node.show_log = node.show_log or os.environ.get("PARTITION_SHOW_LOGS") == "1"
        try:
            yield node
        except BaseException:
            node.show_log = True
            raise


def connect(client, node, **kw):
    """client.connect, then TCP_NODELAY (as ClusterTest.connect does) when the
    connection is still there (a refusing CONNACK closes it)."""
    result = client.connect(node, **kw)
    with contextlib.suppress(OSError, AttributeError):
        client.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return result


def http_get(node, path):
    """GET http://node:http_port/path -> (status, JSON body or None); (None, error)
    when the node does not answer."""
    conn = http.client.HTTPConnection(node.host, node.http_port, timeout=3)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, None
    except OSError as e:
        return None, str(e)
    finally:
        conn.close()


def alive_seen_by(node):
    status, body = http_get(node, "/api/v1/cluster/members")
    if status != 200:
        return set()
    return {m["node_id"] for m in body["data"] if m["state"] == "alive"}


def check_running(nodes):
    """AssertionError when a node's process has ended (a crash), rather than
    waiting out a deadline for it."""
    for b in nodes:
        status = b.proc.poll()
        if status is not None:
            what = f"signal {-status} ({signal.Signals(-status).name})" if status < 0 else f"status {status}"
            raise AssertionError(f"{b.node_id} (pid {b.proc.pid}) ended during the test with {what}")


def converged(nodes):
    check_running(nodes)
    ids = {b.node_id for b in nodes}
    return all(ids <= alive_seen_by(b) and http_get(b, "/readyz")[0] == 200 for b in nodes)


def listing_nodes(nodes, client_id):
    """The nodes whose /api/v1/clients/<id> answers 200 (the owner; copies are
    not listed)."""
    return [b.node_id for b in nodes if http_get(b, f"/api/v1/clients/{client_id}")[0] == 200]


class Publisher(threading.Thread):
    """MQTT 3.1.1, one message at a time, payloads 1, 2, 3, ..., each waiting for
    its PUBACK/PUBCOMP; on a failure, reconnects (to the next of `targets`)."""

    def __init__(self, client_id, topic, qos, targets, connect):
        super().__init__(daemon=True)
        self.client_id, self.topic, self.qos = client_id, topic, qos
        self.targets, self._connect = targets, connect
        self.sent, self.acked = [], []
        self.failures = []        # (seconds since start, what)
        self.error = None
        self.halt = threading.Event()
        self.client = None
        self.t0 = time.monotonic()

    def _reconnect(self, k):
        if self.client is not None:
            self.client.close()
            self.client = None
        node = self.targets[k % len(self.targets)]
        c = MqttClient(self.client_id, version=4)
        try:
            self._connect(c, node)
        except Exception as e:  # noqa: BLE001 - refused, reset, timed out: try again
            c.close()
            self.failures.append((round(time.monotonic() - self.t0, 1), f"connect {node.node_id}: {e}"))
            return False
        self.client = c
        return True

    def run(self):
        try:
            seq, k = 0, 0
            while not self.halt.is_set():
                if self.client is None:
                    if not self._reconnect(k):
                        k += 1
                        self.halt.wait(0.5)
                        continue
                seq += 1
                self.sent.append(seq)
                try:
                    self.client.publish(self.topic, str(seq).encode(), qos=self.qos,
                                        timeout=PUBLISH_TIMEOUT)
                    self.acked.append(seq)
                except AssertionError as e:
                    self.failures.append((round(time.monotonic() - self.t0, 1), str(e)))
                    self.client.close()
                    self.client = None
                    k += 1
        except BaseException as e:  # re-raised by the test
            self.error = e
        finally:
            if self.client is not None:
                self.client.close()


def metric(node, name):
    """The value of an unlabelled sample of /metrics, or None."""
    conn = http.client.HTTPConnection(node.host, node.http_port, timeout=3)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    except OSError:
        return None
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def state_seen_by(node, member):
    status, body = http_get(node, "/api/v1/cluster/members")
    if status != 200:
        return None
    return next((m["state"] for m in body["data"] if m["node_id"] == member), None)


class Problems(AssertionError):
    """The test's findings, all of them."""


class Partition(unittest.TestCase):
    def setUp(self):
        reason = netns_unavailable()
        if reason:
            self.skipTest(reason)

    def subscriber_connect(self, sub, targets, deadline):
        """Connects sub (clean start off) to each of targets in turn every 0.5 s
        until one accepts (AssertionError at the deadline); returns (node,
        connack, attempts, refusals)."""
        attempts, refusals = 0, collections.Counter()
        while True:
            check_running(targets)
            node = targets[attempts % len(targets)]
            attempts += 1
            try:
                connack = connect(sub, node, clean_start=False, session_expiry=SESSION_EXPIRY,
                                  expect_rc=None, timeout=5.0)
                if connack[1] == 0:
                    return node, connack, attempts, refusals
                refusals[f"rc 0x{connack[1]:02x}"] += 1
            except Exception as e:  # noqa: BLE001 - reset or timed out: try again, as a client would
                refusals[type(e).__name__] += 1
            sub.kill()
            if time.monotonic() > deadline:
                raise AssertionError(f"{sub.client_id} not accepted by {[t.node_id for t in targets]} "
                                     f"within {RECONNECT}s of the cut ({attempts} attempts: {dict(refusals)})")
            time.sleep(0.5)

    def test_cut_one_node_off_and_heal(self):
        problems = []     # found on the way, reported with whatever stops the test later
        try:
            self.scenario(problems)
        except Problems:
            raise
        except AssertionError as e:
            if problems:
                raise AssertionError("\n".join(problems + [str(e)])) from e
            raise

    def scenario(self, problems):
        t0 = time.monotonic()
        prefix = f"pt{os.getpid()}"
        events = []

        def note(what):
            events.append(f"{time.monotonic() - t0:6.1f}s {what}")
            print(f"  {events[-1]}", flush=True)

        with contextlib.ExitStack() as stack:
            net = stack.enter_context(Net(3))
            n1 = stack.enter_context(ns_node(net, 0))
            seed = f"{n1.host}:{n1.cluster_port}"
            n2 = stack.enter_context(ns_node(net, 1, join=seed))
            n3 = stack.enter_context(ns_node(net, 2, join=seed))
            nodes = [n1, n2, n3]
            wait_until(lambda: converged(nodes), 20.0, interval=0.2, message="the three nodes to converge")
            note(f"cluster up on 10.{net.octet}.0.0/24")

            # The subscribers: one paho Client each for the whole test.
            subs = {}
            for qos in (1, 2):
                sub = MqttClient(f"{prefix}-sub{qos}", version=5)
                stack.callback(sub.close)
                present, rc, _ = connect(sub, n1, clean_start=False, session_expiry=SESSION_EXPIRY)
                self.assertEqual(rc, 0)
                self.assertEqual(sub.subscribe(f"{prefix}/#", qos=qos), [qos])
                subs[qos] = sub

            publishers = {qos: Publisher(f"{prefix}-pub{qos}", f"{prefix}/q{qos}", qos, [n2, n3],
                                         connect) for qos in (1, 2)}
            stack.callback(lambda: [p.join(PUBLISH_TIMEOUT + 5) for p in publishers.values()])
            stack.callback(lambda: [p.halt.set() for p in publishers.values()])
            for p in publishers.values():
                p.start()

            def acked_counts():
                return {q: len(p.acked) for q, p in publishers.items()}

            def traffic(seconds, what):
                """Publishing goes on for `seconds` (and at least until each
                publisher has one more acknowledged message)."""
                before = acked_counts()
                end = time.monotonic() + seconds
                wait_until(lambda: check_running(nodes) or time.monotonic() >= end and
                           all(len(p.acked) > before[q] for q, p in publishers.items()),
                           seconds + PUBLISH_TIMEOUT + 5, interval=0.1,
                           message=f"publishing to go on ({what}; acknowledged {acked_counts()})")
                note(f"{what}: acknowledged so far {acked_counts()}")

            traffic(TRAFFIC, "before the cut")
            net.cut(0)
            note("n1 cut off (eth0 down in its namespace)")
            for sub in subs.values():
                sub.kill()    # what the client does when its keep-alive finds the network gone

            resumed = {}
            deadline = time.monotonic() + RECONNECT
            for qos, sub in subs.items():
                targets = [n2, n3] if qos == 1 else [n3, n2]
                node, (present, rc, _), attempts, refusals = self.subscriber_connect(sub, targets, deadline)
                note(f"sub{qos} back on {node.node_id}, session present {present}, after {attempts} "
                     f"attempt(s), refused/failed: {dict(refusals)}")
                resumed[qos] = (node, present)
            # Checked at the end with the rest, so that one run shows everything.
            problems += [f"sub{qos} resumed on {node.node_id} with session present {present}, expected 1"
                        for qos, (node, present) in resumed.items() if present != 1]

            traffic(TRAFFIC, "after the subscribers came back")
            net.heal(0)
            note("n1 healed (eth0 up)")
            try:
                wait_until(lambda: converged(nodes), HEAL, interval=0.2,
                           message="the three nodes to see each other alive after healing")
            finally:
                note("members seen alive: " + ", ".join(f"{b.node_id}: {sorted(alive_seen_by(b))}"
                                                         for b in nodes))
            traffic(TRAFFIC, "after healing")

            for p in publishers.values():
                p.halt.set()
            for p in publishers.values():
                p.join(PUBLISH_TIMEOUT + 5)
                if p.is_alive():
                    raise AssertionError(f"publisher {p.client_id} did not stop")
                if p.error is not None:
                    raise AssertionError(f"publisher {p.client_id}: {p.error!r}") from p.error
            note("publishing stopped")

            # Every acknowledged message, to both subscribers (each on PREFIX/#).
            acked = {q: set(p.acked) for q, p in publishers.items()}

            def all_delivered():
                for sub in subs.values():
                    got = set()
                    for m in sub.msgs.messages:
                        got.add((m.topic, m.payload))
                    for q, seqs in acked.items():
                        topic = f"{prefix}/q{q}"
                        if not all((topic, str(s).encode()) in got for s in seqs):
                            return False
                return True
            try:
                wait_until(all_delivered, DRAIN, interval=0.1, message="the acknowledged messages")
                time.sleep(QUIET)     # observation only: a late second copy shows up here
            except AssertionError:
                pass                  # counted and reported below
            disconnected = {q: s.disconnected for q, s in subs.items()}

            # Exactly one node holds each session.
            owners = {}
            owner_problem = None
            try:
                wait_until(lambda: all(len(listing_nodes(nodes, s.client_id)) == 1 for s in subs.values()),
                           CONVERGE, interval=0.2, message="exactly one node to list each subscriber")
            except AssertionError as e:
                owner_problem = str(e)
            for q, s in subs.items():
                owners[q] = listing_nodes(nodes, s.client_id)

            # Counts.
            print(f"\n  partition test, {time.monotonic() - t0:.1f}s", flush=True)
            for q, p in publishers.items():
                print(f"  publisher QoS {q}: sent {len(p.sent)}, acknowledged {len(p.acked)}, "
                      f"failures {len(p.failures)}: {p.failures[:6]}", flush=True)
            for sq, sub in subs.items():
                unreleased = [(m.topic, m.payload.decode()) for m in list(sub.c._in_messages.values())]
                for pq, p in publishers.items():
                    topic = f"{prefix}/q{pq}"
                    counts = collections.Counter(int(m.payload) for m in sub.msgs.messages if m.topic == topic)
                    lost = sorted(set(p.acked) - counts.keys())
                    dups = sorted(s for s, n in counts.items() if n > 1)
                    eff = min(sq, pq)
                    held = [s for t, s in unreleased if t == topic]
                    print(f"  sub QoS {sq} <- pub QoS {pq} (delivered at QoS {eff}): sent {len(p.sent)}, "
                          f"acknowledged {len(p.acked)}, delivered {len(counts)}, lost {len(lost)}"
                          f"{' ' + str(lost[:20]) if lost else ''}, duplicated {len(dups)}"
                          f"{' ' + str(dups[:20]) if dups else ''}"
                          f"{', waiting for PUBREL ' + str(held[:20]) if held else ''}", flush=True)
                    if lost:
                        problems.append(f"sub{sq}: {len(lost)} acknowledged QoS {pq} messages never "
                                        f"arrived: {lost[:20]}")
                    if eff == 2 and dups:
                        problems.append(f"sub{sq}: {len(dups)} QoS 2 messages delivered more than once: "
                                        f"{dups[:20]}")
                    if eff == 2 and held:
                        problems.append(f"sub{sq}: QoS 2 messages PUBREC'd and never released: {held[:20]}")
                print(f"  sub QoS {sq}: listed as a session by {owners[sq]}; "
                      f"connection ended by the broker: {disconnected[sq]}", flush=True)
            if owner_problem is not None:
                problems.append(f"{owner_problem}: " + ", ".join(
                    f"sub{q} listed by {owners[q]}" for q in owners))
            for q, p in publishers.items():
                if len(p.acked) < 10:
                    problems.append(f"publisher QoS {q}: only {len(p.acked)} acknowledged, too few to "
                                    f"show anything")
            if problems:
                for b in nodes:
                    lines = [l for l in b.read_log().splitlines()
                             if prefix in l or "dead" in l or "takeover" in l.lower() or "epoch" in l]
                    print(f"---- {b.node_id}: lines about the sessions and membership ----\n" +
                          "\n".join(lines[-60:]) + "\n----", flush=True)
            if problems:
                raise Problems("\n".join(problems))

    def test_a_copy_cut_off_brings_back_nothing_completed(self):
        """The node with a session's copy is cut off while the owner's client
        takes its queued messages; then the network heals, and later the owner
        dies. The copy there missed those completions. They must not come back
        when the copy's node is back, and the owner must open a new copy there
        rather than merge into the stale one, which would send them again once
        it is promoted: every QoS 2 message arrives exactly once."""
        self.copy_cut_off(owner_last=False)

    def test_a_copy_cut_off_that_sees_the_owner_last_brings_back_nothing_completed(self):
        """The same, but as the network heals the copy's node reaches the
        other node 0.5 s before the owner (a CI run saw it so, by chance): it
        takes that for a majority while the owner was gone and sends its stale
        copy back. The owner, which kept a majority all along, must not merge
        it."""
        self.copy_cut_off(owner_last=True)

    def copy_cut_off(self, owner_last):
        t0 = time.monotonic()
        prefix = f"pc{os.getpid()}"
        queued, later = 20, 5

        def note(what):
            print(f"  {time.monotonic() - t0:6.1f}s {what}", flush=True)

        with contextlib.ExitStack() as stack:
            net = stack.enter_context(Net(3))
            n1 = stack.enter_context(ns_node(net, 0))
            seed = f"{n1.host}:{n1.cluster_port}"
            # With the owner's node out of reach, n2 and n3 find each other
            # again only through a seed of their own.
            seeds = [f"{seed},{net.ip_of(3 - i)}:{CLUSTER_PORT}" if owner_last else seed for i in (1, 2)]
            nodes = [n1] + [stack.enter_context(ns_node(net, i, join=seeds[i - 1])) for i in (1, 2)]
            wait_until(lambda: converged(nodes), 20.0, interval=0.2, message="the three nodes to converge")

            sub = MqttClient(f"{prefix}-sub", version=5)
            stack.callback(sub.close)
            present, rc, _ = connect(sub, n1, clean_start=False, session_expiry=SESSION_EXPIRY)
            self.assertEqual(rc, 0)
            self.assertEqual(sub.subscribe(f"{prefix}/#", qos=2), [2])
            wait_until(lambda: sum(metric(b, "starling_cluster_replicas") or 0 for b in nodes[1:]) == 1, 10.0,
                       interval=0.1, message="the session's copy on n2 or n3")
            k = 1 if metric(nodes[1], "starling_cluster_replicas") == 1 else 2
            copy, other = nodes[k], nodes[3 - k]
            note(f"the copy is on {copy.node_id}")

            sub.disconnect()
            wait_until(lambda: (http_get(n1, f"/api/v1/clients/{sub.client_id}")[1] or {}).get("connected") is False,
                       5.0, interval=0.05, message="the session offline")
            pub = MqttClient(f"{prefix}-pub", version=5)
            stack.callback(pub.close)
            connect(pub, other)
            for i in range(1, queued + 1):
                pub.publish(f"{prefix}/t", str(i).encode(), qos=2)   # PUBCOMP: owner and copy have it
            note(f"{queued} messages queued for the offline session")

            net.cut(k)
            note(f"{copy.node_id} cut off")
            wait_until(lambda: state_seen_by(n1, copy.node_id) == "dead", 20.0, interval=0.2,
                       message=f"n1 to declare {copy.node_id} dead")
            wait_until(lambda: metric(other, "starling_cluster_replicas") == 1, 10.0, interval=0.1,
                       message=f"a new copy on {other.node_id}")
            present, rc, _ = connect(sub, n1, clean_start=False, session_expiry=SESSION_EXPIRY)
            self.assertEqual((present, rc), (1, 0))
            sub.msgs.wait_for(queued, timeout=10.0)
            note(f"the client took its {queued} messages on n1 while {copy.node_id} was cut off")
            time.sleep(1.0)   # the last completions reach the copy on the other node

            if owner_last:
                net.block(0, k)
                net.heal(k)
                wait_until(lambda: state_seen_by(copy, other.node_id) == "alive", HEAL, interval=0.1,
                           message=f"{copy.node_id} to see {other.node_id} alive")
                time.sleep(0.5)
                net.unblock(0, k)
                note(f"{copy.node_id} saw {other.node_id} alive before n1")
            else:
                net.heal(k)
            wait_until(lambda: converged(nodes), HEAL, interval=0.2,
                       message="the three nodes to see each other alive after healing")
            wait_until(lambda: metric(copy, "starling_cluster_replicas") == 1 and
                       metric(other, "starling_cluster_replicas") == 0, 15.0, interval=0.1,
                       message=f"the copy back on {copy.node_id} alone")
            note(f"healed; the copy is on {copy.node_id} again")
            sub.msgs.wait_quiet(4.0)   # a copy is sent back at the rejoin and 3 s later
            after_heal = len(sub.msgs)
            for i in range(queued + 1, queued + later + 1):
                pub.publish(f"{prefix}/t", str(i).encode(), qos=2)
            sub.msgs.wait_for(queued + later, timeout=10.0)
            time.sleep(1.0)   # their completions reach the copy
            pub.close()

            n1.kill9()
            sub.kill()
            note("n1 killed")
            node, (present, rc, _), attempts, refusals = self.subscriber_connect(
                sub, [copy], time.monotonic() + RECONNECT)
            note(f"the client resumed on {node.node_id} after {attempts} attempt(s), session present {present}")
            self.assertEqual(present, 1)
            sub.msgs.wait_quiet(3.0)

            counts = collections.Counter(int(m.payload) for m in sub.msgs.messages)
            expected = set(range(1, queued + later + 1))
            lost = sorted(expected - counts.keys())
            dups = sorted(i for i, n in counts.items() if n > 1)
            print(f"  copy cut off: {len(expected)} acknowledged, {after_heal} delivered before the "
                  f"owner died, lost {lost}, delivered twice {dups}", flush=True)
            self.assertEqual(lost, [])
            self.assertEqual(dups, [], "QoS 2 messages delivered more than once")


if __name__ == "__main__":
    main()
