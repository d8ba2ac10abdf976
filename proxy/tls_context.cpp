#include "proxy/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace npp::proxy {

namespace asio = boost::asio;

namespace {

// Mozilla "intermediate" TLS 1.2 suites without DHE (ECDHE only, AEAD only). TLS 1.3 suites are
// OpenSSL's defaults, which are exactly Mozilla's (AES-128/256-GCM, ChaCha20-Poly1305).
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr const char* groups = "X25519:P-256:P-384";
// Server-side session cache per Service: sessions kept, and how long a session can be resumed.
constexpr long session_cache_size = 10000;
constexpr long session_timeout_seconds = 300;

// The first error on OpenSSL's queue as text, and the queue cleared (it is per thread: what one
// failure leaves behind must not be reported for the next connection on this worker).
std::string openssl_error() {
  unsigned long e = ERR_peek_last_error();
  std::string out = e ? ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown error" : "unknown error";
  ERR_clear_error();
  return out;
}

[[noreturn]] void fail(const std::string& what, const std::string& file) {
  throw std::runtime_error(what + " " + file + ": " + openssl_error());
}

std::string read_bytes(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Settings and the bytes of every file: equal fingerprints mean an equal context.
std::string fingerprint_of(const std::vector<std::string>& files, const std::string& settings) {
  std::string out = settings;
  for (const auto& f : files) {
    out += '\0' + f + '\0';
    out += read_bytes(f);
  }
  return out;
}

/// unique_ptr deleter calling an OpenSSL free function: std::unique_ptr<X509, openssl_free<X509_free>>.
template <auto Free>
struct openssl_free {
  template <class T>
  void operator()(T* p) const { Free(p); }
};
using x509_free = openssl_free<X509_free>;
using pkey_free = openssl_free<EVP_PKEY_free>;
using ocsp_response_free = openssl_free<OCSP_RESPONSE_free>;
using ocsp_basic_free = openssl_free<OCSP_BASICRESP_free>;
using ocsp_certid_free = openssl_free<OCSP_CERTID_free>;
struct chain_free {  // sk_X509_pop_free is a macro
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

/// An OCSP response checked at load time and ready to staple: the handshake only copies `der`
/// and compares `next_update` with the clock. Immutable once built, except the flag that keeps
/// "went stale" to one log line (workers share it).
struct ocsp_staple {
  std::string file;
  std::string der;               ///< the file's bytes, stapled as they are
  std::time_t next_update = 0;   ///< 0: the response has no nextUpdate (always fresh)
  int cert_status = V_OCSP_CERTSTATUS_GOOD;  ///< what the responder says of the certificate
  mutable std::atomic<bool> stale_logged{false};
};

/// One certificate with its chain and key, parsed once; handed to each handshake by SNI.
struct loaded_cert {
  std::unique_ptr<X509, x509_free> leaf;
  std::unique_ptr<STACK_OF(X509), chain_free> chain;
  std::unique_ptr<EVP_PKEY, pkey_free> key;
  std::unique_ptr<const ocsp_staple> ocsp;  ///< null: nothing to staple
  tls_certificate_info info;
};

std::time_t to_time_t(const ASN1_GENERALIZEDTIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

std::string time_text(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string name_text(X509_NAME* n) {
  BIO* b = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long len = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<std::size_t>(len));
  BIO_free(b);
  return out;
}

std::string alt_names(X509* x) {
  std::string out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    if (g->type == GEN_DNS) {
      const auto* s = ASN1_STRING_get0_data(g->d.dNSName);
      out += (out.empty() ? "" : ",") + std::string(reinterpret_cast<const char*>(s), ASN1_STRING_length(g->d.dNSName));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

loaded_cert load_cert(const config::tls_certificate& c) {
  loaded_cert out;
  BIO* bio = BIO_new_file(c.cert_file.c_str(), "r");
  if (!bio) fail("cannot open certificate", c.cert_file);
  out.leaf.reset(PEM_read_bio_X509_AUX(bio, nullptr, nullptr, nullptr));
  if (!out.leaf) {
    BIO_free(bio);
    fail("no certificate in", c.cert_file);
  }
  out.chain.reset(sk_X509_new_null());
  while (X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) sk_X509_push(out.chain.get(), extra);
  ERR_clear_error();  // the end of the file
  BIO_free(bio);
  bio = BIO_new_file(c.key_file.c_str(), "r");
  if (!bio) fail("cannot open key", c.key_file);
  out.key.reset(PEM_read_bio_PrivateKey(bio, nullptr, [](char*, int, int, void*) { return 0; }, nullptr));
  BIO_free(bio);
  if (!out.key) fail("no unencrypted private key in", c.key_file);
  if (X509_check_private_key(out.leaf.get(), out.key.get()) != 1)
    throw std::runtime_error("the private key " + c.key_file + " does not match the certificate " + c.cert_file +
                             " (" + openssl_error() + ")");
  out.info.file = c.cert_file;
  out.info.subject = name_text(X509_get_subject_name(out.leaf.get()));
  out.info.names = alt_names(out.leaf.get());
  const int type = EVP_PKEY_get_base_id(out.key.get());
  if (type == EVP_PKEY_EC) {
    char group[64] = {};
    std::size_t len = 0;
    EVP_PKEY_get_group_name(out.key.get(), group, sizeof group, &len);
    out.info.key_type = std::string("ECDSA ") + group;
  } else if (type == EVP_PKEY_RSA) {
    out.info.key_type = "RSA " + std::to_string(EVP_PKEY_get_bits(out.key.get()));
  } else {
    out.info.key_type = OBJ_nid2sn(type);
  }
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(out.leaf.get()), nullptr)) {
    char* hex = BN_bn2hex(bn);
    out.info.serial = hex;
    OPENSSL_free(hex);
    BN_free(bn);
  }
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(out.leaf.get()), &tm) == 1)
    out.info.not_after = std::chrono::system_clock::from_time_t(timegm(&tm));
  return out;
}

// The OCSP response in `file` for `cert`, checked: a DER OCSPResponse with responseStatus
// successful and a BasicOCSPResponse holding a SingleResponse whose CertID (with the hash the
// responder used) names this leaf and its issuer, the issuer being found in certFile's chain;
// thisUpdate not in the future (5 minutes of clock skew allowed) and nextUpdate, if any, not
// passed. Not checked: the responder's signature and authority (the client verifies them against
// its own trust store; the proxy only relays the response, and a response it cannot judge costs
// nothing but a failed verification on the client). A revoked or unknown status is stapled as
// it is (the truth is the client's to act on) with a warning. Returns null and sets *why on failure.
std::unique_ptr<const ocsp_staple> load_ocsp(const std::string& file, const loaded_cert& cert, std::string* why) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    *why = "cannot open file: " + std::string(std::strerror(errno));
    return nullptr;
  }
  auto out = std::make_unique<ocsp_staple>();
  out->file = file;
  out->der.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (out->der.empty()) {
    *why = "the file is empty";
    return nullptr;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(out->der.data());
  std::unique_ptr<OCSP_RESPONSE, ocsp_response_free> resp{d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(out->der.size()))};
  ERR_clear_error();
  if (!resp) {
    *why = "not a DER OCSP response (convert a PEM or base64 one with `openssl base64 -d`)";
    return nullptr;
  }
  if (p != reinterpret_cast<const unsigned char*>(out->der.data()) + out->der.size()) {
    *why = "bytes after the end of the OCSP response";
    return nullptr;
  }
  if (const int status = OCSP_response_status(resp.get()); status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    *why = std::string("the responder answered \"") + OCSP_response_status_str(status) + "\", not \"successful\"";
    return nullptr;
  }
  std::unique_ptr<OCSP_BASICRESP, ocsp_basic_free> basic{OCSP_response_get1_basic(resp.get())};
  ERR_clear_error();
  if (!basic) {
    *why = "no basic OCSP response in it";
    return nullptr;
  }
  X509* leaf = cert.leaf.get();
  X509* issuer = nullptr;
  for (int i = 0; i < sk_X509_num(cert.chain.get()) && issuer == nullptr; ++i) {
    X509* candidate = sk_X509_value(cert.chain.get(), i);
    if (X509_check_issued(candidate, leaf) == X509_V_OK) issuer = candidate;
  }
  if (issuer == nullptr) {
    *why = "the issuer of the certificate (" + name_text(X509_get_issuer_name(leaf)) + ") is not in " +
           cert.info.file + ": append it after the certificate so the response can be matched";
    return nullptr;
  }
  OCSP_SINGLERESP* single = nullptr;
  for (int i = 0; i < OCSP_resp_count(basic.get()) && single == nullptr; ++i) {
    OCSP_SINGLERESP* candidate = OCSP_resp_get0(basic.get(), i);
    const OCSP_CERTID* id = OCSP_SINGLERESP_get0_id(candidate);
    ASN1_OBJECT* md_oid = nullptr;
    if (OCSP_id_get0_info(nullptr, &md_oid, nullptr, nullptr, const_cast<OCSP_CERTID*>(id)) != 1) continue;
    const EVP_MD* md = EVP_get_digestbyobj(md_oid);
    if (md == nullptr) continue;
    std::unique_ptr<OCSP_CERTID, ocsp_certid_free> mine{OCSP_cert_to_id(md, leaf, issuer)};
    if (mine && OCSP_id_cmp(mine.get(), id) == 0) single = candidate;
  }
  ERR_clear_error();
  if (single == nullptr) {
    *why = "it is not about this certificate (no response for serial " + cert.info.serial + " issued by " +
           name_text(X509_get_subject_name(issuer)) + ")";
    return nullptr;
  }
  int reason = 0;
  ASN1_GENERALIZEDTIME *revoked_at = nullptr, *this_update = nullptr, *next_update = nullptr;
  const int status = OCSP_single_get0_status(single, &reason, &revoked_at, &this_update, &next_update);
  // thisUpdate: a responder's clock may run a little ahead; nextUpdate: the same rule as each
  // handshake applies (stale the second it passes), so load and handshake agree.
  if (OCSP_check_validity(this_update, nullptr, 300, -1) != 1) {
    ERR_clear_error();
    *why = "its thisUpdate (" + time_text(to_time_t(this_update)) + ") is in the future";
    return nullptr;
  }
  out->next_update = next_update ? to_time_t(next_update) : 0;
  if (next_update && out->next_update <= std::time(nullptr)) {
    *why = "it is stale: its nextUpdate (" + time_text(out->next_update) + ") has passed";
    return nullptr;
  }
  out->cert_status = status;
  return out;
}

}  // namespace

