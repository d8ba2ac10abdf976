// PROXY protocol headers (proxy/proxy_protocol.hpp), byte for byte against HAProxy's
// proxy-protocol.txt: section 2.1 (v1 text) and 2.2 (v2 binary).
#include <doctest/doctest.h>

#include <string>

#include "proxy/proxy_protocol.hpp"

using namespace npp;
using config::proxy_protocol_version;

namespace {

config::host_port hp(const char* text) {
  auto parsed = config::host_port::parse(text);
  REQUIRE_MESSAGE(parsed, text);
  return *parsed;
}

// An IPv6 host_port from a literal without brackets (host_port::parse wants IPv4-mapped
// addresses in brackets too, which is what a dual-stack socket reports).
config::host_port hp6(const char* ip, std::uint16_t port) {
  auto parsed = config::ip_address::parse(ip);
  REQUIRE_MESSAGE(parsed, ip);
  return {*parsed, port};
}

std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) out.push_back(static_cast<char>(b));
  return out;
}

const std::string signature = bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A});

}  // namespace

TEST_CASE("v1 for an IPv4 client is the spec's TCP4 line") {
  CHECK(proxy::proxy_protocol_header(proxy_protocol_version::v1, hp("192.168.0.1:56324"), hp("192.168.0.11:443")) ==
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
}

TEST_CASE("v1 for an IPv6 client is a TCP6 line with addresses as inet_ntop prints them") {
  CHECK(proxy::proxy_protocol_header(proxy_protocol_version::v1, hp("[2001:DB8:0:0::1]:40000"), hp("[::1]:30080")) ==
        "PROXY TCP6 2001:db8::1 ::1 40000 30080\r\n");
  // The longest possible v1 header fits the spec's 107-byte bound.
  const auto longest = proxy::proxy_protocol_header(proxy_protocol_version::v1,
                                                    hp("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"),
                                                    hp("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"));
  CHECK(longest.size() == 104);
  CHECK(longest.size() <= 107);
}

TEST_CASE("an IPv4 client of a dual-stack socket is announced as TCP4 with both ends unmapped") {
  const auto client = hp6("::ffff:127.0.0.2", 51000);
  const auto local = hp6("::ffff:127.0.0.1", 30080);
  CHECK(proxy::proxy_protocol_header(proxy_protocol_version::v1, client, local) ==
        "PROXY TCP4 127.0.0.2 127.0.0.1 51000 30080\r\n");
  CHECK(proxy::proxy_protocol_header(proxy_protocol_version::v2, client, local) ==
        signature + bytes({0x21, 0x11, 0x00, 0x0C, 127, 0, 0, 2, 127, 0, 0, 1, 0xC7, 0x38, 0x75, 0x80}));
}

TEST_CASE("v2 for an IPv4 client: signature, PROXY command, AF_INET STREAM, 12 address bytes") {
  const auto h = proxy::proxy_protocol_header(proxy_protocol_version::v2, hp("10.1.2.3:1234"), hp("192.168.0.11:443"));
  CHECK(h == signature + bytes({0x21, 0x11, 0x00, 0x0C,     // version 2 PROXY, TCP over IPv4, length 12
                                10, 1, 2, 3, 192, 168, 0, 11,  // source, destination
                                0x04, 0xD2, 0x01, 0xBB}));     // 1234, 443
  CHECK(h.size() == 16 + 12);
}

TEST_CASE("v2 for an IPv6 client: AF_INET6 STREAM and 36 address bytes") {
  const auto h = proxy::proxy_protocol_header(proxy_protocol_version::v2, hp("[2001:db8::1]:65535"), hp("[::1]:1"));
  std::string want = signature + bytes({0x21, 0x21, 0x00, 0x24});
  want += bytes({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01});  // 2001:db8::1
  want += bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01});              // ::1
  want += bytes({0xFF, 0xFF, 0x00, 0x01});                                        // 65535, 1
  CHECK(h == want);
  CHECK(h.size() == 16 + 36);
}

TEST_CASE("mixed families are written as IPv6 with the IPv4 end mapped") {
  // Cannot happen from one socket (both ends share its family), but the header must stay
  // well-formed if it ever did.
  CHECK(proxy::proxy_protocol_header(proxy_protocol_version::v1, hp("10.0.0.1:1000"), hp("[2001:db8::2]:80")) ==
        "PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 1000 80\r\n");
  const auto h = proxy::proxy_protocol_header(proxy_protocol_version::v2, hp("10.0.0.1:1000"), hp("[2001:db8::2]:80"));
  REQUIRE(h.size() == 52);
  CHECK(h[13] == 0x21);
  CHECK(h.substr(16, 16) == bytes({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1}));
}

TEST_CASE("off writes nothing") {
  CHECK(proxy::proxy_protocol_header(proxy_protocol_version::off, hp("10.0.0.1:1"), hp("10.0.0.2:2")).empty());
}
