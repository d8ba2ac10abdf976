"""Kubernetes objects as input (issue 3): the guide's NodePort manifest paired with local
backends, real `kubectl get svc,endpointslices -A -o json` output (tests/config/fixtures/cluster.json)
rewritten to loopback pods, YAML streams, skipped Service kinds, multiport Services with named
targetPorts across EndpointSlices, terminating-endpoint fallback, publishNotReadyAddresses, one
port number with TCP and UDP, and `validate` on these inputs (KUBERNETES.md §2, §3, §6).

Pods are loopback backends that answer b"TAG|" + echo, TAG naming the endpoint they stand for;
several pods share one port number on different 127.0.0.x addresses, as pods do. Client IPs
127.0.0.x are distinct clients for sessionAffinity: ClientIP."""

import collections
import copy
import json
import os
import socket
import subprocess

import npp
from npp import V4, V6

FIXTURES = os.path.join(npp.SOURCE_DIR, "tests", "config", "fixtures")
EXAMPLES = os.path.join(npp.SOURCE_DIR, "examples", "kubernetes")


def run_cli(args, timeout=10):
    """Runs the binary to completion (bounded); returns (rc, stdout + stderr)."""
    npp.require_binary()
    p = subprocess.run([npp.BINARY] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def read(path):
    with open(path) as f:
        return f.read()


def claim_fixed_port(port):
    """Claims a fixed nodePort (like free_port() does for random ones) if it is free on both
    loopbacks; returns a reason string if not."""
    if not npp._bindable(port):
        return "port %d is in use on this machine" % port
    if not npp._claim(port):
        return "port %d is claimed by another acceptance test running in parallel" % port
    return None


# --------------------------------------------------------------------------------------------


class GuideManifest(npp.K8sTestCase):
    """examples/kubernetes/guide-service.yaml is the issue's guide manifest, byte for byte."""

    def test_guide_manifest_as_written_with_native_backends_on_30080(self):
        manifest = os.path.join(EXAMPLES, "guide-service.yaml")
        self.assertIn("nodePort: 30080 # static node port on each node", read(manifest))
        reason = claim_fixed_port(30080)
        if reason:
            self.skipTest("the guide's fixed nodePort: " + reason)
        a, b = self.pod("guide-a"), self.pod("guide-b")
        backends = self.file("backends.json", {"backends": [
            {"namespace": "default", "service": "my-nodeport-service",
             "ports": [{"port": 80, "endpoints": [a.addr, b.addr]}]}]})
        proxy = self.start([manifest, backends], port_range="30000-32767")
        got = collections.Counter(self.tags(30080, 10) + self.tags(30080, 4, V6))
        self.assertEqual(got, {"guide-a": 7, "guide-b": 7}, "round robin over the two backends")
        self.assertEqual(set(npp.listen_inodes(proxy.pid)), {30080})
        proxy.assert_alive()

    def test_guide_manifest_with_its_example_endpointslice(self):
        # A copy of the manifest on a free nodePort (comments kept) and the example slice with
        # the pod's port: the unnamed Service port matches the slice's unnamed port.
        node_port = npp.free_port()
        pod = self.pod("slice-pod")
        manifest = read(os.path.join(EXAMPLES, "guide-service.yaml")).replace("30080", str(node_port))
        slice_yaml = read(os.path.join(EXAMPLES, "guide-endpointslice.yaml"))
        self.assertIn("  - port: 8080\n", slice_yaml)
        slice_yaml = slice_yaml.replace("  - port: 8080\n", "  - port: %d\n" % pod.port)
        proxy = self.start([self.file("svc.yaml", manifest), self.file("slice.yaml", slice_yaml)])
        self.assertEqual(self.tags(node_port, 3) + self.tags(node_port, 2, V6), ["slice-pod"] * 5)
        proxy.assert_alive()

    def test_manifest_alone_binds_the_port_and_refuses(self):
        # No endpoints anywhere: the nodePort is held but refuses (kube-proxy REJECT).
        node_port = npp.free_port()
        manifest = read(os.path.join(EXAMPLES, "guide-service.yaml")).replace("30080", str(node_port))
        proxy = self.start([self.file("svc.yaml", manifest)])
        self.assertConnectRefused(node_port)
        s = socket.socket(V4, socket.SOCK_STREAM)
        try:
            with self.assertRaises(OSError):
                s.bind(("127.0.0.1", node_port))
        finally:
            s.close()
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class KubectlList(npp.K8sTestCase):
    """cluster.json is `kubectl get svc,endpointslices -A -o json` output: ClusterIP Services
    (kubernetes, kube-dns), shop/web (NodePort, ClientIP affinity, named targetPorts http and
    metrics resolved differently by two slices, a duplicate not-ready copy of a ready endpoint in
    a third slice, an IPv6 slice) and shop/checkout (LoadBalancer, externalTrafficPolicy Local,
    healthCheckNodePort, one ready and one terminating endpoint on different nodes). Pod
    addresses become 127.0.0.x (IPv6: ::1), port numbers and nodePorts free ones."""

    PROXIED = ("web", "checkout")

    def adapt(self):
        fixture = json.loads(read(os.path.join(FIXTURES, "cluster.json")))
        obj = copy.deepcopy(fixture)
        services = {it["metadata"]["name"]: it for it in obj["items"] if it["kind"] == "Service"}
        slices = [it for it in obj["items"] if it["kind"] == "EndpointSlice"
                  and it["metadata"]["labels"]["kubernetes.io/service-name"] in self.PROXIED]
        # Addresses: each distinct IPv4 pod address gets its own 127.0.0.x; the IPv6 one ::1.
        ip_map = {}
        for sl in slices:
            for ep in sl["endpoints"]:
                ip = ep["addresses"][0]
                if ip not in ip_map:
                    if sl["addressType"] == "IPv6":
                        self.assertNotIn("::1", ip_map.values(), "fixture has two IPv6 pods")
                        ip_map[ip] = "::1"
                    else:
                        ip_map[ip] = "127.0.0.%d" % (11 + len([v for v in ip_map.values() if v != "::1"]))
        # Port numbers: each original number gets one free number, bindable on every pod address
        # that uses it; a pod per (address, port) answering with TAG = "origIP:origPort".
        users = collections.OrderedDict()
        for sl in slices:
            for p in sl["ports"]:
                for ep in sl["endpoints"]:
                    users.setdefault(p["port"], [])
                    if ep["addresses"][0] not in users[p["port"]]:
                        users[p["port"]].append(ep["addresses"][0])
        port_map = {}
        for orig, ips in users.items():
            pods = self.pods_on_one_port([(tag_of(ip, orig), ip_map[ip]) for ip in ips])
            port_map[orig] = pods[0].port
        for sl in slices:
            for p in sl["ports"]:
                p["port"] = port_map[p["port"]]
            for ep in sl["endpoints"]:
                ep["addresses"] = [ip_map[ep["addresses"][0]]]
        # nodePorts (and the healthCheckNodePort) of the proxied Services: free ones.
        node_ports = {}
        for name in self.PROXIED:
            spec = services[name]["spec"]
            for p in spec["ports"]:
                node_ports[(name, p["name"])] = p["nodePort"] = npp.free_port()
            if "healthCheckNodePort" in spec:
                node_ports[(name, "health")] = spec["healthCheckNodePort"] = npp.free_port()
        return obj, node_ports

    def check_web(self, node_ports):
        """shop/web: 12 client IPs x 3 connections per port. Each client sticks to one pod
        (ClientIP); new clients go round robin over the 4 usable pods of that port, whose
        numbers come from the slice that carries each pod (named targetPorts)."""
        expect = {
            "http": {"10.244.1.17:8080", "10.244.2.9:8080", "10.244.3.4:8081", "[fd00:10:244:1::17]:8080"},
            "metrics": {"10.244.1.17:9100", "10.244.2.9:9100", "10.244.3.4:9101", "[fd00:10:244:1::17]:9100"},
        }
        for port_name, pods in expect.items():
            node_port = node_ports[("web", port_name)]
            per_pod = collections.Counter()
            for i in range(12):
                seen = self.tags(node_port, 3, source="127.0.0.%d" % (101 + i))
                self.assertEqual(len(set(seen)), 1, "client 127.0.0.%d moved between pods on %s: %r"
                                 % (101 + i, port_name, seen))
                per_pod[seen[0]] += 1
            self.assertEqual(set(per_pod), pods, "pods reached through web/%s" % port_name)
            self.assertEqual(sorted(per_pod.values()), [3, 3, 3, 3],
                             "12 new clients over 4 pods of web/%s: %r" % (port_name, per_pod))

    def test_kubectl_list_serves_nodeports_and_skips_clusterip_services(self):
        obj, node_ports = self.adapt()
        proxy = self.start([self.file("cluster.json", obj)], ["--hostname-override", "node-1"])
        # Only the nodePorts (and the health check port) listen: kubernetes and kube-dns are
        # ClusterIP Services, skipped with a debug line saying why.
        self.assertEqual(set(npp.listen_inodes(proxy.pid)), set(node_ports.values()))
        proxy.wait_for_log(r"default/kubernetes: skipped: .*ClusterIP", 2)
        proxy.wait_for_log(r"kube-system/kube-dns: skipped: .*ClusterIP", 2)
        self.check_web(node_ports)
        # shop/checkout (Local, this node is node-1): only the node-1 pod, never node-2's.
        https = [npp.ask_tag(node_ports[("checkout", "https")], source="127.0.0.%d" % (120 + i))
                 for i in range(6)]
        self.assertEqual(https, ["10.244.1.30:8443"] * 6)
        status, headers, body = npp.http_get(node_ports[("checkout", "health")])
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"service": {"namespace": "shop", "name": "checkout"},
                                            "localEndpoints": 1, "serviceProxyHealthy": True})
        proxy.assert_alive()

    def test_same_objects_as_yaml_stream_and_as_service_and_slice_lists(self):
        obj, node_ports = self.adapt()
        items = obj["items"]
        # (1) a multi-document YAML stream, as `kubectl get -o yaml` prints objects.
        yaml_path = self.file("cluster.yaml", npp.yaml_stream(
            items, "kubectl get svc,endpointslices -A -o yaml (adapted to loopback)"))
        proxy = self.start([yaml_path], ["--hostname-override", "node-1"])
        self.assertEqual(set(npp.listen_inodes(proxy.pid)), set(node_ports.values()))
        self.check_web(node_ports)
        proxy.kill()
        # (2) a ServiceList and an EndpointSliceList in two files, merged.
        svcs = self.file("services.json", npp.k8s_list([i for i in items if i["kind"] == "Service"], "ServiceList"))
        eps = self.file("slices.yaml", npp.to_yaml(npp.k8s_list(
            [i for i in items if i["kind"] == "EndpointSlice"], "EndpointSliceList")))
        proxy = self.start([svcs, eps], ["--hostname-override", "node-1"])
        self.assertEqual(set(npp.listen_inodes(proxy.pid)), set(node_ports.values()))
        self.check_web(node_ports)
        proxy.assert_alive()


