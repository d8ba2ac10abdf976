"""Service semantics from Kubernetes objects (issue 3, KUBERNETES.md §2, §3, §6):
sessionAffinity ClientIP (15 consecutive connections to one pod, switching ClientIP <-> None,
records dropped with their endpoint, failed dials re-pick, sliding timeout, UDP), round-robin and
affinity state surviving unrelated changes, externalTrafficPolicy Local (node-local endpoints,
drop without local endpoints, terminating fallback) and healthCheckNodePort 200/503.

Every change is a rewrite of the watched file (atomic rename) followed by a wait for the
`configuration applied` line it caused. Client IPs 127.0.0.x are distinct clients."""

import collections
import json
import socket
import subprocess
import time

import npp
from npp import V4, V6

AFFINITY_CONFIRM_COUNT = 15  # e2e service.go AffinityConfirmCount


def affinity_service(name, node_port, affinity="ClientIP", timeout=None, protocol="TCP", **spec):
    extra = {"sessionAffinity": affinity}
    if affinity == "ClientIP" and timeout is not None:
        extra["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": timeout}}
    extra.update(spec)
    return npp.k8s_service(name, [npp.k8s_port(80, node_port, "http", protocol)], **extra)


class Affinity(npp.K8sTestCase):

    def setUp(self):
        super().setUp()
        self.pods = self.pods_on_one_port([("p%d" % i, "127.0.0.%d" % (i + 1)) for i in range(3)])
        self.node_port = npp.free_port()

    def objs(self, affinity="ClientIP", hosts=None, timeout=None, extra=()):
        hosts = hosts or [p.host for p in self.pods]
        return npp.k8s_list([affinity_service("web", self.node_port, affinity, timeout),
                             npp.k8s_slice("web-x", "web", [("http", self.pods[0].port)], hosts)] + list(extra))

    def confirm_sticky(self, source=None, n=AFFINITY_CONFIRM_COUNT):
        seen = self.tags(self.node_port, n, source=source)
        self.assertEqual(len(set(seen)), 1, "%d consecutive connections from %s were spread: %r"
                         % (n, source or "127.0.0.1", collections.Counter(seen)))
        return seen[0]

    def test_15_consecutive_connections_hit_one_pod_and_switching_client_ip_none(self):
        path = self.file("web.json", self.objs("ClientIP"))
        proxy = self.start([path])
        first = self.confirm_sticky()
        # Another client IP is another record: round robin gives it the next pod.
        other = self.confirm_sticky("127.0.0.50")
        self.assertNotEqual(first, other)
        # e2e "should be able to switch session affinity": ClientIP -> None spreads ...
        self.rewrite(proxy, path, self.objs("None"))
        spread = collections.Counter(self.tags(self.node_port, AFFINITY_CONFIRM_COUNT))
        self.assertEqual(sorted(spread.values()), [5, 5, 5], "None must round-robin: %r" % spread)
        # ... and None -> ClientIP sticks again.
        self.rewrite(proxy, path, self.objs("ClientIP"))
        self.confirm_sticky()
        self.confirm_sticky("127.0.0.51")
        proxy.assert_alive()

    def test_record_dropped_when_its_pod_leaves_and_kept_when_others_change(self):
        path = self.file("web.json", self.objs("ClientIP"))
        proxy = self.start([path])
        pinned = self.confirm_sticky(n=3)
        pinned_host = next(p.host for p in self.pods if p.name == pinned)
        others = [p.host for p in self.pods if p.name != pinned]
        # Another pod leaves: the record stays.
        self.rewrite(proxy, path, self.objs("ClientIP", [pinned_host, others[0]]))
        self.assertEqual(self.confirm_sticky(), pinned)
        # The pinned pod leaves: the next connection goes elsewhere and sticks there.
        self.rewrite(proxy, path, self.objs("ClientIP", others))
        moved = self.confirm_sticky()
        self.assertNotEqual(moved, pinned)
        # The old pod returns: the client stays where it is now.
        self.rewrite(proxy, path, self.objs("ClientIP"))
        self.assertEqual(self.confirm_sticky(n=5), moved)
        proxy.assert_alive()

    def test_state_survives_unrelated_changes(self):
        # The round-robin position and the affinity records of an unchanged port survive a
        # reload that changes only another Service.
        rr_port = npp.free_port()
        hosts = [p.host for p in self.pods]
        rr = [npp.k8s_service("rr", [npp.k8s_port(80, rr_port, "http")]),
              npp.k8s_slice("rr-x", "rr", [("http", self.pods[0].port)], hosts)]
        unrelated_port = npp.free_port()
        path = self.file("web.json", self.objs("ClientIP", extra=rr))
        proxy = self.start([path])
        pinned = self.confirm_sticky(n=3)
        counts = collections.Counter()
        for i in range(9):
            counts[npp.ask_tag(rr_port)] += 1
            unrelated = [npp.k8s_service("other", [npp.k8s_port(80, unrelated_port, "http")]),
                         npp.k8s_slice("other-x", "other", [("http", self.pods[0].port)], hosts[: 1 + i % 3])]
            self.rewrite(proxy, path, self.objs("ClientIP", extra=rr + unrelated))
        self.assertEqual(sorted(counts.values()), [3, 3, 3],
                         "round robin restarted on unrelated reloads: %r" % counts)
        self.assertEqual(self.confirm_sticky(n=5), pinned)
        proxy.assert_alive()

    def test_failed_dial_picks_anew_and_the_new_pod_sticks(self):
        path = self.file("web.json", self.objs("ClientIP"))
        proxy = self.start([path])
        pinned = self.confirm_sticky(n=3)
        pod = next(p for p in self.pods if p.name == pinned)
        pod.close()  # its port now refuses; the config still lists it
        moved = self.confirm_sticky()
        self.assertNotEqual(moved, pinned)
        # The pod comes back on its address: the client stays on the pod that answered.
        back = npp.HostBackend(npp.tag_echo_handler(pinned), host=pod.host, port=pod.port, name=pinned)
        self.addCleanup(back.close)
        self.assertEqual(self.confirm_sticky(n=5), moved)
        proxy.assert_alive()

    def test_timeout_slides_then_expires(self):
        # timeoutSeconds 2: connections every 0.3 s for 3 s keep the record alive (sliding);
        # after 2.6 s of silence the record has expired and round robin picks the next pod.
        path = self.file("web.json", self.objs("ClientIP", hosts=[p.host for p in self.pods[:2]], timeout=2))
        proxy = self.start([path])
        pinned = npp.ask_tag(self.node_port)
        end = time.monotonic() + 3.0
        while time.monotonic() < end:
            time.sleep(0.3)  # the pacing is the behaviour under test
            self.assertEqual(npp.ask_tag(self.node_port), pinned, "record expired although used")
        time.sleep(2.6)
        fresh = npp.ask_tag(self.node_port)
        self.assertNotEqual(fresh, pinned, "record still used after the timeout")
        self.assertEqual(self.tags(self.node_port, 4), [fresh] * 4)
        proxy.assert_alive()

    def test_timeout_seconds_range_is_checked_like_the_api_server(self):
        # (0, 86400]: validation.go validateAffinityTimeout.
        rc_ok = self.validate_objs(self.objs("ClientIP", timeout=86400))
        self.assertEqual(rc_ok[0], 0, rc_ok[1])
        for bad in (0, 86401):
            rc, out = self.validate_objs(self.objs("ClientIP", timeout=bad))
            self.assertEqual(rc, 1, "timeoutSeconds %d accepted:\n%s" % (bad, out))
            self.assertIn("timeoutSeconds", out)

    def validate_objs(self, objs):
        p = subprocess.run([npp.BINARY, "validate", "--service-node-port-range", npp.TEST_PORT_RANGE,
                            self.file("v.json", objs)], capture_output=True, timeout=10)
        return p.returncode, (p.stdout + p.stderr).decode()

    def test_udp_sessions_follow_client_ip_affinity(self):
        pods = []
        for i in range(3):
            u = npp.UdpBackend(npp.tag_echo("u%d" % i), name="u%d" % i)
            self.addCleanup(u.close)
            pods.append(u)
        node_port = npp.free_port_tcp_udp()

        def objs(affinity):
            # Each UDP pod has its own port number: one slice per pod.
            return npp.k8s_list([affinity_service("dns", node_port, affinity, protocol="UDP")] +
                                [npp.k8s_slice("dns-%d" % i, "dns", [("http", u.port, "UDP")], ["127.0.0.1"])
                                 for i, u in enumerate(pods)])
        path = self.file("dns.json", objs("ClientIP"))
        proxy = self.start([path])

        def tags_from(source, n):
            out = []
            for _ in range(n):  # a new source port each time: a new UDP session
                s = npp.udp_socket(bind_host=source)
                try:
                    reply, _ = npp.udp_ask(s, ("127.0.0.1", node_port), b"q")
                finally:
                    s.close()
                self.assertIsNotNone(reply, "no UDP reply")
                out.append(npp.parse_tagged(reply)[0])
            return out
        a = tags_from("127.0.0.1", 6)
        self.assertEqual(len(set(a)), 1, "ClientIP UDP sessions spread: %r" % a)
        b = tags_from("127.0.0.2", 6)
        self.assertEqual(len(set(b)), 1, b)
        self.assertNotEqual(a[0], b[0])
        self.rewrite(proxy, path, objs("None"))
        self.assertEqual(sorted(collections.Counter(tags_from("127.0.0.3", 6)).values()), [2, 2, 2])
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class TrafficPolicyLocal(npp.K8sTestCase):

    def setUp(self):
        super().setUp()
        self.a, self.b = self.pods_on_one_port([("on-node-a", "127.0.0.1"), ("on-node-b", "127.0.0.2")])
        self.node_port = npp.free_port()

    def objs(self, eps, policy="Local"):
        return [npp.k8s_service("web", [npp.k8s_port(80, self.node_port, "http")], externalTrafficPolicy=policy),
                npp.k8s_slice("web-x", "web", [("http", self.a.port)], eps)]

    def both(self, a=None, b=None):
        return [npp.k8s_endpoint("127.0.0.1", node="node-a", **(a or {})),
                npp.k8s_endpoint("127.0.0.2", node="node-b", **(b or {}))]

    def assertDropped(self, tries=3):
        """kube-proxy drops (no RST, no ICMP, no data): connects may complete while the SYN queue
        has room, then time out; never refused, reset or answered."""
        for i in range(tries):
            t0 = time.monotonic()
            outcome = npp.drop_outcome(self.node_port, timeout=1.5)
            self.assertEqual(outcome, "timeout", "try %d: expected the traffic to be dropped, got %s after %.2fs"
                             % (i, outcome, time.monotonic() - t0))

    def test_only_endpoints_on_this_node(self):
        path = self.file("web.yaml", npp.yaml_stream(self.objs(self.both())))
        proxy = self.start([path], ["--hostname-override", "node-b"])
        self.assertEqual(self.tags(self.node_port, 6) + self.tags(self.node_port, 2, V6), ["on-node-b"] * 8)
        # Cluster policy: both nodes' pods.
        self.rewrite(proxy, path, npp.yaml_stream(self.objs(self.both(), "Cluster")))
        self.assertEqual(collections.Counter(self.tags(self.node_port, 6)), {"on-node-a": 3, "on-node-b": 3})
        proxy.kill()
        # The node name from $NODE_NAME when there is no --hostname-override.
        npp.write_atomic(path, npp.yaml_stream(self.objs(self.both())))
        proxy = self.start([path], prefix=["env", "NODE_NAME=node-a"])
        self.assertEqual(self.tags(self.node_port, 4), ["on-node-a"] * 4)
        proxy.kill()
        # Neither: the host name.
        npp.write_atomic(path, npp.yaml_stream(self.objs([
            npp.k8s_endpoint("127.0.0.1", node="node-a"), npp.k8s_endpoint("127.0.0.2", node=socket.gethostname())])))
        proxy = self.start([path], prefix=["env", "-u", "NODE_NAME"])
        self.assertEqual(self.tags(self.node_port, 4), ["on-node-b"] * 4)
        proxy.assert_alive()

    def test_no_local_endpoint_drops_traffic_and_recovers(self):
        path = self.file("web.yaml", npp.yaml_stream(self.objs(self.both())))
        proxy = self.start([path], ["--hostname-override", "node-c"])
        self.assertDropped()
        self.assertEqual(self.a.accepted + self.b.accepted, 0, "a remote pod got traffic")
        # A pod on this node appears: served at once; gone again: dropped again.
        eps = self.both() + [npp.k8s_endpoint("127.0.0.3", node="node-c")]
        c = self.pod("on-node-c", host="127.0.0.3", port=self.a.port)
        self.rewrite(proxy, path, npp.yaml_stream(self.objs(eps)))
        self.assertEqual(self.tags(self.node_port, 3), ["on-node-c"] * 3)
        self.rewrite(proxy, path, npp.yaml_stream(self.objs(self.both())))
        npp.wait_listen_sockets(proxy.pid, self.node_port, 2)  # only the dropping holders
        self.assertDropped(2)
        # Contrast: Cluster policy with no endpoints at all refuses.
        self.rewrite(proxy, path, npp.yaml_stream(self.objs([], "Cluster")))
        self.assertConnectRefused(self.node_port)
        self.assertEqual(c.accepted, 3)
        proxy.assert_alive()

    def test_falls_back_to_local_terminating_endpoints(self):
        # e2e "should fallback to local terminating endpoints when there are no ready endpoints
        # with externalTrafficPolicy=Local": node-a's pod is terminating but serving; node-b's is
        # ready but remote.
        term = dict(ready=False, serving=True, terminating=True)
        path = self.file("web.yaml", npp.yaml_stream(self.objs(self.both(a=term))))
        proxy = self.start([path], ["--hostname-override", "node-a"])
        self.assertEqual(self.tags(self.node_port, 4), ["on-node-a"] * 4)
        # Not serving any more: nothing local is usable, so dropped (not sent to node-b).
        self.rewrite(proxy, path, npp.yaml_stream(self.objs(self.both(a=dict(ready=False, serving=False, terminating=True)))))
        npp.wait_listen_sockets(proxy.pid, self.node_port, 2)  # only the dropping holders
        self.assertDropped(2)
        self.assertEqual(self.b.accepted, 0)
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class HealthCheckNodePort(npp.K8sTestCase):

    def test_200_with_ready_local_endpoints_503_when_only_terminating_or_none(self):
        a, b, c = self.pods_on_one_port([("a", "127.0.0.1"), ("b", "127.0.0.2"), ("c", "127.0.0.3")])
        node_port, health = npp.free_ports(2)
        T = dict(ready=False, serving=True, terminating=True)

        def objs(eps):
            return [npp.k8s_service("lb", [npp.k8s_port(443, node_port, "https")], namespace="shop",
                                    type="LoadBalancer", externalTrafficPolicy="Local",
                                    healthCheckNodePort=health),
                    npp.k8s_slice("lb-x", "lb", [("https", a.port)], eps, namespace="shop")]
        path = self.file("lb.yaml", npp.yaml_stream(objs([
            npp.k8s_endpoint("127.0.0.1", node="node-a"), npp.k8s_endpoint("127.0.0.2", ready=True, node="node-a"),
            npp.k8s_endpoint("127.0.0.3", node="node-b")])))
        proxy = self.start([path], ["--hostname-override", "node-a"])
        inode = npp.listen_inodes(proxy.pid).get(health)
        self.assertTrue(inode, "healthCheckNodePort %d is not listening" % health)

        def check(status, local, family=V4):
            st, headers, body = npp.http_get(health, host=npp.LOOPBACK[family])
            self.assertEqual((st, json.loads(body)),
                             (status, {"service": {"namespace": "shop", "name": "lb"},
                                       "localEndpoints": local, "serviceProxyHealthy": True}))
            self.assertEqual(headers.get("x-load-balancing-endpoint-weight"), str(local), headers)
            self.assertEqual(headers.get("content-type"), "application/json")

        check(200, 2)
        check(200, 2, V6)
        self.assertEqual(collections.Counter(self.tags(node_port, 4)), {"a": 2, "b": 2})
        # e2e "should fail health check node port if there are only terminating endpoints":
        # 503 while the nodePort still serves the terminating local pods.
        self.rewrite(proxy, path, npp.yaml_stream(objs([
            npp.k8s_endpoint("127.0.0.1", node="node-a", **T), npp.k8s_endpoint("127.0.0.2", node="node-a", **T),
            npp.k8s_endpoint("127.0.0.3", node="node-b")])))
        check(503, 0)
        self.assertEqual(collections.Counter(self.tags(node_port, 4)), {"a": 2, "b": 2})
        # One ready local pod again: 200, weight 1.
        self.rewrite(proxy, path, npp.yaml_stream(objs([
            npp.k8s_endpoint("127.0.0.1", node="node-a"), npp.k8s_endpoint("127.0.0.3", node="node-b")])))
        check(200, 1)
        self.assertEqual(self.tags(node_port, 2), ["a"] * 2)
        # No local pod: 503; the nodePort drops.
        self.rewrite(proxy, path, npp.yaml_stream(objs([npp.k8s_endpoint("127.0.0.3", node="node-b")])))
        check(503, 0)
        npp.wait_listen_sockets(proxy.pid, node_port, 2)  # only the dropping holders
        self.assertEqual(npp.drop_outcome(node_port, timeout=1.0), "timeout")
        self.assertEqual(c.accepted, 0)
        self.assertEqual(npp.listen_inodes(proxy.pid).get(health), inode,
                         "the health check listener was re-created by endpoint changes")
        proxy.assert_alive()

    def test_curl_sees_the_kube_proxy_healthz_answer(self):
        # The same answer through an independent HTTP client.
        pod = self.pod("a")
        node_port, health = npp.free_ports(2)
        path = self.file("lb.json", npp.k8s_list([
            npp.k8s_service("lb", [npp.k8s_port(443, node_port, "https")], type="LoadBalancer",
                            externalTrafficPolicy="Local", healthCheckNodePort=health),
            npp.k8s_slice("lb-x", "lb", [("https", pod.port)], [npp.k8s_endpoint("127.0.0.1", node="n1")])]))
        self.start([path], ["--hostname-override", "n1"])
        p = subprocess.run(["curl", "-sS", "-i", "--max-time", "3", "http://127.0.0.1:%d/healthz" % health],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"^HTTP/1\.1 200")
        self.assertRegex(p.stdout, r"(?im)^X-Load-Balancing-Endpoint-Weight: 1\r?$")
        self.assertIn('"localEndpoints":1', p.stdout)


if __name__ == "__main__":
    npp.main()
