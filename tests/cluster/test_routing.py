#!/usr/bin/python3
"""Routes and forwarding across a cluster: a message published on any node
reaches the subscribers on every node (wildcards included), a subscriber that
has its SUBACK gets a message published on another node right after, clients
spread by HAProxy see one broker, a late node learns the routes, and a killed
node's routes are dropped.

Usage: test_routing.py PATH_TO_STARLING
"""
import unittest

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import Cluster, ClusterTest, HAProxy

DETECTION_LIMIT = 12.0  # see test_membership.py


class Routing(ClusterTest):
    def test_publish_on_any_node_reaches_subscribers_on_every_node(self):
        with Cluster(3) as c:
            filters = {"w/+/x": {"w/a/x", "w/b/x"}, "w/#": {"w/a/x", "w/b/x", "w/a/y"}, "w/a/x": {"w/a/x"}}
            subs = []
            for node, (f, wanted) in zip(c.nodes, filters.items()):
                s = self.client(node, version=4 if f == "w/#" else 5)
                s.subscribe(f, qos=1)
                subs.append((s, wanted))
            for i, node in enumerate(c.nodes):
                p = self.client(node)
                for topic in ("w/a/x", "w/b/x", "w/a/y"):
                    p.publish(topic, f"{i}:{topic}".encode(), qos=1)
            for s, wanted in subs:
                expected = sorted(f"{i}:{t}" for i in range(3) for t in wanted)
                s.msgs.wait_for(len(expected))
                s.msgs.wait_quiet(0.3)
                self.assertEqual(sorted(p.decode() for p in s.msgs.payloads()), expected, s.client_id)
            # Each message had a subscriber somewhere: none counts as dropped
            # for having none, on the node it was published on or elsewhere.
            for node in c.nodes:
                self.assertEqual(metric(scrape(node.http_port), "starling_messages_dropped_total",
                                        reason="no_subscribers"), 0, node.node_id)
            self.client(c.nodes[0]).publish("nowhere/x", b"lost", qos=1)
            self.assertEqual(metric(scrape(c.nodes[0].http_port), "starling_messages_dropped_total",
                                    reason="no_subscribers"), 1)

    def test_a_message_published_elsewhere_right_after_the_suback_arrives(self):
        tries = 1000
        with Cluster(3) as c:
            n1, _, n3 = c.nodes
            sub = self.client(n3)
            pub = self.client(n1)
            missed = []
            for i in range(tries):
                topic = f"race/{i}"
                sub.subscribe(topic, qos=1)       # returns once the SUBACK is in
                pub.publish(topic, str(i).encode(), qos=1)
                try:
                    sub.msgs.wait_for(1, timeout=5.0, topic=topic)
                except AssertionError:
                    missed.append(i)
            print(f"\n  SUBACK on n3, then publish on n1: {tries - len(missed)} of {tries} arrived", flush=True)
            self.assertEqual(missed, [])
            samples = scrape(n3.http_port)
            self.assertEqual(metric(samples, "starling_cluster_route_wait_timeouts_total"), 0)

    def test_clients_behind_haproxy_see_one_broker(self):
        with Cluster(3) as c, HAProxy(c.nodes) as lb:
            subs = [self.client(lb) for _ in range(6)]
            for s in subs:
                s.subscribe("lb/#", qos=1)
            # Round robin: the subscribers are spread over every node.
            held = {b.node_id: http_json(b.http_port, "GET", "/api/v1/clients")[1]["total"] for b in c.nodes}
            self.assertTrue(all(n >= 1 for n in held.values()), held)
            pubs = [self.client(lb) for _ in range(3)]
            for i, p in enumerate(pubs):
                for j in range(10):
                    p.publish(f"lb/{i}", f"{i}-{j}".encode(), qos=1)
            expected = sorted(f"{i}-{j}" for i in range(3) for j in range(10))
            for s in subs:
                s.msgs.wait_for(len(expected))
                s.msgs.wait_quiet(0.3)
                self.assertEqual(sorted(p.decode() for p in s.msgs.payloads()), expected, s.client_id)
                # Per publisher, in order.
                for i in range(3):
                    got = [p.decode() for p in s.msgs.payloads(f"lb/{i}")]
                    self.assertEqual(got, [f"{i}-{j}" for j in range(10)], s.client_id)

    def test_a_shared_group_over_three_nodes_gets_each_message_once(self):
        n = 300
        with Cluster(3) as c:
            members = []
            for node in c.nodes:
                for _ in range(2):
                    m = self.client(node)
                    m.subscribe("$share/g/sh/#", qos=1)
                    members.append(m)
            # A group whose only member is on n3: messages published on n1
            # and n2 reach it through n3, once each.
            lone = self.client(c.nodes[2])
            lone.subscribe("$share/h/sh/+", qos=1)
            pubs = [self.client(node) for node in c.nodes]
            for i in range(n):
                pubs[i % 3].publish(f"sh/{i}", str(i).encode(), qos=1)
            wait_until(lambda: sum(len(m.msgs) for m in members) >= n, 10.0, message=f"{n} messages in group g")
            lone.msgs.wait_for(n)
            for m in members + [lone]:
                m.msgs.wait_quiet(0.1)
            got = sorted(int(p) for m in members for p in m.msgs.payloads())
            self.assertEqual(got, list(range(n)), "group g: each message exactly once")
            self.assertEqual(sorted(int(p) for p in lone.msgs.payloads()), list(range(n)), "group h")
            # Spread: members on every node got some.
            self.assertTrue(all(len(m.msgs) > 0 for m in members), [len(m.msgs) for m in members])

    def test_a_late_node_learns_the_routes(self):
        with Cluster(3) as c:
            s = self.client(c.nodes[0])
            s.subscribe("late/#", qos=1)
            late = c.start_node("n4")
            c.wait_converged(c.nodes + [late])   # ready: joined and synced
            self.client(late).publish("late/x", b"from n4", qos=1)
            s.msgs.wait_for(1)
            self.assertEqual(s.msgs.payloads(), [b"from n4"])

    def test_a_killed_nodes_routes_are_dropped(self):
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            s = self.client(n3)
            s.subscribe("gone/#", qos=1)
            wait_until(lambda: metric(scrape(n1.http_port), "starling_cluster_routes", owner="remote") == 1, 5.0,
                       message="n1 to have n3's route")
            n3.kill9()
            s.kill()
            wait_until(lambda: metric(scrape(n1.http_port), "starling_cluster_routes", owner="remote") == 0,
                       DETECTION_LIMIT, interval=0.1, message="n1 to drop n3's routes")
            # Publishing to what was n3's subscriber is answered, not stuck.
            p = self.client(n1)
            p.publish("gone/x", b"x", qos=1)


if __name__ == "__main__":
    main()
