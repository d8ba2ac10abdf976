"""Half-close in both directions and the half-closed timeout (ACCEPTANCE rows 2, 3, 4; 57 for IPv6)."""

import hashlib
import os
import socket
import threading
import time

import npp
from npp import V4, V6, MiB, KiB

HALF_CLOSED_TIMEOUT = 1.0  # seconds, passed as --half-closed-timeout 1s


class HalfClose(npp.ProxyTestCase):

    def one_port(self, handler, family=V4, extra=()):
        b = self.backend(handler, family=family, name="pod")
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [b.addr])], extra=extra)
        return b, node_port, proxy

    # ---- row 2: client -> pod
    def check_client_half_close(self, family):
        reply_tail = os.urandom(1 * MiB)

        def reply(total, sha):
            return b"done %d %s\n" % (total, sha.encode()) + reply_tail

        b, node_port, proxy = self.one_port(npp.sink_handler(reply, delay_reply=0.3), family=family)
        payload = os.urandom(1 * MiB)
        start = proxy.mark()
        s = self.client(node_port, family)
        local = s.getsockname()
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = npp.recv_all(s, timeout=10)
        expected = b"done %d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode()) + reply_tail
        self.assertEqual(len(got), len(expected), "reply length after client half-close")
        self.assertTrue(got == expected, "reply bytes differ after client half-close")
        res = b.wait_results(1)[0]
        self.assertEqual(res["end"], "eof", "pod must see the client's FIN as EOF: %r" % res)
        self.assertEqual(res["bytes"], len(payload))
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "eof", rec)
        self.assertEqual(rec.get("bytes_in"), str(len(payload)), rec)
        self.assertEqual(rec.get("bytes_out"), str(len(expected)), rec)

    def test_client_half_close_is_forwarded_and_late_reply_delivered_ipv4(self):
        self.check_client_half_close(V4)

    def test_client_half_close_is_forwarded_and_late_reply_delivered_ipv6(self):
        self.check_client_half_close(V6)

    # ---- row 3: pod -> client (server speaks first, then shuts down its write side)
    def test_pod_half_close_reaches_client_which_can_still_send(self):
        banner = os.urandom(256 * KiB)

        def pod(conn, backend):
            conn.sendall(banner)
            conn.shutdown(socket.SHUT_WR)
            h = hashlib.sha256()
            total = 0
            while True:
                d = conn.recv(1 << 16)
                if not d:
                    break
                h.update(d)
                total += len(d)
            backend.record(end="eof", bytes=total, sha256=h.hexdigest())

        b, node_port, proxy = self.one_port(pod)
        start = proxy.mark()
        s = self.client(node_port)
        local = s.getsockname()
        got = npp.recv_all(s, timeout=5)  # data, then EOF
        self.assertTrue(got == banner, "banner: got %d bytes, expected %d" % (len(got), len(banner)))
        upload = os.urandom(512 * KiB)
        # Send a while after the EOF (a proxy that tears down on the first FIN has done so by
        # then): the delay is part of the scenario, not a synchronisation.
        time.sleep(0.3)
        s.sendall(upload)  # still allowed after EOF from the other side
        s.shutdown(socket.SHUT_WR)
        res = b.wait_results(1, timeout=5)[0]
        self.assertEqual(res["end"], "eof", res)
        self.assertEqual(res["bytes"], len(upload), res)
        self.assertEqual(res["sha256"], hashlib.sha256(upload).hexdigest())
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "eof", rec)
        self.assertEqual(rec.get("bytes_in"), str(len(upload)), rec)
        self.assertEqual(rec.get("bytes_out"), str(len(banner)), rec)

    # ---- row 4: half-closed timeout
    def baseline_fds(self, proxy, node_port):
        """Fd count of the proxy after one complete warm-up connection."""
        start = proxy.mark()
        s = npp.connect(node_port)
        s.sendall(b"warm-up")
        s.shutdown(socket.SHUT_WR)
        npp.read_outcome(s, 3.0)
        s.close()
        proxy.wait_closed(1, start=start)
        return proxy.fd_count()

    def assert_no_lingering_sockets(self, proxy, baseline_fds):
        npp.wait_until(lambda: proxy.fd_count() <= baseline_fds, 2.0,
                       what="proxy fd count back to %d (now %d)" % (baseline_fds, proxy.fd_count()))
        non_listening = [s for s in proxy.tcp_sockets() if s[0] != "LISTEN"]
        self.assertEqual(non_listening, [], "proxy still owns TCP sockets")

    def test_client_fin_then_silent_pod_closed_at_half_closed_timeout(self):
        n = 20
        b, node_port, proxy = self.one_port(npp.sink_handler(hold_after_eof=True),
                                            extra=["--half-closed-timeout", "1s"])
        start = proxy.mark()
        clients = [self.client(node_port) for _ in range(n)]
        for s in clients:
            s.sendall(b"request")
        t_fin = time.monotonic()
        for s in clients:
            s.shutdown(socket.SHUT_WR)
        res = b.wait_results(n, timeout=3)
        self.assertTrue(all(r["end"] == "eof" for r in res), "pod must see every FIN: %r" % res)
        results = [None] * n

        def watch(i):
            results[i] = npp.read_outcome(clients[i], HALF_CLOSED_TIMEOUT + 4)
        threads = [threading.Thread(target=watch, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HALF_CLOSED_TIMEOUT + 6)
        for i, (outcome, data, _) in enumerate(results):
            self.assertIn(outcome, ("eof", "reset"), "client %d: connection not closed (%s)" % (i, outcome))
            self.assertEqual(data, b"", "client %d got unexpected bytes" % i)
        elapsed = time.monotonic() - t_fin
        self.assertGreaterEqual(elapsed, HALF_CLOSED_TIMEOUT * 0.8, "closed before the half-closed timeout")
        self.assertLess(elapsed, HALF_CLOSED_TIMEOUT + 1.5, "closed too late")
        recs = proxy.wait_closed(n, start=start)
        self.assertEqual({r.get("reason") for r in recs}, {"half_closed_timeout"}, recs)
        # No sockets left in CLOSE_WAIT / FIN_WAIT on the proxy's side.
        npp.wait_until(lambda: all(s[0] == "LISTEN" for s in proxy.tcp_sockets()), 2.0,
                       what="the proxy to own only listening sockets")

    def test_pod_fin_then_silent_client_closed_at_half_closed_timeout(self):
        def pod(conn, backend):
            conn.sendall(b"hello")
            conn.shutdown(socket.SHUT_WR)
            outcome, data, elapsed = npp.read_outcome(conn, HALF_CLOSED_TIMEOUT + 5)
            backend.record(end=outcome, bytes=len(data), elapsed=elapsed)

        b, node_port, proxy = self.one_port(pod, extra=["--half-closed-timeout", "1s"])
        start = proxy.mark()
        s = self.client(node_port)
        local = s.getsockname()
        got = npp.recv_all(s, timeout=3)
        self.assertEqual(got, b"hello")
        # the client stays silent and keeps its socket open
        res = b.wait_results(1, timeout=HALF_CLOSED_TIMEOUT + 6)[0]
        self.assertIn(res["end"], ("eof", "reset"), "pod's connection must be closed: %r" % res)
        self.assertGreaterEqual(res["elapsed"], HALF_CLOSED_TIMEOUT * 0.8, res)
        self.assertLess(res["elapsed"], HALF_CLOSED_TIMEOUT + 1.5, res)
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "half_closed_timeout", rec)
        npp.wait_until(lambda: all(x[0] == "LISTEN" for x in proxy.tcp_sockets()), 2.0,
                       what="the proxy to own only listening sockets")

    def test_half_closed_connection_with_moving_data_is_not_cut(self):
        # "closed if nothing moves for this long": a pod trickling a reply every 0.3 s for
        # 2.4 s after the client's FIN outlives a 1 s half-closed timeout.
        def pod(conn, backend):
            while conn.recv(1 << 16):
                pass
            for i in range(8):
                conn.sendall(b"%d" % i)
                time.sleep(0.3)  # the trickle is the behaviour under test
            conn.shutdown(socket.SHUT_WR)
            backend.record(end="done")

        b, node_port, proxy = self.one_port(pod, extra=["--half-closed-timeout", "1s"])
        start = proxy.mark()
        s = self.client(node_port)
        local = s.getsockname()
        s.sendall(b"go")
        s.shutdown(socket.SHUT_WR)
        outcome, data, elapsed = npp.read_outcome(s, 8)
        self.assertEqual(outcome, "eof", "trickling half-closed connection ended with %s after %.2fs"
                         % (outcome, elapsed))
        self.assertEqual(data, b"01234567")
        self.assertGreater(elapsed, 2.0)
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "eof", rec)

    def test_closed_half_closed_connections_release_fds(self):
        b, node_port, proxy = self.one_port(npp.sink_handler(hold_after_eof=True),
                                            extra=["--half-closed-timeout", "1s"])
        baseline = self.baseline_fds(proxy, node_port)
        start = proxy.mark()
        clients = [self.client(node_port) for _ in range(10)]
        for s in clients:
            s.sendall(b"x")
            s.shutdown(socket.SHUT_WR)
        b.wait_results(1 + 10, timeout=3)
        npp.wait_until(lambda: proxy.fd_count() >= baseline + 10, 2.0,
                       what="the proxy to hold the half-closed connections")
        proxy.wait_closed(10, timeout=HALF_CLOSED_TIMEOUT + 3, start=start)
        self.assert_no_lingering_sockets(proxy, baseline)

    # ---- a FIN right behind small messages: the relay's read takes the data and the FIN
    # together, so the FIN's epoll edge is spent; the proxy must still see the end (TCP_INQ).
    def test_fin_right_after_small_messages_is_not_lost(self):
        exchanges = 4  # > 2: the endpoint's socket gets TCP_INQ from the second reply on

        def pod(conn, backend):
            f = conn.makefile("rb")
            for i in range(exchanges):
                line = f.readline()
                if not line:
                    return
                if i == exchanges - 1:
                    conn.sendall(b"bye " + line)  # last reply and FIN back to back
                    conn.shutdown(socket.SHUT_WR)
                else:
                    conn.sendall(b"ok " + line)
            rest = f.read()  # the client's FIN, passed on by the proxy
            backend.record(end="eof", rest=len(rest))

        b, node_port, proxy = self.one_port(pod)
        rounds = 40
        for r in range(rounds):
            s = self.client(node_port)
            for i in range(exchanges - 1):
                msg = b"m%d-%d\n" % (r, i)
                s.sendall(msg)
                self.assertEqual(npp.recv_exact(s, len(msg) + 3, timeout=3), b"ok " + msg)
            last = b"m%d-last\n" % r
            s.sendall(last)
            # The reply and then EOF within the bound; a lost FIN leaves recv_all waiting.
            self.assertEqual(npp.recv_all(s, timeout=3), b"bye " + last, "round %d" % r)
            # The other way: a last message and the client's FIN back to back.
            s.sendall(b"tail")
            s.shutdown(socket.SHUT_WR)
            s.close()
        results = b.wait_results(rounds, timeout=10)
        self.assertEqual([r["end"] for r in results], ["eof"] * rounds)
        self.assertEqual([r["rest"] for r in results], [4] * rounds)


if __name__ == "__main__":
    npp.main()
