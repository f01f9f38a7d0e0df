#!/usr/bin/python3
"""Edge cases found in review: flow control across reconnects, large output,
will expiry, packet size limits on every packet, huge SUBSCRIBEs.

Usage: test_edge_cases.py PATH_TO_STARLING
"""
import socket
import struct
import time

from harness import *  # noqa: F401,F403
from harness import CONNACK, PUBLISH, PUBREC, PINGRESP, DISCONNECT, SUBACK, PUBACK


def drain_publishes(r, n, timeout=10.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        p = r.read(max(0.1, deadline - time.monotonic()))
        if p is None:
            raise AssertionError(f"closed after {len(got)} PUBLISH")
        if p.type == PUBLISH:
            got.append(p)
    return got


class EdgeCases(BrokerTest):
    broker_args = ("--max-packet-size", "4194304", "--log-level", "debug")

    # connection.cpp on_read/on_write: reading stops when pending+writing > 1 MiB,
    # but on_write resumes reading only when pending alone was > 1 MiB, so a
    # connection whose output went out in one write never reads again.
    def test_read_resumes_after_large_output(self):
        pub = self.raw()
        pub.connect("big-pub")
        big = b"x" * (600 * 1024)
        for i in range(3):
            pub.send(publish_packet(f"big/{i}", big, qos=1, retain=True, packet_id=i + 1))
            pub.expect(PUBACK)
        sub = self.raw()
        sub.connect("big-sub", keepalive=0)
        sub.send(subscribe_packet(1, [("big/#", 0)]))
        sub.expect(SUBACK)
        drain_publishes(sub, 3)
        time.sleep(0.3)
        sub.send(pingreq_packet())
        p = sub.read(timeout=3)
        self.assertIsNotNone(p, "the broker dropped the connection without DISCONNECT")
        self.assertEqual(p.type, PINGRESP)

    # connection.cpp close(): the will's Message Expiry Interval starts at the
    # connection loss instead of at publication [MQTT 3.1.3.2.4: "sent as the
    # Publication Expiry Interval when the Server publishes the Will Message"].
    def test_will_expiry_counts_from_publication(self):
        w = self.connected("will-watch")
        w.subscribe("will/#", 1)
        r = self.raw()
        r.connect("will-exp", props=[(17, 60)],
                  will=dict(topic="will/exp", payload=b"bye", qos=1,
                            props=[(24, 2), (2, 1)]))  # delay 2 s, expiry 1 s
        r.close()
        m = w.msgs.wait_for(1, timeout=6)[0]
        self.assertEqual(m.payload, b"bye")

    # publish_handler.cpp: the Receive Maximum check runs before the duplicate
    # check, so a QoS 2 PUBLISH retransmitted on reconnect [MQTT-4.4.0-1] is
    # refused with 0x93 although it adds no unacknowledged message.
    def test_qos2_retransmission_at_receive_maximum_is_accepted(self):
        self.broker.stop()
        self.broker = Broker("--receive-maximum", "2").start()
        r = self.raw()
        r.connect("rm-q2", clean=False, props=[(17, 60)])
        for pid in (1, 2):
            r.send(publish_packet("rm/q2", b"m", qos=2, packet_id=pid))
            r.expect(PUBREC)
        r.close()
        r2 = self.raw()
        ack = r2.connect("rm-q2", clean=False, props=[(17, 60)])
        self.assertEqual(ack.session_present, 1)
        r2.send(publish_packet("rm/q2", b"m", qos=2, dup=True, packet_id=1))
        p = r2.read(timeout=3)
        self.assertIsNotNone(p, "connection closed")
        self.assertEqual(p.type, PUBREC, f"got {p!r}")

    # connection.cpp flush_session(true): in-flight messages are all resent on
    # reconnect even when the client's new Receive Maximum is smaller
    # [MQTT-3.3.4-9].
    def test_resend_respects_new_receive_maximum(self):
        r = self.raw()
        r.connect("rm-out", clean=False, props=[(17, 60), (33, 10)])
        r.send(subscribe_packet(1, [("rm/out", 1)]))
        r.expect(SUBACK)
        pub = self.connected("rm-pub")
        for i in range(5):
            pub.publish("rm/out", f"{i}".encode(), qos=1)
        drain_publishes(r, 5)
        r.close()
        time.sleep(0.3)
        r2 = self.raw()
        r2.connect("rm-out", clean=False, props=[(17, 60), (33, 1)])
        got = []
        try:
            while True:
                p = r2.read(timeout=1.0)
                if p is None:
                    break
                if p.type == PUBLISH:
                    got.append(p)
        except TimeoutError:
            pass
        self.assertLessEqual(len(got), 1, f"{len(got)} unacknowledged QoS 1 PUBLISH with Receive Maximum 1")

    # connection.cpp close(): the DISCONNECT (with its Reason String) is sent
    # without regard to the client's Maximum Packet Size [MQTT-3.1.2-24].
    def test_disconnect_respects_client_maximum_packet_size(self):
        r = self.raw()
        r.connect("mps", props=[(39, 16)])
        r.send(publish_packet("x", b"", qos=0, props=[(35, 1000)]))  # alias above maximum
        sock = r.sock
        sock.settimeout(3)
        data = b""
        while True:
            try:
                chunk = sock.recv(4096)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
        self.assertLessEqual(len(data), 16, f"server sent a {len(data)}-byte packet: {data!r}")

    # subscribe_handler.cpp: the retained deliveries of every filter of one
    # SUBSCRIBE are collected in one vector before the (bounded) session queue
    # sees them: filters x retained messages. One SUBSCRIBE of ~100k "#"
    # filters with a few hundred retained messages makes tens of millions of
    # Delivery objects: a single client can exhaust the node's memory.
    def test_subscribe_many_filters_does_not_blow_up_memory(self):
        pub = self.raw()
        pub.connect("ret-pub")
        for i in range(100):
            pub.send(publish_packet(f"r/{i}", b"v", qos=1, retain=True, packet_id=i + 1))
            pub.expect(PUBACK)

        def hwm_kb():
            with open(f"/proc/{self.broker.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        before = hwm_kb()
        sub = self.raw()
        sub.connect("ret-sub", keepalive=0)
        sub.send(subscribe_packet(1, [("#", 0)] * 50000))
        sub.expect(SUBACK, timeout=30)
        time.sleep(0.5)
        grown_mb = (hwm_kb() - before) / 1024
        self.assertLess(grown_mb, 100, f"peak RSS grew by {grown_mb:.0f} MiB for one SUBSCRIBE")


if __name__ == "__main__":
    main()
