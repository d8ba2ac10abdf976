"""Resource limits: fd exhaustion, slow reader backpressure, idle timeout (ACCEPTANCE rows 18, 21, 23)."""

import errno
import hashlib
import os
import selectors
import socket
import threading
import time

import npp
from npp import V4, MiB, KiB


def open_many(port, n, timeout):
    """n non-blocking connects to 127.0.0.1:port; waits (bounded) for each to complete.
    Returns (connected sockets, failed count, pending sockets)."""
    sel = selectors.DefaultSelector()
    socks = []
    for _ in range(n):
        s = socket.socket(V4, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            continue
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE)
    connected, failed = [], 0
    pending = set(socks)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            s = key.fileobj
            sel.unregister(s)
            pending.discard(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected.append(s)
            else:
                failed += 1
                s.close()
    sel.close()
    return connected, failed, list(pending)


def ping_all(socks, timeout):
    """Sends b'ping' on every socket and classifies: 'ok' (echo came back), 'rejected' (reset,
    EOF or EPIPE), 'hung' (nothing within the deadline). Returns {class: [sockets]}."""
    out = {"ok": [], "rejected": [], "hung": []}
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        try:
            s.send(b"ping")
        except OSError:
            out["rejected"].append(s)
            continue
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while bufs and time.monotonic() < deadline:
        for key, _ in sel.select(0.1):
            s = key.fileobj
            try:
                d = s.recv(64)
            except BlockingIOError:
                continue
            except OSError:
                d = None
            if not d:
                sel.unregister(s)
                del bufs[s]
                out["rejected"].append(s)
                continue
            bufs[s] += d
            if bufs[s] == b"ping":
                sel.unregister(s)
                del bufs[s]
                out["ok"].append(s)
    out["hung"] = list(bufs)
    sel.close()
    return out


def echo_roundtrip(port, payload=b"hello", timeout=2.0):
    s = npp.connect(port, timeout=timeout)
    try:
        s.sendall(payload)
        return npp.recv_exact(s, len(payload), timeout) == payload
    finally:
        s.close()


class FdExhaustion(npp.ProxyTestCase):

    # ---- row 18
    def test_1000_clients_against_256_fds(self):
        b = self.backend(npp.echo_handler(), name="echo", backlog=1024)
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [b.addr])],
                               prefix=["prlimit", "--nofile=256:256", "--"])
        with open("/proc/%d/limits" % proxy.pid) as f:
            self.assertIn("256", [l for l in f if l.startswith("Max open files")][0])
        self.assertTrue(echo_roundtrip(node_port))
        baseline = proxy.fd_count()

        connected, failed, pending = open_many(node_port, 1000, timeout=5.0)
        socks = connected + pending
        self.addCleanup(lambda: [s.close() for s in socks])
        proxy.assert_alive()
        classes = ping_all(connected, timeout=5.0)
        ok, rejected, hung = len(classes["ok"]), len(classes["rejected"]), len(classes["hung"])
        summary = ("1000 clients: connect failed=%d pending=%d; ping ok=%d rejected=%d hung=%d"
                   % (failed, len(pending), ok, rejected, hung))
        print(summary)
        proxy.assert_alive()
        self.assertGreaterEqual(ok, 1, summary)
        self.assertLessEqual(ok, 128, "more proxied connections than 256 fds allow: " + summary)
        self.assertGreaterEqual(rejected + failed, 1000 - 128, summary)
        self.assertEqual(hung + len(pending), 0, "clients over the limit must be refused/reset, not left hanging: " + summary)

        # Saturated: the working clients stay open, a new client arrives every 0.2 s. The proxy
        # must not spin (CPU < 5 % of a core, plus a little for tick granularity).
        cpu0, t0 = proxy.cpu_seconds(), time.monotonic()
        extra_results = []
        for _ in range(10):
            try:
                s = npp.connect(node_port, timeout=1.0)
                s.send(b"ping")
                extra_results.append(npp.read_outcome(s, 0.15)[0])
                s.close()
            except OSError as e:
                extra_results.append("connect:%r" % e)
            time.sleep(0.2)  # pacing of the probe load, not synchronisation
        cpu1, t1 = proxy.cpu_seconds(), time.monotonic()
        cpu_share = (cpu1 - cpu0) / (t1 - t0)
        print("CPU while saturated: %.3fs over %.2fs (%.1f%%); extra clients: %r"
              % (cpu1 - cpu0, t1 - t0, 100 * cpu_share, extra_results))
        self.assertLess(cpu1 - cpu0, 0.05 * (t1 - t0) + 0.04, "proxy busy while saturated")
        self.assertTrue(all(r in ("reset", "eof") or r.startswith("connect:") for r in extra_results),
                        "new clients while saturated: %r" % extra_results)
        # the proxied ones still work
        again = ping_all(classes["ok"], timeout=3.0)
        self.assertEqual(len(again["ok"]), ok, "proxied clients broke while saturated")

        # Free everything: the proxy recovers.
        for s in socks:
            s.close()
        npp.wait_until(lambda: _try(lambda: echo_roundtrip(node_port, timeout=0.5)), 5.0,
                       interval=0.05, what="a new connection to work after the clients left")
        for i in range(20):
            self.assertTrue(echo_roundtrip(node_port), "round trip %d after recovery" % i)
        npp.wait_until(lambda: proxy.fd_count() <= baseline, 5.0,
                       what="proxy fds back to baseline %d (now %d)" % (baseline, proxy.fd_count()))
        proxy.assert_alive()


