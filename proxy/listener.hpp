#pragma once
// What a worker needs from a nodePort listener, whatever its protocol.
#include <memory>

#include "proxy/listener_key.hpp"
#include "proxy/port_runtime.hpp"

namespace npp::proxy {

class listener {
 public:
  virtual ~listener() = default;
  /// Starts serving (accepting connections or receiving datagrams).
  virtual void start() = 0;
  /// Stops at once; TCP connections already accepted continue, UDP sessions end.
  virtual void close() = 0;
  /// New connections/sessions use `port` from now on.
  virtual void update(std::shared_ptr<const port_runtime> port) = 0;
};

}  // namespace npp::proxy
