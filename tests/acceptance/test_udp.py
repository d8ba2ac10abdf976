"""UDP nodePorts (issue 4): ACCEPTANCE rows 46-51, TCP and UDP on one number, the idle timeout and
the session-table policy.

Backends are UdpBackend threads on loopback; tag_echo replies b"TAG|PEERPORT|payload", so a client
learns which endpoint answered and from which proxy upstream socket (PEERPORT): the same
PEERPORT means the same session.
"""

import os
import socket
import sys
import threading
import time

import npp
from npp import LOOPBACK, V4, V6


def ask_tagged(tc, sock, dest, payload, timeout=2.0):
    """One request through the nodePort; asserts the reply comes from the nodePort and carries
    the payload; returns (tag, upstream_port)."""
    reply, src = npp.udp_ask(sock, dest, payload, timeout)
    tc.assertIsNotNone(reply, "no reply to %r within %.1fs (client %r)"
                       % (payload, timeout, sock.getsockname()))
    tc.assertEqual(tuple(src[:2]), tuple(dest[:2]), "reply did not come from the nodePort")
    tag, up, echoed = npp.parse_tagged(reply)
    tc.assertEqual(echoed, payload, "reply carries another client's payload")
    return tag, up


def udp_svc(name, node_port, endpoints):
    return npp.svc(name, node_port, endpoints, protocol="UDP", port=53)


class UdpTestCase(npp.ProxyTestCase):

    def udp_backend(self, handler=npp.plain_echo, family=V4, name=None, **kw):
        b = npp.UdpBackend(handler, family=family, name=name, **kw)
        self.addCleanup(b.close)
        return b

    def tagged(self, n, family=V4):
        return [self.udp_backend(npp.tag_echo("b%d" % i), family, name="b%d" % i) for i in range(n)]

    def udp_client(self, family=V4, connect_to=None, bind_host=None):
        s = npp.udp_socket(family, connect_to=connect_to, bind_host=bind_host)
        self.addCleanup(s.close)
        return s

    def udp_proxy(self, node_port, backends, extra=()):
        return self.proxy_for([udp_svc("dns", node_port, [b.addr for b in backends])], extra=list(extra))

    def write_endpoints(self, proxy, node_port, backends):
        npp.reload_with(proxy, [udp_svc("dns", node_port, [b.addr for b in backends])])

    def session_socket_open(self, proxy, upstream_port):
        """True while the proxy owns the UDP socket whose local port is upstream_port."""
        return any(npp.split_host_port(l)[1] == upstream_port for l, _ in npp.udp_sockets(proxy.pid))

    def wait_session_closed(self, proxy, upstream_port, timeout=3.0):
        npp.wait_until(lambda: not self.session_socket_open(proxy, upstream_port), timeout, 0.02,
                       "the session's upstream socket (port %d) to close" % upstream_port)

    def proxy_udp_listeners(self, proxy, node_port):
        return [l for l, _ in npp.udp_sockets(proxy.pid) if npp.split_host_port(l)[1] == node_port]


