#!/usr/bin/python3
"""MQTT over WebSocket (path /mqtt, subprotocol mqtt) next to plain TCP.
Skipped when this starling has no --ws-listen flag.

Usage: test_websocket.py PATH_TO_STARLING
"""
import unittest

from harness import *  # noqa: F401,F403


class WebSocket(BrokerTest):
    ws = True

    @classmethod
    def setUpClass(cls):
        if not starling_supports("--ws-listen"):
            raise unittest.SkipTest("starling has no --ws-listen")

    def ws_client(self, client_id, version=5):
        if version == 5:
            c = self.v5(client_id, transport="websockets")
        else:
            c = self.v3(client_id, transport="websockets")
        c.connect(self.broker)
        return c

    def test_ws_publish_tcp_subscribe(self):
        for version in (4, 5):
            with self.subTest(version=version):
                tcp = self.connected(f"tcp-sub-{version}", version=version)
                tcp.subscribe("ws/to/tcp", 2)
                ws = self.ws_client(f"ws-pub-{version}", version)
                for qos in (0, 1, 2):
                    ws.publish("ws/to/tcp", f"q{qos}".encode(), qos=qos)
                msgs = tcp.msgs.wait_for(3)
                self.assertEqual(sorted((m.payload, m.qos) for m in msgs),
                                 [(b"q0", 0), (b"q1", 1), (b"q2", 2)])

    def test_tcp_publish_ws_subscribe(self):
        for version in (4, 5):
            with self.subTest(version=version):
                ws = self.ws_client(f"ws-sub-{version}", version)
                ws.subscribe("tcp/to/ws/#", 2)
                tcp = self.connected(f"tcp-pub-{version}", version=version)
                big = bytes(range(256)) * 300        # spans several WebSocket frames
                tcp.publish("tcp/to/ws/a", b"small", qos=1)
                tcp.publish("tcp/to/ws/b", big, qos=2)
                msgs = ws.msgs.wait_for(2)
                self.assertEqual([(m.topic, m.payload, m.qos) for m in msgs],
                                 [("tcp/to/ws/a", b"small", 1), ("tcp/to/ws/b", big, 2)])

    def test_ws_retained_and_will(self):
        tcp = self.connected("ws-will-watch")
        tcp.subscribe("wsw/#", 1)
        ws = self.v5("ws-dies", transport="websockets")
        ws.will_set("wsw/will", b"ws gone", qos=1)
        ws.connect(self.broker)
        ws.publish("wsw/retained", b"kept", qos=1, retain=True)
        tcp.msgs.wait_for(1)
        ws.kill()
        m = tcp.msgs.wait_for(2)[1]
        self.assertEqual((m.topic, m.payload), ("wsw/will", b"ws gone"))
        late = self.ws_client("ws-late")
        late.subscribe("wsw/retained", 1)
        m = late.msgs.wait_for(1)[0]
        self.assertEqual((m.payload, m.retain), (b"kept", True))

    def test_ws_session_resumes_over_tcp(self):
        ws = self.v5("roamer", transport="websockets")
        ws.connect(self.broker, session_expiry=60)
        ws.subscribe("roam/t", 1)
        ws.disconnect()
        pub = self.connected("roam-pub")
        pub.publish("roam/t", b"while away", qos=1)
        tcp = self.v5("roamer")
        self.assertEqual(tcp.connect(self.broker, clean_start=False, session_expiry=60)[0], 1)
        self.assertEqual(tcp.msgs.wait_for(1)[0].payload, b"while away")


if __name__ == "__main__":
    main()
