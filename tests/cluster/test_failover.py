#!/usr/bin/python3
"""Failover: a persistent session is copied to --replication-factor - 1 other
nodes, and when its node dies (kill -9) a copy takes over, so its client
resumes on any node with every message the cluster acknowledged.

Usage: test_failover.py PATH_TO_STARLING [Class.test]
"""
import contextlib
import os
import shutil
import signal
import tempfile
import time
import unittest

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import Cluster, ClusterTest
from harness import PUBCOMP, PUBREC, PUBREL, RawClient, ack_packet, publish_packet

SESSION_EXPIRY = 17  # the CONNECT property id, for hand-built packets


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

    def offline_session(self, node, client_id, topic_filter, qos):
        """`client_id`'s persistent session (expiry 600 s) on `node`,
        subscribed to `topic_filter`, and offline."""
        sub = self.client(client_id=client_id)
        self.connect(sub, node, clean_start=False, session_expiry=600)
        sub.subscribe(topic_filter, qos=qos)
        sub.disconnect()
        self.forget(sub)

    @contextlib.contextmanager
    def stored_session_with_a_copy(self, client_id, topic_filter, qos):
        """Three nodes with data directories (removed after); `client_id`'s
        persistent session on n1, subscribed to `topic_filter`, offline, its
        copy on one of the others. Yields (cluster, dirs, n1, the node with
        the copy, the third node)."""
        dirs = [tempfile.mkdtemp(prefix="starling-fo-") for _ in range(3)]
        try:
            with Cluster(0) as c:
                for i, d in enumerate(dirs):
                    c.nodes.append(c.start_node(f"n{i + 1}", data_dir=d))
                c.wait_converged(timeout=30.0)
                n1 = c.nodes[0]
                self.offline_session(n1, client_id, topic_filter, qos)
                with_copy = lambda: [b for b in c.nodes[1:]  # noqa: E731
                                     if metric(scrape(b.http_port), "starling_cluster_replicas") == 1]
                wait_until(lambda: len(with_copy()) == 1, 10.0, message="one node with the copy")
                holder = with_copy()[0]
                yield c, dirs, n1, holder, next(b for b in c.nodes[1:] if b is not holder)
        finally:
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)

    def test_a_copy_read_back_from_disk_takes_over_when_owner_and_copy_died(self):
        """A session's owner (n1) and the node with its copy both die
        (kill -9); only the copy's node comes back. It reads the copy back
        from its disk and takes the session over: the client resumes with
        every acknowledged message, QoS 2 once."""
        with self.stored_session_with_a_copy("fd-sub", "fd/#", 2) as (c, dirs, n1, holder, other):
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

    def test_a_copy_node_restarted_before_it_was_declared_dead_is_filled_again(self):
        """The node with a session's copy is killed and restarted at once,
        before the others declare it dead. The owner fills its copy there
        again (the node's first resync says it started anew); then the owner
        dies, and the client resumes with every acknowledged message."""
        with self.stored_session_with_a_copy("fr-sub", "fr/#", 1) as (c, dirs, n1, holder, other):
            pub = self.client(other, client_id="fr-pub", version=4)
            for i in range(20):
                pub.publish(f"fr/{i}", str(i).encode(), qos=1)
            holder.kill9()
            back = c.restart_node(holder, dirs[c.nodes.index(holder)])
            wait_until(lambda: metric(scrape(back.http_port), "starling_cluster_replicas") == 1, 10.0,
                       message="the copy filled again on the restarted node")
            for line in n1.read_log().splitlines() + other.read_log().splitlines():
                self.assertFalse(f"member {holder.node_id} " in line and " is dead," in line,
                                 f"declared dead: the restart was too slow: {line}")
            for i in range(20, 40):
                pub.publish(f"fr/{i}", str(i).encode(), qos=1)
            self.forget(pub)
            n1.kill9()
            sub, node, (present, _, _) = self.connect_until_accepted(
                "fr-sub", [back, other], timeout=40.0, clean_start=False, session_expiry=600)
            self.assertEqual(present, 1, f"session present on {node.node_id}")
            wait_until(lambda: len(set(sub.msgs.payloads())) >= 40, 10.0, message="40 messages")
            self.assertEqual(sorted(set(int(p) for p in sub.msgs.payloads())), list(range(40)))

    def test_a_shared_subscription_and_what_it_queued_survive_the_owners_death(self):
        """A persistent session whose shared subscription ($share/g/...) is
        its group's only member, offline on n1: no node forwards the group's
        messages to its copy, so n1 sends them there before they are
        acknowledged. After n1's kill -9 the client resumes on another node
        with every acknowledged message, and the shared subscription goes on."""
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            self.offline_session(n1, "sh-sub", "$share/g/sh/#", 1)
            wait_until(lambda: sum(metric(scrape(b.http_port), "starling_cluster_replicas") for b in (n2, n3)) == 1,
                       10.0, message="one node with the copy")
            pub = self.client(n2, client_id="sh-pub", version=4)
            for i in range(20):
                pub.publish(f"sh/{i}", str(i).encode(), qos=1)
            n1.kill9()
            sub, node, (present, _, _) = self.connect_until_accepted(
                "sh-sub", [n2, n3], timeout=40.0, clean_start=False, session_expiry=600)
            self.assertEqual(present, 1, f"session present on {node.node_id}")
            wait_until(lambda: len(set(sub.msgs.payloads())) >= 20, 10.0, message="the 20 queued messages")
            for i in range(20, 25):
                pub.publish(f"sh/{i}", str(i).encode(), qos=1)
            wait_until(lambda: len(set(sub.msgs.payloads())) >= 25, 10.0, message="5 more through the group")
            self.assertEqual(sorted(set(int(p) for p in sub.msgs.payloads())), list(range(25)))

    def test_a_qos2_publish_awaiting_pubrel_is_not_delivered_again_after_failover(self):
        """A publisher's QoS 2 PUBLISH was delivered and PUBREC'd on n1, which
        dies before the PUBREL. The publisher resumes on another node and
        sends the PUBLISH again (DUP), then the PUBREL: the subscriber gets the
        message once, and the PUBCOMP says the packet id was known (the
        session's copy had it)."""
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            sub = self.client(n2, client_id="in2-sub")
            sub.subscribe("in2/#", qos=2)
            raw = RawClient(n1)
            raw.connect("in2-pub", clean=False, props=[(SESSION_EXPIRY, 600)])
            raw.send(publish_packet("in2/a", b"once", qos=2, packet_id=7))
            self.assertEqual(raw.expect(PUBREC).packet_id, 7)
            sub.msgs.wait_for(1, timeout=5)
            n1.kill9()
            raw.sock.close()
            deadline = time.monotonic() + 40
            while True:
                again, ack = None, None
                try:
                    again = RawClient([n2, n3][int(time.monotonic()) % 2])
                    ack = again.connect("in2-pub", clean=False, expect_rc=None, props=[(SESSION_EXPIRY, 600)])
                except (AssertionError, OSError):
                    pass
                if ack is not None and ack.reason == 0:
                    break
                if again is not None:
                    again.sock.close()
                self.assertLess(time.monotonic(), deadline, "publisher's session not resumed")
                time.sleep(0.5)
            self.assertEqual(ack.session_present, 1)
            again.send(publish_packet("in2/a", b"once", qos=2, packet_id=7, dup=True))
            self.assertEqual(again.expect(PUBREC).packet_id, 7)
            again.send(ack_packet(PUBREL, 7))
            comp = again.expect(PUBCOMP)
            again.sock.close()
            self.assertEqual(comp.reason, 0, "the packet id was known where the session resumed")
            time.sleep(1.0)
            self.assertEqual(sub.msgs.payloads(), [b"once"], "delivered once")

    def test_the_will_of_a_client_whose_node_died_goes_out(self):
        """Two clients with wills and persistent sessions connect to n1; one
        disconnects normally (no will), then n1 is killed (kill -9) with the
        other's connection open. Nobody saw that connection close: the node
        that adopts its session publishes its will, once; the other's will
        stays unpublished."""
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            watcher = self.client(n2, client_id="w-watch")
            watcher.subscribe("wills/#", qos=1)
            clients = {}
            for name in ("w-gone", "w-polite"):
                clients[name] = self.client(client_id=name)
                clients[name].will_set(f"wills/{name}", name.encode(), qos=1)
                self.connect(clients[name], n1, clean_start=False, session_expiry=600)
            copies = lambda: sum(metric(scrape(b.http_port), "starling_cluster_replicas") for b in (n2, n3))  # noqa: E731
            wait_until(lambda: copies() == 2, 10.0, message="both sessions copied")
            wait_metric(n1.http_port, "starling_cluster_replication_pending_updates", 0)
            applied = metric(scrape(n1.http_port), "starling_cluster_replication_updates_total", result="ok")
            clients["w-polite"].disconnect()
            self.forget(clients["w-polite"])
            # Nobody waits for the copy to hear that the will is gone: here,
            # until it has (the only update after the DISCONNECT).
            wait_until(lambda: metric(scrape(n1.http_port), "starling_cluster_replication_updates_total",
                                      result="ok") > applied, 10.0, message="the copy told of the DISCONNECT")
            wait_metric(n1.http_port, "starling_cluster_replication_pending_updates", 0)
            n1.kill9()
            adopted = lambda: sum(metric(scrape(b.http_port), "starling_cluster_sessions_adopted_total")  # noqa: E731
                                  for b in (n2, n3))
            wait_until(lambda: adopted() == 2, 40.0, message="both sessions adopted")
            watcher.msgs.wait_for(1, timeout=10)
            time.sleep(1.0)  # a second will would show by now
            self.assertEqual(watcher.msgs.payloads(), [b"w-gone"])

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
