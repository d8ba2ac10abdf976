"""OCSP stapling (issue 5, ACCEPTANCE row 35): tls.ocspResponseFile holds a DER OCSP response
the proxy staples to the handshakes of clients that ask (status_request) while it is fresh.
Real peers: `openssl s_client -status` and python's ssl module; the PKI and the responses are
made with the openssl command line (`openssl ocsp -index ... -respout`, the responder run
locally: no network). `openssl ocsp` only writes thisUpdate = now and nextUpdate >= now + 1
minute, so responses with other times (stale, or stale in a few seconds) are the same
responses with their times rewritten and signed again by the CA (`openssl dgst -sign`): genuine,
verifiable responses, as a responder would have produced at another moment."""

import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.request

import npp
import tls_support as T

_PKI = None


def _openssl(args, cwd, stdin=None):
    r = subprocess.run(["openssl"] + args, cwd=cwd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
    return r.stdout


def _server_cert(d, name, cn):
    _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name + ".key"], d)
    _openssl(["req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn], d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,IP:127.0.0.1\n" % cn)
    _openssl(["x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
              "-out", name + ".pem", "-days", "30", "-extfile", name + ".ext"], d)
    serial = _openssl(["x509", "-in", name + ".pem", "-noout", "-serial"], d).decode().strip().split("=", 1)[1]
    # certFile with its chain: the proxy finds the issuer there to match the response's CertID.
    with open(os.path.join(d, name + "-chain.pem"), "w") as out:
        for part in (name + ".pem", "ca.pem"):
            with open(os.path.join(d, part)) as f:
                out.write(f.read())
    return serial


def pki():
    """An RSA CA (fixed-size signatures: a re-signed response keeps its length) that is its own
    OCSP responder, two server certificates it issued, and its `openssl ca` index."""
    global _PKI
    if _PKI is None:
        d = tempfile.mkdtemp(prefix="npp-ocsp-pki-")
        import atexit
        atexit.register(shutil.rmtree, d, True)
        _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "ca.key"], d)
        _openssl(["req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "30", "-subj",
                  "/CN=npp OCSP test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"], d)
        with open(os.path.join(d, "index.txt"), "w") as index:
            for name in ("server", "other"):
                serial = _server_cert(d, name, "localhost" if name == "server" else "other.example.com")
                index.write("V\t301231235959Z\t\t%s\tunknown\t/CN=%s\n" % (serial, name))
        _PKI = d
    return _PKI


def make_response(cert, out, this_update=None, next_update=None):
    """A DER OCSP response from the CA saying `cert` (server, other) is good, written to `out`.
    Default times: openssl's (now, now + 1 day). With this_update / next_update (UTC datetimes),
    the response's producedAt, thisUpdate and nextUpdate are rewritten and it is signed again."""
    d = pki()
    der = _openssl(["ocsp", "-index", "index.txt", "-rsigner", "ca.pem", "-rkey", "ca.key", "-CA", "ca.pem",
                    "-issuer", "ca.pem", "-cert", cert + ".pem", "-no_nonce", "-resp_no_certs", "-ndays", "1",
                    "-respout", "/dev/stdout"], d)
    if this_update is not None:
        der = _retime(der, this_update, next_update)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(der)
    os.replace(tmp, out)  # atomic, as a renewal job would do it
    return out


def _tlv(buf, off):
    """(content offset, content length) of the DER element at off."""
    n = buf[off + 1]
    if n < 0x80:
        return off + 2, n
    k = n & 0x7F
    return off + 2 + k, int.from_bytes(buf[off + 2:off + 2 + k], "big")


def _skip(buf, off):
    start, length = _tlv(buf, off)
    return start + length


