#!/usr/bin/env bash
# Generates throw-away certificates for admin-ui-tls.json into ./certs (EXAMPLE ONLY: a local CA,
# an ECDSA P-256 default certificate for localhost, an RSA one for rsa.localhost chosen by SNI,
# a client CA with one client certificate and an empty CRL). Keys are never committed.
# usage: examples/tls/make-certs.sh [DIR]   (default: the directory of this script)
set -euo pipefail
dir=${1:-$(dirname "$0")}
mkdir -p "$dir/certs" && cd "$dir/certs"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {  # name CN
  ec "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 365 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() {  # name CA CN extensions [rsa]
  if [[ ${5:-} == rsa ]]; then openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" 2>/dev/null; else ec "$1.key"; fi
  openssl req -new -key "$1.key" -subj "/CN=$3" 2>/dev/null |
    openssl x509 -req -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 365 -out "$1.pem" \
      -extfile <(printf '%b' "$4") 2>/dev/null
}
ca example-ca "nodeport-proxy example CA"
leaf server example-ca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
leaf server-rsa example-ca rsa.localhost "subjectAltName=DNS:rsa.localhost\nextendedKeyUsage=serverAuth\n" rsa
ca clients-ca "nodeport-proxy example client CA"
leaf client clients-ca "example client" "extendedKeyUsage=clientAuth\n"
# An empty CRL of the client CA (openssl ca needs its little database).
touch index.txt && echo 01 > crlnumber
cat > ca.conf <<CONF
[ca]
default_ca = c
[c]
database = index.txt
crlnumber = crlnumber
certificate = clients-ca.pem
private_key = clients-ca.key
default_md = sha256
default_crl_days = 365
CONF
openssl ca -config ca.conf -gencrl -out clients-ca.crl 2>/dev/null
echo "certificates written to $(pwd)"