def _try(f):
    try:
        return f()
    except OSError:
        return False


class SlowReader(npp.ProxyTestCase):

    TOTAL = 256 * MiB

    # ---- row 21
    def test_slow_reader_throttles_pod_and_proxy_memory_stays_bounded(self):
        block = os.urandom(1 * MiB)
        state = {"sent": 0, "sha": None}

        def pod(conn, backend):
            h = hashlib.sha256()
            view = memoryview(block)
            try:
                while state["sent"] < self.TOTAL:
                    off = (state["sent"] // (64 * KiB) * 4096) % (len(block) - 64 * KiB)
                    chunk = view[off:off + 64 * KiB]
                    conn.sendall(chunk)
                    h.update(chunk)
                    state["sent"] += len(chunk)
                conn.shutdown(socket.SHUT_WR)
            except OSError as e:
                backend.record(end="error", error=repr(e))
                return
            state["sha"] = h.hexdigest()
            backend.record(end="done")

        b = self.backend(pod, name="pusher")
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("bulk", node_port, [b.addr])])
        rss0 = proxy.rss_kib()
        s = socket.socket(V4, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * KiB)  # keep our own buffer small
        s.settimeout(3)
        s.connect(("127.0.0.1", node_port))
        h = hashlib.sha256()
        received = 0
        rss_max = rss0
        t_end = time.monotonic() + 3.0
        next_read = time.monotonic()
        while time.monotonic() < t_end:  # ~1 MiB/s: 64 KiB every 1/16 s
            now = time.monotonic()
            if now >= next_read:
                d = s.recv(64 * KiB)
                self.assertNotEqual(d, b"", "stream ended early")
                h.update(d)
                received += len(d)
                next_read += 1 / 16
            rss_max = max(rss_max, proxy.rss_kib())
            time.sleep(0.01)  # pacing of the slow reader
        sent_during = state["sent"]
        print("slow phase: client read %.1f MiB, pod sent %.1f MiB, proxy RSS %d -> max %d KiB"
              % (received / MiB, sent_during / MiB, rss0, rss_max))
        self.assertLess(rss_max - rss0, 16 * 1024, "proxy RSS grew by %d KiB behind a slow reader"
                        % (rss_max - rss0))
        self.assertLess(sent_during, 64 * MiB, "pod was not flow-controlled: sent %d MiB while the client read %d MiB"
                        % (sent_during // MiB, received // MiB))
        # Drain at full speed: every byte arrives intact.
        s.settimeout(10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            d = s.recv(1 << 20)
            if not d:
                break
            h.update(d)
            received += len(d)
        self.assertEqual(received, self.TOTAL)
        b.wait_results(1, timeout=5)
        self.assertEqual(h.hexdigest(), state["sha"], "stream corrupted")


class IdleTimeout(npp.ProxyTestCase):

    def setUp(self):
        super().setUp()

        def pod(conn, backend):
            # echo until the connection ends; record how and when
            t0 = time.monotonic()
            total = 0
            while True:
                try:
                    d = conn.recv(4096)
                except ConnectionResetError:
                    backend.record(end="reset", t=time.monotonic() - t0, bytes=total)
                    return
                if not d:
                    backend.record(end="eof", t=time.monotonic() - t0, bytes=total)
                    return
                total += len(d)
                conn.sendall(d)

        self.b = self.backend(pod, name="echo")
        self.node_port = npp.free_port()
        self.proxy_ = self.proxy_for([npp.svc("web", self.node_port, [self.b.addr])],
                                     extra=["--idle-timeout", "1s", "--half-closed-timeout", "1s"])

    # ---- row 23
    def test_connection_without_bytes_closed_on_both_sides_at_idle_timeout(self):
        start = self.proxy_.mark()
        s = self.client(self.node_port)
        local = s.getsockname()
        outcome, data, elapsed = npp.read_outcome(s, 4.0)
        self.assertIn(outcome, ("eof", "reset"), "idle connection not closed: %s" % outcome)
        self.assertGreaterEqual(elapsed, 0.8, "closed after %.2fs, before the idle timeout" % elapsed)
        self.assertLess(elapsed, 2.5, "closed after %.2fs" % elapsed)
        res = self.b.wait_results(1, timeout=2)[0]
        self.assertIn(res["end"], ("eof", "reset"))
        self.assertLess(res["t"], 2.5)
        rec = self.proxy_.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "idle_timeout", rec)

    def test_trickle_keeps_connection_alive_then_idle_closes(self):
        start = self.proxy_.mark()
        s = self.client(self.node_port)
        local = s.getsockname()
        t0 = time.monotonic()
        for i in range(10):  # 3 s of traffic, a byte every 0.3 s, well past the 1 s timeout
            s.sendall(b"%d" % i)
            self.assertEqual(npp.recv_exact(s, 1, timeout=1), b"%d" % i, "echo %d" % i)
            time.sleep(0.3)  # the trickle is the behaviour under test
        self.assertGreater(time.monotonic() - t0, 2.9)
        t_last = time.monotonic()
        outcome, data, _ = npp.read_outcome(s, 4.0)
        idle = time.monotonic() - t_last
        self.assertIn(outcome, ("eof", "reset"))
        self.assertGreaterEqual(idle, 0.6)
        self.assertLess(idle, 2.5)
        rec = self.proxy_.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "idle_timeout", rec)
        self.assertEqual(rec.get("bytes_in"), "10", rec)

    def test_one_way_trickle_also_keeps_connection_alive(self):
        # Bytes moving pod -> client only (client silent) count as activity.
        def talker(conn, backend):
            for i in range(10):
                conn.sendall(b"%d" % i)
                time.sleep(0.3)  # the trickle is the behaviour under test
            conn.shutdown(socket.SHUT_WR)
            backend.record(end="done")

        b = self.backend(talker, name="talker")
        port = npp.free_port()
        p = self.proxy_for([npp.svc("talk", port, [b.addr])], extra=["--idle-timeout", "1s"])
        start = p.mark()
        s = self.client(port)
        local = s.getsockname()
        outcome, data, elapsed = npp.read_outcome(s, 6.0)
        self.assertEqual(data, b"0123456789")
        self.assertEqual(outcome, "eof", "one-way trickle cut after %.2fs by %s" % (elapsed, outcome))
        s.close()
        rec = p.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "eof", rec)
        self.assertEqual(rec.get("bytes_out"), "10", rec)


if __name__ == "__main__":
    npp.main()