struct tls_server_context::impl {
  asio::ssl::context ctx{asio::ssl::context::tls_server};
  std::vector<loaded_cert> certs;  ///< [0]: the default
  std::vector<tls_certificate_info> info;
  std::string service_id;
  bool client_auth = false;
  bool crl = false;

  // OCSP stapling: runs inside the handshake after SNI chose the certificate, only when the
  // client sent status_request. Staples that certificate's response while it is fresh; nothing
  // otherwise (NOACK: the handshake goes on without it). Reads only what load_ocsp built; the
  // copy is OpenSSL's to free.
  static int on_status_request(SSL* ssl, void* arg) {
    auto* self = static_cast<impl*>(arg);
    if (SSL_get_tlsext_status_type(ssl) != TLSEXT_STATUSTYPE_ocsp) return SSL_TLSEXT_ERR_NOACK;
    const X509* leaf = SSL_get_certificate(ssl);
    for (const auto& c : self->certs) {
      if (c.leaf.get() != leaf) continue;
      const ocsp_staple* staple = c.ocsp.get();
      if (staple == nullptr) return SSL_TLSEXT_ERR_NOACK;
      if (staple->next_update != 0 && staple->next_update <= std::time(nullptr)) {
        if (!staple->stale_logged.exchange(true))
          spdlog::warn("{}: OCSP response {} went stale (nextUpdate {}); no longer stapled until it is replaced",
                       self->service_id, staple->file, time_text(staple->next_update));
        return SSL_TLSEXT_ERR_NOACK;
      }
      auto* copy = static_cast<unsigned char*>(OPENSSL_malloc(staple->der.size()));
      if (copy == nullptr) return SSL_TLSEXT_ERR_NOACK;
      std::memcpy(copy, staple->der.data(), staple->der.size());
      if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, static_cast<long>(staple->der.size())) != 1) {
        OPENSSL_free(copy);
        ERR_clear_error();
        return SSL_TLSEXT_ERR_NOACK;
      }
      return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
  }

  // SNI: the first certificate whose names match the requested name serves the handshake; no
  // name, or one no certificate matches, gets the default (the first). Runs inside the handshake
  // on the worker's thread; only reads `certs`.
  static int on_servername(SSL* ssl, int*, void* arg) {
    auto* self = static_cast<impl*>(arg);
    const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == nullptr || self->certs.size() < 2) return SSL_TLSEXT_ERR_OK;
    const std::size_t len = std::strlen(name);
    for (std::size_t i = 1; i < self->certs.size(); ++i) {
      auto& c = self->certs[i];
      if (X509_check_host(c.leaf.get(), name, len, 0, nullptr) == 1) {
        // Certificates are kept per key type: without clearing, an RSA certificate chosen here
        // would sit next to an ECDSA default, and a client preferring ECDSA would get the default.
        SSL_certs_clear(ssl);
        if (SSL_use_cert_and_key(ssl, c.leaf.get(), c.key.get(), c.chain.get(), 1) != 1) ERR_clear_error();
        return SSL_TLSEXT_ERR_OK;
      }
    }
    return SSL_TLSEXT_ERR_OK;
  }
};

