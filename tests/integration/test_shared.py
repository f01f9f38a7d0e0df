#!/usr/bin/python3
"""Shared subscriptions $share/GROUP/FILTER.

Usage: test_shared.py PATH_TO_STARLING
"""
from harness import *  # noqa: F401,F403

QUIET = 0.5


class Shared(BrokerTest):
    def _members(self, group, filter_, names, qos=1):
        members = []
        for name, version in names:
            c = self.connected(name, version=version)
            granted = c.subscribe(f"$share/{group}/{filter_}", qos)
            self.assertEqual(granted, [qos])
            members.append(c)
        return members

    def _wait_total(self, members, n, timeout=15):
        wait_until(lambda: sum(len(m.msgs) for m in members) >= n, timeout,
                   message=f"{n} messages across the group")
        return [m.msgs.wait_quiet(0) for m in members]

    def test_each_message_to_exactly_one_member_mixed_versions(self):
        members = self._members("g", "sh/t", [("sh-a", 5), ("sh-b", 5), ("sh-c", 5),
                                              ("sh-d", 4)])
        pub = self.connected("sh-pub")
        for i in range(100):
            pub.publish("sh/t", str(i).encode(), qos=1, wait=False)
        self._wait_total(members, 100)
        per_member = [m.msgs.wait_quiet(QUIET) if i == 0 else m.msgs.messages
                      for i, m in enumerate(members)]
        payloads = sorted(int(x.payload) for ms in per_member for x in ms)
        self.assertEqual(payloads, list(range(100)), "each message exactly once")
        counts = [len(ms) for ms in per_member]
        self.assertTrue(all(c > 0 for c in counts), f"a member got nothing: {counts}")
        for ms in per_member:
            self.assertTrue(all(x.topic == "sh/t" and x.qos == 1 for x in ms))
            # Per member, messages keep the publisher's order.
            seq = [int(x.payload) for x in ms]
            self.assertEqual(seq, sorted(seq))

    def test_two_groups_each_get_every_message(self):
        g1 = self._members("g1", "sh2/#", [("g1-a", 5), ("g1-b", 5)])
        g2 = self._members("g2", "sh2/#", [("g2-a", 5), ("g2-b", 4)])
        plain = self.connected("sh2-plain")
        plain.subscribe("sh2/#", 1)
        pub = self.connected("sh2-pub")
        for i in range(50):
            pub.publish(f"sh2/{i % 3}", str(i).encode(), qos=1, wait=False)
        self._wait_total(g1, 50)
        self._wait_total(g2, 50)
        plain.msgs.wait_for(50)
        plain.msgs.wait_quiet(QUIET)
        for group in (g1, g2):
            got = sorted(int(x.payload) for m in group for x in m.msgs.messages)
            self.assertEqual(got, list(range(50)))
        self.assertEqual(sorted(int(x.payload) for x in plain.msgs.messages), list(range(50)))

    def test_disconnected_member_is_skipped(self):
        members = self._members("g", "sh3/t", [("sh3-a", 5), ("sh3-b", 5), ("sh3-c", 4)])
        members[1].disconnect()
        # paho reports the disconnection once its own socket is closed, which may be
        # before the broker has read the DISCONNECT. A clean connection under the same
        # client id cannot get its CONNACK before the old session (and its group
        # membership) is gone, so it marks the point from which the member is absent.
        ghost = self.connected("sh3-b", version=4)
        ghost.disconnect()
        pub = self.connected("sh3-pub")
        for i in range(30):
            pub.publish("sh3/t", str(i).encode(), qos=1, wait=False)
        live = [members[0], members[2]]
        self._wait_total(live, 30)
        live[0].msgs.wait_quiet(QUIET)
        got = sorted(int(x.payload) for m in live for x in m.msgs.messages)
        self.assertEqual(got, list(range(30)), "no message may be lost to the gone member")
        self.assertEqual(len(members[1].msgs), 0)
        self.assertTrue(all(len(m.msgs) > 0 for m in live))

    def test_shared_qos2(self):
        members = self._members("q2", "sh4/t", [("sh4-a", 5), ("sh4-b", 4)], qos=2)
        pub = self.connected("sh4-pub")
        for i in range(20):
            pub.publish("sh4/t", str(i).encode(), qos=2, wait=False)
        self._wait_total(members, 20)
        members[0].msgs.wait_quiet(QUIET)
        got = sorted(int(x.payload) for m in members for x in m.msgs.messages)
        self.assertEqual(got, list(range(20)))
        self.assertTrue(all(x.qos == 2 for m in members for x in m.msgs.messages))


if __name__ == "__main__":
    main()