class AffinityRoundRobin(UdpTestCase):
    """Row 46: one session per client address; new addresses round-robin; replies go back to the
    right client from the nodePort."""

    def check(self, family, clients=30, rounds=5):
        backends = self.tagged(3, family)
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, backends, ["--workers", "2"])
        dest = (LOOPBACK[family], node_port)
        socks = [self.udp_client(family) for _ in range(clients)]
        # First datagrams one after another: each new 4-tuple takes the next endpoint.
        first = [ask_tagged(self, s, dest, b"c%d-r0" % i) for i, s in enumerate(socks)]
        tags = [t for t, _ in first]
        for i in range(clients - 2):
            self.assertEqual(len(set(tags[i:i + 3])), 3, "not round-robin: %r" % tags)
        self.assertEqual(sorted(tags.count(b.name) for b in backends), [clients // 3] * 3, tags)
        self.assertEqual(len({up for _, up in first}), clients, "clients share an upstream socket")
        # Then every client sends before any reads: each gets its own payload, from its own
        # endpoint and session.
        for r in range(1, rounds):
            for i, s in enumerate(socks):
                s.sendto(b"c%d-r%d" % (i, r), dest)
            for i, s in enumerate(socks):
                reply, src = npp.udp_recv(s, 2.0)
                self.assertIsNotNone(reply, "client %d round %d: no reply" % (i, r))
                self.assertEqual(tuple(src[:2]), dest)
                tag, up, payload = npp.parse_tagged(reply)
                self.assertEqual(payload, b"c%d-r%d" % (i, r), "client %d got another's reply" % i)
                self.assertEqual((tag, up), first[i], "client %d moved to another session" % i)
        # Each backend saw exactly its clients' upstream sockets, one per client.
        for b in backends:
            self.assertEqual(len(b.peers()), clients // 3, "backend %s peers %r" % (b.name, b.peers()))
            self.assertEqual(b.count(), clients // 3 * rounds)
        proxy.assert_alive()

    def test_same_tuple_same_endpoint_new_tuples_round_robin_ipv4(self):
        self.check(V4)

    def test_same_tuple_same_endpoint_new_tuples_round_robin_ipv6(self):
        self.check(V6)


class SourcePortFlood(UdpTestCase):
    """Row 47: the session table is capped; a flood of source ports neither grows memory nor fds
    past the cap, and an active session keeps working."""

    CAP = 200

    def test_20000_source_ports_capped_memory_bounded_active_session_kept(self):
        backend = self.udp_backend(npp.tag_echo("b0"), name="b0")
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, [backend],
                               ["--workers", "2", "--udp-max-sessions", str(self.CAP)])
        dest = ("127.0.0.1", node_port)

        established = self.udp_client(connect_to=dest)
        _, up0 = ask_tagged(self, established, dest, b"e-0")
        base_fds = npp.socket_fd_count(proxy.pid)  # includes the established session's upstream socket

        results = []  # (seq, upstream port or None)
        stop = threading.Event()

        def keep_talking():
            seq = 0
            while not stop.is_set():
                seq += 1
                payload = b"e-%d" % seq
                t_next = time.monotonic() + 0.1
                try:
                    established.send(payload)
                    got = None
                    while got is None and time.monotonic() < t_next + 0.4:
                        established.settimeout(max(0.01, t_next + 0.4 - time.monotonic()))
                        data = established.recv(1 << 16)
                        tag, up, echoed = npp.parse_tagged(data)
                        if echoed == payload:
                            got = up
                except (socket.timeout, OSError):
                    pass
                results.append((seq, got))
                time.sleep(max(0.0, t_next - time.monotonic()))

        talker = threading.Thread(target=keep_talking, daemon=True)

        def flood(n, batch=1000, pause=0.1, sample=None):
            for start in range(0, n, batch):
                for _ in range(batch):
                    s = socket.socket(V4, socket.SOCK_DGRAM)
                    try:
                        s.sendto(b"f", dest)  # a fresh socket: a new source port
                    finally:
                        s.close()
                if sample:
                    sample()
                time.sleep(pause)

        # Warm up (allocator arenas, the table at its cap), then measure the real flood.
        talker.start()
        self.addCleanup(stop.set)
        flood(2000)
        rss0 = proxy.rss_kib()
        peak = {"fds": 0, "rss": rss0}

        def sample():
            peak["fds"] = max(peak["fds"], npp.socket_fd_count(proxy.pid))
            peak["rss"] = max(peak["rss"], proxy.rss_kib())

        flood(20000, sample=sample)
        stop.set()
        talker.join(2)
        proxy.assert_alive()

        sys.stderr.write("\n  flood: baseline fds %d, peak fds %d, VmRSS %d -> %d KiB peak, established "
                         "client answered %d of %d\n" % (base_fds, peak["fds"], rss0, peak["rss"],
                                                          sum(up is not None for _, up in results), len(results)))
        # fds: at most one upstream socket per session, sessions at most CAP (the established
        # one is in base_fds already), and the table did fill up to the cap.
        self.assertLessEqual(peak["fds"], base_fds + self.CAP - 1,
                             "fd count %d > baseline %d + cap %d" % (peak["fds"], base_fds, self.CAP))
        self.assertGreaterEqual(peak["fds"], base_fds + self.CAP - 10,
                                "the flood never filled the table (peak fds %d, baseline %d)"
                                % (peak["fds"], base_fds))
        growth = peak["rss"] - rss0
        self.assertLess(growth, 4 * 1024, "VmRSS grew by %d KiB under the flood" % growth)

        # The established session: answered throughout, never replaced (same upstream socket).
        answered = [up for _, up in results if up is not None]
        self.assertGreaterEqual(len(results), 15, "talker ran only %d rounds" % len(results))
        self.assertGreaterEqual(len(answered), 0.9 * len(results),
                                "established client answered %d of %d: %r"
                                % (len(answered), len(results), results))
        self.assertEqual(set(answered), {up0}, "the established session was replaced")
        self.assertEqual(ask_tagged(self, established, dest, b"after")[1], up0)

        # Policy when full: after 1 s of quiet, a new client takes an idle session's slot.
        time.sleep(1.1)  # the eviction threshold (1 s idle) is the behaviour under test
        fresh = self.udp_client()
        ask_tagged(self, fresh, dest, b"fresh")
        self.assertLessEqual(npp.socket_fd_count(proxy.pid), base_fds + self.CAP - 1)

    def test_full_table_drops_new_client_until_the_oldest_session_is_idle_1s(self):
        backend = self.udp_backend(npp.tag_echo("b0"), name="b0")
        node_port = npp.free_port_tcp_udp()
        self.udp_proxy(node_port, [backend], ["--workers", "1", "--udp-max-sessions", "2"])
        dest = ("127.0.0.1", node_port)
        a, b, c = self.udp_client(), self.udp_client(), self.udp_client()
        _, up_a = ask_tagged(self, a, dest, b"a")
        _, up_b = ask_tagged(self, b, dest, b"b")
        # Both sessions active (< 1 s): the third client's datagram is dropped.
        self.assertEqual(npp.udp_ask(c, dest, b"c", 0.3), (None, None), "table full, yet c was served")
        self.assertEqual(ask_tagged(self, a, dest, b"a")[1], up_a)
        self.assertEqual(ask_tagged(self, b, dest, b"b")[1], up_b)
        # a keeps talking, b goes quiet for more than 1 s: c takes b's slot.
        t_end = time.monotonic() + 1.3
        while time.monotonic() < t_end:
            self.assertEqual(ask_tagged(self, a, dest, b"a")[1], up_a)
            time.sleep(0.2)
        _, up_c = ask_tagged(self, c, dest, b"c")
        self.assertNotIn(up_c, (up_a, up_b))
        self.assertEqual(ask_tagged(self, a, dest, b"a")[1], up_a, "the active session was evicted")
        # b is a new client now; a and c are active: dropped.
        self.assertEqual(npp.udp_ask(b, dest, b"b", 0.3), (None, None), "b was served over the cap")
        self.assertEqual(ask_tagged(self, c, dest, b"c")[1], up_c)


class WrongSourceReply(UdpTestCase):
    """Row 48: a datagram to the session's upstream socket from anyone but its endpoint is
    dropped (the socket is connected), never forwarded to the client."""

    def test_datagram_from_another_address_to_the_upstream_port_is_not_forwarded(self):
        backend = self.udp_backend(npp.tag_echo("b0"), name="b0")
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, [backend])
        dest = ("127.0.0.1", node_port)
        client = self.udp_client()
        tag, up = ask_tagged(self, client, dest, b"hello")
        # The proxy owns a UDP socket 127.0.0.1:up connected to the backend (seen with ss).
        socks = npp.udp_sockets(proxy.pid)
        self.assertIn(("127.0.0.1:%d" % up, backend.addr), socks, "ss -uanp: %r" % socks)

        # From another port on the endpoint's address and from another address: no socket takes
        # them (the kernel even answers port unreachable, seen by a connected sender).
        same_ip = self.udp_client(connect_to=("127.0.0.1", up))
        same_ip.send(b"EVIL from 127.0.0.1")
        with self.assertRaises(ConnectionRefusedError, msg="a datagram from a wrong source was accepted"):
            same_ip.recv(1 << 16)
        other_ip = self.udp_client(bind_host="127.0.0.2")
        for i in range(20):
            other_ip.sendto(b"EVIL %d from 127.0.0.2" % i, ("127.0.0.1", up))
            try:
                same_ip.send(b"EVIL %d from 127.0.0.1" % i)
            except ConnectionRefusedError:
                pass  # the port unreachable of the previous one
        self.assertEqual(npp.udp_recv(client, 0.5), (None, None), "a spoofed reply was forwarded")
        # The session is intact: the real endpoint still gets through, and nothing else queued.
        self.assertEqual(ask_tagged(self, client, dest, b"again"), (tag, up))
        self.assertEqual(npp.udp_recv(client, 0.2), (None, None))
        proxy.assert_alive()


class LargeDatagrams(UdpTestCase):
    """Row 49: datagrams up to the protocol maximum cross intact; what cannot be delivered is
    dropped, never truncated."""

    def echo_sizes(self, family, sizes):
        backend = self.udp_backend(npp.plain_echo, family, name="echo")
        node_port = npp.free_port_tcp_udp()
        self.udp_proxy(node_port, [backend])
        dest = (LOOPBACK[family], node_port)
        client = self.udp_client(family)
        for n in sizes:
            payload = os.urandom(n)
            reply, _ = npp.udp_ask(client, dest, payload, 2.0)
            self.assertIsNotNone(reply, "%d-byte datagram: no reply" % n)
            self.assertEqual(len(reply), n, "%d-byte datagram came back as %d bytes" % (n, len(reply)))
            self.assertEqual(npp.sha256(reply), npp.sha256(payload), "%d-byte datagram altered" % n)
        received = [length for _, length in backend.datagrams]
        self.assertEqual(received, list(sizes), "the endpoint received other sizes")

    def test_ipv4_1500_9000_65507_bytes_intact(self):
        self.echo_sizes(V4, [1, 1500, 9000, npp.UDP_MAX_V4])

    def test_ipv6_1500_9000_65507_65527_bytes_intact(self):
        a, b = npp.udp_socket(V6), npp.udp_socket(V6)
        try:
            a.sendto(b"x" * npp.UDP_MAX_V6, b.getsockname())
            ok = len(b.recv(1 << 17)) == npp.UDP_MAX_V6
        except OSError:
            ok = False
        finally:
            a.close()
            b.close()
        sizes = [1, 1500, 9000, npp.UDP_MAX_V4]
        if ok:
            sizes.append(npp.UDP_MAX_V6)
        else:
            self.skipTest("the kernel does not carry a %d-byte datagram over ::1" % npp.UDP_MAX_V6)
        self.echo_sizes(V6, sizes)

    def test_ipv6_datagram_too_big_for_an_ipv4_endpoint_is_dropped_not_truncated(self):
        backend = self.udp_backend(npp.plain_echo, V4, name="echo4")
        node_port = npp.free_port_tcp_udp()
        self.udp_proxy(node_port, [backend])
        dest = ("::1", node_port)
        client = self.udp_client(V6)
        self.assertIsNotNone(npp.udp_ask(client, dest, b"small")[0])
        self.assertEqual(npp.udp_ask(client, dest, os.urandom(npp.UDP_MAX_V6), 0.5), (None, None))
        self.assertEqual([n for _, n in backend.datagrams], [5], "something of another size arrived")
        self.assertEqual(npp.udp_ask(client, dest, b"still")[0], b"still")

    def test_reply_too_big_for_an_ipv4_client_is_dropped_not_truncated(self):
        def handler(data, peer, b):
            return os.urandom(npp.UDP_MAX_V6) if data == b"big" else data
        backend = self.udp_backend(handler, V6, name="echo6")
        node_port = npp.free_port_tcp_udp()
        self.udp_proxy(node_port, [backend])
        dest = ("127.0.0.1", node_port)
        client = self.udp_client(V4)
        self.assertEqual(npp.udp_ask(client, dest, b"small")[0], b"small")
        self.assertEqual(npp.udp_ask(client, dest, b"big", 0.5), (None, None))
        self.assertEqual(npp.udp_ask(client, dest, b"still")[0], b"still")


class EndpointRemoved(UdpTestCase):
    """Row 50: endpoint changes never blackhole a client (the stale-conntrack class)."""

    def test_removed_endpoint_repins_scale_to_zero_refuses_return_resumes_at_once(self):
        a, b = self.tagged(2)
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, [a, b], ["--workers", "2"])
        dest = ("127.0.0.1", node_port)
        clients = [self.udp_client(connect_to=dest) for _ in range(4)]
        pinned = [ask_tagged(self, c, dest, b"c%d" % i) for i, c in enumerate(clients)]
        tags = [t for t, _ in pinned]
        self.assertEqual((tags[2], tags[3]), (tags[0], tags[1]), "not round-robin: %r" % tags)
        self.assertEqual(sorted(tags[:2]), ["b0", "b1"], "not round-robin: %r" % tags)

        # a leaves the Service but keeps running (a terminating pod): the next datagram of its
        # clients goes to b, the first one after the reload already; b's clients keep their session.
        self.write_endpoints(proxy, node_port, [b])
        a_count = a.count()
        for i, c in enumerate(clients):
            tag, up = ask_tagged(self, c, dest, b"c%d moved" % i, timeout=1.0)
            self.assertEqual(tag, "b1", "client %d still sent to the removed endpoint" % i)
            if pinned[i][0] == "b1":
                self.assertEqual(up, pinned[i][1], "client %d on a kept endpoint was re-pinned" % i)
        self.assertEqual(a.count(), a_count, "the removed endpoint still got datagrams")

        # Scale to zero: the port is closed, so clients get ICMP port unreachable at once.
        self.write_endpoints(proxy, node_port, [])
        self.assertEqual(self.proxy_udp_listeners(proxy, node_port), [])
        for c in clients:
            c.send(b"anyone?")
            c.settimeout(1.0)
            with self.assertRaises(ConnectionRefusedError):
                c.recv(1 << 16)
        self.assertEqual(npp.udp_refused(node_port), "refused")

        # An endpoint returns: the first datagram after that one reload is answered.
        self.write_endpoints(proxy, node_port, [a])
        for i, c in enumerate(clients):
            self.assertEqual(ask_tagged(self, c, dest, b"c%d back" % i, timeout=1.0)[0], "b0")

    def test_endpoint_churn_never_blackholes_a_client(self):
        a, b, c3 = self.tagged(3)
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, [a, b, c3], ["--workers", "2"])
        dest = ("127.0.0.1", node_port)
        clients = [self.udp_client(connect_to=dest) for _ in range(6)]
        current = [ask_tagged(self, c, dest, b"c%d" % i) for i, c in enumerate(clients)]
        for step, live in enumerate([[b], [a, c3], [c3], [a, b, c3], [a], [b, c3]]):
            self.write_endpoints(proxy, node_port, live)
            names = {x.name for x in live}
            for i, c in enumerate(clients):
                tag, up = ask_tagged(self, c, dest, b"c%d s%d" % (i, step), timeout=1.0)
                self.assertIn(tag, names, "step %d: client %d answered by a removed endpoint" % (step, i))
                if current[i][0] in names:
                    self.assertEqual((tag, up), current[i], "step %d: client %d re-pinned needlessly" % (step, i))
                current[i] = (tag, up)
        proxy.assert_alive()


