// Durations (config/duration.hpp): flags such as --drain-timeout and config values. Checks: a
// parsed duration is non-negative, format_duration() of it parses back to the same value, and
// a bare integer means seconds.
#include <string>

#include "config/duration.hpp"
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = npp::fuzz::as_text(data, size);
  const auto d = npp::config::parse_duration(text);
  if (!d) return 0;
  FUZZ_CHECK(d->count() >= 0, "negative duration %lld", static_cast<long long>(d->count()));
  FUZZ_CHECK(text.find_first_not_of("0123456789.smh") == std::string_view::npos, "accepted other bytes");
  const std::string formatted = npp::config::format_duration(*d);
  const auto again = npp::config::parse_duration(formatted);
  FUZZ_CHECK(again && *again == *d, "%s does not parse back to %lld ms", formatted.c_str(),
             static_cast<long long>(d->count()));
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    const auto seconds = npp::config::parse_duration(std::string(text) + "s");
    FUZZ_CHECK(seconds && *seconds == *d, "a bare integer is not seconds");
  }
  return 0;
}
