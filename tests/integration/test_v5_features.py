#!/usr/bin/python3
"""MQTT 5 features: message expiry, topic aliases, receive maximum, maximum
packet size, subscription identifiers, no-local, request/response properties,
reason codes.

Usage: test_v5_features.py PATH_TO_STARLING
"""
import time

from harness import *  # noqa: F401,F403
from harness import (DISCONNECT, PUBACK, PUBLISH, PUBREC, PUBREL, PUBCOMP,
                     SUBACK)

QUIET = 0.5


def expiry(seconds):
    return publish_props(MessageExpiryInterval=seconds)


class MessageExpiry(BrokerTest):
    def test_expired_message_not_delivered_to_resumed_session(self):
        # The session subscribes and goes offline. A raw client, so that the
        # test knows the node took the DISCONNECT (it closes the connection)
        # before anything is published: paho reports its own close at once,
        # and a message sent to a connection still open is in flight, which
        # expiry rightly no longer stops.
        first = self.raw()
        first.connect("mexp", props=[(17, 60)])
        first.send(subscribe_packet(1, [("mexp/t", 1)]))
        first.expect(SUBACK)
        first.send(disconnect_packet())
        first.read_until_closed()
        first.close()
        sub = self.v5("mexp")
        pub = self.connected("mexp-pub")
        pub.publish("mexp/t", b"short", qos=1, properties=expiry(2))
        # Acknowledged, so received by now: its 2 s run from before this.
        published = time.monotonic()
        pub.publish("mexp/t", b"long", qos=1, properties=expiry(60))
        # The feature under test is the passing of time: stay offline 3 s.
        time.sleep(max(0.0, 3.0 - (time.monotonic() - published)))
        self.assertEqual(sub.connect(self.broker, clean_start=False, session_expiry=60)[0], 1)
        m = sub.msgs.wait_for(1)[0]
        msgs = sub.msgs.wait_quiet(QUIET)
        self.assertEqual([x.payload for x in msgs], [b"long"])
        remaining = m.prop("MessageExpiryInterval")
        self.assertIsNotNone(remaining, "expiry interval must be forwarded")
        self.assertLessEqual(remaining, 60)
        self.assertGreaterEqual(remaining, 55)

    def test_expiry_forwarded_to_online_subscriber(self):
        sub = self.connected("mexp-on")
        sub.subscribe("mexp/on", 1)
        pub = self.connected("mexp-on-pub")
        pub.publish("mexp/on", b"x", qos=1, properties=expiry(30))
        pub.publish("mexp/on", b"y", qos=1)
        a, b = sub.msgs.wait_for(2)
        self.assertTrue(28 <= a.prop("MessageExpiryInterval") <= 30, a)
        self.assertIsNone(b.prop("MessageExpiryInterval"), "no expiry was set on y")


class TopicAliases(BrokerTest):
    def test_client_topic_alias_is_resolved(self):
        sub = self.connected("ta-sub")
        sub.subscribe("ta/#", 1)
        pub = self.v5("ta-pub")
        _, _, props = pub.connect(self.broker)
        self.assertEqual(getattr(props, "TopicAliasMaximum", 0), 64, str(props))
        pub.publish("ta/real", b"first", qos=1, properties=publish_props(TopicAlias=1))
        pub.publish("", b"second", qos=1, properties=publish_props(TopicAlias=1))
        pub.publish("ta/other", b"third", qos=1, properties=publish_props(TopicAlias=1))
        pub.publish("", b"fourth", qos=1, properties=publish_props(TopicAlias=1))
        msgs = sub.msgs.wait_for(4)
        self.assertEqual([(m.topic, m.payload) for m in msgs],
                         [("ta/real", b"first"), ("ta/real", b"second"),
                          ("ta/other", b"third"), ("ta/other", b"fourth")])
        for m in msgs:
            self.assertIsNone(m.prop("TopicAlias"), "paho asked for no aliases")

    def test_unknown_alias_is_a_protocol_error(self):
        r = self.raw()
        r.connect("ta-unknown")
        r.send(publish_packet("", b"x", qos=0, props=[(35, 5)]))
        packets = r.read_until_closed(timeout=5)
        self.assertEqual([p.type for p in packets], [DISCONNECT], packets)
        self.assertIn(packets[0].reason, (0x82, 0x94))


