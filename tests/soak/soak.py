#!/usr/bin/python3
"""Soak: a bounded random mix of traffic and configuration churn against one proxy (ACCEPTANCE
row 60), meant for the ASan+UBSan build (`make soak`; any binary via NPP_BINARY).

    NPP_BINARY=build-asan/nodeport-proxy tests/soak/soak.py --minutes 10

What runs, for --minutes in rounds of --round-seconds:
  * --clients threads, each looping over random actions against three Services:
      stream     connect, send 1 B..1 MiB of random bytes while reading the echo, half-close,
                 read to EOF; the sha256 of what came back must equal what was sent
      halfclose  send up to 64 KiB, half-close first, then read the echo to EOF (sha256 checked)
      reset      connect, send some bytes, read a little, close with RST
      hangup     connect and close at once (no byte)
      upreset    to a Service whose endpoint resets after reading a few bytes
    Service "stable" always has at least two live echo endpoints, so every stream and
    halfclose to it must end with the exact bytes back (byte integrity). Service "churn" may
    lose all its endpoints for a while (then a refused/reset connection is fine, wrong bytes
    are not).
  * a churn thread, every 0.2-1 s: rewrite the endpoints file (endpoint sets change, a fourth
    Service with its own nodePort comes and goes), SIGHUP, or write an invalid file (the reload
    must be rejected and the old configuration kept).
  * between rounds: traffic stops, the initial configuration is restored, every connection
    closes, then the proxy's descriptor count must return to the baseline exactly (bounded
    wait) and its RSS stay within the tolerance of the first round's (see --rss-slack-mib).
  * at the end: SIGTERM; exit status 0 and no sanitizer report (AddressSanitizer,
    LeakSanitizer, "runtime error:" from UBSan) in the proxy's stderr.

Why RSS has a tolerance, not an exact baseline: freed memory is not always returned to the
kernel (glibc arenas per worker thread keep freed chunks; ASan keeps up to quarantine_size_mb
of freed memory in quarantine, set to 16 MiB here). The baseline is taken after the first round
(pools, arenas and the quarantine warmed up), and later rounds may exceed it by --rss-slack-mib
(default 32: the 16 MiB quarantine plus arena slack). A leak per connection would show as
growth round after round (tens of thousands of connections per round); a leak of memory still
referenced at exit is also reported by LeakSanitizer.

Prints SOAK lines with the figures; exits 1 on any failure.
"""

import argparse
import hashlib
import json
import os
import random
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "acceptance"))
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:quarantine_size_mb=16:abort_on_error=1")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
import npp  # noqa: E402  (after sys.path)
from npp import V4, KiB, MiB  # noqa: E402

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer", "UndefinedBehaviorSanitizer")


def log(msg):
    sys.stderr.write("SOAK %s\n" % msg)
    sys.stderr.flush()


# ------------------------------------------------------------------------------------------
# backends (threads in this process)


def reset_handler(conn, backend):
    """Reads a few bytes, then resets the connection."""
    try:
        conn.settimeout(5.0)
        conn.recv(16)
    except OSError:
        pass
    npp.abort(conn)


# ------------------------------------------------------------------------------------------
# client actions; each returns an outcome name and raises AssertionError on an integrity error


