"""Byte integrity both ways at once, small buffers, and the --max-connections cap
(ACCEPTANCE rows 22 without loss (P1, loopback only), 19 at small scale, 59 in part)."""

import hashlib
import os
import socket
import threading
import time

import npp
from npp import V4, V6, MiB, KiB


def duplex_pod(size):
    """Pod that sends `size` random bytes while reading everything the client sends; records the
    digests of both directions, then shuts down its write side."""
    def handler(conn, backend):
        data = os.urandom(size)
        sent = {}

        def send():
            try:
                view = memoryview(data)
                for off in range(0, len(data), 256 * KiB):
                    conn.sendall(view[off:off + 256 * KiB])
                conn.shutdown(socket.SHUT_WR)
                sent["ok"] = True
            except OSError as e:
                sent["error"] = repr(e)
        t = threading.Thread(target=send, daemon=True)
        t.start()
        h = hashlib.sha256()
        total = 0
        end = "eof"
        while True:
            try:
                d = conn.recv(1 << 20)
            except OSError as e:
                end = repr(e)
                break
            if not d:
                break
            h.update(d)
            total += len(d)
        t.join(60)
        backend.record(end=end, bytes=total, sha256=h.hexdigest(), sent_sha256=hashlib.sha256(data).hexdigest(),
                       send=sent)
    return handler


def duplex_client(port, family, size, out):
    data = os.urandom(size)
    s = npp.connect(port, family)
    out["local"] = s.getsockname()
    err = {}

    def send():
        try:
            view = memoryview(data)
            for off in range(0, len(data), 256 * KiB):
                s.sendall(view[off:off + 256 * KiB])
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err["send"] = repr(e)
    t = threading.Thread(target=send, daemon=True)
    t.start()
    h = hashlib.sha256()
    total = 0
    s.settimeout(30)
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            h.update(d)
            total += len(d)
    except OSError as e:
        err["recv"] = repr(e)
    t.join(30)
    s.close()
    out.update(sent_sha256=hashlib.sha256(data).hexdigest(), bytes=total, sha256=h.hexdigest(), err=err)


