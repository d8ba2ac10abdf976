#pragma once
// spdlog set-up: stderr, text or JSON lines.
#include <string>

namespace npp::proxy {

/// Configures the default logger. level: trace|debug|info|warn|error; format: text|json.
/// Throws std::invalid_argument on unknown values.
void setup_logging(const std::string& level, const std::string& format);

}  // namespace npp::proxy