tls_server_context::tls_server_context(const config::tls_settings& s, const std::string& service_id)
    : impl_(std::make_unique<impl>()) {
  auto& m = *impl_;
  SSL_CTX* ctx = m.ctx.native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_SINGLE_ECDH_USE);
  SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION | SSL_OP_LEGACY_SERVER_CONNECT);
  // Idle connections give their record buffers back (about 34 KiB per connection).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) fail("cannot set the cipher list", "");
  if (SSL_CTX_set1_groups_list(ctx, groups) != 1) fail("cannot set the groups", "");
  // Resumption: a server-side session cache, no stateless tickets (SSL_OP_NO_TICKET, as Mozilla's
  // "intermediate" guideline for servers that do not rotate ticket keys, and HAProxy's
  // no-tls-tickets). TLS 1.2 then resumes by session id; TLS 1.3 still sends a ticket, but a
  // stateful one: a 32-byte id into this cache. A stateless ticket is the session serialized and
  // encrypted under a key that lives as long as this context, so whoever reads that key can
  // decrypt every ticket ever issued; a cached session is gone after the timeout or when evicted.
  // The cache is also cheaper per handshake (no i2d/d2i/i2d of the session, no AES + HMAC:
  // 120,000 instructions, 4.5% of a full ECDSA handshake, bench/tls_profile.sh). Portable tickets
  // buy nothing here: the keys were per process anyway. The SSL_CTX, and so the cache, is shared
  // by every worker (OpenSSL locks it), so a client resumes on whichever worker accepts its next
  // connection. Sessions of connections closed without close_notify stay resumable
  // (tcp_session's destructor). The session id context scopes sessions to this Service (required
  // with client certificates, or OpenSSL refuses to resume).
  const std::string sid = service_id.substr(0, SSL_MAX_SID_CTX_LENGTH);
  SSL_CTX_set_session_id_context(ctx, reinterpret_cast<const unsigned char*>(sid.data()),
                                 static_cast<unsigned>(sid.size()));
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
  // Bounded: the oldest session goes when it is full (1.3 KiB of RSS each without a client
  // certificate, so at most about 13 MiB per Service; OpenSSL's default would be 20,480). Expired ones are flushed every
  // 255 handshakes.
  SSL_CTX_sess_set_cache_size(ctx, session_cache_size);
  SSL_CTX_set_timeout(ctx, session_timeout_seconds);
  // One TLS 1.3 ticket per full handshake instead of OpenSSL's two: each is a session copy, a
  // key derivation, RAND calls and a cache entry. A resumed handshake issues a fresh ticket, so a
  // client that resumes keeps one; what is lost is a second parallel resumption from the same
  // full handshake, which then does a full one.
  SSL_CTX_set_num_tickets(ctx, 1);

  m.service_id = service_id;
  bool any_ocsp = false;
  for (const auto& c : s.certificates) {
    m.certs.push_back(load_cert(c));
    auto& loaded = m.certs.back();
    // Stapling is optional: a response that cannot be used is a warning and the certificate is
    // served without one, never refused.
    if (!c.ocsp_response_file.empty()) {
      std::string why;
      loaded.ocsp = load_ocsp(c.ocsp_response_file, loaded, &why);
      if (loaded.ocsp) {
        any_ocsp = true;
        if (loaded.ocsp->cert_status != V_OCSP_CERTSTATUS_GOOD)
          spdlog::warn("{}: OCSP response {} says the certificate {} is {}; stapled as it is", service_id,
                       c.ocsp_response_file, c.cert_file, OCSP_cert_status_str(loaded.ocsp->cert_status));
        loaded.info.ocsp_next_update = loaded.ocsp->next_update;
        spdlog::info("{}: OCSP response {} loaded for {} (stapled when clients ask; nextUpdate {})", service_id,
                     c.ocsp_response_file, c.cert_file,
                     loaded.ocsp->next_update ? time_text(loaded.ocsp->next_update) : std::string("none"));
      } else {
        spdlog::warn("{}: OCSP response {} not stapled: {}", service_id, c.ocsp_response_file, why);
      }
      loaded.info.ocsp_file = c.ocsp_response_file;
      loaded.info.ocsp_stapled = loaded.ocsp != nullptr;
    }
    m.info.push_back(loaded.info);
  }
  if (m.certs.empty()) throw std::runtime_error("no certificate");
  auto& def = m.certs.front();
  if (SSL_CTX_use_cert_and_key(ctx, def.leaf.get(), def.key.get(), def.chain.get(), 1) != 1)
    fail("cannot use the certificate", s.certificates.front().cert_file);
  SSL_CTX_set_tlsext_servername_callback(ctx, &impl::on_servername);
  SSL_CTX_set_tlsext_servername_arg(ctx, impl_.get());
  if (any_ocsp) {
    SSL_CTX_set_tlsext_status_cb(ctx, &impl::on_status_request);
    SSL_CTX_set_tlsext_status_arg(ctx, impl_.get());
  }

  if (!s.client_ca_file.empty()) {
    m.client_auth = true;
    if (SSL_CTX_load_verify_locations(ctx, s.client_ca_file.c_str(), nullptr) != 1)
      fail("cannot load client CAs from", s.client_ca_file);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(s.client_ca_file.c_str());
    if (names) SSL_CTX_set_client_CA_list(ctx, names);
    // A client without a certificate, or with one that does not verify (other CA, expired,
    // revoked, not for client authentication: OpenSSL checks the "ssl_client" purpose on a
    // server), fails the handshake; the endpoint is never contacted.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_verify_depth(ctx, 8);
    if (!s.crl_file.empty()) {
      m.crl = true;
      X509_STORE* store = SSL_CTX_get_cert_store(ctx);
      X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
      if (lookup == nullptr || X509_load_crl_file(lookup, s.crl_file.c_str(), X509_FILETYPE_PEM) <= 0)
        fail("cannot load the CRL", s.crl_file);
      X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
  }
  ERR_clear_error();
}

