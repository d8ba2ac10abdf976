"""Live Kubernetes API mode (issue 6): the proxy lists and watches Services and EndpointSlices
from a scripted API server (fake_apiserver.py: HTTPS with a test CA made by openssl, chunked
responses in the API's exact wire format) and forwards real traffic to real backends after
every step: initial list, ADDED/MODIFIED/DELETED, bookmarks (the next watch resumes from the
bookmark's resourceVersion), 410 Gone as an HTTP status and as an in-stream ERROR event (both
re-list), a dropped connection, a slow stream, a malformed event, 401 and token rotation, a wrong
CA, an unreachable server, /readyz before and after the first sync, and `check --kubeconfig`."""

import os
import re
import subprocess
import tempfile
import time
import unittest

import npp
from fake_apiserver import FakeAPIServer, endpoint_slice, make_cert, make_pki, node, service

PKI_DIR = tempfile.mkdtemp(prefix="npp-kube-pki-")
PKI = None


def setUpModule():
    global PKI
    PKI = make_pki(PKI_DIR)


def tearDownModule():
    import shutil
    shutil.rmtree(PKI_DIR, ignore_errors=True)


class KubeAPITestCase(npp.K8sTestCase):

    def setUp(self):
        super().setUp()
        self.api = FakeAPIServer(PKI)
        self.addCleanup(self.api.close)
        self.kc = self.api.kubeconfig(os.path.join(self.tmp, "kubeconfig"))

    def start_api(self, extra=(), ready=True, kubeconfig=None, **kw):
        p = self.proxy(["--kubeconfig", kubeconfig or self.kc, "--min-sync-period", "50ms"] + list(extra),
                       start=False, **kw)
        p.start(ready=ready)
        return p

    def web(self, node_port, name="web", port=80, **kw):
        return service(name, [("http", port, node_port)], **kw)

    def applied_after(self, proxy, start, timeout=5.0):
        return npp.wait_applied(proxy, start, timeout)[0]


