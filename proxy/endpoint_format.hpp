#pragma once
// Conversions between config addresses and Asio endpoints, and log formatting that shows
// IPv4 clients of a dual-stack listener (::ffff:a.b.c.d) as plain IPv4.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <string>

#include "config/ip.hpp"

namespace npp::proxy {

inline boost::asio::ip::address to_asio(const config::ip_address& ip) {
  if (ip.v6) return boost::asio::ip::address_v6(ip.bytes);
  return boost::asio::ip::address_v4({ip.bytes[0], ip.bytes[1], ip.bytes[2], ip.bytes[3]});
}

/// The address with IPv4-mapped IPv6 (::ffff:a.b.c.d) turned into IPv4.
inline boost::asio::ip::address unmapped(const boost::asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  return a;
}

/// An Asio address as a config address (IPv4-mapped IPv6 becomes IPv4).
inline config::ip_address from_asio(const boost::asio::ip::address& in) {
  auto a = unmapped(in);
  config::ip_address out;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
  } else {
    out.v6 = true;
    out.bytes = a.to_v6().to_bytes();
  }
  return out;
}

/// "a.b.c.d:P" or "[v6]:P", IPv4-mapped shown as IPv4.
template <class Endpoint>
std::string format_endpoint(const Endpoint& ep) {
  auto a = unmapped(ep.address());
  return a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(ep.port()) : a.to_string() + ":" + std::to_string(ep.port());
}

}  // namespace npp::proxy
