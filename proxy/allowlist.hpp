#pragma once
// Source-address allowlists: the per-service allowSourceRanges and the global
// --allow-source-ranges. Checked once per client before anything else happens to it: a TCP
// client at accept (before any endpoint is contacted), a UDP client before its session exists.
//
// Matching rules (the same for both lists):
//  - A list allows a source if any block contains it. There are no deny rules, so order and
//    overlaps do not matter (first-match and any-match agree). An empty list allows everyone.
//  - IPv4-mapped sources (::ffff:a.b.c.d, how an IPv4 client appears on a dual-stack [::]
//    socket) are matched as the IPv4 address a.b.c.d (cidr::contains unmaps them), so a
//    dual-stack listener cannot be used to get around an IPv4 rule.
//  - Every other IPv6 source is IPv6, including IPv4-compatible ::a.b.c.d (deprecated, RFC 4291
//    2.5.5.1) and 6to4 2002:aabb:ccdd::/48. The kernel hands us ::ffff:a.b.c.d for IPv4
//    packets and nothing else; an address such as ::10.0.0.1 or 2002:0a00:0001:: is the source
//    of a real IPv6 packet, chosen by its sender. Reading it as IPv4 would let any IPv6 host
//    claim an IPv4 identity and pass a 10.0.0.0/8 rule, i.e. create the bypass we guard against.
#include <vector>

#include "config/ip.hpp"

namespace npp::proxy {

class allowlist {
 public:
  allowlist() = default;
  explicit allowlist(std::vector<config::cidr> blocks) : blocks_(std::move(blocks)) {}

  /// True if the list is empty or a block contains `source` (IPv4-mapped matched as IPv4).
  bool allows(const config::ip_address& source) const {
    if (blocks_.empty()) return true;
    // Linear: lists are short (a few networks per Service), and this runs once per connection.
    for (const auto& b : blocks_)
      if (b.contains(source)) return true;
    return false;
  }
  /// True when every source is allowed.
  bool empty() const { return blocks_.empty(); }
  /// The blocks, as configured.
  const std::vector<config::cidr>& blocks() const { return blocks_; }
  friend bool operator==(const allowlist&, const allowlist&) = default;

 private:
  std::vector<config::cidr> blocks_;  ///< allowed source blocks; empty = all
};

}  // namespace npp::proxy
