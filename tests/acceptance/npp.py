"""Harness for the end-to-end acceptance tests of nodeport-proxy.

Everything here talks only to 127.0.0.1 / ::1. Every wait is bounded (deadline loops with short
polls, socket timeouts); nothing sleeps to synchronise where a condition can be polled.

Pieces:
  * free_port(), tempdir, endpoints-file writers (svc(), EndpointsFile)
  * Proxy: starts `$NPP_BINARY run ...` with loopback-only flags, captures stderr in a thread,
    wait_for_log(), generation tracking, SIGHUP/SIGTERM/SIGKILL, exit code, /proc facts
    (fd count, VmRSS, CPU time), parsed `connection closed` records, sockets via `ss`.
  * Backends: threaded TCP servers with handler hooks (echo with greeting, id, sink, custom);
    a subprocess stream server (for kill -9); Blackhole (listen(0) with a full accept queue, so
    SYNs are dropped and connects time out, no root needed); ClosedPort (bound, not listening:
    connects are refused with RST).
  * Client helpers: connect(), recv_all(), read_outcome(), abort() (RST via SO_LINGER (1,0)).
  * ProxyTestCase: a unittest.TestCase that cleans up what it started and prints the proxy log
    tail when a test fails.

Run this file directly as `python3 npp.py stream-server ID` to get a stand-alone stream backend
(used where a test needs a backend it can kill -9).
"""

import atexit
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("NPP_SOURCE_DIR") or os.path.dirname(os.path.dirname(HERE))
BINARY = os.environ.get("NPP_BINARY") or os.path.join(SOURCE_DIR, "build", "nodeport-proxy")
PYTHON = sys.executable or "/usr/bin/python3"

V4 = socket.AF_INET
V6 = socket.AF_INET6
LOOPBACK = {V4: "127.0.0.1", V6: "::1"}
LOOPBACK_CIDRS = "127.0.0.1/32,::1/128"
TEST_PORT_RANGE = "1024-65535"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20
KiB = 1 << 10


# --------------------------------------------------------------------------------------------
# generic helpers


def require_binary():
    """Raises unless the binary under test exists (a missing binary is a failure, not a skip)."""
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        raise RuntimeError(
            "nodeport-proxy binary not found at %r (set NPP_BINARY)" % BINARY)


def wait_until(pred, timeout, interval=0.01, what="condition"):
    """Polls pred() until it returns a truthy value (returned) or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.2fs waiting for %s" % (timeout, what))
        time.sleep(interval)


PORT_CLAIMS = os.path.join(tempfile.gettempdir(), "npp-acceptance-ports")
_claimed = []


def _node_port_candidates():
    """Ports for nodePorts: 10000-65000 minus the kernel's ephemeral range, so that no bind(0)
    or outgoing connection of a concurrently running test can land on one (SO_REUSEPORT would
    otherwise let two proxies silently share a port)."""
    lo, hi = 32768, 60999
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = map(int, f.read().split())
    except (OSError, ValueError):
        pass
    ranges = [(a, b) for a, b in ((10000, min(lo, 65000)), (max(hi + 1, 10000), 65000)) if b > a]
    return ranges or [(10000, 65000)]


def _bindable(port, kind=socket.SOCK_STREAM):
    """True if `port` is free for `kind` sockets on both 127.0.0.1 and ::1."""
    for family in (V4, V6):
        s = socket.socket(family, kind)
        try:
            if family == V6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((LOOPBACK[family], port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _claim(port):
    """Claims a port for this process across concurrently running test files (O_EXCL file);
    claims of dead processes are taken over. Released at exit."""
    os.makedirs(PORT_CLAIMS, exist_ok=True)
    path = os.path.join(PORT_CLAIMS, str(port))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    owner = int(f.read().strip() or 0)
                os.kill(owner, 0)
                return False  # held by a live process
            except (OSError, ValueError):
                try:
                    os.unlink(path)  # stale claim
                except OSError:
                    return False
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        _claimed.append(path)
        return True
    return False


@atexit.register
def _release_claims():
    for path in _claimed:
        try:
            os.unlink(path)
        except OSError:
            pass


def free_port():
    """A TCP port for a nodePort: free on both 127.0.0.1 and ::1, outside the ephemeral range,
    and claimed for this process (so parallel test files never pick the same one)."""
    ranges = _node_port_candidates()
    for _ in range(500):
        a, b = random.choice(ranges)
        port = random.randrange(a, b)
        if _bindable(port) and _claim(port):
            return port
    raise RuntimeError("could not find a free port")


def free_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def host_port(family, port):
    """The endpoint string the config uses: 127.0.0.1:P or [::1]:P."""
    return "127.0.0.1:%d" % port if family == V4 else "[::1]:%d" % port


def abort(sock):
    """Closes sock with RST (SO_LINGER on, timeout 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def connect(port, family=V4, timeout=3.0, host=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host or LOOPBACK[family], port))
    except BaseException:
        s.close()
        raise
    return s


def probe(port, family=V4, send=b"", timeout=2.0):
    """Connects from an explicitly bound local port, optionally sends, then reads until the
    connection ends. Returns (outcome, data, local address) with outcome 'refused', 'reset'
    (also when the RST beats connect() itself), 'eof', 'timeout' or 'error:<errno>'."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.bind((LOOPBACK[family], 0))
        local = s.getsockname()
        s.settimeout(timeout)
        try:
            s.connect((LOOPBACK[family], port))
        except ConnectionRefusedError:
            return "refused", b"", local
        except ConnectionResetError:
            return "reset", b"", local
        if send:
            try:
                s.sendall(send)
            except (ConnectionResetError, BrokenPipeError):
                pass  # the read below reports what happened
        outcome, data, _ = read_outcome(s, timeout)
        return outcome, data, local
    finally:
        s.close()


def recv_exact(sock, n, timeout=5.0):
    """Receives exactly n bytes or raises (EOF -> AssertionError, reset -> ConnectionResetError)."""
    deadline = time.monotonic() + timeout
    chunks = []
    got = 0
    while got < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("recv_exact: got %d of %d bytes" % (got, n))
        sock.settimeout(left)
        d = sock.recv(min(n - got, 1 << 20))
        if not d:
            raise AssertionError("recv_exact: EOF after %d of %d bytes" % (got, n))
        chunks.append(d)
        got += len(d)
    return b"".join(chunks)


def recv_all(sock, timeout=5.0, limit=256 * MiB):
    """Receives until EOF (returned bytes); a reset raises ConnectionResetError, the deadline
    socket.timeout."""
    deadline = time.monotonic() + timeout
    chunks = []
    got = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("recv_all: no EOF within %.2fs (%d bytes read)" % (timeout, got))
        sock.settimeout(left)
        d = sock.recv(1 << 20)
        if not d:
            return b"".join(chunks)
        chunks.append(d)
        got += len(d)
        if got > limit:
            raise AssertionError("recv_all: more than %d bytes" % limit)


def read_outcome(sock, timeout):
    """Reads until the connection ends or the deadline passes.

    Returns (outcome, data, elapsed) with outcome one of 'eof', 'reset', 'timeout', 'error:<errno>'.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout", b"".join(chunks), time.monotonic() - t0
        sock.settimeout(left)
        try:
            d = sock.recv(1 << 16)
        except socket.timeout:
            return "timeout", b"".join(chunks), time.monotonic() - t0
        except ConnectionResetError:
            return "reset", b"".join(chunks), time.monotonic() - t0
        except OSError as e:
            return "error:%s" % errno.errorcode.get(e.errno, e.errno), b"".join(chunks), time.monotonic() - t0
        if not d:
            return "eof", b"".join(chunks), time.monotonic() - t0
        chunks.append(d)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# configuration files


