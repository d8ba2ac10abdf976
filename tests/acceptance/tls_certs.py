"""Test PKI for the TLS acceptance tests, generated with the openssl command line.

make_pki(directory) writes, and returns the paths of:
  ca.pem                 server CA (ECDSA P-256) that signs the server certificates
  server-ec.pem/.key     ECDSA P-256 server certificate: localhost, admin.example.com, 127.0.0.1
  server-rsa.pem/.key    RSA 2048 server certificate: rsa.example.com (chosen by SNI)
  server-ec2.pem/.key    a second ECDSA certificate for the same names (hot reload: new serial)
  client-ca.pem          client CA (ECDSA P-256), run with `openssl ca` so it can revoke
  client.pem/.key        valid client certificate (extendedKeyUsage clientAuth)
  client-expired.*       expired in 2021
  client-revoked.*       revoked in crl.pem
  client-servereku.*     extendedKeyUsage serverAuth only (wrong purpose)
  other-client.*         signed by another CA that the proxy does not trust
  crl.pem                the client CA's CRL (revokes client-revoked)
"""

import os
import subprocess


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr.decode(errors="replace")))


def _key(d, name, kind="ec"):
    if kind == "ec":
        _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name + ".key"], d)
    else:
        _run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", name + ".key"], d)


def _ca(d, name, cn):
    _key(d, name)
    _run(["req", "-x509", "-new", "-key", name + ".key", "-out", name + ".pem", "-days", "365", "-subj", "/CN=" + cn,
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)


def _signed(d, name, ca, cn, ext, kind="ec"):
    _key(d, name, kind)
    _run(["req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn], d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write(ext)
    _run(["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial",
          "-out", name + ".pem", "-days", "200", "-extfile", name + ".ext"], d)


# A CRL distribution point makes the certificate look like a real one to testssl (which rates a
# certificate without CRL or OCSP URI HIGH); nothing fetches it.
SERVER_EXT = ("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=serverAuth\nsubjectAltName=%s\ncrlDistributionPoints=URI:http://127.0.0.1/ca.crl\n")

CA_CONF = """
[ca]
default_ca = client_ca
[client_ca]
dir = .
database = index.txt
new_certs_dir = newcerts
certificate = client-ca.pem
private_key = client-ca.key
serial = serial
crlnumber = crlnumber
default_md = sha256
default_crl_days = 30
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
[client_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[server_eku_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
"""


def _client(d, name, cn, ext="client_ext", dates=None):
    _key(d, name)
    _run(["req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn], d)
    args = ["ca", "-config", "ca.conf", "-batch", "-notext", "-in", name + ".csr", "-out", name + ".pem",
            "-extensions", ext]
    if dates:
        args += ["-startdate", dates[0], "-enddate", dates[1]]
    else:
        args += ["-days", "30"]
    _run(args, d)


def make_pki(d):
    os.makedirs(d, exist_ok=True)
    _ca(d, "ca", "npp test server CA")
    _signed(d, "server-ec", "ca", "admin.example.com",
            SERVER_EXT % "DNS:localhost,DNS:admin.example.com,IP:127.0.0.1")
    _signed(d, "server-ec2", "ca", "admin.example.com",
            SERVER_EXT % "DNS:localhost,DNS:admin.example.com,IP:127.0.0.1")
    _signed(d, "server-rsa", "ca", "rsa.example.com", SERVER_EXT % "DNS:rsa.example.com", kind="rsa")
    # The client CA, as a small `openssl ca` directory so it can revoke and issue a CRL.
    _ca(d, "client-ca", "npp test client CA")
    with open(os.path.join(d, "ca.conf"), "w") as f:
        f.write(CA_CONF)
    open(os.path.join(d, "index.txt"), "w").close()
    with open(os.path.join(d, "serial"), "w") as f:
        f.write("1000\n")
    with open(os.path.join(d, "crlnumber"), "w") as f:
        f.write("1000\n")
    os.makedirs(os.path.join(d, "newcerts"), exist_ok=True)
    _client(d, "client", "good client")
    _client(d, "client-expired", "expired client", dates=("20200101000000Z", "20210101000000Z"))
    _client(d, "client-revoked", "revoked client")
    _client(d, "client-servereku", "server eku client", ext="server_eku_ext")
    _run(["ca", "-config", "ca.conf", "-batch", "-revoke", "client-revoked.pem"], d)
    _run(["ca", "-config", "ca.conf", "-batch", "-gencrl", "-out", "crl.pem"], d)
    _ca(d, "other-ca", "some other CA")
    _signed(d, "other-client", "other-ca", "stranger",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    return {name: os.path.join(d, name) for name in os.listdir(d)}


def serial_of(pem_path):
    r = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", pem_path], stdout=subprocess.PIPE, check=True)
    return r.stdout.decode().strip().split("=", 1)[1]


if __name__ == "__main__":
    import sys
    make_pki(sys.argv[1])
