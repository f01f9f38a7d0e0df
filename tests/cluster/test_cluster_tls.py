#!/usr/bin/python3
"""Mutual TLS between nodes (--cluster-tls-cert/-key/-ca): nodes with
certificates from the cluster CA form a cluster and forward messages; a node
with a certificate from another CA, a node without TLS, and gRPC clients
without a (good) client certificate are kept out while the cluster goes on;
the flags given partly, without --cluster-listen, or naming a missing file
stop starling at start.

Certificates are made here with the openssl command (EC P-256), in a
temporary directory removed at the end.

Usage: test_cluster_tls.py PATH_TO_STARLING
"""
import os
import re
import shutil
import subprocess
import tempfile
import time
from unittest import mock

import grpc

from cluster_harness import *  # noqa: F401,F403
from cluster_harness import SECRET, Cluster, ClusterTest
import harness

OPENSSL = "/usr/bin/openssl"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
# Peers dial 127.0.0.1: the node certificate must name it (and localhost).
NODE_EXT = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
REFUSED_FOR = 4.0  # seconds an outsider is watched not getting in

# gRPC 1.51 itself prints each refused handshake ("E1126 ... ssl_transport_security.cc:1501]
# Handshake failed with fatal error SSL_ERROR_SSL: ..."), which the harness's
# log check (BAD_LOG matches "ERROR") would count as the node failing. Where a
# test makes handshakes fail on purpose, those lines, and only those, are let through.
HANDSHAKE = re.compile(r"ssl_transport_security|[Hh]andshake failed|SSL_ERROR_SSL")
FATAL = re.compile(r"\[critical\]|Sanitizer|runtime error:")


class _HandshakeTolerant:
    strict = harness.BAD_LOG

    def search(self, line):
        if HANDSHAKE.search(line) and not FATAL.search(line):
            return None
        return self.strict.search(line)


def handshakes_may_fail():
    return mock.patch.object(harness, "BAD_LOG", _HandshakeTolerant())


