"""Source allowlists, PROXY protocol to endpoints and connection limits (issue 5, non-TLS half):
ACCEPTANCE rows 19, 39, 40, 41, 42, 43, 45, and the per-source limit.

A second client IP is 127.0.0.2 (or .3, .5): a client socket bound to it before connect, which
Linux allows on lo without any set-up. The dual-stack cases run a proxy without
--nodeport-addresses, so its nodePort is one [::] socket on every address; clients still only
talk to 127.0.0.x and ::1.
"""

import json
import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import npp
from npp import V4, V6, MiB

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


# --------------------------------------------------------------------------------------------
# helpers


def exchange(port, payload=b"ping", source=None, family=V4, host=None, timeout=3.0):
    """One connection to a nodePort from `source`: send payload, half-close, read until the
    connection ends. Returns (outcome, reply, client address) with outcome 'eof' (served to the
    end), 'reset', 'timeout' or 'refused'."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.bind((source or npp.LOOPBACK[family], 0))
        local = s.getsockname()
        try:
            s.connect((host or npp.LOOPBACK[family], port))
        except ConnectionRefusedError:
            return "refused", b"", local
        except ConnectionResetError:
            return "reset", b"", local
        send_error = []

        def send():
            try:
                if payload:
                    s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
            except OSError as e:
                send_error.append(e)
        # Sent from a thread: an echoing endpoint answers while we still send, and a large
        # payload would otherwise fill every buffer on the way and stall both sides.
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        outcome, data, _ = npp.read_outcome(s, timeout)
        sender.join(timeout)
        # A reset can be reported to the sender instead of the reader (the kernel reports it
        # once); recv then sees a plain end of stream.
        if outcome == "eof" and not data and send_error and isinstance(send_error[0], (ConnectionResetError, BrokenPipeError)):
            outcome = "reset"
        return outcome, data, local
    finally:
        s.close()


def hold(port, source=None, family=V4, host=None, tag=b"ping", timeout=2.0):
    """Opens a connection that stays open: sends tag and expects the echo back. Returns
    (socket, 'ok') when served, (None, outcome) when the proxy turned it away."""
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source or npp.LOOPBACK[family], 0))
        s.connect((host or npp.LOOPBACK[family], port))
        s.sendall(tag)
        got = npp.recv_exact(s, len(tag), timeout)
        if got == tag:
            return s, "ok"
        s.close()
        return None, "wrong reply %r" % got
    except ConnectionResetError:
        s.close()
        return None, "reset"
    except BrokenPipeError:
        s.close()
        return None, "reset"
    except AssertionError:  # recv_exact: EOF
        s.close()
        return None, "eof"
    except socket.timeout:
        s.close()
        return None, "timeout"


SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(port):
    """[(name, {labels}, value)] of the proxy's /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=3) as r:
        text = r.read().decode()
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        if m:
            out.append((m.group(1), dict(LABEL_RE.findall(m.group(2) or "")), float(m.group(3))))
    return out


def sample(samples, name, **labels):
    """The value of the one sample named `name` whose labels include `labels` (0 if absent)."""
    found = [v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items())]
    if len(found) > 1:
        raise AssertionError("%d samples of %s%r" % (len(found), name, labels))
    return found[0] if found else 0


