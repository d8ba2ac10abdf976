"""TLS under abuse (issue 5, TLS part): ACCEPTANCE rows 25 (handshake slowloris: timeout and the
cap on handshakes in progress), 26 (a bounded handshake flood next to an established stream),
37 (garbage on the TLS port), 38 (OpenSSL error-queue isolation on one worker) and the TLS part
of row 20 (memory of idle TLS connections)."""

import unittest
import hashlib
import os
import select
import socket
import ssl
import subprocess
import threading
import time

import npp
import tls_support as T
from test_tls import TlsCase

# An SSLv2 (compatibility) ClientHello: 2-byte header with the high bit set, msg_type 1, version
# 3.1, 9 bytes of cipher specs, no session id, a 16-byte challenge.
SSLV2_HELLO = (bytes.fromhex("8022" "01" "0301" "0009" "0000" "0010") + bytes.fromhex("010080" "0700c0" "030080")
               + os.urandom(16))


class TestSlowHandshakes(TlsCase):
    def test_handshake_timeout_and_cap(self):
        """Row 25: clients that connect and never finish the ClientHello (one byte sent, or
        nothing) are closed at --tls-handshake-timeout; at most --tls-max-handshakes are in
        progress: one more is reset at once; once the slow ones are gone others handshake again,
        and below the cap a normal client handshakes while slow ones wait."""
        b = self.backend(npp.echo_handler())
        p, port, _ = self.start_tls(backend=b, extra=["--tls-handshake-timeout", "1500ms", "--tls-max-handshakes", "4"])
        slow = []
        for i in range(2):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"\x16"[: i])  # nothing, or the first byte of a record
            slow.append(s)
        # Below the cap: a real client still handshakes while two slow ones hold slots.
        self.assertEqual(T.tls_outcome(port), ("ok", b"ping"))
        for i in range(2):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"\x16\x03\x01")
            slow.append(s)
        npp.wait_until(lambda: T.metric_value(T.metrics(self.metrics_port), "nodeport_proxy_connections_active") == 4, 3,
                       what="four handshakes in progress")
        t0 = time.monotonic()
        outcome, _, _ = npp.probe(port, timeout=3)  # the fifth handshake in progress
        self.assertEqual(outcome, "reset")
        self.assertLess(time.monotonic() - t0, 1.0)
        for s in slow:
            outcome, _, _ = npp.read_outcome(s, 5)
            self.assertIn(outcome, ("eof", "reset"))
            s.close()
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 4.0)
        recs = p.wait_closed(5, where=lambda r: r["reason"].startswith("tls_handshake"))
        reasons = sorted(r["reason"] for r in recs)
        self.assertEqual(reasons.count("tls_handshake_timeout"), 4, reasons)
        self.assertEqual(reasons.count("tls_handshake_limit"), 1, reasons)
        self.assertEqual(T.tls_outcome(port), ("ok", b"ping"))
        self.assertEqual(b.accepted, 2)
        text = T.metrics(self.metrics_port)
        self.assertEqual(T.metric_value(text, "nodeport_proxy_tls_handshake_errors_total", reason="timeout"), 4)
        self.assertEqual(T.metric_value(text, "nodeport_proxy_tls_handshake_errors_total", reason="limit"), 1)

    def test_drip_fed_client_hello_is_closed_at_the_timeout(self):
        """Row 25: a ClientHello dripped a byte at a time is closed at the handshake timeout,
        not kept alive by each byte."""
        p, port, _ = self.start_tls(extra=["--tls-handshake-timeout", "1s"])
        hello = __import__("test_tls").client_hello_with_sni(b"localhost")
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        t0 = time.monotonic()
        closed = None
        for byte in hello:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed = time.monotonic() - t0
                break
            time.sleep(0.1)  # the drip is the behaviour under test
            if time.monotonic() - t0 > 3:
                break
        if closed is None:
            outcome, _, _ = npp.read_outcome(s, 3)
            closed = time.monotonic() - t0
        s.close()
        self.assertLess(closed, 2.5)
        p.wait_closed(1, where=lambda r: r["reason"] == "tls_handshake_timeout")


class TestGarbage(TlsCase):
    def test_garbage_is_closed_fast_without_a_backend_connect(self):
        """Row 37: plaintext HTTP, random bytes, an SSLv2 hello and a bad record: fast close,
        counted as protocol errors, no endpoint connection, no crash. Input too short to judge (a
        lone byte could start a record) waits for more and is closed by the handshake timeout."""
        b = self.backend(npp.echo_handler())
        p, port, _ = self.start_tls(backend=b, extra=["--tls-handshake-timeout", "1s"])

        def noise(n):
            # Not a handshake record (0x16) and not an SSLv2 header (high bit): judged at once,
            # unless the second byte is 0x03 (a plausible record version: OpenSSL then waits for
            # the whole record before judging its type, and the handshake timeout closes it).
            rnd = __import__("random")
            first = rnd.choice([x for x in range(0x80) if x != 0x16])
            second = rnd.choice([x for x in range(0x100) if x != 0x03])
            return bytes([first, second]) + os.urandom(n - 2)
        inputs = [(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1.0), (SSLV2_HELLO, 1.0),
                  (b"\x16\x03\x01\x00\x05" + b"\x02\x00\x00\x01\x00", 1.0)]
        inputs += [(noise(n), 1.0) for n in (5, 7, 100, 5000, 20000) for _ in range(4)]
        inputs += [(os.urandom(1), 2.5) for _ in range(2)]
        for data, limit in inputs:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            t0 = time.monotonic()
            try:
                s.sendall(data)
            except OSError:
                pass
            outcome, reply, _ = npp.read_outcome(s, 4)
            s.close()
            self.assertIn(outcome, ("eof", "reset"), data[:20])
            self.assertLess(time.monotonic() - t0, limit, data[:20])
        p.assert_alive()
        self.assertEqual(b.accepted, 0)
        T.wait_metric(self.metrics_port, "nodeport_proxy_tls_handshake_errors_total", 20, reason="protocol")
        self.assertEqual(T.tls_outcome(port), ("ok", b"ping"))


