"""Several starling nodes on loopback forming one cluster, for the tests in
tests/cluster. Builds on tests/integration/harness.py (Broker, http_json,
scrape, ...).

    with Cluster(3) as c:
        c.nodes[0].port, c.nodes[1].http_port, c.members(c.nodes[2])
"""
import contextlib
import os
import sys
import time

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

    def node_args(self, seed_port=None, secret=None):
        args = list(self.extra)
        secret = self.secret if secret is None else secret
        if secret:
            args += ["--cluster-secret", secret]
        if seed_port is not None:
            args += ["--join", f"127.0.0.1:{seed_port}"]
        return args

    def start_node(self, name, *extra, join=True, data_dir=None, secret=None):
        """One more node (joining the first unless join=False); stopped with the cluster."""
        seed = self.nodes[0].cluster_port if (join and self.nodes) else None
        b = harness.Broker(*self.node_args(seed, secret), *extra, http=True, cluster=True,
                           node_id=name, data_dir=data_dir)
        self._stack.enter_context(b)
        return b

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
