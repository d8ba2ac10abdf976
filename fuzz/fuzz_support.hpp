#pragma once
// Shared by the fuzz targets: a check that stops the run with a message (a finding for
// libFuzzer, a failed ctest for the corpus replay), and the invariants every config loader
// promises whatever its input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include "config/load.hpp"

#define FUZZ_CHECK(cond, ...)                                                          \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                               \
      std::fputc('\n', stderr);                                                        \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

namespace npp::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Problems are printable ASCII whatever bytes the input had (they end up in logs and JSON).
inline void check_problems(const config::config_error& e) {
  FUZZ_CHECK(!e.problems().empty(), "config_error without problems: %s", e.what());
  for (const auto& p : e.problems())
    for (unsigned char c : p.str()) FUZZ_CHECK(c >= 0x20 && c <= 0x7e, "unprintable byte 0x%02x in: %s", c, e.what());
}

/// What validate_and_allocate() promises about an accepted snapshot: every port bound to a
/// non-zero nodePort, inside the range unless ad hoc, no (nodePort, protocol) bound twice, and
/// the snapshot validates again unchanged.
inline void check_snapshot(const config::snapshot& snap) {
  std::set<std::pair<int, config::protocol>> bound;
  for (const auto& svc : snap.services) {
    for (const auto& port : svc.ports) {
      FUZZ_CHECK(port.node_port >= 1 && port.node_port <= 65535, "nodePort %d of %s", port.node_port, svc.id().c_str());
      FUZZ_CHECK(svc.ad_hoc || snap.range.contains(port.node_port), "nodePort %d outside %s", port.node_port,
                 snap.range.str().c_str());
      FUZZ_CHECK(bound.insert({port.node_port, port.proto}).second, "nodePort %d bound twice", port.node_port);
      for (const auto& ep : port.endpoints) FUZZ_CHECK(ep.address.port != 0, "endpoint port 0 in %s", svc.id().c_str());
    }
    if (svc.health_check_node_port != 0)
      FUZZ_CHECK(bound.insert({svc.health_check_node_port, config::protocol::tcp}).second,
                 "healthCheckNodePort %d bound twice", svc.health_check_node_port);
  }
  config::snapshot again = snap;
  try {
    config::validate_and_allocate(again);
  } catch (const config::config_error& e) {
    FUZZ_CHECK(false, "an accepted snapshot fails validation again: %s", e.what());
  }
}

/// load_text() (or another loader) on `text`: accepted and consistent, or refused with
/// printable problems. Any other exception escapes and is a finding.
template <typename Loader>
void check_loader(Loader&& load) {
  try {
    check_snapshot(load());
  } catch (const config::config_error& e) {
    check_problems(e);
  }
}

}  // namespace npp::fuzz
