#!/usr/bin/python3
"""Topic wildcards, $-topics, retained messages, retain handling and
retain-as-published.

Usage: test_wildcards_retained.py PATH_TO_STARLING
"""
from harness import *  # noqa: F401,F403

QUIET = 0.5   # seconds of observation after the last expected message


class Wildcards(BrokerTest):
    def _expect_matches(self, sub_filter, matching, not_matching):
        sub = self.connected("wc-sub")
        sub.subscribe(sub_filter, 1)
        pub = self.connected("wc-pub")
        for t in not_matching + matching:
            pub.publish(t, t.encode(), qos=1)
        sub.msgs.wait_for(len(matching))
        got = sorted(m.topic for m in sub.msgs.wait_quiet(QUIET))
        self.assertEqual(got, sorted(matching), f"filter {sub_filter!r}")
        for m in sub.msgs.messages:
            self.assertEqual(m.payload, m.topic.encode())

    def test_plus(self):
        self._expect_matches("wc/+/temp", ["wc/a/temp", "wc/b/temp", "wc//temp"],
                    ["wc/a/b/temp", "wc/temp", "wc/a/temp/x", "wcx/a/temp"])

    def test_plus_alone_and_at_ends(self):
        self._expect_matches("+/+", ["a/b", "x/", "/y"], ["a", "a/b/c"])

    def test_hash(self):
        self._expect_matches("wc2/#", ["wc2", "wc2/a", "wc2/a/b/c", "wc2/"], ["wc2x/a", "x/wc2/a"])

    def test_plus_then_hash(self):
        self._expect_matches("s/+/#", ["s/a", "s/a/b", "s/b/c/d"], ["s", "t/a/b"])

    def test_dollar_topics_not_matched_by_leading_wildcards(self):
        hash_sub = self.connected("hash-sub")
        hash_sub.subscribe("#", 1)
        plus_sub = self.connected("plus-sub")
        plus_sub.subscribe("+/x", 1)
        dollar_sub = self.connected("dollar-sub")
        dollar_sub.subscribe("$test/#", 1)
        pub = self.connected("dollar-pub")
        pub.publish("$test/x", b"dollar", qos=1)
        pub.publish("plain/x", b"plain", qos=1)
        self.assertEqual(dollar_sub.msgs.wait_for(1, topic="$test/x")[0].payload, b"dollar")
        hash_sub.msgs.wait_for(1, topic="plain/x")
        plus_sub.msgs.wait_for(1, topic="plain/x")
        hash_sub.msgs.wait_quiet(QUIET)
        self.assertEqual([m.topic for m in hash_sub.msgs.messages if not
                          m.topic.startswith("$SYS")], ["plain/x"])
        self.assertEqual([m.topic for m in plus_sub.msgs.messages], ["plain/x"])
        self.assertEqual([m.topic for m in dollar_sub.msgs.messages], ["$test/x"])

    def test_overlapping_subscriptions_v5_deliver_once_or_per_subscription(self):
        # MQTT 5 allows one copy per matching subscription or one in total; either
        # way each copy carries the payload and the highest QoS is not exceeded.
        sub = self.connected("overlap")
        sub.subscribe([("ov/#", SubscribeOptions(qos=1)), ("ov/+", SubscribeOptions(qos=2))])
        pub = self.connected("overlap-pub")
        pub.publish("ov/a", b"x", qos=2)
        msgs = sub.msgs.wait_for(1)
        msgs = sub.msgs.wait_quiet(QUIET)
        self.assertIn(len(msgs), (1, 2))
        self.assertTrue(all(m.payload == b"x" for m in msgs))
        self.assertEqual(max(m.qos for m in msgs), 2)