class AliasLimit(BrokerTest):
    broker_args = ("--topic-alias-maximum", "2")

    def test_alias_above_maximum_disconnects_0x94(self):
        r = self.raw()
        ack = r.connect("ta-limit")
        self.assertEqual(ack.props.get(34), 2, ack)
        r.send(publish_packet("ta/x", b"ok", qos=1, packet_id=1, props=[(35, 2)]))
        r.expect(PUBACK)
        r.send(publish_packet("ta/x", b"bad", qos=1, packet_id=2, props=[(35, 3)]))
        packets = r.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(DISCONNECT, 0x94)])


class ReceiveMaximum(BrokerTest):
    broker_args = ("--receive-maximum", "2")

    def test_announced_in_connack(self):
        r = self.raw()
        self.assertEqual(r.connect("rm-ack").props.get(33), 2)

    def test_third_unacknowledged_qos2_publish_disconnects_0x93(self):
        watcher = self.connected("rm-watch")
        watcher.subscribe("rm/t", 2)
        r = self.raw()
        r.connect("rm-client")
        for pid in (1, 2, 3):
            r.send(publish_packet("rm/t", f"m{pid}".encode(), qos=2, packet_id=pid))
        packets = r.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.packet_id) for p in packets[:2]],
                         [(PUBREC, 1), (PUBREC, 2)], packets)
        self.assertEqual([(p.type, p.reason) for p in packets[2:]], [(DISCONNECT, 0x93)])

    def test_within_receive_maximum_is_fine(self):
        r = self.raw()
        r.connect("rm-good")
        for round_ in range(3):
            ids = (2 * round_ + 1, 2 * round_ + 2)
            for pid in ids:
                r.send(publish_packet("rm/good", b"x", qos=2, packet_id=pid))
            for pid in ids:
                self.assertEqual(r.expect(PUBREC).packet_id, pid)
            for pid in ids:
                r.send(ack_packet(PUBREL, pid))
                self.assertEqual(r.expect(PUBCOMP).packet_id, pid)


class OutgoingFlowControl(BrokerTest):
    def test_client_receive_maximum_limits_unacknowledged_deliveries(self):
        r = self.raw()
        r.connect("client-rm", props=[(33, 1)])
        r.send(subscribe_packet(1, [("flow/t", 1)]))
        r.expect(SUBACK)
        pub = self.connected("flow-pub")
        for i in range(3):
            pub.publish("flow/t", str(i).encode(), qos=1)
        got = []
        for i in range(3):
            p = r.expect(PUBLISH)
            got.append(p.payload)
            with self.assertRaises(TimeoutError, msg="a second unacknowledged delivery"):
                r.read(timeout=0.5)
            r.send(ack_packet(PUBACK, p.packet_id))
        self.assertEqual(got, [b"0", b"1", b"2"])


class MaximumPacketSize(BrokerTest):
    def test_message_larger_than_client_maximum_is_not_sent(self):
        sub = self.v5("mps-sub")
        sub.connect(self.broker, properties=connect_props(MaximumPacketSize=100))
        sub.subscribe("mps/t", 1)
        pub = self.connected("mps-pub")
        pub.publish("mps/t", b"L" * 500, qos=1)
        pub.publish("mps/t", b"S" * 10, qos=1)
        sub.msgs.wait_for(1)
        msgs = sub.msgs.wait_quiet(QUIET)
        self.assertEqual([m.payload for m in msgs], [b"S" * 10])
        self.assertIsNone(sub.disconnected, "the subscriber must stay connected")

    def test_a_dropped_large_message_does_not_stall_the_ones_after_it(self):
        # Larger than what one pass takes from the session's queue: the pass
        # drops it and writes nothing, and the broker must still go on.
        sub = self.v5("mps-stall-sub")
        sub.connect(self.broker, properties=connect_props(MaximumPacketSize=1000))
        sub.subscribe("mps/s/#", 1)
        pub = self.connected("mps-stall-pub")
        for i in range(10):
            pub.publish("mps/s/big", b"L" * 40000, qos=0, wait=False)
            pub.publish("mps/s/small", str(i).encode(), qos=0)
            sub.msgs.wait_for(i + 1, timeout=5)
        self.assertEqual(sub.msgs.payloads(), [str(i).encode() for i in range(10)])


