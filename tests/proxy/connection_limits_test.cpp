// Per-Service connection counts (proxy/connection_limits.hpp): maxConnections over all ports
// and workers, maxConnectionsPerSource, and slots that give their count back.
#include <doctest/doctest.h>

#include <thread>
#include <vector>

#include "proxy/connection_limits.hpp"

using namespace npp;
using verdict = proxy::connection_limits::verdict;

namespace {
config::ip_address ip(const char* text) { return *config::ip_address::parse(text); }
}  // namespace

TEST_CASE("maxConnections admits up to the limit and a released slot makes room") {
  auto limits = std::make_shared<proxy::connection_limits>();
  std::vector<proxy::connection_limits::slot> open(3);
  for (auto& s : open) CHECK(limits->admit(ip("10.0.0.1"), 3, 0, s) == verdict::admitted);
  proxy::connection_limits::slot extra;
  CHECK(limits->admit(ip("10.0.0.2"), 3, 0, extra) == verdict::service_limit);
  CHECK(limits->active() == 3);
  open[0].release();
  CHECK(limits->active() == 2);
  CHECK(limits->admit(ip("10.0.0.2"), 3, 0, extra) == verdict::admitted);
  CHECK(limits->active() == 3);
  open.clear();
  extra = proxy::connection_limits::slot();  // move-assigning releases the old slot
  CHECK(limits->active() == 0);
}

TEST_CASE("maxConnectionsPerSource counts each address apart") {
  auto limits = std::make_shared<proxy::connection_limits>();
  proxy::connection_limits::slot a1, a2, a3, b1;
  CHECK(limits->admit(ip("127.0.0.1"), 0, 2, a1) == verdict::admitted);
  CHECK(limits->admit(ip("127.0.0.1"), 0, 2, a2) == verdict::admitted);
  CHECK(limits->admit(ip("127.0.0.1"), 0, 2, a3) == verdict::source_limit);
  CHECK(limits->admit(ip("127.0.0.2"), 0, 2, b1) == verdict::admitted);
  CHECK(limits->active_from(ip("127.0.0.1")) == 2);
  CHECK(limits->active() == 3);  // the rejected one is not counted
  a1.release();
  CHECK(limits->active_from(ip("127.0.0.1")) == 1);
  CHECK(limits->admit(ip("127.0.0.1"), 0, 2, a3) == verdict::admitted);
}

TEST_CASE("a slot outlives a reconfiguration and still gives back to its own counts") {
  auto limits = std::make_shared<proxy::connection_limits>();
  proxy::connection_limits::slot s;
  REQUIRE(limits->admit(ip("10.0.0.1"), 1, 1, s) == verdict::admitted);
  std::weak_ptr<proxy::connection_limits> weak = limits;
  limits.reset();  // the Service was removed: only the slot keeps the object
  CHECK_FALSE(weak.expired());
  s.release();
  CHECK(weak.expired());
}

TEST_CASE("concurrent admits never exceed the limit") {
  auto limits = std::make_shared<proxy::connection_limits>();
  constexpr int threads = 4, tries = 2000;
  std::vector<std::vector<proxy::connection_limits::slot>> held(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < tries; ++i) {
        proxy::connection_limits::slot s;
        if (limits->admit(ip("10.0.0.1"), 100, 0, s) == verdict::admitted) held[t].push_back(std::move(s));
        if (i % 3 == 0 && !held[t].empty()) held[t].pop_back();
      }
    });
  for (auto& th : pool) th.join();
  std::size_t total = 0;
  for (auto& h : held) total += h.size();
  CHECK(total <= 100);
  CHECK(limits->active() == total);
}
