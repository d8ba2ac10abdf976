// Addresses, host:port pairs and CIDR blocks (config/ip.hpp): the parsers behind endpoint
// addresses, allowSourceRanges, --allow-source-ranges and the nodeport-proxy.io/allow-source-ranges
// annotation. Checks: an accepted text is made only of address characters, what str() prints
// parses back to the same value, and cidr::contains() agrees with a bit-by-bit reference.
#include <algorithm>
#include <cstring>
#include <string>

#include "config/ip.hpp"
#include "fuzz/fuzz_support.hpp"

using npp::config::cidr;
using npp::config::host_port;
using npp::config::ip_address;

namespace {

bool only(std::string_view text, std::string_view allowed) {
  return text.find_first_not_of(allowed) == std::string_view::npos;
}
constexpr std::string_view address_chars = "0123456789abcdefABCDEF.:";

/// The reference: the first `prefix` bits of a and b are equal (IPv4-mapped a matched as IPv4).
bool reference_contains(const cidr& c, const ip_address& addr) {
  ip_address a = addr;
  if (a.v6 && std::memcmp(a.bytes.data(), "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
    a.v6 = false;
    std::memmove(a.bytes.data(), a.bytes.data() + 12, 4);
    std::memset(a.bytes.data() + 4, 0, 12);
  }
  if (a.v6 != c.network.v6) return false;
  for (int bit = 0; bit < c.prefix; ++bit) {
    const int mask = 0x80 >> (bit % 8);
    if ((a.bytes[bit / 8] & mask) != (c.network.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

void check_ip(std::string_view text) {
  auto ip = ip_address::parse(text);
  if (!ip) return;
  FUZZ_CHECK(only(text, address_chars), "accepted an address with other bytes (%zu bytes)", text.size());
  auto again = ip_address::parse(ip->str());
  FUZZ_CHECK(again && *again == *ip, "%s does not parse back", ip->str().c_str());
  if (!ip->v6) FUZZ_CHECK(std::all_of(ip->bytes.begin() + 4, ip->bytes.end(), [](auto b) { return b == 0; }),
                          "IPv4 address with bytes past the fourth");
}

void check_host_port(std::string_view text) {
  auto hp = host_port::parse(text);
  if (!hp) return;
  FUZZ_CHECK(hp->port != 0, "port 0 accepted");
  FUZZ_CHECK(only(text, "0123456789abcdefABCDEF.:[]"), "accepted a host:port with other bytes");
  auto again = host_port::parse(hp->str());
  FUZZ_CHECK(again && *again == *hp, "%s does not parse back", hp->str().c_str());
}

void check_cidr(std::string_view text) {
  std::string error;
  auto c = cidr::parse(text, &error);
  if (!c) {
    FUZZ_CHECK(!error.empty(), "refused without a reason");
    return;
  }
  FUZZ_CHECK(only(text, "0123456789abcdefABCDEF.:/"), "accepted a CIDR with other bytes");
  FUZZ_CHECK(c->prefix >= 0 && c->prefix <= (c->network.v6 ? 128 : 32), "prefix %d", c->prefix);
  auto again = cidr::parse(c->str());
  FUZZ_CHECK(again && *again == *c, "%s does not parse back", c->str().c_str());
  std::string range_error;
  auto range = npp::config::parse_source_range(text, &range_error);
  FUZZ_CHECK(range || !range_error.empty(), "source range refused without a reason");
  if (!range) return;
  FUZZ_CHECK(*range == *c, "parse_source_range differs from cidr::parse");
  // (An IPv4-mapped block, which parse_source_range refuses, contains nothing: clients are
  // matched unmapped.)
  FUZZ_CHECK(c->contains(c->network), "%s does not contain its network", c->str().c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = npp::fuzz::as_text(data, size);
  check_ip(text);
  check_host_port(text);
  check_cidr(text);
  // Structured half: the first 34 bytes as a block (family, 16 address bytes, prefix) and an
  // address (family, 16 bytes); contains() must agree with the reference bit by bit.
  if (size >= 35) {
    ip_address net, addr;
    net.v6 = data[0] & 1;
    addr.v6 = data[17] & 1;
    std::memcpy(net.bytes.data(), data + 1, net.v6 ? 16 : 4);
    std::memcpy(addr.bytes.data(), data + 18, addr.v6 ? 16 : 4);
    const int max = net.v6 ? 128 : 32;
    const int prefix = data[34] % (max + 1);
    for (int bit = prefix; bit < max; ++bit) net.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80 >> (bit % 8)));
    auto c = cidr::parse(net.str() + "/" + std::to_string(prefix));
    FUZZ_CHECK(c && c->network == net && c->prefix == prefix, "%s/%d does not parse", net.str().c_str(), prefix);
    FUZZ_CHECK(c->contains(addr) == reference_contains(*c, addr), "%s contains %s: %d", c->str().c_str(),
               addr.str().c_str(), c->contains(addr));
  }
  return 0;
}
