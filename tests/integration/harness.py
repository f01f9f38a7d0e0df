#!/usr/bin/python3
"""Shared pieces of the integration tests: a real starling process, paho clients
(MQTT 3.1.1 and 5.0), mosquitto_pub/mosquitto_sub, and a raw-socket client that
builds packets by hand (for what a well-behaved client library refuses to send).

Every test file takes the starling executable as its first argument, like
cli_test.py:  /usr/bin/python3 test_x.py PATH_TO_STARLING [unittest args...]

Rules kept here so the tests can rely on them: every wait has a deadline, every
process started is stopped by its own PID, every temporary directory is removed,
even when a test fails.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = ["STARLING", "Broker", "BrokerTest", "Collector", "MqttClient", "RawClient",
           "Packet", "Properties", "PacketTypes", "SubscribeOptions", "mqtt", "main",
           "connect_packet", "publish_packet", "subscribe_packet", "unsubscribe_packet",
           "ack_packet", "disconnect_packet", "pingreq_packet", "read_packet",
           "encode_varint", "publish_props", "connect_props", "wait_until",
           "mosquitto_pub", "MosquittoSub", "starling_supports", "http_request", "http_json",
           "parse_metrics", "scrape", "metric", "wait_metric", "wait_offline", "end_process"]

STARLING = "starling"          # replaced by main() from the command line
START_TIMEOUT = 10.0           # seconds to wait for "listener ... bound to"
STOP_TIMEOUT = 10.0            # SIGTERM, then this long, then SIGKILL
VERBOSE = os.environ.get("INTEGRATION_VERBOSE") == "1"   # dump broker logs on stop

# Lines in the broker's stderr that fail the test that ran the broker.
BAD_LOG = re.compile(r"\[error\]|\[critical\]|ERROR|AddressSanitizer|LeakSanitizer|"
                     r"ThreadSanitizer|runtime error:")


def main():
    """unittest.main for a test file: argv[1] is the starling executable."""
    global STARLING
    argv = list(sys.argv)
    if len(argv) > 1 and not argv[1].startswith("-"):
        STARLING = argv.pop(1)
    unittest.main(module="__main__", argv=[argv[0], "-v", *argv[1:]])


def end_process(proc, timeout=5):
    """SIGTERM to a process this test started, SIGKILL if it does not go."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def wait_until(predicate, timeout, interval=0.02, message="condition"):
    """Poll predicate() until it is truthy or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)


def wait_on(cond, predicate, timeout, failure):
    """Waits on a threading.Condition until predicate() holds; AssertionError with
    failure() as its message at the deadline."""
    deadline = time.monotonic() + timeout
    with cond:
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(failure())
            cond.wait(min(left, 0.1))


def starling_supports(flag):
    """True when `starling --help` lists flag."""
    try:
        out = subprocess.run([STARLING, "--help"], capture_output=True, text=True,
                             timeout=10, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in out.stdout


# --------------------------------------------------------------------------- broker

class Broker:
    """One starling process, by default on free loopback ports.

        with Broker("--max-keepalive", "10") as b:
            b.host, b.port, b.ws_port, b.pid
        with Broker(http=True) as b:
            http_json(b.http_port, "GET", "/healthz")

    Elsewhere (tests/cluster/test_partition.py: inside a network namespace):
        Broker(http=True, prefix=["ip", "netns", "exec", NS], host="10.20.0.11",
               ports={"mqtt": 1883, "http": 8080}, name="n1")
    prefix: words run before the starling executable; the last of them must exec
    it in place (as `ip netns exec` does), since the process is stopped by its
    PID. host: the address every listener binds to and clients connect to.
    ports: fixed ports by listener (mqtt, ws, http, cluster); 0 or left out: a
    free one. name: what the problems and the log's tail call the process.
    stop_timeout: how long stop() waits after SIGTERM (and after SIGKILL);
    None: STOP_TIMEOUT.
    """

    def __init__(self, *extra_args, ws=False, http=False, node_id="t1", data_dir=None,
                 cluster=False, prefix=(), host="127.0.0.1", ports=None, name="starling",
                 stop_timeout=None):
        self.extra_args = [str(a) for a in extra_args]
        self.ws = ws
        self.http = http
        # cluster=True: --cluster-listen on a free port, read into cluster_port
        # (pass --join and --cluster-secret in extra_args).
        self.cluster = cluster
        self.cluster_port = None
        self.node_id = node_id
        # None: one inside this broker's temporary directory, gone with it. A
        # test that restarts a node on the same data passes its own.
        self.data_dir = data_dir
        self.prefix = [str(a) for a in prefix]
        self.ports = dict(ports or {})
        self.name = name
        self.stop_timeout = STOP_TIMEOUT if stop_timeout is None else stop_timeout
        # stop() shows the log's tail when this is set or there are problems (a
        # test may set it when it failed for reasons of its own).
        self.show_log = VERBOSE
        self.killed = False
        self.signalled = False
        self.proc = None
        self.tmp = None
        self.host = host
        self.port = None
        self.ws_port = None
        self.http_port = None
        self.log_text = ""
        self._log_path = None
        self._log_file = None

    # -- lifecycle
    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="starling-it-")
        try:
            self._log_path = os.path.join(self.tmp, "stderr.log")
            self._log_file = open(self._log_path, "wb")
            args = [*self.prefix, STARLING, "--node-id", self.node_id,
                    "--mqtt-listen", self._listen("mqtt"),
                    "--http-listen", self._listen("http") if self.http else "off",
                    "--data-dir", self.data_dir or os.path.join(self.tmp, "data"),
                    "--log-level", "info"]
            if self.ws:
                args += ["--ws-listen", self._listen("ws")]
            if self.cluster:
                args += ["--cluster-listen", self._listen("cluster")]
            args += self.extra_args
            # Only PATH (and sanitizer settings) from the caller: a STARLING_* variable
            # in the environment of whoever runs the tests must not change the broker.
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
                if k in os.environ:
                    env[k] = os.environ[k]
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                         stdout=self._log_file, stderr=subprocess.STDOUT,
                                         env=env, cwd=self.tmp)
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                text = self.read_log()
                m, w, h, c = (re.search(rf"listener {what} bound to {re.escape(self.host)}:(\d+)",
                                        text) for what in ("mqtt", "ws", "http", "cluster"))
                if m and (w or not self.ws) and (h or not self.http) and (c or not self.cluster):
                    self.port = int(m.group(1))
                    self.cluster_port = int(c.group(1)) if c else None
                    self.ws_port = int(w.group(1)) if w else None
                    self.http_port = int(h.group(1)) if h else None
                    return self
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode} "
                                         f"before listening:\n{text[-4000:]}")
                if time.monotonic() >= deadline:
                    raise AssertionError(f"{self.name} did not log its bound port(s) within "
                                         f"{START_TIMEOUT}s:\n{text[-4000:]}")
                time.sleep(0.02)
        except BaseException:
            self._cleanup()
            raise

    def _listen(self, what):
        return f"{self.host}:{self.ports.get(what, 0)}"

    def read_log(self):
        try:
            with open(self._log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """kill -9: the node gets no chance to finish anything."""
        self.proc.kill()
        self.proc.wait(timeout=self.stop_timeout)
        self.killed = True

    def send_signal(self, sig):
        """Signal the node on purpose (a test of its shutdown): once it has exited,
        stop() only collects its log; its exit status is the test's to check."""
        self.signalled = True
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for the process to end; returns its exit status (AssertionError at
        the deadline, the process left running for stop() to end)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running {timeout}s later") from None

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self):
        """Stop the broker and check how it went; returns a list of problems."""
        problems = []
        if self.proc is None:
            self._cleanup()
            return problems
        died_early = self.proc.poll()
        if self.killed or (self.signalled and died_early is not None):
            pass  # on purpose (kill9, or a signal the test sent and checked)
        elif died_early is not None:
            problems.append(f"{self.name} died during the test with status {died_early}")
        else:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=self.stop_timeout)
                if self.proc.returncode != 0:
                    problems.append(f"{self.name} exited with status {self.proc.returncode} "
                                    f"after SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append(f"{self.name} did not exit within {self.stop_timeout}s of SIGTERM")
                self.proc.kill()
                try:
                    self.proc.wait(timeout=self.stop_timeout)
                except subprocess.TimeoutExpired:
                    problems.append(f"{self.name} did not die after SIGKILL")
        self.log_text = self.read_log()
        bad = [line for line in self.log_text.splitlines() if BAD_LOG.search(line)]
        if bad:
            problems.append(f"{self.name} logged errors:\n  " + "\n  ".join(bad[:20]))
        if self.show_log or problems:
            sys.stderr.write(f"---- {self.name} log (tail) ----\n" +
                             "\n".join(self.log_text.splitlines()[-60:]) + "\n----\n")
        self._cleanup()
        return problems

    def _cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()          # only the process this object started
            try:
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        problems = self.stop()
        if problems and exc_type is None:
            raise AssertionError("; ".join(problems))
        return False


# --------------------------------------------------------------------------- paho

class Message:
    """One received PUBLISH as a client saw it."""
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "mid", "properties", "time")

    def __init__(self, msg):
        self.topic = msg.topic
        self.payload = bytes(msg.payload)
        self.qos = msg.qos
        self.retain = bool(msg.retain)
        self.dup = bool(msg.dup)
        self.mid = msg.mid
        self.properties = getattr(msg, "properties", None)
        self.time = time.monotonic()

    def prop(self, name, default=None):
        if self.properties is None:
            return default
        return getattr(self.properties, name, default)

    def __repr__(self):
        return (f"Message({self.topic!r}, {self.payload[:40]!r}, qos={self.qos}, "
                f"retain={self.retain}, dup={self.dup}, props={self.properties})")