class ClusterTls(ClusterTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="starling-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, ignore_errors=True)
        ext = cls.path("node.ext")
        with open(ext, "w") as f:
            f.write(NODE_EXT)
        for serial, (ca, node) in enumerate((("ca", "node"), ("rogue-ca", "rogue")), start=1):
            cls.openssl("req", "-x509", *EC, "-keyout", cls.path(f"{ca}.key"), "-out", cls.path(f"{ca}.pem"),
                        "-days", "2", "-subj", f"/CN=starling test {ca}",
                        "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
            cls.openssl("req", "-new", *EC, "-keyout", cls.path(f"{node}.key"), "-out", cls.path(f"{node}.csr"),
                        "-subj", f"/CN=starling {node}")
            cls.openssl("x509", "-req", "-in", cls.path(f"{node}.csr"), "-CA", cls.path(f"{ca}.pem"),
                        "-CAkey", cls.path(f"{ca}.key"), "-set_serial", str(serial), "-days", "2",
                        "-extfile", ext, "-out", cls.path(f"{node}.pem"))
        cls.tls = cls.flags("node", "ca")
        cls.rogue_tls = cls.flags("rogue", "rogue-ca")

    @classmethod
    def path(cls, name):
        return os.path.join(cls.dir, name)

    @classmethod
    def flags(cls, node, ca):
        return ["--cluster-tls-cert", cls.path(f"{node}.pem"), "--cluster-tls-key", cls.path(f"{node}.key"),
                "--cluster-tls-ca", cls.path(f"{ca}.pem")]

    @staticmethod
    def openssl(*args):
        done = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise AssertionError(f"openssl {' '.join(args[:2])}: {done.stderr}")

    def read(self, name):
        with open(self.path(name), "rb") as f:
            return f.read()

    def ping(self, node, credentials):
        """Membership/Ping (an empty PingRequest) on node's cluster port:
        (status code, reply bytes or None)."""
        target = f"127.0.0.1:{node.cluster_port}"
        channel = grpc.insecure_channel(target) if credentials is None else grpc.secure_channel(target, credentials)
        with channel:
            call = channel.unary_unary("/starling.cluster.v1.Membership/Ping",
                                       request_serializer=bytes, response_deserializer=bytes)
            try:
                return grpc.StatusCode.OK, call(b"", metadata=(("x-starling-secret", SECRET),), timeout=5.0)
            except grpc.RpcError as e:
                return e.code(), None

    def assert_cluster_works(self, c):
        """Every node lists exactly the others, alive; a message crosses from the first node to the last."""
        ids = {b.node_id for b in c.nodes}
        for b in c.nodes:
            self.assertEqual({i: m["state"] for i, m in c.members(b).items()}, {i: "alive" for i in ids}, b.node_id)
        first, last = c.nodes[0], c.nodes[-1]
        topic = f"tls/{time.monotonic_ns()}"
        sub = self.client(last)
        sub.subscribe(topic, qos=1)   # the SUBACK waits for the route to reach every node
        self.client(first).publish(topic, b"across", qos=1)
        sub.msgs.wait_for(1)
        self.assertEqual(sub.msgs.payloads(), [b"across"])

    # -- 1
    def test_nodes_with_certificates_from_the_cluster_ca_form_a_cluster(self):
        with Cluster(3, *self.tls) as c:
            for b in c.nodes:
                members = c.members(b)
                self.assertEqual(set(members), {"n1", "n2", "n3"}, b.node_id)
                for other in c.nodes:
                    self.assertEqual(members[other.node_id]["address"], f"127.0.0.1:{other.cluster_port}")
                self.assertEqual(metric(scrape(b.http_port), "starling_cluster_members", state="alive"), 3)
            self.assert_cluster_works(c)
            # Node to node (acknowledged by n3), so over TLS.
            wait_until(lambda: (metric(scrape(c.nodes[0].http_port), "starling_cluster_forwards_sent_total",
                                       peer="n3") or 0) >= 1, 5.0, message="n1 to have forwarded to n3")

    # -- 2
    def test_a_node_from_another_ca_or_without_tls_is_not_admitted(self):
        with handshakes_may_fail(), Cluster(3, *self.tls) as c:
            n1 = c.nodes[0]
            # Both with the right secret: only TLS keeps them out. The handshake
            # fails before the secret is read, so refused-call counts say nothing here.
            rogue = c.start_node("rogue", *self.rogue_tls, common=False)
            plain = c.start_node("plain", common=False)
            deadline = time.monotonic() + REFUSED_FOR
            while time.monotonic() < deadline:
                members = c.members(n1)
                self.assertEqual(set(members), {"n1", "n2", "n3"}, "n1 admitted an outsider")
                time.sleep(0.2)
            for outsider in (rogue, plain):
                self.assertTrue(outsider.alive(), f"{outsider.node_id} exited")
                self.assertEqual(set(c.members(outsider)), {outsider.node_id})
            self.assertEqual(metric(scrape(n1.http_port), "starling_cluster_members", state="alive"), 3)
            self.assert_cluster_works(c)
            # A node with a good certificate is still welcome.
            n4 = c.start_node("n4")
            c.wait_converged(c.nodes + [n4])

    # -- 3
    def test_a_client_without_a_good_certificate_cannot_call_a_node(self):
        with handshakes_may_fail(), Cluster(2, *self.tls) as c:
            n1 = c.nodes[0]
            ca, rogue = self.read("ca.pem"), (self.read("rogue.key"), self.read("rogue.pem"))
            for what, credentials in (("plain gRPC", None),
                                      ("TLS, no client certificate", grpc.ssl_channel_credentials(ca)),
                                      ("TLS, certificate from another CA", grpc.ssl_channel_credentials(ca, *rogue))):
                code, _ = self.ping(n1, credentials)   # UNAVAILABLE expected; any error will do
                self.assertNotEqual(code, grpc.StatusCode.OK, what)
            self.assertTrue(n1.alive())
            # The same call with the cluster's certificate is answered, by n1.
            good = grpc.ssl_channel_credentials(ca, self.read("node.key"), self.read("node.pem"))
            code, reply = self.ping(n1, good)
            self.assertEqual(code, grpc.StatusCode.OK)
            self.assertTrue(reply.startswith(b"\x0a\x02n1"), reply)   # PingReply.node_id
            self.assert_cluster_works(c)

    # -- 4
    def run_starling(self, *args):
        # A clean environment, so no STARLING_* variable of the caller counts (as in cli_test.py).
        data = self.path(f"data-{time.monotonic_ns()}")
        return subprocess.run([harness.STARLING, "--node-id", "bad", "--mqtt-listen", "127.0.0.1:0",
                               "--http-listen", "off", "--data-dir", data, *args],
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd=self.dir,
                              capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)

    def test_incomplete_tls_settings_stop_starling_at_start(self):
        listen = ["--cluster-listen", "127.0.0.1:0"]
        cases = {
            "cert only": (listen + self.tls[:2], ["--cluster-tls-cert", "--cluster-tls-key", "--cluster-tls-ca"]),
            "no --cluster-listen": (self.tls, ["--cluster-tls", "--cluster-listen"]),
            "missing key file": (listen + self.tls[:3] + [self.path("no-such.key")] + self.tls[4:],
                                 ["--cluster-tls-key", "no-such.key"]),
        }
        for what, (args, named) in cases.items():
            with self.subTest(what):
                result = self.run_starling(*args)
                self.assertGreater(result.returncode, 0, result.stderr)   # an error, not a signal
                for text in named:
                    self.assertIn(text, result.stderr)
                self.assertNotIn("listener cluster bound", result.stderr)


if __name__ == "__main__":
    main()
