"""The access log (issue 7): --access-log FILE|-|stderr, --access-log-format text|json.

Each test compares the log with what the test itself did: the client's own address and port,
the bytes it sent and received, the endpoint it reached, and why the connection ended
(ACCEPTANCE row 59: per-connection bytes exact, a reason per close, peer addresses logged).
"""

import json
import os
import re
import socket
import time

import npp
from npp import V4, V6

TEXT_LINE = re.compile(r"^time=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)( [a-z_]+=(\"(?:[^\"\\]|\\.)*\"|\S+))+$")
FIELDS = ["protocol", "id", "client", "node_port", "service", "port", "endpoint", "attempts", "bytes_in",
          "bytes_out", "duration", "connect_time", "reason"]


def parse_text(line):
    m = TEXT_LINE.match(line)
    assert m, "not a logfmt access line: %r" % line
    rec = npp.parse_kv(line)
    keys = re.findall(r"(?:^| )([a-z_]+)=", line)
    assert keys == ["time"] + FIELDS, keys
    return rec


def read_lines(path):
    try:
        with open(path) as f:
            return [l.rstrip("\n") for l in f if l.strip()]
    except FileNotFoundError:
        return []


def wait_lines(path, n, timeout=5.0):
    return npp.wait_until(lambda: (lambda ls: ls if len(ls) >= n else None)(read_lines(path)), timeout,
                          what="%d access log lines in %s" % (n, path))


def local_addr(sock):
    host, port = sock.getsockname()[:2]
    return ("[%s]:%d" % (host, port)) if ":" in host else ("%s:%d" % (host, port))


