#pragma once
// IP addresses, host:port pairs and CIDR blocks as plain values (no socket code).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace npp::config {

/// An IPv4 or IPv6 address in network byte order. IPv4 uses the first 4 bytes.
struct ip_address {
  bool v6 = false;                       ///< true for IPv6
  std::array<std::uint8_t, 16> bytes{};  ///< address bytes, network order

  /// Parses a literal ("10.0.0.1", "::1", "fe80::1"); no brackets, no zone ids, no names.
  static std::optional<ip_address> parse(std::string_view text);
  /// Canonical text form (inet_ntop).
  std::string str() const;
  /// True for ::ffff:a.b.c.d.
  bool is_v4_mapped() const;
  /// ::ffff:a.b.c.d -> a.b.c.d; other addresses unchanged.
  ip_address unmapped() const;
  bool is_unspecified() const;  ///< 0.0.0.0 or ::
  bool is_multicast() const;    ///< 224.0.0.0/4 or ff00::/8
  bool is_loopback() const;     ///< 127.0.0.0/8 or ::1
  friend bool operator==(const ip_address&, const ip_address&) = default;
  friend auto operator<=>(const ip_address&, const ip_address&) = default;
};

/// An address and a TCP/UDP port, e.g. "10.0.0.5:8080" or "[::1]:8083".
struct host_port {
  ip_address ip;
  std::uint16_t port = 0;

  /// Parses "a.b.c.d:P" or "[v6]:P" with 1 <= P <= 65535. Returns nullopt on anything else.
  static std::optional<host_port> parse(std::string_view text);
  /// "a.b.c.d:P" or "[v6]:P".
  std::string str() const;
  friend bool operator==(const host_port&, const host_port&) = default;
  friend auto operator<=>(const host_port&, const host_port&) = default;
};

/// A CIDR block such as 10.0.0.0/8 or 2001:db8::/32.
struct cidr {
  ip_address network;  ///< with host bits cleared
  int prefix = 0;      ///< 0..32 or 0..128

  /// Parses "a.b.c.d/N", "v6/N", or a bare address (as /32 or /128). Host bits set below the
  /// prefix are rejected (error text in *error), as are /33 on IPv4 and out-of-range octets.
  static std::optional<cidr> parse(std::string_view text, std::string* error = nullptr);
  /// True if addr is inside the block. IPv4-mapped IPv6 addresses match IPv4 blocks.
  bool contains(const ip_address& addr) const;
  std::string str() const;
  friend bool operator==(const cidr&, const cidr&) = default;
};

/// Parses one source-address block of an allowlist (allowSourceRanges, --allow-source-ranges):
/// cidr::parse(), and also refuses blocks inside ::ffff:0:0/96. Such a block could never match:
/// IPv4-mapped clients are matched as IPv4 (cidr::contains), so the IPv4 block must be written.
std::optional<cidr> parse_source_range(std::string_view text, std::string* error = nullptr);

}  // namespace npp::config