class Retained(BrokerTest):
    def test_retained_delivered_on_subscribe_and_cleared_by_empty_payload(self):
        pub = self.connected("ret-pub")
        pub.publish("ret/a", b"A1", qos=1, retain=True)
        pub.publish("ret/a", b"A2", qos=1, retain=True)      # replaces A1
        first = self.connected("ret-sub1", version=4)
        first.subscribe("ret/a", 1)
        m = first.msgs.wait_for(1)[0]
        self.assertEqual((m.topic, m.payload, m.qos, m.retain), ("ret/a", b"A2", 1, True))

        # A live retained publish reaches an existing subscriber with retain 0.
        pub.publish("ret/a", b"A3", qos=1, retain=True)
        m = first.msgs.wait_for(2)[1]
        self.assertEqual((m.payload, m.retain), (b"A3", False))

        # An empty retained payload clears it (and is itself forwarded).
        pub.publish("ret/a", b"", qos=1, retain=True)
        m = first.msgs.wait_for(3)[2]
        self.assertEqual(m.payload, b"")
        late = self.connected("ret-sub2")
        late.subscribe("ret/a", 1)
        pub.publish("ret/marker", b"m", qos=1, retain=True)
        late.subscribe("ret/marker", 1)
        late.msgs.wait_for(1, topic="ret/marker")
        self.assertEqual(late.msgs.of("ret/a"), [])

    def test_retained_with_wildcard_subscription_and_qos_downgrade(self):
        pub = self.connected("retw-pub")
        pub.publish("retw/a", b"a", qos=1, retain=True)
        pub.publish("retw/b/c", b"bc", qos=2, retain=True)
        pub.publish("other/a", b"no", qos=1, retain=True)
        sub = self.connected("retw-sub")
        sub.subscribe("retw/#", 0)
        msgs = sub.msgs.wait_for(2)
        msgs = sub.msgs.wait_quiet(QUIET)
        self.assertEqual(sorted((m.topic, m.payload, m.qos, m.retain) for m in msgs),
                         [("retw/a", b"a", 0, True), ("retw/b/c", b"bc", 0, True)])
        sub2 = self.connected("retw-sub2")
        sub2.subscribe("retw/+/c", 2)
        m = sub2.msgs.wait_for(1)[0]
        self.assertEqual((m.topic, m.qos, m.retain), ("retw/b/c", 2, True))

    def test_qos0_retained_is_kept(self):
        pub = self.connected("ret0-pub", version=4)
        pub.publish("ret0/t", b"zero", qos=0, retain=True)
        pub.publish("ret0/t2", b"sync", qos=1, retain=True)    # QoS 1 ack: both stored
        sub = self.connected("ret0-sub")
        sub.subscribe("ret0/+", 1)
        msgs = sub.msgs.wait_for(2)
        self.assertEqual(sorted((m.topic, m.payload, m.qos) for m in msgs),
                         [("ret0/t", b"zero", 0), ("ret0/t2", b"sync", 1)])

    def _retained_count(self, handling, subscribe_twice):
        pub = self.connected(f"rh{handling}-pub")
        pub.publish(f"rh{handling}/t", b"kept", qos=1, retain=True)
        sub = self.connected(f"rh{handling}-sub")
        opts = SubscribeOptions(qos=1, retainHandling=handling)
        sub.subscribe(f"rh{handling}/t", options=opts)
        if subscribe_twice:
            sub.subscribe(f"rh{handling}/t", options=opts)
        # A live message after the subscriptions marks the end of the retained ones.
        pub.publish(f"rh{handling}/t", b"live", qos=1)
        sub.msgs.wait_until(lambda ms: any(m.payload == b"live" for m in ms), what="live")
        msgs = sub.msgs.wait_quiet(0.3)
        retained = [m for m in msgs if m.payload == b"kept"]
        self.assertTrue(all(m.retain for m in retained))
        return len(retained)

    def test_retain_handling_0_sends_on_every_subscribe(self):
        self.assertEqual(self._retained_count(0, subscribe_twice=True), 2)

    def test_retain_handling_1_sends_only_for_new_subscription(self):
        self.assertEqual(self._retained_count(1, subscribe_twice=True), 1)

    def test_retain_handling_2_never_sends(self):
        self.assertEqual(self._retained_count(2, subscribe_twice=False), 0)

    def test_retain_as_published(self):
        rap = self.connected("rap-yes")
        rap.subscribe("rap/t", options=SubscribeOptions(qos=1, retainAsPublished=True))
        plain = self.connected("rap-no")
        plain.subscribe("rap/t", options=SubscribeOptions(qos=1, retainAsPublished=False))
        pub = self.connected("rap-pub")
        pub.publish("rap/t", b"r", qos=1, retain=True)
        pub.publish("rap/t", b"n", qos=1, retain=False)
        self.assertEqual([(m.payload, m.retain) for m in rap.msgs.wait_for(2)],
                         [(b"r", True), (b"n", False)])
        self.assertEqual([(m.payload, m.retain) for m in plain.msgs.wait_for(2)],
                         [(b"r", False), (b"n", False)])
        pub.publish("rap/t", b"", qos=1, retain=True)    # leave nothing retained


class SysTopics(BrokerTest):
    broker_args = ("--sys-interval", "1")

    def test_sys_statistics_published_and_not_matched_by_hash(self):
        sys_sub = self.connected("sys-sub")
        sys_sub.subscribe("$SYS/#", 0)
        hash_sub = self.connected("sys-hash")
        hash_sub.subscribe("#", 0)
        msgs = sys_sub.msgs.wait_for(1, timeout=5)
        self.assertTrue(all(m.topic.startswith("$SYS/broker/") for m in msgs), msgs)
        # Let at least one more interval pass: "#" must see none of it.
        sys_sub.msgs.wait_until(lambda ms: ms[-1].time - ms[0].time >= 1.0, timeout=5,
                                what="a second round of $SYS messages")
        self.assertEqual(hash_sub.msgs.messages, [])


if __name__ == "__main__":
    main()
