#include <doctest/doctest.h>

#include "config/ip.hpp"

using namespace npp::config;

TEST_CASE("IPv4 and IPv6 literals parse and print canonically") {
  auto v4 = ip_address::parse("10.0.0.1");
  REQUIRE(v4);
  CHECK_FALSE(v4->v6);
  CHECK(v4->str() == "10.0.0.1");
  auto v6 = ip_address::parse("2001:DB8:0:0::1");
  REQUIRE(v6);
  CHECK(v6->v6);
  CHECK(v6->str() == "2001:db8::1");
}

TEST_CASE("malformed addresses, names, brackets and zone ids are not IP literals") {
  for (const char* bad : {"", "300.1.1.1", "1.2.3", "1.2.3.4.5", "localhost", "[::1]", "fe80::1%eth0", " 1.2.3.4",
                          "1.2.3.4 ", "::1::2", "01234567890123456789012345678901234567890123456789"})
    CHECK_MESSAGE(!ip_address::parse(bad), bad);
}

TEST_CASE("a NUL byte inside an address is refused, not read as the end of it") {
  using namespace std::string_literals;
  CHECK_FALSE(ip_address::parse("10.0.0.1\0junk"s));
  CHECK_FALSE(ip_address::parse("::1\0"s));
  CHECK_FALSE(host_port::parse("10.0.0.1\0:80"s));
  CHECK_FALSE(cidr::parse("::ffff:0:0\0\0/96"s));
  CHECK_FALSE(cidr::parse("10.0.0.0\0/8"s));
}

TEST_CASE("a CIDR prefix length is digits only") {
  for (const char* bad : {"::/-0", "0.0.0.0/-0", "10.0.0.0/+8", "10.0.0.0/ 8", "10.0.0.0/8 ", "10.0.0.0/"})
    CHECK_MESSAGE(!cidr::parse(bad), bad);
  CHECK(cidr::parse("0.0.0.0/0"));
}

TEST_CASE("address classes: unspecified, multicast, loopback, v4-mapped") {
  CHECK(ip_address::parse("0.0.0.0")->is_unspecified());
  CHECK(ip_address::parse("::")->is_unspecified());
  CHECK(ip_address::parse("224.0.0.1")->is_multicast());
  CHECK(ip_address::parse("239.255.255.255")->is_multicast());
  CHECK_FALSE(ip_address::parse("223.255.255.255")->is_multicast());
  CHECK(ip_address::parse("ff02::1")->is_multicast());
  CHECK(ip_address::parse("127.0.0.2")->is_loopback());
  CHECK(ip_address::parse("::1")->is_loopback());
  CHECK_FALSE(ip_address::parse("::2")->is_loopback());
  auto mapped = ip_address::parse("::ffff:10.1.2.3");
  REQUIRE(mapped);
  CHECK(mapped->is_v4_mapped());
  CHECK(mapped->unmapped() == *ip_address::parse("10.1.2.3"));
  CHECK(ip_address::parse("10.1.2.3")->unmapped() == *ip_address::parse("10.1.2.3"));
}

TEST_CASE("host:port accepts IPv4 and bracketed IPv6 with ports 1-65535") {
  auto a = host_port::parse("10.0.0.5:8080");
  REQUIRE(a);
  CHECK(a->port == 8080);
  CHECK(a->str() == "10.0.0.5:8080");
  auto b = host_port::parse("[::1]:8083");
  REQUIRE(b);
  CHECK(b->ip.v6);
  CHECK(b->str() == "[::1]:8083");
  CHECK(host_port::parse("1.2.3.4:65535")->port == 65535);
  CHECK(host_port::parse("1.2.3.4:1")->port == 1);
}

TEST_CASE("host:port rejects port 0, 65536, missing ports, IPv6 without brackets and names") {
  for (const char* bad : {"1.2.3.4:0", "1.2.3.4:65536", "1.2.3.4", "1.2.3.4:", "[::1]", "[::1]:", "::1:80",
                          "fe80::1:80", "[1.2.3.4]:80", "localhost:80", "1.2.3.4:-1", "1.2.3.4:+80", "1.2.3.4:8o",
                          "[::1]80", "[::1:80", "1.2.3.4:100000", ""})
    CHECK_MESSAGE(!host_port::parse(bad), bad);
}

TEST_CASE("CIDR blocks parse with prefix limits and clean host bits") {
  auto c = cidr::parse("10.0.0.0/8");
  REQUIRE(c);
  CHECK(c->prefix == 8);
  CHECK(c->str() == "10.0.0.0/8");
  CHECK(cidr::parse("::/0"));
  CHECK(cidr::parse("0.0.0.0/0"));
  CHECK(cidr::parse("10.1.2.3")->prefix == 32);
  CHECK(cidr::parse("2001:db8::1")->prefix == 128);
  CHECK(cidr::parse("2001:db8::/32"));

  std::string error;
  CHECK_FALSE(cidr::parse("10.0.0.0/33", &error));
  CHECK(error == "prefix length must be 0-32");
  CHECK_FALSE(cidr::parse("::/129", &error));
  CHECK(error == "prefix length must be 0-128");
  CHECK_FALSE(cidr::parse("10.0.0.1/8", &error));
  CHECK(error.find("host bits") != std::string::npos);
  CHECK_FALSE(cidr::parse("300.1.1.1/8", &error));
  CHECK(error == "not an IP address");
  CHECK_FALSE(cidr::parse("10.0.0.0/", &error));
  CHECK_FALSE(cidr::parse("10.0.0.0/x", &error));
  CHECK_FALSE(cidr::parse("10.0.0.0/-1", &error));
}

TEST_CASE("CIDR containment respects the prefix, the family and v4-mapped addresses") {
  auto net = *cidr::parse("192.168.0.0/16");
  CHECK(net.contains(*ip_address::parse("192.168.255.1")));
  CHECK_FALSE(net.contains(*ip_address::parse("192.169.0.1")));
  CHECK(net.contains(*ip_address::parse("::ffff:192.168.1.1")));
  CHECK_FALSE(net.contains(*ip_address::parse("2001:db8::1")));
  auto odd = *cidr::parse("10.0.0.0/9");
  CHECK(odd.contains(*ip_address::parse("10.127.0.1")));
  CHECK_FALSE(odd.contains(*ip_address::parse("10.128.0.1")));
  CHECK(cidr::parse("::/0")->contains(*ip_address::parse("2001:db8::1")));
  CHECK_FALSE(cidr::parse("::/0")->contains(*ip_address::parse("1.2.3.4")));
  CHECK(cidr::parse("0.0.0.0/0")->contains(*ip_address::parse("1.2.3.4")));
}
