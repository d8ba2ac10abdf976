"""SIGTERM drain (ACCEPTANCE row 17)."""

import os
import socket
import threading
import time

import npp
from npp import V4, V6, KiB

CHUNK = 64 * KiB
CHUNKS = 15  # one every 0.1 s: the stream lasts ~1.5 s


def streaming_pod(conn, backend):
    for _ in range(CHUNKS):
        conn.sendall(b"s" * CHUNK)
        time.sleep(0.1)  # pacing of the stream is the behaviour under test
    conn.shutdown(socket.SHUT_WR)
    npp.read_outcome(conn, 10)
    backend.record(end="done")


def refused_now(port, family=V4):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect((npp.LOOPBACK[family], port))
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        s.close()
    return False


class Drain(npp.ProxyTestCase):

    def test_sigterm_refuses_new_finishes_active_and_exits_at_grace_deadline(self):
        stream_pod = self.backend(streaming_pod, name="stream")
        echo_pod = self.backend(npp.echo_handler(), name="echo")
        p_stream, p_echo = npp.free_ports(2)
        proxy = self.proxy_for([npp.svc("stream", p_stream, [stream_pod.addr]),
                                npp.svc("echo", p_echo, [echo_pod.addr])],
                               extra=["--shutdown-grace-period", "2s"] + (["--splice", "false"] if os.environ.get("NOSPLICE") else []))
        idle = self.client(p_echo)
        idle_local = idle.getsockname()
        idle.sendall(b"before")
        self.assertEqual(npp.recv_exact(idle, 6), b"before")
        active = self.client(p_stream)
        first = npp.recv_exact(active, 1)
        self.assertEqual(first, b"s")

        start = proxy.mark()
        t_term = time.monotonic()
        proxy.terminate()
        # Listeners close at once: new connects refused (both families, both ports).
        npp.wait_until(lambda: refused_now(p_stream) and refused_now(p_echo), 0.5, interval=0.01,
                       what="new connections to be refused after SIGTERM")
        t_refused = time.monotonic() - t_term
        for fam in (V4, V6):
            self.assertTrue(refused_now(p_stream, fam) and refused_now(p_echo, fam))
        proxy.assert_alive()

        # The idle connection still works during the drain.
        idle.sendall(b"during")
        self.assertEqual(npp.recv_exact(idle, 6), b"during")
        # The active stream finishes completely.
        outcome, rest, _ = npp.read_outcome(active, 5)
        self.assertEqual(outcome, "eof", "active stream ended with %s during drain" % outcome)
        self.assertEqual(1 + len(rest), CHUNK * CHUNKS)
        active.close()
        # The idle connection is still open, so the process exits at the grace deadline.
        rc = proxy.wait(6)
        t_exit = time.monotonic() - t_term
        print("refused after %.3fs, exit %d after %.2fs" % (t_refused, rc, t_exit))
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(t_exit, 1.8, "exited %.2fs after SIGTERM, before the 2 s grace period" % t_exit)
        self.assertLess(t_exit, 3.0, "exited %.2fs after SIGTERM, grace period was 2 s" % t_exit)
        outcome, _, _ = npp.read_outcome(idle, 2)
        self.assertIn(outcome, ("eof", "reset"))
        recs = proxy.closed_records(start)
        by_port = {r.get("client", "").rsplit(":", 1)[-1]: r for r in recs}
        self.assertEqual(by_port.get(str(idle_local[1]), {}).get("reason"), "shutdown", recs)

    def test_sigterm_exits_at_last_close(self):
        echo_pod = self.backend(npp.echo_handler(), name="echo")
        port = npp.free_port()
        proxy = self.proxy_for([npp.svc("echo", port, [echo_pod.addr])],
                               extra=["--shutdown-grace-period", "20s"])
        c = self.client(port)
        c.sendall(b"x")
        self.assertEqual(npp.recv_exact(c, 1), b"x")
        t_term = time.monotonic()
        proxy.terminate()
        npp.wait_until(lambda: refused_now(port), 0.5, what="refusal after SIGTERM")
        # Hold the connection ~1 s (proves the process waits for it), using it meanwhile.
        while time.monotonic() - t_term < 1.0:
            c.sendall(b"y")
            self.assertEqual(npp.recv_exact(c, 1), b"y")
            time.sleep(0.1)  # pacing of the client's traffic
        self.assertTrue(proxy.alive(), "proxy exited while a connection was open")
        t_close = time.monotonic()
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(npp.read_outcome(c, 2)[0], "eof")
        rc = proxy.wait(3)
        after_close = time.monotonic() - t_close
        self.assertEqual(rc, 0)
        self.assertLess(after_close, 1.0, "exit %.2fs after the last connection closed" % after_close)

    def test_sigterm_without_connections_exits_promptly(self):
        echo_pod = self.backend(npp.echo_handler(), name="echo")
        port = npp.free_port()
        proxy = self.proxy_for([npp.svc("echo", port, [echo_pod.addr])])  # default grace 30 s
        t0 = time.monotonic()
        proxy.terminate()
        rc = proxy.wait(3)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 1.0)


if __name__ == "__main__":
    npp.main()
