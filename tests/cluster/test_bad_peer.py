#!/usr/bin/python3
"""A cluster peer that misbehaves, as the nodes around it see it: garbage
(undecodable bytes, and well-formed messages no client could have sent), the
wrong secret and a message over the 16 MiB limit are refused, and the node
that refused them goes on as before (same members, same routes, forwarding
both ways); a peer that stops reading (SIGSTOP) holds up nobody else, and gets
what it missed once it reads again.

The bad peer is this test, speaking gRPC with python3-grpcio. There is no
protoc for Python here: the calls carry raw bytes, and the few valid messages
needed are encoded by hand (pb_* below, field numbers from proto/cluster.proto).

Usage: test_bad_peer.py PATH_TO_STARLING
"""
import os
import random
import signal
import threading
import time

import grpc

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import SECRET, Cluster, ClusterTest

MIB = 1024 * 1024
LIMIT = 16 * MIB   # the largest message a node takes (cluster/cluster_node.cpp)
HUGE = 20 * MIB

# What gRPC answers a unary call whose request does not decode: C++ 1.51's
# callback API says UNIMPLEMENTED; INTERNAL and INVALID_ARGUMENT would do as well.
UNDECODABLE = (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)


# --------------------------------------------------------------------------- protobuf by hand

def pb_varint(n):
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb_int(field, value):
    return pb_varint(field << 3) + pb_varint(value)


def pb_bytes(field, value):
    value = value.encode() if isinstance(value, str) else value
    return pb_varint(field << 3 | 2) + pb_varint(len(value)) + value


def pb_read_varint(data, i):
    """(value, next index)."""
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def pb_decode(data):
    """{field number: [values]}: ints for varints, bytes for length-delimited."""
    fields, i = {}, 0
    while i < len(data):
        key, i = pb_read_varint(data, i)
        if key & 7 == 0:
            value, i = pb_read_varint(data, i)
        elif key & 7 == 2:
            size, i = pb_read_varint(data, i)
            value, i = bytes(data[i:i + size]), i + size
        else:
            raise AssertionError(f"unexpected wire type {key & 7} in {data!r}")
        fields.setdefault(key >> 3, []).append(value)
    return fields


def pb_uint_list(values):
    """A repeated uint32 field's values, packed (proto3's default) or not."""
    out = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
            continue
        i = 0
        while i < len(v):
            n, i = pb_read_varint(v, i)
            out.append(n)
    return out


def forwarded(topic, payload, qos):
    """ForwardedMessage{topic, payload, qos}."""
    return pb_bytes(1, topic) + pb_bytes(2, payload) + pb_int(3, qos)


def forward_batch(from_node, messages, sequence=1, link_id=None):
    """ForwardBatch, by default on a link id of its own, so no node has seen it before."""
    link_id = link_id or random.getrandbits(63) | 1
    return (pb_bytes(1, from_node) + b"".join(pb_bytes(2, m) for m in messages) +
            pb_int(3, link_id) + pb_int(4, sequence))


def route_update(from_node, added):
    """RouteUpdate: a snapshot (everything from_node has), version 1 of epoch 7."""
    out = pb_bytes(1, from_node) if from_node else b""
    return out + pb_int(2, 7) + pb_int(4, 1) + pb_int(5, 1) + b"".join(pb_bytes(6, f) for f in added)


def sanitized(pid):
    """Whether the process runs with AddressSanitizer (GCC links it as a library)."""
    with open(f"/proc/{pid}/maps") as maps:
        return any("libasan" in line for line in maps)


def garbage():
    """Bytes no protobuf parser takes, whatever the message type."""
    rng = random.Random(20261126)
    return [bytes([0x07]) + rng.randbytes(256),   # field 0, wire type 7: no such tag
            b"\x0a\xff\xff\x03" + rng.randbytes(64),  # field 1 of 65535 bytes, cut short
            b"\xff" * 64]                          # a tag that never ends


