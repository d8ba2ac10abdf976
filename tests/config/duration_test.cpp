#include <doctest/doctest.h>

#include "config/duration.hpp"

using namespace npp::config;
using namespace std::chrono_literals;

TEST_CASE("durations read units ms, s, m, h and their sequences") {
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("5s") == 5s);
  CHECK(parse_duration("2m") == 2min);
  CHECK(parse_duration("1h") == 1h);
  CHECK(parse_duration("1h30m") == 90min);
  CHECK(parse_duration("1m30s500ms") == 90500ms);
  CHECK(parse_duration("0s") == 0ms);
  CHECK(parse_duration("1.5s") == 1500ms);
  CHECK(parse_duration(".5s") == 500ms);
  CHECK(parse_duration("0.25h") == 15min);
  CHECK(parse_duration("1.9ms") == 1ms);  // below a millisecond is truncated
  CHECK(parse_duration("1.00000000000000000000001s") == 1000ms);
}

TEST_CASE("a bare integer means seconds") {
  CHECK(parse_duration("30") == 30s);
  CHECK(parse_duration("0") == 0ms);
  CHECK(parse_duration("007") == 7s);
}

TEST_CASE("negative, garbage, unknown units and overflow are rejected") {
  for (const char* bad : {"", "-5s", "-1", "+5s", "s", "5x", "5 s", " 5s", "5s ", "1h30", "5us", "5ns", "5µs", "1.s.", ".s",
                          "1..5s", "5S", "1d", "9223372036854775807", "9223372036854775807ms1ms", "99999999999999999999ms",
                          "2562047788016h"}) {
    CHECK_MESSAGE(!parse_duration(bad), bad);
  }
  CHECK(parse_duration("9223372036854775807ms") == std::chrono::milliseconds(9223372036854775807));
  CHECK(parse_duration("9223372036854775s") == std::chrono::milliseconds(9223372036854775000));
}

TEST_CASE("durations format compactly and read back as the same value") {
  CHECK(format_duration(0ms) == "0s");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(5s) == "5s");
  CHECK(format_duration(90min) == "1h30m");
  CHECK(format_duration(3600500ms) == "1h500ms");
  CHECK(format_duration(100h) == "100h");
  CHECK(format_duration(-1500ms) == "-1s500ms");
  for (auto d : {1ms, 999ms, 1000ms, 61001ms, 86'400'000ms, std::chrono::milliseconds(9223372036854775807)})
    CHECK(parse_duration(format_duration(d)) == d);
}