def stream(port, size, rng, concurrent=True, timeout=30.0):
    """Sends size random bytes, reading the echo meanwhile (or only after a half-close when not
    concurrent), then half-closes and reads to EOF. Returns "ok", or "reset"/"refused"/"timeout"
    when the connection failed before the echo ended; wrong bytes raise AssertionError."""
    data = rng.randbytes(size)
    want = hashlib.sha256(data).hexdigest()
    got = hashlib.sha256()
    received = 0
    s = socket.socket(V4, socket.SOCK_STREAM)
    try:
        s.settimeout(5.0)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return "refused"
        except (ConnectionResetError, socket.timeout):
            return "reset"
        s.setblocking(False)
        sel = selectors.DefaultSelector()
        sent = 0
        shut = False
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        # Not concurrent: the echo is read only after the half-close (it waits in the buffers).
        sel.register(s, selectors.EVENT_WRITE | (selectors.EVENT_READ if concurrent else 0))
        try:
            while True:
                if time.monotonic() > deadline:
                    return "timeout"
                if sent == size and not shut:
                    s.shutdown(socket.SHUT_WR)
                    shut = True
                    sel.modify(s, selectors.EVENT_READ)
                for _, ev in sel.select(0.5):
                    if ev & selectors.EVENT_WRITE and sent < size:
                        try:
                            sent += s.send(view[sent:sent + 256 * KiB])
                        except BlockingIOError:
                            pass
                        except (ConnectionResetError, BrokenPipeError):
                            return "reset"
                    if ev & selectors.EVENT_READ:
                        try:
                            d = s.recv(256 * KiB)
                        except BlockingIOError:
                            continue
                        except ConnectionResetError:
                            return "reset"
                        if not d:
                            if received != size or got.hexdigest() != want:
                                raise AssertionError("integrity: sent %d bytes, received %d (sha256 %s, want %s)"
                                                     % (size, received, got.hexdigest()[:16], want[:16]))
                            return "ok"
                        got.update(d)
                        received += len(d)
                        if received > size:
                            raise AssertionError("integrity: received %d bytes, sent only %d" % (received, size))
        finally:
            sel.close()
    finally:
        s.close()


def reset_midway(port, rng):
    s = socket.socket(V4, socket.SOCK_STREAM)
    try:
        s.settimeout(5.0)
        s.connect(("127.0.0.1", port))
        s.sendall(rng.randbytes(rng.randrange(1, 64 * KiB)))
        if rng.random() < 0.5:
            try:
                s.recv(rng.randrange(1, 4096))
            except (socket.timeout, OSError):
                pass
        return "reset-sent"
    except OSError:
        return "refused"
    finally:
        npp.abort(s)


def hangup(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5.0)
    except OSError:
        return "refused"
    s.close()
    return "hangup"


def upstream_reset(port, rng):
    s = socket.socket(V4, socket.SOCK_STREAM)
    try:
        s.settimeout(5.0)
        s.connect(("127.0.0.1", port))
        s.sendall(b"x" * rng.randrange(1, 64))
        outcome, _, _ = npp.read_outcome(s, 5.0)
        return "upreset-" + outcome
    except OSError:
        return "upreset-refused"
    finally:
        s.close()