class Peer:
    """A gRPC client posing as a cluster node, calling one node's cluster
    port with `secret` in x-starling-secret (None: no secret at all)."""

    def __init__(self, node, secret=SECRET):
        # Large sends allowed here, so an oversized message reaches the node.
        self.channel = grpc.insecure_channel(f"127.0.0.1:{node.cluster_port}",
                                             options=[("grpc.max_send_message_length", 64 * MIB),
                                                      ("grpc.max_receive_message_length", 64 * MIB)])
        self.metadata = () if secret is None else (("x-starling-secret", secret),)
        raw = dict(request_serializer=bytes, response_deserializer=bytes)
        self._update = self.channel.unary_unary("/starling.cluster.v1.Routing/UpdateRoutes", **raw)
        self._forward = self.channel.stream_stream("/starling.cluster.v1.Routing/Forward", **raw)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.channel.close()
        return False

    def update_routes(self, request, timeout=10.0):
        """(status code, decoded RouteAck or None, details)."""
        try:
            reply = self._update(request, metadata=self.metadata, timeout=timeout)
            return grpc.StatusCode.OK, pb_decode(reply), ""
        except grpc.RpcError as e:
            return e.code(), None, e.details()

    def forward(self, batches, answers=0, timeout=10.0):
        """Sends `batches` on one Forward stream and keeps this side open until
        `answers` ForwardAcks came or the node ended the stream (a node drops
        the answers still to come once the caller has closed its side).
        Returns (status code, decoded acks, details)."""
        enough = threading.Event()

        def requests():
            yield from batches
            enough.wait(timeout)
        call = self._forward(requests(), metadata=self.metadata, timeout=timeout)
        acks = []
        try:
            for reply in call:
                acks.append(pb_decode(reply))
                if len(acks) >= answers:
                    enough.set()
            return call.code(), acks, call.details()
        except grpc.RpcError as e:
            return e.code(), acks, e.details()
        finally:
            enough.set()


