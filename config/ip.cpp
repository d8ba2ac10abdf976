#include "config/ip.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace npp::config {

std::optional<ip_address> ip_address::parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  // inet_pton reads a C string: a NUL inside the text would end it early, and "10.0.0.1\0junk"
  // (a JSON "\u0000" or a YAML "\0") would pass as 10.0.0.1.
  if (std::memchr(text.data(), '\0', text.size()) != nullptr) return std::nullopt;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ip_address a;
  if (::inet_pton(AF_INET, buf, a.bytes.data()) == 1) return a;
  if (::inet_pton(AF_INET6, buf, a.bytes.data()) == 1) {
    a.v6 = true;
    return a;
  }
  return std::nullopt;
}

std::string ip_address::str() const {
  char buf[INET6_ADDRSTRLEN];
  if (::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof buf) == nullptr) return "?";
  return buf;
}

bool ip_address::is_v4_mapped() const {
  if (!v6) return false;
  for (int i = 0; i < 10; ++i)
    if (bytes[i] != 0) return false;
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

ip_address ip_address::unmapped() const {
  if (!is_v4_mapped()) return *this;
  ip_address a;
  std::memcpy(a.bytes.data(), bytes.data() + 12, 4);
  return a;
}

bool ip_address::is_unspecified() const {
  const int n = v6 ? 16 : 4;
  for (int i = 0; i < n; ++i)
    if (bytes[i] != 0) return false;
  return true;
}

bool ip_address::is_multicast() const { return v6 ? bytes[0] == 0xff : (bytes[0] & 0xf0) == 0xe0; }

bool ip_address::is_loopback() const {
  if (!v6) return bytes[0] == 127;
  for (int i = 0; i < 15; ++i)
    if (bytes[i] != 0) return false;
  return bytes[15] == 1;
}

static std::optional<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v == 0 || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

std::optional<host_port> host_port::parse(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    auto ip = ip_address::parse(host);
    if (!ip || !ip->v6) return std::nullopt;
    auto p = parse_port(port);
    if (!p) return std::nullopt;
    return host_port{*ip, *p};
  }
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  host = text.substr(0, colon);
  port = text.substr(colon + 1);
  auto ip = ip_address::parse(host);
  if (!ip || ip->v6) return std::nullopt;  // IPv6 needs brackets
  auto p = parse_port(port);
  if (!p) return std::nullopt;
  return host_port{*ip, *p};
}

std::string host_port::str() const {
  return ip.v6 ? "[" + ip.str() + "]:" + std::to_string(port) : ip.str() + ":" + std::to_string(port);
}

std::optional<cidr> cidr::parse(std::string_view text, std::string* error) {
  auto fail = [&](const char* why) -> std::optional<cidr> {
    if (error) *error = why;
    return std::nullopt;
  };
  auto slash = text.find('/');
  auto ip = ip_address::parse(text.substr(0, slash));
  if (!ip) return fail("not an IP address");
  const int max = ip->v6 ? 128 : 32;
  int prefix = max;
  if (slash != std::string_view::npos) {
    auto ps = text.substr(slash + 1);
    // Digits only: from_chars would also take "-0" as 0, making "0.0.0.0/-0" mean every address.
    if (ps.empty() || ps.size() > 3 || ps.find_first_not_of("0123456789") != std::string_view::npos)
      return fail("invalid prefix length");
    auto [p, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), prefix);
    if (ec != std::errc{} || p != ps.data() + ps.size()) return fail("invalid prefix length");
    if (prefix < 0 || prefix > max) return fail(ip->v6 ? "prefix length must be 0-128" : "prefix length must be 0-32");
  }
  cidr c{*ip, prefix};
  const int n = max / 8;
  for (int i = 0; i < n; ++i) {
    int bits_kept = std::min(8, std::max(0, prefix - i * 8));
    std::uint8_t mask = bits_kept == 0 ? 0 : static_cast<std::uint8_t>(0xff << (8 - bits_kept));
    if ((ip->bytes[i] & ~mask) != 0) return fail("host bits set below the prefix length (write the network address)");
  }
  return c;
}

bool cidr::contains(const ip_address& addr_in) const {
  ip_address addr = addr_in.unmapped();
  if (addr.v6 != network.v6) return false;
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(addr.bytes.data(), network.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (addr.bytes[full] & mask) == (network.bytes[full] & mask);
}

std::optional<cidr> parse_source_range(std::string_view text, std::string* error) {
  auto c = cidr::parse(text, error);
  if (!c) return c;
  if (c->prefix >= 96 && c->network.is_v4_mapped()) {
    if (error) {
      cidr v4{c->network.unmapped(), c->prefix - 96};
      *error = "an IPv4-mapped block never matches (IPv4 clients are matched as IPv4, also on dual-stack sockets): "
               "write " + v4.str();
    }
    return std::nullopt;
  }
  return c;
}

std::string cidr::str() const { return network.str() + "/" + std::to_string(prefix); }

}  // namespace npp::config
