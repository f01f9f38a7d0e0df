#!/usr/bin/python3
"""What a node keeps in --data-dir survives a restart, kill -9 included
(issue 5). So far: retained messages.

Usage: test_durability.py PATH_TO_STARLING
"""
import os
import tempfile
import time
import unittest

from harness import *  # noqa: F401,F403
from harness import PUBACK, PUBREC


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


if __name__ == "__main__":
    main()
