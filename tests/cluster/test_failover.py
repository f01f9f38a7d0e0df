#!/usr/bin/python3
"""Failover: a persistent session is copied to --replication-factor - 1 other
nodes, and when its node dies (kill -9) a copy takes over, so its client
resumes on any node with every message the cluster acknowledged.

Usage: test_failover.py PATH_TO_STARLING [Class.test]
"""
import os
import shutil
import signal
import tempfile
import time
import unittest

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import Cluster, ClusterTest


def owner_of(nodes, client_id):
    """The node whose /api/v1/clients lists the client (copies are not listed)."""
    owners = [b for b in nodes if b.alive() and
              http_json(b.http_port, "GET", f"/api/v1/clients/{client_id}")[0] == 200]
    return owners


class Failover(ClusterTest):
    def connect_until_accepted(self, client_id, nodes, timeout=30.0, **kw):
        """Connects (as a load balancer would send it: to each live node in
        turn) until a node accepts; returns (client, node, connack)."""
        deadline = time.monotonic() + timeout
        i = 0
        while True:
            node = nodes[i % len(nodes)]
            i += 1
            c = self.client(client_id=client_id)
            try:
                connack = self.connect(c, node, **kw)
                if connack[1] == 0:
                    return c, node, connack
            except Exception:  # noqa: BLE001 - refused or reset: try again, as a client would
                pass
            self.forget(c)
            if time.monotonic() > deadline:
                raise AssertionError(f"{client_id} not accepted within {timeout} s")
            time.sleep(0.5)

    def test_a_dead_owners_session_resumes_elsewhere_with_its_messages(self):
        """The subscriber's session lives on n1, which is killed while the
        client is away; everything published (and acknowledged) before and
        after the kill reaches the client when it comes back on another node,
        QoS 1 and QoS 2."""
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            for qos in (1, 2):
                sub = self.client(client_id=f"fo-sub{qos}")
                self.connect(sub, n1, clean_start=False, session_expiry=600)
                sub.subscribe(f"fo{qos}/#", qos=qos)
                sub.disconnect()
                self.forget(sub)
            # MQTT 3.1.1: a publish the cluster could not take closes the
            # connection (no PUBACK), so "acknowledged" means what it says.
            pub = self.client(n2, client_id="fo-pub", version=4)
            for i in range(50):
                pub.publish(f"fo1/{i}", str(i).encode(), qos=1)
                pub.publish(f"fo2/{i}", str(i).encode(), qos=2)
            n1.kill9()
            # Published while n1 is dead and not yet declared so: these can
            # fail; only the acknowledged ones count.
            acked = {1: list(range(50)), 2: list(range(50))}
            for i in range(50, 80):
                for qos in (1, 2):
                    try:
                        pub.publish(f"fo{qos}/{i}", str(i).encode(), qos=qos, timeout=3.0)
                        acked[qos].append(i)
                    except AssertionError:
                        self.forget(pub)
                        pub = self.client(n2, client_id="fo-pub", version=4)
                time.sleep(0.1)
            for qos in (1, 2):
                sub, node, (present, rc, _) = self.connect_until_accepted(
                    f"fo-sub{qos}", [n3, n2], clean_start=False, session_expiry=600)
                self.assertEqual(present, 1, f"QoS {qos}: session present on {node.node_id}")
                got = set()
                deadline = time.monotonic() + 10
                while not set(acked[qos]) <= got and time.monotonic() < deadline:
                    got = {int(p) for p in sub.msgs.payloads()}
                    time.sleep(0.1)
                missing = sorted(set(acked[qos]) - got)
                print(f"QoS {qos}: acknowledged {len(acked[qos])}, delivered {len(got)}, missing {missing}")
                self.assertEqual(missing, [])
                if qos == 2:
                    payloads = [int(p) for p in sub.msgs.payloads()]
                    self.assertEqual(len(payloads), len(set(payloads)), "QoS 2 delivered twice")

    def test_a_copy_read_back_from_disk_takes_over_when_owner_and_copy_died(self):
        """A session's owner (n1) and the node with its copy both die
        (kill -9); only the copy's node comes back. It reads the copy back
        from its disk and takes the session over: the client resumes with
        every acknowledged message, QoS 2 once."""
        dirs = [tempfile.mkdtemp(prefix="starling-fo-") for _ in range(3)]
        try:
            with Cluster(0) as c:
                for i, d in enumerate(dirs):
                    c.nodes.append(c.start_node(f"n{i + 1}", data_dir=d))
                c.wait_converged(timeout=30.0)
                n1 = c.nodes[0]
                sub = self.client(client_id="fd-sub")
                self.connect(sub, n1, clean_start=False, session_expiry=600)
                sub.subscribe("fd/#", qos=2)
                sub.disconnect()
                self.forget(sub)
                with_copy = lambda: [b for b in c.nodes[1:]  # noqa: E731
                                     if metric(scrape(b.http_port), "starling_cluster_replicas") == 1]
                wait_until(lambda: len(with_copy()) == 1, 10.0, message="one node with the copy")
                holder = with_copy()[0]
                other = next(b for b in c.nodes[1:] if b is not holder)
                pub = self.client(other, client_id="fd-pub", version=4)
                for i in range(40):
                    pub.publish(f"fd/{i}", str(i).encode(), qos=1 + i % 2)
                self.forget(pub)
                n1.kill9()
                holder.kill9()
                back = c.restart_node(holder, dirs[c.nodes.index(holder)])
                c.wait_converged([other, back], timeout=40.0)
                sub, node, (present, _, _) = self.connect_until_accepted(
                    "fd-sub", [back, other], timeout=40.0, clean_start=False, session_expiry=600)
                self.assertEqual(present, 1, f"session present on {node.node_id}")
                wait_until(lambda: len(sub.msgs.payloads()) >= 40, 10.0, message="40 messages")
                time.sleep(0.5)
                payloads = sorted(int(p) for p in sub.msgs.payloads())
                print(f"copy read back from disk: acknowledged 40, delivered {len(payloads)} on {node.node_id}")
                self.assertEqual(sorted(set(payloads)), list(range(40)))
                qos2 = [p for p in payloads if p % 2 == 1]
                self.assertEqual(len(qos2), len(set(qos2)), "QoS 2 delivered twice")
        finally:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)

    def test_a_node_that_sees_less_than_half_the_cluster_acknowledges_nothing(self):
        """n2 and n3 die; n1, alone out of three, cannot know whether the
        others took its sessions over (a partition looks the same): it
        refuses QoS 1 publishes and CONNECTs that resume a session, and still
        takes QoS 0 and clean sessions. Once n2 is back, it acknowledges
        again."""
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            pub = self.client(n1, client_id="q-pub", version=4)
            pub.publish("q/0", b"0", qos=1)
            n2.kill9()
            n3.kill9()
            c.wait_state([n1], "n2", "dead", 20.0)
            c.wait_state([n1], "n3", "dead", 20.0)
            with self.assertRaises(AssertionError):
                pub.publish("q/1", b"1", qos=1, timeout=5.0)  # closed without PUBACK
            self.forget(pub)
            refused = self.client(client_id="q-sub")
            _, rc, _ = refused.connect(n1, clean_start=False, session_expiry=600, expect_rc=None)
            self.assertEqual(rc, 0x89, "server busy: try again")
            self.forget(refused)
            clean = self.client(n1, client_id="q-clean")
            clean.publish("q/2", b"2", qos=0)
            # With n2 back (same id, new process), n1 is in the majority again.
            back = c.start_node("n2")
            c.wait_converged([n1, back], timeout=30.0)
            pub = self.client(n1, client_id="q-pub2", version=4)
            pub.publish("q/3", b"3", qos=1)


if __name__ == "__main__":
    main()
