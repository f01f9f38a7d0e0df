#!/usr/bin/python3
"""What a node keeps in --data-dir survives a restart, kill -9 included
(issue 5): retained messages, and persistent sessions with their
subscriptions, queued messages, in-flight state, inbound QoS 2 ids and wills.

Usage: test_durability.py PATH_TO_STARLING
"""
import os
import re
import subprocess
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt

from harness import *  # noqa: F401,F403
from harness import PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK

SESSION_EXPIRY = 17  # the CONNECT property id, for hand-built packets


class Durability(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="starling-durable-")
        self.addCleanup(tmp.cleanup)
        self.data = os.path.join(tmp.name, "data")

    def node(self, *args):
        """A node on this test's data directory; stopped and checked at the end."""
        b = Broker(*args, data_dir=self.data).start()

        def stop():
            if b.tmp is None:
                return  # stopped by the test already
            problems = b.stop()
            if problems:
                raise AssertionError("; ".join(problems))
        self.addCleanup(stop)
        return b

    def client(self, broker, client_id):
        c = MqttClient(client_id, version=5)
        self.addCleanup(c.close)
        c.connect(broker)
        return c

    def persistent(self, broker, client_id, version=5, clean_start=True):
        """A client whose session outlives its connection (an hour, or 3.1.1
        clean session 0)."""
        c = MqttClient(client_id, version=version, clean_session=version == 5 or clean_start)
        self.addCleanup(c.close)
        if version == 5:
            c.connect(broker, clean_start=clean_start, session_expiry=3600)
        else:
            c.connect(broker)
        return c

    def raw_persistent(self, broker, client_id, clean=False):
        r = RawClient(broker, 5)
        self.addCleanup(r.close)
        ack = r.connect(client_id, clean=clean, props=[(SESSION_EXPIRY, 3600)])
        return r, ack

    def retained_on(self, broker, topic_filter, n):
        s = self.client(broker, f"reader-{time.monotonic_ns()}")
        s.subscribe(topic_filter, 2)
        got = s.msgs.wait_for(n, timeout=10) if n else []
        s.msgs.wait_quiet(0.5)
        self.assertEqual(len(s.msgs), n, s.msgs.messages)
        return {m.topic: m for m in got}

    def test_acknowledged_retained_messages_survive_kill_9(self):
        # A long group commit: an acknowledgement sent before its commit would
        # come at once, and the kill right after it would lose the message.
        first = self.node("--fsync", "batch", "--fsync-interval", "300")
        pub = self.client(first, "pub")
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "text/plain"
        props.UserProperty = ("site", "north")
        started = time.monotonic()
        pub.publish("keep/q1", b"one", qos=1, retain=True, properties=props)
        waited = time.monotonic() - started
        pub.publish("keep/q2", b"two", qos=2, retain=True)
        pub.publish("keep/cleared", b"x", qos=1, retain=True)
        pub.publish("keep/cleared", b"", qos=1, retain=True)
        expiring = Properties(PacketTypes.PUBLISH)
        expiring.MessageExpiryInterval = 1
        pub.publish("keep/expiring", b"soon gone", qos=1, retain=True, properties=expiring)
        first.kill9()  # right after the last PUBACK
        self.assertGreaterEqual(waited, 0.25, "PUBACK came before the group commit")
        time.sleep(1.2)  # keep/expiring expires meanwhile

        second = self.node()
        self.assertIn("2 retained messages (1 expired, dropped)", second.read_log())
        got = self.retained_on(second, "keep/#", 2)
        self.assertEqual(sorted(got), ["keep/q1", "keep/q2"])
        self.assertEqual(got["keep/q1"].payload, b"one")
        self.assertTrue(got["keep/q1"].retain)
        self.assertEqual(got["keep/q1"].prop("ContentType"), "text/plain")
        self.assertEqual(got["keep/q1"].prop("UserProperty"), [("site", "north")])
        self.assertEqual(got["keep/q2"].payload, b"two")
        self.assertEqual(got["keep/q2"].qos, 2)

    def test_acknowledgements_keep_their_order(self):
        # A retained PUBLISH waits for its commit; the plain ones after it
        # must not be acknowledged before it [MQTT-4.6.0-2].
        node = self.node("--fsync-interval", "300")
        r = RawClient(node, 5)
        self.addCleanup(r.close)
        r.connect("order")
        r.send(publish_packet("order/kept", b"r", qos=1, retain=True, packet_id=1))
        r.send(publish_packet("order/plain", b"p", qos=1, packet_id=2))
        r.send(publish_packet("order/plain", b"p", qos=2, packet_id=3))
        acks = [r.expect(t, timeout=5) for t in (PUBACK, PUBACK, PUBREC)]
        self.assertEqual([a.packet_id for a in acks], [1, 2, 3])

    def test_retained_qos0_survives_a_clean_stop(self):
        # QoS 0 has no acknowledgement to hold back; a clean stop commits what
        # is pending.
        first = self.node("--fsync-interval", "1000")
        watcher = self.client(first, "watcher")
        watcher.subscribe("plain/#", 0)
        pub = self.client(first, "pub")
        pub.publish("plain/state", b"on", qos=0, retain=True)
        watcher.msgs.wait_for(1, timeout=10)  # the node has handled it
        watcher.disconnect()
        pub.disconnect()
        problems = first.stop()
        self.assertEqual(problems, [])
        second = self.node()
        got = self.retained_on(second, "plain/#", 1)
        self.assertEqual(got["plain/state"].payload, b"on")

    def test_retained_will_survives_a_restart(self):
        first = self.node()
        watcher = self.client(first, "watcher")
        watcher.subscribe("wills/#", 1)
        dev = MqttClient("device", version=5)
        self.addCleanup(dev.close)
        dev.will_set("wills/device", b"offline", qos=1, retain=True)
        dev.connect(first)
        dev.kill()  # gone without DISCONNECT: the will goes out
        watcher.msgs.wait_for(1, timeout=10)
        watcher.disconnect()
        self.assertEqual(first.stop(), [])
        second = self.node()
        got = self.retained_on(second, "wills/#", 1)
        self.assertEqual(got["wills/device"].payload, b"offline")

    def test_each_fsync_mode_keeps_acknowledged_retained_messages(self):
        for mode in ("always", "batch", "never"):
            with self.subTest(mode=mode):
                node = self.node("--fsync", mode)
                pub = self.client(node, f"pub-{mode}")
                pub.publish(f"modes/{mode}", mode.encode(), qos=1, retain=True)
                node.kill9()  # "never" too: the write is in the OS, which outlives the process
        last = self.node()
        got = self.retained_on(last, "modes/#", 3)
        self.assertEqual(sorted(got), ["modes/always", "modes/batch", "modes/never"])

    def all_committed(self, broker):
        """Returns once everything the node submitted to its store so far is
        committed: group commits complete in order, and a retained QoS 1
        PUBLISH is acknowledged only after its own."""
        self.client(broker, f"sync-{time.monotonic_ns()}").publish("sync/marker", b"x", qos=1, retain=True)

    def restored_line(self, broker):
        for line in broker.read_log().splitlines():
            if "persistent sessions:" in line:
                return line.split("persistent sessions:")[1].strip()
        self.fail("no start-up line about persistent sessions")

    def test_offline_sessions_keep_every_acknowledged_message_across_kill_9(self):
        n = 100
        # Long group commits: an acknowledgement sent before its commit would
        # leave the last messages unwritten at the kill.
        first = self.node("--fsync-interval", "100")
        v5 = self.persistent(first, "sub-v5")
        self.assertEqual(v5.subscribe("fleet/#", 2, sub_id=7), [2])
        v5.disconnect()
        v311 = self.persistent(first, "sub-v311", version=4, clean_start=False)
        self.assertEqual(v311.subscribe("fleet/+/telemetry", 2), [2])
        v311.disconnect()

        pub = self.client(first, "pub")
        sent = []
        infos = []
        for i in range(2 * n):
            qos = 1 + i % 2
            payload = f"m{i}-q{qos}".encode()
            sent.append((payload, qos))
            infos.append(pub.publish(f"fleet/{i % 7}/telemetry", payload, qos=qos, wait=False))
        pub.publish("config/retained", b"kept", qos=1, retain=True)
        deadline = time.monotonic() + 30
        while not all(i.is_published() for i in infos):
            self.assertLess(time.monotonic(), deadline, "not every PUBACK/PUBCOMP came")
            time.sleep(0.01)
        first.kill9()  # every message acknowledged, none delivered

        second = self.node()
        self.assertIn(f"2 restored with {4 * n} queued messages", self.restored_line(second))
        subs = {}
        for client_id, version in (("sub-v5", 5), ("sub-v311", 4)):
            with self.subTest(client=client_id):
                sub = subs[client_id] = self.persistent(second, client_id, version=version, clean_start=False)
                self.assertEqual(sub.session_present, 1)
                sub.msgs.wait_for(2 * n, timeout=20)
                sub.msgs.wait_quiet(0.5)
                got = sub.msgs.messages
                # Every one, once, at the QoS published, and in the order
                # published within each QoS (paho passes a QoS 2 message on at
                # its PUBREL, so the two flows interleave differently).
                self.assertEqual(sorted((m.payload, m.qos) for m in got), sorted(sent))
                for qos in (1, 2):
                    self.assertEqual([m.payload for m in got if m.qos == qos], [p for p, q in sent if q == qos])
                if version == 5:
                    self.assertTrue(all(m.prop("SubscriptionIdentifier") == [7] for m in got))
                sub.msgs.clear()
        # The subscriptions themselves came back: a new message arrives
        # without subscribing again.
        self.client(second, "pub-after").publish("fleet/1/telemetry", b"after", qos=1)
        for client_id, sub in subs.items():
            after = sub.msgs.wait_for(1, timeout=10)
            self.assertEqual(after[0].payload, b"after", client_id)
        got = self.retained_on(second, "config/#", 1)
        self.assertEqual(got["config/retained"].payload, b"kept")

    def test_a_kill_during_publishing_loses_no_acknowledged_message(self):
        first = self.node()
        sub = self.persistent(first, "sub")
        sub.subscribe("burst/#", 2)
        sub.disconnect()

        # A publisher that keeps going until the node dies under it. paho
        # marks each message published once its PUBACK (QoS 1) or PUBCOMP
        # (QoS 2) came.
        c = mqtt.Client(client_id="burst-pub", protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(50)
        c.connect(first.host, first.port)
        c.loop_start()
        self.addCleanup(c.loop_stop)
        stop = threading.Event()
        self.addCleanup(stop.set)
        sent = []  # (paho's message info, (payload, qos)); appended by the thread only

        def publish():
            for i in range(20000):
                if stop.is_set():
                    return
                qos = 1 + i % 2
                payload = f"b{i}".encode()
                info = c.publish("burst/x", payload, qos=qos)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return  # the connection is gone
                sent.append((info, (payload, qos)))
                if i % 50 == 49:
                    time.sleep(0.002)
        t = threading.Thread(target=publish, daemon=True)
        t.start()
        acked = lambda: [m for info, m in list(sent) if info.is_published()]  # noqa: E731
        wait_until(lambda: len(acked()) >= 300, timeout=30, message="300 acknowledgements")
        first.kill9()
        stop.set()
        t.join(10)
        c.loop_stop()
        acknowledged = set(acked())
        self.assertGreaterEqual(len(acknowledged), 300)

        second = self.node()
        sub = self.persistent(second, "sub", clean_start=False)
        self.assertEqual(sub.session_present, 1)
        sub.msgs.wait_until(lambda ms: acknowledged <= {(m.payload, m.qos) for m in ms}, timeout=30,
                            what="every acknowledged message")
        sub.msgs.wait_quiet(0.5)
        got = [(m.payload, m.qos) for m in sub.msgs.messages]
        twice = [g for g in set(got) if got.count(g) > 1 and g[1] == 2]
        self.assertEqual(twice, [], "QoS 2 messages delivered more than once")
        print(f"\n  kill during publishing: {len(acknowledged)} acknowledged, {len(got)} delivered "
              f"after the restart, {len(set(got) - acknowledged)} of them unacknowledged")

    def test_a_kill_while_an_online_persistent_subscriber_is_served_loses_nothing(self):
        first = self.node()
        sub = self.persistent(first, "live-sub")
        sub.subscribe("live/#", 2)
        pub = MqttClient("live-pub", version=5)
        self.addCleanup(pub.close)
        pub.connect(first)
        pub.c.max_inflight_messages_set(50)
        sent = []
        for i in range(3000):
            qos = 1 + i % 2
            payload = f"l{i}".encode()
            sent.append((pub.publish("live/x", payload, qos=qos, wait=False), (payload, qos)))
            if i == 1500:
                # Mid-stream: some delivered and acknowledged by the
                # subscriber, some in flight to it, some queued.
                wait_until(lambda: len(sub.msgs) > 200, timeout=20, message="deliveries under way")
                first.kill9()
                break
        acknowledged = {m for info, m in sent if info.is_published()}
        self.assertGreater(len(acknowledged), 100)  # killed mid-stream, not before it
        pub.close()

        # The same client reconnects, with its own session state: a QoS 2
        # message it has PUBREC'd waits in paho for its PUBREL, which the
        # node sends again (a client that forgot it would lose it: paho
        # passes QoS 2 messages on at the PUBREL).
        second = self.node()
        sub.connect(second, clean_start=False, session_expiry=3600)
        self.assertEqual(sub.session_present, 1)
        sub.msgs.wait_until(lambda ms: acknowledged <= {(m.payload, m.qos) for m in ms}, timeout=30,
                            what="every acknowledged message")
        sub.msgs.wait_quiet(0.5)
        got = [(m.payload, m.qos) for m in sub.msgs.messages]
        twice = sorted(g for g in set(got) if g[1] == 2 and got.count(g) > 1)
        self.assertEqual(twice, [], "QoS 2 messages delivered more than once across the kill")

    def test_in_flight_deliveries_resume_after_kill_9(self):
        # Long group commits: a PUBREL sent before its commit would leave the
        # release unwritten at the kill, and the PUBLISH would go again.
        first = self.node("--fsync-interval", "200")
        sub, _ = self.raw_persistent(first, "inflight-sub", clean=True)
        sub.send(subscribe_packet(1, [("inflight/#", 2)]))
        sub.expect(SUBACK)
        pub = self.client(first, "pub")
        pub.publish("inflight/q1", b"one", qos=1)
        pub.publish("inflight/q2", b"two", qos=2)
        one = sub.expect(PUBLISH)
        two = sub.expect(PUBLISH)
        self.assertEqual((one.payload, two.payload), (b"one", b"two"))
        # QoS 1 left unacknowledged; QoS 2 acknowledged up to PUBREL, which
        # the node sends only once it has stored that it did.
        sub.send(ack_packet(PUBREC, two.packet_id))
        self.assertEqual(sub.expect(PUBREL).packet_id, two.packet_id)
        first.kill9()
        sub.close()

        second = self.node()
        sub, ack = self.raw_persistent(second, "inflight-sub")
        self.assertEqual(ack.session_present, 1)
        # The PUBREL again (not the PUBLISH: the client has passed that one
        # on already), then the QoS 1 message again, with DUP, same id.
        rel = sub.expect(PUBREL)
        self.assertEqual(rel.packet_id, two.packet_id)
        again = sub.expect(PUBLISH)
        self.assertEqual((again.payload, again.qos, again.packet_id, again.dup), (b"one", 1, one.packet_id, True))
        sub.send(ack_packet(PUBCOMP, two.packet_id))
        sub.send(ack_packet(PUBACK, one.packet_id))
        sub.send(pingreq_packet())
        sub.expect(PINGRESP)  # the acknowledgements are handled, their erasure submitted
        self.all_committed(second)  # and committed (nobody waits for it)
        second.kill9()
        sub.close()

        third = self.node()
        sub, ack = self.raw_persistent(third, "inflight-sub")
        self.assertEqual(ack.session_present, 1)
        with self.assertRaises(TimeoutError):
            p = sub.read(timeout=0.7)
            self.fail(f"completed deliveries came again: {p!r}")

    def test_an_inbound_qos2_retransmission_after_kill_9_is_not_delivered_twice(self):
        first = self.node()
        sub = self.persistent(first, "in-sub")
        sub.subscribe("in/#", 2)
        sub.disconnect()
        pub, _ = self.raw_persistent(first, "in-pub", clean=True)
        pub.send(publish_packet("in/x", b"once", qos=2, packet_id=9))
        self.assertEqual(pub.expect(PUBREC).packet_id, 9)
        first.kill9()  # before the client could send PUBREL
        pub.close()

        second = self.node()
        pub, ack = self.raw_persistent(second, "in-pub")
        self.assertEqual(ack.session_present, 1)
        # The client did not see its PUBREC arrive? It sends the PUBLISH again
        # [MQTT-4.3.3]: the node knows the id and does not pass it on again.
        pub.send(publish_packet("in/x", b"once", qos=2, packet_id=9, dup=True))
        self.assertEqual(pub.expect(PUBREC).packet_id, 9)
        pub.send(ack_packet(PUBREL, 9))
        self.assertEqual(pub.expect(PUBCOMP).reason, 0)
        sub = self.persistent(second, "in-sub", clean_start=False)
        sub.msgs.wait_for(1, timeout=10)
        sub.msgs.wait_quiet(0.7)
        self.assertEqual(sub.msgs.payloads(), [b"once"])

    def test_the_will_of_a_session_connected_at_the_crash_goes_out_after_restart(self):
        first = self.node()
        watcher = self.persistent(first, "watcher")
        watcher.subscribe("wills/#", 1)
        watcher.disconnect()
        dev = MqttClient("device", version=5)
        self.addCleanup(dev.close)
        dev.will_set("wills/device", b"lost", qos=1)
        dev.connect(first, session_expiry=3600)
        first.kill9()  # the device is still connected

        second = self.node()
        watcher = self.persistent(second, "watcher", clean_start=False)
        got = watcher.msgs.wait_for(1, timeout=10)
        self.assertEqual((got[0].topic, got[0].payload), ("wills/device", b"lost"))

    def test_sessions_that_end_leave_nothing_on_disk(self):
        first = self.node("--sys-interval", "1")
        for client_id, expiry in (("brief", 1), ("lasting", 3600), ("replaced", 3600)):
            c = MqttClient(client_id, version=5)
            self.addCleanup(c.close)
            c.connect(first, session_expiry=expiry)
            c.subscribe("ends/#", 1)
            c.disconnect()
        pub = self.client(first, "pub")
        for i in range(20):
            pub.publish("ends/x", f"e{i}".encode(), qos=1)
        # A clean start ends "replaced" at once; "brief" expires a second
        # after its disconnection.
        again = MqttClient("replaced", version=5)
        self.addCleanup(again.close)
        again.connect(first, clean_start=True, session_expiry=0)
        self.assertEqual(again.session_present, 0)
        again.disconnect()
        # "brief" has expired once only "lasting"'s subscription is left (and
        # the watcher's own).
        watcher = self.client(first, "watcher")
        watcher.subscribe("$SYS/broker/subscriptions/count", 0)
        watcher.msgs.wait_until(lambda ms: any(m.payload == b"2" for m in ms), timeout=15,
                                what="the expired session's subscription to go")
        self.all_committed(first)  # the erasures are submitted as the sessions end; nobody waits for them
        first.kill9()

        # Nothing left to expire or drop at start-up: the ended sessions'
        # records (session, subscriptions, 20 queued messages each) were
        # erased when they ended.
        second = self.node()
        self.assertEqual(self.restored_line(second),
                         "1 restored with 20 queued messages, 0 expired, 0 stale or expired records dropped; "
                         "0 copies of other nodes' sessions")

    def data_bytes(self):
        total = 0
        for root, _, files in os.walk(self.data):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(root, f))
                except OSError:
                    pass  # removed meanwhile (a compacted file)
        return total

    def test_a_drained_queue_gives_its_disk_space_back(self):
        node = self.node()
        sub = self.persistent(node, "bulk-sub")
        sub.subscribe("bulk/#", 1)
        sub.disconnect()
        pub = self.client(node, "bulk-pub")
        n, size = 1600, 24 * 1024
        infos = [pub.publish("bulk/x", os.urandom(size), qos=1, wait=False) for _ in range(n)]
        wait_until(lambda: all(i.is_published() for i in infos), timeout=60, message="every PUBACK")
        full = self.data_bytes()
        self.assertGreater(full, n * size * 0.9, "the queue is not on disk")

        sub = self.persistent(node, "bulk-sub", clean_start=False)
        sub.msgs.wait_for(n, timeout=60)
        # Erased entries take space until compacted: the node compacts the
        # queue's range once it has drained.
        wait_until(lambda: self.data_bytes() < 8 * 1024 * 1024, timeout=30,
                   message=f"the data directory to shrink (it held {full} bytes; now {self.data_bytes()})")

    def small_file_system(self):
        """A 6 MB tmpfs beside the test's data directory, unmounted at the end;
        the test is skipped where mounting is not allowed (it needs root)."""
        mount = os.path.join(os.path.dirname(self.data), "small")
        os.mkdir(mount)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mount],
                                 capture_output=True, text=True)
        if mounted.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", mount], capture_output=True)
        return mount

    def test_a_full_disk_makes_an_idle_node_not_ready(self):
        # RocksDB preallocates its log, so small writes still succeed on a full
        # disk: /readyz looks at the free space itself.
        mount = self.small_file_system()
        node = Broker(data_dir=os.path.join(mount, "data"), http=True).start()
        self.addCleanup(node.stop)
        self.assertEqual(http_json(node.http_port, "GET", "/readyz"), (200, {"ready": True}))
        filler = os.path.join(mount, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        code, ready = http_json(node.http_port, "GET", "/readyz")
        self.assertEqual(code, 503, ready)
        self.assertTrue(any(r.startswith("storage") and "free" in r for r in ready["reasons"]), ready)
        _, _, metrics = http_request(node.http_port, "GET", "/metrics")
        free = re.search(rb"^starling_storage_free_bytes (\S+)", metrics, re.M)
        self.assertLess(float(free.group(1)), 1024 * 1024)
        os.remove(filler)
        self.assertEqual(http_json(node.http_port, "GET", "/readyz"), (200, {"ready": True}))

    def test_a_store_that_fails_at_run_time_refuses_what_needs_it_and_serves_the_rest(self):
        # A full file system under a running node.
        mount = self.small_file_system()
        self.data = os.path.join(mount, "data")
        node = Broker(data_dir=self.data, http=True).start()

        def stop():
            # RocksDB's own error lines are expected here: not checked; but
            # the node must drain and exit 0 even with its store in error.
            problems = [p for p in node.stop() if not p.startswith("starling logged errors")]
            self.assertEqual(problems, [])
        self.addCleanup(stop)
        self.assertEqual(http_json(node.http_port, "GET", "/readyz"), (200, {"ready": True}))
        plain = self.client(node, "plain-sub")  # a clean session: nothing of it is stored
        plain.subscribe("live/#", 1)

        pub = RawClient(node, 5)
        self.addCleanup(pub.close)
        pub.connect("filler")
        refused = None
        for i in range(1, 40):
            pub.send(publish_packet(f"big/{i}", os.urandom(512 * 1024), qos=1, retain=True, packet_id=i))
            ack = pub.expect(PUBACK, timeout=10)
            if ack.reason >= 0x80:  # 0x10, no subscribers, is a success
                refused = ack.reason
                break
        self.assertEqual(refused, 0x80, "a retained message the store could not keep was acknowledged")
        # What needs no disk goes on: QoS 0, and QoS 1 to clean sessions.
        pub.send(publish_packet("live/a", b"q0", qos=0))
        pub.send(publish_packet("live/b", b"q1", qos=1, packet_id=100))
        self.assertEqual(pub.expect(PUBACK).reason, 0)
        self.assertEqual(sorted(m.payload for m in plain.msgs.wait_for(2)), [b"q0", b"q1"])
        # Reads too: the retained messages accepted before are served.
        reader = self.client(node, "reader")
        reader.subscribe("big/#", 0)
        reader.msgs.wait_for(i - 1, timeout=10)
        # The failure is logged once, not once per refused message.
        pub.send(publish_packet("big/again", b"x", qos=1, retain=True, packet_id=101))
        self.assertEqual(pub.expect(PUBACK).reason, 0x80)
        log = node.read_log()
        self.assertEqual(log.count("store write failed"), 1, log[-3000:])
        self.assertTrue(node.alive())
        # Operators see it: not ready, saying why, and counted.
        code, ready = http_json(node.http_port, "GET", "/readyz")
        self.assertEqual((code, ready["ready"]), (503, False))
        self.assertTrue(any(r.startswith("storage") for r in ready["reasons"]), ready)
        self.assertEqual(http_json(node.http_port, "GET", "/healthz")[0], 200)  # alive, though
        status, _, metrics = http_request(node.http_port, "GET", "/metrics")
        failures = re.search(rb"^starling_storage_write_failures_total (\d+)", metrics, re.M)
        self.assertGreaterEqual(int(failures.group(1)), 2, metrics[-2000:])


if __name__ == "__main__":
    main()
