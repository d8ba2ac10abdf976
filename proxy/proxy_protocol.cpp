#include "proxy/proxy_protocol.hpp"

#include <cstring>

namespace npp::proxy {

namespace {

/// The v2 signature: chosen by the spec so it can never start a valid v1 header or HTTP request.
constexpr char v2_signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
constexpr unsigned char v2_version_proxy = 0x21;  ///< high nibble: version 2; low nibble: PROXY
constexpr unsigned char v2_tcp4 = 0x11;           ///< AF_INET, SOCK_STREAM
constexpr unsigned char v2_tcp6 = 0x21;           ///< AF_INET6, SOCK_STREAM

/// ::ffff:a.b.c.d for an IPv4 address (IPv6 unchanged).
config::ip_address mapped(const config::ip_address& a) {
  if (a.v6) return a;
  config::ip_address out;
  out.v6 = true;
  out.bytes[10] = 0xff;
  out.bytes[11] = 0xff;
  std::memcpy(out.bytes.data() + 12, a.bytes.data(), 4);
  return out;
}

void put16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}

}  // namespace

std::string proxy_protocol_header(config::proxy_protocol_version version, const config::host_port& client,
                                  const config::host_port& local) {
  if (version == config::proxy_protocol_version::off) return {};
  config::ip_address src = client.ip.unmapped(), dst = local.ip.unmapped();
  const bool v6 = src.v6 || dst.v6;
  if (v6) {
    src = mapped(src);
    dst = mapped(dst);
  }
  if (version == config::proxy_protocol_version::v1) {
    return std::string("PROXY ") + (v6 ? "TCP6 " : "TCP4 ") + src.str() + " " + dst.str() + " " +
           std::to_string(client.port) + " " + std::to_string(local.port) + "\r\n";
  }
  const std::size_t address_bytes = v6 ? 16 : 4;
  std::string out(v2_signature, sizeof v2_signature);
  out.push_back(static_cast<char>(v2_version_proxy));
  out.push_back(static_cast<char>(v6 ? v2_tcp6 : v2_tcp4));
  put16(out, static_cast<std::uint16_t>(2 * address_bytes + 4));
  out.append(reinterpret_cast<const char*>(src.bytes.data()), address_bytes);
  out.append(reinterpret_cast<const char*>(dst.bytes.data()), address_bytes);
  put16(out, client.port);
  put16(out, local.port);
  return out;
}

}  // namespace npp::proxy
