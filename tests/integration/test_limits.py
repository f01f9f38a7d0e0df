#!/usr/bin/python3
"""Configured limits: connections, topic levels and length; reason strings.

Usage: test_limits.py PATH_TO_STARLING
"""
from harness import *  # noqa: F401,F403
import threading
import time

from harness import CONNACK, DISCONNECT, PUBACK, PUBLISH, PUBREC, SUBACK, ack_packet, subscribe_packet


class MaxConnections(BrokerTest):
    broker_args = ("--max-connections", "2")

    def test_third_client_is_refused_until_one_leaves(self):
        a = self.raw(version=5)
        a.connect("a")
        b = self.raw(version=4)
        b.connect("b")
        c = self.raw(version=5)
        c.send(connect_packet(5, "c"))
        packets = c.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(CONNACK, 0x97)])  # quota exceeded
        old = self.raw(version=4)
        old.send(connect_packet(4, "d"))
        packets = old.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(CONNACK, 3)])  # server unavailable
        a.send(disconnect_packet(0, version=5))
        self.assertEqual(a.read_until_closed(timeout=5), [])
        # The slot is free again.
        wait_until(lambda: self._connects("e"), 5, message="a client gets the freed slot")

    def _connects(self, client_id):
        r = self.raw(version=5)
        r.send(connect_packet(5, client_id))
        p = r.read(timeout=5)
        return p is not None and p.type == CONNACK and p.reason == 0


class TopicLimits(BrokerTest):
    broker_args = ("--max-topic-levels", "3", "--max-topic-length", "20")

    def test_subscription_too_deep_or_long_is_refused_per_filter(self):
        r = self.raw(version=5)
        r.connect("sub")
        r.send(subscribe_packet(1, [("a/b/c", 1), ("a/b/c/d", 1), ("x" * 21, 1), ("a/+/#", 0)]))
        ack = r.expect(SUBACK)
        self.assertEqual(ack.reasons, [1, 0x8F, 0x8F, 0])

    def test_subscription_refusal_is_0x80_for_311(self):
        r = self.raw(version=4)
        r.connect("sub311")
        r.send(subscribe_packet(1, [("a/b/c/d", 1), ("a", 2)], version=4))
        ack = r.expect(SUBACK)
        self.assertEqual(ack.reasons, [0x80, 2])

    def test_publish_too_deep_disconnects_0x90_with_a_reason_string(self):
        r = self.raw(version=5)
        r.connect("pub")
        r.send(publish_packet("a/b/c/d", b"x", qos=1, packet_id=1))
        packets = r.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(DISCONNECT, 0x90)])
        self.assertIn("topic", packets[0].props.get(0x1F, ""))  # Reason String

    def test_topic_within_limits_is_delivered(self):
        sub = self.connected("s")
        sub.subscribe("a/b/c", 1)
        pub = self.connected("p", version=4)
        pub.publish("a/b/c", b"fits", qos=1)
        self.assertEqual(sub.msgs.wait_for(1)[0].payload, b"fits")


class MaxKeepAlive311(BrokerTest):
    broker_args = ("--max-keepalive", "10")

    def test_311_client_asking_for_more_is_refused(self):
        # 3.1.1 has no Server Keep Alive; like Mosquitto, refuse with return code 2.
        r = self.raw(version=4)
        r.send(connect_packet(4, "long", keepalive=60))
        packets = r.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(CONNACK, 2)])
        ok = self.raw(version=4)
        self.assertEqual(ok.connect("short", keepalive=10).reason, 0)


class FullQueueRefusesThePublisher(BrokerTest):
    # A QoS 1/2 message is acknowledged only when every subscriber took it: a
    # full queue refuses the publisher instead of dropping the message.
    broker_args = ("--max-queued", "2")

    def test_v5_gets_0x97_and_311_is_closed_unacknowledged(self):
        sub = self.v5("slow-sub")
        sub.connect(self.broker, clean_start=True, session_expiry=600)
        sub.subscribe("q/t", 1)
        other = self.connected("other-sub")
        other.subscribe("q/#", 2)
        sub.disconnect()  # offline persistent: its queue fills

        pub5 = self.raw(version=5)
        pub5.connect("pub5")
        for pid in (1, 2):
            pub5.send(publish_packet("q/t", f"m{pid}".encode(), qos=1, packet_id=pid))
            self.assertEqual(pub5.expect(PUBACK).reason, 0)
        pub5.send(publish_packet("q/t", b"m3", qos=1, packet_id=3))
        self.assertEqual(pub5.expect(PUBACK).reason, 0x97)
        pub5.send(publish_packet("q/t", b"m4", qos=2, packet_id=4))
        self.assertEqual(pub5.expect(PUBREC).reason, 0x97)

        pub3 = self.raw(version=4)
        pub3.connect("pub311")
        pub3.send(publish_packet("q/t", b"m5", qos=1, packet_id=5, version=4))
        self.assertEqual(pub3.read_until_closed(timeout=5), [], "3.1.1 publisher must not be acknowledged")

        # The refused messages reached no subscriber at all.
        other.msgs.wait_for(2)
        other.msgs.wait_quiet(0.5)
        self.assertEqual(other.msgs.payloads(), [b"m1", b"m2"])
        present, rc, _ = sub.connect(self.broker, clean_start=False, session_expiry=600)
        self.assertEqual((present, rc), (1, 0))
        self.assertEqual(sorted(m.payload for m in sub.msgs.wait_for(2)), [b"m1", b"m2"])

        # With room again, the 3.1.1 client's resend goes through.
        again = self.raw(version=4)
        again.connect("pub311", clean=False)
        again.send(publish_packet("q/t", b"m5", qos=1, packet_id=5, dup=True, version=4))
        self.assertEqual(again.expect(PUBACK).packet_id, 5)
        self.assertEqual(other.msgs.wait_for(3)[-1].payload, b"m5")


