#!/usr/bin/python3
"""Debian's mosquitto_pub and mosquitto_sub against starling.

Usage: test_mosquitto_clients.py PATH_TO_STARLING
"""
from harness import *  # noqa: F401,F403

VERSIONS = ("mqttv311", "mqttv5")


class MosquittoClients(BrokerTest):
    def pub(self, *args):
        result = mosquitto_pub(self.broker, *args)
        self.assertEqual(result.returncode, 0, f"mosquitto_pub {args}: {result.stderr}")
        return result

    def test_sub_count_and_pub_all_versions_and_qos(self):
        for sub_version in VERSIONS:
            with self.subTest(sub_version=sub_version):
                topic = f"mc/{sub_version}"
                with MosquittoSub(self.broker, "-V", sub_version, "-t", topic, "-q", "2",
                                  "-C", "6", "-W", "20", "-F", "%q %t %p") as sub:
                    sub.wait_subscribed()
                    expected = []
                    for pub_version in VERSIONS:
                        for qos in (0, 1, 2):
                            payload = f"{pub_version}-q{qos}"
                            self.pub("-V", pub_version, "-t", topic, "-q", qos, "-m", payload)
                            expected.append(f"{qos} {topic} {payload}")
                    out = sub.wait_exit(20)
                self.assertEqual(sub.proc.returncode, 0)
                self.assertEqual(sorted(out), sorted(expected))

    def test_sub_exits_after_count_in_order(self):
        with MosquittoSub(self.broker, "-t", "mc/count", "-q", "1", "-C", "3",
                          "-W", "20") as sub:
            sub.wait_subscribed()
            for i in range(5):
                self.pub("-t", "mc/count", "-q", "1", "-m", f"m{i}")
            out = sub.wait_exit(20)
        self.assertEqual(out, ["m0", "m1", "m2"])

    def test_retained(self):
        for version in VERSIONS:
            with self.subTest(version=version):
                topic = f"mc/retained/{version}"
                self.pub("-V", version, "-r", "-q", "1", "-t", topic, "-m", "kept")
                with MosquittoSub(self.broker, "-V", version, "-t", topic, "-C", "1",
                                  "-W", "20", "-F", "%r %t %p") as sub:
                    out = sub.wait_exit(20)
                self.assertEqual(out, [f"1 {topic} kept"])
                # An empty retained message clears it: a new subscriber gets nothing
                # but the live message published afterwards.
                self.pub("-V", version, "-r", "-q", "1", "-t", topic, "-n")
                with MosquittoSub(self.broker, "-V", version, "-t", topic, "-C", "1",
                                  "-W", "20", "-F", "%r %t %p") as sub:
                    sub.wait_subscribed()
                    self.pub("-V", version, "-q", "1", "-t", topic, "-m", "live")
                    out = sub.wait_exit(20)
                self.assertEqual(out, [f"0 {topic} live"])

    def test_lines_from_stdin(self):
        import subprocess
        with MosquittoSub(self.broker, "-t", "mc/lines", "-q", "1", "-C", "200",
                          "-W", "30") as sub:
            sub.wait_subscribed()
            lines = "".join(f"line {i}\n" for i in range(200))
            result = subprocess.run(["mosquitto_pub", "-h", self.broker.host, "-p",
                                     str(self.broker.port), "-t", "mc/lines", "-q", "1", "-l"],
                                    input=lines, capture_output=True, text=True, timeout=30)
            self.assertEqual(result.returncode, 0, result.stderr)
            out = sub.wait_exit(30)
        self.assertEqual(out, [f"line {i}" for i in range(200)])

    def test_v5_user_property_reaches_paho(self):
        c = self.connected("mc-paho")
        c.subscribe("mc/props", 1)
        self.pub("-V", "mqttv5", "-t", "mc/props", "-q", "1", "-m", "p",
                 "-D", "publish", "user-property", "origin", "mosquitto_pub",
                 "-D", "publish", "content-type", "text/plain")
        m = c.msgs.wait_for(1)[0]
        self.assertEqual(m.payload, b"p")
        self.assertEqual(m.prop("UserProperty"), [("origin", "mosquitto_pub")])
        self.assertEqual(m.prop("ContentType"), "text/plain")

    def test_paho_to_mosquitto_sub_wildcard(self):
        with MosquittoSub(self.broker, "-V", "mqttv5", "-t", "mc/w/+", "-C", "2", "-W", "20",
                          "-v") as sub:
            sub.wait_subscribed()
            c = self.connected("mc-paho-pub", version=4)
            c.publish("mc/w/a", b"A", qos=1)
            c.publish("mc/other", b"no", qos=1)
            c.publish("mc/w/b", b"B", qos=1)
            out = sub.wait_exit(20)
        self.assertEqual(out, ["mc/w/a A", "mc/w/b B"])


if __name__ == "__main__":
    main()