class BrokerMaximumPacketSize(BrokerTest):
    broker_args = ("--max-packet-size", "1000")

    def test_announced_and_enforced(self):
        watcher = self.connected("bmps-watch")
        watcher.subscribe("bmps/t", 1)
        r = self.raw()
        ack = r.connect("bmps-raw")
        self.assertEqual(ack.props.get(39), 1000, ack)
        r.send(publish_packet("bmps/t", b"s" * 500, qos=1, packet_id=1))
        self.assertEqual(r.expect(PUBACK).reason, 0)
        r.send(publish_packet("bmps/t", b"b" * 2000, qos=1, packet_id=2))
        packets = r.read_until_closed(timeout=5)
        self.assertEqual([(p.type, p.reason) for p in packets], [(DISCONNECT, 0x95)])
        watcher.msgs.wait_for(1)
        self.assertEqual([len(m.payload) for m in watcher.msgs.wait_quiet(QUIET)], [500])

    def test_paho_client_publishing_too_much_is_disconnected(self):
        c = self.connected("bmps-paho")
        c.publish("bmps/p", b"b" * 2000, qos=1, wait=False)
        rc, _, server_sent = c.wait_disconnected(timeout=5)
        if server_sent:
            self.assertEqual(rc, 0x95)


class SubscriptionIdentifiers(BrokerTest):
    def test_identifiers_delivered(self):
        sub = self.connected("sid-sub")
        sub.subscribe("sid/a", 1, sub_id=7)
        sub.subscribe("sid/b/#", 1, sub_id=12)
        sub.subscribe("sid/none", 1)
        pub = self.connected("sid-pub")
        pub.publish("sid/a", b"a", qos=1)
        pub.publish("sid/b/c", b"bc", qos=1)
        pub.publish("sid/none", b"n", qos=1)
        sub.msgs.wait_for(3)
        self.assertEqual(sub.msgs.of("sid/a")[0].prop("SubscriptionIdentifier"), [7])
        self.assertEqual(sub.msgs.of("sid/b/c")[0].prop("SubscriptionIdentifier"), [12])
        self.assertIsNone(sub.msgs.of("sid/none")[0].prop("SubscriptionIdentifier"))

    def test_overlapping_subscriptions_carry_all_identifiers(self):
        sub = self.connected("sid-ov")
        sub.subscribe("sid/x/+", 1, sub_id=3)
        sub.subscribe("sid/x/#", 1, sub_id=4)
        pub = self.connected("sid-ov-pub")
        pub.publish("sid/x/y", b"y", qos=1)
        sub.msgs.wait_for(1)
        msgs = sub.msgs.wait_quiet(QUIET)
        ids = sorted(i for m in msgs for i in (m.prop("SubscriptionIdentifier") or []))
        self.assertEqual(ids, [3, 4], msgs)


class NoLocal(BrokerTest):
    def test_no_local(self):
        me = self.connected("nl-me")
        me.subscribe("nl/t", options=SubscribeOptions(qos=1, noLocal=True))
        me.subscribe("nl/u", options=SubscribeOptions(qos=1, noLocal=False))
        other = self.connected("nl-other")
        other.subscribe("nl/#", 1)
        me.publish("nl/t", b"own", qos=1)
        me.publish("nl/u", b"echo", qos=1)
        other.msgs.wait_for(2)
        me.msgs.wait_for(1)
        self.assertEqual([(m.topic, m.payload) for m in me.msgs.wait_quiet(QUIET)],
                         [("nl/u", b"echo")])
        self.assertEqual(sorted(m.topic for m in other.msgs.messages), ["nl/t", "nl/u"])