def tag_of(ip, port):
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


# --------------------------------------------------------------------------------------------


class SkippedServices(npp.K8sTestCase):

    def test_skipped_kinds_are_not_bound_and_the_proxy_name_label_toggles_serving(self):
        # tests/config/fixtures/skipped.yaml with gateway's nodePort made free, and a slice for
        # gateway so that it *could* be served: only the label keeps it off.
        pod = self.pod("gateway-pod")
        gw_port = npp.free_port()
        text = read(os.path.join(FIXTURES, "skipped.yaml"))
        self.assertIn("nodePort: 30090", text)
        text = text.replace("nodePort: 30090", "nodePort: %d" % gw_port)
        gw_slice = npp.k8s_slice("gateway-abc", "gateway", [("", pod.port)], ["127.0.0.1"], namespace="shop")
        path = self.file("skipped.yaml", text + "---\n" + npp.to_yaml(gw_slice))
        proxy = self.start([path])
        for name, why in (("db", "headless"), ("gateway", "service-proxy-name"), ("search", "ExternalName"),
                          ("edge", "no nodePort"), ("admin", "ClusterIP")):
            proxy.wait_for_log(r"shop/%s: skipped: .*%s" % (name, why), 2)
        self.assertEqual(npp.listen_inodes(proxy.pid), {})
        self.assertFalse(npp.listening_anywhere(gw_port))
        self.assertConnectRefused(gw_port)
        # Label removed: served. Label back: released again (e2e service-proxy-name toggle).
        start = proxy.mark()
        unlabelled = text.replace("  labels:\n    service.kubernetes.io/service-proxy-name: other-proxy\n", "")
        self.assertNotEqual(unlabelled, text)
        npp.write_atomic(path, unlabelled + "---\n" + npp.to_yaml(gw_slice))
        npp.wait_applied(proxy, start)
        self.assertEqual(self.tags(gw_port, 3), ["gateway-pod"] * 3)
        start = proxy.mark()
        npp.write_atomic(path, text + "---\n" + npp.to_yaml(gw_slice))
        npp.wait_applied(proxy, start)
        npp.wait_not_listening(gw_port)
        self.assertConnectRefused(gw_port)
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class EndpointSlices(npp.K8sTestCase):

    def test_multiport_service_with_each_port_in_its_own_slice(self):
        # e2e "should support a Service with multiple ports specified in multiple EndpointSlices":
        # a selector-less Service; slice 1 carries port http only, slice 2 port grpc only.
        http_pod = self.pod("http-pod")
        grpc_pod = self.pod("grpc-pod", host="127.0.0.2")
        n_http, n_grpc = npp.free_ports(2)
        svc = npp.k8s_service("multi", [npp.k8s_port(80, n_http, "http", target_port="http"),
                                        npp.k8s_port(81, n_grpc, "grpc", target_port="grpc")])
        s1 = npp.k8s_slice("multi-1", "multi", [("http", http_pod.port)], ["127.0.0.1"])
        s2 = npp.k8s_slice("multi-2", "multi", [("grpc", grpc_pod.port)], ["127.0.0.2"])
        proxy = self.start([self.file("objs.yaml", npp.yaml_stream([svc, s1, s2]))])
        self.assertEqual(self.tags(n_http, 4), ["http-pod"] * 4)
        self.assertEqual(self.tags(n_grpc, 4), ["grpc-pod"] * 4)
        proxy.assert_alive()

    def test_named_target_port_resolved_per_slice_and_endpoints_merged_across_slices(self):
        # One port name, two slices with different numbers for it (named targetPort), and an
        # endpoint listed in both slices: it is one endpoint (round robin 1:1:1, not 1:2:1).
        a, b = self.pods_on_one_port([("a", "127.0.0.1"), ("b", "127.0.0.2")])
        c = self.pod("c", host="127.0.0.3")
        node_port = npp.free_port()
        svc = npp.k8s_service("web", [npp.k8s_port(80, node_port, "http", target_port="http")])
        s1 = npp.k8s_slice("web-1", "web", [("http", a.port)], ["127.0.0.1", "127.0.0.2"])
        s2 = npp.k8s_slice("web-2", "web", [("http", a.port)], ["127.0.0.2"])
        s3 = npp.k8s_slice("web-3", "web", [("http", c.port)], ["127.0.0.3"])
        proxy = self.start([self.file("objs.json", npp.k8s_list([svc, s1, s2, s3]))])
        self.assertEqual(collections.Counter(self.tags(node_port, 12)), {"a": 4, "b": 4, "c": 4})
        proxy.assert_alive()

    def test_fqdn_slices_and_addresses_of_the_other_family_are_ignored(self):
        # kube-proxy uses IPv4 and IPv6 slices only, and only addresses of the slice's family.
        good = self.pod("ipv4-pod", host="127.0.0.6")
        lookalike = self.pods_on_one_port([("fqdn-used", "127.0.0.1"), ("wrong-family-used", "::1")])
        node_port = npp.free_port()
        svc = npp.k8s_service("web", [npp.k8s_port(80, node_port, "http")])
        fqdn = npp.k8s_slice("web-fqdn", "web", [("http", lookalike[0].port)], ["localhost"], address_type="FQDN")
        mixed = npp.k8s_slice("web-v4", "web", [("http", good.port)], ["127.0.0.6"])
        wrong = npp.k8s_slice("web-v4b", "web", [("http", lookalike[0].port)], ["::1"])
        proxy = self.start([self.file("objs.yaml", npp.yaml_stream([svc, fqdn, mixed, wrong]))])
        self.assertEqual(self.tags(node_port, 4), ["ipv4-pod"] * 4)
        self.assertEqual(lookalike[0].accepted + lookalike[1].accepted, 0)
        proxy.assert_alive()

    def test_slice_order_unlabelled_and_orphan_slices(self):
        # A slice may come before its Service; a slice without the kubernetes.io/service-name
        # label and one of a missing Service are ignored (kube-proxy skips them too).
        a, b, c = self.pods_on_one_port([("labelled", "127.0.0.1"), ("unlabelled", "127.0.0.2"), ("orphan", "127.0.0.3")])
        node_port = npp.free_port()
        svc = npp.k8s_service("web", [npp.k8s_port(80, node_port, "http")])
        good = npp.k8s_slice("web-x", "web", [("http", a.port)], ["127.0.0.1"])
        unlabelled = npp.k8s_slice("web-y", "web", [("http", a.port)], ["127.0.0.2"])
        del unlabelled["metadata"]["labels"]["kubernetes.io/service-name"]
        orphan = npp.k8s_slice("gone-x", "gone", [("http", a.port)], ["127.0.0.3"])
        proxy = self.start([self.file("objs.yaml", npp.yaml_stream([good, unlabelled, orphan, svc]))])
        self.assertEqual(self.tags(node_port, 4), ["labelled"] * 4)
        proxy.wait_for_log(r"EndpointSlice default/web-y: ignored: no kubernetes\.io/service-name label", 2)
        proxy.wait_for_log(r"EndpointSlice default/gone-x: ignored", 2)
        self.assertEqual(b.accepted + c.accepted, 0)
        proxy.assert_alive()

    def test_terminating_fallback(self):
        # Ready endpoints first; with none, serving && terminating ones; never not-serving ones.
        # Missing conditions read as ready.
        ready, term1, term2, dead = self.pods_on_one_port(
            [("ready", "127.0.0.1"), ("term1", "127.0.0.2"), ("term2", "127.0.0.3"), ("dead", "127.0.0.4")])
        nil = self.pod("nil", host="127.0.0.5")
        p_mixed, p_fallback, p_dead, p_nil = npp.free_ports(4)
        T = dict(ready=False, serving=True, terminating=True)
        objs = []
        for name, node_port, eps, port in (
                ("mixed", p_mixed, [npp.k8s_endpoint("127.0.0.1", ready=True), npp.k8s_endpoint("127.0.0.2", **T)], ready.port),
                ("fallback", p_fallback, [npp.k8s_endpoint("127.0.0.2", **T), npp.k8s_endpoint("127.0.0.3", **T),
                                          npp.k8s_endpoint("127.0.0.4", ready=False, serving=False, terminating=True)], ready.port),
                ("dead", p_dead, [npp.k8s_endpoint("127.0.0.4", ready=False, serving=False, terminating=True)], ready.port),
                ("nil", p_nil, ["127.0.0.5"], nil.port)):
            objs.append(npp.k8s_service(name, [npp.k8s_port(80, node_port, "http")]))
            objs.append(npp.k8s_slice(name + "-x", name, [("http", port)], eps))
        path = self.file("objs.yaml", npp.yaml_stream(objs))
        proxy = self.start([path])
        self.assertEqual(self.tags(p_mixed, 4), ["ready"] * 4)
        self.assertEqual(collections.Counter(self.tags(p_fallback, 6)), {"term1": 3, "term2": 3})
        self.assertConnectRefused(p_dead)
        self.assertEqual(self.tags(p_nil, 2), ["nil"] * 2)
        # e2e flow: the ready pod starts terminating (still serving): traffic follows it; then it
        # stops serving: refused.
        for conds, expect in ((dict(ready=True), "ready"), (T, "ready"),
                              (dict(ready=False, serving=False, terminating=True), None)):
            objs[1] = npp.k8s_slice("mixed-x", "mixed", [("http", ready.port)], [npp.k8s_endpoint("127.0.0.1", **conds)])
            start = proxy.mark()
            npp.write_atomic(path, npp.yaml_stream(objs))
            npp.wait_applied(proxy, start)
            if expect:
                self.assertEqual(self.tags(p_mixed, 2), [expect] * 2, conds)
            else:
                npp.wait_not_listening(p_mixed)
                self.assertConnectRefused(p_mixed)
        self.assertEqual(dead.accepted, 0, "a not-serving endpoint got connections")
        proxy.assert_alive()

    def test_publish_not_ready_addresses(self):
        pod = self.pod("unready-pod")
        p_true, p_false = npp.free_ports(2)
        unready = [npp.k8s_endpoint("127.0.0.1", ready=False, serving=False, terminating=False)]

        def objs(publish_false_service):
            return [npp.k8s_service("pub", [npp.k8s_port(80, p_true, "http")], publishNotReadyAddresses=True),
                    npp.k8s_slice("pub-x", "pub", [("http", pod.port)], unready),
                    npp.k8s_service("nopub", [npp.k8s_port(80, p_false, "http")],
                                    publishNotReadyAddresses=publish_false_service),
                    npp.k8s_slice("nopub-x", "nopub", [("http", pod.port)], unready)]
        path = self.file("objs.json", npp.k8s_list(objs(False)))
        proxy = self.start([path])
        self.assertEqual(self.tags(p_true, 3), ["unready-pod"] * 3)
        self.assertConnectRefused(p_false)
        start = proxy.mark()
        npp.write_atomic(path, npp.dumps(npp.k8s_list(objs(True))))
        npp.wait_applied(proxy, start)
        self.assertEqual(self.tags(p_false, 3), ["unready-pod"] * 3)
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class TcpAndUdp(npp.K8sTestCase):

    def test_same_port_number_tcp_and_udp_in_one_service(self):
        # e2e "should serve endpoints on same port and different protocols": both work; removing
        # one protocol stops only it.
        tcp_pod = self.pod("dns-tcp")
        udp_pod = npp.UdpBackend(npp.tag_echo("dns-udp"), name="dns-udp")
        self.addCleanup(udp_pod.close)
        node_port = npp.free_port_tcp_udp()
        tcp_port = npp.k8s_port(53, node_port, "dns-tcp", "TCP", 53)
        udp_port = npp.k8s_port(53, node_port, "dns", "UDP", 53)

        def objs(*ports):
            return [npp.k8s_service("dns", list(ports), namespace="kube-system"),
                    npp.k8s_slice("dns-x", "dns", [("dns-tcp", tcp_pod.port, "TCP"), ("dns", udp_pod.port, "UDP")],
                                  ["127.0.0.1"], namespace="kube-system")]
        path = self.file("dns.yaml", npp.yaml_stream(objs(udp_port, tcp_port)))
        proxy = self.start([path])

        def udp_ok(family=V4):
            s = npp.udp_socket(family)
            try:
                reply, _ = npp.udp_ask(s, (npp.LOOPBACK[family], node_port), b"query")
            finally:
                s.close()
            return reply is not None and npp.parse_tagged(reply)[0] == "dns-udp" and reply.endswith(b"|query")

        self.assertEqual(self.tags(node_port, 2) + self.tags(node_port, 1, V6), ["dns-tcp"] * 3)
        self.assertTrue(udp_ok(V4) and udp_ok(V6), "UDP on the shared number did not answer")
        start = proxy.mark()
        npp.write_atomic(path, npp.yaml_stream(objs(tcp_port)))
        npp.wait_applied(proxy, start)
        npp.wait_udp_unbound(node_port)
        self.assertEqual(npp.udp_refused(node_port), "refused", "UDP still served after its port was removed")
        self.assertEqual(self.tags(node_port, 2), ["dns-tcp"] * 2)
        start = proxy.mark()
        npp.write_atomic(path, npp.yaml_stream(objs(udp_port)))
        npp.wait_applied(proxy, start)
        self.assertTrue(udp_ok(), "UDP did not come back")
        npp.wait_not_listening(node_port)
        self.assertConnectRefused(node_port)
        proxy.assert_alive()