class Collector:
    """Thread-safe record of received messages with deadline-bounded waits."""

    def __init__(self):
        self._lock = threading.Condition()
        self._msgs = []

    def add(self, message):
        with self._lock:
            self._msgs.append(message)
            self._lock.notify_all()

    @property
    def messages(self):
        with self._lock:
            return list(self._msgs)

    def __len__(self):
        with self._lock:
            return len(self._msgs)

    def clear(self):
        with self._lock:
            self._msgs.clear()

    def of(self, topic):
        return [m for m in self.messages if m.topic == topic]

    def payloads(self, topic=None):
        return [m.payload for m in self.messages if topic is None or m.topic == topic]

    def wait_until(self, predicate, timeout=10.0, what="messages"):
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self._msgs):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout:.1f}s waiting for {what}; got "
                        f"{len(self._msgs)}: {self._msgs[:10]!r}")
                self._lock.wait(min(left, 0.1))
            return list(self._msgs)

    def wait_for(self, n, timeout=10.0, topic=None):
        """Wait until n messages (on topic, if given) arrived; returns them."""
        if topic is None:
            self.wait_until(lambda ms: len(ms) >= n, timeout, f"{n} messages")
            return self.messages
        self.wait_until(lambda ms: sum(1 for m in ms if m.topic == topic) >= n, timeout,
                        f"{n} messages on {topic!r}")
        return self.of(topic)

    def wait_quiet(self, seconds):
        """Observe for a fixed period (used only to assert that nothing more
        arrives; never to wait for something to happen). Returns all messages."""
        time.sleep(seconds)
        return self.messages


