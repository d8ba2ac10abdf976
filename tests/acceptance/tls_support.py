"""Shared pieces of the TLS acceptance tests (test_tls*.py): one test PKI per test file,
services with a "tls" block, python ssl clients, openssl s_client runs, an HTTP-ish backend."""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request

import npp
import tls_certs

_PKI = None


def pki():
    """The test PKI (tls_certs.make_pki), generated once per test file."""
    global _PKI
    if _PKI is None:
        d = tempfile.mkdtemp(prefix="npp-pki-")
        import atexit
        atexit.register(shutil.rmtree, d, True)
        _PKI = tls_certs.make_pki(d)
        _PKI["dir"] = d
    return _PKI


def copy_pair(tmp, cert="server-ec", name="server"):
    """Copies a certificate and key into tmp as NAME.pem / NAME.key (the files the proxy uses,
    so a test can replace them); returns (cert path, key path)."""
    p = pki()
    c, k = os.path.join(tmp, name + ".pem"), os.path.join(tmp, name + ".key")
    shutil.copy(p[cert + ".pem"], c)
    shutil.copy(p[cert + ".key"], k)
    return c, k


def replace_atomic(src, dst):
    """Puts src's bytes at dst with write-to-temp + rename (as cert-manager and Secret volumes do)."""
    tmp = dst + ".tmp"
    shutil.copy(src, tmp)
    os.rename(tmp, dst)


def tls_service(name, node_port, endpoints, tls, **extra):
    s = npp.svc(name, node_port, endpoints)
    s["tls"] = tls
    s.update(extra)
    return s


def client_context(cert=None, server_name_check=True, max_version=None, min_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki()["ca.pem"])
    ctx.check_hostname = server_name_check
    if cert:
        ctx.load_cert_chain(pki()[cert + ".pem"], pki()[cert + ".key"])
    if max_version:
        ctx.maximum_version = max_version
    if min_version:
        ctx.minimum_version = min_version
    return ctx


def tls_connect(port, ctx=None, server_hostname="localhost", timeout=5.0, session=None):
    """A TLS connection to 127.0.0.1:port (handshake done). Raises on handshake failure."""
    ctx = ctx or client_context()
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server_hostname, suppress_ragged_eofs=False, session=session)
    except BaseException:
        raw.close()
        raise
    return s


def tls_outcome(port, cert=None, payload=b"ping", timeout=5.0, **kw):
    """Handshake (with client certificate `cert`), send payload, read one reply. Returns
    ('ok', reply) or ('failed', repr(error)). With TLS 1.3 a client certificate the server
    refuses is reported on the first read, after the client's side of the handshake."""
    try:
        s = tls_connect(port, client_context(cert=cert, **kw), timeout=timeout)
    except (ssl.SSLError, OSError) as e:
        return "failed", repr(e)
    try:
        s.sendall(payload)
        data = s.recv(1 << 16)
        if not data:
            return "failed", "eof"
        return "ok", data
    except (ssl.SSLError, OSError) as e:
        return "failed", repr(e)
    finally:
        s.close()


def s_client(port, args, stdin=b"", timeout=10.0):
    """Runs `openssl s_client -connect 127.0.0.1:PORT ARGS`; returns (exit code, stdout+stderr text)."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port] + list(args)
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def handshake_ok(output):
    """True if s_client's output shows an established session (a negotiated cipher)."""
    return ("Cipher is " in output and "Cipher is (NONE)" not in output) or "New, TLSv1" in output


def http_handler(body=b"hello"):
    """Reads an HTTP request head, answers 200 with body, closes (one request per connection)."""
    def handler(conn, backend):
        data = b""
        while b"\r\n\r\n" not in data:
            d = conn.recv(4096)
            if not d:
                return
            data += d
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        conn.shutdown(socket.SHUT_WR)
        backend.record(end="served")
    return handler


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=3) as r:
        return r.read().decode()


def metric_value(text, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all('%s="%s"' % (k, v) in head for k, v in labels.items()):
            total += float(value)
            found = True
    return total if found else None


def wait_metric(port, name, at_least, timeout=5.0, **labels):
    return npp.wait_until(lambda: (metric_value(metrics(port), name, **labels) or 0) >= at_least, timeout,
                          what="%s%r >= %s" % (name, labels, at_least))