def _retime(der, this_update, next_update):
    buf = bytearray(der)
    # OCSPResponse { status, [0] { SEQ { OID, OCTET STRING { BasicOCSPResponse { tbs, alg, sig } } } } }
    off, _ = _tlv(buf, 0)
    off = _skip(buf, off)                 # responseStatus
    off, _ = _tlv(buf, off)               # [0]
    off, _ = _tlv(buf, off)               # ResponseBytes
    off = _skip(buf, off)                 # responseType
    off, _ = _tlv(buf, off)               # OCTET STRING
    basic, _ = _tlv(buf, off)             # BasicOCSPResponse
    tbs_end = _skip(buf, basic)
    fmt = lambda t: t.strftime("%Y%m%d%H%M%SZ").encode()
    times = [fmt(this_update), fmt(this_update), fmt(next_update)]  # producedAt, thisUpdate, nextUpdate
    pos, found = basic, 0
    while found < 3:
        pos = buf.index(b"\x18\x0f", pos, tbs_end)
        buf[pos + 2:pos + 17] = times[found]
        pos += 17
        found += 1
    sig = _openssl(["dgst", "-sha256", "-sign", "ca.key"], pki(), stdin=bytes(buf[basic:tbs_end]))
    assert len(sig) == 256 and bytes(buf[-257:-256]) == b"\x00", "unexpected response layout"
    buf[-256:] = sig  # -resp_no_certs: the signature BIT STRING ends the response
    return bytes(buf)


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def stapled(port, status=True, servername="localhost", extra=()):
    """Runs s_client (-status when status) against the proxy; returns (handshake ok, the OCSP
    part of its output or None when no response was stapled, full output)."""
    args = ["-servername", servername, "-CAfile", os.path.join(pki(), "ca.pem")] + (["-status"] if status else [])
    args += list(extra)
    _, out = T.s_client(port, args)
    if "OCSP Response Status" not in out:
        return T.handshake_ok(out), None, out
    start = out.index("OCSP Response Status")
    return T.handshake_ok(out), out[start:out.find("======", start)], out


def field(ocsp_text, name):
    for line in ocsp_text.splitlines():
        if line.strip().startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


class OcspCase(npp.ProxyTestCase):
    def start(self, ocsp="resp.der", cert="server", more=()):
        """A proxy with one TLS service whose certificate is `cert` (with its chain) and whose
        ocspResponseFile is `ocsp` (relative: resolved against the endpoints file's directory);
        `more`: further "certificates" entries (chosen by SNI)."""
        self.backend_ = self.backend(npp.echo_handler())
        d = pki()
        shutil.copy(os.path.join(d, cert + "-chain.pem"), os.path.join(self.tmp, "server.pem"))
        shutil.copy(os.path.join(d, cert + ".key"), os.path.join(self.tmp, "server.key"))
        self.port = npp.free_port()
        self.metrics_port = npp.free_port()
        tls = {"certFile": "server.pem", "keyFile": "server.key", "ocspResponseFile": ocsp}
        if more:
            tls["certificates"] = list(more)
        svc = T.tls_service("web", self.port, [self.backend_.addr], tls)
        return self.proxy_for([svc], extra=["--metrics-bind-address", "127.0.0.1:%d" % self.metrics_port])

    def relay_works(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(pki(), "ca.pem"))
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=5), server_hostname="localhost")
        try:
            s.sendall(b"ping")
            self.assertEqual(npp.recv_exact(s, 4), b"ping")
        finally:
            s.close()
        return True

    def path(self, name):
        return os.path.join(self.tmp, name)


