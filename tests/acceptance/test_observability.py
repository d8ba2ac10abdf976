"""Observability (issue 7): /livez /readyz /healthz, /metrics validated with the reference parser
(python3-prometheus-client) and exact after known traffic, /status.json, the /status page
rendered by headless Chromium (the page's JS must have run), and `nodeport-proxy check` against a
live proxy with one healthy and one broken service.

Flags used: run --healthz-bind-address ADDR --metrics-bind-address ADDR; check --endpoints-file F
--service-node-port-range R --node ADDR --timeout DUR --output text|json."""

import datetime
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from html.parser import HTMLParser

import npp
from npp import V4

from prometheus_client.parser import text_string_to_metric_families

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ALLOWED_LABELS = {"service", "port", "protocol", "node_port", "reason", "direction", "state",
                  "result", "version", "le"}


def http_get(port, path, method="GET", timeout=5.0, headers=None):
    """(status, headers dict lower-case, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def run_cli(args, timeout=30):
    npp.require_binary()
    p = subprocess.run([npp.BINARY] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def parse_rfc3339(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc)


def samples_of(text):
    """{(name, frozenset(labels.items())): value} via the reference parser (raises on bad text)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    if key not in samples:
        near = sorted(k for k in samples if k[0] == name)
        raise AssertionError("no sample %s%r; have %r" % (name, labels, near[:10]))
    return samples[key]


class DomText(HTMLParser):
    """Collects the direct text of every th/td (text of nested cells goes to the innermost one)
    and the attributes of <body>."""

    def __init__(self):
        super().__init__()
        self.cells = []
        self.body = {}
        self.stack = []
        self.all_text = []

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.body = dict(attrs)
        if tag in ("th", "td"):
            self.stack.append([])

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self.stack:
            self.cells.append(" ".join("".join(self.stack.pop()).split()))

    def handle_data(self, data):
        self.all_text.append(data)
        if self.stack:
            self.stack[-1].append(data)


def chromium_dom(url, tmp):
    """Loads url in headless Chromium and returns the DOM after its scripts ran."""
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError("chromium not found (scripts/deps.sh test installs it)")
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--user-data-dir=" + profile, "--dump-dom",
           "--virtual-time-budget=5000", url]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    dom = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0 or "<body" not in dom:
        raise AssertionError("chromium failed (rc %s): %s" % (p.returncode, p.stderr.decode()[-2000:]))
    d = DomText()
    d.feed(dom)
    return dom, d


