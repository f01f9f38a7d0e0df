#!/usr/bin/python3
"""Retained messages in a cluster: set on one node, seen from another at
once (the publisher's PUBACK waits for every live node), cleared everywhere,
kept across a node's restart, pulled by a node that was away or joins late,
and the last writer wins when two nodes set one topic.

Usage: test_retained.py PATH_TO_STARLING
"""
import unittest

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import Cluster, ClusterTest, with_restartable_node



class Retained(ClusterTest):
    def retained_on(self, node, topic_filter, expect=0, timeout=3.0):
        """The retained payloads a new subscriber on `node` gets for the filter:
        at least `expect` of them are waited for, then a quiet moment shows
        that no more come."""
        s = self.client(node)
        s.subscribe(topic_filter, qos=1)
        if expect:
            s.msgs.wait_for(expect, timeout=timeout)
        s.msgs.wait_quiet(0.2)
        got = {m.topic: m.payload for m in s.msgs.messages if m.retain}
        self.forget(s)
        return got

    def test_set_on_one_node_is_seen_from_another_at_once(self):
        tries = 200
        with Cluster(3) as c:
            n1, _, n3 = c.nodes
            pub = self.client(n1)
            missed = []
            for i in range(tries):
                pub.publish(f"ret/{i}", f"v{i}".encode(), qos=1, retain=True)  # waits for the PUBACK
                s = self.client(n3)
                s.subscribe(f"ret/{i}", qos=1)
                try:
                    s.msgs.wait_for(1, timeout=3.0)
                except AssertionError:
                    missed.append(i)
                self.forget(s)
            print(f"\n  retained on n1, subscribe on n3 right after: {tries - len(missed)} of {tries}", flush=True)
            self.assertEqual(missed, [])
            # Cleared on n3: gone everywhere.
            self.client(n3).publish("ret/0", b"", qos=1, retain=True)
            for node in c.nodes:
                self.assertNotIn("ret/0", self.retained_on(node, "ret/0"))

    def test_survives_a_restart_and_a_node_away_catches_up(self):
        # n3 on a data directory that outlives its process.
        with with_restartable_node() as (c, n3, kept):
            n1, n2 = c.nodes
            pub = self.client(n1)
            pub.publish("keep/a", b"a1", qos=1, retain=True)
            pub.publish("keep/gone", b"x", qos=1, retain=True)
            self.assertEqual(self.retained_on(n3, "keep/#", expect=2), {"keep/a": b"a1", "keep/gone": b"x"})
            n3.kill9()
            # While n3 is down: one changed, one cleared, one new.
            pub.publish("keep/a", b"a2", qos=1, retain=True)
            pub.publish("keep/gone", b"", qos=1, retain=True)
            pub.publish("keep/new", b"n", qos=1, retain=True)
            back = c.start_node("n3", data_dir=kept)
            c.wait_converged([n1, n2, back], timeout=20.0)
            self.assertIn("retained messages synced from", back.read_log())
            self.assertEqual(self.retained_on(back, "keep/#", expect=2), {"keep/a": b"a2", "keep/new": b"n"})

    def test_a_late_node_gets_the_retained_messages(self):
        with Cluster(3) as c:
            pub = self.client(c.nodes[1])
            for i in range(50):
                pub.publish(f"early/{i}", str(i).encode(), qos=1, retain=True)
            late = c.start_node("n4")
            c.wait_converged(c.nodes + [late])
            got = self.retained_on(late, "early/#", expect=50)
            self.assertEqual(got, {f"early/{i}": str(i).encode() for i in range(50)})

    def test_the_last_writer_wins(self):
        with Cluster(3) as c:
            clients = [self.client(b) for b in c.nodes]
            for round_ in range(20):
                for i, cl in enumerate(clients):
                    cl.publish("lww", f"{round_}-{i}".encode(), qos=1, retain=True, wait=False)
                for cl in clients:
                    cl.publish("sync", b"", qos=1)   # the ones before are acknowledged too
                seen = {b.node_id: self.retained_on(b, "lww", expect=1).get("lww") for b in c.nodes}
                self.assertEqual(len(set(seen.values())), 1, f"round {round_}: {seen}")
                # ... and it is one of this round's writes.
                self.assertIn(next(iter(seen.values())), {f"{round_}-{i}".encode() for i in range(3)}, seen)


if __name__ == "__main__":
    main()