def svc(name, node_port, endpoints, namespace="default", port=80, protocol="TCP", port_name="p"):
    """One native-format service with one port."""
    return {
        "namespace": namespace,
        "name": name,
        "ports": [{
            "name": port_name,
            "protocol": protocol,
            "port": port,
            "nodePort": node_port,
            "endpoints": list(endpoints),
        }],
    }


def write_json_atomic(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        if isinstance(obj, (str, bytes)):
            f.write(obj if isinstance(obj, str) else obj.decode())
        else:
            json.dump(obj, f, indent=1)
    os.rename(tmp, path)


class EndpointsFile:
    """The native endpoints file in a temp dir; write() replaces it atomically."""

    def __init__(self, directory, services=None, name="endpoints.json"):
        self.path = os.path.join(directory, name)
        if services is not None:
            self.write(services)

    def write(self, services):
        if isinstance(services, (str, bytes)):
            write_json_atomic(self.path, services)
        else:
            write_json_atomic(self.path, {"services": list(services)})


# --------------------------------------------------------------------------------------------
# the proxy under test

CLOSED_RE = re.compile(r"connection closed")
KV_RE = re.compile(r"\b([a-z_]+)=(\"[^\"]*\"|[^\s,;]+)")


def parse_kv(line):
    out = {}
    for k, v in KV_RE.findall(line):
        out[k] = v.strip('"')
    return out


class Proxy:
    """One nodeport-proxy process. args are the `run` arguments; loopback-only flags are added
    unless loopback=False. stderr is captured line by line."""

    def __init__(self, args, tmpdir, *, prefix=(), log_level=os.environ.get("NPP_LOG_LEVEL", "debug"), addresses=LOOPBACK_CIDRS,
                 port_range=TEST_PORT_RANGE, loopback=True, name="proxy"):
        require_binary()
        self.cmd = list(prefix) + [BINARY, "run"] + list(args)
        if loopback:
            self.cmd += ["--nodeport-addresses", addresses]
        if port_range:
            self.cmd += ["--service-node-port-range", port_range]
        if log_level:
            self.cmd += ["--log-level", log_level]
        # The admin endpoints default to fixed ports (10356, 10349); tests run many proxies at
        # once, so they stay off unless a test asks for them with its own free ports.
        for flag in ("--healthz-bind-address", "--metrics-bind-address"):
            if not any(a == flag or str(a).startswith(flag + "=") for a in args):
                self.cmd += [flag, ""]
        self.log_path = os.path.join(tmpdir, "%s.log" % name)
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        self.proc = None
        self.generation = 0
        self.expected_exit = False

    # -- lifecycle
    def start(self, ready=True, timeout=10.0):
        self.logf = open(self.log_path, "w")
        self.logf.write("$ %s\n" % " ".join(self.cmd))
        self.logf.flush()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.t_start = time.monotonic()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if ready:
            self.wait_generation(1, timeout)
            if "--endpoints-file" in self.cmd:
                # The file watch (an inotify descriptor) starts just after the first "configuration
                # applied": a test that counts descriptors from here must see it already open.
                self.wait_for_log(r"watching \d+ input file\(s\) for changes", timeout)
        return self

    def _read(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                try:
                    self.logf.write(line + "\n")
                    self.logf.flush()
                except ValueError:
                    pass
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def assert_alive(self):
        if not self.alive():
            raise AssertionError("proxy exited unexpectedly with %s\n%s"
                                 % (self.proc.returncode, self.tail()))

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def sighup(self):
        self.signal(signal.SIGHUP)

    def terminate(self):
        self.expected_exit = True
        self.signal(signal.SIGTERM)

    def kill(self):
        self.expected_exit = True
        if self.alive():
            self.proc.kill()
        self.wait(5)

    def wait(self, timeout):
        """Waits for exit; returns the exit code (raises AssertionError on timeout)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("proxy did not exit within %.1fs\n%s" % (timeout, self.tail()))
        self.reader.join(2)
        return rc

    def close(self):
        if self.proc is not None:
            if self.alive():
                self.expected_exit = True
                self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self.reader.join(2)
            try:
                self.proc.stderr.close()
            except OSError:
                pass
        try:
            self.logf.close()
        except (AttributeError, ValueError):
            pass

    # -- logs
    def mark(self):
        with self.cond:
            return len(self.lines)

    def tail(self, n=60):
        with self.cond:
            return "\n".join("    | " + l for l in self.lines[-n:])

    def find(self, regex, start=0):
        rx = re.compile(regex, re.I) if isinstance(regex, str) else regex
        with self.cond:
            for i in range(start, len(self.lines)):
                m = rx.search(self.lines[i])
                if m:
                    return i, m
        return None

    def wait_for_log(self, regex, timeout=5.0, start=0):
        """Waits (bounded) for a stderr line matching regex (case-insensitive); returns
        (index, match). Fails early if the process exits without printing it."""
        rx = re.compile(regex, re.I) if isinstance(regex, str) else regex
        deadline = time.monotonic() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    if m:
                        return i, m
                    i += 1
                if self.eof:
                    raise AssertionError("proxy stderr ended (exit %s) without a line matching %r\n%s"
                                         % (self.proc.poll(), rx.pattern, self.tail()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no log line matching %r within %.1fs\n%s"
                                         % (rx.pattern, timeout, self.tail()))
                self.cond.wait(min(left, 0.1))

    def wait_generation(self, n, timeout=10.0, start=0):
        """Waits for a `configuration applied` line with generation >= n after log index start."""
        def find():
            with self.cond:
                lines = self.lines[start:]
            for i, line in enumerate(lines):
                m = re.search(r"configuration applied: generation=(\d+)\b", line)
                if m and int(m.group(1)) >= n:
                    return start + i, int(m.group(1))
            return None
        idx, gen = wait_until(find, timeout, 0.01, "configuration applied: generation>=%d" % n)
        self.generation = gen
        return idx

    def reload(self, timeout=10.0):
        """SIGHUP and wait for the configuration it applies; returns the log index of that line.
        The proxy also reloads by itself when its files change (inotify), so the generation the
        SIGHUP produces is the first one logged after the "SIGHUP" line, whatever its number."""
        start = self.mark()
        self.sighup()
        sig, _ = self.wait_for_log(r"SIGHUP: reloading", timeout, start)
        return self.wait_generation(self.generation + 1, timeout, sig)

    def reload_expect_rejected(self, timeout=10.0):
        start = self.mark()
        self.sighup()
        return self.wait_for_log(r"configuration rejected", timeout, start)

    def closed_records(self, start=0):
        """Parsed `connection closed` lines (dicts of key=value), in log order."""
        with self.cond:
            lines = self.lines[start:]
        return [parse_kv(l) for l in lines if CLOSED_RE.search(l)]

    def wait_closed(self, count=1, timeout=5.0, start=0, where=None):
        """Waits until at least `count` close records (optionally filtered by where(rec)) exist."""
        def get():
            recs = [r for r in self.closed_records(start) if where is None or where(r)]
            return recs if len(recs) >= count else None
        try:
            return wait_until(get, timeout, 0.02, "%d 'connection closed' log lines" % count)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.tail()))

    def closed_for_client(self, client_sock, timeout=5.0, start=0):
        """The close record for the connection whose client end is client_sock's local address
        (read before closing it: pass the (ip, port) tuple or the socket)."""
        if isinstance(client_sock, socket.socket):
            addr = client_sock.getsockname()
        else:
            addr = client_sock
        port = str(addr[1])

        def match(r):
            c = r.get("client", "")
            return c.rsplit(":", 1)[-1] == port
        try:
            return self.wait_closed(1, timeout, start, match)[0]
        except AssertionError as e:
            raise AssertionError("no 'connection closed' record with client=...:%s (the client "
                                 "address must be logged as ip:port)\n%s" % (port, e))

    # -- /proc
    # Each worker keeps up to 32 empty splice pipes (64 fds) for reuse: bounded, not a leak.
    PIPE_FDS_CACHED_PER_WORKER = 64

    def fd_count(self):
        """Open descriptors, not counting the splice pipes a worker may keep cached (pipes beyond
        that bound do count, so a pipe leak still shows)."""
        targets = self.fd_targets().values()
        pipes = sum(1 for t in targets if t.startswith("pipe:"))
        other = len(targets) - pipes
        workers = 2
        if "--workers" in self.cmd:
            workers = int(self.cmd[self.cmd.index("--workers") + 1])
        return other + max(0, pipes - self.PIPE_FDS_CACHED_PER_WORKER * workers)

    def fd_targets(self):
        """{fd: what it points at} ("socket:[inode]", "pipe:[inode]", a path), for diagnostics."""
        out = {}
        for fd in os.listdir("/proc/%d/fd" % self.pid):
            try:
                out[int(fd)] = os.readlink("/proc/%d/fd/%s" % (self.pid, fd))
            except OSError:
                pass  # closed meanwhile
        return out

    def describe_fds(self, fds):
        """One line per descriptor in fds ({fd: target}); sockets with their `ss` line (state,
        addresses), found by inode."""
        ss = subprocess.run(["ss", "-tuanpe"], capture_output=True, text=True).stdout.splitlines()
        lines = []
        for fd, target in sorted(fds.items()):
            m = re.match(r"socket:\[(\d+)\]", target)
            found = [l for l in ss if m and re.search(r"\bino:%s\b" % m.group(1), l)] if m else []
            lines.append("fd %d -> %s%s" % (fd, target, ("  " + " ".join(found[0].split())) if found else ""))
        return "\n".join(lines)

    def pipe_capacities(self):
        """{"pipe:[inode]": capacity (F_GETPIPE_SZ)} of every pipe the proxy holds, leaving out
        stdin, stdout and stderr (the test's own capture pipes)."""
        out = {}
        for fd in os.listdir("/proc/%d/fd" % self.pid):
            if int(fd) <= 2:
                continue
            path = "/proc/%d/fd/%s" % (self.pid, fd)
            try:
                target = os.readlink(path)
            except OSError:
                continue
            if not target.startswith("pipe:") or target in out:
                continue
            # Opening a pipe through /proc gives another descriptor of the same pipe.
            own = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            try:
                out[target] = fcntl.fcntl(own, getattr(fcntl, "F_GETPIPE_SZ", 1032))
            finally:
                os.close(own)
        return out

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            data = f.read()
        fields = data[data.rindex(")") + 2:].split()
        # fields[0] is field 3 (state); utime is field 14, stime field 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def tcp_sockets(self, state=None):
        """(state, local, peer) of TCP sockets owned by the proxy, from `ss -tanp`."""
        cmd = ["ss", "-tanpH"]
        if state:
            cmd += ["state", state]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
        tag = "pid=%d," % self.pid
        res = []
        for line in out.splitlines():
            if tag not in line:
                continue
            parts = line.split()
            if state:  # with a state filter ss omits the State column
                res.append((state, parts[2], parts[3]))
            else:
                res.append((parts[0], parts[3], parts[4]))
        return res


def syn_sent_sockets():
    """(local_port, remote_port) of every SYN-SENT TCP socket in this network namespace, from
    /proc/net/tcp and tcp6 (cheap enough to poll every few ms, unlike `ss -p`)."""
    res = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] != "02":  # TCP_SYN_SENT
                        continue
                    res.add((int(parts[1].rsplit(":", 1)[1], 16), int(parts[2].rsplit(":", 1)[1], 16)))
        except OSError:
            pass
    return res


# --------------------------------------------------------------------------------------------
# backends


class Backend:
    """A threaded TCP server on loopback; handler(conn, backend) runs in its own thread per
    connection (conn is closed afterwards unless the handler closed it)."""

    def __init__(self, handler, family=V4, port=0, name=None, backlog=512, host=None):
        self.family = family
        self.handler = handler
        self.name = name
        self.host = host or LOOPBACK[family]
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == V6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            self.sock.bind((self.host, port))
        except BaseException:
            self.sock.close()
            raise
        self.sock.listen(backlog)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.addr = "[%s]:%d" % (self.host, self.port) if family == V6 else "%s:%d" % (self.host, self.port)
        self.lock = threading.Condition()
        self.accepted = 0
        self.conns = []
        self.results = []  # dicts appended by handlers via record()
        self.stopping = False
        self.release = threading.Event()  # handlers that hold a connection wait on this
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.stopping:
                    return
                time.sleep(0.01)
                continue
            conn.settimeout(None)
            with self.lock:
                self.accepted += 1
                self.conns.append(conn)
                self.lock.notify_all()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.handler(conn, self)
        except OSError as e:
            self.record(end="exception", error=repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def record(self, **kw):
        with self.lock:
            self.results.append(kw)
            self.lock.notify_all()

    def wait_results(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.results) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("backend %s: %d results after %.1fs, wanted %d: %r"
                                         % (self.name, len(self.results), timeout, n, self.results))
                self.lock.wait(min(left, 0.1))
            return list(self.results)

    def wait_accepted(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.accepted < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("backend %s accepted %d connections, wanted %d"
                                         % (self.name, self.accepted, n))
                self.lock.wait(min(left, 0.1))

    def close(self):
        self.stopping = True
        self.release.set()
        self.thread.join(2)
        self.sock.close()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                c.close()
            except OSError:
                pass


def echo_handler(greeting=b""):
    """Sends greeting, then echoes until EOF, then shuts down its write side."""
    def handler(conn, backend):
        if greeting:
            conn.sendall(greeting)
        total = 0
        while True:
            try:
                d = conn.recv(1 << 16)
            except ConnectionResetError:
                backend.record(end="reset", bytes=total)
                return
            if not d:
                break
            total += len(d)
            conn.sendall(d)
        conn.shutdown(socket.SHUT_WR)
        backend.record(end="eof", bytes=total)
    return handler


def id_handler(ident):
    """Sends ident and closes."""
    def handler(conn, backend):
        conn.sendall(ident)
        conn.shutdown(socket.SHUT_WR)
    return handler


def sink_handler(reply_after_eof=None, delay_reply=0.0, hold_after_eof=False):
    """Reads until EOF or reset and records {end, bytes, sha256, t}. After EOF optionally waits
    delay_reply seconds, sends reply_after_eof (bytes, or callable(total, sha) -> bytes) and
    shuts down its write side. hold_after_eof: never answer; keep the socket open (half-closed by
    the peer) until backend.release is set (bounded) and record how it ended then."""
    def handler(conn, backend):
        h = hashlib.sha256()
        total = 0
        while True:
            try:
                d = conn.recv(1 << 18)
            except ConnectionResetError:
                backend.record(end="reset", bytes=total, sha256=h.hexdigest(), t=time.monotonic())
                return
            if not d:
                break
            total += len(d)
            h.update(d)
        backend.record(end="eof", bytes=total, sha256=h.hexdigest(), t=time.monotonic())
        if hold_after_eof:
            backend.release.wait(30)
            return
        if reply_after_eof is not None:
            if delay_reply:
                time.sleep(delay_reply)  # the delay is the behaviour under test, not a sync
            data = reply_after_eof(total, h.hexdigest()) if callable(reply_after_eof) else reply_after_eof
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
    return handler


def tcp_state(sock):
    """Kernel TCP state of sock (tcp_info.tcpi_state): 1 ESTABLISHED, 7 CLOSE, 8 CLOSE_WAIT, ..."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


TCP_ESTABLISHED, TCP_FIN_WAIT2, TCP_TIME_WAIT, TCP_CLOSE, TCP_CLOSE_WAIT = 1, 5, 6, 7, 8


class Blackhole:
    """A loopback address:port where SYNs are dropped: a listener with backlog 0 whose accept
    queue is kept full by unaccepted connections. Verified at construction: `ok` is False if a
    probe connect did not time out (then tests must skip with `reason`)."""

    def __init__(self, family=V4):
        self.family = family
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == V6:
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.sock.bind((LOOPBACK[family], 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.addr = host_port(family, self.port)
        self.fillers = []
        for _ in range(3):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect((LOOPBACK[family], self.port))
            except BlockingIOError:
                pass
            self.fillers.append(s)
        # Wait (bounded) until the first filler is established: then the queue is full.
        try:
            wait_until(lambda: tcp_state(self.fillers[0]) == TCP_ESTABLISHED, 2.0,
                       what="blackhole filler to connect")
        except AssertionError:
            pass
        self.ok, self.reason = self._probe()

    def _probe(self):
        p = socket.socket(self.family, socket.SOCK_STREAM)
        p.settimeout(0.4)
        t0 = time.monotonic()
        try:
            p.connect((LOOPBACK[self.family], self.port))
            return False, "blackhole probe connected (accept queue overflow does not drop SYNs here)"
        except socket.timeout:
            return True, ""
        except OSError as e:
            return False, "blackhole probe failed with %r after %.3fs instead of timing out" % (
                e, time.monotonic() - t0)
        finally:
            abort(p)

    def filler_ports(self):
        ports = set()
        for s in self.fillers:
            try:
                ports.add(s.getsockname()[1])
            except OSError:
                pass
        return ports

    def close(self):
        for s in self.fillers:
            abort(s)
        self.sock.close()


class ClosedPort:
    """A loopback port that is bound but not listening: connects are refused (RST) at once."""

    def __init__(self, family=V4):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((LOOPBACK[family], 0))
        self.port = self.sock.getsockname()[1]
        self.addr = host_port(family, self.port)

    def close(self):
        self.sock.close()


class StreamServerProcess:
    """`python3 npp.py stream-server ID` in a subprocess: sends "ID\\n" then endless data per
    connection, never reads. Killable with SIGKILL."""

    def __init__(self, ident, family=V4):
        self.ident = ident
        self.proc = subprocess.Popen([PYTHON, os.path.abspath(__file__), "stream-server", ident,
                                      "6" if family == V6 else "4"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        line = self._readline(5.0)
        self.port = int(line.split()[1])
        self.addr = host_port(family, self.port)

    def _readline(self, timeout):
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(timeout):
                raise AssertionError("stream server did not start within %.1fs" % timeout)
        finally:
            sel.close()
        line = self.proc.stdout.readline().decode()
        if not line.startswith("READY"):
            raise AssertionError("stream server said %r" % line)
        return line

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)

    def close(self):
        self.kill()
        self.proc.stdout.close()


def _stream_server_main(ident, fam):
    family = V6 if fam == "6" else V4
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.bind((LOOPBACK[family], 0))
    ls.listen(64)
    print("READY %d" % ls.getsockname()[1], flush=True)
    chunk = os.urandom(64 * KiB)

    def serve(c):
        try:
            c.sendall(ident.encode() + b"\n")
            while True:
                c.sendall(chunk)
        except OSError:
            pass
        finally:
            c.close()

    # Exits when the parent goes away (stdout closed -> SIGPIPE on print is not used; poll ppid).
    ls.settimeout(0.2)
    ppid = os.getppid()
    end = time.monotonic() + 120
    while time.monotonic() < end and os.getppid() == ppid:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()


# --------------------------------------------------------------------------------------------
# test case base


class ProxyTestCase(unittest.TestCase):
    """Tracks proxies, backends and temp files of one test; cleans them up; on failure prints
    the proxies' log tails."""

    def setUp(self):
        require_binary()
        self._problems_before = self._problem_count()
        self.tmp = tempfile.mkdtemp(prefix="npp-acc-")
        self._proxies = []
        self.addCleanup(self._cleanup_tmp)

    def _cleanup_tmp(self):
        failed = self._failed()
        for p in self._proxies:
            p.close()
            if p.proc is not None and p.proc.returncode is not None and p.proc.returncode < 0 \
                    and not p.expected_exit:
                failed = True
                sys.stderr.write("\n*** proxy died from signal %d\n" % -p.proc.returncode)
        if failed:
            for p in self._proxies:
                sys.stderr.write("\n--- %s (%s) log tail:\n%s\n" % (p.log_path, " ".join(p.cmd), p.tail(80)))
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _problem_count(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        if result is None:
            return 0
        return len(getattr(result, "failures", ())) + len(getattr(result, "errors", ()))

    def _failed(self):
        """True if this test has failed so far (unittest reports failures to the result at
        once, so the count has grown by the time cleanups run)."""
        return self._problem_count() > self._problems_before

    # -- factories that register cleanup
    def backend(self, handler, family=V4, name=None, **kw):
        b = Backend(handler, family=family, name=name, **kw)
        self.addCleanup(b.close)
        return b

    def blackhole(self, family=V4):
        b = Blackhole(family)
        self.addCleanup(b.close)
        if not b.ok:
            self.skipTest("no loopback blackhole on this machine: " + b.reason)
        return b

    def closed_port(self, family=V4):
        c = ClosedPort(family)
        self.addCleanup(c.close)
        return c

    def stream_server(self, ident, family=V4):
        s = StreamServerProcess(ident, family)
        self.addCleanup(s.close)
        return s

    def endpoints_file(self, services):
        # One file per call: the proxy watches its files, so two proxies sharing one file would
        # both reload whenever a test rewrites it for one of them.
        self._endpoint_files = getattr(self, "_endpoint_files", 0) + 1
        name = "endpoints.json" if self._endpoint_files == 1 else "endpoints-%d.json" % self._endpoint_files
        return EndpointsFile(self.tmp, services, name=name)

    def proxy(self, args, start=True, **kw):
        p = Proxy(args, self.tmp, name="proxy%d" % len(self._proxies), **kw)
        self._proxies.append(p)
        if start:
            p.start()
        return p

    def proxy_for(self, services, extra=(), **kw):
        """Writes services to an endpoints file and starts a proxy on it (waits for generation 1)."""
        ef = self.endpoints_file(services)
        p = self.proxy(["--endpoints-file", ef.path] + list(extra), **kw)
        p.endpoints = ef
        return p

    def client(self, port, family=V4, timeout=3.0):
        s = connect(port, family, timeout)
        self.addCleanup(s.close)
        return s

    def assertConnectRefused(self, port, family=V4, within=0.1):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(2.0)
        t0 = time.monotonic()
        try:
            s.connect((LOOPBACK[family], port))
        except ConnectionRefusedError:
            elapsed = time.monotonic() - t0
            self.assertLess(elapsed, within, "refusal took %.3fs" % elapsed)
            return elapsed
        except OSError as e:
            self.fail("connect to %s:%d failed with %r, expected ECONNREFUSED" % (LOOPBACK[family], port, e))
        else:
            # Accepted: if the server resets at once this is not a refusal either.
            outcome, data, el = read_outcome(s, 0.5)
            self.fail("connect to %s:%d was accepted (then %s), expected ECONNREFUSED"
                      % (LOOPBACK[family], port, outcome))
        finally:
            s.close()


def main():
    """unittest.main with a one-line summary on stderr."""
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    sys.stderr.write("SUMMARY %s: ran=%d failures=%d errors=%d skipped=%d\n"
                     % (os.path.basename(sys.argv[0]), r.testsRun, len(r.failures), len(r.errors),
                        len(r.skipped)))
    sys.exit(0 if r.wasSuccessful() else 1)


# --------------------------------------------------------------------------------------------
# UDP helpers (issue 4: UDP nodePorts). Used by test_udp*.py; nothing above depends on them.

UDP_MAX_V4 = 65507  # largest UDP payload over IPv4: 65535 - 20 (IP header) - 8 (UDP header)
UDP_MAX_V6 = 65527  # largest UDP payload over IPv6 without jumbograms: 65535 - 8


def udp_bindable(port):
    """True if UDP `port` is free on both 127.0.0.1 and ::1."""
    return _bindable(port, socket.SOCK_DGRAM)


def free_port_tcp_udp():
    """A nodePort number (see free_port()) that is also free for UDP on both loopbacks."""
    for _ in range(50):
        port = free_port()
        if udp_bindable(port):
            return port
    raise RuntimeError("could not find a port free for both TCP and UDP")


def tag_echo(tag):
    """UdpBackend handler: replies b"TAG|PEERPORT|" + datagram, PEERPORT being the source port
    the backend saw (the proxy's upstream socket of that session)."""
    prefix = tag.encode() if isinstance(tag, str) else tag

    def handler(data, peer, backend):
        return b"%s|%d|%s" % (prefix, peer[1], data)
    return handler


def plain_echo(data, peer, backend):
    """UdpBackend handler: echoes the datagram unchanged (for size tests)."""
    return data


def parse_tagged(reply):
    """(tag, upstream_port, payload) of a tag_echo reply."""
    tag, port, payload = reply.split(b"|", 2)
    return tag.decode(), int(port), payload


class UdpBackend:
    """A UDP server on loopback served by one thread. handler(data, peer, backend) returns the
    reply (bytes, a list of bytes, or None for no reply). Every datagram is recorded as
    (peer, length). close() closes the socket, so later datagrams to its port are answered by
    the kernel with ICMP port unreachable; reopen() binds the same port again."""

    def __init__(self, handler=plain_echo, family=V4, port=0, name=None, rcvbuf=4 * MiB):
        self.family = family
        self.handler = handler
        self.name = name
        self.rcvbuf = rcvbuf
        self.lock = threading.Condition()
        self.datagrams = []  # (peer, length)
        self.errors = []
        self.thread = None
        self._open(port)
        self.port = self.sock.getsockname()[1]
        self.addr = host_port(family, self.port)

    def _open(self, port):
        s = socket.socket(self.family, socket.SOCK_DGRAM)
        if self.family == V6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        except OSError:
            pass
        s.bind((LOOPBACK[self.family], port))
        s.settimeout(0.05)
        self.sock = s
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, args=(s,), daemon=True)
        self.thread.start()

    def _loop(self, s):
        while not self.stopping:
            try:
                data, peer = s.recvfrom(1 << 17)
            except socket.timeout:
                continue
            except OSError:
                if self.stopping:
                    return
                continue  # e.g. ECONNREFUSED queued by an ICMP for an earlier reply
            with self.lock:
                self.datagrams.append((peer, len(data)))
                self.lock.notify_all()
            try:
                out = self.handler(data, peer, self)
                for reply in ([] if out is None else [out] if isinstance(out, bytes) else out):
                    s.sendto(reply, peer)
            except OSError as e:
                with self.lock:
                    self.errors.append(repr(e))

    def count(self):
        with self.lock:
            return len(self.datagrams)

    def peers(self):
        with self.lock:
            return {p for p, _ in self.datagrams}

    def wait_count(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.datagrams) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("UDP backend %s got %d datagrams after %.1fs, wanted %d"
                                         % (self.name, len(self.datagrams), timeout, n))
                self.lock.wait(min(left, 0.1))
            return list(self.datagrams)

    def close(self):
        self.stopping = True
        if self.thread is not None:
            self.thread.join(2)
        self.sock.close()

    def reopen(self):
        """Binds the same port again (after close()) and serves it."""
        self._open(self.port)


def udp_socket(family=V4, timeout=2.0, bind_host=None, connect_to=None):
    """A UDP client socket bound to loopback (or bind_host), port 0; optionally connected."""
    s = socket.socket(family, socket.SOCK_DGRAM)
    if family == V6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((bind_host or LOOPBACK[family], 0))
    s.settimeout(timeout)
    if connect_to is not None:
        s.connect(connect_to)
    return s


def udp_ask(sock, dest, payload, timeout=2.0):
    """sendto(payload, dest) then one recvfrom. Returns (reply, from_address), or (None, None)
    if nothing arrives in time. ECONNREFUSED (ICMP port unreachable, connected sockets) raises."""
    sock.sendto(payload, dest)
    return udp_recv(sock, timeout)


def udp_recv(sock, timeout):
    """One datagram within timeout: (data, from) or (None, None)."""
    sock.settimeout(timeout)
    try:
        return sock.recvfrom(1 << 17)
    except socket.timeout:
        return None, None


def udp_refused(port, family=V4, timeout=1.0):
    """Sends one datagram to the nodePort from a connected socket. Returns 'refused' (ICMP port
    unreachable -> ECONNREFUSED), 'reply' or 'timeout'."""
    s = udp_socket(family, timeout, connect_to=(LOOPBACK[family], port))
    try:
        try:
            s.send(b"probe")
            s.recv(1 << 17)
            return "reply"
        except ConnectionRefusedError:
            return "refused"
        except socket.timeout:
            return "timeout"
    finally:
        s.close()


def udp_sockets(pid):
    """(local, peer) of the UDP sockets owned by pid, from `ss -uanp` (peer is "*:*"-like for
    unconnected sockets)."""
    out = subprocess.run(["ss", "-uanpH"], capture_output=True, text=True, timeout=10).stdout
    tag = "pid=%d," % pid
    res = []
    for line in out.splitlines():
        if tag in line:
            parts = line.split()
            res.append((parts[3], parts[4]))
    return res


def socket_fd_count(pid):
    """Number of the process's fds that are sockets (unlike fd_count(), blind to inotify,
    timerfd and files the proxy may open after start-up)."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass  # closed meanwhile
    return n


def reload_with(proxy, services, timeout=10.0):
    """Rewrites the proxy's endpoints file (proxy.endpoints, see proxy_for()), sends SIGHUP and
    waits for the first `configuration applied` after the proxy logged the SIGHUP: that one read
    the new file. Unlike Proxy.reload() this tolerates reloads the proxy does on its own when it
    watches the file. Sets proxy.generation; returns the log index of the applied line."""
    start = proxy.mark()
    proxy.endpoints.write(services)
    proxy.sighup()
    i, _ = proxy.wait_for_log(r"SIGHUP", timeout, start)
    j, m = proxy.wait_for_log(r"configuration applied: generation=(\d+)", timeout, i + 1)
    proxy.generation = int(m.group(1))
    return j


def split_host_port(text):
    """'127.0.0.1:53' / '[::1]:53' (as ss prints them) -> (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


# --------------------------------------------------------------------------------------------
# Kubernetes objects and live reload helpers (issue 3). Used by test_k8s*.py and
# test_reload*.py; nothing above depends on them.


def k8s_port(port, node_port=None, name=None, protocol="TCP", target_port=None):
    """One Service port (spec.ports[]) as the API server prints it; None fields are left out."""
    p = {"protocol": protocol, "port": port}
    if name is not None:
        p["name"] = name
    if target_port is not None:
        p["targetPort"] = target_port
    if node_port is not None:
        p["nodePort"] = node_port
    return p


def k8s_service(name, ports, namespace="default", type="NodePort", labels=None, **spec):
    """A v1 Service object; extra keyword arguments are spec fields (sessionAffinity, ...)."""
    meta = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    body = {"type": type, "ports": list(ports)}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": body}


def k8s_endpoint(address, ready=None, serving=None, terminating=None, node=None):
    """One EndpointSlice endpoint; conditions left as None are omitted (the API's nil)."""
    ep = {"addresses": [address]}
    cond = {k: v for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating))
            if v is not None}
    if cond:
        ep["conditions"] = cond
    if node is not None:
        ep["nodeName"] = node
    return ep


def k8s_slice(name, service, ports, endpoints, namespace="default", address_type="IPv4"):
    """A discovery.k8s.io/v1 EndpointSlice joined to `service`. ports: (name, port[, protocol])
    tuples or dicts; endpoints: k8s_endpoint() dicts or plain addresses."""
    ps = []
    for p in ports:
        if isinstance(p, dict):
            ps.append(p)
        else:
            d = {"name": p[0], "port": p[1], "protocol": p[2] if len(p) > 2 else "TCP"}
            ps.append(d)
    eps = [e if isinstance(e, dict) else k8s_endpoint(e) for e in endpoints]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": address_type, "endpoints": eps, "ports": ps}


def k8s_list(items, kind="List"):
    """`kubectl get ... -o json` output: a List (or ServiceList, EndpointSliceList)."""
    return {"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": ""}, "items": list(items)}


_YAML_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    s = str(v)
    # Plain when it cannot be read as anything but this string, else a JSON (= YAML) quoted one.
    if _YAML_PLAIN.match(s) and s.lower() not in ("true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"):
        return s
    return json.dumps(s)


def _yaml_lines(obj, indent):
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        if not obj:
            return [pad + "{}"]
        for k, v in obj.items():
            key = _yaml_scalar(k)
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, key))
                out.extend(_yaml_lines(v, indent + 2))
            else:
                out.append("%s%s: %s" % (pad, key, "{}" if v == {} else "[]" if v == [] else _yaml_scalar(v)))
    elif isinstance(obj, list):
        if not obj:
            return [pad + "[]"]
        for v in obj:
            if isinstance(v, (dict, list)) and v:
                inner = _yaml_lines(v, indent + 2)
                out.append(pad + "- " + inner[0][indent + 2:])
                out.extend(inner[1:])
            else:
                out.append(pad + "- " + ("{}" if v == {} else "[]" if v == [] else _yaml_scalar(v)))
    else:
        out.append(pad + _yaml_scalar(obj))
    return out


