"""Reset propagation and a pod dying mid-stream (ACCEPTANCE rows 5, 6, 7)."""

import os
import socket
import threading
import time

import npp
from npp import V4, V6, MiB, KiB


class ResetPropagation(npp.ProxyTestCase):

    def one_port(self, handler, family=V4, extra=()):
        b = self.backend(handler, family=family, name="pod")
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("web", node_port, [b.addr])], extra=extra)
        return b, node_port, proxy

    def warm_baseline(self, proxy, node_port, family=V4):
        """Proxy fd count after one clean warm-up connection (lazy per-worker fds included)."""
        start = proxy.mark()
        s = npp.connect(node_port, family)
        s.shutdown(socket.SHUT_WR)
        npp.read_outcome(s, 3.0)
        s.close()
        proxy.wait_closed(1, start=start)
        return proxy.fd_count()

    # ---- row 5: pod aborts
    def test_pod_reset_reaches_client_as_reset_after_acknowledged_bytes(self):
        data = os.urandom(64 * KiB)

        def pod(conn, backend):
            if conn.recv(16) == b"":  # warm-up connection
                return
            conn.sendall(data)
            # Wait for the client's acknowledgement (it has every byte), then abort.
            ack = npp.recv_exact(conn, 3, timeout=5)
            backend.record(end="ack", ack=ack)
            npp.abort(conn)

        b, node_port, proxy = self.one_port(pod)
        baseline = self.warm_baseline(proxy, node_port)
        start = proxy.mark()
        s = self.client(node_port)
        local = s.getsockname()
        s.sendall(b"go")
        got = npp.recv_exact(s, len(data))
        self.assertTrue(got == data)
        s.sendall(b"ACK")
        outcome, extra, elapsed = npp.read_outcome(s, 3.0)
        self.assertEqual(outcome, "reset", "client must see ECONNRESET, not %s" % outcome)
        self.assertEqual(extra, b"")
        self.assertLess(elapsed, 1.0)
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "upstream_reset", rec)
        self.assertEqual(rec.get("bytes_out"), str(len(data)), rec)
        npp.wait_until(lambda: proxy.fd_count() <= baseline, 2.0, what="proxy fds back to baseline")

    def test_bytes_sent_just_before_pod_reset_are_delivered_then_reset(self):
        data = os.urandom(16 * KiB)

        def pod(conn, backend):
            if conn.recv(16) == b"":
                return
            conn.sendall(data)
            npp.abort(conn)  # immediately: the bytes are in flight when the RST follows

        b, node_port, proxy = self.one_port(pod)
        for i in range(5):
            s = self.client(node_port)
            s.sendall(b"go")
            outcome, got, _ = npp.read_outcome(s, 3.0)
            self.assertEqual(len(got), len(data), "round %d: %d of %d bytes delivered before %s"
                             % (i, len(got), len(data), outcome))
            self.assertTrue(got == data)
            self.assertEqual(outcome, "reset", "round %d: client must see ECONNRESET, not %s" % (i, outcome))

    # ---- row 6: client aborts mid-upload
    def test_client_reset_mid_upload_reaches_pod_and_frees_fds(self):
        b, node_port, proxy = self.one_port(npp.sink_handler())
        baseline = self.warm_baseline(proxy, node_port)
        b.wait_results(1)
        start = proxy.mark()
        s = npp.connect(node_port)
        local = s.getsockname()
        chunk = os.urandom(256 * KiB)
        s.sendall(chunk)
        npp.wait_until(lambda: proxy.fd_count() >= baseline + 2, 2.0, what="proxy to hold the connection")
        # The pod has started receiving the upload; now abort mid-way.
        npp.wait_until(lambda: b.accepted >= 2, 2.0, what="pod to accept")
        t0 = time.monotonic()
        npp.abort(s)
        res = b.wait_results(2, timeout=3)[1]
        self.assertEqual(res["end"], "reset", "pod must see ECONNRESET, not a clean EOF: %r" % res)
        self.assertLess(res["t"] - t0, 1.0)
        self.assertLessEqual(res["bytes"], len(chunk))
        rec = proxy.closed_for_client(local, start=start)
        self.assertEqual(rec.get("reason"), "client_reset", rec)
        npp.wait_until(lambda: proxy.fd_count() <= baseline, 1.0,
                       what="proxy fds back to baseline %d (now %d)" % (baseline, proxy.fd_count()))
        self.assertEqual([x for x in proxy.tcp_sockets() if x[0] != "LISTEN"], [])

    # ---- row 7: pod process killed mid-stream
    def test_killed_pod_aborts_its_connection_only(self):
        pods = [self.stream_server("pod-a"), self.stream_server("pod-b")]
        by_id = {p.ident: p for p in pods}
        node_port = npp.free_port()
        proxy = self.proxy_for([npp.svc("stream", node_port, [p.addr for p in pods])])
        start = proxy.mark()

        conns = {}
        for _ in range(2):
            s = self.client(node_port)
            # Unread bytes at the pod make the kernel answer its death with RST, as for a real
            # crashed server with pending input.
            s.sendall(b"x" * 1024)
            line = b""
            while not line.endswith(b"\n"):
                d = s.recv(1)
                self.assertNotEqual(d, b"", "stream ended before the id line")
                line += d
            conns[line.strip().decode()] = s
        self.assertEqual(sorted(conns), ["pod-a", "pod-b"], "round robin must use both pods")

        stats = {k: {"bytes": 0, "end": None} for k in conns}
        stop = threading.Event()

        def reader(name, s):
            s.settimeout(0.5)
            while not stop.is_set():
                try:
                    d = s.recv(1 << 18)
                except socket.timeout:
                    continue
                except ConnectionResetError:
                    stats[name]["end"] = "reset"
                    return
                except OSError as e:
                    stats[name]["end"] = "error %r" % e
                    return
                if not d:
                    stats[name]["end"] = "eof"
                    return
                stats[name]["bytes"] += len(d)

        threads = [threading.Thread(target=reader, args=(k, s), daemon=True) for k, s in conns.items()]
        for t in threads:
            t.start()
        try:
            npp.wait_until(lambda: all(v["bytes"] > 8 * MiB for v in stats.values()), 10,
                           what="both streams to flow")
            victim, survivor = "pod-a", "pod-b"
            local_victim = conns[victim].getsockname()
            by_id[victim].kill()
            npp.wait_until(lambda: stats[victim]["end"] is not None, 3, what="victim stream to end")
            self.assertEqual(stats[victim]["end"], "reset",
                             "client of the killed pod must see an abort (ECONNRESET), not %s" % stats[victim]["end"])
            mark = stats[survivor]["bytes"]
            npp.wait_until(lambda: stats[survivor]["bytes"] > mark + 32 * MiB, 10,
                           what="the other stream to keep flowing")
            self.assertIsNone(stats[survivor]["end"], stats)
        finally:
            stop.set()
            for t in threads:
                t.join(2)
        proxy.assert_alive()
        rec = proxy.closed_for_client(local_victim, start=start)
        self.assertEqual(rec.get("reason"), "upstream_reset", rec)
        # New connections still work (the dead pod refuses, failover reaches the live one).
        for _ in range(4):
            s = npp.connect(node_port)
            self.assertEqual(npp.recv_exact(s, 6, timeout=3), b"pod-b\n")
            npp.abort(s)


if __name__ == "__main__":
    npp.main()