class AccessLog(npp.ProxyTestCase):

    def test_text_lines_carry_exact_bytes_addresses_and_reasons(self):
        be = self.backend(npp.echo_handler(b"hi|"), name="web")
        dead = self.closed_port()
        np_web, np_dead, np_denied = npp.free_ports(3)
        denied = npp.svc("denied", np_denied, [be.addr], port_name="adm")
        denied["allowSourceRanges"] = ["10.0.0.0/8"]
        log = os.path.join(self.tmp, "access.log")
        p = self.proxy_for([npp.svc("web", np_web, [be.addr], port_name="http"),
                            npp.svc("dead", np_dead, [dead.addr], namespace="prod"), denied],
                           ["--access-log", log, "--connect-attempts", "1"])

        sent, tuples = {}, {}
        for i, fam in enumerate((V4, V6, V4)):
            c = npp.connect(np_web, fam)
            payload = os.urandom(1000 * (i + 1))
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(npp.recv_all(c), b"hi|" + payload)
            sent[local_addr(c)] = len(payload)
            tuples[local_addr(c)] = c.getsockname()[:2]
            c.close()
        outcome, _, dead_local = npp.probe(np_dead)
        self.assertIn(outcome, ("reset", "eof"))
        outcome, _, denied_local = npp.probe(np_denied)
        self.assertEqual(outcome, "reset")

        lines = wait_lines(log, 5)
        self.assertEqual(len(lines), 5, lines)
        recs = [parse_text(l) for l in lines]
        by_client = {r["client"]: r for r in recs}

        for client, n in sent.items():
            r = by_client[client]
            self.assertEqual(r["protocol"], "tcp")
            self.assertEqual(r["service"], "default/web")
            self.assertEqual(r["port"], "http")
            self.assertEqual(int(r["node_port"]), np_web)
            self.assertEqual(r["endpoint"], be.addr)
            self.assertEqual(r["attempts"], "1")
            self.assertEqual(int(r["bytes_in"]), n)
            self.assertEqual(int(r["bytes_out"]), n + 3)
            self.assertEqual(r["reason"], "eof")
            self.assertGreater(int(r["id"]), 0)
            self.assertRegex(r["duration"], r"^\d+\.\d{3}$")
            self.assertRegex(r["connect_time"], r"^\d+\.\d{3}$")
            self.assertLessEqual(float(r["connect_time"]), float(r["duration"]))

        r = by_client["%s:%d" % dead_local[:2]]
        self.assertEqual((r["service"], r["endpoint"], r["attempts"], r["reason"], r["connect_time"]),
                         ("prod/dead", dead.addr, "1", "connect_failed", "-"))
        self.assertEqual((r["bytes_in"], r["bytes_out"]), ("0", "0"))

        r = by_client["%s:%d" % denied_local[:2]]
        self.assertEqual((r["id"], r["service"], r["port"], r["endpoint"], r["attempts"], r["reason"]),
                         ("0", "default/denied", "adm", "-", "0", "allowlist"))
        self.assertEqual(be.accepted, len(sent))  # the denied client never reached the pod

        # The debug log carries the same fields after "connection closed".
        for client, n in sent.items():
            rec = p.closed_for_client(tuples[client])
            self.assertEqual((int(rec["bytes_in"]), int(rec["bytes_out"]), rec["reason"]), (n, n + 3, "eof"))

    def test_json_lines_to_stderr(self):
        be = self.backend(npp.echo_handler())
        (np,) = npp.free_ports(1)
        p = self.proxy_for([npp.svc("web", np, [be.addr])],
                           ["--access-log", "stderr", "--access-log-format", "json"], log_level="info")
        c = npp.connect(np)
        c.sendall(b"x" * 12345)
        self.assertEqual(npp.recv_exact(c, 12345), b"x" * 12345)
        me = local_addr(c)
        npp.abort(c)  # a client reset: the reason says so
        idx, _ = p.wait_for_log(r'^\{"time":.*"protocol":"tcp"', 5.0)
        rec = json.loads(p.lines[idx])
        self.assertEqual(list(rec), ["time"] + FIELDS)
        self.assertRegex(rec["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(rec["client"], me)
        self.assertEqual((rec["bytes_in"], rec["bytes_out"]), (12345, 12345))
        self.assertEqual(rec["reason"], "client_reset")
        self.assertEqual(rec["node_port"], np)
        self.assertEqual(rec["endpoint"], be.addr)
        self.assertIsInstance(rec["duration"], float)
        self.assertIsInstance(rec["connect_time"], float)

    def test_sighup_reopens_a_rotated_file(self):
        be = self.backend(npp.echo_handler())
        (np,) = npp.free_ports(1)
        log = os.path.join(self.tmp, "access.log")
        p = self.proxy_for([npp.svc("web", np, [be.addr])], ["--access-log", log])

        def one_connection():
            c = npp.connect(np)
            c.sendall(b"ping")
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(npp.recv_all(c), b"ping")
            addr = local_addr(c)
            c.close()
            return addr

        first = one_connection()
        wait_lines(log, 1)
        os.rename(log, log + ".1")  # what logrotate does before its postrotate
        p.reload()                  # SIGHUP
        second = one_connection()
        wait_lines(log, 1)
        self.assertEqual([parse_text(l)["client"] for l in read_lines(log + ".1")], [first])
        self.assertEqual([parse_text(l)["client"] for l in read_lines(log)], [second])

    def test_udp_session_line_at_idle_timeout(self):
        b = npp.UdpBackend(npp.plain_echo)
        self.addCleanup(b.close)
        (np,) = npp.free_ports(1)
        log = os.path.join(self.tmp, "access.log")
        self.proxy_for([npp.svc("dns", np, [b.addr], protocol="UDP", port=53, port_name="dns")],
                       ["--access-log", log, "--udp-idle-timeout", "300ms"])
        s = npp.udp_socket(V4)
        self.addCleanup(s.close)
        for size in (10, 200, 3000):
            reply, _ = npp.udp_ask(s, ("127.0.0.1", np), b"q" * size)
            self.assertEqual(reply, b"q" * size)
        (line,) = wait_lines(log, 1, timeout=5.0)
        r = parse_text(line)
        self.assertEqual((r["protocol"], r["client"], r["service"], r["port"], r["endpoint"], r["reason"]),
                         ("udp", local_addr(s), "default/dns", "dns", b.addr, "idle_timeout"))
        self.assertEqual((int(r["bytes_in"]), int(r["bytes_out"])), (3210, 3210))
        self.assertGreaterEqual(float(r["duration"]), 0.3)

    def test_unwritable_destination_fails_at_start_with_the_reason(self):
        (np,) = npp.free_ports(1)
        be = self.backend(npp.echo_handler())
        bad = os.path.join(self.tmp, "no-such-dir", "access.log")
        p = self.proxy_for([npp.svc("web", np, [be.addr])], ["--access-log", bad], start=False)
        p.start(ready=False)
        self.assertNotEqual(p.wait(10), 0)
        p.wait_for_log(r"cannot open access log .*no-such-dir/access\.log: No such file or directory", 5.0)


if __name__ == "__main__":
    npp.main()
