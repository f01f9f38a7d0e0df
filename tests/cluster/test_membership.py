#!/usr/bin/python3
"""Cluster membership as an operator sees it: nodes joining through seeds
(addresses and dns:), the member list of every node, a killed node declared
dead, a stopped node leaving, a restarted one back, and a node with the wrong
cluster secret refused.

Usage: test_membership.py PATH_TO_STARLING
"""
import signal
import unittest

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import Cluster

# SWIM with the defaults: a probe a second, 5 s to refute a suspicion. With
# three nodes a dead one is probed within about 2 s, so it is declared dead
# within about 8 s; 12 s leaves room for a loaded machine.
DETECTION_LIMIT = 12.0


class Membership(unittest.TestCase):
    def test_three_nodes_see_each_other_and_are_ready(self):
        with Cluster(3) as c:
            for b in c.nodes:
                members = c.members(b)
                self.assertEqual(set(members), {"n1", "n2", "n3"})
                for other in c.nodes:
                    m = members[other.node_id]
                    self.assertEqual(m["state"], "alive")
                    self.assertEqual(m["address"], f"127.0.0.1:{other.cluster_port}")
                    self.assertEqual(m["self"], other is b)
                samples = scrape(b.http_port)
                self.assertEqual(metric(samples, "starling_cluster_members", state="alive"), 3)
                self.assertEqual(metric(samples, "starling_cluster_members", state="dead"), 0)
                self.assertEqual(metric(samples, "starling_cluster_refused_calls_total"), 0)
                # Probing runs once a second; joining did not wait for it.
                wait_until(lambda: metric(scrape(b.http_port), "starling_cluster_probes_total", result="direct") > 0,
                           5.0, message=f"{b.node_id} to have probed a member")

    def test_a_killed_node_is_declared_dead_then_comes_back(self):
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            n3.kill9()
            took = c.wait_state([n1, n2], "n3", "dead", DETECTION_LIMIT)
            print(f"\n  kill -9 to dead on both others: {took:.1f} s", flush=True)
            self.assertEqual(metric(scrape(n1.http_port), "starling_cluster_members", state="dead"), 1)
            # The same node id again (on a new port): alive, at a higher incarnation.
            back = c.start_node("n3")
            c.wait_converged([n1, n2, back])
            m = c.members(n1)["n3"]
            self.assertEqual(m["address"], f"127.0.0.1:{back.cluster_port}")
            self.assertGreater(m["incarnation"], 0)

    def test_a_stopped_node_says_it_leaves(self):
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            n2.send_signal(signal.SIGTERM)
            took = c.wait_state([n1, n3], "n2", "left", 3.0)
            self.assertEqual(n2.wait_exit(10), 0)
            self.assertIn("cluster: left", n2.read_log())
            print(f"\n  SIGTERM to left on both others: {took:.1f} s", flush=True)

    def test_join_through_a_dns_seed(self):
        with Cluster(1) as c:
            # localhost: every address it resolves to is tried.
            late = c.start_node("late", "--join", f"dns:localhost:{c.nodes[0].cluster_port}", join=False)
            c.wait_converged([c.nodes[0], late])

    def test_not_ready_until_a_seed_answers(self):
        with Cluster(1) as c:
            closed = c.nodes[0].port  # an MQTT port: it does not speak gRPC
            lonely = c.start_node("lonely", "--join", f"127.0.0.1:{closed}", join=False)
            status, body = http_json(lonely.http_port, "GET", "/readyz")
            self.assertEqual(status, 503, body)
            self.assertTrue(any(r.startswith("cluster: joining") for r in body["reasons"]), body)
            self.assertEqual(set(c.members(lonely)), {"lonely"})

    def test_a_peer_with_the_wrong_secret_is_refused(self):
        with Cluster(2) as c:
            n1, n2 = c.nodes
            intruder = c.start_node("intruder", secret="not-the-secret")
            wait_until(lambda: (metric(scrape(n1.http_port), "starling_cluster_refused_calls_total") or 0) > 0,
                       5.0, message="n1 to refuse the intruder")
            self.assertIn("refused a call from", n1.read_log())
            self.assertIn("refused this node", intruder.read_log())
            # It stays out: neither side lists the other.
            self.assertEqual(set(c.members(n1)), {"n1", "n2"})
            self.assertEqual(set(c.members(n2)), {"n1", "n2"})
            self.assertEqual(set(c.members(intruder)), {"intruder"})
            status, body = http_json(intruder.http_port, "GET", "/readyz")
            self.assertEqual(status, 503, body)


if __name__ == "__main__":
    main()
