"""Live reload (issue 3; ACCEPTANCE rows 12-16): endpoint churn under load without losing a byte,
removed endpoints' connections draining, reloads under a connection storm without a refused
connect or a re-created listener, bad files keeping the running configuration, listeners added
and removed, nodePorts released on delete, the file watch (atomic rename, in-place edit,
ConfigMap `..data` symlink swap, files in two directories) and its latency.

Inputs are Kubernetes objects (a Service and an EndpointSlice in a List) in a directory the proxy
watches; pods are loopback backends answering b"TAG|" + echo, on one port number and different
127.0.0.x addresses."""

import collections
import hashlib
import os
import socket
import statistics
import sys
import threading
import time

import npp
from npp import V4, V6

MiB = npp.MiB


def web(node_port, pod_port, hosts, name="web", port_name="http", extra=()):
    """A List: NodePort Service `name` on node_port and one slice with the pods at hosts."""
    return npp.k8s_list([npp.k8s_service(name, [npp.k8s_port(80, node_port, port_name)]),
                         npp.k8s_slice(name + "-x", name, [(port_name, pod_port)], list(hosts))] + list(extra))


def objects(*services):
    """A List of several (name, node_port, pod_port, hosts) Services with their slices."""
    items = []
    for name, node_port, pod_port, hosts in services:
        items += web(node_port, pod_port, hosts, name)["items"]
    return npp.k8s_list(items)


class Stream:
    """A long connection through the proxy moving `total` random bytes each way: a sender thread
    paced over `duration` seconds, a receiver thread checking the echo's sha256."""

    def __init__(self, port, total, duration, chunk=64 * npp.KiB):
        self.port = port
        self.total = total
        self.errors = []
        self.tag = None
        self.sent = hashlib.sha256()
        self.received = hashlib.sha256()
        self.got = 0
        self.sock = npp.connect(port, timeout=10)
        self.chunk = chunk
        self.interval = duration / max(1, total // chunk)
        self.done = threading.Event()
        self.tx = threading.Thread(target=self._send, daemon=True)
        self.rx = threading.Thread(target=self._recv, daemon=True)
        self.rx.start()
        self.tx.start()

    def _send(self):
        try:
            rnd = os.urandom(self.chunk)
            left = self.total
            i = 0
            t0 = time.monotonic()
            while left > 0:
                # Vary the bytes cheaply per chunk so a misplaced chunk changes the digest.
                data = (i.to_bytes(8, "big") + rnd[8:])[:min(self.chunk, left)]
                self.sock.sendall(data)
                self.sent.update(data)
                left -= len(data)
                i += 1
                pause = t0 + i * self.interval - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing keeps the streams open across the churn
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors.append("send: %r" % e)

    def _recv(self):
        try:
            self.sock.settimeout(30)
            head = b""
            while b"|" not in head:
                d = self.sock.recv(64)
                if not d:
                    raise AssertionError("EOF before the pod's greeting")
                head += d
            tag, _, rest = head.partition(b"|")
            self.tag = tag.decode()
            self.received.update(rest)
            self.got += len(rest)
            while True:
                d = self.sock.recv(1 << 18)
                if not d:
                    break
                self.received.update(d)
                self.got += len(d)
        except (OSError, AssertionError) as e:
            self.errors.append("recv after %d bytes: %r" % (self.got, e))
        finally:
            self.done.set()

    def finish(self, timeout):
        """Waits for the echo to end; returns a list of problems (empty if every byte came back)."""
        if not self.done.wait(timeout):
            self.errors.append("no EOF within %.0fs (%d of %d bytes back)" % (timeout, self.got, self.total))
        self.tx.join(1)
        self.sock.close()
        if not self.errors and (self.got != self.total or self.received.digest() != self.sent.digest()):
            self.errors.append("echo of %d bytes came back as %d bytes, sha256 %s" % (
                self.total, self.got, "equal" if self.received.digest() == self.sent.digest() else "different"))
        return self.errors


class Connector:
    """Threads opening short connections to ports at about `rate` per second in total; each sends
    a payload, half-closes and expects b"TAG|" + payload. Records (t_start, port, tag or outcome)."""

    def __init__(self, ports, rate, threads=4):
        self.ports = list(ports)
        self.interval = threads / float(rate)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records = []  # (t_start, port, tag) for successes
        self.failures = []  # (t_start, port, outcome)
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, k):
        i = 0
        t0 = time.monotonic() + k * self.interval / len(self.threads)
        while not self.stop.is_set():
            port = self.ports[(i + k) % len(self.ports)]
            start = time.monotonic()
            payload = b"%d-%d-" % (k, i) + os.urandom(24).hex().encode()
            try:
                reply = npp.ask(port, payload, timeout=5)
                tag, sep, rest = reply.partition(b"|")
                if not sep or rest != payload:
                    raise AssertionError("wrong reply %r" % reply[:60])
                with self.lock:
                    self.records.append((start, port, tag.decode()))
            except ConnectionRefusedError:
                self._fail(start, port, "refused")
            except ConnectionResetError:
                self._fail(start, port, "reset")
            except (OSError, AssertionError) as e:
                self._fail(start, port, repr(e))
            i += 1
            pause = t0 + i * self.interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing: the connection rate is the load under test

    def _fail(self, start, port, outcome):
        with self.lock:
            self.failures.append((start, port, outcome))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(10)


