#!/usr/bin/python3
"""A real Prometheus server (Debian's /usr/bin/prometheus) scrapes the node's
/metrics, and its query API shows what the clients did.

Usage: test_prometheus.py PATH_TO_STARLING
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from harness import *  # noqa: F401,F403

PROMETHEUS = "/usr/bin/prometheus"
START_TIMEOUT = 30.0       # until /-/ready says 200
QUERY_DEADLINE = 30.0      # until the queries show the expected values


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """One Prometheus process on a free loopback port, scraping one target every
    second; its temporary directory (configuration and TSDB) goes with it."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.tmp = None
        self.proc = None
        self.port = None
        self._log_file = None
        self._log_path = None

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="starling-prometheus-")
        try:
            config = os.path.join(self.tmp, "prometheus.yml")
            with open(config, "w") as f:
                f.write("global:\n"
                        "  scrape_interval: 1s\n"
                        "  scrape_timeout: 1s\n"
                        "  evaluation_interval: 1s\n"
                        "scrape_configs:\n"
                        "  - job_name: starling\n"
                        "    static_configs:\n"
                        f"      - targets: ['127.0.0.1:{self.target_port}']\n")
            self._log_path = os.path.join(self.tmp, "prometheus.log")
            # A free port found by binding can be taken again before Prometheus
            # binds it: a few tries.
            for attempt in range(3):
                self.port = free_port()
                self._log_file = open(self._log_path, "wb")
                self.proc = subprocess.Popen(
                    [PROMETHEUS, f"--config.file={config}",
                     f"--storage.tsdb.path={os.path.join(self.tmp, 'tsdb')}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=info"],
                    stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
                    cwd=self.tmp, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
                if self._wait_ready():
                    return self
                status = self.proc.poll()
                in_use = "address already in use" in self.log()
                self._stop_process()
                if not in_use:
                    break
            how = (f"exited with status {status}" if status is not None
                   else f"was not ready within {START_TIMEOUT}s")
            raise AssertionError(f"Prometheus {how}; its log:\n{self.log()[-6000:]}")
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                status, _, _ = http_request(self.port, "GET", "/-/ready", timeout=2)
                if status == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def log(self):
        try:
            with open(self._log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def query(self, expr):
        """Instant query: the result vector ([{"metric": {...}, "value": [t, "v"]}])."""
        path = "/api/v1/query?query=" + urllib.parse.quote(expr, safe="")
        status, _, body = http_request(self.port, "GET", path, timeout=5)
        if status != 200:
            raise AssertionError(f"query {expr!r}: {status} {body[:500]!r}")
        answer = json.loads(body)
        if answer.get("status") != "success" or answer["data"]["resultType"] != "vector":
            raise AssertionError(f"query {expr!r}: {answer}")
        return answer["data"]["result"]

    def value(self, expr):
        """The single value of a query, as a float; None while there is none."""
        result = self.query(expr)
        if len(result) != 1:
            return None
        return float(result[0]["value"][1])

    def _stop_process(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()            # this process only, by its PID
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self):
        self._stop_process()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


@unittest.skipUnless(os.path.exists(PROMETHEUS), "Prometheus is not installed")
class PrometheusScrape(BrokerTest):
    http = True

    def start_prometheus(self):
        prom = Prometheus(self.broker.http_port)
        prom.start()
        self.addCleanup(prom.stop)
        return prom

    def wait_values(self, prom, expected):
        """Polls the queries in expected ({expr: value}) until each gives its value."""
        seen = {}

        def check():
            for expr, want in expected.items():
                seen[expr] = prom.value(expr)
            return all(seen[e] == w for e, w in expected.items())
        try:
            wait_until(check, QUERY_DEADLINE, interval=0.5, message="Prometheus values")
        except AssertionError:
            raise AssertionError(f"within {QUERY_DEADLINE}s Prometheus showed {seen}, "
                                 f"expected {expected}; its log:\n{prom.log()[-3000:]}") from None

    def test_prometheus_scrapes_the_node(self):
        k, m = 7, 40
        prom = self.start_prometheus()
        clients = [self.connected(f"prom-{i}") for i in range(k)]
        sub = clients[1]
        sub.subscribe("prom/#", 1)
        pub = clients[0]
        for i in range(m):
            pub.publish(f"prom/{i}", f"message {i}".encode(), qos=1)
        sub.msgs.wait_for(m, timeout=10)
        self.wait_values(prom, {
            'up{job="starling"}': 1,
            "sum(starling_connections)": k,
            'starling_connections{job="starling",listener="mqtt"}': k,
            "starling_clients_connected": k,
            'sum(starling_messages_received_total{qos="1"})': m,
            'sum(starling_messages_sent_total{qos="1"})': m,
            "starling_subscriptions": 1,
        })
        info = prom.query("starling_build_info")
        self.assertEqual(len(info), 1, info)
        labels = info[0]["metric"]
        self.assertEqual((labels.get("node_id"), labels.get("job"), labels.get("instance")),
                         ("t1", "starling", f"127.0.0.1:{self.broker.http_port}"))
        self.assertEqual(info[0]["value"][1], "1")

        # The gauges follow the clients as they go.
        for c in clients[3:]:
            c.disconnect()
        self.wait_values(prom, {"sum(starling_connections)": 3,
                                'starling_disconnects_total{reason="normal_disconnection"}':
                                    k - 3})


if __name__ == "__main__":
    main()