def _rc_value(rc):
    return rc.value if isinstance(rc, ReasonCodes) else rc


class MqttClient:
    """A paho client running its network loop in a thread, with blocking helpers.

    version: 3 (MQTT 3.1), 4 (MQTT 3.1.1) or 5.
    """

    def __init__(self, client_id, version=5, clean_session=True, transport="tcp"):
        self.version = version
        self.client_id = client_id
        self.msgs = Collector()
        kwargs = dict(client_id=client_id, reconnect_on_failure=False, transport=transport)
        if version == 5:
            kwargs["protocol"] = mqtt.MQTTv5
        else:
            kwargs["protocol"] = mqtt.MQTTv31 if version == 3 else mqtt.MQTTv311
            kwargs["clean_session"] = clean_session
        self.c = mqtt.Client(**kwargs)
        if transport == "websockets":
            self.c.ws_set_options(path="/mqtt")
        self._cond = threading.Condition()
        self.connack = None          # (session_present, rc, properties)
        self.disconnected = None     # (rc, properties, server_sent) once disconnected
        self._subacks = {}
        self._unsubacks = {}
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = lambda c, u, m: self.msgs.add(Message(m))
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self._loop_started = False

    # -- callbacks (paho network thread)
    def _on_connect(self, client, userdata, flags, rc, properties=None):
        with self._cond:
            self.connack = (int(flags.get("session present", 0)), _rc_value(rc), properties)
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        with self._cond:
            # paho may report one closing twice (the server's DISCONNECT, then the
            # lost socket): the first report is the one that says why.
            if self.disconnected is None:
                self.disconnected = (_rc_value(rc), properties, isinstance(rc, ReasonCodes))
            self._cond.notify_all()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        with self._cond:
            self._subacks[mid] = [_rc_value(g) for g in granted]
            self._cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, properties=None, reasons=None):
        with self._cond:
            if reasons is None:
                codes = []
            elif isinstance(reasons, list):
                codes = [_rc_value(r) for r in reasons]
            else:
                codes = [_rc_value(reasons)]
            self._unsubacks[mid] = codes
            self._cond.notify_all()

    def _wait(self, predicate, timeout, what):
        wait_on(self._cond, predicate, timeout,
                lambda: f"{self.client_id}: timed out after {timeout}s waiting for {what}")

    # -- operations
    def will_set(self, topic, payload, qos=0, retain=False, delay=None, properties=None):
        if self.version == 5 and delay is not None:
            properties = properties or Properties(PacketTypes.WILLMESSAGE)
            properties.WillDelayInterval = delay
        self.c.will_set(topic, payload, qos=qos, retain=retain, properties=properties)

    def connect(self, broker, keepalive=60, clean_start=True, session_expiry=None,
                properties=None, port=None, expect_rc=0, timeout=10.0):
        """Connect and wait for CONNACK; returns (session_present, rc, properties)."""
        if self.version == 5:
            if session_expiry is not None:
                properties = properties or Properties(PacketTypes.CONNECT)
                properties.SessionExpiryInterval = session_expiry
        if port is None:
            port = broker.ws_port if self.c._transport == "websockets" else broker.port
        self.stop_loop()      # paho's thread ends by itself after a lost connection
        with self._cond:
            self.connack = None
            self.disconnected = None
        if self.version == 5:
            self.c.connect(broker.host, port, keepalive=keepalive, clean_start=clean_start,
                           properties=properties)
        else:
            self.c.connect(broker.host, port, keepalive=keepalive)
        self.c.loop_start()
        self._loop_started = True
        self._wait(lambda: self.connack is not None or self.disconnected is not None,
                   timeout, "CONNACK")
        if self.connack is None:
            raise AssertionError(f"{self.client_id}: connection closed before CONNACK "
                                 f"({self.disconnected})")
        if expect_rc is not None and self.connack[1] != expect_rc:
            raise AssertionError(f"{self.client_id}: CONNACK rc {self.connack[1]}, "
                                 f"expected {expect_rc}")
        return self.connack

    @property
    def session_present(self):
        return self.connack[0]

    def subscribe(self, topic, qos=0, options=None, sub_id=None, properties=None,
                  timeout=10.0):
        """Subscribe (topic may be a list of (filter, qos|SubscribeOptions)) and wait for
        SUBACK; returns the list of granted QoS / reason codes."""
        if sub_id is not None:
            properties = properties or Properties(PacketTypes.SUBSCRIBE)
            properties.SubscriptionIdentifier = sub_id
        if isinstance(topic, list):
            rc, mid = self.c.subscribe(topic, properties=properties)
        elif options is not None:
            rc, mid = self.c.subscribe(topic, options=options, properties=properties)
        else:
            if self.version == 5:
                rc, mid = self.c.subscribe(topic, options=SubscribeOptions(qos=qos),
                                           properties=properties)
            else:
                rc, mid = self.c.subscribe(topic, qos)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"{self.client_id}: subscribe failed locally: {rc}")
        self._wait(lambda: mid in self._subacks, timeout, f"SUBACK for {topic!r}")
        return self._subacks.pop(mid)

    def unsubscribe(self, topic, timeout=10.0):
        rc, mid = self.c.unsubscribe(topic)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"{self.client_id}: unsubscribe failed locally: {rc}")
        self._wait(lambda: mid in self._unsubacks, timeout, f"UNSUBACK for {topic!r}")
        return self._unsubacks.pop(mid)

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, wait=True,
                timeout=10.0):
        """Publish; with wait, block until PUBACK/PUBCOMP (QoS 1/2) or sent (QoS 0)."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"{self.client_id}: publish failed locally: {info.rc}")
        if wait:
            deadline = time.monotonic() + timeout
            while not info.is_published():
                if time.monotonic() >= deadline:
                    raise AssertionError(f"{self.client_id}: publish to {topic!r} (QoS {qos}) "
                                         f"not acknowledged within {timeout}s")
                if self.disconnected is not None:
                    raise AssertionError(f"{self.client_id}: disconnected while publishing "
                                         f"({self.disconnected[0]})")
                time.sleep(0.005)
        return info

    def disconnect(self, timeout=10.0, properties=None):
        """Normal DISCONNECT, then wait until paho reports the connection closed."""
        if self.disconnected is None and self.connack is not None:
            self.c.disconnect(properties=properties)
            self._wait(lambda: self.disconnected is not None, timeout, "disconnect")
        self.stop_loop()

    def kill(self):
        """Drop the TCP connection without DISCONNECT (abnormal disconnection)."""
        self.stop_loop()
        sock = self.c.socket()
        sock = getattr(sock, "_socket", sock)     # paho's WebsocketWrapper wraps a socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def wait_disconnected(self, timeout=10.0):
        """Wait until the connection is closed (by the server); returns (rc, props, sent)."""
        self._wait(lambda: self.disconnected is not None, timeout, "server disconnect")
        return self.disconnected

    def stop_loop(self):
        if self._loop_started:
            self.c.loop_stop()
            self._loop_started = False
            # loop_start() makes a new wake-up socket pair each time and never closes
            # the old one; close it here (paho 1.6 has no public call for this).
            self.c._reset_sockets(sockpair_only=True)

    def close(self):
        """Best-effort cleanup; never raises."""
        try:
            if self.disconnected is None and self.connack is not None:
                self.c.disconnect()
        except Exception:
            pass
        try:
            self.stop_loop()
        except Exception:
            pass
        try:
            sock = self.c.socket()
            if sock is not None:
                sock.close()
        except Exception:
            pass


def publish_props(**kw):
    """Properties(PacketTypes.PUBLISH) from keyword arguments
    (MessageExpiryInterval=5, UserProperty=[("a", "b")], ...)."""
    p = Properties(PacketTypes.PUBLISH)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def connect_props(**kw):
    p = Properties(PacketTypes.CONNECT)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


# --------------------------------------------------------------------------- raw packets

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = \
    8, 9, 10, 11, 12, 13, 14, 15

# property id -> encoding
_PROP_TYPES = {}
for _i in (1, 23, 25, 36, 37, 40, 41, 42):
    _PROP_TYPES[_i] = "byte"
for _i in (19, 33, 34, 35):
    _PROP_TYPES[_i] = "u16"
for _i in (2, 17, 24, 39):
    _PROP_TYPES[_i] = "u32"
_PROP_TYPES[11] = "varint"
for _i in (9, 22):
    _PROP_TYPES[_i] = "bin"
for _i in (3, 8, 18, 21, 26, 28, 31):
    _PROP_TYPES[_i] = "str"
_PROP_TYPES[38] = "pair"


def encode_varint(n):
    out = bytearray()
    while True:
        digit = n % 128
        n //= 128
        if n:
            digit |= 0x80
        out.append(digit)
        if not n:
            return bytes(out)


def _bin(b):
    b = b.encode() if isinstance(b, str) else bytes(b)
    return struct.pack("!H", len(b)) + b


def encode_props(props):
    """props: list of (id, value) pairs (or a dict id -> value)."""
    if props is None:
        props = []
    if isinstance(props, dict):
        props = list(props.items())
    body = bytearray()
    for pid, value in props:
        kind = _PROP_TYPES[pid]
        body += encode_varint(pid)
        if kind == "byte":
            body += struct.pack("!B", value)
        elif kind == "u16":
            body += struct.pack("!H", value)
        elif kind == "u32":
            body += struct.pack("!I", value)
        elif kind == "varint":
            body += encode_varint(value)
        elif kind in ("bin", "str"):
            body += _bin(value)
        else:
            body += _bin(value[0]) + _bin(value[1])
    return encode_varint(len(body)) + bytes(body)


def decode_varint(buf, off):
    mult, value = 1, 0
    while True:
        b = buf[off]
        off += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, off
        mult *= 128


def decode_props(buf, off):
    """Returns ({id: value or [values] for 11 and 38}, new offset)."""
    length, off = decode_varint(buf, off)
    end = off + length
    props = {}
    while off < end:
        pid, off = decode_varint(buf, off)
        kind = _PROP_TYPES.get(pid)
        if kind == "byte":
            value = buf[off]
            off += 1
        elif kind == "u16":
            value, = struct.unpack_from("!H", buf, off)
            off += 2
        elif kind == "u32":
            value, = struct.unpack_from("!I", buf, off)
            off += 4
        elif kind == "varint":
            value, off = decode_varint(buf, off)
        elif kind in ("bin", "str"):
            n, = struct.unpack_from("!H", buf, off)
            value = bytes(buf[off + 2:off + 2 + n])
            if kind == "str":
                value = value.decode("utf-8", "replace")
            off += 2 + n
        elif kind == "pair":
            n, = struct.unpack_from("!H", buf, off)
            k = bytes(buf[off + 2:off + 2 + n]).decode("utf-8", "replace")
            off += 2 + n
            n, = struct.unpack_from("!H", buf, off)
            v = bytes(buf[off + 2:off + 2 + n]).decode("utf-8", "replace")
            off += 2 + n
            value = (k, v)
        else:
            raise ValueError(f"unknown property id {pid}")
        if pid in (11, 38):
            props.setdefault(pid, []).append(value)
        else:
            props[pid] = value
    return props, end


def _packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + encode_varint(len(body)) + bytes(body)


def connect_packet(version=5, client_id="", keepalive=60, clean=True, will=None,
                   username=None, password=None, props=None):
    """CONNECT for MQTT 3.1.1 (version 4) or 5.
    will: dict(topic=, payload=, qos=0, retain=False, props=[(id, value)...])."""
    flags = 0x02 if clean else 0
    payload = _bin(client_id)
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
        if version == 5:
            payload += encode_props(will.get("props"))
        payload += _bin(will["topic"]) + _bin(will.get("payload", b""))
    if username is not None:
        flags |= 0x80
        payload += _bin(username)
    if password is not None:
        flags |= 0x40
        payload += _bin(password)
    var = _bin("MQTT") + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        var += encode_props(props)
    return _packet(CONNECT, 0, var + payload)


def publish_packet(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=1,
                   version=5, props=None, flags=None):
    """PUBLISH. flags overrides the header's low nibble (to send malformed QoS bits)."""
    if flags is None:
        flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = _bin(topic)
    if qos > 0 or (flags >> 1) & 3:
        body += struct.pack("!H", packet_id)
    if version == 5:
        body += encode_props(props)
    body += payload.encode() if isinstance(payload, str) else bytes(payload)
    return _packet(PUBLISH, flags, body)