# --------------------------------------------------------------------------------------------


class Churn(npp.K8sTestCase):

    def test_endpoint_churn_every_half_second_under_load_loses_no_byte(self):
        # Row 12, scaled to a CI machine: 20 streams moving 8 MiB each way (paced over ~6 s)
        # plus ~50 new connections per second, while every 0.5 s one pod leaves and another
        # joins (atomic rename of the watched file), 12 times.
        pods = self.pods_on_one_port([("pod%d" % i, "127.0.0.%d" % (21 + i)) for i in range(6)])
        hosts = [p.host for p in pods]
        node_port = npp.free_port()
        window = lambda k: [hosts[(k + j) % 6] for j in range(3)]  # noqa: E731 - three pods at a time
        path = self.file("web.json", web(node_port, pods[0].port, window(0)))
        proxy = self.start([path])
        streams = [Stream(node_port, 8 * MiB, 6.0) for _ in range(20)]
        self.addCleanup(lambda: [s.sock.close() for s in streams])
        conns = Connector([node_port], rate=50, threads=2)
        self.addCleanup(conns.finish)
        cycles = [(0.0, set(window(0)))]  # (time the applied line was seen, pods in use)
        for k in range(1, 13):
            t_cycle = time.monotonic()
            start = proxy.mark()
            npp.write_atomic(path, npp.dumps(web(node_port, pods[0].port, window(k))))
            npp.wait_applied(proxy, start, 3)
            cycles.append((time.monotonic(), set(window(k))))
            pause = t_cycle + 0.5 - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # the churn period is the behaviour under test
        t_end = time.monotonic()
        conns.finish()
        problems = []
        for i, s in enumerate(streams):
            problems += ["stream %d (pod %s): %s" % (i, s.tag, e) for e in s.finish(20)]
        self.assertEqual(problems, [], "established streams broke during churn")
        self.assertEqual(conns.failures, [], "new connections failed during churn")
        self.assertGreaterEqual(len(conns.records), 200, "the connector fell far behind its rate")
        # Removed pods get no new connection once the reload removing them was applied; a
        # connection started in cycle k was accepted under cycle k's or k+1's set.
        host_of = {p.name: p.host for p in pods}
        wrong = []
        added_hits = collections.Counter()
        for t, _, tag in conns.records:
            k = max(i for i, (t_seen, _) in enumerate(cycles) if t_seen <= t)
            allowed = cycles[k][1] | (cycles[k + 1][1] if k + 1 < len(cycles) else set())
            if host_of[tag] not in allowed:
                wrong.append((round(t - cycles[k][0], 3), k, tag))
            if k > 0 and host_of[tag] in cycles[k][1] - cycles[k - 1][1]:
                added_hits[k] += 1
        self.assertEqual(wrong, [], "connections reached pods removed before they started "
                         "(seconds after the applied line, cycle, pod)")
        # Added pods get traffic in the very cycle they were added.
        self.assertEqual([k for k in range(1, 13) if added_hits[k] == 0], [],
                         "cycles whose added pod got no new connection: %r" % added_hits)
        on_pods = collections.Counter(s.tag for s in streams)
        sys.stderr.write("\n  churn: %d streams on %r, %d new connections in %.1fs, added pods' hits per cycle %r\n"
                         % (len(streams), dict(on_pods), len(conns.records), t_end - cycles[1][0] + 0.5,
                            [added_hits[k] for k in range(1, 13)]))
        proxy.assert_alive()

    def test_removed_endpoints_open_connections_continue(self):
        # Row 13: a pod removed from the slice (or all pods: the port refuses) keeps its
        # established connections, which carry data both ways until they close normally.
        x, y = self.pods_on_one_port([("x", "127.0.0.31"), ("y", "127.0.0.32")])
        node_port = npp.free_port()
        path = self.file("web.json", web(node_port, x.port, [x.host]))
        proxy = self.start([path])
        held = []
        for _ in range(3):
            s = self.client(node_port)
            self.assertEqual(npp.recv_exact(s, 2), b"x|")
            held.append(s)

        def exchange_all(rounds, sent):
            for _ in range(rounds):
                for i, s in enumerate(held):
                    data = os.urandom(1000 + i)
                    s.sendall(data)
                    self.assertEqual(npp.recv_exact(s, len(data)), data)
                    sent[i] += len(data)
                time.sleep(0.1)  # spreads the exchanges over time (the drain is the subject)
        sent = [0, 0, 0]
        exchange_all(2, sent)
        self.rewrite(proxy, path, web(node_port, x.port, [y.host]))
        self.assertEqual(self.tags(node_port, 3), ["y"] * 3)
        exchange_all(8, sent)
        # No endpoint at all: new connections are refused, the old ones still work.
        self.rewrite(proxy, path, web(node_port, x.port, []))
        npp.wait_not_listening(node_port)
        self.assertConnectRefused(node_port)
        exchange_all(5, sent)
        for s in held:
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(npp.recv_all(s, 5), b"")
        recs = x.wait_results(3)
        self.assertEqual(sorted((r["end"], r["bytes"]) for r in recs), sorted(("eof", n) for n in sent))
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class ReloadUnderLoad(npp.K8sTestCase):

    def test_50_reloads_at_300_connections_per_second(self):
        # Row 14: 50 reloads (SIGHUP and file rewrites alternating, endpoint sets changing)
        # while ~300 connections per second arrive on two nodePorts: none refused or reset, and
        # the listeners are the very same sockets afterwards.
        pods = self.pods_on_one_port([("p%d" % i, "127.0.0.%d" % (41 + i)) for i in range(3)])
        hosts = [p.host for p in pods]
        n_web, n_api = npp.free_ports(2)
        sets = [hosts[:2], hosts[1:], [hosts[0], hosts[2]], hosts]

        def config(i):
            return objects(("web", n_web, pods[0].port, sets[i % 4]), ("api", n_api, pods[0].port, sets[(i + 1) % 4]))
        path = self.file("objs.json", config(0))
        proxy = self.start([path])
        before = npp.listen_inodes(proxy.pid)
        self.assertEqual(set(before), {n_web, n_api})
        conns = Connector([n_web, n_api], rate=300, threads=6)
        self.addCleanup(conns.finish)
        t0 = time.monotonic()
        applied = 0
        for i in range(1, 51):
            start = proxy.mark()
            if i % 2:
                npp.write_atomic(path, npp.dumps(config(i)))
            else:
                proxy.sighup()
            npp.wait_applied(proxy, start, 3)
            applied += 1
            time.sleep(0.08)  # spacing between reloads
        elapsed = time.monotonic() - t0
        time.sleep(0.2)
        conns.finish()
        after = npp.listen_inodes(proxy.pid)
        n = len(conns.records) + len(conns.failures)
        sys.stderr.write("\n  %d reloads in %.1fs, %d connections (%.0f/s), %d failed\n"
                         % (applied, elapsed, n, n / elapsed, len(conns.failures)))
        self.assertEqual(collections.Counter(o for _, _, o in conns.failures), {},
                         "connections failed during reloads: %r" % conns.failures[:10])
        self.assertGreaterEqual(n / elapsed, 150, "the connector did not reach half its rate")
        self.assertEqual(after, before, "listening sockets were re-created by reloads")
        self.assertEqual(set(t for _, _, t in conns.records), {"p0", "p1", "p2"})
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class BadConfig(npp.K8sTestCase):

    def test_garbage_then_invalid_input_keeps_the_running_configuration(self):
        # Row 15 (the metric is test_observability.py's): each bad input is rejected with its
        # problem logged, and the old configuration keeps serving from the same listener.
        a, b = self.pods_on_one_port([("a", "127.0.0.51"), ("b", "127.0.0.52")])
        node_port, other = npp.free_ports(2)
        path = self.file("web.json", web(node_port, a.port, [a.host]))
        proxy = self.start([path])
        inodes = npp.listen_inodes(proxy.pid)
        gen = proxy.generation
        collision = objects(("web", node_port, a.port, [b.host]), ("clash", node_port, a.port, [b.host]))
        bad_inputs = [
            ("garbage", "{", r"invalid JSON|parse error"),
            ("collision", npp.dumps(collision), r"items\[2\] \(Service default/clash\).*provided port is already allocated"),
            ("out of range", npp.dumps(web(80, a.port, [b.host])), r"not in the valid range"),
            ("bad yaml", "apiVersion: v1\nkind: Service\nmetadata: [\n", r"invalid YAML"),
            ("wrong type", npp.dumps(web(node_port, a.port, [b.host], extra=[])).replace('"port": 80', '"port": "80"'),
             r'spec\.ports\[0\]\.port: Invalid value: "80"'),
        ]
        for what, text, problem in bad_inputs:
            for how in ("rename", "sighup"):
                start = proxy.mark()
                if how == "rename":
                    npp.write_atomic(path, text)
                else:
                    proxy.sighup()
                i = npp.wait_rejected(proxy, start)
                proxy.wait_for_log(problem, 2, i)
                self.assertEqual(self.tags(node_port, 2), ["a"] * 2, "after %s (%s)" % (what, how))
        self.assertEqual(npp.listen_inodes(proxy.pid), inodes)
        self.assertFalse(npp.listening_anywhere(other))
        # The file disappears (rm before re-create): also rejected, still serving.
        start = proxy.mark()
        os.unlink(path)
        npp.wait_rejected(proxy, start)
        start = proxy.mark()
        proxy.sighup()
        npp.wait_rejected(proxy, start)
        self.assertEqual(self.tags(node_port, 1), ["a"])
        # A good file applies as the next generation.
        self.rewrite(proxy, path, web(node_port, a.port, [b.host]))
        self.assertEqual(proxy.generation, gen + 1, "rejected inputs must not count as generations")
        self.assertEqual(self.tags(node_port, 2), ["b"] * 2)
        proxy.assert_alive()

    def test_a_write_in_two_parts_is_read_once_complete(self):
        # An editor or `cat > file` writes in several syscalls: the file watch waits for the
        # close instead of reading (and rejecting) the first half.
        a, b = self.pods_on_one_port([("a", "127.0.0.53"), ("b", "127.0.0.54")])
        node_port = npp.free_port()
        path = self.file("web.json", web(node_port, a.port, [a.host]))
        proxy = self.start([path])
        text = npp.dumps(web(node_port, a.port, [b.host]))
        start = proxy.mark()
        with open(path, "w") as f:
            f.write(text[: len(text) // 2])
            f.flush()
            time.sleep(0.05)  # a slow writer: the pause is the behaviour under test
            f.write(text[len(text) // 2:])
        npp.wait_applied(proxy, start, 3)
        self.assertIsNone(proxy.find(r"configuration rejected", start), "the half-written file was read")
        self.assertEqual(self.tags(node_port, 2), ["b"] * 2)
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class Listeners(npp.K8sTestCase):

    def test_reload_adds_port_b_removes_port_a_and_a_drains(self):
        # Row 16: B accepts, A stops listening at once (no LISTEN left) and refuses, A's
        # established connection keeps echoing; the unchanged port C keeps its socket.
        pod = self.pod("pod", host="127.0.0.61")
        p_a, p_b, p_c = npp.free_ports(3)
        path = self.file("objs.json", objects(("a", p_a, pod.port, [pod.host]), ("c", p_c, pod.port, [pod.host])))
        proxy = self.start([path])
        before = npp.listen_inodes(proxy.pid)
        self.assertEqual(set(before), {p_a, p_c})
        old = self.client(p_a)
        self.assertEqual(npp.recv_exact(old, 4), b"pod|")
        old.sendall(b"before")
        self.assertEqual(npp.recv_exact(old, 6), b"before")
        self.rewrite(proxy, path, objects(("b", p_b, pod.port, [pod.host]), ("c", p_c, pod.port, [pod.host])))
        npp.wait_not_listening(p_a)
        after = npp.listen_inodes(proxy.pid)
        self.assertEqual(set(after), {p_b, p_c})
        self.assertEqual(after[p_c], before[p_c], "the unchanged port's listener was re-created")
        self.assertConnectRefused(p_a)
        self.assertConnectRefused(p_a, V6)
        self.assertEqual(self.tags(p_b, 2) + self.tags(p_b, 1, V6) + self.tags(p_c, 1), ["pod"] * 4)
        for i in range(5):
            data = b"still here %d" % i
            old.sendall(data)
            self.assertEqual(npp.recv_exact(old, len(data)), data)
            time.sleep(0.1)  # the connection outlives the reload by a while
        old.shutdown(socket.SHUT_WR)
        self.assertEqual(npp.recv_all(old, 5), b"")
        proxy.assert_alive()

    def test_nodeport_released_on_delete_and_recreated(self):
        # e2e "should release NodePorts on delete": after the reload that removes the Service,
        # nothing listens and another process can take the port (both families); the Service
        # comes back on the same nodePort.
        pod = self.pod("pod", host="127.0.0.62")
        p_a, p_keep = npp.free_ports(2)
        keep = ("keep", p_keep, pod.port, [pod.host])
        path = self.file("objs.json", objects(("a", p_a, pod.port, [pod.host]), keep))
        proxy = self.start([path])
        self.assertEqual(self.tags(p_a, 1), ["pod"])
        self.rewrite(proxy, path, objects(keep))
        npp.wait_not_listening(p_a)
        for family in (V4, V6):
            s = socket.socket(family, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of earlier clients
                if family == V6:
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind((npp.LOOPBACK[family], p_a))
                s.listen(1)
            except OSError as e:
                self.fail("nodePort %d not released on %s: %r" % (p_a, npp.LOOPBACK[family], e))
            finally:
                s.close()
        self.rewrite(proxy, path, objects(("a", p_a, pod.port, [pod.host]), keep))
        self.assertEqual(self.tags(p_a, 2) + self.tags(p_a, 1, V6), ["pod"] * 3)
        proxy.assert_alive()

    def test_type_change_to_cluster_ip_releases_the_nodeport(self):
        # kube-apiserver releases nodePorts when a Service becomes ClusterIP; the proxy stops
        # serving the port, and serves it again when the Service is a NodePort again.
        pod = self.pod("pod", host="127.0.0.63")
        node_port = npp.free_port()
        slc = npp.k8s_slice("web-x", "web", [("http", pod.port)], [pod.host])
        nodeport = npp.k8s_list([npp.k8s_service("web", [npp.k8s_port(80, node_port, "http")]), slc])
        clusterip = npp.k8s_list([npp.k8s_service("web", [npp.k8s_port(80, None, "http")], type="ClusterIP",
                                                  clusterIP="10.96.0.20"), slc])
        path = self.file("objs.json", nodeport)
        proxy = self.start([path])
        self.assertEqual(self.tags(node_port, 1), ["pod"])
        start = proxy.mark()
        self.rewrite(proxy, path, clusterip)
        proxy.wait_for_log(r"default/web: skipped: .*ClusterIP", 2, start)
        npp.wait_not_listening(node_port)
        self.assertConnectRefused(node_port)
        s = socket.socket(V4, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", node_port))  # released, not held
        finally:
            s.close()
        self.rewrite(proxy, path, nodeport)
        self.assertEqual(self.tags(node_port, 2), ["pod"] * 2)
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class FileWatch(npp.K8sTestCase):

    def test_configmap_data_symlink_swap_reloads(self):
        # A ConfigMap volume: the proxy reads cm/endpoints.json -> ..data/endpoints.json; the
        # kubelet's update swaps the ..data symlink (the file itself is never written).
        pods = self.pods_on_one_port([("cm%d" % i, "127.0.0.%d" % (71 + i)) for i in range(3)])
        node_port = npp.free_port()
        cm = npp.ConfigMapDir(os.path.join(self.cfg, "cm"), "endpoints.json",
                              npp.dumps(web(node_port, pods[0].port, [pods[0].host])))
        proxy = self.start([cm.path])
        self.assertEqual(self.tags(node_port, 2), ["cm0"] * 2)
        latencies = []
        for i in (1, 2, 0, 1):
            start = proxy.mark()
            t0 = time.monotonic()
            cm.update(npp.dumps(web(node_port, pods[0].port, [pods[i].host])))
            npp.wait_applied(proxy, start, 3)
            latencies.append(time.monotonic() - t0)
            self.assertEqual(self.tags(node_port, 2), ["cm%d" % i] * 2)
        sys.stderr.write("\n  ConfigMap swap -> applied: %s ms\n" % ", ".join("%.1f" % (1000 * l) for l in latencies))
        self.assertLess(max(latencies), 0.5)
        proxy.assert_alive()

    def test_in_place_edit_sighup_and_files_in_two_directories(self):
        # The manifest and the backends file live in different directories: both are watched.
        a, b = self.pods_on_one_port([("a", "127.0.0.81"), ("b", "127.0.0.82")])
        node_port = npp.free_port()
        manifest = self.file("svc.yaml", npp.to_yaml(npp.k8s_service("web", [npp.k8s_port(80, node_port, "http")])))
        other_dir = os.path.join(self.tmp, "backends")
        os.mkdir(other_dir)
        backends = os.path.join(other_dir, "backends.json")

        def native(host):
            return npp.dumps({"backends": [{"service": "web", "ports": [
                {"name": "http", "endpoints": ["%s:%d" % (host, a.port)]}]}]})
        npp.write_text(backends, native(a.host))
        proxy = self.start([manifest, backends])
        self.assertEqual(self.tags(node_port, 1), ["a"])
        # In-place edit (open, write, close) of the second directory's file.
        start = proxy.mark()
        npp.write_text(backends, native(b.host))
        npp.wait_applied(proxy, start, 3)
        self.assertEqual(self.tags(node_port, 2), ["b"] * 2)
        # SIGHUP re-reads even without a change (a new generation with the same ports).
        gen = proxy.generation
        inodes = npp.listen_inodes(proxy.pid)
        start = proxy.mark()
        proxy.sighup()
        proxy.wait_for_log(r"SIGHUP", 3, start)
        npp.wait_applied(proxy, start, 3)
        self.assertEqual(proxy.generation, gen + 1)
        self.assertEqual(npp.listen_inodes(proxy.pid), inodes)
        # The manifest changes its nodePort: the port moves.
        new_port = npp.free_port()
        self.rewrite(proxy, manifest, npp.to_yaml(npp.k8s_service("web", [npp.k8s_port(80, new_port, "http")])))
        self.assertEqual(self.tags(new_port, 2), ["b"] * 2)
        npp.wait_not_listening(node_port)
        self.assertConnectRefused(node_port)
        proxy.assert_alive()

    def test_a_change_right_after_startup_is_not_missed(self):
        # A file replaced just after the proxy logged generation=1 must still be read: the
        # watch has to cover every change after the initial load (else the proxy serves a stale
        # file until some later change or SIGHUP). 60 fresh starts, each rewritten at once.
        pod = self.pod("a", host="127.0.0.95")
        node_port = npp.free_port()
        missed = []
        for i in range(60):
            path = self.file("web%d.json" % i, web(node_port, pod.port, [pod.host]))
            proxy = npp.Proxy(["--endpoints-file", path], self.tmp, name="start%d" % i)
            try:
                proxy.start()
                start = proxy.mark()
                npp.write_atomic(path, npp.dumps(web(node_port, pod.port, ["127.0.0.96"])))
                try:
                    npp.wait_applied(proxy, start, 1.0)
                except AssertionError:
                    missed.append("start %d:\n%s" % (i, proxy.tail(8)))
            finally:
                proxy.close()
        self.assertEqual(len(missed), 0, "%d of 60 rewrites right after start-up never caused a reload "
                         "(waited 1 s each):\n%s" % (len(missed), "\n".join(missed)))

    def test_reload_latency_from_rename_to_applied(self):
        pods = self.pods_on_one_port([("l%d" % i, "127.0.0.%d" % (91 + i)) for i in range(2)])
        node_port = npp.free_port()
        path = self.file("web.json", web(node_port, pods[0].port, [pods[0].host]))
        proxy = self.start([path])
        latencies = []
        for i in range(10):
            text = npp.dumps(web(node_port, pods[0].port, [pods[(i + 1) % 2].host]))
            tmp = path + ".new"
            with open(tmp, "w") as f:
                f.write(text)
            start = proxy.mark()
            t0 = time.monotonic()
            os.rename(tmp, path)
            npp.wait_applied(proxy, start, 3)
            latencies.append(time.monotonic() - t0)
            self.assertEqual(npp.ask_tag(node_port), "l%d" % ((i + 1) % 2))
        sys.stderr.write("\n  rename -> 'configuration applied' seen: min %.1f ms, median %.1f ms, max %.1f ms\n"
                         % (1000 * min(latencies), 1000 * statistics.median(latencies), 1000 * max(latencies)))
        self.assertLess(max(latencies), 0.5, "reload latency %r" % latencies)
        proxy.assert_alive()


if __name__ == "__main__":
    npp.main()