class TestStapling(OcspCase):
    def test_fresh_response_is_stapled(self):
        """Case 1: a fresh response for the served certificate: s_client -status gets it
        (successful, good, the dates the responder wrote); data is relayed; counted."""
        make_response("server", self.path("resp.der"))
        p = self.start()
        p.wait_for_log(r"OCSP response .*resp\.der loaded for .*server\.pem")
        ok, ocsp, out = stapled(self.port)
        self.assertTrue(ok, out)
        self.assertIsNotNone(ocsp, out)
        self.assertIn("OCSP Response Status: successful", ocsp)
        self.assertEqual(field(ocsp, "Cert Status"), "good")
        self.assertIsNotNone(field(ocsp, "Next Update"))
        # What the client gets verifies against the CA (the proxy relays the responder's bytes).
        with open(self.path("resp.der"), "rb") as f:
            self.assertIn(b"Response verify OK", subprocess.run(
                ["openssl", "ocsp", "-respin", "/dev/stdin", "-CAfile", "ca.pem", "-issuer", "ca.pem",
                 "-cert", "server.pem", "-no_nonce"], cwd=pki(), input=f.read(), stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, timeout=10).stdout)
        self.relay_works()
        T.wait_metric(self.metrics_port, "nodeport_proxy_tls_handshakes_ocsp_stapled_total", 1)
        with urllib.request.urlopen("http://127.0.0.1:%d/status.json" % self.metrics_port, timeout=3) as r:
            cert = json.load(r)["ports"][0]["tls"]["certificates"][0]
        self.assertTrue(cert["ocsp"]["loaded"])
        self.assertGreater(cert["ocsp"]["next_update_unix"], time.time())

    def test_tls12_and_sni_each_certificate_its_own_response(self):
        """TLS 1.2 (CertificateStatus message) as well as 1.3 (Certificate extension); with two
        certificates chosen by SNI, each handshake gets the response of the certificate served
        (matched by serial)."""
        d = pki()
        make_response("server", self.path("resp.der"))
        make_response("other", self.path("other.der"))
        for name in ("other-chain.pem", "other.key"):
            shutil.copy(os.path.join(d, name), self.path(name))
        serial = lambda cert: _openssl(["x509", "-in", cert + ".pem", "-noout", "-serial"], d).decode().strip().split("=", 1)[1]
        p = self.start(more=[{"certFile": "other-chain.pem", "keyFile": "other.key", "ocspResponseFile": "other.der"}])
        p.wait_for_log(r"OCSP response .*other\.der loaded for .*other-chain\.pem")
        for version in ("-tls1_2", "-tls1_3"):
            for servername, cert in (("localhost", "server"), ("other.example.com", "other")):
                ok, ocsp, out = stapled(self.port, servername=servername, extra=[version])
                self.assertTrue(ok, out)
                self.assertIsNotNone(ocsp, out)
                self.assertEqual(field(ocsp, "Serial Number"), serial(cert), (version, servername))
                self.assertIn("Verify return code: 0 (ok)", out)
        T.wait_metric(self.metrics_port, "nodeport_proxy_tls_handshakes_ocsp_stapled_total", 4)

    def test_not_stapled_unless_asked(self):
        """Case 2: a client that does not send status_request gets no response; the handshake is
        unaffected and nothing is counted as stapled."""
        make_response("server", self.path("resp.der"))
        p = self.start()
        p.wait_for_log(r"OCSP response .* loaded")
        ok, ocsp, out = stapled(self.port, status=False)
        self.assertTrue(ok, out)
        self.assertIsNone(ocsp, out)
        self.relay_works()
        T.wait_metric(self.metrics_port, "nodeport_proxy_tls_handshakes_total", 2)
        self.assertEqual(T.metric_value(T.metrics(self.metrics_port), "nodeport_proxy_tls_handshakes_ocsp_stapled_total"), 0)


