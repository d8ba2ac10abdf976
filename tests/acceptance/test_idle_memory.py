"""8 000 idle TCP connections through the proxy (ACCEPTANCE row 20).

Budget: VmRSS grows by at most 64 KiB (2 x 32 KiB) per idle proxied connection, and no thread
per connection. The figure is printed (MEASURED ...) so runs can be compared; issue 8 aims at
<= 4 KiB per idle connection.

File descriptors: a process may hold at most 20 000 open files here. The proxy holds two per
proxied connection (16 000), so the clients (8 000 sockets) stay in this process and the
backend (8 000 accepted sockets) runs in a subprocess: this same file run as
`test_idle_memory.py backend`, an epoll echo server that reports how many connections it has.
--max-connections is given explicitly: the default derived from RLIMIT_NOFILE (server.cpp) is
about 8 600 at 20 000 files, too close to 8 000 to rely on.

Idle means connected end to end and never used: no byte has moved, so the relay holds no
buffer or pipe (they are borrowed only while bytes are in flight). A sample of connections is
used afterwards to show they are real, and the RSS is read again after everything closed.
"""

import os
import selectors
import socket
import subprocess
import sys
import time

import npp
from npp import V4, KiB

CONNECTIONS = int(os.environ.get("NPP_IDLE_CONNECTIONS", "8000"))
BUDGET_PER_CONNECTION = 64 * KiB  # ACCEPTANCE row 20: 2 x 32 KiB
BATCH = 500                       # connects in flight at once (below the listen backlog)
DEADLINE = 60.0                   # the whole test, seconds


def backend_main():
    """An epoll echo server holding every connection; stdin lines "count" -> accepted count."""
    ls = socket.socket(V4, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, "listen")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    conns = 0
    sys.stdout.write("READY %d\n" % ls.getsockname()[1])
    sys.stdout.flush()
    end = time.monotonic() + 2 * DEADLINE  # never outlive the test by much
    while time.monotonic() < end:
        for key, _ in sel.select(0.5):
            if key.data == "listen":
                while True:
                    try:
                        c, _ = ls.accept()
                    except BlockingIOError:
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, "conn")
                    conns += 1
            elif key.data == "stdin":
                line = sys.stdin.readline()
                if not line:
                    return  # the test is gone
                sys.stdout.write("%d\n" % conns)
                sys.stdout.flush()
            else:
                c = key.fileobj
                try:
                    d = c.recv(65536)
                except OSError:
                    d = b""
                if d:
                    c.sendall(d)  # a few bytes: fits the socket buffer
                else:
                    sel.unregister(c)
                    c.close()
                    conns -= 1


class BackendProcess:
    def __init__(self):
        self.proc = subprocess.Popen([npp.PYTHON, os.path.abspath(__file__), "backend"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self._readline(10.0)
        if not line.startswith("READY "):
            raise AssertionError("backend said %r" % line)
        self.port = int(line.split()[1])

    def _readline(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                raise AssertionError("backend did not answer within %.1fs" % timeout)
        finally:
            sel.close()
        return self.proc.stdout.readline()

    def count(self):
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self._readline(5.0))

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc.stdout.close()


def threads(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads line")


def connect_batch(port, n, timeout):
    """n non-blocking connects; returns the connected sockets (fails if any did not connect)."""
    sel = selectors.DefaultSelector()
    pending = set()
    for _ in range(n):
        s = socket.socket(V4, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        pending.add(s)
        sel.register(s, selectors.EVENT_WRITE)
    done = []
    deadline = time.monotonic() + timeout
    try:
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(0.1):
                s = key.fileobj
                sel.unregister(s)
                pending.discard(s)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    s.close()
                    raise AssertionError("connect failed: %s" % os.strerror(err))
                done.append(s)
    finally:
        sel.close()
    if pending:
        for s in pending | set(done):
            s.close()
        raise AssertionError("%d of %d connects pending after %.1fs" % (len(pending), n, timeout))
    return done


class IdleMemory(npp.ProxyTestCase):
    def test_8000_idle_connections(self):
        t0 = time.monotonic()
        backend = BackendProcess()
        self.addCleanup(backend.close)
        port = npp.free_port()
        # info: a debug line per connection would measure the logger, not the proxy.
        proxy = self.proxy_for([npp.svc("idle", port, ["127.0.0.1:%d" % backend.port])],
                               extra=["--workers", "2", "--max-connections", str(CONNECTIONS + 500)],
                               log_level="info")
        # Warm up: the first connections create per-worker state (pools, allocator arenas) that
        # an idle connection does not need; baseline after they closed.
        warm = connect_batch(port, 50, 10.0)
        npp.wait_until(lambda: backend.count() == 50, 10.0, 0.02, "50 warm-up connections at the backend")
        for s in warm:
            s.close()
        npp.wait_until(lambda: backend.count() == 0, 10.0, 0.02, "warm-up connections closed")
        rss_before, threads_before, fds_before = proxy.rss_kib(), threads(proxy.pid), proxy.fd_count()

        clients = []
        self.addCleanup(lambda: [s.close() for s in clients])
        while len(clients) < CONNECTIONS:
            n = min(BATCH, CONNECTIONS - len(clients))
            clients += connect_batch(port, n, 10.0)
            want = len(clients)
            npp.wait_until(lambda: backend.count() == want, 20.0, 0.01,
                           "%d connections at the backend" % want)
        t_open = time.monotonic() - t0
        proxy.assert_alive()
        rss_open, threads_open, fds_open = proxy.rss_kib(), threads(proxy.pid), proxy.fd_count()
        growth = (rss_open - rss_before) * KiB / CONNECTIONS
        print("MEASURED idle connections=%d rss_before=%d KiB rss_open=%d KiB growth=%.0f bytes/connection "
              "(budget %d, issue 8 target 4096) fds %d -> %d threads %d -> %d open_in=%.1fs"
              % (CONNECTIONS, rss_before, rss_open, growth, BUDGET_PER_CONNECTION, fds_before, fds_open,
                 threads_before, threads_open, t_open), file=sys.stderr, flush=True)
        self.assertLessEqual(growth, BUDGET_PER_CONNECTION)
        if not os.environ.get("NPP_SANITIZER"):
            # Issue 8's target for the production build (sanitizers pad every allocation).
            self.assertLessEqual(growth, 4 * KiB, "issue 8: at most 4 KiB of RSS per idle connection")
        self.assertEqual(threads_open, threads_before, "a thread per connection?")
        self.assertGreaterEqual(fds_open - fds_before, 2 * CONNECTIONS, "not every connection proxied")

        # They are real: a sample echoes through the proxy.
        for s in clients[:: max(1, CONNECTIONS // 50)]:
            s.setblocking(True)
            s.settimeout(5.0)
            s.sendall(b"ping")
            self.assertEqual(npp.recv_exact(s, 4), b"ping")

        for s in clients:
            s.close()
        clients.clear()
        npp.wait_until(lambda: backend.count() == 0, 20.0, 0.02, "every connection closed at the backend")
        npp.wait_until(lambda: proxy.fd_count() <= fds_before, 10.0, 0.02, "proxy fds back to the baseline")
        print("MEASURED idle after close: rss=%d KiB (%+d KiB from the baseline) total=%.1fs"
              % (proxy.rss_kib(), proxy.rss_kib() - rss_before, time.monotonic() - t0), file=sys.stderr, flush=True)
        self.assertLess(time.monotonic() - t0, DEADLINE)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "backend":
        backend_main()
    else:
        npp.main()
