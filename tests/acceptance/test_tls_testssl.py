"""The testssl.sh gate (ACCEPTANCE row 30; also rows 27-29 from testssl's side): no finding of
severity MEDIUM or above against a TLS nodePort.

Bounded, not the full scan: the full default run takes 5-12 minutes on the CI machines (370
ciphers one by one, 40 client simulations, HTTP header checks that judge the pod, not the
proxy). This runs once, with --fast, the checks the gate is about:
  -p protocols (SSLv2..TLS 1.3), -s cipher categories (NULL, anonymous, EXPORT, LOW, 3DES, CBC),
  -f forward secrecy and groups, -P server cipher order, -S server defaults and certificate,
  -R renegotiation (secure, client-initiated), -Z TLS_FALLBACK_SCSV, -C CRIME (compression),
  -O POODLE, -B BEAST.
The test CA is passed with --add-ca, so testssl trusts the chain instead of reporting the
"self-signed" finding the acceptance row excuses. The certificate has a CRL distribution point
(tls_certs.py) because testssl rates a certificate without CRL or OCSP URI as HIGH, which is a
property of the certificate, not of the proxy. DNS CAA (LOW) cannot apply to 127.0.0.1.
"""

import json
import os
import shutil
import subprocess
import time

import npp
import tls_support as T
from test_tls import TlsCase

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
SEVERITY = ["OK", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]


class TestTestssl(TlsCase):
    def test_no_finding_medium_or_above(self):
        if TESTSSL is None:
            self.skipTest("testssl not installed (scripts/deps.sh test installs testssl.sh)")
        p, port, _ = self.start_tls(backend=self.backend(T.http_handler(b"ok")))
        report = os.path.join(self.tmp, "testssl.json")
        t0 = time.monotonic()
        r = subprocess.run([TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--fast",
                            "--add-ca", T.pki()["ca.pem"], "-p", "-s", "-f", "-P", "-S", "-R", "-Z", "-C", "-O", "-B",
                            "--jsonfile", report, "--ip", "one", "127.0.0.1:%d" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=540)
        elapsed = time.monotonic() - t0
        out = r.stdout.decode("utf-8", "replace")
        self.assertTrue(os.path.exists(report), out[-3000:])
        with open(report) as f:
            findings = json.load(f)
        bad = ["%s %s: %s" % (x["severity"], x["id"], x["finding"]) for x in findings
               if x.get("severity") in SEVERITY and SEVERITY.index(x["severity"]) >= SEVERITY.index("MEDIUM")]
        print("testssl: %d findings in %.0f s; MEDIUM or above: %s" % (len(findings), elapsed, bad or "none"))
        self.assertEqual(bad, [], out[-3000:])
        ids = {x["id"]: x for x in findings}
        # The checks the rows name actually ran and passed.
        for check in ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "TLS1_2", "TLS1_3", "secure_client_renego",
                      "fallback_SCSV", "CRIME_TLS"):
            self.assertIn(check, ids, "testssl did not report %s" % check)
        for check in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            self.assertIn("not offered", ids[check]["finding"])
        p.assert_alive()


if __name__ == "__main__":
    npp.main()