# ------------------------------------------------------------------------------------------


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tmp = tempfile.mkdtemp(prefix="npp-soak-")
        self.echo = [npp.Backend(npp.echo_handler(), name="echo%d" % i, backlog=1024) for i in range(4)]
        self.resetter = npp.Backend(reset_handler, name="reset")
        self.ports = npp.free_ports(4)  # stable, churn, upreset, extra
        self.file = npp.EndpointsFile(self.tmp, self.services(self.initial_sets()))
        self.lock = threading.Lock()
        self.counts = {}
        self.failures = []
        self.stop = threading.Event()
        self.paused = threading.Event()  # set: traffic and churn stop (between rounds)
        self.in_flight = 0                # client actions running
        self.churn_idle = threading.Event()  # set while the churn thread is not changing anything

    def initial_sets(self):
        return {"stable": [0, 1, 2, 3], "churn": [0, 1], "extra": None}

    def services(self, sets):
        def eps(ix):
            return [b.addr for i, b in enumerate(self.echo) if i in ix]
        out = [npp.svc("stable", self.ports[0], eps(sets["stable"])),
               npp.svc("churn", self.ports[1], eps(sets["churn"])),
               npp.svc("upreset", self.ports[2], [self.resetter.addr])]
        if sets["extra"] is not None:
            out.append(npp.svc("extra", self.ports[3], eps(sets["extra"])))
        return out

    def count(self, name):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + 1

    def fail(self, what):
        with self.lock:
            self.failures.append(what)
        log("FAILURE " + what)

    # -- traffic
    def client(self, seed):
        """One client thread: random actions until stopped; none starts while paused."""
        rng = random.Random(seed)
        try:
            while not self.stop.is_set():
                with self.lock:
                    go = not self.paused.is_set()
                    if go:
                        self.in_flight += 1
                if not go:
                    time.sleep(0.01)  # paused between rounds
                    continue
                try:
                    self.one_action(rng)
                finally:
                    with self.lock:
                        self.in_flight -= 1
        except Exception as e:  # a bug in the soak itself must not pass silently
            self.fail("client thread crashed: %r" % e)

    def one_action(self, rng):
        action = rng.choices(["stream", "halfclose", "reset", "hangup", "upreset"], [5, 2, 2, 1, 1])[0]
        target = rng.choice(["stable", "stable", "churn"])
        port = self.ports[0] if target == "stable" else self.ports[1]
        try:
            if action == "stream":
                size = rng.choice([rng.randrange(1, 4 * KiB), rng.randrange(1, 256 * KiB), rng.randrange(1, MiB)])
                outcome = stream(port, size, rng)
            elif action == "halfclose":
                outcome = stream(port, rng.randrange(0, 64 * KiB), rng, concurrent=False)
            elif action == "reset":
                outcome = reset_midway(port, rng)
            elif action == "hangup":
                outcome = hangup(port)
            else:
                outcome = upstream_reset(self.ports[2], rng)
        except AssertionError as e:
            self.fail("%s to %s: %s" % (action, target, e))
            return
        except OSError as e:
            outcome = "oserror-%s" % type(e).__name__
        self.count("%s:%s:%s" % (action, target if action in ("stream", "halfclose") else "-", outcome))
        if target == "stable" and action in ("stream", "halfclose") and outcome != "ok":
            self.fail("%s to stable ended %s (it always has live endpoints)" % (action, outcome))

    # -- churn
    def churn(self, proxy):
        rng = random.Random(self.args.seed + 1)
        while not self.stop.is_set():
            self.churn_idle.set()
            time.sleep(rng.uniform(0.2, 1.0))  # pacing of the churn itself, not a synchronisation
            with self.lock:
                if self.paused.is_set() or self.stop.is_set():
                    continue
                self.churn_idle.clear()
            what = rng.choices(["rewrite", "sighup", "invalid"], [6, 2, 1])[0]
            try:
                if what == "rewrite":
                    sets = {"stable": sorted(rng.sample(range(4), rng.randrange(2, 5))),
                            "churn": sorted(rng.sample(range(4), rng.randrange(0, 3))),
                            "extra": sorted(rng.sample(range(4), rng.randrange(0, 3))) if rng.random() < 0.5 else None}
                    start = proxy.mark()
                    self.file.write(self.services(sets))
                    npp.wait_applied(proxy, start, 10.0)
                elif what == "sighup":
                    proxy.reload(10.0)
                else:
                    good = open(self.file.path).read()
                    start = proxy.mark()
                    npp.write_json_atomic(self.file.path, '{"services": [{"name": "broken", "ports": [{"nodePort": 1}]}')
                    npp.wait_rejected(proxy, start, 10.0)
                    start = proxy.mark()
                    npp.write_json_atomic(self.file.path, good)
                    npp.wait_applied(proxy, start, 10.0)
                self.count("churn:" + what)
            except AssertionError as e:
                self.fail("churn %s: %s" % (what, str(e).splitlines()[0]))

    # -- quiet points
    def quiesce(self, proxy):
        """Stops new actions, waits for those in flight, restores the initial configuration."""
        with self.lock:
            self.paused.set()
        npp.wait_until(self.idle, 120.0, 0.05, "client actions to finish")
        npp.wait_until(self.churn_idle.is_set, 30.0, 0.05, "the churn thread to pause")
        start = proxy.mark()
        self.file.write(self.services(self.initial_sets()))
        npp.wait_applied(proxy, start, 10.0)

    def idle(self):
        with self.lock:
            return self.in_flight == 0

    def run(self):
        a = self.args
        proxy = npp.Proxy(["--endpoints-file", self.file.path, "--workers", str(a.workers)], self.tmp,
                          log_level="info", name="soak-proxy")
        proxy.start(timeout=30.0)
        log("binary=%s pid=%d ports=%s seed=%d clients=%d workers=%d minutes=%.1f"
            % (npp.BINARY, proxy.pid, self.ports, a.seed, a.clients, a.workers, a.minutes))
        fds0 = proxy.fd_count()  # start() waited for the file watch: the baseline counts it
        fd_targets0 = proxy.fd_targets()
        rss_first = None
        threads = [threading.Thread(target=self.client, args=(a.seed * 1000 + i,), daemon=True)
                   for i in range(a.clients)]
        churner = threading.Thread(target=self.churn, args=(proxy,), daemon=True)
        for t in threads:
            t.start()
        churner.start()
        t_end = time.monotonic() + a.minutes * 60
        round_no = 0
        ok = True
        while time.monotonic() < t_end and ok:
            round_no += 1
            self.paused.clear()
            round_end = min(t_end, time.monotonic() + a.round_seconds)
            while time.monotonic() < round_end:
                time.sleep(0.5)  # the round's length; the work happens in the threads
                if not proxy.alive():
                    self.fail("proxy exited (%s)" % proxy.proc.poll())
                    ok = False
                    break
            if not ok:
                break
            self.quiesce(proxy)
            try:
                npp.wait_until(lambda: proxy.fd_count() == fds0, 15.0, 0.05, "proxy fds back to %d" % fds0)
            except AssertionError:
                now = proxy.fd_targets()
                gone = {fd: t for fd, t in fd_targets0.items() if now.get(fd) != t}
                new = {fd: t for fd, t in now.items() if fd_targets0.get(fd) != t and not t.startswith("pipe:")}
                self.fail("round %d: proxy fds %d, baseline %d\nnew since the baseline (pipes left out):\n%s\n"
                          "gone since the baseline:\n%s" % (round_no, proxy.fd_count(), fds0,
                                                             proxy.describe_fds(new), proxy.describe_fds(gone)))
            rss = proxy.rss_kib()
            if rss_first is None:
                rss_first = rss
            with self.lock:
                total = sum(v for k, v in self.counts.items() if not k.startswith("churn"))
            log("round %d: fds=%d (baseline %d) rss=%d KiB (round-1 %d KiB, %+d) actions=%d failures=%d"
                % (round_no, proxy.fd_count(), fds0, rss, rss_first, rss - rss_first, total, len(self.failures)))
            if rss - rss_first > a.rss_slack_mib * 1024:
                self.fail("round %d: RSS %d KiB exceeds round 1's %d KiB by more than %d MiB"
                          % (round_no, rss, rss_first, a.rss_slack_mib))
        self.stop.set()
        self.paused.clear()
        for t in threads + [churner]:
            t.join(60)
        proxy.terminate()
        rc = proxy.wait(60)
        with proxy.cond:
            lines = list(proxy.lines)
        reports = [l for l in lines if any(m in l for m in SANITIZER_MARKERS)]
        if rc != 0:
            self.fail("proxy exited with %s" % rc)
        if reports:
            self.fail("sanitizer report in the proxy's stderr:\n" + "\n".join(lines[-80:]))
        proxy.close()
        for b in self.echo + [self.resetter]:
            b.close()
        with self.lock:
            counts = dict(sorted(self.counts.items()))
        log("actions: " + json.dumps(counts))
        log("log: %s (%d lines)" % (proxy.log_path, len(lines)))
        log("%s: %d failures" % ("PASS" if not self.failures else "FAIL", len(self.failures)))
        if not self.failures:
            shutil.rmtree(self.tmp, ignore_errors=True)  # on failure the log stays for reading
        return not self.failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--round-seconds", type=float, default=30.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--rss-slack-mib", type=int, default=32)
    args = ap.parse_args()
    npp.require_binary()
    ok = Soak(args).run()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
