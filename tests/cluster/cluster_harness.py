"""Several starling nodes on loopback forming one cluster, for the tests in
tests/cluster. Builds on tests/integration/harness.py (Broker, http_json,
scrape, ...).

    with Cluster(3) as c:
        c.nodes[0].port, c.nodes[1].http_port, c.members(c.nodes[2])
"""
import contextlib
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import *  # noqa: E402,F401,F403
import harness  # noqa: E402

SECRET = "cluster-test-secret"


class Cluster:
    """n nodes, node i named n1..nN; every node after the first joins the first.
    extra: more flags for every node."""

    def __init__(self, n, *extra, secret=SECRET):
        self.n = n
        self.extra = list(extra)
        self.secret = secret
        self.nodes = []
        self._stack = contextlib.ExitStack()

    def node_args(self, seed_port=None, secret=None, common=True):
        args = list(self.extra) if common else []
        secret = self.secret if secret is None else secret
        if secret:
            args += ["--cluster-secret", secret]
        if seed_port is not None:
            args += ["--join", f"127.0.0.1:{seed_port}"]
        return args

    def start_node(self, name, *extra, join=True, data_dir=None, secret=None, common=True):
        """One more node (joining the first unless join=False); stopped with the cluster.
        common=False: without the cluster's extra flags (a node set up unlike the others)."""
        seed = self.nodes[0].cluster_port if (join and self.nodes) else None
        b = harness.Broker(*self.node_args(seed, secret, common), *extra, http=True, cluster=True,
                           node_id=name, data_dir=data_dir)
        self._stack.enter_context(b)
        return b

    def restart_node(self, old, data_dir):
        """`old` (stopped or killed) again: the same id, ports and data
        directory, joining the other nodes; it takes old's place in nodes."""
        seeds = ",".join(f"127.0.0.1:{b.cluster_port}" for b in self.nodes if b is not old)
        new = self.start_node(old.node_id, "--mqtt-listen", f"127.0.0.1:{old.port}",
                              "--cluster-listen", f"127.0.0.1:{old.cluster_port}",
                              "--http-listen", f"127.0.0.1:{old.http_port}",
                              "--join", seeds, join=False, data_dir=data_dir)
        self.nodes[self.nodes.index(old)] = new
        return new

    def __enter__(self):
        try:
            for i in range(self.n):
                self.nodes.append(self.start_node(f"n{i + 1}"))
            self.wait_converged()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)

    # -- views
    @staticmethod
    def members(node):
        status, body = http_json(node.http_port, "GET", "/api/v1/cluster/members")
        if status != 200:
            raise AssertionError(f"members of {node.node_id}: {status} {body}")
        return {m["node_id"]: m for m in body["data"]}

    @classmethod
    def state_of(cls, node, member_id):
        m = cls.members(node).get(member_id)
        return m and m["state"]

    def wait_converged(self, nodes=None, timeout=15.0):
        """Every running node sees every running node alive and reports ready."""
        nodes = [b for b in (nodes or self.nodes) if b.alive()]
        ids = {b.node_id for b in nodes}

        def converged():
            for b in nodes:
                alive = {i for i, m in self.members(b).items() if m["state"] == "alive"}
                if not ids <= alive:
                    return False
                if http_json(b.http_port, "GET", "/readyz")[0] != 200:
                    return False
            return True
        wait_until(converged, timeout, interval=0.1, message=f"{sorted(ids)} to see each other")

    def wait_state(self, observers, member_id, state, timeout):
        """Seconds until every observer reports member_id in state."""
        start = time.monotonic()
        wait_until(lambda: all(self.state_of(o, member_id) == state for o in observers), timeout,
                   interval=0.05, message=f"{member_id} to be {state}")
        return time.monotonic() - start


# Expected while a node is down, and many: counted, not shown.
NOISE = re.compile(r"did not answer|refused for now|did not take \d+ replica update")
# Where sessions move: shown with the warnings.
MOVES = re.compile(r"adopted|taken over|resumed from the copy|copied again|is dead|is alive|follows the session")


