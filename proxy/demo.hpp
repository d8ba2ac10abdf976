#pragma once
// `nodeport-proxy demo`: three tiny HTTP backends and the proxy on loopback, and a few requests
// through the nodePort so the names visibly rotate.
#include <string>

#include "config/snapshot.hpp"
#include "proxy/settings.hpp"

namespace npp::proxy {

struct demo_options {
  int requests = 6;         ///< requests sent through the nodePort after start-up
  bool exit_after = false;  ///< exit after those requests instead of serving until Ctrl-C
};

/// examples/demo.json, looked up next to the working directory and the executable.
/// Throws std::runtime_error when it cannot be found.
std::string default_demo_file();

/// Runs the demo; returns the exit code.
int run_demo(const config::snapshot& snap, settings cfg, std::string node_name, const demo_options& opts);

}  // namespace npp::proxy
