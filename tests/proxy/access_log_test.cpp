#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "proxy/access_log.hpp"

using namespace npp::proxy;

namespace {

access_record sample() {
  access_record r;
  r.protocol = "tcp";
  r.id = 42;
  r.client = "[2001:db8::1]:52000";
  r.node_port = 30080;
  r.service = "default/web";
  r.port_name = "http";
  r.endpoint = "10.0.0.5:8080";
  r.attempts = 2;
  r.bytes_in = 123;
  r.bytes_out = 4567890123ULL;
  r.duration = std::chrono::milliseconds(61234);
  r.connect_time = std::chrono::microseconds(1500);
  r.reason = "eof";
  return r;
}

const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764148553643LL));

}  // namespace

TEST_CASE("access log text line: logfmt fields in a fixed order with the UTC end time") {
  CHECK(access_line(sample(), access_log_format::text, at) ==
        "time=2025-11-26T09:15:53.643Z protocol=tcp id=42 client=[2001:db8::1]:52000 node_port=30080 "
        "service=default/web port=http endpoint=10.0.0.5:8080 attempts=2 bytes_in=123 bytes_out=4567890123 "
        "duration=61.234 connect_time=0.001 reason=eof\n");
}

TEST_CASE("access log text line: missing values are a dash and odd values are quoted") {
  access_record r = sample();
  r.endpoint.clear();
  r.port_name = "";
  r.connect_time = std::chrono::nanoseconds(-1);
  r.service = "ns/a b\"c";
  auto line = access_fields(r);
  CHECK(line.find(" endpoint=- ") != std::string::npos);
  CHECK(line.find(" port=- ") != std::string::npos);
  CHECK(line.find(" connect_time=- ") != std::string::npos);
  CHECK(line.find(R"( service="ns/a b\"c" )") != std::string::npos);
}

TEST_CASE("access log JSON line: same keys, numbers as numbers, null for missing") {
  access_record r = sample();
  r.connect_time = std::chrono::nanoseconds(-1);
  r.endpoint.clear();
  r.service = "ns/\x01weird\n";
  auto line = access_line(r, access_log_format::json, at);
  REQUIRE(!line.empty());
  CHECK(line.back() == '\n');
  auto j = nlohmann::json::parse(line);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  // nlohmann::json sorts keys; the order on the line is checked by the acceptance test.
  CHECK(keys.size() == 14);
  CHECK(j["time"] == "2025-11-26T09:15:53.643Z");
  CHECK(j["bytes_out"] == 4567890123ULL);
  CHECK(j["duration"].get<double>() == doctest::Approx(61.234));
  CHECK(j["connect_time"].is_null());
  CHECK(j["endpoint"].is_null());
  CHECK(j["service"] == "ns/\x01weird\n");
  CHECK(j["node_port"] == 30080);
}