class IcmpUnreachable(UdpTestCase):
    """Row 51: ICMP port unreachable from an endpoint resets that session only."""

    def test_closed_endpoint_resets_its_session_only_listener_keeps_serving(self):
        a, b = self.tagged(2)
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, [a, b], ["--workers", "1"])
        dest = ("127.0.0.1", node_port)
        listeners = self.proxy_udp_listeners(proxy, node_port)
        c1, c2 = self.udp_client(), self.udp_client()
        tag1, _ = ask_tagged(self, c1, dest, b"c1")
        tag2, up2 = ask_tagged(self, c2, dest, b"c2")
        self.assertNotEqual(tag1, tag2, "not round-robin")
        dead = a if tag1 == a.name else b
        dead.close()  # the kernel now answers datagrams to its port with ICMP port unreachable
        answered_by = None
        for i in range(4):
            reply, _ = npp.udp_ask(c1, dest, b"c1 try %d" % i, 0.4)
            if reply is not None:
                answered_by = (i, npp.parse_tagged(reply)[0])
                break
            # The other session on the same listener is untouched.
            self.assertEqual(ask_tagged(self, c2, dest, b"c2 %d" % i), (tag2, up2))
        self.assertIsNotNone(answered_by, "c1 was never moved off the unreachable endpoint")
        self.assertEqual(answered_by[1], tag2)
        self.assertLessEqual(answered_by[0], 2, "c1 needed %d datagrams" % (answered_by[0] + 1))
        self.assertEqual(ask_tagged(self, c2, dest, b"c2 end"), (tag2, up2))
        # New clients are still served (whichever endpoint they land on, within two tries).
        for i in range(2):
            reply, _ = npp.udp_ask(self.udp_client(), dest, b"new %d" % i, 0.4)
            if reply is not None:
                break
        self.assertIsNotNone(reply, "the listener stopped serving new clients")
        self.assertEqual(sorted(self.proxy_udp_listeners(proxy, node_port)), sorted(listeners))
        proxy.assert_alive()

    def test_single_endpoint_restarted_on_same_port_serves_the_next_datagram(self):
        a = self.udp_backend(npp.tag_echo("b0"), name="b0")
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, [a])
        dest = ("127.0.0.1", node_port)
        client = self.udp_client()
        ask_tagged(self, client, dest, b"before")
        a.close()
        for i in range(3):
            self.assertEqual(npp.udp_ask(client, dest, b"down %d" % i, 0.3), (None, None))
        a.reopen()
        self.assertEqual(ask_tagged(self, client, dest, b"back", timeout=1.0)[0], "b0")
        proxy.assert_alive()


