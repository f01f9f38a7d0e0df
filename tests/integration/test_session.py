#!/usr/bin/python3
"""Clean start, persistent sessions, session expiry, offline queues.

Usage: test_session.py PATH_TO_STARLING
"""
import time

from harness import *  # noqa: F401,F403


class V311Sessions(BrokerTest):
    def test_persistent_session_gets_qos1_and_qos2_published_while_offline(self):
        sub = self.v3("p311", clean_session=False)
        self.assertEqual(sub.connect(self.broker)[0], 0)
        self.assertEqual(sub.subscribe("sess/offline", 2), [2])
        sub.disconnect()

        pub = self.connected("p311-pub", version=4)
        pub.publish("sess/offline", b"zero", qos=0)
        pub.publish("sess/offline", b"one", qos=1)
        pub.publish("sess/offline", b"two", qos=2)

        session_present, rc, _ = sub.connect(self.broker)
        self.assertEqual((session_present, rc), (1, 0))
        msgs = sub.msgs.wait_for(2)
        self.assertEqual([(m.payload, m.qos) for m in msgs[:2]], [(b"one", 1), (b"two", 2)])
        # QoS 0 is not queued for an offline session; it was published first, so if
        # it had been queued it would have arrived before "one".
        self.assertNotIn(b"zero", sub.msgs.payloads())
        # The subscription survived too: new messages arrive without resubscribing.
        pub.publish("sess/offline", b"live", qos=1)
        sub.msgs.wait_for(3)
        self.assertEqual(sub.msgs.payloads(), [b"one", b"two", b"live"])

    def test_clean_session_keeps_nothing(self):
        sub = self.v3("c311", clean_session=True)
        sub.connect(self.broker)
        sub.subscribe("sess/clean", 1)
        sub.disconnect()
        pub = self.connected("c311-pub", version=4)
        pub.publish("sess/clean", b"lost", qos=1)
        self.assertEqual(sub.connect(self.broker)[0], 0)
        pub.publish("sess/clean", b"also lost", qos=1)
        self.assertEqual(sub.msgs.wait_quiet(1.0), [])

    def test_clean_session_discards_earlier_persistent_session(self):
        persistent = self.v3("switch311", clean_session=False)
        persistent.connect(self.broker)
        persistent.subscribe("sess/switch", 1)
        persistent.disconnect()
        clean = self.v3("switch311", clean_session=True)
        self.assertEqual(clean.connect(self.broker)[0], 0)
        clean.disconnect()
        again = self.v3("switch311", clean_session=False)
        self.assertEqual(again.connect(self.broker)[0], 0, "old session must be gone")


