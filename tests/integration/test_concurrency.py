#!/usr/bin/python3
"""Several publishers at once on two worker threads: every acknowledged QoS 1/2
message reaches every subscriber exactly once, in order per publisher and QoS.

Usage: test_concurrency.py PATH_TO_STARLING
"""
import threading
import time

from harness import *  # noqa: F401,F403


class Concurrency(BrokerTest):
    broker_args = ("--threads", "2")

    def test_fan_in_from_four_publishers_to_three_subscribers(self):
        n, publishers = 1500, 4
        subs = []
        for i, (version, qos) in enumerate([(4, 1), (5, 2), (4, 1)]):
            c = self._client(f"load-sub{i}", version)
            c.connect(self.broker)
            c.subscribe("load/#", qos)
            subs.append(c)
        acked = [0] * publishers

        def publish(k):
            c = MqttClient(f"load-pub{k}", version=5)
            try:
                c.connect(self.broker)
                infos = [c.publish(f"load/{k}", f"{k}:{i}".encode(), qos=1 + i % 2, wait=False)
                         for i in range(n)]
                deadline = time.monotonic() + 60
                while not all(x.is_published() for x in infos) and time.monotonic() < deadline:
                    time.sleep(0.02)
                acked[k] = sum(x.is_published() for x in infos)
                c.disconnect()
            finally:
                c.close()

        threads = [threading.Thread(target=publish, args=(k,)) for k in range(publishers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=90)
        self.assertEqual(acked, [n] * publishers)
        for s in subs:
            got = s.msgs.wait_for(n * publishers, timeout=60)
            s.msgs.wait_quiet(0.5)
            self.assertEqual(len(s.msgs), n * publishers, f"{s.client_id}: duplicates")
            per = {}
            for m in got:
                k, i = m.payload.decode().split(":")
                per.setdefault(k, []).append(int(i))
            self.assertEqual(sorted(per), [str(k) for k in range(publishers)])
            for k, seq in per.items():
                # Order holds per publisher and QoS [MQTT-4.6.0-6]; paho hands a
                # QoS 2 message to the application only at PUBREL, so QoS 1 and 2
                # may interleave differently.
                self.assertEqual([i for i in seq if i % 2 == 0], list(range(0, n, 2)), f"{s.client_id} {k}")
                self.assertEqual([i for i in seq if i % 2 == 1], list(range(1, n, 2)), f"{s.client_id} {k}")


if __name__ == "__main__":
    main()