def ack_packet(ptype, packet_id, reason=None, version=5):
    """PUBACK/PUBREC/PUBREL/PUBCOMP (PUBREL gets its mandatory flags 0b0010)."""
    body = struct.pack("!H", packet_id)
    if version == 5 and reason is not None:
        body += bytes([reason])
    return _packet(ptype, 0x02 if ptype == PUBREL else 0, body)


def subscribe_packet(packet_id, filters, version=5, props=None):
    """filters: list of (filter, options byte)."""
    body = struct.pack("!H", packet_id)
    if version == 5:
        body += encode_props(props)
    for f, opts in filters:
        body += _bin(f) + bytes([opts])
    return _packet(SUBSCRIBE, 0x02, body)


def unsubscribe_packet(packet_id, filters, version=5):
    body = struct.pack("!H", packet_id)
    if version == 5:
        body += encode_props(None)
    for f in filters:
        body += _bin(f)
    return _packet(UNSUBSCRIBE, 0x02, body)


def disconnect_packet(reason=0, version=5, props=None):
    if version == 5 and (reason or props):
        return _packet(DISCONNECT, 0, bytes([reason]) + encode_props(props))
    return _packet(DISCONNECT, 0, b"")


def pingreq_packet():
    return _packet(PINGREQ, 0, b"")


