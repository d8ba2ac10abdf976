"""A scripted Kubernetes API server for the acceptance tests (stdlib only: http.server + ssl).

It speaks the wire format of ../../../shared/KUBERNETES.md §4 over HTTPS with a test CA that
`openssl` generates per test (make_pki()):
  * GET /api/v1/services, /apis/discovery.k8s.io/v1/endpointslices, /api/v1/nodes: a List
    ({"kind": "ServiceList", "metadata": {"resourceVersion": "N"}, "items": [...]}, items without
    kind/apiVersion, as the API server writes them), sent with Transfer-Encoding: chunked.
  * ...?watch=1&resourceVersion=RV: 200 chunked, one event per line
    {"type": "ADDED", "object": {...}}. Events newer than RV are replayed from history first
    (what the watch cache does), then live ones follow. A watch from an RV older than the
    "compacted" mark gets 410 Gone, as an HTTP status or as an in-stream ERROR event
    (expire_mode), with the Status the real server sends.
  * Bearer-token check (401 with a Status body), per-request fault injection (fail_next), raw
    lines, split/slow writes and dropped connections on the live watch (send_raw, drop, end).
Every request is recorded (kind, op, query, Authorization) so tests can assert, e.g., that a
watch resumed from a bookmark's resourceVersion.
"""

import copy
import http.server
import json
import os
import queue
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.parse

PATHS = {
    "/api/v1/services": ("services", "ServiceList", "v1", "Service"),
    "/apis/discovery.k8s.io/v1/endpointslices": ("endpointslices", "EndpointSliceList", "discovery.k8s.io/v1", "EndpointSlice"),
    "/api/v1/nodes": ("nodes", "NodeList", "v1", "Node"),
}
KIND_PATH = {v[0]: k for k, v in PATHS.items()}


def _openssl(args, cwd):
    subprocess.run(["openssl"] + args, cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory, name):
    """A self-signed CA: returns (cert path, key path)."""
    key, crt = os.path.join(directory, name + ".key"), os.path.join(directory, name + ".crt")
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=" + name], directory)
    return crt, key


def make_cert(directory, name, ca, sans="IP:127.0.0.1,DNS:localhost", client=False):
    """A certificate signed by ca=(crt, key): returns (cert path, key path)."""
    key, csr, crt = (os.path.join(directory, name + ext) for ext in (".key", ".csr", ".crt"))
    ext = os.path.join(directory, name + ".ext")
    with open(ext, "w") as f:
        f.write("extendedKeyUsage=%s\n" % ("clientAuth" if client else "serverAuth"))
        if sans:
            f.write("subjectAltName=%s\n" % sans)
    _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-keyout", key, "-out", csr, "-subj", "/CN=" + name], directory)
    _openssl(["x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", crt,
              "-days", "2", "-extfile", ext], directory)
    return crt, key


def make_pki(directory):
    """The test CA, the API server's certificate (127.0.0.1), and an unrelated CA."""
    os.makedirs(directory, exist_ok=True)
    ca = make_ca(directory, "ca")
    server = make_cert(directory, "apiserver", ca)
    other = make_ca(directory, "other-ca")
    return {"ca": ca, "server": server, "other_ca": other}


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class _Watch:
    def __init__(self, kind):
        self.kind = kind
        self.q = queue.Queue()


