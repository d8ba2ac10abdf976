"""Connect timeout, failover and bounded retries (ACCEPTANCE rows 8, 9, 10; 57 for IPv6).

A "blackhole" is a loopback listener with backlog 0 and a full accept queue: the kernel drops
further SYNs, so connects to it time out without needing root or iptables (verified per test;
the test is skipped with the reason if this kernel behaves differently).
"""

import socket
import threading
import time

import npp
from npp import V4, V6


def timed_first_byte(node_port, family, expect, timeout=5.0):
    """Connects, reads len(expect) bytes; returns (seconds from connect() to the last of those
    bytes, client local address)."""
    t0 = time.monotonic()
    s = npp.connect(node_port, family, timeout)
    try:
        local = s.getsockname()
        got = npp.recv_exact(s, len(expect), timeout)
        elapsed = time.monotonic() - t0
        if got != expect:
            raise AssertionError("got %r, expected %r" % (got, expect))
        s.shutdown(socket.SHUT_WR)
        npp.read_outcome(s, 2.0)
        return elapsed, local
    finally:
        s.close()


class Failover(npp.ProxyTestCase):

    def check_blackhole_failover(self, family, timeout_s=0.4):
        bh = self.blackhole(family)
        good = self.backend(npp.echo_handler(b"served"), family=family, name="good")
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [bh.addr, good.addr])],
                               extra=["--connect-timeout", "%dms" % int(timeout_s * 1000)])
        retried = []
        for _ in range(6):
            start = proxy.mark()
            elapsed, local = timed_first_byte(node_port, family, b"served")
            rec = proxy.closed_for_client(local, start=start)
            self.assertEqual(rec.get("endpoint"), good.addr, rec)
            self.assertEqual(rec.get("reason"), "eof", rec)
            if rec.get("attempts") == "2":
                retried.append(elapsed)
                # The blackholed attempt lasted the configured connect timeout, then failover.
                self.assertGreaterEqual(elapsed, timeout_s * 0.9,
                                        "failover after %.3fs: before the connect timeout" % elapsed)
                self.assertLess(elapsed, timeout_s + 0.5, "time to first byte %.3fs" % elapsed)
            else:
                self.assertEqual(rec.get("attempts"), "1", rec)
                self.assertLess(elapsed, 0.3, "direct connection took %.3fs" % elapsed)
        self.assertGreaterEqual(len(retried), 1,
                                "round robin over [blackhole, good] never tried the blackhole in 6 connections")
        self.assertEqual(good.accepted, 6)

    # ---- row 8
    def test_blackholed_endpoint_times_out_and_fails_over_ipv4(self):
        self.check_blackhole_failover(V4)

    def test_blackholed_endpoint_times_out_and_fails_over_ipv6(self):
        self.check_blackhole_failover(V6)

    # ---- row 9
    def check_refused_failover(self, family):
        closed = self.closed_port(family)
        good = self.backend(npp.echo_handler(b"served"), family=family, name="good")
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [closed.addr, good.addr])],
                               extra=["--connect-timeout", "3s"])
        retried = 0
        for i in range(10):
            start = proxy.mark()
            elapsed, local = timed_first_byte(node_port, family, b"served")
            # a refused connect fails over at once: nowhere near the 3 s connect timeout
            self.assertLess(elapsed, 0.25, "connection %d: first byte after %.3fs" % (i, elapsed))
            rec = proxy.closed_for_client(local, start=start)
            self.assertEqual(rec.get("endpoint"), good.addr, rec)
            retried += rec.get("attempts") == "2"
        self.assertGreaterEqual(retried, 1, "the refusing endpoint was never tried")

    def test_refused_endpoint_fails_over_immediately_ipv4(self):
        self.check_refused_failover(V4)

    def test_refused_endpoint_fails_over_immediately_ipv6(self):
        self.check_refused_failover(V6)

    # ---- row 10
    def test_all_blackholed_three_attempts_on_distinct_endpoints_then_reset(self):
        holes = [self.blackhole(V4) for _ in range(4)]
        hole_addrs = {h.addr for h in holes}
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [h.addr for h in holes])],
                               extra=["--connect-timeout", "300ms", "--connect-attempts", "3"])
        start = proxy.mark()

        # Watch SYN-SENT sockets towards the blackholes (each attempt lasts 300 ms); the test's
        # own filler connections are excluded by their local ports.
        hole_ports = {h.port: h.addr for h in holes}
        filler_ports = set().union(*(h.filler_ports() for h in holes))
        targets = set()
        max_parallel = [0]
        stop = threading.Event()

        def watch():
            # An `ss` dump is not atomic: one taken while an attempt's socket closes and the
            # next one opens can list both. Parallel attempts would overlap for a whole 300 ms
            # attempt, so only a set of sockets seen in two consecutive dumps counts.
            previous = set()
            while not stop.is_set():
                syns = {(l, r) for l, r in npp.syn_sent_sockets()
                        if r in hole_ports and l not in filler_ports}
                both = syns & previous if len(previous) > 1 else set()
                max_parallel[0] = max(max_parallel[0], len(both) if len(both) > 1 else min(len(syns), 1))
                previous = syns
                for _, r in syns:
                    targets.add(hole_ports[r])
                time.sleep(0.005)
        w = threading.Thread(target=watch, daemon=True)
        w.start()
        try:
            t0 = time.monotonic()
            s = self.client(node_port)
            local = s.getsockname()
            outcome, data, _ = npp.read_outcome(s, 4.0)
            elapsed = time.monotonic() - t0
        finally:
            stop.set()
            w.join(2)
        self.assertEqual(outcome, "reset", "client must get RST after the attempts, got %s" % outcome)
        self.assertEqual(data, b"")
        self.assertGreaterEqual(elapsed, 3 * 0.3 * 0.9, "gave up after %.3fs" % elapsed)
        self.assertLess(elapsed, 3 * 0.3 + 0.6, "gave up after %.3fs" % elapsed)
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "connect_failed", rec)
        self.assertEqual(rec.get("attempts"), "3", rec)
        self.assertLessEqual(targets, hole_addrs)
        self.assertEqual(len(targets), 3, "SYN targets seen: %r (expected 3 distinct endpoints)" % targets)
        self.assertEqual(max_parallel[0], 1, "attempts must be sequential")

    def test_all_refused_resets_client_quickly(self):
        closed = [self.closed_port(V4) for _ in range(3)]
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [c.addr for c in closed])],
                               extra=["--connect-timeout", "3s", "--connect-attempts", "3"])
        start = proxy.mark()
        t0 = time.monotonic()
        outcome, data, local = npp.probe(node_port, timeout=4.0)
        elapsed = time.monotonic() - t0
        self.assertEqual(outcome, "reset", "client must get RST, got %s" % outcome)
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 0.5)
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "connect_failed", rec)
        self.assertEqual(rec.get("attempts"), "3", rec)
        self.assertEqual(rec.get("bytes_in"), "0", rec)
        self.assertEqual(rec.get("bytes_out"), "0", rec)


if __name__ == "__main__":
    npp.main()