class V5Sessions(BrokerTest):
    def test_session_expiry_zero_ends_session_at_disconnect(self):
        sub = self.v5("e0")
        sub.connect(self.broker, clean_start=True)          # no Session Expiry: 0
        sub.subscribe("sess5/zero", 1)
        sub.disconnect()
        pub = self.connected("e0-pub")
        pub.publish("sess5/zero", b"lost", qos=1)
        session_present, rc, _ = sub.connect(self.broker, clean_start=False)
        self.assertEqual((session_present, rc), (0, 0))
        self.assertEqual(sub.msgs.wait_quiet(1.0), [])

    def test_session_expiry_keeps_session_and_queues(self):
        sub = self.v5("e60")
        sub.connect(self.broker, clean_start=True, session_expiry=60)
        sub.subscribe("sess5/keep", 2)
        sub.disconnect()
        pub = self.connected("e60-pub")
        pub.publish("sess5/keep", b"zero", qos=0)
        pub.publish("sess5/keep", b"one", qos=1)
        pub.publish("sess5/keep", b"two", qos=2)
        session_present, rc, _ = sub.connect(self.broker, clean_start=False, session_expiry=60)
        self.assertEqual((session_present, rc), (1, 0))
        msgs = sub.msgs.wait_for(2)
        self.assertEqual([(m.payload, m.qos) for m in msgs[:2]], [(b"one", 1), (b"two", 2)])
        self.assertNotIn(b"zero", sub.msgs.payloads(), "QoS 0 must not be queued offline")
        pub.publish("sess5/keep", b"live", qos=1)
        sub.msgs.wait_for(3)
        self.assertEqual(sub.msgs.payloads(), [b"one", b"two", b"live"])

    def test_session_expires_after_interval(self):
        sub = self.v5("e2")
        sub.connect(self.broker, clean_start=True, session_expiry=2)
        sub.subscribe("sess5/expire", 1)
        sub.disconnect()
        offline_at = time.monotonic()
        pub = self.connected("e2-pub")
        pub.publish("sess5/expire", b"queued then dropped", qos=1)
        # The feature under test is the passing of time: stay offline 4 s.
        time.sleep(max(0.0, 4.0 - (time.monotonic() - offline_at)))
        session_present, rc, _ = sub.connect(self.broker, clean_start=False, session_expiry=2)
        self.assertEqual((session_present, rc), (0, 0))
        self.assertEqual(sub.msgs.wait_quiet(1.0), [])

    def test_session_within_expiry_is_resumed(self):
        sub = self.v5("e5")
        sub.connect(self.broker, clean_start=True, session_expiry=5)
        sub.subscribe("sess5/resume", 1)
        sub.disconnect()
        pub = self.connected("e5-pub")
        pub.publish("sess5/resume", b"kept", qos=1)
        session_present, _, _ = sub.connect(self.broker, clean_start=False, session_expiry=5)
        self.assertEqual(session_present, 1)
        self.assertEqual(sub.msgs.wait_for(1)[0].payload, b"kept")

    def test_clean_start_discards_existing_session(self):
        sub = self.v5("cs")
        sub.connect(self.broker, clean_start=True, session_expiry=60)
        sub.subscribe("sess5/cleanstart", 1)
        sub.disconnect()
        pub = self.connected("cs-pub")
        pub.publish("sess5/cleanstart", b"discarded", qos=1)
        session_present, _, _ = sub.connect(self.broker, clean_start=True, session_expiry=60)
        self.assertEqual(session_present, 0)
        pub.publish("sess5/cleanstart", b"not subscribed any more", qos=1)
        self.assertEqual(sub.msgs.wait_quiet(1.0), [])

    def test_abnormal_disconnect_keeps_session(self):
        sub = self.v5("abn")
        sub.connect(self.broker, clean_start=True, session_expiry=60)
        sub.subscribe("sess5/abnormal", 1)
        sub.kill()
        pub = self.connected("abn-pub")
        pub.publish("sess5/abnormal", b"after crash", qos=1)
        sub2 = self.v5("abn")
        session_present, _, _ = sub2.connect(self.broker, clean_start=False, session_expiry=60)
        self.assertEqual(session_present, 1)
        self.assertEqual(sub2.msgs.wait_for(1)[0].payload, b"after crash")


class QueueLimit(BrokerTest):
    broker_args = ("--max-queued", "5")

    def test_offline_queue_is_bounded(self):
        sub = self.v5("bounded")
        sub.connect(self.broker, session_expiry=60)
        sub.subscribe("sess5/bounded", 1)
        sub.disconnect()
        pub = self.connected("bounded-pub")
        for i in range(20):
            pub.publish("sess5/bounded", str(i).encode(), qos=1)
        self.assertEqual(sub.connect(self.broker, clean_start=False, session_expiry=60)[0], 1)
        sub.msgs.wait_for(1)
        got = [int(m.payload) for m in sub.msgs.wait_quiet(1.0)]
        self.assertLessEqual(len(got), 5, got)
        self.assertEqual(got, sorted(got))
        # Still subscribed, and a live message is not blocked by the old overflow.
        pub.publish("sess5/bounded", b"live", qos=1)
        sub.msgs.wait_until(lambda ms: ms and ms[-1].payload == b"live", what="live message")


if __name__ == "__main__":
    main()