def to_yaml(obj):
    """Block-style YAML of a JSON-like value (what `kubectl get -o yaml` looks like)."""
    return "\n".join(_yaml_lines(obj, 0)) + "\n"


def yaml_stream(docs, comment=None):
    """A multi-document YAML manifest (`---` between documents), with an optional # comment."""
    head = "".join("# %s\n" % l for l in comment.splitlines()) if comment else ""
    return head + "".join("---\n" + to_yaml(d) for d in docs)


def write_text(path, text):
    """Writes path in place (open, write, close: inotify sees IN_MODIFY + IN_CLOSE_WRITE)."""
    with open(path, "w") as f:
        f.write(text)


def write_atomic(path, text):
    """Writes path atomically: a temporary file in the same directory, then rename()."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def dumps(obj):
    """JSON text for a config file (str passes through)."""
    return obj if isinstance(obj, str) else json.dumps(obj, indent=1)


class HostBackend(Backend):
    """Backend bound to a given loopback address (127.0.0.0/8 or ::1) and optionally a given
    port: with 127.0.0.x addresses several 'pods' share one port number, as pods do."""

    def __init__(self, handler, host="127.0.0.1", port=0, name=None, backlog=512):
        super().__init__(handler, V6 if ":" in host else V4, port, name, backlog, host=host)


def tag_echo_handler(tag):
    """Backend handler: sends b"TAG|", then echoes until EOF (records accept time, bytes)."""
    greeting = (tag if isinstance(tag, bytes) else tag.encode()) + b"|"
    return echo_handler(greeting)


def ask(port, payload=b"", family=V4, source=None, timeout=3.0, host=None):
    """One short connection to a nodePort, from `source` (a loopback IP: 127.0.0.x is another
    client IP) if given: send payload, half-close, read until EOF. Returns the reply."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect((host or LOOPBACK[family], port))
        if payload:
            s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s, timeout)
    finally:
        s.close()


