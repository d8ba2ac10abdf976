#pragma once
// TLS contexts of one Service, built from its tls / upstreamTLS settings when a snapshot is
// applied and shared (read-only) by every worker: OpenSSL's SSL_CTX is safe to use from several
// threads once configured. A context is rebuilt only when its settings or the bytes of its files
// change (tls_context_cache), so the session cache survives unrelated reloads
// and a certificate replaced on disk (atomic rename) is served on the next handshake; sessions
// already open keep the SSL_CTX they started with (shared_ptr).
//
// Server policy (Mozilla "intermediate", 2023): TLS 1.2 and 1.3; ECDHE with AES-GCM or
// ChaCha20-Poly1305 for 1.2 (no CBC, RC4, 3DES, NULL, EXPORT, anonymous or static-RSA suites; no
// DHE, which would need parameters); groups X25519, P-256, P-384; no compression; no
// renegotiation at all (the client cannot start one: CVE-2009-3555 class and CPU exhaustion);
// session resumption from a server-side session cache shared by the workers (TLS 1.2 session ids,
// TLS 1.3 stateful tickets), no stateless tickets.
//
// OCSP stapling (tls.ocspResponseFile per certificate, as HAProxy's .ocsp files): the proxy makes
// no request of its own; an operator's job (or `openssl ocsp -respout`) writes a DER response next
// to the certificate and the file is reloaded like the certificate. At load the response must
// parse, say "successful", hold a SingleResponse for this leaf (its issuer found in certFile's
// chain) and be fresh; the responder's signature is not verified (the client does that against its
// own trust store). A response that fails is a warning and the certificate is served unstapled.
// Each handshake that asks (status_request) gets the selected certificate's response while its
// nextUpdate is ahead of the clock: one that goes stale while running stops being stapled.
#include <chrono>
#include <ctime>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/snapshot.hpp"

namespace boost::asio::ssl {
class context;
}

namespace npp::proxy {

/// What /status shows of one certificate.
struct tls_certificate_info {
  std::string file;        ///< certFile
  std::string subject;     ///< "CN=admin.example.com"
  std::string names;       ///< subjectAltName DNS/IP entries, comma-separated (what SNI matches)
  std::string key_type;    ///< "ECDSA P-256", "RSA 2048"
  std::string serial;      ///< hex
  std::chrono::system_clock::time_point not_after;
  std::string ocsp_file;         ///< ocspResponseFile ("" none)
  bool ocsp_stapled = false;     ///< the response passed the load-time checks
  std::time_t ocsp_next_update = 0;  ///< its nextUpdate (0: none)
};

/// The server side of TLS termination for one Service.
class tls_server_context {
 public:
  /// Loads the certificates, keys, client CAs and CRL. Throws std::runtime_error naming the file
  /// and OpenSSL's reason when something cannot be used. `service_id` scopes resumed sessions.
  tls_server_context(const config::tls_settings& s, const std::string& service_id);
  ~tls_server_context();
  boost::asio::ssl::context& asio() const;
  const std::vector<tls_certificate_info>& certificates() const;
  bool client_auth() const;  ///< clientCAFile set: a valid client certificate is required
  bool crl() const;          ///< crlFile set

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The client side of re-encryption to the endpoints of one Service.
class tls_client_context {
 public:
  explicit tls_client_context(const config::upstream_tls_settings& s);
  ~tls_client_context();
  boost::asio::ssl::context& asio() const;
  const config::upstream_tls_settings& settings() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// Builds contexts for the reconciler and keeps the ones still in use, keyed by service id: a
/// context is reused while its settings and the bytes of its files are unchanged.
class tls_context_cache {
 public:
  /// The server context for `svc`, rebuilt if its files changed. On failure logs an error and
  /// returns the previous context (the old certificate keeps being served) or null if there is none;
  /// *failed is set so the caller can count it.
  std::shared_ptr<const tls_server_context> server(const config::service& svc, bool* failed);
  std::shared_ptr<const tls_client_context> client(const config::service& svc, bool* failed);
  /// Forgets the services not in `live` (by id).
  template <typename Pred>
  void retain(Pred live) {
    std::erase_if(servers_, [&](const auto& kv) { return !live(kv.first); });
    std::erase_if(clients_, [&](const auto& kv) { return !live(kv.first); });
  }

 private:
  template <typename Ctx>
  struct entry {
    std::string fingerprint;  ///< settings + file bytes it was built from
    std::shared_ptr<const Ctx> ctx;
  };
  std::map<std::string, entry<tls_server_context>> servers_;
  std::map<std::string, entry<tls_client_context>> clients_;
};

}  // namespace npp::proxy