class TcpAndUdpOnOneNumber(UdpTestCase):
    """TCP and UDP on the same nodePort number, from --forward (prefixes) and from the file."""

    def dual_backend(self):
        """A TCP echo (greeting b"tcp|") and a UDP tag_echo("udp") on the same port number."""
        for _ in range(20):
            t = npp.Backend(npp.echo_handler(b"tcp|"), name="tcp")
            try:
                u = npp.UdpBackend(npp.tag_echo("udp"), port=t.port, name="udp")
            except OSError:
                t.close()
                continue
            self.addCleanup(t.close)
            self.addCleanup(u.close)
            return t, u
        self.fail("no port number free for both TCP and UDP")

    def tcp_exchange(self, port, payload=b"ping"):
        s = self.client(port)
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return npp.recv_all(s, 3.0)

    def test_forward_binds_both_and_prefixes_restrict(self):
        t, u = self.dual_backend()
        both, tcp_only, udp_only = npp.free_port_tcp_udp(), npp.free_port_tcp_udp(), npp.free_port_tcp_udp()
        target = "127.0.0.1:%d" % t.port
        self.proxy(["--forward", "%d=%s" % (both, target), "--forward", "tcp:%d=%s" % (tcp_only, target),
                    "--forward", "udp:%d=%s" % (udp_only, target)])
        for port in (both, tcp_only):
            self.assertEqual(self.tcp_exchange(port), b"tcp|ping")
        for port in (both, udp_only):
            c = self.udp_client()
            self.assertEqual(ask_tagged(self, c, ("127.0.0.1", port), b"ping")[0], "udp")
            c6 = self.udp_client(V6)
            self.assertEqual(ask_tagged(self, c6, ("::1", port), b"ping6")[0], "udp")
        self.assertEqual(npp.udp_refused(tcp_only), "refused")
        self.assertConnectRefused(udp_only)

    def test_file_service_with_tcp_and_udp_ports_on_one_number(self):
        t, u = self.dual_backend()
        node_port = npp.free_port_tcp_udp()
        service = npp.svc("dns", node_port, [t.addr], protocol="TCP", port=53, port_name="dns-tcp")
        service["ports"].append(dict(service["ports"][0], name="dns-udp", protocol="UDP"))
        self.proxy_for([service])
        self.assertEqual(self.tcp_exchange(node_port, b"q"), b"tcp|q")
        self.assertEqual(ask_tagged(self, self.udp_client(), ("127.0.0.1", node_port), b"q")[0], "udp")