class ListAndWatch(KubeAPITestCase):

    def test_list_then_events_bookmark_resume_and_readyz(self):
        a, b, c = self.pods_on_one_port([("a", "127.0.0.1"), ("b", "127.0.0.2"), ("c", "127.0.0.3")])
        np1, np2, hz = npp.free_port(), npp.free_port(), npp.free_port()
        self.api.put("services", self.web(np1))
        self.api.put("services", service("internal", [("http", 80, None)], type_="ClusterIP"))
        self.api.put("endpointslices", endpoint_slice("web-1", "web", [("http", a.port)], ["127.0.0.1"]))
        self.api.hold_lists.clear()  # lists wait: the proxy must not be ready before its first sync
        proxy = self.start_api(["--healthz-bind-address", "127.0.0.1:%d" % hz], ready=False)
        self.api.wait_request("services", "list")
        npp.wait_until(lambda: self._readyz(hz) is not None, 5, what="/readyz answering")
        self.assertEqual(self._readyz(hz), 503, "/readyz must be 503 before the first full sync")
        self.api.hold_lists.set()
        proxy.wait_generation(1)
        self.assertEqual(self._readyz(hz), 200)
        proxy.wait_for_log(r"API: initial sync: 2 Services, 1 EndpointSlices")
        self.assertEqual(set(self.tags(np1, 3)), {"a"})
        # Requests carry the token; the watch starts from the list's resourceVersion with bookmarks.
        _, watch = self.api.wait_request("endpointslices", "watch")
        self.assertEqual(watch["auth"], "Bearer test-token")
        self.assertEqual(watch["query"]["allowWatchBookmarks"], "true")
        self.assertEqual(watch["query"]["resourceVersion"], "103")
        self.api.wait_request("services", "watch")
        npp.wait_until(lambda: self.api.live_watches("services") and self.api.live_watches("endpointslices"), 5,
                       what="both watches live")

        # ADDED endpoint slice: a second pod.
        start = proxy.mark()
        self.api.event("endpointslices", "ADDED", endpoint_slice("web-2", "web", [("http", a.port)], ["127.0.0.2"]))
        self.applied_after(proxy, start)
        self.assertEqual(set(self.tags(np1, 4)), {"a", "b"})
        # MODIFIED slice: pod a replaced by c.
        start = proxy.mark()
        self.api.event("endpointslices", "MODIFIED", endpoint_slice("web-1", "web", [("http", a.port)], ["127.0.0.3"]))
        self.applied_after(proxy, start)
        self.assertEqual(set(self.tags(np1, 4)), {"b", "c"})
        # MODIFIED Service: a new nodePort; the old one closes.
        start = proxy.mark()
        self.api.event("services", "MODIFIED", self.web(np2))
        self.applied_after(proxy, start)
        self.assertEqual(set(self.tags(np2, 4)), {"b", "c"})
        npp.wait_not_listening(np1)

        # BOOKMARK, then the server ends the stream (timeoutSeconds): the next watch resumes from
        # the bookmark's resourceVersion, not the last event's.
        rv = self.api.bookmark("services")
        proxy.wait_for_log(r"bookmark in the watch of Services: resourceVersion %d" % rv)
        mark = self.api.mark()
        self.api.end("services")
        _, resumed = self.api.wait_request("services", "watch", mark)
        self.assertEqual(resumed["query"]["resourceVersion"], str(rv))
        self.assertEqual(self.api.mark() - mark, 1, "a clean end must resume the watch, not re-list")

        # DELETED Service: its port stops listening.
        npp.wait_until(lambda: self.api.live_watches("services"), 5, what="services watch live again")
        start = proxy.mark()
        self.api.event("services", "DELETED", self.web(np2))
        self.applied_after(proxy, start)
        npp.wait_not_listening(np2)
        proxy.assert_alive()

    def _readyz(self, port):
        try:
            return npp.http_get(port, "/readyz", timeout=1.0)[0]
        except OSError:
            return None

    def test_coalescing_applies_a_burst_as_few_snapshots(self):
        pods = self.pods_on_one_port([("p%d" % i, "127.0.0.%d" % (i + 1)) for i in range(5)])
        np1 = npp.free_port()
        self.api.put("services", self.web(np1))
        proxy = self.proxy(["--kubeconfig", self.kc, "--min-sync-period", "1s"], start=False)
        proxy.start()
        npp.wait_until(lambda: self.api.live_watches("endpointslices"), 5, what="slices watch")
        start = proxy.mark()
        for i, p in enumerate(pods):
            self.api.event("endpointslices", "ADDED",
                           endpoint_slice("web-%d" % i, "web", [("http", p.port)], [p.host]))

        def all_five():
            try:
                return set(self.tags(np1, 10)) == {p.name for p in pods}
            except OSError:
                return False  # refused until the first endpoint is applied
        npp.wait_until(all_five, 5, 0.05, "all five pods")
        applied = [l for l in proxy.lines[start:] if "configuration applied" in l]
        self.assertLessEqual(len(applied), 2, "5 events within the min sync period must coalesce:\n%s" % proxy.tail(20))