class FakeAPIServer:
    def __init__(self, pki, token="test-token"):
        self.pki = pki
        self.token = token
        self.lock = threading.Condition()
        self.rv = 100
        self.objects = {k: {} for k in KIND_PATH}
        self.history = []            # (rv, kind, line) of every event
        self.compacted = {k: 0 for k in KIND_PATH}  # watches from an RV below this get 410
        self.expire_mode = "status"  # or "event"
        self.faults = []             # [kind, op, code, body]
        self.requests = []           # dicts: kind, op, query, auth, time
        self.watches = []            # live _Watch objects
        self.hold_lists = threading.Event()
        self.hold_lists.set()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*pki["server"])
        # Client certificates signed by the test CA authenticate without a token (the API
        # server's x509 authenticator); a client without one needs the bearer token.
        ctx.load_verify_locations(pki["ca"][0])
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self.ctx = ctx
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def do_GET(self):
                api._handle(self)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def finish_request(self, request, client_address):
                try:
                    request.settimeout(10)
                    tls = api.ctx.wrap_socket(request, server_side=True)
                    tls.settimeout(None)
                except (ssl.SSLError, OSError):
                    return  # a client that does not trust us (the wrong-CA test)
                try:
                    self.RequestHandlerClass(tls, client_address, self)
                finally:
                    try:
                        tls.close()
                    except OSError:
                        pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        with self.lock:
            for w in self.watches:
                w.q.put(("drop",))
        self.hold_lists.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- kubeconfig
    def kubeconfig(self, path, ca=None, token=None, token_file=None, extra_user=None):
        """Writes a kubeconfig for this server (YAML, as kubectl writes it); returns path."""
        ca = ca or self.pki["ca"][0]
        user = []
        if token_file:
            user.append("    tokenFile: %s" % token_file)
        elif token is not False:
            user.append("    token: %s" % (token or self.token))
        user += extra_user or []
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\ncurrent-context: test\n"
                    "clusters:\n- name: test\n  cluster:\n    server: %s\n    certificate-authority: %s\n"
                    "contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n"
                    "users:\n- name: test\n  user:\n%s\n" % (self.url, ca, "\n".join(user) or "    {}"))
        return path

    # -- state
    def _key(self, obj):
        m = obj["metadata"]
        return "%s/%s" % (m.get("namespace", "default"), m["name"])

    def put(self, kind, obj):
        """Stores obj without an event (before the first list, or a change a compaction hides)."""
        with self.lock:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
            self.objects[kind][self._key(obj)] = obj

    def remove(self, kind, name, namespace="default"):
        with self.lock:
            self.rv += 1
            self.objects[kind].pop("%s/%s" % (namespace, name), None)

    def event(self, kind, type_, obj):
        """ADDED / MODIFIED / DELETED: updates the store, records history, sends to live watches.
        Returns the event's resourceVersion."""
        with self.lock:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
            if type_ == "DELETED":
                self.objects[kind].pop(self._key(obj), None)
            else:
                self.objects[kind][self._key(obj)] = obj
            line = json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"
            self.history.append((self.rv, kind, line))
            for w in self.watches:
                if w.kind == kind:
                    w.q.put(("data", line))
            return self.rv

    def bookmark(self, kind):
        """A BOOKMARK at a new resourceVersion (other objects changed meanwhile); returns it."""
        with self.lock:
            self.rv += 1
            _, _, api_version, obj_kind = PATHS[KIND_PATH[kind]]
            obj = {"kind": obj_kind, "apiVersion": api_version, "metadata": {"resourceVersion": str(self.rv)}}
            self._to_watches(kind, ("data", json.dumps({"type": "BOOKMARK", "object": obj}).encode() + b"\n"))
            return self.rv

    def _to_watches(self, kind, item):
        for w in self.watches:
            if w.kind == kind:
                w.q.put(item)

    def send_raw(self, kind, data, pieces=1, delay=0.0):
        """Writes raw bytes to the live watches of kind, split into `pieces` chunks (with `delay`
        seconds between them)."""
        with self.lock:
            self._to_watches(kind, ("raw", data, pieces, delay))

    def expire_error_event(self, kind):
        """Sends the in-stream ERROR event a compacted watch gets."""
        line = json.dumps({"type": "ERROR", "object": status(
            410, "Expired", "too old resource version: 1 (%d)" % self.rv)}).encode() + b"\n"
        self.send_raw(kind, line)

    def compact(self, kind):
        """Every watch of kind from the current resourceVersion or older now gets 410."""
        with self.lock:
            self.compacted[kind] = self.rv

    def drop(self, kind):
        """Closes the live watches of kind abruptly (no terminating chunk)."""
        with self.lock:
            self._to_watches(kind, ("drop",))

    def end(self, kind):
        """Ends the live watches of kind cleanly (terminating chunk), as at timeoutSeconds."""
        with self.lock:
            self._to_watches(kind, ("end",))

    def fail_next(self, kind, op, code, body=None):
        """The next request of kind ('list'/'watch'/None for any) and op gets HTTP code."""
        with self.lock:
            self.faults.append([kind, op, code, body])

    # -- requests
    def wait_request(self, kind, op, start=0, timeout=10.0):
        """Waits for a request of kind and op with index >= start; returns (index, record)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                for i in range(start, len(self.requests)):
                    r = self.requests[i]
                    if r["kind"] == kind and r["op"] == op:
                        return i, r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no %s %s request after #%d within %.1fs; requests: %r"
                                         % (op, kind, start, timeout, [(x["kind"], x["op"], x["query"]) for x in self.requests[start:]]))
                self.lock.wait(left)

    def mark(self):
        with self.lock:
            return len(self.requests)

    def live_watches(self, kind):
        with self.lock:
            return sum(1 for w in self.watches if w.kind == kind)

    # -- the handler
    def _handle(self, h):
        url = urllib.parse.urlsplit(h.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        info = PATHS.get(url.path)
        op = "watch" if query.get("watch") in ("1", "true") else "list"
        kind = info[0] if info else None
        cert = h.connection.getpeercert() if hasattr(h.connection, "getpeercert") else None
        subject = dict(x[0] for x in cert["subject"]) if cert else {}
        with self.lock:
            self.requests.append({"kind": kind, "op": op, "query": query, "auth": h.headers.get("Authorization"),
                                  "client_cn": subject.get("commonName"), "time": time.monotonic()})
            self.lock.notify_all()
            fault = None
            for f in self.faults:
                if f[0] in (None, kind) and f[1] in (None, op):
                    fault = f
                    break
            if fault:
                self.faults.remove(fault)
        if info is None:
            return self._send_json(h, 404, status(404, "NotFound", "the server could not find the requested resource"))
        if not cert and h.headers.get("Authorization") != "Bearer " + self.token:
            return self._send_json(h, 401, status(401, "Unauthorized", "Unauthorized"))
        if fault:
            code, body = fault[2], fault[3]
            return self._send_json(h, code, body if body is not None else status(code, "Failure", "injected failure"))
        if op == "list":
            self.hold_lists.wait(30)
            with self.lock:
                items = []
                for obj in self.objects[kind].values():
                    o = copy.deepcopy(obj)
                    o.pop("kind", None)
                    o.pop("apiVersion", None)
                    items.append(o)
                body = {"kind": info[1], "apiVersion": info[2], "metadata": {"resourceVersion": str(self.rv)},
                        "items": items}
            data = json.dumps(body, separators=(",", ":")).encode()
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            for i in range(0, len(data), 65536):
                self._chunk(h, data[i:i + 65536])
            self._chunk(h, b"")
            return
        # watch
        try:
            rv = int(query.get("resourceVersion", "0"))
        except ValueError:
            rv = 0
        with self.lock:
            expired = rv < self.compacted[kind]
            if expired and self.expire_mode == "status":
                pass
            else:
                w = _Watch(kind)
                if expired:
                    w.q.put(("data", json.dumps({"type": "ERROR", "object": status(
                        410, "Expired", "too old resource version: %d (%d)" % (rv, self.compacted[kind] - 1))}).encode() + b"\n"))
                    w.q.put(("end",))
                else:
                    for erv, ekind, line in self.history:
                        if ekind == kind and erv > rv:
                            w.q.put(("data", line))
                self.watches.append(w)
        if expired and self.expire_mode == "status":
            return self._send_json(h, 410, status(410, "Expired", "too old resource version: %d (%d)" % (rv, self.compacted[kind] - 1)))
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()
        try:
            while True:
                try:
                    item = w.q.get(timeout=60)
                except queue.Empty:
                    break
                if item[0] == "data":
                    self._chunk(h, item[1])
                elif item[0] == "raw":
                    data, pieces, delay = item[1], item[2], item[3]
                    step = max(1, -(-len(data) // pieces))
                    for i in range(0, len(data), step):
                        self._chunk(h, data[i:i + step])
                        if delay:
                            time.sleep(delay)
                elif item[0] == "end":
                    self._chunk(h, b"")
                    break
                elif item[0] == "drop":
                    h.close_connection = True
                    try:
                        h.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    break
        except OSError:
            pass
        finally:
            with self.lock:
                if w in self.watches:
                    self.watches.remove(w)
                self.lock.notify_all()
            h.close_connection = True

    @staticmethod
    def _chunk(h, data):
        h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        h.wfile.flush()

    @staticmethod
    def _send_json(h, code, body):
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()


# -- object builders (the shapes of KUBERNETES.md §4.1 / §4.2)

def service(name, ports, namespace="default", type_="NodePort", annotations=None, etp=None):
    """ports: [(name, port, nodePort[, protocol])]."""
    spec = {"type": type_, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
            "ports": [{"name": p[0], "protocol": p[3] if len(p) > 3 else "TCP", "port": p[1],
                       "targetPort": p[1], **({"nodePort": p[2]} if p[2] else {})} for p in ports],
            "sessionAffinity": "None", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"}
    if type_ in ("NodePort", "LoadBalancer"):
        spec["externalTrafficPolicy"] = etp or "Cluster"
    meta = {"name": name, "namespace": namespace, "uid": "uid-" + name}
    if annotations:
        meta["annotations"] = annotations
    return {"kind": "Service", "apiVersion": "v1", "metadata": meta, "spec": spec, "status": {"loadBalancer": {}}}


def endpoint_slice(name, service_name, ports, addresses, namespace="default", node=None):
    """ports: [(name, port)]; addresses: ["127.0.0.1", ...] (ready) or (address, ready) tuples."""
    eps = []
    for a in addresses:
        addr, ready = (a, True) if isinstance(a, str) else a
        ep = {"addresses": [addr], "conditions": {"ready": ready, "serving": ready, "terminating": False}}
        if node:
            ep["nodeName"] = node
        eps.append(ep)
    return {"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name,
                                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": p[0], "protocol": "TCP", "port": p[1]} for p in ports]}


def node(name, address):
    return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}]}}