class RequestResponse(BrokerTest):
    def test_properties_passed_through_unchanged(self):
        requester = self.connected("rr-req")
        requester.subscribe("rr/resp/+", 1)
        responder = self.connected("rr-resp")
        responder.subscribe("rr/req", 1)
        props = publish_props(ResponseTopic="rr/resp/1", CorrelationData=b"\x00\x01corr\xff",
                              ContentType="application/json", PayloadFormatIndicator=1)
        props.UserProperty = ("a", "1")
        props.UserProperty = ("a", "2")
        props.UserProperty = ("b", "3")
        requester.publish("rr/req", b'{"q": 1}', qos=1, properties=props)
        req = responder.msgs.wait_for(1)[0]
        self.assertEqual(req.payload, b'{"q": 1}')
        self.assertEqual(req.prop("ResponseTopic"), "rr/resp/1")
        self.assertEqual(req.prop("CorrelationData"), b"\x00\x01corr\xff")
        self.assertEqual(req.prop("ContentType"), "application/json")
        self.assertEqual(req.prop("PayloadFormatIndicator"), 1)
        self.assertEqual(req.prop("UserProperty"), [("a", "1"), ("a", "2"), ("b", "3")])

        reply = publish_props(CorrelationData=req.prop("CorrelationData"))
        responder.publish(req.prop("ResponseTopic"), b'{"a": 2}', qos=1, properties=reply)
        resp = requester.msgs.wait_for(1)[0]
        self.assertEqual((resp.topic, resp.payload), ("rr/resp/1", b'{"a": 2}'))
        self.assertEqual(resp.prop("CorrelationData"), b"\x00\x01corr\xff")
        self.assertIsNone(resp.prop("UserProperty"))
        self.assertIsNone(resp.prop("ContentType"))

    def test_user_properties_reach_v311_subscriber_as_plain_message(self):
        old = self.connected("rr-311", version=4)
        old.subscribe("rr/old", 1)
        pub = self.connected("rr-311-pub")
        pub.publish("rr/old", b"plain", qos=1, properties=publish_props(UserProperty=("k", "v")))
        m = old.msgs.wait_for(1)[0]
        self.assertEqual((m.topic, m.payload, m.qos), ("rr/old", b"plain", 1))


class ReasonCodes(BrokerTest):
    def test_suback_per_filter(self):
        c = self.connected("rc-sub")
        codes = c.subscribe([("rc/a", SubscribeOptions(qos=0)),
                             ("rc/b", SubscribeOptions(qos=1)),
                             ("rc/c/#", SubscribeOptions(qos=2)),
                             ("$share/g/rc/d", SubscribeOptions(qos=1))])
        self.assertEqual(codes, [0, 1, 2, 1])

    def test_unsuback_0x11_for_unknown_filter(self):
        c = self.connected("rc-unsub")
        c.subscribe("rc/known", 1)
        self.assertEqual(c.unsubscribe(["rc/known", "rc/unknown"]), [0x00, 0x11])
        self.assertEqual(c.unsubscribe("rc/known"), [0x11])

    def test_puback_0x10_no_matching_subscribers(self):
        r = self.raw()
        r.connect("rc-puback")
        r.send(publish_packet("rc/nobody", b"x", qos=1, packet_id=1))
        self.assertEqual(r.expect(PUBACK).reason, 0x10)
        r.send(publish_packet("rc/nobody", b"x", qos=2, packet_id=2))
        self.assertIn(r.expect(PUBREC).reason, (0x00, 0x10))
        r.send(ack_packet(PUBREL, 2))
        r.expect(PUBCOMP)
        sub = self.connected("rc-somebody")
        sub.subscribe("rc/nobody", 1)
        r.send(publish_packet("rc/nobody", b"y", qos=1, packet_id=3))
        self.assertEqual(r.expect(PUBACK).reason, 0x00)
        self.assertEqual(sub.msgs.wait_for(1)[0].payload, b"y")

    def test_connack_announces_limits(self):
        r = self.raw()
        ack = r.connect("rc-connack")
        self.assertEqual(ack.reason, 0)
        self.assertEqual(ack.props.get(33, 65535), 128, ack)      # --receive-maximum
        self.assertEqual(ack.props.get(34, 0), 64, ack)           # --topic-alias-maximum
        self.assertEqual(ack.props.get(39), 1024 * 1024, ack)     # --max-packet-size


if __name__ == "__main__":
    main()