# --------------------------------------------------------------------------------------------


class Validate(npp.K8sTestCase):

    def test_validate_accepts_every_input_format(self):
        cases = [
            [os.path.join(EXAMPLES, "guide-service.yaml"), os.path.join(EXAMPLES, "guide-endpoints.json")],
            [os.path.join(EXAMPLES, "guide-service.yaml"), os.path.join(EXAMPLES, "guide-endpointslice.yaml")],
            [os.path.join(EXAMPLES, "local-list.json")],
            [os.path.join(FIXTURES, "cluster.json"), os.path.join(FIXTURES, "skipped.yaml")],
            [os.path.join(FIXTURES, "cluster.yaml")],
        ]
        for files in cases:
            rc, out = run_cli(["validate"] + files)
            self.assertEqual(rc, 0, "%r:\n%s" % (files, out))
            self.assertIn("OK", out)
        rc, out = run_cli(["validate", os.path.join(FIXTURES, "cluster.json")])
        self.assertIn("default/kubernetes: skipped", out)

    def test_problems_name_the_objects(self):
        guide = os.path.join(EXAMPLES, "guide-service.yaml")
        # Another Service on the guide's nodePort, in a second file.
        other = self.file("other.yaml", npp.to_yaml(npp.k8s_service("other", [npp.k8s_port(80, 30080)], namespace="ops")))
        rc, out = run_cli(["validate", guide, other])
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"Service ops/other: spec\.ports\[0\]\.nodePort: Invalid value: 30080: "
                              r"provided port is already allocated")
        # Inside a List: items[i] (Service ns/name); out of range; health check port on NodePort.
        lst = self.file("list.json", npp.k8s_list([
            npp.k8s_service("a", [npp.k8s_port(80, 30100)], namespace="shop"),
            npp.k8s_service("b", [npp.k8s_port(80, 30100, "x"), npp.k8s_port(81, 40000, "y")], namespace="shop"),
            npp.k8s_service("c", [npp.k8s_port(80, 30101)], namespace="shop", healthCheckNodePort=30102),
        ]))
        rc, out = run_cli(["validate", lst])
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"items\[1\] \(Service shop/b\): spec\.ports\[0\]\.nodePort: Invalid value: 30100: "
                              r"provided port is already allocated")
        self.assertRegex(out, r"items\[1\] \(Service shop/b\): spec\.ports\[1\]\.nodePort: Invalid value: 40000: "
                              r"provided port is not in the valid range\. The range of valid ports is 30000-32767")
        self.assertRegex(out, r"items\[2\] \(Service shop/c\): spec\.healthCheckNodePort")
        # A "backends" entry for a Service no input defines.
        orphan = self.file("orphan.json", {"backends": [{"service": "my-nodeport-servise",
                                                         "ports": [{"port": 80, "endpoints": ["127.0.0.1:8080"]}]}]})
        rc, out = run_cli(["validate", guide, orphan])
        self.assertEqual(rc, 1, out)
        self.assertIn("my-nodeport-servise", out)
        # run refuses such inputs with exit 1 and the problem text (on a free port, in case
        # it did not).
        p = npp.free_port()
        guide_copy = self.file("guide.yaml", read(guide).replace("30080", str(p)))
        other = self.file("other.yaml", npp.to_yaml(npp.k8s_service("other", [npp.k8s_port(80, p)], namespace="ops")))
        rc, out = run_cli(["run", "--endpoints-file", guide_copy, "--endpoints-file", other,
                           "--nodeport-addresses", npp.LOOPBACK_CIDRS, "--service-node-port-range", "1024-65535"])
        self.assertEqual(rc, 1, out)
        self.assertIn("provided port is already allocated", out)


if __name__ == "__main__":
    npp.main()
