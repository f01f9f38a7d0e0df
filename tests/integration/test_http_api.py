#!/usr/bin/python3
"""The HTTP listener: /metrics, /healthz, /readyz and the admin API under
/api/v1/ (node, clients, subscriptions, retained messages, cluster members,
disconnecting a client), its bearer token, and the log and version output that
go with it.

Usage: test_http_api.py PATH_TO_STARLING
"""
import base64
import json
import os
import re
import resource
import subprocess
import tempfile
import time
import unittest
from urllib.parse import quote

from harness import *  # noqa: F401,F403
import harness

TOKEN = "s3cret-token"
JSON_TYPE = "application/json"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROMTOOL = "/usr/bin/promtool"


# --------------------------------------------------------------------------- helpers

def raw_connected(test, client_id, version=5, keepalive=60, broker=None):
    r = test.raw(version=version, broker=broker)
    r.connect(client_id, keepalive=keepalive)
    return r


def local_port(client):
    """The local TCP port of a harness MqttClient."""
    sock = client.c.socket()
    sock = getattr(sock, "_socket", sock)
    return sock.getsockname()[1]


class HttpBrokerTest(BrokerTest):
    """A node with the HTTP listener and an admin token."""
    http = True
    broker_args = ("--http-token", TOKEN)

    @property
    def hp(self):
        return self.broker.http_port

    def api(self, path, method="GET", status=200, token=TOKEN):
        """JSON answer of the admin API; asserts the status."""
        code, value = http_json(self.hp, method, path, token=token)
        self.assertEqual(code, status, f"{method} {path}: {value}")
        return value

    def pages(self, path, limit):
        """Every page of a paged list: [page bodies]."""
        sep = "&" if "?" in path else "?"
        bodies = []
        after = None
        for _ in range(100):
            url = f"{path}{sep}limit={limit}"
            if after is not None:
                url += "&after=" + quote(after, safe="")
            body = self.api(url)
            bodies.append(body)
            after = body["next"]
            if after is None:
                return bodies
        raise AssertionError(f"{path}: more than 100 pages")


# --------------------------------------------------------------------------- plain endpoints

class HealthAndErrors(HttpBrokerTest):
    def test_healthz(self):
        status, headers, body = http_request(self.hp, "GET", "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-type"), JSON_TYPE)
        self.assertEqual(json.loads(body), {"status": "ok"})

    def test_readyz(self):
        status, headers, body = http_request(self.hp, "GET", "/readyz")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-type"), JSON_TYPE)
        self.assertEqual(json.loads(body), {"ready": True})

    def test_unknown_path_404(self):
        for path in ("/", "/nope", "/metrics/extra", "/api/v1/nope", "/api/v2/node",
                     "/api/v1/cluster"):
            code, value = http_json(self.hp, "GET", path, token=TOKEN)
            self.assertEqual(code, 404, path)
            self.assertIsInstance(value.get("error"), str, path)

    def test_wrong_method_405_with_allow(self):
        cases = [("POST", "/api/v1/node", {"GET"}),
                 ("PUT", "/api/v1/clients", {"GET"}),
                 ("DELETE", "/api/v1/retained", {"GET"}),
                 ("POST", "/api/v1/clients/someone", {"GET", "DELETE"}),
                 ("POST", "/metrics", {"GET"}),
                 ("DELETE", "/healthz", {"GET"})]
        for method, path, allowed in cases:
            status, headers, body = http_request(self.hp, method, path, token=TOKEN)
            self.assertEqual(status, 405, f"{method} {path}: {body!r}")
            self.assertIn("allow", headers, f"{method} {path}: no Allow header: {headers}")
            self.assertEqual({m.strip() for m in headers["allow"].split(",")}, allowed,
                             f"{method} {path}")

    def test_cluster_members(self):
        body = self.api("/api/v1/cluster/members")
        self.assertEqual(body["data"], [{"node_id": "t1", "state": "alive", "self": True,
                                         "address": None, "incarnation": 0}])
        self.assertEqual(body["total"], 1)
        self.assertIsNone(body["next"])


# --------------------------------------------------------------------------- token

class Token(HttpBrokerTest):
    def test_api_needs_the_token(self):
        for path in ("/api/v1/node", "/api/v1/clients", "/api/v1/cluster/members",
                     "/api/v1/retained", "/api/v1/clients/x"):
            for token in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
                status, headers, body = http_request(self.hp, "GET", path, token=token)
                self.assertEqual(status, 401, f"GET {path} token={token!r}: {body!r}")
                self.assertIn("www-authenticate", headers, f"GET {path} token={token!r}")
                self.assertTrue(headers["www-authenticate"].startswith("Bearer"),
                                headers["www-authenticate"])
            self.assertEqual(http_request(self.hp, "GET", path, token=TOKEN)[0],
                             404 if path.endswith("/x") else 200, path)

    def test_other_schemes_refused(self):
        for value in (f"Basic {TOKEN}", f"bearer{TOKEN}", TOKEN, f"Bearer  {TOKEN}"):
            status, _, body = http_request(self.hp, "GET", "/api/v1/node",
                                           headers={"Authorization": value})
            self.assertEqual(status, 401, f"Authorization: {value!r}: {body!r}")

    def test_unknown_api_path_needs_the_token_too(self):
        self.assertEqual(http_request(self.hp, "GET", "/api/v1/nope")[0], 401)

    def test_metrics_and_probes_open_without_token(self):
        for path in ("/metrics", "/healthz", "/readyz"):
            status, _, body = http_request(self.hp, "GET", path)
            self.assertEqual(status, 200, f"{path}: {body[:200]!r}")

    def test_wrong_token_cannot_disconnect(self):
        c = self.connected("victim")
        status, headers, _ = http_request(self.hp, "DELETE", "/api/v1/clients/victim",
                                          token="wrong")
        self.assertEqual(status, 401)
        c.publish("still/here", b"x", qos=1)     # round trip: still connected
        self.assertIsNone(c.disconnected)