def ask_tag(port, family=V4, source=None, timeout=3.0):
    """The tag of the tag_echo_handler backend that served one connection (its echo checked)."""
    payload = os.urandom(16).hex().encode()
    reply = ask(port, payload, family, source, timeout)
    tag, sep, rest = reply.partition(b"|")
    if not sep or rest != payload:
        raise AssertionError("reply %r is not TAG|payload (payload %r)" % (reply[:80], payload))
    return tag.decode()


def listen_inodes(pid):
    """{port: set of socket inodes} of the LISTEN TCP sockets of pid (`ss -tlnpe`)."""
    out = subprocess.run(["ss", "-tlnpeH"], capture_output=True, text=True, timeout=10).stdout
    tag = "pid=%d," % pid
    res = {}
    for line in out.splitlines():
        if tag not in line:
            continue
        parts = line.split()
        port = int(parts[3].rsplit(":", 1)[1])
        m = re.search(r"ino:(\d+)", line)
        if m:
            res.setdefault(port, set()).add(int(m.group(1)))
    return res


def listening_anywhere(port):
    """True if any process of this network namespace has a TCP LISTEN socket on port
    (/proc/net/tcp{,6}: state 0A)."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def udp_bound_anywhere(port):
    """True if any socket of this network namespace is bound to UDP port (/proc/net/udp{,6})."""
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


# The proxy logs `configuration applied` once the new listeners are open and the update is
# posted to its workers; the workers close removed listeners a few ms later (seen: up to ~15 ms
# on a busy machine). Checks for "no longer listening" allow this much.
WORKER_UPDATE_GRACE = 0.25


def wait_not_listening(port, timeout=WORKER_UPDATE_GRACE):
    """Waits (bounded) until nothing listens on TCP port; returns the seconds it took."""
    t0 = time.monotonic()
    wait_until(lambda: not listening_anywhere(port), timeout, 0.002, "no LISTEN socket on port %d" % port)
    return time.monotonic() - t0


def wait_udp_unbound(port, timeout=WORKER_UPDATE_GRACE):
    """Waits (bounded) until no socket is bound to UDP port; returns the seconds it took."""
    t0 = time.monotonic()
    wait_until(lambda: not udp_bound_anywhere(port), timeout, 0.002, "no UDP socket on port %d" % port)
    return time.monotonic() - t0


def wait_listen_sockets(pid, port, count, timeout=WORKER_UPDATE_GRACE):
    """Waits (bounded) until pid has exactly `count` LISTEN sockets on port (e.g. only the
    zero-backlog holders, one per bind address, that drop traffic for externalTrafficPolicy
    Local without a local endpoint, once the workers closed their listeners)."""
    wait_until(lambda: len(listen_inodes(pid).get(port, ())) == count, timeout, 0.005,
               "%d LISTEN sockets of pid %d on port %d" % (count, pid, port))


def wait_applied(proxy, start, timeout=5.0):
    """Waits for the first `configuration applied: generation=N` at or after log index start;
    returns (index, N) and sets proxy.generation. Fails on a `configuration rejected` first."""
    i, m = proxy.wait_for_log(r"configuration (applied: generation=(\d+)|rejected)", timeout, start)
    if m.group(2) is None:
        raise AssertionError("configuration rejected, expected it applied:\n%s" % proxy.tail(20))
    proxy.generation = int(m.group(2))
    return i, proxy.generation


def wait_rejected(proxy, start, timeout=5.0):
    """Waits for a `configuration rejected` line at or after start (fails if one is applied
    first); returns its index."""
    i, m = proxy.wait_for_log(r"configuration (applied: generation=(\d+)|rejected)", timeout, start)
    if m.group(2) is not None:
        raise AssertionError("configuration applied (generation %s), expected it rejected" % m.group(2))
    return i


class ConfigMapDir:
    """A directory laid out as the kubelet lays out a ConfigMap volume:
        dir/..2026_01_01_00_00_00.000000001/FILE   (the data)
        dir/..data -> ..2026_01_01_00_00_00.000000001
        dir/FILE -> ..data/FILE
    update() writes a new timestamped directory, swaps ..data atomically (symlink ..data_tmp,
    rename over ..data) and removes the old directory, exactly like the kubelet's AtomicWriter."""

    def __init__(self, directory, filename, text):
        self.dir = directory
        self.filename = filename
        self.serial = 0
        os.makedirs(directory, exist_ok=True)
        self.current = self._write_version(text)
        os.symlink(self.current, os.path.join(directory, "..data"))
        os.symlink(os.path.join("..data", filename), os.path.join(directory, filename))
        self.path = os.path.join(directory, filename)

    def _write_version(self, text):
        self.serial += 1
        name = "..2026_01_01_00_00_%02d.%09d" % (self.serial % 60, self.serial)
        os.mkdir(os.path.join(self.dir, name))
        with open(os.path.join(self.dir, name, self.filename), "w") as f:
            f.write(text)
        return name

    def update(self, text):
        old = self.current
        self.current = self._write_version(text)
        tmp = os.path.join(self.dir, "..data_tmp")
        os.symlink(self.current, tmp)
        os.rename(tmp, os.path.join(self.dir, "..data"))  # = mv -T ..data_tmp ..data
        shutil.rmtree(os.path.join(self.dir, old))