def status_json(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/status.json" % port, timeout=3) as r:
        return json.loads(r.read())


def run_cli(args, timeout=30):
    p = subprocess.run([npp.BINARY] + list(args), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def service(name, node_port, endpoints, protocol="TCP", **access):
    """npp.svc() plus access keys (allowSourceRanges=..., proxyProtocol=..., maxConnections=...)."""
    s = npp.svc(name, node_port, endpoints, protocol=protocol)
    s.update(access)
    return s


def parse_proxy_header(conn, timeout=5.0):
    """Reads one PROXY protocol header (v1 or v2) from conn, strictly as the spec describes it.
    Returns a dict: version, raw, proto ('TCP4'/'TCP6'), src, dst, sport, dport."""
    first = npp.recv_exact(conn, 12, timeout)
    if first == V2_SIGNATURE:
        head = npp.recv_exact(conn, 4, timeout)
        ver_cmd, fam, length = struct.unpack("!BBH", head)
        body = npp.recv_exact(conn, length, timeout)
        if ver_cmd != 0x21:
            raise AssertionError("v2 version/command byte 0x%02x, want 0x21" % ver_cmd)
        if fam == 0x11:
            if length != 12:
                raise AssertionError("TCP4 address block of %d bytes, want 12" % length)
            src, dst = socket.inet_ntop(V4, body[0:4]), socket.inet_ntop(V4, body[4:8])
            sport, dport = struct.unpack("!HH", body[8:12])
            proto = "TCP4"
        elif fam == 0x21:
            if length != 36:
                raise AssertionError("TCP6 address block of %d bytes, want 36" % length)
            src, dst = socket.inet_ntop(V6, body[0:16]), socket.inet_ntop(V6, body[16:32])
            sport, dport = struct.unpack("!HH", body[32:36])
            proto = "TCP6"
        else:
            raise AssertionError("v2 family byte 0x%02x" % fam)
        return dict(version=2, raw=first + head + body, proto=proto, src=src, dst=dst, sport=sport, dport=dport)
    if not first.startswith(b"PROXY "):
        raise AssertionError("no PROXY header: first bytes %r" % first)
    line = first
    while not line.endswith(b"\r\n"):
        if len(line) >= 107:
            raise AssertionError("v1 header longer than 107 bytes: %r" % line)
        line += npp.recv_exact(conn, 1, timeout)
    parts = line[:-2].decode("ascii").split(" ")
    if len(parts) != 6:
        raise AssertionError("v1 header %r does not have 6 fields" % line)
    _, proto, src, dst, sport, dport = parts
    return dict(version=1, raw=line, proto=proto, src=src, dst=dst, sport=int(sport), dport=int(dport))


def proxy_header_handler(greeting=b""):
    """Backend handler: parses the PROXY header, records it (header=...), sends greeting, then
    echoes the payload until EOF and records its digest."""
    def handler(conn, backend):
        try:
            header = parse_proxy_header(conn)
        except (AssertionError, OSError) as e:
            backend.record(error=str(e))
            return
        if greeting:
            conn.sendall(greeting)
        data = b""
        while True:
            d = conn.recv(1 << 16)
            if not d:
                break
            data += d
            conn.sendall(d)
        conn.shutdown(socket.SHUT_WR)
        backend.record(header=header, payload=data)
    return handler


def first_bytes_handler(conn, backend):
    """Backend handler: records everything it receives (raw=...) and echoes it."""
    data = b""
    while True:
        d = conn.recv(1 << 16)
        if not d:
            break
        data += d
        conn.sendall(d)
    conn.shutdown(socket.SHUT_WR)
    backend.record(raw=data)


class AccessCase(npp.ProxyTestCase):
    """Starts proxies with a metrics endpoint on a free port (self.mport)."""

    def start(self, services, extra=(), **kw):
        self.mport = npp.free_port()
        p = self.proxy_for(services, ["--metrics-bind-address", "127.0.0.1:%d" % self.mport] + list(extra), **kw)
        p.mport = self.mport
        return p

    def settle(self, backend, expected, what):
        """Gives the proxy time to act on connections it has accepted (bounded), then checks
        the backend saw exactly `expected` of them: a connect to it that should not happen
        would come within milliseconds."""
        time.sleep(0.2)
        self.assertEqual(backend.accepted, expected, what)

    def counts(self, p, name, expect, timeout=5.0, **labels):
        """Waits until the metric sample has the expected value (the counters are summed when
        scraped, after the worker has bumped them)."""
        got = {}

        def ok():
            got["v"] = sample(metrics(p.mport), name, **labels)
            return got["v"] == expect
        try:
            npp.wait_until(ok, timeout, 0.05, "%s%r == %s" % (name, labels, expect))
        except AssertionError:
            self.fail("%s%r is %s, want %s" % (name, labels, got.get("v"), expect))


def dual_stack_or_skip(test, proxy):
    """Skips unless the proxy's wildcard listener is a dual-stack [::] socket."""
    if not proxy.find(r"binding on \[::\] \(dual-stack\)"):
        test.skipTest("no IPv6 on this host: the wildcard listener is not dual-stack")


# --------------------------------------------------------------------------------------------
# row 39: allowlist basic


class Allowlist(AccessCase):

    def test_denied_source_is_reset_before_any_endpoint_is_contacted(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np = npp.free_port()
        web = dict(service="default/web", port="p", protocol="TCP", node_port=str(np))
        p = self.start([service("web", np, [b.addr], allowSourceRanges=["127.0.0.1/32"])])
        start = p.mark()
        for _ in range(3):
            t0 = time.monotonic()
            outcome, data, local = exchange(np, b"secret", source="127.0.0.2")
            self.assertEqual((outcome, data), ("reset", b""), "a denied client must be reset without a byte")
            self.assertLess(time.monotonic() - t0, 0.5)
            rec = p.closed_for_client(local, start=start)
            self.assertEqual(rec.get("reason"), "allowlist", rec)
            self.assertEqual(rec.get("client"), "127.0.0.2:%d" % local[1], rec)
            self.assertEqual(rec.get("endpoint"), "-", rec)
        self.settle(b, 0, "a denied client must never cause a connection to the endpoint")
        self.counts(p, "nodeport_proxy_connections_rejected_total", 3, reason="allowlist", **web)
        # The allowed source is served, and counted as accepted; the denied ones were not.
        self.assertEqual(exchange(np, b"hello", source="127.0.0.1")[:2], ("eof", b"hello"))
        b.wait_accepted(1)
        s = metrics(p.mport)
        self.assertEqual(sample(s, "nodeport_proxy_connections_accepted_total", **web), 1)
        self.assertEqual(sample(s, "nodeport_proxy_upstream_connect_attempts_total", **web), 1)

    def test_overlapping_blocks_allow_their_union_and_a_reload_changes_new_connections(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np = npp.free_port()
        p = self.start([service("web", np, [b.addr], allowSourceRanges=["127.0.0.1/32", "127.0.0.0/30", "127.0.0.2"])])
        # Allow-only rules: order and overlap cannot matter (first match and any match agree).
        for source, want in (("127.0.0.1", "eof"), ("127.0.0.2", "eof"), ("127.0.0.3", "eof"),
                             ("127.0.0.4", "reset"), ("127.0.0.5", "reset")):
            self.assertEqual(exchange(np, b"x", source=source)[0], want, source)
        # An open connection keeps the configuration it was accepted under; new ones get the new list.
        held, outcome = hold(np, source="127.0.0.3")
        self.assertEqual(outcome, "ok")
        self.addCleanup(held.close)
        npp.reload_with(p, [service("web", np, [b.addr], allowSourceRanges=["127.0.0.4/31"])])
        for source, want in (("127.0.0.1", "reset"), ("127.0.0.3", "reset"), ("127.0.0.4", "eof"),
                             ("127.0.0.5", "eof")):
            self.assertEqual(exchange(np, b"x", source=source)[0], want, source)
        held.sendall(b"still")
        self.assertEqual(npp.recv_exact(held, 5), b"still")
        # An empty list allows every source.
        npp.reload_with(p, [service("web", np, [b.addr], allowSourceRanges=[])])
        for source in ("127.0.0.1", "127.0.0.3"):
            self.assertEqual(exchange(np, b"x", source=source)[0], "eof", source)

    def test_global_flag_and_service_list_must_both_pass(self):
        b = self.backend(npp.echo_handler(), name="echo")
        b6 = self.backend(npp.echo_handler(), family=V6, name="echo6")
        np_a, np_b = npp.free_ports(2)
        p = self.start([service("a", np_a, [b.addr], allowSourceRanges=["127.0.0.2/32", "127.0.0.5/32", "::1/128"]),
                        service("b", np_b, [b6.addr])],
                       ["--allow-source-ranges", "127.0.0.0/30,::/0"])
        p.wait_for_log(r"--allow-source-ranges: every nodePort accepts only clients from 127\.0\.0\.0/30,::/0")
        cases = [
            (np_a, "127.0.0.1", V4, "reset"),   # global yes, service no
            (np_a, "127.0.0.2", V4, "eof"),     # both
            (np_a, "127.0.0.5", V4, "reset"),   # service yes, global no
            (np_a, "::1", V6, "eof"),           # both (::/0 and ::1/128)
            (np_b, "127.0.0.1", V4, "eof"),     # no service list: the global one decides
            (np_b, "127.0.0.5", V4, "reset"),
            (np_b, "::1", V6, "eof"),
        ]
        for port, source, family, want in cases:
            self.assertEqual(exchange(port, b"x", source=source, family=family)[0], want, (port, source))
        self.counts(p, "nodeport_proxy_connections_rejected_total", 2, reason="allowlist", service="default/a")
        self.counts(p, "nodeport_proxy_connections_rejected_total", 1, reason="allowlist", service="default/b")
        st = status_json(p.mport)
        self.assertEqual(st["allow_source_ranges"], ["127.0.0.0/30", "::/0"])
        a = [x for x in st["ports"] if x["service"] == "default/a"][0]
        self.assertEqual(a["allow_source_ranges"], ["127.0.0.2/32", "127.0.0.5/32", "::1/128"])

    def test_ipv4_rules_never_admit_ipv6_clients_and_ipv6_rules_never_admit_ipv4(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np4, np6 = npp.free_ports(2)
        self.start([service("v4only", np4, [b.addr], allowSourceRanges=["127.0.0.0/8"]),
                    service("v6only", np6, [b.addr], allowSourceRanges=["::/0"])])
        self.assertEqual(exchange(np4, b"x", source="127.0.0.1")[0], "eof")
        self.assertEqual(exchange(np4, b"x", family=V6)[0], "reset")
        self.assertEqual(exchange(np6, b"x", family=V6)[0], "eof")
        self.assertEqual(exchange(np6, b"x", source="127.0.0.1")[0], "reset")


# --------------------------------------------------------------------------------------------
# row 40: IPv4-mapped clients of a dual-stack listener


class DualStack(AccessCase):

    def test_ipv4_client_on_dual_stack_listener_is_matched_against_ipv4_rules(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np = npp.free_port()
        p = self.start([service("web", np, [b.addr], allowSourceRanges=["127.0.0.1/32"])], loopback=False)
        dual_stack_or_skip(self, p)
        start = p.mark()
        # 127.0.0.2 reaches the [::] socket as ::ffff:127.0.0.2 and must be denied like 127.0.0.2.
        outcome, _, local = exchange(np, b"x", source="127.0.0.2", host="127.0.0.1")
        self.assertEqual(outcome, "reset")
        rec = p.closed_for_client(local, start=start)
        self.assertEqual((rec.get("reason"), rec.get("client")), ("allowlist", "127.0.0.2:%d" % local[1]), rec)
        # The same from an AF_INET6 client socket speaking IPv4-mapped (socat TCP6:[::ffff:...]).
        outcome, _, _ = exchange(np, b"x", source="::ffff:127.0.0.2", family=V6, host="::ffff:127.0.0.1")
        self.assertEqual(outcome, "reset")
        self.settle(b, 0, "denied IPv4-mapped clients must not reach the endpoint")
        # 127.0.0.1 is allowed through the same socket, both ways of writing it; ::1 is IPv6.
        self.assertEqual(exchange(np, b"hi", source="127.0.0.1", host="127.0.0.1")[:2], ("eof", b"hi"))
        self.assertEqual(exchange(np, b"hi", source="::ffff:127.0.0.1", family=V6, host="::ffff:127.0.0.1")[:2],
                         ("eof", b"hi"))
        self.assertEqual(exchange(np, b"hi", family=V6, host="::1")[0], "reset")
        self.counts(p, "nodeport_proxy_connections_rejected_total", 3, reason="allowlist", service="default/web")

    def test_ipv4_allow_rule_admits_the_mapped_client_and_deny_stays_deny(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np = npp.free_port()
        p = self.start([service("web", np, [b.addr], allowSourceRanges=["127.0.0.2/32"])], loopback=False)
        dual_stack_or_skip(self, p)
        self.assertEqual(exchange(np, b"ok", source="127.0.0.2", host="127.0.0.1")[:2], ("eof", b"ok"))
        self.assertEqual(exchange(np, b"no", source="127.0.0.1", host="127.0.0.1")[0], "reset")
        self.assertEqual(exchange(np, b"no", source="127.0.0.3", host="127.0.0.2")[0], "reset")

    def test_proxy_header_for_an_ipv4_client_of_the_dual_stack_listener_is_tcp4_unmapped(self):
        b1 = self.backend(proxy_header_handler(), name="pp-v1")
        b2 = self.backend(proxy_header_handler(), name="pp-v2")
        np1, np2 = npp.free_ports(2)
        p = self.start([service("one", np1, [b1.addr], proxyProtocol="v1"),
                        service("two", np2, [b2.addr], proxyProtocol="v2")], loopback=False)
        dual_stack_or_skip(self, p)
        # The destination is the address the client connected to (127.0.0.2 here, not 127.0.0.1).
        _, reply, local = exchange(np1, b"a", source="127.0.0.3", host="127.0.0.2")
        self.assertEqual(reply, b"a")
        self.assertEqual(b1.wait_results(1)[0]["header"]["raw"],
                         b"PROXY TCP4 127.0.0.3 127.0.0.2 %d %d\r\n" % (local[1], np1))
        _, reply, local = exchange(np2, b"b", source="::ffff:127.0.0.3", family=V6, host="::ffff:127.0.0.1")
        self.assertEqual(reply, b"b")
        self.assertEqual(b2.wait_results(1)[0]["header"]["raw"],
                         V2_SIGNATURE + bytes([0x21, 0x11, 0, 12, 127, 0, 0, 3, 127, 0, 0, 1])
                         + struct.pack("!HH", local[1], np2))
        # An IPv6 client of the same socket stays TCP6.
        _, reply, local = exchange(np1, b"c", family=V6)
        self.assertEqual(b1.wait_results(2)[1]["header"]["raw"], b"PROXY TCP6 ::1 ::1 %d %d\r\n" % (local[1], np1))

    def test_ipv4_mapped_blocks_are_refused_so_no_rule_silently_never_matches(self):
        # ::ffff:127.0.0.2/128 would never match (clients are unmapped first); ::127.0.0.2
        # (IPv4-compatible) and 6to4 are plain IPv6: see proxy/allowlist.hpp for why.
        rc, out, err = run_cli(["run", "--forward", "%d=127.0.0.1:9" % npp.free_port(),
                                "--allow-source-ranges", "::ffff:127.0.0.2/128"])
        self.assertEqual(rc, 2, out + err)
        self.assertIn("--allow-source-ranges: ::ffff:127.0.0.2/128: an IPv4-mapped block never matches", err)
        self.assertIn("write 127.0.0.2/32", err)


# --------------------------------------------------------------------------------------------
# row 41: allowlist parsing


class Validation(AccessCase):

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_invalid_blocks_are_reported_with_path_and_reason(self):
        np = npp.free_port()
        path = self.write("bad.json", json.dumps({"services": [service(
            "web", np, ["127.0.0.1:9"],
            allowSourceRanges=["300.1.1.1", "10.0.0.0/33", "10.0.0.1/8", "2001:db8::1/64", "10.0.0.0/8"],
            proxyProtocol="v3", maxConnections=0)]}))
        rc, out, _ = run_cli(["validate", "--service-node-port-range", npp.TEST_PORT_RANGE, path])
        self.assertEqual(rc, 1, out)
        for line in [
            'services[0].allowSourceRanges[0]: Invalid value: "300.1.1.1": not an IP address',
            'services[0].allowSourceRanges[1]: Invalid value: "10.0.0.0/33": prefix length must be 0-32',
            'services[0].allowSourceRanges[2]: Invalid value: "10.0.0.1/8": host bits set below the prefix length',
            'services[0].allowSourceRanges[3]: Invalid value: "2001:db8::1/64": host bits set below the prefix length',
            'services[0].proxyProtocol: Unsupported value: "v3": supported values: "v1", "v2"',
            'services[0].maxConnections: Invalid value: 0: must be between 1 and 2147483647',
        ]:
            self.assertIn(line, out)
        self.assertIn("6 problem(s)", out)
        # `run` refuses the same file and serves nothing.
        rc, out, err = run_cli(["run", "--endpoints-file", path, "--service-node-port-range", npp.TEST_PORT_RANGE,
                                "--metrics-bind-address", "", "--healthz-bind-address", ""])
        self.assertEqual(rc, 1)
        self.assertIn('allowSourceRanges[0]: Invalid value: "300.1.1.1"', err)

    def test_any_and_empty_lists_are_valid(self):
        np1, np2 = npp.free_ports(2)
        path = self.write("ok.json", json.dumps({"services": [
            service("any", np1, ["127.0.0.1:9"], allowSourceRanges=["::/0", "0.0.0.0/0"]),
            service("empty", np2, ["127.0.0.1:9"], allowSourceRanges=[])]}))
        rc, out, _ = run_cli(["validate", "--service-node-port-range", npp.TEST_PORT_RANGE, path])
        self.assertEqual(rc, 0, out)

    def test_annotations_are_validated_and_name_the_service(self):
        manifest = npp.k8s_service("admin", [npp.k8s_port(443, 30443, name="https")], namespace="ops")
        manifest["metadata"]["annotations"] = {
            "nodeport-proxy.io/allow-source-ranges": "10.0.0.0/8, 300.1.1.1",
            "nodeport-proxy.io/proxy-protocol": "v2",
            "nodeport-proxy.io/max-connections": "many",
            "nodeport-proxy.io/max-conections": "5",
        }
        path = self.write("svc.yaml", npp.to_yaml(manifest))
        rc, out, _ = run_cli(["validate", path])
        self.assertEqual(rc, 1, out)
        self.assertIn('Service ops/admin: metadata.annotations[nodeport-proxy.io/allow-source-ranges]: '
                      'Invalid value: "300.1.1.1": not an IP address', out)
        self.assertIn('Service ops/admin: metadata.annotations[nodeport-proxy.io/max-connections]: '
                      'Invalid value: "many": must be an integer', out)
        self.assertIn('Service ops/admin: metadata.annotations[nodeport-proxy.io/max-conections]: unknown annotation',
                      out)
        self.assertIn("3 problem(s)", out)

    def test_proxy_protocol_on_a_service_with_a_udp_port_is_refused(self):
        np = npp.free_port_tcp_udp()
        svc = service("dns", np, ["127.0.0.1:9"], proxyProtocol="v2")
        svc["ports"].append({"name": "udp", "protocol": "UDP", "port": 80, "nodePort": np, "endpoints": ["127.0.0.1:9"]})
        path = self.write("dns.json", json.dumps({"services": [svc]}))
        rc, out, _ = run_cli(["validate", "--service-node-port-range", npp.TEST_PORT_RANGE, path])
        self.assertEqual(rc, 1, out)
        self.assertIn('services[0].proxyProtocol: Forbidden: PROXY protocol is sent on TCP connections only and '
                      'port "udp" is UDP', out)

    def test_bad_global_flag_is_a_usage_error(self):
        for value, why in (("10.0.0.1/8", "host bits set"), ("300.1.1.1", "not an IP address"),
                           ("10.0.0.0/33", "prefix length must be 0-32")):
            rc, out, err = run_cli(["run", "--forward", "%d=127.0.0.1:9" % npp.free_port(),
                                    "--allow-source-ranges", "127.0.0.0/8," + value])
            self.assertEqual(rc, 2, out + err)
            self.assertIn("--allow-source-ranges: %s: %s" % (value, why), err)


# --------------------------------------------------------------------------------------------
# row 42: UDP allowlist


class UdpAllowlist(AccessCase):

    def test_denied_datagrams_create_no_session_and_are_counted(self):
        ub = npp.UdpBackend(npp.tag_echo("pod"), name="udp")
        self.addCleanup(ub.close)
        np = npp.free_port_tcp_udp()
        dns = dict(service="default/dns", protocol="UDP", node_port=str(np))
        p = self.start([service("dns", np, [ub.addr], protocol="UDP", allowSourceRanges=["127.0.0.1/32"])])
        denied = npp.udp_socket(bind_host="127.0.0.2", timeout=0.3)
        self.addCleanup(denied.close)
        for i in range(5):
            reply, _ = npp.udp_ask(denied, ("127.0.0.1", np), b"q%d" % i, timeout=0.3)
            self.assertIsNone(reply, "a denied source must get no answer")
        self.counts(p, "nodeport_proxy_udp_datagrams_dropped_total", 5, reason="allowlist", **dns)
        s = metrics(p.mport)
        self.assertEqual(sample(s, "nodeport_proxy_udp_sessions_created_total", **dns), 0)
        self.assertEqual(ub.count(), 0, "nothing may reach the endpoint")
        self.assertFalse([x for x in npp.udp_sockets(p.pid) if x[1].endswith(":%d" % ub.port)],
                         "no upstream socket may be opened")
        # The allowed source gets a session (and its upstream socket).
        allowed = npp.udp_socket(bind_host="127.0.0.1")
        self.addCleanup(allowed.close)
        reply, _ = npp.udp_ask(allowed, ("127.0.0.1", np), b"hello")
        self.assertIsNotNone(reply)
        self.assertEqual(npp.parse_tagged(reply)[2], b"hello")
        self.counts(p, "nodeport_proxy_udp_sessions_created_total", 1, **dns)
        self.assertEqual(len([x for x in npp.udp_sockets(p.pid) if x[1].endswith(":%d" % ub.port)]), 1)

    def test_a_reload_that_denies_a_source_ends_its_session(self):
        ub = npp.UdpBackend(npp.tag_echo("pod"), name="udp")
        self.addCleanup(ub.close)
        np = npp.free_port_tcp_udp()
        dns = dict(service="default/dns", protocol="UDP", node_port=str(np))

        def services(ranges):
            return [service("dns", np, [ub.addr], protocol="UDP", allowSourceRanges=ranges)]
        p = self.start(services(["127.0.0.0/8"]))
        c = npp.udp_socket(bind_host="127.0.0.2", timeout=0.5)
        self.addCleanup(c.close)
        self.assertIsNotNone(npp.udp_ask(c, ("127.0.0.1", np), b"one")[0])
        self.assertEqual(len([x for x in npp.udp_sockets(p.pid) if x[1].endswith(":%d" % ub.port)]), 1)
        npp.reload_with(p, services(["127.0.0.1/32"]))
        self.assertIsNone(npp.udp_ask(c, ("127.0.0.1", np), b"two", timeout=0.5)[0])
        self.counts(p, "nodeport_proxy_udp_datagrams_dropped_total", 1, reason="allowlist", **dns)
        npp.wait_until(lambda: not [x for x in npp.udp_sockets(p.pid) if x[1].endswith(":%d" % ub.port)], 2.0,
                       what="the denied client's upstream socket to close")
        self.assertEqual(ub.count(), 1)


# --------------------------------------------------------------------------------------------
# row 43: a client-sent PROXY header is payload


class ProxyHeaderSpoof(AccessCase):

    def test_client_sent_header_is_forwarded_as_payload_and_the_allowlist_uses_the_real_peer(self):
        b = self.backend(first_bytes_handler, name="raw")
        np = npp.free_port()
        self.start([service("web", np, [b.addr], allowSourceRanges=["127.0.0.1/32"])])
        v1 = b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nGET / HTTP/1.0\r\n\r\n"
        v2 = V2_SIGNATURE + bytes([0x21, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 4, 87, 8, 174]) + b"payload"
        for payload in (v1, v2):
            outcome, reply, _ = exchange(np, payload, source="127.0.0.1")
            self.assertEqual((outcome, reply), ("eof", payload))
        results = b.wait_results(2)
        self.assertEqual([r["raw"] for r in results], [v1, v2], "forwarded byte for byte, never interpreted")
        # A denied client claiming to be the allowed one is still denied: only the real peer counts.
        forged = b"PROXY TCP4 127.0.0.1 127.0.0.1 40000 %d\r\nhello" % np
        self.assertEqual(exchange(np, forged, source="127.0.0.2")[0], "reset")
        self.settle(b, 2, "the forged header must not get the client through")

    def test_with_proxy_protocol_on_the_client_header_follows_ours_as_payload(self):
        b = self.backend(proxy_header_handler(), name="pp")
        np = npp.free_port()
        self.start([service("web", np, [b.addr], proxyProtocol="v1")])
        forged = b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n"
        outcome, reply, local = exchange(np, forged + b"data", source="127.0.0.2")
        self.assertEqual((outcome, reply), ("eof", forged + b"data"))
        r = b.wait_results(1)[0]
        self.assertEqual(r["header"]["raw"], b"PROXY TCP4 127.0.0.2 127.0.0.1 %d %d\r\n" % (local[1], np))
        self.assertEqual(r["payload"], forged + b"data")


# --------------------------------------------------------------------------------------------
# row 45: PROXY protocol to endpoints


class ProxyProtocolOut(AccessCase):

    def check_header(self, version, family, source, host, want):
        """One connection through a proxyProtocol `version` port; returns the parsed header
        after checking the payload came after it intact."""
        b = self.backend(proxy_header_handler(), family=V4, name="pp")
        np = npp.free_port()
        self.start([service("web", np, [b.addr], proxyProtocol=version)])
        payload = os.urandom(64 * 1024)
        outcome, reply, local = exchange(np, payload, source=source, family=family, host=host)
        self.assertEqual(outcome, "eof")
        self.assertEqual(npp.sha256(reply), npp.sha256(payload))
        r = b.wait_results(1)[0]
        self.assertNotIn("error", r, r)
        self.assertEqual(npp.sha256(r["payload"]), npp.sha256(payload))
        h = r["header"]
        self.assertEqual((h["proto"], h["src"], h["dst"], h["sport"], h["dport"]),
                         (want[0], want[1], want[2], local[1], np))
        return h, local, np

    def test_v1_ipv4_client(self):
        h, local, np = self.check_header("v1", V4, "127.0.0.2", "127.0.0.1", ("TCP4", "127.0.0.2", "127.0.0.1"))
        self.assertEqual(h["raw"], b"PROXY TCP4 127.0.0.2 127.0.0.1 %d %d\r\n" % (local[1], np))

    def test_v1_ipv6_client(self):
        h, local, np = self.check_header("v1", V6, "::1", "::1", ("TCP6", "::1", "::1"))
        self.assertEqual(h["raw"], b"PROXY TCP6 ::1 ::1 %d %d\r\n" % (local[1], np))

    def test_v2_ipv4_client(self):
        h, local, np = self.check_header("v2", V4, "127.0.0.3", "127.0.0.1", ("TCP4", "127.0.0.3", "127.0.0.1"))
        self.assertEqual(h["raw"], V2_SIGNATURE + bytes([0x21, 0x11, 0, 12, 127, 0, 0, 3, 127, 0, 0, 1])
                         + struct.pack("!HH", local[1], np))

    def test_v2_ipv6_client(self):
        h, local, np = self.check_header("v2", V6, "::1", "::1", ("TCP6", "::1", "::1"))
        self.assertEqual(h["raw"], V2_SIGNATURE + bytes([0x21, 0x21, 0, 36]) + socket.inet_pton(V6, "::1") * 2
                         + struct.pack("!HH", local[1], np))

    def test_endpoint_that_speaks_first_gets_the_header_before_the_client_sends_anything(self):
        b = self.backend(proxy_header_handler(greeting=b"220 ready\r\n"), name="smtp")
        np = npp.free_port()
        self.start([service("mail", np, [b.addr], proxyProtocol="v2")])
        c = socket.create_connection(("127.0.0.1", np), timeout=3)
        self.addCleanup(c.close)
        self.assertEqual(npp.recv_exact(c, 11), b"220 ready\r\n")
        c.sendall(b"QUIT\r\n")
        c.shutdown(socket.SHUT_WR)
        self.assertEqual(npp.recv_all(c), b"QUIT\r\n")
        h = b.wait_results(1)[0]["header"]
        self.assertEqual((h["version"], h["src"], h["sport"], h["dport"]), (2, "127.0.0.1", c.getsockname()[1], np))

    def test_every_connection_gets_its_own_header_and_the_spliced_relay_stays_intact(self):
        b = self.backend(proxy_header_handler(), name="pp")
        np = npp.free_port()
        self.start([service("web", np, [b.addr], proxyProtocol="v1")], ["--workers", "2"])
        locals_ = []
        for i in range(6):
            payload = bytes([i]) * (1 * MiB)
            outcome, reply, local = exchange(np, payload, source="127.0.0.%d" % (i % 3 + 1), timeout=10)
            self.assertEqual(outcome, "eof")
            self.assertEqual(npp.sha256(reply), npp.sha256(payload))
            locals_.append(local)
        got = sorted((r["header"]["src"], r["header"]["sport"]) for r in b.wait_results(6))
        self.assertEqual(got, sorted(locals_))


# --------------------------------------------------------------------------------------------
# row 19 and the per-source limit


class ServiceLimit(AccessCase):

    def test_max_connections_5_of_8_proxied_rest_reset_and_counted(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np = npp.free_port()
        web = dict(service="default/web", port="p", protocol="TCP", node_port=str(np))
        p = self.start([service("web", np, [b.addr], maxConnections=5)], ["--workers", "2"])
        fds_before = p.fd_count()
        held, outcomes = [], []
        for i in range(8):
            s, outcome = hold(np, tag=b"c%d" % i)
            outcomes.append(outcome)
            if s:
                held.append(s)
                self.addCleanup(s.close)
        self.assertEqual(outcomes, ["ok"] * 5 + ["reset"] * 3)
        self.settle(b, 5, "only admitted clients may reach the endpoint")
        self.counts(p, "nodeport_proxy_connections_rejected_total", 3, reason="service_limit", **web)
        s = metrics(p.mport)
        self.assertEqual(sample(s, "nodeport_proxy_connections_active", **web), 5)
        self.assertEqual(sample(s, "nodeport_proxy_connections_accepted_total", **web), 5)
        # Two descriptors per proxied connection, none kept for the rejected ones.
        self.assertLessEqual(p.fd_count() - fds_before, 2 * 5 + p.PIPE_FDS_CACHED_PER_WORKER * 2)
        st = [x for x in status_json(p.mport)["ports"] if x["service"] == "default/web"][0]
        self.assertEqual((st["max_connections"], st["service_connections_active"]), (5, 5))
        # The held ones keep working; when one leaves, a new client fits, and the limit holds again.
        for i, c in enumerate(held):
            c.sendall(b"again")
            self.assertEqual(npp.recv_exact(c, 5), b"again")
        start = p.mark()
        gone = held.pop()
        gone_local = gone.getsockname()
        gone.close()
        p.closed_for_client(gone_local, start=start)
        s2, outcome = hold(np)
        self.assertEqual(outcome, "ok")
        self.addCleanup(s2.close)
        start = p.mark()
        outcome, _, local = exchange(np, b"over")
        self.assertEqual(outcome, "reset")
        self.assertEqual(p.closed_for_client(local, start=start).get("reason"), "service_limit")

    def test_the_limit_is_shared_by_all_ports_of_the_service(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np_a, np_b = npp.free_ports(2)
        svc = service("web", np_a, [b.addr], maxConnections=4)
        svc["ports"] = [{"name": "a", "port": 80, "nodePort": np_a, "endpoints": [b.addr]},
                        {"name": "b", "port": 81, "nodePort": np_b, "endpoints": [b.addr]}]
        p = self.start([svc], ["--workers", "2"])
        outcomes = []
        for port in (np_a, np_b, np_a, np_b, np_b, np_a):
            sock, outcome = hold(port)
            outcomes.append(outcome)
            if sock:
                self.addCleanup(sock.close)  # kept open: a closed one would give its slot back
        self.assertEqual(outcomes, ["ok"] * 4 + ["reset"] * 2)
        self.counts(p, "nodeport_proxy_connections_rejected_total", 1, reason="service_limit", port="a")
        self.counts(p, "nodeport_proxy_connections_rejected_total", 1, reason="service_limit", port="b")

    def test_a_reload_that_lowers_the_limit_counts_the_open_connections(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np = npp.free_port()
        p = self.start([service("web", np, [b.addr], maxConnections=10)])
        held = []
        for _ in range(3):
            s, outcome = hold(np)
            self.assertEqual(outcome, "ok")
            held.append(s)
            self.addCleanup(s.close)
        npp.reload_with(p, [service("web", np, [b.addr], maxConnections=3)])
        self.assertEqual(hold(np)[1], "reset", "three are open already")
        npp.reload_with(p, [service("web", np, [b.addr], maxConnections=4)])
        s, outcome = hold(np)
        self.assertEqual(outcome, "ok")
        self.addCleanup(s.close)


class SourceLimit(AccessCase):

    def test_max_connections_per_source_counts_each_client_ip_apart(self):
        b = self.backend(npp.echo_handler(), name="echo")
        np = npp.free_port()
        web = dict(service="default/web", port="p", protocol="TCP", node_port=str(np))
        p = self.start([service("web", np, [b.addr], maxConnectionsPerSource=2)], ["--workers", "2"])
        held = {}
        for source, want in (("127.0.0.2", "ok"), ("127.0.0.2", "ok"), ("127.0.0.2", "reset"),
                             ("127.0.0.3", "ok"), ("127.0.0.3", "ok"), ("127.0.0.3", "reset"),
                             ("127.0.0.2", "reset")):
            s, outcome = hold(np, source=source)
            self.assertEqual(outcome, want, source)
            if s:
                held.setdefault(source, []).append(s)
                self.addCleanup(s.close)
        self.settle(b, 4, "rejected clients must not reach the endpoint")
        self.counts(p, "nodeport_proxy_connections_rejected_total", 3, reason="source_limit", **web)
        start = p.mark()
        gone = held["127.0.0.2"].pop()
        gone_local = gone.getsockname()
        gone.close()
        p.closed_for_client(gone_local, start=start)
        s, outcome = hold(np, source="127.0.0.2")
        self.assertEqual(outcome, "ok")
        self.addCleanup(s.close)
        start = p.mark()
        outcome, _, local = exchange(np, b"x", source="127.0.0.3")
        self.assertEqual(outcome, "reset")
        self.assertEqual(p.closed_for_client(local, start=start).get("reason"), "source_limit")

    def test_a_client_holding_many_idle_connections_cannot_starve_others(self):
        # Slowloris in small (row 24): one source opens 60 connections and never sends; with a
        # per-source limit of 10 it holds 10, and another client is still served at once.
        b = self.backend(npp.echo_handler(), name="echo")
        np = npp.free_port()
        p = self.start([service("web", np, [b.addr], maxConnectionsPerSource=10, maxConnections=50)])
        idle = []
        for _ in range(60):
            s = socket.socket(V4, socket.SOCK_STREAM)
            s.bind(("127.0.0.5", 0))
            s.settimeout(3)
            self.addCleanup(s.close)
            try:
                s.connect(("127.0.0.1", np))
            except ConnectionResetError:
                continue  # the reset of a rejected one can beat connect() itself
            idle.append(s)
        self.counts(p, "nodeport_proxy_connections_rejected_total", 50, reason="source_limit", service="default/web")
        b.wait_accepted(10)
        self.settle(b, 10, "only ten idle connections may reach the endpoint")
        self.assertEqual(exchange(np, b"legit", source="127.0.0.1")[:2], ("eof", b"legit"))


if __name__ == "__main__":
    npp.main()