class TestErrorQueueIsolation(TlsCase):
    def test_failing_handshakes_never_break_a_stream_on_the_same_worker(self):
        """Row 38: with one worker, a client loops failing handshakes (TLS 1.0, bad certs,
        garbage) while another streams 32 MiB both ways through TLS; the stream arrives intact."""
        pk = T.pki()
        b = self.backend(npp.echo_handler())
        p, port, _ = self.start_tls(backend=b, extra=["--workers", "1"],
                                    tls={"clientCAFile": pk["client-ca.pem"], "crlFile": pk["crl.pem"]})
        stop = threading.Event()
        failures = [0]

        def fail_loop():
            certs = [None, "client-expired", "client-revoked", "other-client"]
            i = 0
            while not stop.is_set():
                if i % 3 == 0:
                    subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-tls1",
                                    "-cipher", "DEFAULT:@SECLEVEL=0"], input=b"", stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=10)
                else:
                    T.tls_outcome(port, cert=certs[i % len(certs)], timeout=3)
                failures[0] += 1
                i += 1
        threads = [threading.Thread(target=fail_loop, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        s = T.tls_connect(port, T.client_context(cert="client"))
        payload = os.urandom(32 * npp.MiB)
        try:
            got, digest = stream_through(s, payload, deadline=60)
        finally:
            stop.set()
            for t in threads:
                t.join(15)
        self.assertEqual(got, len(payload))
        self.assertEqual(digest, hashlib.sha256(payload).hexdigest())
        self.assertGreater(failures[0], 5)
        s.close()
        p.assert_alive()


def stream_through(s, payload, deadline):
    """Sends `payload` on the TLS socket `s` and reads the echo, both from this one thread (an
    SSL object must not be used by two threads at once: a reader thread next to a sender races
    inside OpenSSL and can stall or corrupt the client's own stream). Returns (bytes received,
    sha256 of them); stops at EOF or after `deadline` seconds."""
    s.setblocking(False)
    view = memoryview(payload)
    sent = 0
    got = 0
    digest = hashlib.sha256()
    end = time.monotonic() + deadline
    while got < len(payload) and time.monotonic() < end:
        select.select([s], [s] if sent < len(payload) else [], [], 0.5)
        if sent < len(payload):
            try:
                sent += s.send(view[sent:sent + 65536])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        while True:
            try:
                d = s.recv(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not d:
                return got, digest.hexdigest()
            digest.update(d)
            got += len(d)
    return got, digest.hexdigest()


class TestFloodAndMemory(TlsCase):
    def test_handshake_flood_keeps_streams_responsive(self):
        """Row 26 (bounded to 4 s): two `openssl s_time -new` loops of full handshakes while an
        established TLS connection ping-pongs; its round trips stay short."""
        p, port, _ = self.start_tls(extra=["--tls-max-handshakes", "64"])
        s = T.tls_connect(port)
        floods = [subprocess.Popen(["openssl", "s_time", "-connect", "127.0.0.1:%d" % port, "-new", "-time", "4"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        worst = 0.0
        t_end = time.monotonic() + 4
        rounds = 0
        while time.monotonic() < t_end:
            t0 = time.monotonic()
            s.sendall(b"x" * 100)
            npp.recv_exact(s, 100)
            worst = max(worst, time.monotonic() - t0)
            rounds += 1
            time.sleep(0.02)  # a request every 20 ms, like an interactive user
        outs = [f.communicate(timeout=20)[0].decode() for f in floods]
        s.close()
        print("handshake flood: worst ping-pong %.1f ms over %d rounds; %s" % (
            worst * 1000, rounds, " | ".join(l for o in outs for l in o.splitlines() if "connections in" in l)))
        self.assertLess(worst, 0.5)
        self.assertTrue(any("connections in" in o for o in outs), outs)

    def test_idle_tls_connections_memory(self):
        """Row 20 (TLS part): 1000 idle TLS connections after their handshake; RSS growth per
        connection stays within the documented TLS budget (README: about 17 KiB; asserted < 32: with
        Asio's ssl::stream and its BIO-pair buffers it was 76)."""
        b = self.backend(npp.echo_handler(), backlog=2048)
        p, port, _ = self.start_tls(backend=b, extra=["--workers", "2"])
        ctx = T.client_context()
        warm = [T.tls_connect(port, ctx) for _ in range(20)]  # allocator arenas and pools warmed
        for s in warm:
            s.sendall(b"w")
            s.recv(1)
        before = p.rss_kib()
        conns = []
        n = 1000
        for _ in range(n):
            s = T.tls_connect(port, ctx)
            s.sendall(b"h")
            s.recv(1)
            conns.append(s)
        b.wait_accepted(n + 20, timeout=20)
        after = p.rss_kib()
        per = (after - before) / n
        print("idle TLS connections: RSS %d -> %d KiB, %.1f KiB per connection (incl. its endpoint socket)"
              % (before, after, per))
        for s in conns + warm:
            s.close()
        # The budget is the production build's. Sanitizer builds (make asan / make tsan set
        # NPP_SANITIZER) add shadow memory, redzones and a quarantine to every allocation: there the
        # check only guards against a per-connection blow-up (ASan measured 318 KiB with Asio's
        # ssl::stream).
        budget = {"asan": 384, "tsan": 768}.get(os.environ.get("NPP_SANITIZER", ""), 32)
        self.assertLess(per, budget)


if __name__ == "__main__":
    npp.main()
