#pragma once
// Durations in flags and config: "250ms", "5s", "2m", "1h", "1h30m" (Go time.ParseDuration style,
// as kube-proxy's flags read), or a plain integer meaning seconds.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace npp::config {

/// Parses a non-negative duration: a sequence of <number><unit> with units ms, s, m, h (a number may
/// have a fraction, "1.5s"; precision below 1 ms is truncated), or a bare integer meaning seconds.
/// Returns nullopt for negatives, unknown units, garbage and values that overflow.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// The shortest text parse_duration() reads back as the same value: "1h30m", "250ms", "0s".
std::string format_duration(std::chrono::milliseconds d);

}  // namespace npp::config