tls_server_context::~tls_server_context() = default;
asio::ssl::context& tls_server_context::asio() const { return impl_->ctx; }
const std::vector<tls_certificate_info>& tls_server_context::certificates() const { return impl_->info; }
bool tls_server_context::client_auth() const { return impl_->client_auth; }
bool tls_server_context::crl() const { return impl_->crl; }

struct tls_client_context::impl {
  asio::ssl::context ctx{asio::ssl::context::tls_client};
  config::upstream_tls_settings settings;
};

tls_client_context::tls_client_context(const config::upstream_tls_settings& s) : impl_(std::make_unique<impl>()) {
  auto& m = *impl_;
  m.settings = s;
  SSL_CTX* ctx = m.ctx.native_handle();
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(ctx, tls12_ciphers) != 1) fail("cannot set the cipher list", "");
  if (s.insecure_skip_verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else {
    if (!s.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, s.ca_file.c_str(), nullptr) != 1) fail("cannot load CAs from", s.ca_file);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      fail("cannot load the system trust store", "");
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  ERR_clear_error();
}

tls_client_context::~tls_client_context() = default;
asio::ssl::context& tls_client_context::asio() const { return impl_->ctx; }
const config::upstream_tls_settings& tls_client_context::settings() const { return impl_->settings; }

