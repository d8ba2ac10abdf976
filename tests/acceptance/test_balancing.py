"""Round robin, no-endpoint refusal and IPv6 forwarding (ACCEPTANCE rows 1, 11, 57; 59 in part)."""

import errno
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import npp
from npp import V4, V6


def exchange(port, family, payload, timeout=5.0):
    """One short connection: send payload, half-close, read everything until EOF."""
    s = npp.connect(port, family, timeout)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return npp.recv_all(s, timeout)
    finally:
        s.close()


def run_conns(tc, node_port, family, n, greetings, concurrency=8):
    """n echo exchanges (random payload 1..4096 bytes) with `concurrency` client threads;
    returns {greeting: count}; fails on any wrong reply byte."""
    counts = {g: 0 for g in greetings}
    lock = threading.Lock()
    errors = []

    def one(i):
        payload = os.urandom(1 + (i * 7919) % 4096)
        try:
            reply = exchange(node_port, family, payload)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append("conn %d: %r" % (i, e))
            return
        for g in greetings:
            if reply == g + payload:
                with lock:
                    counts[g] += 1
                return
        with lock:
            errors.append("conn %d: reply of %d bytes is not greeting+payload (%d bytes): %r..."
                          % (i, len(reply), len(payload), reply[:40]))

    with ThreadPoolExecutor(concurrency) as ex:
        list(ex.map(one, range(n)))
    tc.assertEqual(errors, [], "%d of %d connections failed" % (len(errors), n))
    return counts


class RoundRobin(npp.ProxyTestCase):

    def start_three(self, family_backends=V4, greeting_fmt="backend-%d|"):
        backends = [self.backend(npp.echo_handler((greeting_fmt % i).encode()), family=family_backends,
                                 name="b%d" % i) for i in range(3)]
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [b.addr for b in backends])])
        return backends, node_port, proxy

    def test_300_connections_split_100_each_with_exact_reply_bytes(self):
        backends, node_port, proxy = self.start_three()
        greetings = [("backend-%d|" % i).encode() for i in range(3)]
        counts = run_conns(self, node_port, V4, 300, greetings)
        self.assertEqual(sorted(counts.values()), [100, 100, 100], "per-backend counts %r" % counts)
        for b in backends:
            self.assertEqual(b.accepted, 100, "backend %s accepted %d" % (b.name, b.accepted))
        proxy.assert_alive()

    def test_close_log_reports_exact_bytes_and_reason(self):
        # Row 59 in part: the per-connection log line carries the client, the endpoint and exact
        # byte counts in both directions.
        backends, node_port, proxy = self.start_three()
        addrs = {b.addr for b in backends}
        start = proxy.mark()
        expected = {}
        for i in range(12):
            payload = os.urandom(100 + 1000 * i)
            s = npp.connect(node_port)
            local = s.getsockname()
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            reply = npp.recv_all(s)
            s.close()
            expected[str(local[1])] = (len(payload), len(reply))
        recs = proxy.wait_closed(12, start=start)
        seen = {}
        for r in recs:
            port = r.get("client", "").rsplit(":", 1)[-1]
            seen[port] = r
        for port, (sent, got) in expected.items():
            self.assertIn(port, seen, "no close record for client port %s: %r" % (port, recs))
            r = seen[port]
            self.assertEqual(r.get("reason"), "eof", r)
            self.assertEqual(r.get("bytes_in"), str(sent), r)
            self.assertEqual(r.get("bytes_out"), str(got), r)
            self.assertIn(r.get("endpoint"), addrs, r)
            self.assertEqual(r.get("attempts"), "1", r)
            self.assertEqual(r.get("node_port"), str(node_port), r)
            self.assertTrue(r.get("client", "").startswith("127.0.0.1:"), r)

    def test_forward_flag_round_robins(self):
        backends = [self.backend(npp.id_handler(b"F%d" % i), name="f%d" % i) for i in range(2)]
        node_port = npp.free_port()
        proxy = self.proxy(["--forward", "tcp:%d=%s" % (node_port, ",".join(b.addr for b in backends))])
        got = [exchange(node_port, V4, b"") for _ in range(10)]
        self.assertEqual(sorted(got), sorted([b"F0"] * 5 + [b"F1"] * 5), got)
        proxy.assert_alive()


