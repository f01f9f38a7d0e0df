#!/usr/bin/python3
"""QoS 0/1/2 in both directions, downgrade, exactly-once, ordering.

Usage: test_qos.py PATH_TO_STARLING
"""
from harness import *  # noqa: F401,F403
from harness import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK


class QoS(BrokerTest):
    def _matrix(self, version):
        sub = self.connected(f"mx-sub-{version}", version=version)
        pub = self.connected(f"mx-pub-{version}", version=version)
        for sq in range(3):
            self.assertEqual(sub.subscribe(f"qos{version}/s{sq}", sq), [sq])
        for sq in range(3):
            for pq in range(3):
                pub.publish(f"qos{version}/s{sq}", f"p{pq}".encode(), qos=pq)
        msgs = sub.msgs.wait_for(9)
        got = {(m.topic, m.payload): m.qos for m in msgs}
        self.assertEqual(len(got), 9, msgs)
        for sq in range(3):
            for pq in range(3):
                self.assertEqual(got[(f"qos{version}/s{sq}", f"p{pq}".encode())], min(sq, pq),
                                 f"publish QoS {pq} to a QoS {sq} subscription")
        for m in msgs:
            self.assertFalse(m.retain)
            self.assertFalse(m.dup)

    def test_qos_matrix_v5(self):
        self._matrix(5)

    def test_qos_matrix_v311(self):
        self._matrix(4)

    def test_qos2_publish_to_qos1_subscription_is_downgraded(self):
        sub = self.connected("down-sub")
        sub.subscribe("qos/down", 1)
        pub = self.connected("down-pub", version=4)
        pub.publish("qos/down", b"two", qos=2)
        m = sub.msgs.wait_for(1)[0]
        self.assertEqual((m.payload, m.qos), (b"two", 1))

    def test_qos2_duplicate_publish_before_pubrel_is_delivered_once(self):
        sub = self.connected("once-sub")
        sub.subscribe("qos/once", 2)
        for version in (4, 5):
            r = self.raw(version=version)
            r.connect(f"once-raw-{version}")
            payload = f"exactly once v{version}".encode()
            r.send(publish_packet("qos/once", payload, qos=2, packet_id=7, version=version))
            self.assertEqual(r.expect(PUBREC).packet_id, 7)
            r.send(publish_packet("qos/once", payload, qos=2, dup=True, packet_id=7,
                                  version=version))
            self.assertEqual(r.expect(PUBREC).packet_id, 7)
            r.send(ack_packet(PUBREL, 7, version=version))
            self.assertEqual(r.expect(PUBCOMP).packet_id, 7)
            # The packet id is free again: reusing it is a new message.
            r.send(publish_packet("qos/once", b"marker", qos=2, packet_id=7, version=version))
            r.expect(PUBREC)
            r.send(ack_packet(PUBREL, 7, version=version))
            r.expect(PUBCOMP)
            sub.msgs.wait_until(lambda ms: sum(m.payload == b"marker" for m in ms) >= 1,
                                what="marker")
            sub.msgs.wait_quiet(0.3)
            self.assertEqual(sub.msgs.payloads("qos/once"), [payload, b"marker"])
            sub.msgs.clear()

    def test_qos1_publish_gets_puback_with_same_id(self):
        sub = self.connected("ack-sub")
        sub.subscribe("qos/ack", 1)
        r = self.raw(version=4)
        r.connect("ack-raw")
        r.send(publish_packet("qos/ack", b"a", qos=1, packet_id=300, version=4))
        self.assertEqual(r.expect(PUBACK).packet_id, 300)
        self.assertEqual(sub.msgs.wait_for(1)[0].payload, b"a")

    def test_broker_to_client_qos2_flow(self):
        r = self.raw(version=5)
        r.connect("qos2-raw-sub")
        r.send(subscribe_packet(1, [("qos/out2", 2)]))
        self.assertEqual(r.expect(SUBACK).reasons, [2])
        pub = self.connected("qos2-pub")
        pub.publish("qos/out2", b"to raw", qos=2, wait=False)
        p = r.expect(PUBLISH)
        self.assertEqual((p.topic, p.payload, p.qos, p.dup), ("qos/out2", b"to raw", 2, False))
        r.send(ack_packet(PUBREC, p.packet_id))
        self.assertEqual(r.expect(PUBREL).packet_id, p.packet_id)
        r.send(ack_packet(PUBCOMP, p.packet_id))
        # Nothing else must come (no resend of an acknowledged message).
        with self.assertRaises(TimeoutError):
            r.read(timeout=1.0)

    def test_unacknowledged_qos1_is_resent_with_dup_on_resume(self):
        r = self.raw(version=4)
        r.connect("dup-raw", clean=False)
        r.send(subscribe_packet(1, [("qos/dup", 1)], version=4))
        r.expect(SUBACK)
        pub = self.connected("dup-pub")
        pub.publish("qos/dup", b"ack me", qos=1)
        p = r.expect(PUBLISH)
        self.assertEqual((p.payload, p.qos, p.dup), (b"ack me", 1, False))
        r.close()                       # no PUBACK
        r2 = self.raw(version=4)
        ack = r2.connect("dup-raw", clean=False)
        self.assertEqual(ack.session_present, 1)
        p2 = r2.expect(PUBLISH)
        self.assertEqual((p2.payload, p2.qos, p2.dup), (b"ack me", 1, True))
        r2.send(ack_packet(PUBACK, p2.packet_id, version=4))

    def test_1000_qos1_messages_arrive_in_order(self):
        sub = self.connected("order-sub")
        sub.subscribe("qos/order", 1)
        pub = self.connected("order-pub")
        infos = [pub.publish("qos/order", str(i).encode(), qos=1, wait=False)
                 for i in range(1000)]
        msgs = sub.msgs.wait_for(1000, timeout=30)
        self.assertEqual([int(m.payload) for m in msgs], list(range(1000)))
        self.assertTrue(all(m.qos == 1 for m in msgs))
        wait_until(lambda: all(i.is_published() for i in infos), 10, message="all PUBACKs")


class InflightLimit(BrokerTest):
    broker_args = ("--max-inflight", "2")

    def test_at_most_max_inflight_unacknowledged_deliveries(self):
        r = self.raw(version=4)
        r.connect("inflight-raw")
        r.send(subscribe_packet(1, [("qos/inflight", 1)], version=4))
        r.expect(SUBACK)
        pub = self.connected("inflight-pub")
        for i in range(5):
            pub.publish("qos/inflight", str(i).encode(), qos=1)
        first = [r.expect(PUBLISH), r.expect(PUBLISH)]
        with self.assertRaises(TimeoutError, msg="a third unacknowledged delivery"):
            r.read(timeout=0.7)
        got = [p.payload for p in first]
        r.send(ack_packet(PUBACK, first[0].packet_id, version=4))
        pending = [first[1]]
        while len(got) < 5:
            p = r.expect(PUBLISH)
            got.append(p.payload)
            pending.append(p)
            r.send(ack_packet(PUBACK, pending.pop(0).packet_id, version=4))
        self.assertEqual(got, [b"0", b"1", b"2", b"3", b"4"])


if __name__ == "__main__":
    main()