def process_state(pid):
    """R, S, T (stopped), ... from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class BadPeer(ClusterTest):
    def routes(self, node):
        samples = scrape(node.http_port)
        return (metric(samples, "starling_cluster_routes", owner="local"),
                metric(samples, "starling_cluster_routes", owner="remote"))

    def assert_members_alive(self, c):
        ids = {b.node_id for b in c.nodes}
        for b in c.nodes:
            self.assertEqual({i: m["state"] for i, m in c.members(b).items()}, {i: "alive" for i in ids}, b.node_id)
            self.assertEqual(metric(scrape(b.http_port), "starling_cluster_members", state="alive"), len(ids))

    def test_garbage_is_refused_and_the_cluster_goes_on(self):
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            sub = self.client(n2)
            sub.subscribe("g/#", qos=1)
            routes = {b.node_id: self.routes(b) for b in c.nodes}
            self.assertEqual(routes, {"n1": (0, 1), "n2": (1, 0), "n3": (0, 1)})
            for node in c.nodes:
                with Peer(node) as peer:
                    for junk in garbage():
                        code, _, details = peer.update_routes(junk)
                        self.assertIn(code, UNDECODABLE, f"garbage UpdateRoutes to {node.node_id}: {details}")
                        code, acks, details = peer.forward([junk])
                        # Nothing taken, and the stream ended (how it ends:
                        # test_an_undecodable_forward_batch_ends_its_stream_with_an_error).
                        self.assertEqual(acks, [], f"garbage Forward to {node.node_id}")
                        self.assertNotIn(code, (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE),
                                         f"garbage Forward to {node.node_id}: {details}")
                    # Well-formed nonsense: no sender, filters no client could subscribe to.
                    code, _, details = peer.update_routes(route_update("", ["g/#"]))
                    self.assertEqual(code, grpc.StatusCode.INVALID_ARGUMENT, details)
                    code, _, details = peer.update_routes(route_update("bad-peer", ["g/#/x", "g+", "", "a/b#"]))
                    self.assertEqual(code, grpc.StatusCode.OK, details)
                self.assertTrue(node.alive(), f"{node.node_id} died")
            # A batch with messages no client could have published: those are
            # refused by index, the good one is delivered.
            with Peer(n2) as peer:
                batch = forward_batch("bad-peer", [forwarded("g/ok", b"ok", 1), forwarded("g/#", b"bad topic", 1),
                                                   forwarded("g/q", b"bad qos", 7)])
                code, acks, details = peer.forward([batch], answers=1)
            self.assertEqual(code, grpc.StatusCode.OK, details)
            self.assertEqual(len(acks), 1, acks)
            self.assertEqual(acks[0].get(2), [1], acks)   # sequence
            self.assertEqual(pb_uint_list(acks[0].get(1, [])), [1, 2], acks)   # refused
            sub.msgs.wait_for(1, topic="g/ok")

            # Unharmed: same members, same routes, and messages go across.
            self.assertTrue(all(b.alive() for b in c.nodes))
            self.assert_members_alive(c)
            self.assertEqual({b.node_id: self.routes(b) for b in c.nodes}, routes)
            for i, node in enumerate((n1, n3)):
                self.client(node).publish("g/after", f"after {i}".encode(), qos=1)
            sub.msgs.wait_for(2, topic="g/after")
            sub.msgs.wait_quiet(0.3)
            self.assertEqual(sub.msgs.payloads(), [b"ok", b"after 0", b"after 1"])

    def test_a_batch_sent_again_is_answered_but_delivered_once(self):
        # A node whose stream broke before a batch's answer came sends the
        # batch again on a new stream; the receiver knows it by link id and
        # sequence, answers it, and does not deliver it twice.
        with Cluster(1) as c:
            n1 = c.nodes[0]
            sub = self.client(n1)
            sub.subscribe("again/#", qos=1)
            link = random.getrandbits(63) | 1
            first = forward_batch("bad-peer", [forwarded("again/1", b"one", 1)], sequence=1, link_id=link)
            second = forward_batch("bad-peer", [forwarded("again/2", b"two", 1)], sequence=2, link_id=link)
            with Peer(n1) as peer:
                code, acks, details = peer.forward([first], answers=1)
                self.assertEqual(code, grpc.StatusCode.OK, details)
                self.assertEqual([a.get(2) for a in acks], [[1]])
                # On a new stream: the first again, the next one, and the first
                # once more on the same stream.
                code, acks, details = peer.forward([first, second, first], answers=3)
                self.assertEqual(code, grpc.StatusCode.OK, details)
                self.assertEqual(sorted(a.get(2)[0] for a in acks), [1, 1, 2])
                self.assertEqual([a.get(1) for a in acks], [None] * 3, "nothing refused")
            sub.msgs.wait_for(2)
            sub.msgs.wait_quiet(0.5)
            self.assertEqual(sub.msgs.payloads(), [b"one", b"two"])

    def test_an_undecodable_forward_batch_ends_its_stream_with_an_error(self):
        # The sender learns that the node did not take its batch, and why,
        # rather than seeing the stream end as if it had closed it itself.
        with Cluster(1) as c:
            with Peer(c.nodes[0]) as peer:
                for junk in garbage():
                    code, acks, details = peer.forward([junk])
                    self.assertEqual(acks, [])
                    self.assertIn(code, UNDECODABLE, f"garbage {junk[:8]!r}... on Forward ended {code} {details!r}")
            self.assertTrue(c.nodes[0].alive())

    def test_a_topic_or_filter_longer_than_mqtt_allows_is_refused(self):
        # An MQTT string is at most 65,535 bytes: no client could have
        # published this topic or subscribed to this filter.
        too_long = "t/" + "b" * 65534
        rounds = 10
        with Cluster(1) as c:
            n1 = c.nodes[0]
            sub = self.client(n1)
            sub.subscribe("t/#", qos=1)
            routes = self.routes(n1)
            refused = []
            with Peer(n1) as peer:
                code, _, details = peer.update_routes(route_update("bad-peer", [too_long]))
                self.assertEqual(code, grpc.StatusCode.OK, details)
                routes_after = self.routes(n1)
                # Each batch: the long topic, then a good message. The good
                # one must arrive (a few rounds: what goes wrong is timing-dependent).
                for i in range(rounds):
                    batch = forward_batch("bad-peer", [forwarded(too_long, b"long", 1), forwarded("t/ok", str(i).encode(), 1)])
                    code, acks, details = peer.forward([batch], answers=1)
                    self.assertEqual(code, grpc.StatusCode.OK, details)
                    self.assertEqual(len(acks), 1, acks)
                    refused.append(pb_uint_list(acks[0].get(1, [])))
                    try:
                        sub.msgs.wait_for(i + 1, timeout=3.0)
                    except AssertionError:
                        break
            with self.subTest("filter"):
                self.assertEqual(routes_after, routes, "a filter over 65,535 bytes went into the route table")
            with self.subTest("topic"):
                self.assertEqual(refused, [[0]] * len(refused), "ForwardAck.refused for [too long, good]")
            with self.subTest("subscriber"):
                clients = http_json(n1.http_port, "GET", "/api/v1/clients")[1]["data"]
                self.assertEqual([p.decode() for p in sub.msgs.payloads()], [str(i) for i in range(rounds)],
                                 f"what the subscriber got; the node's clients: {clients}")

    def test_the_wrong_secret_is_refused_on_the_stream(self):
        with Cluster(2) as c:
            n1, n2 = c.nodes
            sub = self.client(n1)
            sub.subscribe("w/#", qos=1)
            refused = metric(scrape(n1.http_port), "starling_cluster_refused_calls_total")
            self.assertEqual(refused, 0)
            routes = self.routes(n1)
            batch = forward_batch("bad-peer", [forwarded("w/x", b"sneaked in", 1)])
            for secret in ("not-the-secret", None, ""):
                with Peer(n1, secret) as peer:
                    code, acks, details = peer.forward([batch], answers=1)
                self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, f"secret {secret!r}: {details}")
                self.assertEqual(acks, [])
                refused += 1
                wait_metric(n1.http_port, "starling_cluster_refused_calls_total", refused)
            with Peer(n1, "not-the-secret") as peer:
                code, _, details = peer.update_routes(route_update("bad-peer", ["w/#", "#"]))
            self.assertEqual(code, grpc.StatusCode.UNAUTHENTICATED, details)
            wait_metric(n1.http_port, "starling_cluster_refused_calls_total", refused + 1)
            self.assertIn("refused a call from", n1.read_log())
            self.assertEqual(self.routes(n1), routes)
            self.assertEqual(sub.msgs.wait_quiet(0.3), [], "a message from a call that was refused")
            # The real peer is still welcome.
            self.assert_members_alive(c)
            self.client(n2).publish("w/y", b"from n2", qos=1)
            sub.msgs.wait_for(1)
            self.assertEqual(sub.msgs.payloads(), [b"from n2"])

    def test_a_message_over_16_mib_is_refused(self):
        with Cluster(2) as c:
            n1, n2 = c.nodes
            s1, s2 = self.client(n1), self.client(n2)
            s1.subscribe("h/#", qos=1)
            s2.subscribe("h/#", qos=1)
            routes = self.routes(n1)
            huge_batch = forward_batch("bad-peer", [forwarded("h/huge", b"x" * HUGE, 1)])
            huge_update = route_update("bad-peer", ["h/" + "a" * HUGE])
            resident = [rss_mib(n1.pid)]
            with Peer(n1) as peer:
                for _ in range(3):
                    for _ in range(4):
                        code, acks, details = peer.forward([huge_batch], answers=1)
                        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
                        self.assertEqual(acks, [])
                        code, _, details = peer.update_routes(huge_update)
                        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED, details)
                        self.assertTrue(n1.alive(), "n1 died")
                    resident.append(rss_mib(n1.pid))
                # Just under the limit is taken (a message for no subscriber).
                big = forward_batch("bad-peer", [forwarded("nobody/x", b"x" * (LIMIT - MIB), 1)])
                code, acks, details = peer.forward([big], answers=1)
                self.assertEqual(code, grpc.StatusCode.OK, details)
                self.assertEqual([a.get(2) for a in acks], [[1]])
            print(f"\n  n1 resident, MiB, at the start and after each 8 refused 20 MiB messages: "
                  f"{', '.join(f'{r:.0f}' for r in resident)}", flush=True)
            # What gRPC reads before refusing comes and goes (up to about 100
            # MiB seen); kept, the 24 messages would be 480 MiB. AddressSanitizer
            # keeps freed memory aside (its quarantine), so only without it.
            if not sanitized(n1.pid):
                self.assertLess(max(resident) - resident[0], 240, "n1's memory grows with the refused messages")
            self.assertEqual(self.routes(n1), routes)
            self.assert_members_alive(c)
            # Forwarding goes on both ways.
            self.client(n1).publish("h/1", b"from n1", qos=1)
            self.client(n2).publish("h/2", b"from n2", qos=1)
            for s in (s1, s2):
                s.msgs.wait_for(2)
                s.msgs.wait_quiet(0.3)
                self.assertEqual(sorted(s.msgs.payloads()), [b"from n1", b"from n2"], s.client_id)

    def test_a_peer_that_stops_reading_slows_nobody_else(self):
        fast, burst, size = 300, 1500, 8192
        # n3 stays stopped at most this long: well before a frozen node is
        # declared dead (a failed probe, then 5 s of suspicion).
        window = 4.0
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            if sanitized(n1.pid):
                fast = 100  # each round trip is several times slower: the window stays the same
            a = self.client(n2)
            a.subscribe("slow/#", qos=1)
            a.subscribe("fast/#", qos=1)
            b = self.client(n3)
            b.subscribe("slow/#", qos=1)
            # Connected before n3 stops: a CONNECT asks every live node about its client id.
            pub = self.client(n1)
            acked_by_n3 = metric(scrape(n1.http_port), "starling_cluster_forwards_sent_total", peer="n3") or 0
            slow = [f"{i}:".encode().ljust(size, b".") for i in range(burst)]
            slowest = 0.0
            os.kill(n3.pid, signal.SIGSTOP)
            try:
                stopped = time.monotonic()
                deadline = stopped + window
                wait_until(lambda: process_state(n3.pid) == "T", 2.0, interval=0.01, message="n3 to stop")
                # 12 MiB of QoS 0 for n2 and n3: far more than n3's flow-control
                # window and socket buffers take, so n1's link to n3 is stuck.
                infos = [pub.publish("slow/x", p, qos=0, wait=False) for p in slow]
                for info in infos:
                    info.wait_for_publish(max(0.01, deadline - time.monotonic()))
                    self.assertTrue(info.is_published(), "QoS 0 burst not sent while n3 was stopped")
                # QoS 1 for n2 only, one at a time.
                for i in range(fast):
                    t = time.monotonic()
                    info = pub.publish("fast/x", str(i).encode(), qos=1, wait=False)
                    info.wait_for_publish(max(0.01, deadline - t))
                    self.assertTrue(info.is_published(),
                                    f"no PUBACK for fast/x #{i} of {fast} within {window} s of stopping n3")
                    slowest = max(slowest, time.monotonic() - t)
                a.msgs.wait_for(fast, topic="fast/x", timeout=max(0.01, deadline - time.monotonic()))
                a.msgs.wait_for(burst, topic="slow/x", timeout=max(0.01, deadline - time.monotonic()))
                took = time.monotonic() - stopped
                # All of it while n3 was frozen, and n3 took nothing meanwhile.
                self.assertEqual(process_state(n3.pid), "T")
                self.assertEqual(metric(scrape(n1.http_port), "starling_cluster_forwards_sent_total", peer="n3"),
                                 acked_by_n3)
                # Taken while n3 is still stopped: once it runs again it delivers.
                got_while_stopped = b.msgs.payloads()
            finally:
                os.kill(n3.pid, signal.SIGCONT)
            print(f"\n  n3 stopped: {burst} QoS 0 and {fast} QoS 1 through n1 in {took:.2f} s, "
                  f"slowest PUBACK {slowest * 1000:.0f} ms", flush=True)
            self.assertEqual([p.decode() for p in a.msgs.payloads("fast/x")], [str(i) for i in range(fast)])
            self.assertEqual(a.msgs.payloads("slow/x"), slow)
            self.assertEqual(got_while_stopped, [])

            # n3 reads again: alive on every node, gets what it missed (fewer
            # QoS 0 than the bound for a slow peer: none dropped), and new messages.
            c.wait_converged(timeout=15.0)
            self.assert_members_alive(c)
            b.msgs.wait_for(burst, topic="slow/x", timeout=15.0)
            self.assertEqual(b.msgs.payloads("slow/x"), slow)
            self.assertEqual(metric(scrape(n1.http_port), "starling_cluster_forwards_dropped_total", peer="n3"), 0)
            pub.publish("slow/after", b"after", qos=1)
            b.msgs.wait_for(1, topic="slow/after")
            a.msgs.wait_for(1, topic="slow/after")


if __name__ == "__main__":
    main()