class Expiry(KubeAPITestCase):

    def _setup(self, mode):
        self.api.expire_mode = mode
        self.a, self.b = self.pods_on_one_port([("a", "127.0.0.1"), ("b", "127.0.0.2")])
        self.np1 = npp.free_port()
        self.api.put("services", self.web(self.np1))
        self.api.put("endpointslices", endpoint_slice("web-1", "web", [("http", self.a.port)], ["127.0.0.1"]))
        proxy = self.start_api()
        npp.wait_until(lambda: self.api.live_watches("endpointslices"), 5, what="slices watch")
        self.assertEqual(set(self.tags(self.np1, 2)), {"a"})
        # While the proxy is not watching, the slice changes and history is compacted away.
        self.api.put("endpointslices", endpoint_slice("web-1", "web", [("http", self.a.port)], ["127.0.0.2"]))
        self.api.compact("endpointslices")
        return proxy

    def test_410_as_http_status_relists(self):
        proxy = self._setup("status")
        mark, start = self.api.mark(), proxy.mark()
        self.api.end("endpointslices")  # the resumed watch asks for a compacted resourceVersion
        self.api.wait_request("endpointslices", "watch", mark)
        self.api.wait_request("endpointslices", "list", mark)
        proxy.wait_for_log(r"the watch of EndpointSlices expired \(HTTP 410 Gone", 5, start)
        self.applied_after(proxy, start)
        self.assertEqual(set(self.tags(self.np1, 3)), {"b"})

    def test_410_as_in_stream_error_event_relists(self):
        proxy = self._setup("event")
        mark, start = self.api.mark(), proxy.mark()
        self.api.expire_error_event("endpointslices")
        self.api.wait_request("endpointslices", "list", mark)
        proxy.wait_for_log(r"the watch of EndpointSlices expired \(too old resource version", 5, start)
        self.applied_after(proxy, start)
        self.assertEqual(set(self.tags(self.np1, 3)), {"b"})
        # And the ERROR event on a resumed watch (the server's other path) re-lists as well.
        self.api.put("endpointslices", endpoint_slice("web-1", "web", [("http", self.a.port)], ["127.0.0.1"]))
        self.api.compact("endpointslices")
        npp.wait_until(lambda: self.api.live_watches("endpointslices"), 5, what="slices watch")
        mark, start = self.api.mark(), proxy.mark()
        self.api.end("endpointslices")
        self.api.wait_request("endpointslices", "list", mark)
        self.applied_after(proxy, start)
        self.assertEqual(set(self.tags(self.np1, 3)), {"a"})