class Packet:
    """A decoded control packet. Fields filled depend on the type."""

    def __init__(self, ptype, flags, body, version=5):
        self.type = ptype
        self.flags = flags
        self.body = bytes(body)
        self.props = {}
        self.reason = 0
        self.packet_id = None
        b = self.body
        if ptype == CONNACK:
            self.session_present = b[0] & 1
            self.reason = b[1]
            if version == 5 and len(b) > 2:
                self.props, _ = decode_props(b, 2)
        elif ptype == PUBLISH:
            self.dup = bool(flags & 0x08)
            self.qos = (flags >> 1) & 3
            self.retain = bool(flags & 1)
            n, = struct.unpack_from("!H", b, 0)
            self.topic = b[2:2 + n].decode("utf-8", "replace")
            off = 2 + n
            if self.qos:
                self.packet_id, = struct.unpack_from("!H", b, off)
                off += 2
            if version == 5:
                self.props, off = decode_props(b, off)
            self.payload = b[off:]
        elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
            self.packet_id, = struct.unpack_from("!H", b, 0)
            if ptype in (SUBACK, UNSUBACK):
                off = 2
                if version == 5:
                    self.props, off = decode_props(b, 2)
                self.reasons = list(b[off:])
            else:
                if len(b) > 2:
                    self.reason = b[2]
                if version == 5 and len(b) > 3:
                    self.props, _ = decode_props(b, 3)
        elif ptype == DISCONNECT:
            if len(b) >= 1:
                self.reason = b[0]
            if version == 5 and len(b) > 1:
                self.props, _ = decode_props(b, 1)

    def __repr__(self):
        names = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC",
                 6: "PUBREL", 7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE",
                 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}
        return (f"Packet({names.get(self.type, self.type)}, reason=0x{self.reason:02x}, "
                f"id={self.packet_id}, props={self.props})")