std::shared_ptr<const tls_server_context> tls_context_cache::server(const config::service& svc, bool* failed) {
  *failed = false;
  auto it = servers_.find(svc.id());
  if (!svc.tls.enabled()) {
    if (it != servers_.end()) servers_.erase(it);
    return nullptr;
  }
  std::vector<std::string> files;
  std::string settings = svc.tls.client_ca_file + '\0' + svc.tls.crl_file;
  for (const auto& c : svc.tls.certificates) {
    files.push_back(c.cert_file);
    files.push_back(c.key_file);
    if (!c.ocsp_response_file.empty()) files.push_back(c.ocsp_response_file);
  }
  if (!svc.tls.client_ca_file.empty()) files.push_back(svc.tls.client_ca_file);
  if (!svc.tls.crl_file.empty()) files.push_back(svc.tls.crl_file);
  auto fp = fingerprint_of(files, settings);
  if (it != servers_.end() && it->second.fingerprint == fp) return it->second.ctx;
  try {
    auto ctx = std::make_shared<const tls_server_context>(svc.tls, svc.id());
    if (it != servers_.end()) {
      const auto& c = ctx->certificates().front();
      spdlog::info("{}: TLS certificate loaded: {} subject=\"{}\" serial={} (new handshakes use it; open "
                   "connections keep theirs)", svc.id(), c.file, c.subject, c.serial);
    }
    servers_[svc.id()] = {std::move(fp), ctx};
    return ctx;
  } catch (const std::exception& e) {
    *failed = true;
    spdlog::error("{}: TLS certificate refused: {}; {}", svc.id(), e.what(),
                  it != servers_.end() ? "keeping the previous certificate" : "the port is not served");
    ERR_clear_error();
    return it != servers_.end() ? it->second.ctx : nullptr;
  }
}

std::shared_ptr<const tls_client_context> tls_context_cache::client(const config::service& svc, bool* failed) {
  *failed = false;
  auto it = clients_.find(svc.id());
  if (!svc.upstream_tls.enabled) {
    if (it != clients_.end()) clients_.erase(it);
    return nullptr;
  }
  const auto& u = svc.upstream_tls;
  std::vector<std::string> files;
  if (!u.ca_file.empty()) files.push_back(u.ca_file);
  auto fp = fingerprint_of(files, u.server_name + '\0' + (u.insecure_skip_verify ? "1" : "0") + '\0' + u.ca_file);
  if (it != clients_.end() && it->second.fingerprint == fp) return it->second.ctx;
  try {
    auto ctx = std::make_shared<const tls_client_context>(u);
    clients_[svc.id()] = {std::move(fp), ctx};
    return ctx;
  } catch (const std::exception& e) {
    *failed = true;
    spdlog::error("{}: upstream TLS refused: {}; {}", svc.id(), e.what(),
                  it != clients_.end() ? "keeping the previous settings" : "the port is not served");
    ERR_clear_error();
    return it != clients_.end() ? it->second.ctx : nullptr;
  }
}

}  // namespace npp::proxy