def dump_logs(brokers):
    """The last warnings, errors and session moves of every node process the
    test started (a CI log keeps only so much); running or stopped."""
    for b in brokers:
        lines = (b.read_log() or b.log_text).splitlines()
        warnings = [l for l in lines if re.search(r"\[(warn|err|crit)", l)]
        noise = sum(1 for l in warnings if NOISE.search(l))
        notable = [l for l in lines if (re.search(r"\[(warn|err|crit)", l) and not NOISE.search(l))
                   or MOVES.search(l)]
        print(f"---- {b.node_id} (pid {b.pid}): {len(warnings)} warnings/errors ({noise} about a node "
              f"down), last 40 others and session moves ----", *notable[-40:], sep="\n", file=sys.stderr)


@contextlib.contextmanager
def with_restartable_node(*extra):
    """Cluster(2) and a third node, n3, on a data directory that outlives its
    process (kill it, then start_node("n3", data_dir=kept) again); yields
    (cluster, n3, kept), all converged. The directory goes at the end."""
    kept = tempfile.mkdtemp(prefix="starling-kept-")
    try:
        with Cluster(2, *extra) as c:
            n3 = c.start_node("n3", data_dir=kept)
            c.wait_converged(c.nodes + [n3])
            yield c, n3, kept
    finally:
        shutil.rmtree(kept, ignore_errors=True)


def free_port():
    """A loopback port free at the time of asking (HAProxy cannot bind port 0
    and say which it got)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HAProxy:
    """Debian's HAProxy in front of the nodes' MQTT ports, TCP, round robin,
    with health checks, as a user would put it:

        with HAProxy(cluster.nodes) as lb:
            client.connect(lb)   # lb.host, lb.port
    """

    BINARY = "/usr/sbin/haproxy"

    def __init__(self, nodes):
        self.nodes = list(nodes)
        self.host = "127.0.0.1"
        self.port = None
        self.proc = None
        self.tmp = None

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="starling-lb-")
        try:
            # The port was free when asked, and may be taken before HAProxy
            # binds it (another test's outgoing connection): then a new one.
            for _ in range(5):
                if self._start():
                    break
            else:
                raise AssertionError("haproxy found no free port in 5 attempts")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self):
        """Starts HAProxy on a free port and waits until it listens; False
        when the port was taken meanwhile (HAProxy exited)."""
        self.port = free_port()
        servers = "\n".join(f"  server {b.node_id} 127.0.0.1:{b.port} check inter 300ms fall 2 rise 1"
                            for b in self.nodes)
        config = os.path.join(self.tmp, "haproxy.cfg")
        with open(config, "w") as f:
            f.write(f"""global
  maxconn 2000
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
frontend mqtt
  bind 127.0.0.1:{self.port}
  default_backend nodes
backend nodes
  balance roundrobin
{servers}
""")
        self._log = open(os.path.join(self.tmp, "haproxy.log"), "wb")
        # -db: foreground, no daemon; only the process this object started is ended.
        self.proc = subprocess.Popen([self.BINARY, "-db", "-f", config], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)

        def listening():
            if self.proc.poll() is not None:
                return True
            with socket.socket() as s:
                return s.connect_ex((self.host, self.port)) == 0
        wait_until(listening, 10.0, interval=0.05, message="haproxy to listen")
        # What answered may be whoever took the port: HAProxy exits at once then.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=0.3)
        if self.proc.poll() is None:
            return True
        self._log.close()
        with open(self._log.name) as f:
            log = f.read()[-2000:]
        if "Address already in use" not in log:
            raise AssertionError("haproxy exited: " + log)
        return False

    def __exit__(self, *exc):
        end_process(self.proc)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return False


class ClusterTest(unittest.TestCase):
    """A test case whose paho clients are closed when each test ends."""

    _ids = itertools.count(1)

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def client(self, where=None, client_id=None, version=5, connect=None, **kw):
        """A client, connected to `where` (a node or HAProxy) unless None;
        `connect`: keyword arguments for MqttClient.connect."""
        c = MqttClient(client_id or f"c{next(self._ids)}", version=version, **kw)
        self.clients.append(c)
        if where is not None:
            self.connect(c, where, **(connect or {}))
        return c

    def forget(self, c):
        c.close()
        self.clients.remove(c)

    @staticmethod
    def connect(c, where, **kw):
        result = c.connect(where, **kw)
        # paho leaves Nagle on: a packet sent right after another then waits
        # for the broker's delayed ACK (40 ms), which only makes tests slow.
        c.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return result