def _recv_exact(sock, n, deadline):
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out reading a packet")
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(buf))
        except socket.timeout:
            raise TimeoutError("timed out reading a packet") from None
        except (ConnectionResetError, ConnectionAbortedError):
            return None
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_packet(sock, timeout=5.0, version=5):
    """Next packet from sock; None when the peer closed the connection;
    TimeoutError when nothing complete arrived before the deadline."""
    deadline = time.monotonic() + timeout
    first = _recv_exact(sock, 1, deadline)
    if first is None:
        return None
    length, mult = 0, 1
    for _ in range(4):
        b = _recv_exact(sock, 1, deadline)
        if b is None:
            return None
        length += (b[0] & 0x7F) * mult
        mult *= 128
        if not b[0] & 0x80:
            break
    body = _recv_exact(sock, length, deadline) if length else b""
    if body is None:
        return None
    return Packet(first[0] >> 4, first[0] & 0x0F, body, version)


class RawClient:
    """A TCP client speaking hand-built packets."""

    def __init__(self, broker, version=5, timeout=5.0):
        self.version = version
        self.sock = socket.create_connection((broker.host, broker.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data):
        self.sock.sendall(data)

    def read(self, timeout=5.0):
        return read_packet(self.sock, timeout, self.version)

    def expect(self, ptype, timeout=5.0):
        p = self.read(timeout)
        if p is None:
            raise AssertionError(f"connection closed while expecting packet type {ptype}")
        if p.type != ptype:
            raise AssertionError(f"expected packet type {ptype}, got {p!r}")
        return p

    def connect(self, client_id, keepalive=60, clean=True, expect_rc=0, **kw):
        self.send(connect_packet(self.version, client_id, keepalive, clean, **kw))
        ack = self.expect(CONNACK)
        if expect_rc is not None and ack.reason != expect_rc:
            raise AssertionError(f"CONNACK reason 0x{ack.reason:02x}, expected "
                                 f"0x{expect_rc:02x}")
        return ack

    def read_until_closed(self, timeout=5.0):
        """All packets until the server closes the connection (AssertionError if it
        is still open at the deadline)."""
        deadline = time.monotonic() + timeout
        packets = []
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                p = self.read(left)
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout}s; "
                                     f"got {packets!r}") from None
            if p is None:
                return packets
            packets.append(p)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- http