class Faults(KubeAPITestCase):

    def _web_proxy(self, **kw):
        self.a, self.b = self.pods_on_one_port([("a", "127.0.0.1"), ("b", "127.0.0.2")])
        self.np1 = npp.free_port()
        self.api.put("services", self.web(self.np1))
        self.api.put("endpointslices", endpoint_slice("web-1", "web", [("http", self.a.port)], ["127.0.0.1"]))
        proxy = self.start_api(**kw)
        npp.wait_until(lambda: self.api.live_watches("endpointslices"), 5, what="slices watch")
        return proxy

    def test_dropped_connection_mid_event_resumes_and_replays(self):
        proxy = self._web_proxy()
        ev = endpoint_slice("web-1", "web", [("http", self.a.port)], ["127.0.0.2"])
        # Half an event, then the connection drops: the half is discarded, not applied.
        self.api.send_raw("endpointslices", b'{"type":"MODIFIED","object":{"kind":"EndpointSl')
        mark, start = self.api.mark(), proxy.mark()
        self.api.drop("endpointslices")
        proxy.wait_for_log(r"watch of EndpointSlices was interrupted", 5, start)
        self.assertEqual(set(self.tags(self.np1, 2)), {"a"}, "keeps the last good state while disconnected")
        # The event happens while the proxy is away; the resumed watch replays it.
        self.api.event("endpointslices", "MODIFIED", ev)
        _, resumed = self.api.wait_request("endpointslices", "watch", mark)
        self.assertEqual(resumed["query"]["resourceVersion"], "102", "resume from the last event seen")
        self.applied_after(proxy, start)
        self.assertEqual(set(self.tags(self.np1, 3)), {"b"})

    def test_slow_stream_event_arrives_byte_by_byte(self):
        proxy = self._web_proxy()
        start = proxy.mark()
        obj = endpoint_slice("web-1", "web", [("http", self.a.port)], ["127.0.0.1", "127.0.0.2"])
        obj["metadata"]["resourceVersion"] = "500"
        import json
        line = json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n"
        self.api.send_raw("endpointslices", line, pieces=60, delay=0.01)
        self.applied_after(proxy, start, timeout=10)
        self.assertEqual(set(self.tags(self.np1, 4)), {"a", "b"})

    def test_large_event_in_many_chunks(self):
        proxy = self._web_proxy()
        start = proxy.mark()
        # 2,000 endpoints (not-ready ones are not used while ready ones exist): ~300 KB on one line.
        addrs = ["127.0.0.2"] + [("10.%d.%d.%d" % (1, i // 256, i % 256), False) for i in range(1999)]
        obj = endpoint_slice("web-1", "web", [("http", self.a.port)], addrs)
        import json
        line = json.dumps({"type": "MODIFIED", "object": obj}).encode() + b"\n"
        self.assertGreater(len(line), 200000)
        self.api.send_raw("endpointslices", line, pieces=97)
        self.applied_after(proxy, start, timeout=10)
        self.assertEqual(set(self.tags(self.np1, 3)), {"b"})

    def test_malformed_event_reconnects_and_keeps_state(self):
        proxy = self._web_proxy()
        mark, start = self.api.mark(), proxy.mark()
        self.api.send_raw("endpointslices", b'{"type":"MODIFIED","object":{"kind":"EndpointSlice"\n')
        proxy.wait_for_log(r"malformed event in the watch of EndpointSlices", 5, start)
        self.api.wait_request("endpointslices", "watch", mark)
        self.assertEqual(set(self.tags(self.np1, 2)), {"a"})
        npp.wait_until(lambda: self.api.live_watches("endpointslices"), 5, what="slices watch again")
        start = proxy.mark()
        self.api.event("endpointslices", "MODIFIED", endpoint_slice("web-1", "web", [("http", self.a.port)], ["127.0.0.2"]))
        self.applied_after(proxy, start)
        self.assertEqual(set(self.tags(self.np1, 2)), {"b"})
        proxy.assert_alive()

    def test_invalid_object_is_left_out_others_still_apply(self):
        proxy = self._web_proxy()
        np2 = npp.free_port()
        start = proxy.mark()
        self.api.event("services", "ADDED", service("typo", [("http", 80, np2)],
                                                     annotations={"nodeport-proxy.io/allow-source-range": "10.0.0.0/8"}))
        proxy.wait_for_log(r"Service default/typo: metadata.annotations\[nodeport-proxy.io/allow-source-range\]: "
                           r"unknown annotation.*left out until it is fixed", 5, start)
        self.applied_after(proxy, start)
        self.assertFalse(npp.listening_anywhere(np2))
        self.assertEqual(set(self.tags(self.np1, 2)), {"a"})

    def test_401_then_token_rotation_via_token_file(self):
        token_file = os.path.join(self.tmp, "token")
        with open(token_file, "w") as f:
            f.write("old-token\n")
        kc = self.api.kubeconfig(os.path.join(self.tmp, "kc-file"), token_file=token_file)
        self.api.token = "new-token"
        self.a, = self.pods_on_one_port([("a", "127.0.0.1")])
        np1 = npp.free_port()
        self.api.put("services", self.web(np1))
        self.api.put("endpointslices", endpoint_slice("web-1", "web", [("http", self.a.port)], ["127.0.0.1"]))
        proxy = self.start_api(kubeconfig=kc, ready=False)
        proxy.wait_for_log(r"API: listing (Services|EndpointSlices) at https://127.0.0.1:\d+ failed: HTTP 401: "
                           r"Unauthorized.*the token is invalid or expired")
        self.assertEqual(proxy.generation, 0)
        self.assertIsNone(proxy.find(r"configuration applied"))
        # The projected token rotates: after a 401 the file is read again.
        npp.write_atomic(token_file, "new-token\n")
        proxy.wait_generation(1, timeout=10)
        self.assertEqual(set(self.tags(np1, 2)), {"a"})

    def test_client_certificate_authenticates_without_a_token(self):
        crt, key = make_cert(os.path.join(self.tmp), "nodeport-proxy", PKI["ca"], sans=None, client=True)
        kc = self.api.kubeconfig(os.path.join(self.tmp, "kc-cert"), token=False,
                                 extra_user=["    client-certificate: %s" % crt, "    client-key: %s" % key])
        a, = self.pods_on_one_port([("a", "127.0.0.1")])
        np1 = npp.free_port()
        self.api.put("services", self.web(np1))
        self.api.put("endpointslices", endpoint_slice("web-1", "web", [("http", a.port)], ["127.0.0.1"]))
        self.start_api(kubeconfig=kc)
        _, req = self.api.wait_request("services", "list")
        self.assertIsNone(req["auth"])
        self.assertEqual(req["client_cn"], "nodeport-proxy")
        self.assertEqual(set(self.tags(np1, 2)), {"a"})

    def test_403_and_500_are_explained_and_retried(self):
        self.api.fail_next("services", "list", 403, {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
            "message": 'services is forbidden: User "system:serviceaccount:kube-system:nodeport-proxy" cannot list '
                       'resource "services" in API group "" at the cluster scope'})
        self.api.fail_next("endpointslices", "list", 500)
        np1 = npp.free_port()
        self.api.put("services", self.web(np1))
        proxy = self.start_api(ready=False)
        proxy.wait_for_log(r"listing Services .* failed: HTTP 403: services is forbidden.*grant get/list/watch")
        proxy.wait_for_log(r"listing EndpointSlices .* failed: HTTP 500")
        proxy.wait_generation(1, timeout=10)

    def test_wrong_ca_and_unreachable_server_keep_retrying(self):
        kc = self.api.kubeconfig(os.path.join(self.tmp, "kc-wrong-ca"), ca=PKI["other_ca"][0])
        proxy = self.start_api(kubeconfig=kc, ready=False)
        proxy.wait_for_log(r"listing (Services|EndpointSlices) at https://127.0.0.1:\d+ failed: TLS handshake: "
                           r"certificate verify failed.*not signed by the configured CA")
        proxy.wait_for_log(r"API: listing (Services|EndpointSlices) again in \d+ ms")
        proxy.assert_alive()
        self.assertIsNone(proxy.find(r"configuration applied"))

        closed = self.closed_port()
        kc2 = os.path.join(self.tmp, "kc-closed")
        with open(self.kc) as f:
            text = f.read()
        with open(kc2, "w") as f:
            f.write(text.replace(self.api.url, "https://127.0.0.1:%d" % closed.port))
        proxy2 = self.start_api(kubeconfig=kc2, ready=False)
        proxy2.wait_for_log(r"failed: connecting: Connection refused \(is the API server address right")
        proxy2.assert_alive()


class Check(KubeAPITestCase):

    def test_check_lists_the_api_and_probes_node_addresses(self):
        a, = self.pods_on_one_port([("a", "127.0.0.1")])
        np1 = npp.free_port()
        self.api.put("services", self.web(np1))
        self.api.put("endpointslices", endpoint_slice("web-1", "web", [("http", a.port)], ["127.0.0.1"]))
        self.api.put("nodes", node("node-1", "127.0.0.1"))
        self.start_api()
        out = subprocess.run([npp.BINARY, "check", "--kubeconfig", self.kc, "--output", "json"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("127.0.0.1", out.stdout)
        self.assertIn(str(np1), out.stdout)
        nodes = [r for r in self.api.requests if r["kind"] == "nodes"]
        self.assertTrue(nodes, "check must list Nodes for their addresses")
        bad = subprocess.run([npp.BINARY, "check", "--kubeconfig", self.api.kubeconfig(
            os.path.join(self.tmp, "kc-bad"), token="wrong")], capture_output=True, text=True, timeout=30)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("HTTP 401", bad.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
