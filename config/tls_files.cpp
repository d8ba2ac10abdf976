// TLS inputs as files: relative paths resolved against the input file's directory, and the files'
// contents checked when the configuration is loaded (so `nodeport-proxy validate` and a reload
// refuse a missing file or a key that does not belong to its certificate, and the running
// configuration is kept). The proxy reads the same files again when it builds its contexts.
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "config/loader_internal.hpp"

namespace npp::config::detail {
namespace {

struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct x509_free {
  void operator()(X509* x) const { X509_free(x); }
};
struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct crl_free {
  void operator()(X509_CRL* c) const { X509_CRL_free(c); }
};

void resolve(std::string& file, const std::filesystem::path& dir) {
  if (file.empty()) return;
  std::filesystem::path p(file);
  if (p.is_relative()) file = (dir / p).lexically_normal().string();
}

// Opens a file for OpenSSL's PEM readers; on failure sets *why ("cannot open file: ...").
std::unique_ptr<BIO, bio_free> open_pem(const std::string& file, std::string* why) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    *why = "cannot open file: " + std::string(std::strerror(errno));
    return nullptr;
  }
  return std::unique_ptr<BIO, bio_free>(BIO_new_fp(f, BIO_CLOSE));
}

}  // namespace

void resolve_tls_paths(service& svc, const std::filesystem::path& dir) {
  for (auto& c : svc.tls.certificates) {
    resolve(c.cert_file, dir);
    resolve(c.key_file, dir);
    resolve(c.ocsp_response_file, dir);
  }
  resolve(svc.tls.client_ca_file, dir);
  resolve(svc.tls.crl_file, dir);
  resolve(svc.upstream_tls.ca_file, dir);
}

std::string check_certificate_file(const std::string& file, std::size_t* count) {
  std::string why;
  auto bio = open_pem(file, &why);
  if (!bio) return why;
  std::size_t n = 0;
  while (std::unique_ptr<X509, x509_free> x{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) ++n;
  ERR_clear_error();  // the end of the file reads as an error
  if (count) *count = n;
  return n == 0 ? "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file" : "";
}

std::string check_key_pair(const std::string& cert_file, const std::string& key_file, std::string* key_why) {
  std::string why;
  auto cert_bio = open_pem(cert_file, &why);
  if (!cert_bio) return why;
  std::unique_ptr<X509, x509_free> cert{PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)};
  ERR_clear_error();
  if (!cert) return "no PEM certificate (-----BEGIN CERTIFICATE-----) in the file";
  auto key_bio = open_pem(key_file, key_why);
  if (!key_bio) return "";
  // No passphrase callback: an encrypted key must fail here, not prompt on a terminal.
  std::unique_ptr<EVP_PKEY, pkey_free> key{
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr)};
  ERR_clear_error();
  if (!key) {
    *key_why = "no unencrypted PEM private key in the file";
    return "";
  }
  const int type = EVP_PKEY_get_base_id(key.get());
  if (type != EVP_PKEY_EC && type != EVP_PKEY_RSA && type != EVP_PKEY_ED25519) {
    *key_why = "unsupported key type (use an ECDSA or RSA key)";
    return "";
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    *key_why = "the private key does not match the certificate in " + cert_file;
  }
  return "";
}

std::string check_crl_file(const std::string& file) {
  std::string why;
  auto bio = open_pem(file, &why);
  if (!bio) return why;
  std::unique_ptr<X509_CRL, crl_free> crl{PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)};
  ERR_clear_error();
  return crl ? "" : "no PEM CRL (-----BEGIN X509 CRL-----) in the file";
}

}  // namespace npp::config::detail
