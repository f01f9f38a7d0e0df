#!/usr/bin/python3
"""Session takeover across nodes: a client id has one live connection in the
cluster, and a persistent session follows its client to whichever node it
connects to, with its subscriptions and queued messages.

Usage: test_takeover.py PATH_TO_STARLING
"""
import unittest

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import Cluster, ClusterTest

SESSION_TAKEN_OVER = 142  # 0x8E


class Takeover(ClusterTest):
    def test_connecting_on_another_node_closes_the_old_connection(self):
        with Cluster(3) as c:
            n1, _, n3 = c.nodes
            old = self.client(client_id="moving")
            self.connect(old, n1)
            new = self.client(client_id="moving")
            self.connect(new, n3)
            old.wait_disconnected()
            self.assertEqual(old.disconnected[0], SESSION_TAKEN_OVER)
            wait_until(lambda: "moving" not in {x["client_id"] for x in
                                                http_json(n1.http_port, "GET", "/api/v1/clients")[1]["data"]},
                       5.0, message="n1 to forget the client")
            self.assertEqual(http_json(n3.http_port, "GET", "/api/v1/clients/moving")[0], 200)
            samples = scrape(n3.http_port)
            self.assertEqual(metric(samples, "starling_cluster_takeovers_total", result="taken"), 1)

    def test_a_persistent_session_moves_with_its_queued_messages(self):
        n = 20
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            x = self.client(client_id="traveller")
            self.connect(x, n1, clean_start=False, session_expiry=300)
            x.subscribe("tk/#", qos=1)
            x.disconnect()
            pub = self.client(client_id="pub")
            self.connect(pub, n2)
            for i in range(n):
                pub.publish(f"tk/{i}", str(i).encode(), qos=1)   # queued on n1 for the offline session
            # The client comes back on another node.
            x2 = self.client(client_id="traveller")
            present, rc, _ = self.connect(x2, n3, clean_start=False, session_expiry=300)
            self.assertEqual((present, rc), (1, 0))
            x2.msgs.wait_for(n)
            self.assertEqual([int(p) for p in x2.msgs.payloads()], list(range(n)))
            # Its routes moved: a message published on n1 reaches it on n3.
            pub1 = self.client(client_id="pub1")
            self.connect(pub1, n1)
            pub1.publish("tk/after", b"after", qos=1)
            x2.msgs.wait_for(1, topic="tk/after")
            status, _ = http_json(n1.http_port, "GET", "/api/v1/clients/traveller")
            self.assertEqual(status, 404)

    def test_clean_start_elsewhere_ends_the_old_session(self):
        with Cluster(2) as c:
            n1, n2 = c.nodes
            x = self.client(client_id="fresh", version=4, clean_session=False)
            self.connect(x, n1)
            x.subscribe("cs/#", qos=1)
            x.disconnect()
            pub = self.client(client_id="pub")
            self.connect(pub, n1)
            pub.publish("cs/1", b"queued", qos=1)
            y = self.client(client_id="fresh")
            present, rc, _ = self.connect(y, n2, clean_start=True)
            self.assertEqual((present, rc), (0, 0))
            y.msgs.wait_quiet(0.5)
            self.assertEqual(len(y.msgs), 0)
            self.assertEqual(http_json(n1.http_port, "GET", "/api/v1/clients/fresh")[0], 404)


if __name__ == "__main__":
    main()