def http_get(port, path="/healthz", host="127.0.0.1", timeout=3.0):
    """GET http://host:port/path; returns (status, {lower-case header: value}, body bytes)."""
    import http.client
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def drop_outcome(port, family=V4, timeout=2.0, payload=b"hello"):
    """Connects to port and waits for a reply within timeout. Returns 'timeout' (connect or read
    timed out with nothing received: the traffic was dropped), 'refused', 'reset', 'eof' or
    'data'."""
    s = socket.socket(family, socket.SOCK_STREAM)
    t0 = time.monotonic()
    try:
        s.settimeout(timeout)
        try:
            s.connect((LOOPBACK[family], port))
        except socket.timeout:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        except ConnectionResetError:
            return "reset"
        try:
            s.sendall(payload)
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        outcome, data, _ = read_outcome(s, max(0.05, timeout - (time.monotonic() - t0)))
        if data:
            return "data"
        return outcome
    finally:
        abort(s)


class K8sTestCase(ProxyTestCase):
    """ProxyTestCase for Kubernetes inputs and reloads: config files live in their own directory
    self.cfg (the proxy watches it; its log is elsewhere); pods are tag_echo_handler backends."""

    def setUp(self):
        super().setUp()
        self.cfg = os.path.join(self.tmp, "cfg")
        os.mkdir(self.cfg)

    def file(self, name, content):
        path = os.path.join(self.cfg, name)
        write_atomic(path, dumps(content))
        return path

    def start(self, files, extra=(), **kw):
        args = []
        for f in files:
            args += ["--endpoints-file", f]
        return self.proxy(args + list(extra), **kw)

    def pod(self, tag, host="127.0.0.1", port=0):
        b = HostBackend(tag_echo_handler(tag), host=host, port=port, name=tag)
        self.addCleanup(b.close)
        return b

    def pods_on_one_port(self, tags_hosts):
        """Pods on one shared port number: [(tag, host)] -> [backend] (retries on a clash)."""
        for _ in range(30):
            made = []
            try:
                for tag, host in tags_hosts:
                    made.append(HostBackend(tag_echo_handler(tag), host=host,
                                            port=made[0].port if made else 0, name=tag))
            except OSError:
                for b in made:
                    b.close()
                continue
            for b in made:
                self.addCleanup(b.close)
            return made
        self.fail("could not bind pods %r on one port number" % (tags_hosts,))

    def tags(self, port, n, family=V4, source=None):
        """Tags of the pods that served n sequential connections."""
        return [ask_tag(port, family, source) for _ in range(n)]

    def rewrite(self, proxy, path, content, timeout=5.0):
        """Replaces path atomically and waits until the proxy applied a configuration read
        after the write (its file watch reloads); returns the log index of that line."""
        start = proxy.mark()
        write_atomic(path, dumps(content))
        return wait_applied(proxy, start, timeout)[0]


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "stream-server":
        _stream_server_main(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "4")
    else:
        sys.stderr.write("usage: npp.py stream-server ID [4|6]\n")
        sys.exit(2)