def http_request(port, method, path, token=None, timeout=5, headers=None, body=None):
    """One HTTP/1.1 request to 127.0.0.1:port; returns (status, headers, body bytes)
    for any status (4xx/5xx included). headers: names lowercased. token: sent as
    "Authorization: Bearer TOKEN"."""
    send = dict(headers or {})
    if token is not None:
        send["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=send)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def http_json(port, method, path, token=None, timeout=5, **kw):
    """http_request whose body is parsed as JSON: (status, value). AssertionError
    when the body is not JSON."""
    status, headers, data = http_request(port, method, path, token=token, timeout=timeout,
                                         **kw)
    try:
        return status, json.loads(data)
    except ValueError:
        raise AssertionError(f"{method} {path}: status {status}, body is not JSON: "
                             f"{data[:500]!r}") from None


# --------------------------------------------------------------------------- mosquitto

def mosquitto_pub(broker, *args, timeout=10.0):
    """Run mosquitto_pub against the broker; returns CompletedProcess (asserting rc 0
    is the caller's job)."""
    return subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port),
                           *[str(a) for a in args]],
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


class MosquittoSub:
    """mosquitto_sub -d in the background; lines not from -d are the output.

        with MosquittoSub(broker, "-t", "a/b", "-C", "3") as sub:
            sub.wait_subscribed()
            ...
            out = sub.wait_exit(10)
    """

    def __init__(self, broker, *args):
        # stdbuf: mosquitto_sub's stdout is block-buffered when it is a pipe, and the
        # SUBACK line must be seen as it happens.
        self.args = ["stdbuf", "-oL", "mosquitto_sub", "-d", "-h", broker.host, "-p", str(broker.port),
                     *[str(a) for a in args]]
        self.proc = None
        self.lines = []
        self._cond = threading.Condition()
        self._reader = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait(self, predicate, timeout, what):
        wait_on(self._cond, predicate, timeout,
                lambda: f"mosquitto_sub: timed out waiting for {what}; output: {self.lines!r}")

    def wait_subscribed(self, timeout=10.0):
        self._wait(lambda: any("received SUBACK" in l for l in self.lines), timeout, "SUBACK")

    @property
    def output(self):
        """Message lines (mosquitto_sub's own debug lines removed)."""
        with self._cond:
            return [l for l in self.lines
                    if not l.startswith("Client ") and not l.startswith("Subscribed (mid")]

    def wait_exit(self, timeout=10.0):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"mosquitto_sub still running after {timeout}s; "
                                 f"output: {self.lines!r}") from None
        self._reader.join(timeout=5)
        return self.output

    def __exit__(self, *exc):
        end_process(self.proc)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.proc.stdout.close()
        return False