class ObservabilityCase(npp.ProxyTestCase):

    def start(self, services, extra=(), **kw):
        hp, mp = npp.free_ports(2)
        p = self.proxy_for(services, ["--healthz-bind-address", "127.0.0.1:%d" % hp,
                                      "--metrics-bind-address", "127.0.0.1:%d" % mp] + list(extra), **kw)
        p.healthz_port, p.metrics_port = hp, mp
        for port in (hp, mp):
            npp.wait_until(lambda: self._accepts(port), 5.0, what="admin port %d to listen" % port)
        return p

    @staticmethod
    def _accepts(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def metrics(self, p):
        status, headers, body = http_get(p.metrics_port, "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        return body.decode()

    def status_json(self, p):
        status, headers, body = http_get(p.metrics_port, "/status.json")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        return json.loads(body)


class Health(ObservabilityCase):

    def test_livez_readyz_healthz_and_routing(self):
        b = self.backend(npp.echo_handler())
        (np,) = npp.free_ports(1)
        p = self.start([npp.svc("web", np, [b.addr])])
        status, _, body = http_get(p.healthz_port, "/livez")
        self.assertEqual((status, body), (200, b"ok"))
        status, _, body = http_get(p.healthz_port, "/readyz")
        self.assertEqual((status, body), (200, b"ok"))
        status, _, body = http_get(p.healthz_port, "/readyz?verbose")
        self.assertEqual(status, 200)
        self.assertIn(b"[+]config ok\n", body)
        self.assertIn(b"readyz check passed", body)

        t0 = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        status, headers, body = http_get(p.healthz_port, "/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/json")
        # kube-proxy's body shape, byte for byte apart from the times.
        self.assertRegex(body.decode(), r'^\{"lastUpdated": "[^"]+","currentTime": "[^"]+", "nodeEligible": true\}$')
        j = json.loads(body)
        self.assertEqual(set(j), {"lastUpdated", "currentTime", "nodeEligible"})
        now = parse_rfc3339(j["currentTime"])
        self.assertLessEqual(abs((now - t0).total_seconds()), 5)
        last = parse_rfc3339(j["lastUpdated"])
        self.assertLessEqual(last, now)
        self.assertLessEqual((now - last).total_seconds(), 30)

        # Roles: health routes only on the healthz address, metrics/status only on the other.
        for path in ("/metrics", "/status", "/status.json"):
            self.assertEqual(http_get(p.healthz_port, path)[0], 404, path)
        for path in ("/livez", "/readyz", "/healthz"):
            self.assertEqual(http_get(p.metrics_port, path)[0], 404, path)
        self.assertEqual(http_get(p.healthz_port, "/nope")[0], 404)
        status, headers, _ = http_get(p.metrics_port, "/metrics", method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(headers.get("allow"), "GET, HEAD")
        status, headers, body = http_get(p.healthz_port, "/livez", headers={"X-Big": "a" * 20000})
        self.assertEqual(status, 431)

    def test_readyz_fails_while_draining(self):
        b = self.backend(npp.echo_handler())
        (np,) = npp.free_ports(1)
        p = self.start([npp.svc("web", np, [b.addr])], ["--shutdown-grace-period", "20s"])
        c = self.client(np)
        c.sendall(b"x")
        self.assertEqual(npp.recv_exact(c, 1), b"x")  # one connection keeps the drain going
        mark = p.mark()
        p.terminate()
        p.wait_for_log(r"shutting down", 5.0, mark)
        status, _, body = http_get(p.healthz_port, "/readyz?verbose")
        self.assertEqual(status, 503, body)
        self.assertIn(b"[-]shutdown failed", body)
        self.assertEqual(http_get(p.healthz_port, "/healthz")[0], 503)
        self.assertEqual(http_get(p.healthz_port, "/livez")[0], 200)
        self.assertTrue(self.status_json(p)["draining"])
        c.close()
        self.assertEqual(p.wait(10), 0)


class Metrics(ObservabilityCase):

    def test_metrics_parse_and_count_exactly(self):
        web_be = self.backend(npp.echo_handler(b"hello|"))
        dead = self.closed_port()
        np_web, np_broken = npp.free_ports(2)
        p = self.start([npp.svc("web", np_web, [web_be.addr], port_name="http"),
                        npp.svc("broken", np_broken, [dead.addr], namespace="prod", port_name="api")],
                       ["--connect-attempts", "1"])
        n, size = 5, 100_000
        for i in range(n):
            c = npp.connect(np_web)
            payload = bytes([i]) * size
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(npp.recv_all(c), b"hello|" + payload)
            c.close()
        for _ in range(2):
            outcome, _, _ = npp.probe(np_broken)
            self.assertIn(outcome, ("reset", "eof"))

        web = dict(service="default/web", port="http", protocol="TCP", node_port=str(np_web))
        broken = dict(service="prod/broken", port="api", protocol="TCP", node_port=str(np_broken))

        def settled():
            s = samples_of(self.metrics(p))
            done = (sample(s, "nodeport_proxy_connections_active", **web) == 0 and
                    sample(s, "nodeport_proxy_bytes_total", direction="upstream_to_client", **web) == n * (size + 6) and
                    sample(s, "nodeport_proxy_connections_rejected_total", reason="connect_failed", **broken) == 2)
            return s if done else None
        s = npp.wait_until(settled, 5.0, 0.05, "metrics to count the test traffic")

        self.assertEqual(sample(s, "nodeport_proxy_connections_accepted_total", **web), n)
        self.assertEqual(sample(s, "nodeport_proxy_bytes_total", direction="client_to_upstream", **web), n * size)
        self.assertEqual(sample(s, "nodeport_proxy_bytes_total", direction="upstream_to_client", **web), n * (size + 6))
        self.assertEqual(sample(s, "nodeport_proxy_upstream_connect_attempts_total", **web), n)
        self.assertEqual(sample(s, "nodeport_proxy_upstream_connect_failures_total", **web), 0)
        for reason in ("limit", "no_endpoints", "connect_failed"):
            self.assertEqual(sample(s, "nodeport_proxy_connections_rejected_total", reason=reason, **web), 0)
        self.assertEqual(sample(s, "nodeport_proxy_connections_accepted_total", **broken), 2)
        self.assertEqual(sample(s, "nodeport_proxy_upstream_connect_failures_total", **broken), 2)
        self.assertEqual(sample(s, "nodeport_proxy_bytes_total", direction="client_to_upstream", **broken), 0)
        self.assertEqual(sample(s, "nodeport_proxy_endpoints", state="ready", **web), 1)
        self.assertEqual(sample(s, "nodeport_proxy_endpoints", state="in_use", **web), 1)
        self.assertEqual(sample(s, "nodeport_proxy_port_listening", **web), 1)
        self.assertEqual(sample(s, "nodeport_proxy_process_connections_active"), 0)
        self.assertEqual(sample(s, "nodeport_proxy_config_generation"), 1)
        self.assertEqual(sample(s, "nodeport_proxy_config_last_reload_successful"), 1)
        self.assertEqual(sample(s, "nodeport_proxy_ready"), 1)
        self.assertGreater(sample(s, "nodeport_proxy_max_connections"), 0)
        self.assertAlmostEqual(sample(s, "nodeport_proxy_config_last_applied_timestamp_seconds"), time.time(), delta=60)
        # Histograms: one connect observation per proxied connection, none for the failed ones;
        # one sync observation per applied configuration.
        cd = "nodeport_proxy_upstream_connect_duration_seconds"
        self.assertEqual(sample(s, cd + "_count", **web), n)
        self.assertEqual(sample(s, cd + "_bucket", le="+Inf", **web), n)
        self.assertGreater(sample(s, cd + "_sum", **web), 0)
        self.assertLess(sample(s, cd + "_sum", **web), n * 1.0)  # loopback connects take microseconds
        self.assertEqual(sample(s, cd + "_bucket", le="5", **web), n)
        self.assertEqual(sample(s, cd + "_count", **broken), 0)
        fams = {f.name: f for f in text_string_to_metric_families(self.metrics(p))}
        self.assertEqual(fams[cd].type, "histogram")
        web_buckets = [(float(x.labels["le"]), x.value) for x in fams[cd].samples
                       if x.name == cd + "_bucket" and x.labels["service"] == "default/web"]
        self.assertEqual([le for le, _ in web_buckets], sorted(le for le, _ in web_buckets))
        self.assertEqual([v for _, v in web_buckets], sorted(v for _, v in web_buckets))  # cumulative
        self.assertEqual(sample(s, "nodeport_proxy_sync_duration_seconds_count"), 1)
        self.assertEqual(sample(s, "nodeport_proxy_sync_duration_seconds_bucket", le="+Inf"), 1)
        self.assertGreater(sample(s, "nodeport_proxy_sync_duration_seconds_sum"), 0)

        rc, out, _ = run_cli(["version", "--json"])
        version = json.loads(out)["version"]
        self.assertEqual(sample(s, "nodeport_proxy_build_info", version=version), 1)

        # process_* from /proc, as the Go/Python clients export them.
        self.assertAlmostEqual(sample(s, "process_open_fds"), p.fd_count(), delta=10)
        self.assertGreater(sample(s, "process_max_fds"), 0)
        self.assertAlmostEqual(sample(s, "process_resident_memory_bytes") / 1024, p.rss_kib(), delta=p.rss_kib() / 2)
        self.assertGreater(sample(s, "process_virtual_memory_bytes"), sample(s, "process_resident_memory_bytes"))
        self.assertAlmostEqual(sample(s, "process_start_time_seconds"), time.time(), delta=120)
        self.assertLessEqual(sample(s, "process_cpu_seconds_total"), p.cpu_seconds() + 1)

        # Naming and labels: counters end in _total, no client addresses anywhere.
        text = self.metrics(p)
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                self.assertLessEqual(set(smp.labels), ALLOWED_LABELS, smp)
                self.assertTrue(smp.name.startswith(("nodeport_proxy_", "process_")), smp.name)
                if fam.type == "counter":
                    self.assertTrue(smp.name.endswith(("_total", "_created")), smp.name)
        self.assertNotRegex(text, r'"127\.0\.0\.1:\d+"')
        self.assertNotIn(web_be.addr, text)

    def test_reload_metrics(self):
        # The proxy may reload on SIGHUP and on its own file watch, so one write can be counted
        # once or twice: assert the relations, not the exact number of attempts.
        b = self.backend(npp.echo_handler())
        (np,) = npp.free_ports(1)
        p = self.start([npp.svc("web", np, [b.addr])])
        p.endpoints.write("{ not json")
        p.reload_expect_rejected()

        def failed_counted():
            s = samples_of(self.metrics(p))
            return s if sample(s, "nodeport_proxy_config_reloads_total", result="failure") >= 1 else None
        s = npp.wait_until(failed_counted, 5.0, 0.05, "the failed reload to be counted")
        self.assertEqual(sample(s, "nodeport_proxy_config_last_reload_successful"), 0)
        self.assertEqual(sample(s, "nodeport_proxy_config_reloads_total", result="success"), 0)
        self.assertEqual(sample(s, "nodeport_proxy_config_generation"), 1)
        st = self.status_json(p)
        self.assertFalse(st["config"]["last_reload_ok"])
        self.assertTrue(st["config"]["last_reload_error"])

        p.endpoints.write([npp.svc("web", np, [b.addr])])
        p.reload()

        def good_counted():
            s = samples_of(self.metrics(p))
            return s if sample(s, "nodeport_proxy_config_last_reload_successful") == 1 else None
        s = npp.wait_until(good_counted, 5.0, 0.05, "the good reload to be counted")
        self.assertGreaterEqual(sample(s, "nodeport_proxy_config_reloads_total", result="success"), 1)
        self.assertGreaterEqual(sample(s, "nodeport_proxy_config_reloads_total", result="failure"), 1)
        self.assertGreaterEqual(sample(s, "nodeport_proxy_config_generation"), 2)
        # Every applied configuration is timed; a rejected one never reaches the apply.
        self.assertEqual(sample(s, "nodeport_proxy_sync_duration_seconds_count"),
                         sample(s, "nodeport_proxy_config_generation"))
        self.assertTrue(self.status_json(p)["config"]["last_reload_ok"])


def endpoint_obj(addr, **cond):
    d = {"address": addr}
    d.update(cond)
    return d


class StatusPage(ObservabilityCase):

    def services(self):
        b1 = self.backend(npp.echo_handler())
        b2 = self.backend(npp.echo_handler())
        np_web, np_empty = npp.free_ports(2)
        svcs = [npp.svc("web", np_web, [endpoint_obj(b1.addr),
                                        endpoint_obj(b2.addr, ready=False, serving=True, terminating=True)],
                        namespace="shop", port_name="http"),
                npp.svc("empty", np_empty, [], namespace="shop", port_name="grpc")]
        return svcs, np_web, np_empty, b1, b2

    def test_status_json(self):
        svcs, np_web, np_empty, b1, b2 = self.services()
        p = self.start(svcs)
        c = self.client(np_web)
        c.sendall(b"abc")
        self.assertEqual(npp.recv_exact(c, 3), b"abc")
        st = npp.wait_until(lambda: (lambda j: j if j["ports"][0]["counters"]["connections_active"] == 1 else None)(self.status_json(p)),
                            5.0, 0.05, "the open connection to show")
        self.assertTrue(st["ready"])
        self.assertFalse(st["draining"])
        self.assertEqual(st["config"]["generation"], 1)
        self.assertTrue(st["config"]["last_reload_ok"])
        by = {(x["service"], x["port_name"]): x for x in st["ports"]}
        web = by[("shop/web", "http")]
        self.assertEqual(web["node_port"], np_web)
        self.assertEqual(web["protocol"], "TCP")
        self.assertEqual(web["state"], "listening")
        self.assertEqual(web["counters"]["connections_accepted"], 1)
        self.assertEqual(web["counters"]["bytes_client_to_upstream"], 3)
        eps = {e["address"]: e for e in web["endpoints"]}
        self.assertEqual(eps[b1.addr]["state"], "ready")
        self.assertTrue(eps[b1.addr]["in_use"])
        self.assertEqual(eps[b2.addr]["state"], "serving")
        self.assertTrue(eps[b2.addr]["terminating"])
        self.assertFalse(eps[b2.addr]["in_use"])
        empty = by[("shop/empty", "grpc")]
        self.assertEqual(empty["state"], "no_endpoints")
        self.assertEqual(empty["endpoints"], [])
        self.assertEqual(set(web["counters"]) - {"connections_active"}, set(st["counter_help"]) - {"connections_active"})

    def test_status_page_renders_in_chromium(self):
        svcs, np_web, np_empty, b1, b2 = self.services()
        p = self.start(svcs)
        status, headers, page = http_get(p.metrics_port, "/status")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertNotRegex(page.decode(), r'(src|href)="(https?:)?//')  # no external assets
        dom, d = chromium_dom("http://127.0.0.1:%d/status" % p.metrics_port, self.tmp)
        # The script ran: it marks <body> and has refreshed from /status.json at least once.
        self.assertEqual(d.body.get("data-rendered"), "js", dom[:3000])
        self.assertGreaterEqual(int(d.body.get("data-refreshes", "0")), 2, dom[:3000])
        self.assertEqual(d.body.get("data-connection"), "ok")
        cells = d.cells
        self.assertIn("shop/web", cells)
        self.assertIn("shop/empty", cells)
        self.assertIn(str(np_web), " ".join(cells))
        self.assertIn(b1.addr, cells)
        self.assertIn(b2.addr, cells)
        self.assertIn("ready", cells)
        self.assertIn("terminating, still serving", cells)
        self.assertIn("listening", cells)
        self.assertTrue(any(c.startswith("no endpoints") for c in cells), cells)
        self.assertIn("READY", " ".join(d.all_text))

    def test_status_page_shows_banner_when_the_proxy_is_unreachable(self):
        svcs, *_ = self.services()
        p = self.start(svcs)
        _, _, page = http_get(p.metrics_port, "/status")

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.startswith("/status.json"):
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        self.addCleanup(lambda: (srv.shutdown(), srv.server_close()))
        dom, d = chromium_dom("http://127.0.0.1:%d/status" % srv.server_address[1], self.tmp)
        self.assertEqual(d.body.get("data-connection"), "lost", dom[:3000])
        text = " ".join(" ".join(d.all_text).split())
        self.assertIn("Connection to proxy lost: HTTP 503", text)
        self.assertIn("shop/web", d.cells)  # the last data stays on screen


class Check(ObservabilityCase):

    def test_check_against_a_live_proxy(self):
        good = self.backend(npp.echo_handler())
        dead = self.closed_port()
        np_good, np_bad = npp.free_ports(2)
        svcs = [npp.svc("good", np_good, [good.addr]), npp.svc("bad", np_bad, [dead.addr])]
        p = self.start(svcs)
        base = ["check", "--endpoints-file", p.endpoints.path, "--service-node-port-range", npp.TEST_PORT_RANGE,
                "--node", "127.0.0.1", "--timeout", "2s"]
        rc, out, err = run_cli(base)
        self.assertEqual(rc, 1, out + err)
        rows = {}
        for line in out.splitlines():
            m = re.match(r"^(\S+)\s+(nodePort|endpoint)\s+(\S+)\s+(OPEN|RESET|CLOSED|TIMEOUT|UNREACHABLE|ERROR|n/a)\b", line)
            if m:
                rows[(m.group(1), m.group(2), m.group(3))] = m.group(4)
        self.assertEqual(rows[("default/good:p", "nodePort", "127.0.0.1:%d" % np_good)], "OPEN", out)
        self.assertEqual(rows[("default/good:p", "endpoint", good.addr)], "OPEN", out)
        # The proxy listens; it may reset the probe at once when it already knows the endpoint fails.
        self.assertIn(rows[("default/bad:p", "nodePort", "127.0.0.1:%d" % np_bad)], ("OPEN", "RESET"), out)
        self.assertEqual(rows[("default/bad:p", "endpoint", dead.addr)], "CLOSED", out)
        self.assertRegex(out, r"default/bad:p: \[endpoint_port_closed\] endpoint port closed: %s refused" % re.escape(dead.addr))
        self.assertNotRegex(out, r"default/good:p: \[")

        rc, out, err = run_cli(base + ["--output", "json"])
        self.assertEqual(rc, 1, out + err)
        j = json.loads(out)
        self.assertFalse(j["ok"])
        self.assertEqual(j["problems"], 1)
        by = {x["service"]: x for x in j["ports"]}
        self.assertTrue(by["default/good"]["ok"])
        self.assertEqual([d["code"] for d in by["default/bad"]["diagnoses"]], ["endpoint_port_closed"])
        self.assertEqual(by["default/good"]["probes"][0]["result"], "OPEN")
        self.assertIsInstance(by["default/good"]["probes"][0]["latency_ms"], float)

        # The proxy stopped: nothing listens on the nodePorts although endpoints exist.
        p.kill()
        rc, out, err = run_cli(base + ["--output", "json"])
        self.assertEqual(rc, 1)
        codes = {x["service"]: [d["code"] for d in x["diagnoses"]] for x in json.loads(out)["ports"]}
        self.assertEqual(codes["default/good"], ["nothing_listening"])

    def test_check_exits_0_when_everything_is_reachable(self):
        good = self.backend(npp.echo_handler())
        (np_good,) = npp.free_ports(1)
        p = self.start([npp.svc("good", np_good, [good.addr])])
        rc, out, err = run_cli(["check", "--endpoints-file", p.endpoints.path, "--service-node-port-range",
                                npp.TEST_PORT_RANGE, "--timeout", "2s"])
        self.assertEqual(rc, 0, out + err)
        self.assertIn("OK: 2 probe(s), all reachable", out)

    def test_check_timeouts_point_at_a_firewall(self):
        # No proxy needed: the nodePort itself is a blackhole (SYNs dropped), like a firewall
        # that drops packets; so is the endpoint of a second service (another blackhole: the
        # loader rejects an endpoint that is one of the file's own nodePorts).
        hole, pod_hole = self.blackhole(), self.blackhole()
        good = self.backend(npp.echo_handler())
        (np_other,) = npp.free_ports(1)
        ef = self.endpoints_file([npp.svc("filtered", hole.port, [good.addr]),
                                  npp.svc("podnet", np_other, [pod_hole.addr])])
        t0 = time.monotonic()
        rc, out, err = run_cli(["check", "--endpoints-file", ef.path, "--service-node-port-range",
                                npp.TEST_PORT_RANGE, "--timeout", "500ms", "--output", "json"])
        self.assertEqual(rc, 1, out + err)
        self.assertLess(time.monotonic() - t0, 5.0)  # probes run concurrently
        self.assertTrue(out.startswith("{"), out + err)
        by = {x["service"]: x for x in json.loads(out)["ports"]}
        self.assertEqual(by["default/filtered"]["probes"][0]["result"], "TIMEOUT")
        self.assertEqual([d["code"] for d in by["default/filtered"]["diagnoses"]], ["likely_firewall"])
        self.assertIn("endpoint_timeout", [d["code"] for d in by["default/podnet"]["diagnoses"]])


if __name__ == "__main__":
    npp.main()
