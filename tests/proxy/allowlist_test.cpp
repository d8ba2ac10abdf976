// Source allowlists (proxy/allowlist.hpp): any-match over CIDR blocks, empty allows all, and the
// IPv4-mapped / IPv4-compatible / 6to4 policy written down in the header.
#include <doctest/doctest.h>

#include "proxy/allowlist.hpp"

using namespace npp;

namespace {
proxy::allowlist list(std::initializer_list<const char*> blocks) {
  std::vector<config::cidr> out;
  for (const char* b : blocks) {
    auto c = config::parse_source_range(b);
    REQUIRE_MESSAGE(c, b);
    out.push_back(*c);
  }
  return proxy::allowlist(std::move(out));
}
config::ip_address ip(const char* text) {
  auto a = config::ip_address::parse(text);
  REQUIRE_MESSAGE(a, text);
  return *a;
}
}  // namespace

TEST_CASE("an empty allowlist allows every source") {
  proxy::allowlist empty;
  CHECK(empty.empty());
  CHECK(empty.allows(ip("203.0.113.9")));
  CHECK(empty.allows(ip("2001:db8::9")));
}

TEST_CASE("a source passes if any block contains it and overlapping blocks change nothing") {
  auto l = list({"10.0.0.0/8", "10.1.0.0/16", "127.0.0.1/32", "2001:db8::/32"});
  CHECK(l.allows(ip("10.200.0.1")));
  CHECK(l.allows(ip("10.1.2.3")));
  CHECK(l.allows(ip("127.0.0.1")));
  CHECK_FALSE(l.allows(ip("127.0.0.2")));
  CHECK_FALSE(l.allows(ip("11.0.0.1")));
  CHECK(l.allows(ip("2001:db8:ffff::1")));
  CHECK_FALSE(l.allows(ip("2001:db9::1")));
}

TEST_CASE("IPv4-mapped sources are matched against IPv4 blocks only") {
  auto v4 = list({"127.0.0.1/32"});
  CHECK(v4.allows(ip("::ffff:127.0.0.1")));
  CHECK_FALSE(v4.allows(ip("::ffff:127.0.0.2")));
  // ::/0 is every IPv6 source, but an IPv4 client on a dual-stack socket is IPv4.
  auto all_v6 = list({"::/0"});
  CHECK(all_v6.allows(ip("2001:db8::1")));
  CHECK_FALSE(all_v6.allows(ip("::ffff:127.0.0.1")));
  CHECK_FALSE(all_v6.allows(ip("127.0.0.1")));
}

TEST_CASE("IPv4-compatible and 6to4 sources are IPv6 and never pass an IPv4 rule") {
  auto v4 = list({"127.0.0.2/32", "10.0.0.0/8"});
  CHECK_FALSE(v4.allows(ip("::127.0.0.2")));
  CHECK_FALSE(v4.allows(ip("::10.0.0.1")));
  CHECK_FALSE(v4.allows(ip("2002:7f00:2::1")));  // 6to4 of 127.0.0.2
  CHECK_FALSE(v4.allows(ip("2002:a00:1::1")));   // 6to4 of 10.0.0.1
  // They pass IPv6 rules that contain them, like any IPv6 address.
  CHECK(list({"2002::/16"}).allows(ip("2002:a00:1::1")));
  CHECK(list({"::/96"}).allows(ip("::10.0.0.1")));
}