class IdleTimeout(UdpTestCase):
    """--udp-idle-timeout: a session lives while traffic flows either way and ends after the
    timeout of silence; the client's next datagram then starts a new session (next endpoint)."""

    def test_session_expires_after_silence_not_before(self):
        a, b = self.tagged(2)
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, [a, b], ["--workers", "1", "--udp-idle-timeout", "1s"])
        dest = ("127.0.0.1", node_port)
        client = self.udp_client()
        first = ask_tagged(self, client, dest, b"0")
        # Traffic every 0.4 s for longer than the timeout: the same session throughout.
        t_end = time.monotonic() + 2.5
        while time.monotonic() < t_end:
            time.sleep(0.4)
            self.assertEqual(ask_tagged(self, client, dest, b"k"), first, "expired while in use")
        time.sleep(0.6)  # less than the timeout
        self.assertEqual(ask_tagged(self, client, dest, b"q"), first, "expired before the timeout")
        # Silence past the timeout (plus the sweep interval): the session and its socket go.
        self.wait_session_closed(proxy, first[1])
        second = ask_tagged(self, client, dest, b"after")
        self.assertNotEqual(second[0], first[0], "no new session after the idle timeout")
        self.assertNotEqual(second[1], first[1])
        self.wait_session_closed(proxy, second[1])
        third = ask_tagged(self, client, dest, b"again")
        self.assertEqual(third[0], first[0], "round-robin did not alternate on the next expiry")

    def test_expiry_waits_at_least_the_timeout(self):
        a, b = self.tagged(2)
        node_port = npp.free_port_tcp_udp()
        proxy = self.udp_proxy(node_port, [a, b], ["--workers", "1", "--udp-idle-timeout", "1s"])
        dest = ("127.0.0.1", node_port)
        client = self.udp_client()
        _, up = ask_tagged(self, client, dest, b"0")
        t_last = time.monotonic()
        self.assertTrue(self.session_socket_open(proxy, up))
        self.wait_session_closed(proxy, up)
        quiet = time.monotonic() - t_last
        self.assertGreaterEqual(quiet, 0.95, "session ended after only %.2fs of silence" % quiet)
        self.assertLess(quiet, 2.0, "session outlived the 1 s timeout by far (%.2fs)" % quiet)

    def test_traffic_from_the_endpoint_alone_keeps_the_session(self):
        def pusher(data, peer, backend):
            if data == b"push":
                def push():
                    for i in range(6):
                        time.sleep(0.3)
                        try:
                            backend.sock.sendto(b"b0|%d|push %d" % (peer[1], i), peer)
                        except OSError:
                            return
                threading.Thread(target=push, daemon=True).start()
            return b"b0|%d|%s" % (peer[1], data)
        a = self.udp_backend(pusher, name="b0")
        node_port = npp.free_port_tcp_udp()
        self.udp_proxy(node_port, [a], ["--workers", "1", "--udp-idle-timeout", "1s"])
        dest = ("127.0.0.1", node_port)
        client = self.udp_client()
        first = ask_tagged(self, client, dest, b"push")  # (tag, upstream port): the session
        for i in range(6):  # 1.8 s of endpoint -> client traffic only
            reply, _ = npp.udp_recv(client, 1.0)
            self.assertEqual(reply, b"b0|%d|push %d" % (first[1], i))
        self.assertEqual(ask_tagged(self, client, dest, b"still"), first,
                         "traffic from the endpoint did not refresh the session")


if __name__ == "__main__":
    npp.main()
