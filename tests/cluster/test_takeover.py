#!/usr/bin/python3
"""Session takeover across nodes: a client id has one live connection in the
cluster, and a persistent session follows its client to whichever node it
connects to, with its subscriptions and queued messages.

Usage: test_takeover.py PATH_TO_STARLING
"""
import os
import signal
import socket
import threading
import time
import unittest

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import Cluster, ClusterTest, with_restartable_node
from harness import PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, RawClient, ack_packet, subscribe_packet

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

    def test_a_connect_waiting_for_a_silent_peer_holds_up_no_one_else(self):
        """A CONNECT waits for every live peer (at most 2 s) before it is
        answered; meanwhile the node's only worker thread serves its other
        clients. n2 is frozen with SIGSTOP, so it takes the TCP bytes but
        never answers."""
        with Cluster(2, "--threads", "1") as c:
            n1, n2 = c.nodes
            pub = self.client(n1, client_id="busy-pub")
            sub = self.client(n1, client_id="busy-sub")
            sub.subscribe("busy/#", qos=1)
            late = self.client(client_id="late")
            connected = []
            os.kill(n2.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                connecting = threading.Thread(target=lambda: connected.append(self.connect(late, n1)))
                connecting.start()
                time.sleep(0.3)  # the CONNECT is now waiting for n2
                t0 = time.monotonic()
                for i in range(20):
                    pub.publish(f"busy/{i}", b"x", qos=1)  # each waits for its PUBACK
                publishing = time.monotonic() - t0
                sub.msgs.wait_for(20)
                connecting.join(10)
                connect_took = time.monotonic() - started
            finally:
                os.kill(n2.pid, signal.SIGCONT)
            self.assertEqual(len(connected), 1, "the CONNECT was never answered")
            self.assertEqual(connected[0][1], 0)
            self.assertGreater(connect_took, 1.5, "the CONNECT did not wait for n2: this test shows nothing")
            # With the worker blocked for the CONNECT, these 20 round trips took
            # the rest of its 2 s; on loopback they take a few milliseconds.
            self.assertLess(publishing, 1.0, f"20 QoS 1 publishes took {publishing:.2f} s during the CONNECT")
            samples = scrape(n1.http_port)
            self.assertEqual(metric(samples, "starling_cluster_takeovers_total", result="failed"), 1)

    def test_a_client_gone_while_its_connect_waits_keeps_its_session(self):
        """The client closes its socket while its CONNECT waits for a silent
        peer (n2, frozen): the session n1 handed over meanwhile is kept on n3,
        with its queued messages, as if the client had connected and left."""
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            x = self.client(client_id="leaver", version=4, clean_session=False)
            self.connect(x, n1, clean_start=False)
            x.subscribe("lv/#", qos=1)
            x.disconnect()
            pub = self.client(n1, client_id="lv-pub")
            for i in range(5):
                pub.publish(f"lv/{i}", str(i).encode(), qos=1)
            os.kill(n2.pid, signal.SIGSTOP)
            try:
                with socket.create_connection(("127.0.0.1", n3.port)) as s:
                    s.sendall(connect_packet(version=4, client_id="leaver", clean=False))
                    # n1 hands the session over at once; n3 waits for n2.
                    wait_until(lambda: "leaver" not in {x["client_id"] for x in http_json(
                        n1.http_port, "GET", "/api/v1/clients")[1]["data"]}, 5.0, message="n1 to hand over")
                # Gone before its CONNACK. n3's wait for n2 ends within 2 s.
                time.sleep(2.5)
            finally:
                os.kill(n2.pid, signal.SIGCONT)
            x2 = self.client(client_id="leaver", version=4, clean_session=False)
            present, rc, _ = self.connect(x2, n3, clean_start=False)
            self.assertEqual((present, rc), (1, 0), "the session handed over while its client was gone is lost")
            x2.msgs.wait_for(5)
            self.assertEqual([int(p) for p in x2.msgs.payloads()], list(range(5)))

    def test_qos2_deliveries_in_flight_keep_their_packet_ids(self):
        """A QoS 2 message the client PUBREC'd (its PUBREL sent, PUBCOMP not
        yet) and one it has not answered move with the session under the
        packet ids the client holds: the first comes back as its PUBREL, the
        second as a DUP PUBLISH; neither is delivered as new."""
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            pub = self.client(n2, client_id="q2-pub")
            x = RawClient(n1, version=4)
            try:
                x.connect("q2-mover", clean=False)
                x.send(subscribe_packet(1, [("q2/#", 2)], version=4))
                x.expect(SUBACK)
                pub.publish("q2/a", b"a", qos=2)
                first = x.expect(PUBLISH)
                x.send(ack_packet(PUBREC, first.packet_id, version=4))
                self.assertEqual(x.expect(PUBREL).packet_id, first.packet_id)
                pub.publish("q2/b", b"b", qos=2)
                second = x.expect(PUBLISH)  # not answered
                self.assertNotEqual(first.packet_id, second.packet_id)
            finally:
                x.close()
            y = RawClient(n3, version=4)
            try:
                self.assertEqual(y.connect("q2-mover", clean=False).session_present, 1)
                got = sorted((p.type, p.packet_id, p.dup if p.type == PUBLISH else None,
                              p.payload if p.type == PUBLISH else None) for p in (y.read(), y.read()))
                self.assertEqual(got, sorted([(PUBLISH, second.packet_id, True, b"b"),
                                              (PUBREL, first.packet_id, None, None)]))
                y.send(ack_packet(PUBCOMP, first.packet_id, version=4))
                y.send(ack_packet(PUBREC, second.packet_id, version=4))
                self.assertEqual(y.expect(PUBREL).packet_id, second.packet_id)
                y.send(ack_packet(PUBCOMP, second.packet_id, version=4))
                with self.assertRaises(TimeoutError, msg="something more was sent"):
                    y.read(timeout=0.5)
            finally:
                y.close()

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

    def test_two_clients_fighting_over_one_id_leave_one_owner(self):
        rounds = 25
        with Cluster(3) as c:
            n1, n2, n3 = c.nodes
            results = {n1.node_id: [], n2.node_id: []}

            def fight(node):
                for _ in range(rounds):
                    x = MqttClient("contested")
                    try:
                        x.connect(node, clean_start=False, session_expiry=60, expect_rc=None)
                        results[node.node_id].append(x.connack[1])
                    except AssertionError:
                        results[node.node_id].append("closed")
                    finally:
                        x.close()
            threads = [threading.Thread(target=fight, args=(b,)) for b in (n1, n2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            # Every CONNECT was answered: accepted, or refused as busy (0x89)
            # when a newer one elsewhere won.
            for node_id, codes in results.items():
                self.assertEqual(len(codes), rounds, node_id)
                self.assertTrue(set(codes) <= {0, 0x89, "closed"}, (node_id, codes))
            # At most one node holds the session, and a last CONNECT on n3
            # leaves it on n3 alone.
            def holders():
                return [b.node_id for b in c.nodes
                        if http_json(b.http_port, "GET", "/api/v1/clients/contested")[0] == 200]
            self.assertLessEqual(len(holders()), 1, holders())
            last = self.client(client_id="contested")
            present, rc, _ = self.connect(last, n3, clean_start=False, session_expiry=60)
            self.assertEqual(rc, 0)
            self.assertEqual(holders(), ["n3"])
            print(f"\n  fighting: {results}", flush=True)

    def test_simultaneous_connects_on_two_nodes_leave_one_connection(self):
        # Both CONNECTs written at the same moment, 100 times: each time, one
        # of the two connections is alive afterwards, never both.
        rounds = 100
        with Cluster(2) as c:
            n1, n2 = c.nodes
            both = 0
            for i in range(rounds):
                socks = [socket.create_connection((b.host, b.port), timeout=5) for b in (n1, n2)]
                packet = connect_packet(version=4, client_id="twin", clean=True)
                for s in socks:
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                barrier = threading.Barrier(2)

                def send(sock):
                    barrier.wait()
                    sock.sendall(packet)
                threads = [threading.Thread(target=send, args=(s,)) for s in socks]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                alive = 0
                for s in socks:
                    try:
                        p = read_packet(s, timeout=5, version=4)   # CONNACK, or the end
                        accepted = p is not None and p.body[1] == 0
                        # Still open a moment later (not taken over by the other)?
                        if accepted:
                            s.settimeout(0.3)
                            try:
                                alive += 1 if s.recv(1) != b"" else 0
                            except socket.timeout:
                                alive += 1
                    except OSError:
                        pass
                both += alive > 1
                for s in socks:
                    s.close()
            print(f"\n  simultaneous connects: both alive in {both} of {rounds}", flush=True)
            self.assertEqual(both, 0)

    def test_a_node_back_with_an_old_copy_gives_way_to_the_clients_session(self):
        """n3 is down while its client moves on to n2 and subscribes anew; n3
        comes back with the old session from its disk. The client connecting
        through n3 gets the session it had on n2 (with the message queued
        there), not the old copy: n3 took the handed one over its own
        (the copy whose last CONNECT is newer wins). Before, n3 kept its old
        copy and the message queued on n2 was lost. And before it reports
        ready, n3 asks the others which of the sessions it read from disk
        moved on, and drops those: the old subscription matches nothing.
        Without copies of sessions (--replication-factor 1), so that n3's
        death leaves the client a new session (test_failover.py has it with
        copies)."""
        with with_restartable_node("--replication-factor", "1") as (c, n3, kept):
            n1, n2 = c.nodes
            persistent = dict(clean_start=False, session_expiry=300)
            x = self.client(client_id="mover")
            self.connect(x, n3, **persistent)
            x.subscribe("old/#", qos=1)
            self.forget(x)
            n3.kill9()
            c.wait_state([n1, n2], "n3", "dead", 20.0)
            x = self.client(client_id="mover")
            self.assertEqual(self.connect(x, n2, **persistent)[0], 0, "n3 is down: a new session")
            x.subscribe("new/#", qos=1)
            self.forget(x)
            back = c.start_node("n3", data_dir=kept)
            c.wait_converged([n1, n2, back], timeout=20.0)
            self.assertIn("1 of 1 offline sessions here had moved on", back.read_log())
            pub = self.client(n1)
            before = metric(scrape(n1.http_port), "starling_messages_dropped_total", reason="no_subscribers") or 0
            pub.publish("old/0", b"to nobody", qos=1)
            self.assertEqual(metric(scrape(n1.http_port), "starling_messages_dropped_total", reason="no_subscribers"),
                             before + 1, "n3's old copy still subscribed")
            pub.publish("new/1", b"current", qos=1)
            x = self.client(client_id="mover")
            self.assertEqual(self.connect(x, back, **persistent)[0], 1, "session present")
            x.msgs.wait_for(1)
            pub.publish("old/1", b"stale", qos=1)
            pub.publish("new/2", b"after", qos=1)
            x.msgs.wait_for(2)
            time.sleep(0.3)
            self.assertEqual(sorted(x.msgs.payloads()), [b"after", b"current"],
                             "the client got the old copy of its session")


if __name__ == "__main__":
    main()