class ReadOnly(BrokerTest):
    """No token configured: the API answers reads to anyone and refuses changes."""
    http = True

    def test_reads_open_delete_forbidden(self):
        hp = self.broker.http_port
        c = self.connected("stays")
        code, node = http_json(hp, "GET", "/api/v1/node")
        self.assertEqual(code, 200)
        self.assertEqual(node["node_id"], "t1")
        # A token given anyway changes nothing.
        self.assertEqual(http_json(hp, "GET", "/api/v1/node", token="anything")[0], 200)
        for token in (None, "anything"):
            code, value = http_json(hp, "DELETE", "/api/v1/clients/stays", token=token)
            self.assertEqual(code, 403, value)
            self.assertIn("read-only", value["error"])
        code, value = http_json(hp, "GET", "/api/v1/clients/stays")
        self.assertEqual((code, value["connected"]), (200, True))
        c.publish("still/here", b"x", qos=1)
        self.assertIsNone(c.disconnected)


class TokenFile(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="starling-token-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name

    def _file(self, text):
        path = os.path.join(self.dir, "token")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_first_line_is_the_token(self):
        path = self._file("from-file-token\nsecond line\n")
        with Broker("--http-token-file", path, http=True) as b:
            self.assertEqual(http_request(b.http_port, "GET", "/api/v1/node")[0], 401)
            self.assertEqual(http_request(b.http_port, "GET", "/api/v1/node",
                                          token="second line")[0], 401)
            self.assertEqual(http_request(b.http_port, "GET", "/api/v1/node",
                                          token="from-file-token")[0], 200)
            # The token from the file allows changes like --http-token does.
            r = RawClient(b, 5)
            self.addCleanup(r.close)
            r.connect("kick-me")
            code, value = http_json(b.http_port, "DELETE", "/api/v1/clients/kick-me",
                                    token="from-file-token")
            self.assertEqual((code, value), (200, {"client_id": "kick-me",
                                                   "disconnected": True}))
            self.assertEqual([(p.type, p.reason) for p in r.read_until_closed(5)],
                             [(harness.DISCONNECT, 0x98)])

    def test_token_and_token_file_together_exit_2(self):
        path = self._file("t\n")
        result = subprocess.run(
            [harness.STARLING, "--mqtt-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
             "--data-dir", os.path.join(self.dir, "data"), "--http-token", "x",
             "--http-token-file", path],
            capture_output=True, text=True, timeout=30, cwd=self.dir, stdin=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.assertEqual(result.returncode, 2, result.stderr)
        lines = result.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"stderr is not one line: {result.stderr!r}")
        self.assertIn("--http-token-file", lines[0])


# --------------------------------------------------------------------------- node

class Node(HttpBrokerTest):
    ws = True

    def test_node(self):
        before = time.time()
        clients = [self.connected(f"n{i}") for i in range(3)]
        r = self.raw()        # connected on the network, no CONNECT yet
        wait_until(lambda: self.api("/api/v1/node")["connections"] == 4, 5,
                   message="4 connections in /api/v1/node")
        node = self.api("/api/v1/node")
        self.assertEqual(node["node_id"], "t1")
        self.assertEqual(node["version"], harness_version())
        self.assertEqual(node["data_dir"], os.path.join(self.broker.tmp, "data"))
        self.assertEqual(node["connections"], 4)
        self.assertEqual(node["clients_connected"], 3)
        self.assertEqual(node["sessions"], 3)
        self.assertIs(node["draining"], False)
        self.assertIsInstance(node["uptime_seconds"], int)
        self.assertGreaterEqual(node["uptime_seconds"], 0)
        self.assertLess(node["uptime_seconds"], 60)
        self.assertIsInstance(node["started_at"], int)
        self.assertLessEqual(abs(node["started_at"] - before), 30)
        listeners = sorted((l["name"], l["address"], l["port"]) for l in node["listeners"])
        self.assertEqual(listeners, sorted([("mqtt", "127.0.0.1", self.broker.port),
                                            ("ws", "127.0.0.1", self.broker.ws_port),
                                            ("http", "127.0.0.1", self.hp)]))
        r.close()
        for c in clients:
            c.disconnect()
        wait_until(lambda: self.api("/api/v1/node")["connections"] == 0, 5,
                   message="0 connections after the clients left")
        node = self.api("/api/v1/node")
        self.assertEqual((node["clients_connected"], node["sessions"]), (0, 0))


def harness_version():
    out = subprocess.run([harness.STARLING, "--version"], capture_output=True, text=True,
                         timeout=10, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return out.stdout.split()[1]


# --------------------------------------------------------------------------- clients

class Clients(HttpBrokerTest):
    def test_paging_25_clients(self):
        for i in range(25):
            raw_connected(self, f"c{i:02d}")
        raw_connected(self, "other")
        bodies = self.pages("/api/v1/clients?prefix=c", 10)
        self.assertEqual([len(b["data"]) for b in bodies], [10, 10, 5])
        self.assertEqual([b["total"] for b in bodies], [25, 25, 25])
        self.assertIsNotNone(bodies[0]["next"])
        self.assertIsNotNone(bodies[1]["next"])
        ids = [c["client_id"] for b in bodies for c in b["data"]]
        self.assertEqual(ids, [f"c{i:02d}" for i in range(25)])
        # Without a prefix: everyone, "other" last.
        body = self.api("/api/v1/clients")
        self.assertEqual(body["total"], 26)
        self.assertIsNone(body["next"])
        self.assertEqual([c["client_id"] for c in body["data"]],
                         [f"c{i:02d}" for i in range(25)] + ["other"])
        # A narrower prefix.
        body = self.api("/api/v1/clients?prefix=c1")
        self.assertEqual(body["total"], 10)
        self.assertEqual([c["client_id"] for c in body["data"]], [f"c1{i}" for i in range(10)])
        self.assertEqual(self.api("/api/v1/clients?prefix=zzz"),
                         {"data": [], "total": 0, "next": None})
        # Exactly one page's worth: no next.
        body = self.api("/api/v1/clients?prefix=c1&limit=10")
        self.assertEqual((len(body["data"]), body["next"]), (10, None))
        # limit=1 walks one by one.
        bodies = self.pages("/api/v1/clients?prefix=c0", 1)
        self.assertEqual([c["client_id"] for b in bodies for c in b["data"]],
                         [f"c0{i}" for i in range(10)])

    def test_limit_bounds(self):
        raw_connected(self, "one")
        for bad in ("0", "1001", "-1", "abc", "", "10x", "1.5"):
            code, value = http_json(self.hp, "GET", f"/api/v1/clients?limit={bad}",
                                    token=TOKEN)
            self.assertEqual(code, 400, f"limit={bad!r}: {value}")
            self.assertIsInstance(value.get("error"), str)
        for good in ("1", "1000"):
            self.assertEqual(self.api(f"/api/v1/clients?limit={good}")["total"], 1)

    def test_summary_fields(self):
        v5 = self.v5("sum-v5")
        v5.connect(self.broker, session_expiry=300)
        v5.subscribe("a/#", 1)
        v5.subscribe("b/c", 0)
        self.connected("sum-clean")
        v3 = self.v3("sum-v3", clean_session=False)
        v3.connect(self.broker)
        body = self.api("/api/v1/clients?prefix=sum-")
        got = {c["client_id"]: c for c in body["data"]}
        self.assertEqual(got["sum-v5"], {"client_id": "sum-v5", "connected": True,
                                         "persistent": True, "expiry_interval": 300,
                                         "subscription_count": 2, "queued": 0,
                                         "inflight": 0})
        self.assertEqual(got["sum-clean"], {"client_id": "sum-clean", "connected": True,
                                            "persistent": False, "expiry_interval": 0,
                                            "subscription_count": 0, "queued": 0,
                                            "inflight": 0})
        # MQTT 3.1.1 clean session 0: the session never expires (null).
        self.assertEqual(got["sum-v3"], {"client_id": "sum-v3", "connected": True,
                                         "persistent": True, "expiry_interval": None,
                                         "subscription_count": 0, "queued": 0,
                                         "inflight": 0})

    def test_client_detail_online(self):
        c = self.v5("detail")
        c.connect(self.broker, keepalive=37, session_expiry=120)
        c.subscribe("a/+/c", 1, sub_id=7)
        c.subscribe("nl/x", options=SubscribeOptions(qos=2, noLocal=True,
                                                     retainAsPublished=True,
                                                     retainHandling=2))
        c.subscribe("$share/grp/s/#", 0)
        d = self.api("/api/v1/clients/detail")
        subs = sorted(d.pop("subscriptions"), key=lambda s: s["filter"])
        self.assertEqual(subs, [
            {"filter": "$share/grp/s/#", "qos": 0, "no_local": False,
             "retain_as_published": False, "retain_handling": 0, "subscription_id": None,
             "share_group": "grp"},
            {"filter": "a/+/c", "qos": 1, "no_local": False, "retain_as_published": False,
             "retain_handling": 0, "subscription_id": 7},
            {"filter": "nl/x", "qos": 2, "no_local": True, "retain_as_published": True,
             "retain_handling": 2, "subscription_id": None},
        ])
        self.assertEqual(d, {
            "client_id": "detail", "connected": True, "persistent": True,
            "expiry_interval": 120, "subscription_count": 3, "queued": 0, "inflight": 0,
            "inbound_qos2": 0, "will_pending": False,
            "connection": {"peer": f"127.0.0.1:{local_port(c)}", "listener": "mqtt",
                           "protocol": "5.0", "keep_alive": 37},
        })

    def test_client_detail_protocols(self):
        for version, name in ((4, "3.1.1"), (3, "3.1")):
            c = self._client(f"proto-{name}", version)
            c.connect(self.broker, keepalive=20)
            d = self.api(f"/api/v1/clients/proto-{name}")
            self.assertEqual(d["connection"], {"peer": f"127.0.0.1:{local_port(c)}",
                                               "listener": "mqtt", "protocol": name,
                                               "keep_alive": 20})

    def test_client_detail_offline_with_queue(self):
        c = self.v5("offline-q")
        c.connect(self.broker, session_expiry=3600)
        c.subscribe("q/#", 1)
        c.disconnect()
        pub = self.connected("q-pub")
        for i in range(3):
            pub.publish(f"q/{i}", b"payload", qos=1)
        wait_until(lambda: self.api("/api/v1/clients/offline-q")["queued"] == 3, 5,
                   message="3 queued messages")
        d = self.api("/api/v1/clients/offline-q")
        self.assertEqual(d["connected"], False)
        self.assertIsNone(d["connection"])
        self.assertEqual((d["queued"], d["inflight"], d["subscription_count"]), (3, 0, 1))
        self.assertIn("disconnected_seconds", d)
        self.assertIsInstance(d["disconnected_seconds"], int)
        self.assertGreaterEqual(d["disconnected_seconds"], 0)
        self.assertLess(d["disconnected_seconds"], 30)
        self.assertIs(d["will_pending"], False)
        # The summary says the same.
        s = self.api("/api/v1/clients?prefix=offline-q")["data"]
        self.assertEqual(s, [{"client_id": "offline-q", "connected": False,
                              "persistent": True, "expiry_interval": 3600,
                              "subscription_count": 1, "queued": 3, "inflight": 0}])

    def test_will_pending_while_will_delay_runs(self):
        c = self.v5("will-later")
        c.will_set("w/t", b"bye", qos=1, delay=30)
        c.connect(self.broker, session_expiry=60)
        self.assertIs(self.api("/api/v1/clients/will-later")["will_pending"], False)
        c.kill()
        wait_until(lambda: self.api("/api/v1/clients/will-later")["connected"] is False, 5,
                   message="session offline")
        self.assertIs(self.api("/api/v1/clients/will-later")["will_pending"], True)

    def test_inflight_and_inbound_qos2(self):
        # A raw subscriber that never acknowledges: the QoS 1 delivery stays in flight.
        sub = raw_connected(self, "slow")
        sub.send(subscribe_packet(1, [("i/#", 1)]))
        sub.expect(harness.SUBACK)
        pub = raw_connected(self, "half-qos2")
        pub.send(publish_packet("i/x", b"m", qos=1, packet_id=5))
        pub.expect(harness.PUBACK)
        sub.expect(harness.PUBLISH)
        pub.send(publish_packet("nothing/here", b"m", qos=2, packet_id=9))
        pub.expect(harness.PUBREC)       # no PUBREL sent: one inbound QoS 2 id held
        self.assertEqual(self.api("/api/v1/clients/slow")["inflight"], 1)
        self.assertEqual(self.api("/api/v1/clients/half-qos2")["inbound_qos2"], 1)

    def test_url_encoded_client_id(self):
        cid = "dev/1 ü?#%"
        raw_connected(self, cid)
        d = self.api("/api/v1/clients/" + quote(cid, safe=""))
        self.assertEqual(d["client_id"], cid)
        self.assertEqual([c["client_id"] for c in self.api(
            "/api/v1/clients?prefix=" + quote("dev/1 ", safe=""))["data"]], [cid])

    def test_unknown_client_404(self):
        code, value = http_json(self.hp, "GET", "/api/v1/clients/nobody", token=TOKEN)
        self.assertEqual(code, 404)
        self.assertIsInstance(value.get("error"), str)


class Disconnect(HttpBrokerTest):
    def test_delete_v5_client(self):
        # A raw client, to see the DISCONNECT packet itself.
        r = raw_connected(self, "kick5")
        value = self.api("/api/v1/clients/kick5", method="DELETE")
        self.assertEqual(value, {"client_id": "kick5", "disconnected": True})
        self.assertEqual([(p.type, p.reason) for p in r.read_until_closed(5)],
                         [(harness.DISCONNECT, 0x98)])
        wait_metric(self.hp, "starling_disconnects_total", 1, reason="administrative_action")
        wait_until(lambda: self.api("/api/v1/clients?prefix=kick5")["total"] == 0, 5,
                   message="clean session gone")
        code, value = http_json(self.hp, "DELETE", "/api/v1/clients/kick5", token=TOKEN)
        self.assertEqual(code, 404, value)

    def test_delete_v311_client(self):
        r = raw_connected(self, "kick311", version=4)
        self.assertEqual(self.api("/api/v1/clients/kick311", method="DELETE"),
                         {"client_id": "kick311", "disconnected": True})
        self.assertEqual(r.read_until_closed(5), [])   # no DISCONNECT in 3.1.1

    def test_delete_offline_or_unknown_404(self):
        c = self.v5("gone")
        c.connect(self.broker, session_expiry=600)
        c.disconnect()
        wait_until(lambda: self.api("/api/v1/clients/gone")["connected"] is False, 5,
                   message="offline session")
        for cid in ("gone", "never-was"):
            code, value = http_json(self.hp, "DELETE", f"/api/v1/clients/{cid}", token=TOKEN)
            self.assertEqual(code, 404, f"{cid}: {value}")
            self.assertIsInstance(value.get("error"), str)


# --------------------------------------------------------------------------- subscriptions

class Subscriptions(HttpBrokerTest):
    def test_matching_subscriptions(self):
        a = self.connected("s-a")
        a.subscribe("a/b", 1)
        a.subscribe("x/y", 0)
        b = self.connected("s-b")
        b.subscribe("a/+", 2, sub_id=3)
        b.subscribe("#", 0)
        g = self.connected("s-g")
        g.subscribe("$share/g1/a/#", 1)
        n = self.connected("s-n")
        n.subscribe("a/b/c", 1)
        body = self.api("/api/v1/subscriptions?topic=a/b")
        self.assertEqual(body["total"], 4)
        self.assertIsNone(body["next"])
        got = [(s["client_id"], s["filter"], s["qos"]) for s in body["data"]]
        self.assertEqual(sorted(got), sorted([("s-a", "a/b", 1), ("s-b", "#", 0),
                                              ("s-b", "a/+", 2), ("s-g", "$share/g1/a/#", 1)]))
        by = {(s["client_id"], s["filter"]): s for s in body["data"]}
        self.assertEqual(by[("s-g", "$share/g1/a/#")]["share_group"], "g1")
        self.assertNotIn("share_group", by[("s-a", "a/b")])
        self.assertEqual(by[("s-b", "a/+")]["subscription_id"], 3)
        self.assertIsNone(by[("s-a", "a/b")]["subscription_id"])
        self.assertEqual(self.api("/api/v1/subscriptions?topic=x/y")["total"], 2)
        self.assertEqual(self.api("/api/v1/subscriptions?topic=nothing")["total"], 1)  # "#"
        # Paged.
        bodies = self.pages("/api/v1/subscriptions?topic=a/b", 3)
        self.assertEqual([len(p["data"]) for p in bodies], [3, 1])
        self.assertEqual(sorted((s["client_id"], s["filter"]) for p in bodies
                                for s in p["data"]), sorted(by))
        # "$" topics do not match "#".
        self.assertEqual(self.api("/api/v1/subscriptions?topic=" + quote("$SYS/x", safe=""))
                         ["total"], 0)

    def test_bad_topic_400(self):
        for q in ("", "?topic=", "?topic=a/%2B", "?topic=a/%23", "?topic=%23", "?topic=%2B",
                  "?limit=5"):
            code, value = http_json(self.hp, "GET", "/api/v1/subscriptions" + q, token=TOKEN)
            self.assertEqual(code, 400, f"{q}: {value}")
            self.assertIsInstance(value.get("error"), str)


# --------------------------------------------------------------------------- retained

class Retained(HttpBrokerTest):
    def test_retained_listing(self):
        p = self.connected("r-pub")
        p.publish("r/b", b"hello", qos=1, retain=True)
        p.publish("r/a", b"\xff\x00\x01", qos=0, retain=True)
        p.publish("r/c", b"expires", qos=1, retain=True,
                  properties=publish_props(MessageExpiryInterval=100))
        p.publish("other/x", b"", qos=2, retain=True)     # empty: clears, stores nothing
        p.publish("other/y", b"y", qos=2, retain=True)
        wait_until(lambda: self.api("/api/v1/retained")["total"] == 4, 5,
                   message="4 retained messages")
        body = self.api("/api/v1/retained")
        self.assertIsNone(body["next"])
        self.assertEqual([m["topic"] for m in body["data"]], ["other/y", "r/a", "r/b", "r/c"])
        by = {m["topic"]: m for m in body["data"]}
        self.assertEqual(by["r/b"], {"topic": "r/b", "qos": 1, "payload": "hello",
                                     "payload_base64": base64.b64encode(b"hello").decode(),
                                     "payload_size": 5})
        self.assertEqual(by["r/a"], {"topic": "r/a", "qos": 0, "payload": None,
                                     "payload_base64": base64.b64encode(b"\xff\x00\x01").decode(),
                                     "payload_size": 3})
        self.assertEqual(by["other/y"]["qos"], 2)
        rc = by["r/c"]
        self.assertEqual((rc["payload"], rc["payload_size"]), ("expires", 7))
        self.assertIn("expiry_interval", rc)
        self.assertGreaterEqual(rc["expiry_interval"], 90)
        self.assertLessEqual(rc["expiry_interval"], 100)
        # filter
        body = self.api("/api/v1/retained?filter=" + quote("r/#", safe=""))
        self.assertEqual((body["total"], [m["topic"] for m in body["data"]]),
                         (3, ["r/a", "r/b", "r/c"]))
        body = self.api("/api/v1/retained?filter=" + quote("+/y", safe=""))
        self.assertEqual([m["topic"] for m in body["data"]], ["other/y"])
        self.assertEqual(self.api("/api/v1/retained?filter=r/b")["total"], 1)
        # paging
        bodies = self.pages("/api/v1/retained", 3)
        self.assertEqual([[m["topic"] for m in b["data"]] for b in bodies],
                         [["other/y", "r/a", "r/b"], ["r/c"]])
        self.assertEqual([b["total"] for b in bodies], [4, 4])

    def test_bad_filter_400(self):
        for f in ("a/#/b", "a+", "#/x", "$share/g/a"):
            code, value = http_json(self.hp, "GET", "/api/v1/retained?filter=" +
                                    quote(f, safe=""), token=TOKEN)
            self.assertEqual(code, 400, f"{f!r}: {value}")
            self.assertIsInstance(value.get("error"), str)
        code, value = http_json(self.hp, "GET", "/api/v1/retained?limit=0", token=TOKEN)
        self.assertEqual(code, 400, value)


# --------------------------------------------------------------------------- metrics

class Metrics(HttpBrokerTest):
    def test_content_type_and_fixed_samples(self):
        status, headers, body = http_request(self.hp, "GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("content-type"), METRICS_TYPE)
        m = parse_metrics(body.decode())
        self.assertEqual(metric(m, "starling_cluster_members", state="alive"), 1)
        self.assertEqual(metric(m, "starling_build_info", node_id="t1",
                                version=harness_version()), 1)
        for name in ("starling_connections", "starling_connections_accepted_total"):
            self.assertEqual(metric(m, name, listener="mqtt"), 0, name)
            self.assertEqual(metric(m, name, listener="ws"), 0, name)
        for name in ("starling_clients_connected", "starling_subscriptions",
                     "starling_shared_subscription_groups", "starling_retained_messages",
                     "starling_messages_queued", "starling_messages_inflight",
                     "starling_storage_write_failures_total",
                     "starling_network_bytes_received_total",
                     "starling_network_bytes_sent_total"):
            self.assertEqual(metric(m, name), 0, name)
        for q in ("0", "1", "2"):
            for name in ("starling_messages_received_total", "starling_messages_sent_total",
                         "starling_message_bytes_received_total",
                         "starling_message_bytes_sent_total"):
                self.assertEqual(metric(m, name, qos=q), 0, f"{name} qos {q}")
        for reason in ("queue_full", "expired", "too_large", "no_subscribers",
                       "slow_consumer", "offline"):
            self.assertEqual(metric(m, "starling_messages_dropped_total", reason=reason), 0,
                             reason)
        for state in ("connected", "offline"):
            self.assertEqual(metric(m, "starling_sessions", state=state), 0, state)
        self.assertEqual(metric(m, "starling_delivery_latency_seconds_count"), 0)
        self.assertEqual(metric(m, "starling_delivery_latency_seconds_bucket", le="+Inf"), 0)
        self.assertIsNotNone(metric(m, "starling_storage_commit_duration_seconds_count"))

    def test_process_metrics(self):
        m = scrape(self.hp)
        pid = self.broker.pid
        with open(f"/proc/{pid}/limits") as f:
            soft = next(int(line.split()[3]) for line in f if line.startswith("Max open files"))
        self.assertEqual(metric(m, "process_max_fds"), soft)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        # Not exact: the scrape's own connection, and the store opening and
        # closing files, come and go between the two counts.
        self.assertLessEqual(abs(metric(m, "process_open_fds") - fds), 5,
                             f"process_open_fds {metric(m, 'process_open_fds')}, /proc {fds}")
        with open(f"/proc/{pid}/statm") as f:
            vsize, rss = (int(x) * resource.getpagesize() for x in f.read().split()[:2])
        self.assertLess(abs(metric(m, "process_resident_memory_bytes") - rss), rss * 0.5)
        self.assertLess(abs(metric(m, "process_virtual_memory_bytes") - vsize), vsize * 0.5)
        start = metric(m, "process_start_time_seconds")
        self.assertLess(abs(start - time.time()), 30)
        cpu = metric(m, "process_cpu_seconds_total")
        self.assertGreaterEqual(cpu, 0)
        self.assertLess(cpu, 60)

    def test_connections_and_sessions(self):
        k = 5
        clients = [self.connected(f"m{i}") for i in range(k)]
        persistent = self.v5("m-persistent")
        persistent.connect(self.broker, session_expiry=600)
        m = scrape(self.hp)
        self.assertEqual(metric(m, "starling_connections", listener="mqtt"), k + 1)
        self.assertEqual(metric(m, "starling_connections_accepted_total", listener="mqtt"),
                         k + 1)
        self.assertEqual(metric(m, "starling_clients_connected"), k + 1)
        self.assertEqual(metric(m, "starling_connects_total", result="success"), k + 1)
        self.assertEqual(metric(m, "starling_sessions", state="connected"), k + 1)
        self.assertEqual(metric(m, "starling_sessions", state="offline"), 0)
        persistent.disconnect()
        for c in clients[:2]:
            c.disconnect()
        clients[2].kill()
        wait_metric(self.hp, "starling_connections", k - 3, listener="mqtt")
        m = scrape(self.hp)
        self.assertEqual(metric(m, "starling_clients_connected"), k - 3)
        self.assertEqual(metric(m, "starling_sessions", state="connected"), k - 3)
        self.assertEqual(metric(m, "starling_sessions", state="offline"), 1)
        self.assertEqual(metric(m, "starling_disconnects_total",
                                reason="normal_disconnection"), 3)
        self.assertEqual(metric(m, "starling_disconnects_total", reason="connection_lost"), 1)
        self.assertEqual(metric(m, "starling_connections_accepted_total", listener="mqtt"),
                         k + 1)

    def test_ws_listener_counted_apart(self):
        b = self.start_broker(ws=True, http=True)
        c = self._client("over-ws", 5, transport="websockets")
        c.connect(b)
        self.connected("over-tcp", broker=b)
        m = scrape(b.http_port)
        self.assertEqual(metric(m, "starling_connections", listener="ws"), 1)
        self.assertEqual(metric(m, "starling_connections", listener="mqtt"), 1)
        self.assertEqual(metric(m, "starling_connections_accepted_total", listener="ws"), 1)
        self.assertEqual(metric(m, "starling_clients_connected"), 2)

    def test_connect_results(self):
        r = self.raw(version=4)
        r.send(connect_packet(4, "", clean=False))     # 3.1.1: identifier rejected
        p = read_packet(r.sock, 5, 4)
        self.assertEqual((p.type, p.reason), (harness.CONNACK, 2))
        r = self.raw(version=5)
        r.send(connect_packet(6, "proto6"))            # unknown protocol level
        p = r.read()
        self.assertEqual(p.type, harness.CONNACK)
        raw_connected(self, "fine")
        wait_metric(self.hp, "starling_connects_total", 1, result="client_identifier_not_valid")
        m = scrape(self.hp)
        self.assertEqual(metric(m, "starling_connects_total",
                                result="unsupported_protocol_version"), 1)
        self.assertEqual(metric(m, "starling_connects_total", result="success"), 1)

    def test_message_counters(self):
        n = 20
        payload = b"0123456789abcdef"          # 16 bytes
        sub = self.connected("msub")
        sub.subscribe("m/#", 1)
        pub = self.connected("mpub")
        for i in range(n):
            pub.publish(f"m/{i}", payload, qos=1)
        for i in range(3):
            pub.publish("m/zero", b"abc", qos=0)
        pub.publish("m/two", b"12345", qos=2)
        sub.msgs.wait_for(n + 4, timeout=10)
        pub.publish("nobody/listens", b"lost", qos=0)
        pub.publish("nobody/listens", b"lost", qos=1)
        wait_metric(self.hp, "starling_messages_dropped_total", 2, reason="no_subscribers")
        m = scrape(self.hp)
        self.assertEqual(metric(m, "starling_messages_received_total", qos="1"), n + 1)
        self.assertEqual(metric(m, "starling_messages_received_total", qos="0"), 4)
        self.assertEqual(metric(m, "starling_messages_received_total", qos="2"), 1)
        self.assertEqual(metric(m, "starling_message_bytes_received_total", qos="1"),
                         n * len(payload) + 4)
        self.assertEqual(metric(m, "starling_message_bytes_received_total", qos="0"), 3 * 3 + 4)
        self.assertEqual(metric(m, "starling_message_bytes_received_total", qos="2"), 5)
        # The subscriber has QoS 1: the QoS 2 message goes out at 1.
        self.assertEqual(metric(m, "starling_messages_sent_total", qos="1"), n + 1)
        self.assertEqual(metric(m, "starling_messages_sent_total", qos="0"), 3)
        self.assertEqual(metric(m, "starling_messages_sent_total", qos="2"), 0)
        self.assertEqual(metric(m, "starling_message_bytes_sent_total", qos="1"),
                         n * len(payload) + 5)
        self.assertEqual(metric(m, "starling_message_bytes_sent_total", qos="0"), 9)
        self.assertEqual(metric(m, "starling_delivery_latency_seconds_count"), n + 4)
        self.assertEqual(metric(m, "starling_delivery_latency_seconds_bucket", le="+Inf"), n + 4)
        self.assertGreater(metric(m, "starling_delivery_latency_seconds_sum"), 0)
        self.assertEqual(metric(m, "starling_subscriptions"), 1)
        self.assertEqual(metric(m, "starling_messages_dropped_total", reason="offline"), 0)

    def test_network_bytes_exact(self):
        r = self.raw(version=4)
        connect = connect_packet(4, "bytes", keepalive=60)
        publish = publish_packet("t", b"hello", qos=1, packet_id=1, version=4)
        r.send(connect)
        r.expect(harness.CONNACK)           # 4 bytes
        r.send(publish)
        r.expect(harness.PUBACK)            # 4 bytes
        r.send(disconnect_packet(version=4))
        r.read_until_closed(5)
        wait_metric(self.hp, "starling_network_bytes_received_total",
                    len(connect) + len(publish) + 2)
        self.assertEqual(metric(scrape(self.hp), "starling_network_bytes_sent_total"), 8)

    def test_retained_queued_inflight_gauges(self):
        pub = self.connected("g-pub")
        pub.publish("keep/1", b"a", qos=1, retain=True)
        pub.publish("keep/2", b"b", qos=1, retain=True)
        wait_metric(self.hp, "starling_retained_messages", 2)
        # An offline persistent session collects 3 messages.
        off = self.v5("g-off")
        off.connect(self.broker, session_expiry=600)
        off.subscribe("q/#", 1)
        off.disconnect()
        # paho closes its socket without waiting for the broker: wait until the broker
        # has taken the session offline, or the first message goes out in flight.
        wait_metric(self.hp, "starling_clients_connected", 1)
        # QoS 0 for an offline session: dropped. First: the broker reads one
        # connection's packets in order, and only QoS 1 ones are acknowledged.
        pub.publish("q/zero", b"x", qos=0)
        for i in range(3):
            pub.publish(f"q/{i}", b"x", qos=1)
        wait_metric(self.hp, "starling_messages_queued", 3)
        m = scrape(self.hp)
        self.assertEqual(metric(m, "starling_messages_dropped_total", reason="offline"), 1)
        self.assertGreater(metric(m, "starling_storage_commit_duration_seconds_count"), 0)
        self.assertEqual(metric(m, "starling_storage_write_failures_total"), 0)
        # A raw subscriber that never acknowledges: one message in flight.
        sub = raw_connected(self, "g-slow")
        sub.send(subscribe_packet(1, [("f/#", 1)]))
        sub.expect(harness.SUBACK)
        pub.publish("f/1", b"x", qos=1)
        sub.expect(harness.PUBLISH)
        wait_metric(self.hp, "starling_messages_inflight", 1)
        # Shared groups.
        s1 = self.connected("g-s1")
        s1.subscribe("$share/grp/a/#", 1)
        s2 = self.connected("g-s2")
        s2.subscribe("$share/grp/a/#", 1)
        s2.subscribe("$share/other/a/#", 1)
        m = scrape(self.hp)
        self.assertEqual(metric(m, "starling_shared_subscription_groups"), 2)
        self.assertEqual(metric(m, "starling_subscriptions"), 2 + 3)

    def test_drop_reasons(self):
        # too_large: bigger than the Maximum Packet Size the subscriber asked for.
        small = self.v5("d-small")
        small.connect(self.broker, properties=connect_props(MaximumPacketSize=100))
        small.subscribe("big/#", 0)
        pub = self.connected("d-pub")
        pub.publish("big/x", b"x" * 500, qos=0)
        wait_metric(self.hp, "starling_messages_dropped_total", 1, reason="too_large")
        # expired: queued for an offline session longer than its expiry interval.
        off = self.v5("d-off")
        off.connect(self.broker, session_expiry=600)
        off.subscribe("exp/#", 1)
        off.disconnect()
        wait_offline(self.hp, "d-off", token=TOKEN)
        pub.publish("exp/x", b"short-lived", qos=1,
                    properties=publish_props(MessageExpiryInterval=1))
        pub.publish("exp/y", b"lasting", qos=1)
        time.sleep(2.1)       # the first message's lifetime passes
        again = self.v5("d-off")
        again.connect(self.broker, clean_start=False, session_expiry=600)
        self.assertEqual([m.payload for m in again.msgs.wait_for(1, timeout=5)], [b"lasting"])
        wait_metric(self.hp, "starling_messages_dropped_total", 1, reason="expired")
        self.assertEqual(metric(scrape(self.hp), "starling_messages_dropped_total",
                                reason="queue_full"), 0)

    def test_queue_full(self):
        b = self.start_broker("--max-queued", "2", http=True)
        off = self.v5("qf-off")
        off.connect(b, session_expiry=600)
        off.subscribe("qf/#", 1)
        off.disconnect()
        wait_offline(b.http_port, "qf-off")
        pub = raw_connected(self, "qf-pub", broker=b)
        reasons = []
        for i in range(3):
            pub.send(publish_packet("qf/x", b"m", qos=1, packet_id=i + 1))
            reasons.append(pub.expect(harness.PUBACK).reason)
        self.assertEqual(reasons[:2], [0, 0])
        self.assertNotEqual(reasons[2], 0, "third message acknowledged as accepted")
        wait_metric(b.http_port, "starling_messages_dropped_total", 1, reason="queue_full")
        self.assertEqual(metric(scrape(b.http_port), "starling_messages_queued"), 2)

    def test_retained_on_subscribe_not_in_latency(self):
        pub = self.connected("lat-pub")
        pub.publish("lat/r", b"kept", qos=1, retain=True)
        sub = self.connected("lat-sub")
        sub.subscribe("lat/#", 1)
        sub.msgs.wait_for(1, timeout=5)
        m = scrape(self.hp)
        self.assertEqual(metric(m, "starling_messages_sent_total", qos="1"), 1)
        self.assertEqual(metric(m, "starling_delivery_latency_seconds_count"), 0)
        pub.publish("lat/live", b"now", qos=1)
        sub.msgs.wait_for(2, timeout=5)
        wait_metric(self.hp, "starling_delivery_latency_seconds_count", 1)

    def test_disconnect_reasons(self):
        # keep_alive_timeout: a raw client with keep-alive 1 that stays silent.
        r = raw_connected(self, "silent", keepalive=1)
        p = r.read(timeout=5)
        self.assertIsNotNone(p, "closed without DISCONNECT")
        self.assertEqual((p.type, p.reason), (harness.DISCONNECT, 0x8D))
        # session_taken_over: the same client id connects again.
        first = raw_connected(self, "twin")
        raw_connected(self, "twin")
        self.assertEqual([(p.type, p.reason) for p in first.read_until_closed(5)],
                         [(harness.DISCONNECT, 0x8E)])
        # administrative_action
        raw_connected(self, "admin-kick")
        self.api("/api/v1/clients/admin-kick", method="DELETE")
        wait_metric(self.hp, "starling_disconnects_total", 1, reason="keep_alive_timeout")
        wait_metric(self.hp, "starling_disconnects_total", 1, reason="session_taken_over")
        wait_metric(self.hp, "starling_disconnects_total", 1, reason="administrative_action")
        m = scrape(self.hp)
        self.assertEqual(metric(m, "starling_disconnects_total", reason="normal_disconnection"), 0)
        self.assertEqual(metric(m, "starling_disconnects_total", reason="connection_lost"), 0)

    def test_promtool_check_metrics(self):
        if not os.path.exists(PROMTOOL):
            self.skipTest("promtool is not installed")
        # Traffic first, so every labelled family has samples.
        sub = self.connected("p-sub")
        sub.subscribe("p/#", 2)
        shared = self.connected("p-shared")
        shared.subscribe("$share/g/p/#", 1)
        pub = self.connected("p-pub")
        for q in (0, 1, 2):
            pub.publish(f"p/{q}", b"x" * 10, qos=q, retain=q == 1)
        sub.msgs.wait_for(3, timeout=5)
        shared.msgs.wait_for(3, timeout=5)
        pub.publish("nowhere", b"x", qos=1)
        self.connected("twin2")
        self.connected("twin2")
        status, _, body = http_request(self.hp, "GET", "/metrics")
        self.assertEqual(status, 200)
        result = subprocess.run([PROMTOOL, "check", "metrics"], input=body,
                                capture_output=True, timeout=30)
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, b""),
                         body.decode()[:3000])


# --------------------------------------------------------------------------- logs, version

class LogsAndVersion(unittest.TestCase):
    def test_version(self):
        result = subprocess.run([harness.STARLING, "--version"], capture_output=True, text=True,
                                timeout=10, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertRegex(result.stdout, r"^starling \d+\.\d+\.\d+\S*\n$")

    def test_banner(self):
        version = harness_version()
        with Broker(http=True) as b:
            hp = b.http_port
            data = os.path.join(b.tmp, "data")
            log = b.read_log()
        self.assertIn(f"starling {version}", log)
        self.assertIn(f"listener mqtt bound to 127.0.0.1:{b.port}", log)
        self.assertIn(f"listener http bound to 127.0.0.1:{hp}", log)
        self.assertIn(data, log)

    def test_json_log_format(self):
        with Broker("--log-format", "json", http=True) as b:
            self.assertEqual(http_request(b.http_port, "GET", "/healthz")[0], 200)
            c = MqttClient("json-log", version=5)
            try:
                c.connect(b)
                c.disconnect()
            finally:
                c.close()
        lines = b.log_text.splitlines()
        self.assertGreater(len(lines), 3)
        objects = []
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError:
                self.fail(f"stderr line is not JSON: {line!r}")
            self.assertIsInstance(obj, dict, line)
            self.assertTrue({"time", "level", "logger", "message"} <= set(obj), line)
            objects.append(obj)
        bound = [o for o in objects if "listener mqtt bound to" in o["message"]]
        self.assertEqual(len(bound), 1, lines)
        self.assertEqual(bound[0]["message"], f"listener mqtt bound to 127.0.0.1:{b.port}")
        self.assertEqual(bound[0]["level"], "info")
        self.assertTrue(any("listener http bound to" in o["message"] for o in objects))
        self.assertTrue(all(o["level"] in ("trace", "debug", "info", "warn", "warning")
                            for o in objects), [o["level"] for o in objects])


if __name__ == "__main__":
    main()
