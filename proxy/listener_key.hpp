#pragma once
// The identity of a listening socket: local address, port and protocol. The reconciler keeps a
// listener whose key is unchanged (same socket, same inode) and opens or closes the others.
#include <string>

#include "config/snapshot.hpp"
#include "proxy/socket_util.hpp"

namespace npp::proxy {

struct listener_key {
  bind_address addr;         ///< local address (or wildcard)
  int port = 0;              ///< nodePort
  config::protocol proto{};  ///< TCP or UDP
  friend bool operator==(const listener_key&, const listener_key&) = default;
  friend auto operator<=>(const listener_key&, const listener_key&) = default;
  /// "[::]:30080/TCP"
  std::string str() const { return addr.str() + ":" + std::to_string(port) + "/" + std::string(config::to_string(proto)); }
};

}  // namespace npp::proxy
