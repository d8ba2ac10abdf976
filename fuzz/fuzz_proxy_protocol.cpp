// The PROXY protocol header writer (proxy/proxy_protocol.hpp), round trip: random addresses and
// ports (IPv4, IPv6, IPv4-mapped, mixed families) are written as v1 and v2, then read back by a
// small reference parser written from HAProxy's proxy-protocol.txt, independent of the writer,
// and compared with what the header must announce.
#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.hpp"
#include "proxy/proxy_protocol.hpp"

using npp::config::host_port;
using npp::config::ip_address;

namespace {

/// What a receiver learns from a header.
struct announced {
  bool v6 = false;
  std::array<std::uint8_t, 16> src{}, dst{};  // IPv4: first 4 bytes
  std::uint16_t sport = 0, dport = 0;
};

/// Reads one decimal port as the spec writes it: 1-5 digits, no leading zero (unless "0").
bool read_port(const std::string& s, std::uint16_t& out) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return false;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

/// v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n", at most 107 bytes, single spaces.
bool parse_v1(const std::string& h, announced& out) {
  if (h.size() > 107 || h.size() < 8 || h.compare(h.size() - 2, 2, "\r\n") != 0) return false;
  std::vector<std::string> f(1);
  for (char c : h.substr(0, h.size() - 2)) {
    if (c == '\r' || c == '\n') return false;
    if (c == ' ')
      f.emplace_back();
    else
      f.back() += c;
  }
  if (f.size() != 6 || f[0] != "PROXY" || (f[1] != "TCP4" && f[1] != "TCP6")) return false;
  out.v6 = f[1] == "TCP6";
  const int af = out.v6 ? AF_INET6 : AF_INET;
  if (inet_pton(af, f[2].c_str(), out.src.data()) != 1 || inet_pton(af, f[3].c_str(), out.dst.data()) != 1) return false;
  return read_port(f[4], out.sport) && read_port(f[5], out.dport);
}

/// v2: signature, 0x21, 0x11 (TCP4) or 0x21 (TCP6), length, addresses, ports; exact size.
bool parse_v2(const std::string& h, announced& out) {
  static const char sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};
  if (h.size() < 16 || std::memcmp(h.data(), sig, 12) != 0) return false;
  const auto* b = reinterpret_cast<const std::uint8_t*>(h.data());
  if (b[12] != 0x21) return false;
  if (b[13] != 0x11 && b[13] != 0x21) return false;
  out.v6 = b[13] == 0x21;
  const std::size_t len = (std::size_t{b[14]} << 8) | b[15];
  const std::size_t a = out.v6 ? 16 : 4;
  if (len != 2 * a + 4 || h.size() != 16 + len) return false;
  std::memcpy(out.src.data(), b + 16, a);
  std::memcpy(out.dst.data(), b + 16 + a, a);
  out.sport = static_cast<std::uint16_t>((b[16 + 2 * a] << 8) | b[17 + 2 * a]);
  out.dport = static_cast<std::uint16_t>((b[18 + 2 * a] << 8) | b[19 + 2 * a]);
  return true;
}

/// The reference's view of what must be announced: an IPv4-mapped address is IPv4; if either
/// end is then IPv6, both are announced as IPv6 (IPv4 written mapped).
announced expected(const host_port& client, const host_port& local) {
  auto is_mapped = [](const ip_address& ip) {
    return ip.v6 && std::memcmp(ip.bytes.data(), "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0;
  };
  auto family_v6 = [&](const ip_address& ip) { return ip.v6 && !is_mapped(ip); };
  announced e;
  e.v6 = family_v6(client.ip) || family_v6(local.ip);
  auto fill = [&](const ip_address& ip, std::array<std::uint8_t, 16>& out) {
    const std::uint8_t* v4 = ip.v6 ? ip.bytes.data() + 12 : ip.bytes.data();  // valid when not family_v6
    if (family_v6(ip)) {
      out = ip.bytes;
    } else if (e.v6) {
      out[10] = out[11] = 0xff;
      std::memcpy(out.data() + 12, v4, 4);
    } else {
      std::memcpy(out.data(), v4, 4);
    }
  };
  fill(client.ip, e.src);
  fill(local.ip, e.dst);
  e.sport = client.port;
  e.dport = local.port;
  return e;
}

/// An address from 17 bytes: a family byte (0: IPv4, 1: IPv6, 2: IPv4-mapped IPv6) and bytes.
ip_address address(const std::uint8_t* p) {
  ip_address ip;
  switch (p[0] % 3) {
    case 0: std::memcpy(ip.bytes.data(), p + 1, 4); break;
    case 1: ip.v6 = true; std::memcpy(ip.bytes.data(), p + 1, 16); break;
    default: ip.v6 = true; ip.bytes[10] = ip.bytes[11] = 0xff; std::memcpy(ip.bytes.data() + 12, p + 1, 4); break;
  }
  return ip;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 38) return 0;
  const host_port client{address(data), static_cast<std::uint16_t>((data[17] << 8) | data[18])};
  const host_port local{address(data + 19), static_cast<std::uint16_t>((data[36] << 8) | data[37])};
  const announced want = expected(client, local);
  const std::string v1 = npp::proxy::proxy_protocol_header(npp::config::proxy_protocol_version::v1, client, local);
  const std::string v2 = npp::proxy::proxy_protocol_header(npp::config::proxy_protocol_version::v2, client, local);
  FUZZ_CHECK(npp::proxy::proxy_protocol_header(npp::config::proxy_protocol_version::off, client, local).empty(),
             "off writes a header");
  for (const auto* header : {&v1, &v2}) {
    announced got;
    const bool ok = header == &v1 ? parse_v1(*header, got) : parse_v2(*header, got);
    FUZZ_CHECK(ok, "the reference cannot parse the %s header (%zu bytes)", header == &v1 ? "v1" : "v2", header->size());
    FUZZ_CHECK(got.v6 == want.v6 && got.src == want.src && got.dst == want.dst && got.sport == want.sport &&
                   got.dport == want.dport,
               "%s header announces something else", header == &v1 ? "v1" : "v2");
  }
  return 0;
}