# --------------------------------------------------------------------------- test base

class BrokerTest(unittest.TestCase):
    """A fresh broker per test. Subclasses set broker_args (and ws = True for a
    WebSocket listener, http = True for the HTTP listener); clients made with
    v3()/v5()/raw() are closed after the test, before the broker is stopped and
    checked."""
    broker_args = ()
    ws = False
    http = False

    def setUp(self):
        self.broker = Broker(*self.broker_args, ws=self.ws, http=self.http).start()
        self.addCleanup(self._stop_broker)

    def start_broker(self, *args, ws=False, http=False, data_dir=None):
        """A second broker (or one with different flags) inside one test."""
        b = Broker(*args, ws=ws, http=http, data_dir=data_dir).start()
        self.addCleanup(lambda: self._check_problems(b.stop()))
        return b

    def _stop_broker(self):
        self._check_problems(self.broker.stop())

    def _check_problems(self, problems):
        if problems:
            raise AssertionError("; ".join(problems))

    def _client(self, client_id, version, clean_session=True, transport="tcp"):
        c = MqttClient(client_id, version=version, clean_session=clean_session,
                       transport=transport)
        self.addCleanup(c.close)
        return c

    def v3(self, client_id, clean_session=True, transport="tcp"):
        """An MQTT 3.1.1 paho client (not yet connected)."""
        return self._client(client_id, 4, clean_session, transport)

    def v5(self, client_id, transport="tcp"):
        """An MQTT 5 paho client (not yet connected)."""
        return self._client(client_id, 5, transport=transport)

    def connected(self, client_id, version=5, broker=None, **kw):
        """A client already connected (clean) to the broker."""
        c = self._client(client_id, version)
        c.connect(broker or self.broker, **kw)
        return c

    def raw(self, version=5, broker=None):
        r = RawClient(broker or self.broker, version)
        self.addCleanup(r.close)
        return r


# --------------------------------------------------------------------------- metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset of (label, value)): float}."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise AssertionError(f"not a sample line: {line!r}")
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        if key in samples:
            raise AssertionError(f"sample repeated: {line!r}")
        samples[key] = float(m.group(3))
    return samples


def scrape(port):
    status, headers, body = http_request(port, "GET", "/metrics")
    if status != 200:
        raise AssertionError(f"GET /metrics: {status} {body[:300]!r}")
    return parse_metrics(body.decode("utf-8"))


def metric(samples, name, **labels):
    """The value of one sample; None when the node does not report it."""
    return samples.get((name, frozenset(labels.items())))


def wait_offline(port, client_id, timeout=5.0, token=None):
    """Until the broker has taken `client_id`'s session offline: paho's
    disconnect() returns before the broker has read the DISCONNECT, and a
    message published meanwhile goes out in flight instead of being queued."""
    def offline():
        status, body = http_json(port, "GET", f"/api/v1/clients/{client_id}", token=token)
        return status == 200 and body["connected"] is False
    wait_until(offline, timeout, interval=0.05, message=f"{client_id}'s session offline")


def wait_metric(port, name, expected, timeout=5.0, **labels):
    """Polls /metrics until name{labels} == expected; AssertionError with the last
    value seen at the deadline."""
    seen = []

    def check():
        v = metric(scrape(port), name, **labels)
        seen[:] = [v]
        return v == expected
    try:
        wait_until(check, timeout, interval=0.05, message=f"{name}{labels} == {expected}")
    except AssertionError:
        raise AssertionError(f"{name}{labels}: expected {expected}, last seen {seen[0]} "
                             f"(within {timeout}s)") from None
