#!/usr/bin/python3
"""CONNECT/CONNACK, client identifiers, keep-alive and session take-over.

Usage: test_connect.py PATH_TO_STARLING
"""
import time

from harness import *  # noqa: F401,F403
from harness import CONNACK, DISCONNECT, PINGRESP


class Connect(BrokerTest):
    def test_v311_connect(self):
        c = self.v3("c311")
        session_present, rc, _ = c.connect(self.broker)
        self.assertEqual(rc, 0)
        self.assertEqual(session_present, 0)

    def test_v31_connect_and_round_trip(self):
        c = self.connected("c31", version=3)
        self.assertEqual(c.subscribe("v31/t", 2), [2])
        c.publish("v31/t", b"old protocol", qos=2)
        m = c.msgs.wait_for(1)[0]
        self.assertEqual((m.payload, m.qos), (b"old protocol", 2))

    def test_v5_connect(self):
        c = self.v5("c5")
        session_present, rc, props = c.connect(self.broker)
        self.assertEqual(rc, 0)
        self.assertEqual(session_present, 0)
        # A client that chose its own identifier is not given another one.
        self.assertIsNone(getattr(props, "AssignedClientIdentifier", None))

    def test_v5_empty_client_id_gets_assigned_identifier(self):
        c = self.v5("")
        _, rc, props = c.connect(self.broker)
        self.assertEqual(rc, 0)
        assigned = getattr(props, "AssignedClientIdentifier", None)
        self.assertTrue(assigned, f"no Assigned Client Identifier in CONNACK: {props}")
        # The session works under that identifier.
        c.subscribe("assigned/t", 1)
        c.publish("assigned/t", b"x", qos=1)
        self.assertEqual(c.msgs.wait_for(1)[0].payload, b"x")

    def test_v5_two_empty_client_ids_get_different_identifiers(self):
        a, b = self.v5(""), self.v5("")
        pa = a.connect(self.broker)[2]
        pb = b.connect(self.broker)[2]
        self.assertNotEqual(pa.AssignedClientIdentifier, pb.AssignedClientIdentifier)
        self.assertIsNone(a.disconnected, "the second client must not take over the first")

    def test_v311_empty_client_id_with_clean_session_false_is_refused(self):
        r = self.raw(version=4)
        r.send(connect_packet(4, "", keepalive=60, clean=False))
        ack = r.expect(CONNACK)
        self.assertEqual(ack.reason, 2, "expected 0x02 identifier rejected")
        self.assertEqual(ack.session_present, 0)
        r.read_until_closed(timeout=5)

    def test_v311_empty_client_id_with_clean_session_is_accepted(self):
        r = self.raw(version=4)
        ack = r.connect("", clean=True)
        self.assertEqual(ack.reason, 0)
        r.send(pingreq_packet())
        r.expect(PINGRESP)

    def test_keepalive_enforced_and_will_published(self):
        watcher = self.connected("watcher")
        watcher.subscribe("will/keepalive", 1)
        r = self.raw(version=4)
        started = time.monotonic()
        r.connect("silent", keepalive=2,
                  will=dict(topic="will/keepalive", payload=b"silent is gone", qos=1))
        # Send nothing more: the broker must close within 1.5 x 2 s.
        r.read_until_closed(timeout=8)
        elapsed = time.monotonic() - started
        self.assertLessEqual(elapsed, 4.0, f"closed only after {elapsed:.2f}s")
        self.assertGreaterEqual(elapsed, 2.5, f"closed too early, after {elapsed:.2f}s")
        msgs = watcher.msgs.wait_for(1, timeout=5)
        self.assertEqual(msgs[0].topic, "will/keepalive")
        self.assertEqual(msgs[0].payload, b"silent is gone")
        self.assertEqual(msgs[0].qos, 1)

    def test_v5_keepalive_timeout_sends_0x8d(self):
        r = self.raw(version=5)
        started = time.monotonic()
        r.connect("silent5", keepalive=1)
        packets = r.read_until_closed(timeout=6)
        elapsed = time.monotonic() - started
        self.assertEqual([(p.type, p.reason) for p in packets], [(DISCONNECT, 0x8D)])
        self.assertGreaterEqual(elapsed, 1.2, f"closed too early, after {elapsed:.2f}s")
        self.assertLessEqual(elapsed, 2.5, f"closed only after {elapsed:.2f}s")

    def test_pings_keep_the_connection_alive(self):
        r = self.raw(version=4)
        r.connect("pinging", keepalive=1)
        for _ in range(5):          # 3.5 s in all, well past 1.5 x 1 s
            time.sleep(0.7)
            r.send(pingreq_packet())
            r.expect(PINGRESP)

    def test_keepalive_zero_is_not_enforced_quickly(self):
        r = self.raw(version=4)
        r.connect("nokeepalive", keepalive=0)
        with self.assertRaises(TimeoutError):
            r.read(timeout=3)     # nothing sent, connection stays open
        r.send(pingreq_packet())
        r.expect(PINGRESP)

    def test_pingreq_pingresp(self):
        r = self.raw(version=5)
        r.connect("pinger", keepalive=30)
        for _ in range(3):
            r.send(pingreq_packet())
            r.expect(PINGRESP)


class ServerKeepAlive(BrokerTest):
    broker_args = ("--max-keepalive", "10")

    def test_keepalive_above_maximum_gets_server_keep_alive(self):
        c = self.v5("ka60")
        _, rc, props = c.connect(self.broker, keepalive=60)
        self.assertEqual(rc, 0)
        self.assertEqual(getattr(props, "ServerKeepAlive", None), 10, str(props))

    def test_keepalive_within_maximum_is_kept(self):
        c = self.v5("ka5")
        _, rc, props = c.connect(self.broker, keepalive=5)
        self.assertEqual(rc, 0)
        self.assertIn(getattr(props, "ServerKeepAlive", 5), (5,), str(props))


class TakeOver(BrokerTest):
    def test_v5_second_connection_takes_over_with_0x8e(self):
        # paho 1.6 drops the reason code of a DISCONNECT whose Remaining Length is
        # 1 or 2 (eclipse-paho/paho.mqtt.python#860), which is how a DISCONNECT 0x8E
        # without properties is encoded; the packet itself is checked on a raw socket.
        first = self.raw(version=5)
        first.connect("same-id")
        second = self.v5("same-id")
        self.assertEqual(second.connect(self.broker)[1], 0)
        packets = first.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(DISCONNECT, 0x8E)])
        # The new connection is fully usable.
        second.subscribe("takeover/t", 1)
        second.publish("takeover/t", b"mine", qos=1)
        self.assertEqual(second.msgs.wait_for(1)[0].payload, b"mine")
        self.assertIsNone(second.disconnected)

    def test_v5_paho_client_is_taken_over(self):
        first = self.connected("same-paho")
        second = self.v5("same-paho")
        second.connect(self.broker)
        rc, _, server_sent = first.wait_disconnected(timeout=5)
        if server_sent:      # paho saw the reason code (DISCONNECT with properties)
            self.assertEqual(rc, 0x8E)
        second.publish("takeover/p", b"x", qos=1)
        self.assertIsNone(second.disconnected)

    def test_v311_second_connection_takes_over(self):
        first = self.connected("same-311", version=4)
        second = self.v3("same-311")
        second.connect(self.broker)
        first.wait_disconnected(timeout=5)
        second.subscribe("takeover311/t", 1)
        second.publish("takeover311/t", b"mine", qos=1)
        self.assertEqual(second.msgs.wait_for(1)[0].payload, b"mine")
        self.assertIsNone(second.disconnected)


if __name__ == "__main__":
    main()