class NoEndpoints(npp.ProxyTestCase):

    def setUp(self):
        super().setUp()
        self.good = self.backend(npp.id_handler(b"good"), name="good")
        self.p_empty, self.p_unready, self.p_good = npp.free_ports(3)
        self.proxy_ = self.proxy_for([
            npp.svc("empty", self.p_empty, []),
            npp.svc("unready", self.p_unready, [{"address": self.good.addr, "ready": False}]),
            npp.svc("good", self.p_good, [self.good.addr]),
        ])

    def test_port_without_endpoints_refuses_fast(self):
        # The proxy is up and serving another port, so a refusal here is the proxy's doing.
        self.assertEqual(exchange(self.p_good, V4, b""), b"good")
        worst = 0.0
        for family in (V4, V6):
            for port in (self.p_empty, self.p_unready):
                for _ in range(10):
                    worst = max(worst, self.assertConnectRefused(port, family, within=0.1))
        self.assertEqual(self.good.accepted, 1, "the unready endpoint must not be used")
        self.proxy_.assert_alive()

    def test_port_without_endpoints_is_held_bound(self):
        # Contract: bound but not listening, so no other process can take the nodePort.
        for port in (self.p_empty, self.p_unready):
            s = socket.socket(V4, socket.SOCK_STREAM)
            try:
                with self.assertRaises(OSError) as cm:
                    s.bind(("127.0.0.1", port))
                self.assertEqual(cm.exception.errno, errno.EADDRINUSE)
            finally:
                s.close()

    def test_endpoints_appearing_and_vanishing_toggle_listening(self):
        p = self.proxy_
        p.endpoints.write([
            npp.svc("empty", self.p_empty, [self.good.addr]),
            npp.svc("unready", self.p_unready, [{"address": self.good.addr, "ready": True}]),
            npp.svc("good", self.p_good, []),
        ])
        p.reload()
        self.assertEqual(exchange(self.p_empty, V4, b""), b"good")
        self.assertEqual(exchange(self.p_unready, V6, b""), b"good")
        self.assertConnectRefused(self.p_good, V4, within=0.1)
        self.assertConnectRefused(self.p_good, V6, within=0.1)


class IPv6(npp.ProxyTestCase):

    def test_ipv6_client_ipv6_endpoints_round_robin(self):
        backends = [self.backend(npp.echo_handler(b"v6-%d|" % i), family=V6, name="v6-%d" % i)
                    for i in range(3)]
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web6", node_port, [b.addr for b in backends])])
        counts = run_conns(self, node_port, V6, 60, [b"v6-%d|" % i for i in range(3)])
        self.assertEqual(sorted(counts.values()), [20, 20, 20], counts)
        start = proxy.mark()
        s = npp.connect(node_port, V6)
        local = s.getsockname()
        s.sendall(b"abc")
        s.shutdown(socket.SHUT_WR)
        reply = npp.recv_all(s)
        s.close()
        rec = proxy.closed_for_client(local, start=start)
        self.assertIn("::1", rec.get("client", ""), rec)
        self.assertTrue(rec.get("endpoint", "").startswith("[::1]:"), rec)
        self.assertEqual(rec.get("bytes_out"), str(len(reply)), rec)

    def test_ipv4_client_to_ipv6_endpoints_and_mixed(self):
        b6 = [self.backend(npp.echo_handler(b"six-%d|" % i), family=V6) for i in range(2)]
        b4 = self.backend(npp.echo_handler(b"four|"), family=V4)
        p_v6only, p_mixed = npp.free_ports(2)
        self.proxy_for([
            npp.svc("only6", p_v6only, [b.addr for b in b6]),
            npp.svc("mixed", p_mixed, [b6[0].addr, b4.addr]),
        ])
        counts = run_conns(self, p_v6only, V4, 20, [b"six-0|", b"six-1|"])
        self.assertEqual(sorted(counts.values()), [10, 10], counts)
        for fam in (V4, V6):
            counts = run_conns(self, p_mixed, fam, 20, [b"six-0|", b"four|"])
            self.assertEqual(sorted(counts.values()), [10, 10], counts)

    def test_nodeport_addresses_limit_the_families_bound(self):
        b = self.backend(npp.id_handler(b"x"), family=V4)
        p1, p2 = npp.free_ports(2)
        self.proxy_for([npp.svc("a", p1, [b.addr])], addresses="::1/128")
        self.assertEqual(exchange(p1, V6, b""), b"x")
        self.assertConnectRefused(p1, V4, within=0.5)
        self.proxy_for([npp.svc("b", p2, [b.addr])], addresses="127.0.0.1/32")
        self.assertEqual(exchange(p2, V4, b""), b"x")
        self.assertConnectRefused(p2, V6, within=0.5)


if __name__ == "__main__":
    npp.main()