def start_windowed_publisher(client, topic, payloads, window, acks, failure, on_publish=None):
    """A conforming QoS 1 publisher on a thread: at most `window` PUBLISHes
    unacknowledged. Appends each PUBACK's reason code to `acks`; a PUBLISH the
    client receives goes to on_publish. Errors go to `failure`."""
    def send(i):
        client.send(publish_packet(topic, payloads[i], qos=1, packet_id=i % 65535 + 1))

    def run():
        try:
            sent = min(window, len(payloads))
            for i in range(sent):
                send(i)
            while len(acks) < len(payloads):
                p = client.read(timeout=30.0)
                if p is None:
                    raise AssertionError(f"{topic} publisher was disconnected")
                if p.type == PUBLISH and on_publish is not None:
                    on_publish(p)
                    continue
                if p.type != PUBACK:
                    raise AssertionError(f"unexpected {p!r}")
                acks.append(p.reason)
                if sent < len(payloads):
                    send(sent)
                    sent += 1
        except Exception as e:  # reported by the test's thread
            failure.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def receive_and_ack(client, n):
    """The payloads of the next n QoS 1 PUBLISHes, each acknowledged."""
    received = []
    while len(received) < n:
        p = client.expect(PUBLISH, timeout=30.0)
        received.append(p.payload)
        client.send(ack_packet(PUBACK, p.packet_id))
    return received


class SlowSubscriberSlowsThePublisher(BrokerTest):
    # Past 1,000 queued messages (the slow-down mark) a subscriber's publisher is
    # read more slowly instead of being refused: its acknowledgements lag while
    # the subscriber is stuck, and once it reads, every message arrives.
    N = 6000

    def test_publisher_waits_for_a_stuck_subscriber_and_nothing_is_refused(self):
        sub = self.raw(version=5)
        sub.connect("stuck-sub")
        sub.send(subscribe_packet(1, [("slow/t", 1)]))
        self.assertEqual(sub.expect(SUBACK).reasons, [1])

        pub = self.raw(version=5)
        pub.connect("fast-pub")
        acks, failure = [], []
        payloads = [b"%06d" % i for i in range(self.N)]
        t = start_windowed_publisher(pub, "slow/t", payloads, 100, acks, failure)
        # Accepted up to the slow-down mark at once; then, while the subscriber
        # stays stuck, slowed: not refused, and not accepted without limit.
        wait_until(lambda: len(acks) >= 1000 or failure, 10, message="acks up to the slow-down mark")
        time.sleep(1.5)
        self.assertEqual(failure, [])
        self.assertLess(len(acks), self.N // 2, "the publisher was not slowed")

        received = receive_and_ack(sub, self.N)
        t.join(30)
        self.assertEqual(failure, [])
        self.assertEqual(len(acks), self.N)
        self.assertEqual(set(acks), {0}, "a publish was refused")
        self.assertEqual(received, payloads)


class WaitingPublisherStillReceives(BrokerTest):
    # A publisher held up by a stuck subscriber is still read for the
    # acknowledgements of what it receives, so messages to it keep flowing
    # (and clients that publish to each other cannot stall each other).
    N = 3000

    def test_messages_to_a_waiting_publisher_keep_flowing(self):
        stuck = self.raw(version=5)
        stuck.connect("stuck")
        stuck.send(subscribe_packet(1, [("t/stuck", 1)]))
        self.assertEqual(stuck.expect(SUBACK).reasons, [1])

        x = self.raw(version=5)  # publishes to the stuck one, receives from y
        x.connect("x")
        x.send(subscribe_packet(1, [("t/x", 1)]))
        self.assertEqual(x.expect(SUBACK).reasons, [1])
        y = self.raw(version=5)
        y.connect("y")

        got_from_y, x_acks, y_acks, failure = [], [], [], []

        def x_receives(p):
            got_from_y.append(p.payload)
            x.send(ack_packet(PUBACK, p.packet_id))

        to_stuck = [b"%06d" % i for i in range(self.N)]
        to_x = [b"y%05d" % i for i in range(self.N)]
        threads = [start_windowed_publisher(x, "t/stuck", to_stuck, 100, x_acks, failure, x_receives),
                   start_windowed_publisher(y, "t/x", to_x, 100, y_acks, failure)]
        # While "stuck" reads nothing, x waits on it: all of y's messages must
        # still reach x.
        wait_until(lambda: len(got_from_y) == self.N or failure, 20, message="y's messages reach x")
        self.assertEqual(failure, [])
        self.assertLess(len(x_acks), self.N // 2, "x was not slowed by the stuck subscriber")
        self.assertEqual(got_from_y, to_x)

        received = receive_and_ack(stuck, self.N)
        for t in threads:
            t.join(30)
        self.assertEqual(failure, [])
        self.assertEqual(received, to_stuck)
        self.assertEqual(set(x_acks) | set(y_acks), {0})


class ReasonStrings(BrokerTest):
    def test_malformed_packet_disconnect_says_why(self):
        r = self.raw(version=5)
        r.connect("bad")
        r.send(publish_packet("t", b"x", flags=0x06, packet_id=1))  # QoS 3
        packets = r.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(DISCONNECT, 0x81)])
        self.assertIn("QoS 3", packets[0].props.get(0x1F, ""))


if __name__ == "__main__":
    main()