class TestUnusableResponses(OcspCase):
    def assert_served_unstapled(self, p, why):
        p.wait_for_log(r"warning .*default/web: OCSP response .*resp\.der not stapled: " + why)
        ok, ocsp, out = stapled(self.port)
        self.assertTrue(ok, out)
        self.assertIsNone(ocsp, out)
        self.assertIn("OCSP response: no response sent", out)
        self.relay_works()

    def test_stale_response_is_not_stapled(self):
        """Case 3: a response whose nextUpdate has passed (validly signed an hour ago)."""
        now = utc_now()
        make_response("server", self.path("resp.der"), now - datetime.timedelta(hours=2),
                      now - datetime.timedelta(hours=1))
        p = self.start()
        self.assert_served_unstapled(p, r"it is stale: its nextUpdate \(.*\) has passed")

    def test_response_stops_being_stapled_when_it_goes_stale(self):
        """Case 3b: fresh at load, stale a few seconds later while the proxy runs: the handshake
        compares nextUpdate with the clock and stops stapling it (one warning)."""
        now = utc_now()
        next_update = now + datetime.timedelta(seconds=6)
        make_response("server", self.path("resp.der"), now - datetime.timedelta(minutes=1), next_update)
        p = self.start()
        p.wait_for_log(r"OCSP response .* loaded")
        ok, ocsp, out = stapled(self.port)
        if ocsp is None and utc_now() >= next_update:
            self.skipTest("the machine was too slow to see the response while fresh")
        self.assertIsNotNone(ocsp, out)
        npp.wait_until(lambda: stapled(self.port)[1] is None, 15, interval=0.2, what="response no longer stapled")
        self.assertGreaterEqual(utc_now(), next_update)
        p.wait_for_log(r"warning .*OCSP response .*resp\.der went stale")
        self.relay_works()

    def test_response_for_another_certificate(self):
        """Case 4: a good response, but for another certificate of the same CA."""
        make_response("other", self.path("resp.der"))
        p = self.start()
        self.assert_served_unstapled(p, r"it is not about this certificate")

    def test_garbage_file(self):
        """Case 5: not an OCSP response at all."""
        with open(self.path("resp.der"), "wb") as f:
            f.write(b"this is not DER\n")
        p = self.start()
        self.assert_served_unstapled(p, r"not a DER OCSP response")

    def test_missing_file(self):
        """A response file that does not exist (yet): a warning, TLS without stapling."""
        p = self.start(ocsp="missing.der")
        p.wait_for_log(r"warning .*OCSP response .*missing\.der not stapled: cannot open file")
        ok, ocsp, out = stapled(self.port)
        self.assertTrue(ok, out)
        self.assertIsNone(ocsp, out)

    def test_issuer_not_in_chain(self):
        """certFile without its chain: the response cannot be matched; refused with the reason."""
        make_response("server", self.path("resp.der"))
        p = self.start()
        shutil.copy(os.path.join(pki(), "server.pem"), self.path("leaf.pem"))
        mark = p.mark()
        T.replace_atomic(self.path("leaf.pem"), self.path("server.pem"))
        p.wait_for_log(r"OCSP response .* not stapled: the issuer of the certificate \(CN=npp OCSP test CA\) is not in",
                       timeout=10, start=mark)
        npp.wait_until(lambda: stapled(self.port)[1] is None, 5, interval=0.1, what="nothing stapled")
        self.relay_works()


class TestReload(OcspCase):
    def test_replaced_response_is_stapled_on_new_handshakes(self):
        """Case 6: the response file replaced by an atomic rename: new handshakes staple the new
        response (its This Update), a connection opened before keeps relaying; a broken
        replacement stops the stapling, the certificate keeps serving."""
        now = utc_now()
        make_response("server", self.path("resp.der"), now - datetime.timedelta(hours=3), now + datetime.timedelta(days=1))
        p = self.start()
        p.wait_for_log(r"OCSP response .* loaded")
        _, ocsp, out = stapled(self.port)
        self.assertIsNotNone(ocsp, out)
        old = field(ocsp, "This Update")

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(os.path.join(pki(), "ca.pem"))
        open_conn = ctx.wrap_socket(socket.create_connection(("127.0.0.1", self.port), timeout=5),
                                    server_hostname="localhost")
        self.addCleanup(open_conn.close)
        open_conn.sendall(b"before")
        self.assertEqual(npp.recv_exact(open_conn, 6), b"before")

        mark = p.mark()
        make_response("server", self.path("resp.der"), now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1))
        p.wait_for_log(r"OCSP response .* loaded", timeout=10, start=mark)
        npp.wait_until(lambda: (stapled(self.port)[1] or "").find("This Update") >= 0 and
                       field(stapled(self.port)[1], "This Update") != old, 5, interval=0.1, what="new response stapled")
        _, ocsp, out = stapled(self.port)
        self.assertNotEqual(field(ocsp, "This Update"), old, out)
        open_conn.sendall(b"after")
        self.assertEqual(npp.recv_exact(open_conn, 5), b"after")

        mark = p.mark()
        npp.write_atomic(self.path("resp.der"), "garbage")
        p.wait_for_log(r"not stapled: not a DER OCSP response", timeout=10, start=mark)
        npp.wait_until(lambda: stapled(self.port)[1] is None, 5, interval=0.1, what="nothing stapled")
        self.relay_works()


if __name__ == "__main__":
    unittest.main()
