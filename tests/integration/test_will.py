#!/usr/bin/python3
"""Will messages: abnormal vs normal disconnection, will delay, cancellation.

Usage: test_will.py PATH_TO_STARLING
"""
import time

from harness import *  # noqa: F401,F403


class Will(BrokerTest):
    def _watcher(self, topic="will/#"):
        w = self.connected("will-watcher")
        w.subscribe(topic, 2)
        return w

    def _abnormal(self, version):
        w = self._watcher()
        c = self.v5("dies5") if version == 5 else self.v3("dies311")
        c.will_set(f"will/v{version}", f"gone {version}".encode(), qos=1)
        c.connect(self.broker)
        c.kill()
        m = w.msgs.wait_for(1, timeout=5)[0]
        self.assertEqual((m.topic, m.payload, m.qos, m.retain),
                         (f"will/v{version}", f"gone {version}".encode(), 1, False))

    def test_will_on_abnormal_disconnect_v311(self):
        self._abnormal(4)

    def test_will_on_abnormal_disconnect_v5(self):
        self._abnormal(5)

    def test_will_on_raw_socket_close_qos2(self):
        w = self._watcher()
        r = self.raw(version=5)
        r.connect("raw-dies", will=dict(topic="will/raw", payload=b"raw gone", qos=2))
        r.close()
        m = w.msgs.wait_for(1, timeout=5)[0]
        self.assertEqual((m.topic, m.payload, m.qos), ("will/raw", b"raw gone", 2))

    def _no_will_on_normal_disconnect(self, version):
        w = self._watcher()
        c = self.v5("polite5") if version == 5 else self.v3("polite311")
        c.will_set("will/polite", b"must not appear", qos=1)
        c.connect(self.broker)
        c.disconnect()
        other = self.connected("will-marker")
        other.publish("will/polite", b"marker", qos=1)
        w.msgs.wait_for(1, timeout=5)
        msgs = w.msgs.wait_quiet(1.0)
        self.assertEqual([m.payload for m in msgs], [b"marker"])

    def test_no_will_on_normal_disconnect_v311(self):
        self._no_will_on_normal_disconnect(4)

    def test_no_will_on_normal_disconnect_v5(self):
        self._no_will_on_normal_disconnect(5)

    def test_v5_disconnect_with_will_reason_code_0x04_publishes_will(self):
        w = self._watcher()
        r = self.raw(version=5)
        r.connect("asks-for-will", will=dict(topic="will/asked", payload=b"asked", qos=1))
        r.send(disconnect_packet(0x04))     # Disconnect with Will Message
        r.read_until_closed(timeout=5)
        m = w.msgs.wait_for(1, timeout=5)[0]
        self.assertEqual((m.topic, m.payload), ("will/asked", b"asked"))

    def test_retained_will(self):
        w = self._watcher("will/retained")
        c = self.v3("dies-retained")
        c.will_set("will/retained", b"last words", qos=1, retain=True)
        c.connect(self.broker)
        c.kill()
        w.msgs.wait_for(1, timeout=5)       # published (and so stored) by now
        late = self.connected("late-watcher")
        late.subscribe("will/retained", 1)
        m = late.msgs.wait_for(1, timeout=5)[0]
        self.assertEqual((m.payload, m.retain), (b"last words", True))
        late.publish("will/retained", b"", qos=1, retain=True)

    def test_will_properties_passed_through(self):
        w = self._watcher()
        c = self.v5("dies-props")
        props = Properties(PacketTypes.WILLMESSAGE)
        props.ContentType = "text/plain"
        props.PayloadFormatIndicator = 1
        props.UserProperty = ("k", "v")
        props.ResponseTopic = "will/reply"
        props.CorrelationData = b"\x01\x02"
        c.will_set("will/props", b"p", qos=1, properties=props)
        c.connect(self.broker)
        c.kill()
        m = w.msgs.wait_for(1, timeout=5)[0]
        self.assertEqual(m.prop("ContentType"), "text/plain")
        self.assertEqual(m.prop("PayloadFormatIndicator"), 1)
        self.assertEqual(m.prop("UserProperty"), [("k", "v")])
        self.assertEqual(m.prop("ResponseTopic"), "will/reply")
        self.assertEqual(m.prop("CorrelationData"), b"\x01\x02")


class WillDelay(BrokerTest):
    def test_will_delay_interval(self):
        w = self.connected("wd-watcher")
        w.subscribe("wd/#", 1)
        c = self.v5("wd-client")
        c.will_set("wd/delayed", b"late", qos=1, delay=2)
        c.connect(self.broker, session_expiry=60)
        c.kill()
        dropped = time.monotonic()
        m = w.msgs.wait_for(1, timeout=6)[0]
        elapsed = m.time - dropped
        self.assertEqual(m.payload, b"late")
        self.assertGreaterEqual(elapsed, 1.0, f"will arrived after only {elapsed:.2f}s")
        self.assertLessEqual(elapsed, 4.0, f"will arrived after {elapsed:.2f}s")

    def test_will_sent_when_session_ends_before_delay(self):
        w = self.connected("wds-watcher")
        w.subscribe("wds/#", 1)
        c = self.v5("wds-client")
        c.will_set("wds/ended", b"session over", qos=1, delay=30)
        c.connect(self.broker, session_expiry=1)
        c.kill()
        dropped = time.monotonic()
        m = w.msgs.wait_for(1, timeout=6)[0]
        self.assertEqual(m.payload, b"session over")
        self.assertLessEqual(m.time - dropped, 4.0)

    def test_will_cancelled_by_reconnect_within_delay(self):
        w = self.connected("wdc-watcher")
        w.subscribe("wdc/#", 1)
        c = self.v5("wdc-client")
        c.will_set("wdc/cancelled", b"must not appear", qos=1, delay=2)
        c.connect(self.broker, session_expiry=60)
        c.kill()
        again = self.v5("wdc-client")
        session_present, _, _ = again.connect(self.broker, clean_start=False, session_expiry=60)
        self.assertEqual(session_present, 1)
        # Observe past the delay (2 s) with a margin: the will must never come.
        self.assertEqual(w.msgs.wait_quiet(3.5), [])


if __name__ == "__main__":
    main()