class Integrity(npp.ProxyTestCase):

    def run_duplex(self, n_conns, size, family=V4, extra=(), before=None):
        pod = self.backend(duplex_pod(size), family=family, name="duplex")
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("bulk", node_port, [pod.addr])], extra=extra)
        if before:
            before(proxy)
        start = proxy.mark()
        outs = [dict() for _ in range(n_conns)]
        threads = [threading.Thread(target=duplex_client, args=(node_port, family, size, o))
                   for o in outs]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(50)
        elapsed = time.monotonic() - t0
        print("%d x %d MiB each way in %.2fs" % (n_conns, size // MiB, elapsed))
        results = pod.wait_results(n_conns, timeout=10)
        pod_received = sorted(r["sha256"] for r in results)
        pod_sent = sorted(r["sent_sha256"] for r in results)
        for o in outs:
            self.assertEqual(o.get("err"), {}, o)
            self.assertEqual(o["bytes"], size)
        for r in results:
            self.assertEqual(r["end"], "eof", r)
            self.assertEqual(r["bytes"], size, r)
        self.assertEqual(pod_received, sorted(o["sent_sha256"] for o in outs), "client->pod bytes corrupted")
        self.assertEqual(pod_sent, sorted(o["sha256"] for o in outs), "pod->client bytes corrupted")
        recs = proxy.wait_closed(n_conns, start=start)
        for r in recs:
            self.assertEqual((r.get("reason"), r.get("bytes_in"), r.get("bytes_out")),
                             ("eof", str(size), str(size)), r)
        return proxy

    def test_64_mib_each_way_simultaneously(self):
        self.run_duplex(1, 64 * MiB)

    def test_64_mib_each_way_ipv6(self):
        self.run_duplex(1, 64 * MiB, family=V6)

    def test_small_buffers_single_worker_four_connections(self):
        self.run_duplex(4, 8 * MiB, extra=["--buffer-size", "1024", "--workers", "1"])

    def test_splice_pipes_have_the_configured_capacity(self):
        # Bulk moves through pipes of --splice-pipe-size (512 KiB by default; 0 keeps the kernel's
        # 64 KiB), bytes intact either way. Pipes stay cached in the worker after the transfer.
        for extra, want in (([], 512 * KiB), (["--splice-pipe-size", "0"], 64 * KiB),
                            (["--splice-pipe-size", "262144"], 256 * KiB)):
            with self.subTest(extra=extra):
                idle = {}  # pipes before any traffic (Asio's signal pipe): not splice pipes
                proxy = self.run_duplex(1, 16 * MiB, extra=extra + ["--workers", "1"],
                                        before=lambda p: idle.update(p.pipe_capacities()))
                caps = [c for pipe, c in proxy.pipe_capacities().items() if pipe not in idle]
                self.assertTrue(caps, "no splice pipe after a bulk transfer")
                self.assertEqual(set(caps), {want}, caps)


def reversing_pod(conn, backend):
    """Pod for request/response: reads an 8-byte length and that many bytes, answers with the
    bytes reversed in one write; repeats until EOF."""
    served = 0
    while True:
        try:
            head = npp.recv_exact(conn, 8, timeout=10)
        except AssertionError:  # EOF between messages
            break
        body = npp.recv_exact(conn, int.from_bytes(head, "big"), timeout=10)
        conn.sendall(body[::-1])
        served += 1
    conn.shutdown(socket.SHUT_WR)
    backend.record(end="eof", served=served)


class MessageSizes(npp.ProxyTestCase):
    """One message at a time each way, sized around the relay's read boundaries: the 512-byte
    read a direction waits with, the pool buffer a longer message continues into in the same
    receive (--buffer-size), and a whole buffer, where bulk switches to splice."""

    SIZES = (1, 511, 512, 513, 1400, 4096, 32 * KiB - 8, 32 * KiB - 1, 32 * KiB, 32 * KiB + 1, 100_000, 1)

    def exchange_all(self, extra, sizes):
        pod = self.backend(reversing_pod, name="reverse")
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("rr", node_port, [pod.addr])], extra=extra)
        start = proxy.mark()
        s = self.client(node_port)
        for n in sizes:
            body = os.urandom(n)
            s.sendall(n.to_bytes(8, "big") + body)
            self.assertEqual(npp.recv_exact(s, n, timeout=10), body[::-1], "message of %d bytes" % n)
        local = s.getsockname()
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        self.assertEqual(s.recv(1), b"", "the pod's FIN must reach the client")
        s.close()
        self.assertEqual(pod.wait_results(1)[0]["served"], len(sizes))
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual((rec.get("reason"), rec.get("bytes_in"), rec.get("bytes_out")),
                         ("eof", str(sum(sizes) + 8 * len(sizes)), str(sum(sizes))), rec)

    def test_sizes_around_the_read_boundaries(self):
        self.exchange_all(["--workers", "1"], self.SIZES)

    def test_sizes_without_splice(self):
        self.exchange_all(["--workers", "1", "--splice", "false"], self.SIZES)

    def test_sizes_with_small_buffers(self):
        # A pool buffer of 1 KiB: a message of 513-1024 bytes fits one receive, longer ones go on
        # through the buffer in several.
        self.exchange_all(["--workers", "1", "--buffer-size", "1024"], (1, 512, 513, 1024, 1025, 5000, 1))


class MaxConnections(npp.ProxyTestCase):

    def test_sixth_client_is_reset_while_five_stay_usable(self):
        b = self.backend(npp.echo_handler(), name="echo")
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [b.addr])], extra=["--max-connections", "5"])
        clients = []
        for i in range(5):
            s = self.client(node_port)
            s.sendall(b"hello %d" % i)
            self.assertEqual(npp.recv_exact(s, 7), b"hello %d" % i)
            clients.append(s)
        start = proxy.mark()
        t0 = time.monotonic()
        outcome, data, local = npp.probe(node_port, send=b"over", timeout=2.0)
        elapsed = time.monotonic() - t0
        self.assertEqual(outcome, "reset", "client over --max-connections must be reset, got %s" % outcome)
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 0.5)
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "limit", rec)
        self.assertEqual(b.accepted, 5, "the rejected client must not reach the pod")
        for i, s in enumerate(clients):
            s.sendall(b"again %d" % i)
            self.assertEqual(npp.recv_exact(s, 7), b"again %d" % i)
        # One leaves: a new client fits again (after the proxy has noticed the close).
        start = proxy.mark()
        gone = clients.pop()
        gone_local = gone.getsockname()
        gone.close()
        proxy.closed_for_client(gone_local, start=start)
        s = self.client(node_port)
        s.sendall(b"new one")
        self.assertEqual(npp.recv_exact(s, 7), b"new one")
        # And the limit holds again.
        self.assertEqual(npp.probe(node_port, send=b"over")[0], "reset")


if __name__ == "__main__":
    npp.main()
