#include "config/duration.hpp"

#include <cstdint>
#include <limits>

namespace npp::config {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// value = value * 10 + digit, refusing to overflow.
bool append_digit(std::int64_t& value, char digit) {
  return !__builtin_mul_overflow(value, 10, &value) && !__builtin_add_overflow(value, digit - '0', &value);
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;

  // A bare integer is seconds, so "30" in a config means what a human means.
  bool all_digits = true;
  for (char c : text) all_digits = all_digits && is_digit(c);
  if (all_digits) {
    std::int64_t seconds = 0, ms = 0;
    for (char c : text)
      if (!append_digit(seconds, c)) return std::nullopt;
    if (__builtin_mul_overflow(seconds, 1000, &ms)) return std::nullopt;
    return std::chrono::milliseconds(ms);
  }

  std::int64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    // <digits>[.<digits>]
    std::int64_t whole = 0, fraction = 0, fraction_scale = 1;
    const std::size_t number_start = i;
    while (i < text.size() && is_digit(text[i]))
      if (!append_digit(whole, text[i++])) return std::nullopt;
    bool any_digit = i > number_start;
    if (i < text.size() && text[i] == '.') {
      ++i;
      const std::size_t fraction_start = i;
      while (i < text.size() && is_digit(text[i])) {
        // Digits past 1e-12 cannot matter at millisecond precision; skip rather than overflow.
        if (fraction_scale < 1'000'000'000'000) {
          fraction = fraction * 10 + (text[i] - '0');
          fraction_scale *= 10;
        }
        ++i;
      }
      any_digit = any_digit || i > fraction_start;
    }
    if (!any_digit) return std::nullopt;  // "-5s", "ms", "5s.", "1h m"

    // <unit>
    std::int64_t unit_ms = 0;
    if (text.substr(i, 2) == "ms") {
      unit_ms = 1;
      i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit_ms = 1000;
      ++i;
    } else if (i < text.size() && text[i] == 'm') {
      unit_ms = 60'000;
      ++i;
    } else if (i < text.size() && text[i] == 'h') {
      unit_ms = 3'600'000;
      ++i;
    } else {
      return std::nullopt;  // missing unit inside a sequence ("1h30"), or ns/us, or junk
    }

    std::int64_t part = 0;
    if (__builtin_mul_overflow(whole, unit_ms, &part)) return std::nullopt;
    // fraction / fraction_scale of a unit; unit_ms <= 3.6e6 and fraction < 1e12 keep this in range.
    const auto fraction_ms = static_cast<std::int64_t>(
        static_cast<__int128>(fraction) * unit_ms / fraction_scale);
    if (__builtin_add_overflow(part, fraction_ms, &part) || __builtin_add_overflow(total, part, &total))
      return std::nullopt;
  }
  return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0s";
  std::string out;
  std::uint64_t rest = static_cast<std::uint64_t>(ms);
  if (ms < 0) {
    out = "-";
    rest = 0 - rest;  // well defined for INT64_MIN too
  }
  const std::uint64_t hours = rest / 3'600'000, minutes = rest / 60'000 % 60, seconds = rest / 1000 % 60,
                      millis = rest % 1000;
  if (hours) out += std::to_string(hours) + "h";
  if (minutes) out += std::to_string(minutes) + "m";
  if (seconds) out += std::to_string(seconds) + "s";
  if (millis) out += std::to_string(millis) + "ms";
  return out;
}

}  // namespace npp::config
