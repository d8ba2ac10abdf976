#include "proxy/access_log.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace npp::proxy {

namespace {

/// A JSON string literal for v (quotes, backslashes and control characters escaped).
void append_json_string(std::string& out, std::string_view v) {
  out += '"';
  for (unsigned char ch : v) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", ch);
          out += buf;
        } else {
          out += static_cast<char>(ch);
        }
    }
  }
  out += '"';
}

/// A logfmt value: bare when it is a plain token, else a quoted JSON-style string. Empty -> "-".
void append_logfmt_value(std::string& out, std::string_view v) {
  if (v.empty()) {
    out += '-';
    return;
  }
  for (unsigned char ch : v) {
    if (ch <= ' ' || ch == '"' || ch == '=' || ch == '\\' || ch == 0x7f) {
      append_json_string(out, v);
      return;
    }
  }
  out += v;
}

/// Seconds with millisecond precision, as nginx's $session_time ("0.012").
std::string seconds(std::chrono::nanoseconds d) {
  const long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return fmt::format("{}.{:03d}", ms / 1000, static_cast<int>(ms % 1000));
}

std::string utc_timestamp(std::chrono::system_clock::time_point at) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

}  // namespace

/// The record's fields in log order, once for both formats: emit(key, value, is_text), where an
/// empty value means "none" (text: "-", JSON: null) and is_text says whether JSON quotes it.
template <class Emit>
static void for_each_field(const access_record& r, Emit&& emit) {
  emit("protocol", r.protocol, true);
  emit("id", std::to_string(r.id), false);
  emit("client", r.client, true);
  emit("node_port", std::to_string(r.node_port), false);
  emit("service", r.service, true);
  emit("port", r.port_name, true);
  emit("endpoint", r.endpoint, true);
  emit("attempts", std::to_string(r.attempts), false);
  emit("bytes_in", std::to_string(r.bytes_in), false);
  emit("bytes_out", std::to_string(r.bytes_out), false);
  emit("duration", seconds(r.duration), false);
  emit("connect_time", r.connect_time.count() < 0 ? std::string() : seconds(r.connect_time), false);
  emit("reason", r.reason, true);
}

std::string access_fields(const access_record& r) {
  std::string out;
  out.reserve(256);
  for_each_field(r, [&](std::string_view key, std::string_view value, bool) {
    if (!out.empty()) out += ' ';
    out += key;
    out += '=';
    append_logfmt_value(out, value);
  });
  return out;
}

std::string access_line(const access_record& r, access_log_format format, std::chrono::system_clock::time_point at) {
  if (format == access_log_format::text) return "time=" + utc_timestamp(at) + " " + access_fields(r) + "\n";
  std::string out = "{\"time\":\"" + utc_timestamp(at) + "\"";
  for_each_field(r, [&](std::string_view key, std::string_view value, bool is_text) {
    out += ",\"";
    out += key;
    out += "\":";
    if (value.empty())
      out += "null";
    else if (is_text)
      append_json_string(out, value);
    else
      out += value;
  });
  out += "}\n";
  return out;
}

static int open_destination(const std::string& destination, bool& owns) {
  owns = false;
  if (destination == "-" || destination == "stdout") return STDOUT_FILENO;
  if (destination == "stderr") return STDERR_FILENO;
  int fd = ::open(destination.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) throw std::runtime_error("cannot open access log " + destination + ": " + std::strerror(errno));
  owns = true;
  return fd;
}

access_log::access_log(std::string destination, access_log_format format)
    : destination_(std::move(destination)), format_(format) {
  fd_ = open_destination(destination_, owns_fd_);
}

access_log::~access_log() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

void access_log::write(const access_record& r) {
  const std::string line = access_line(r, format_, std::chrono::system_clock::now());
  std::lock_guard lock(mu_);
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n > 0) {
      p += n;
      left -= static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (!failing_) {
      failing_ = true;
      spdlog::warn("access log {}: write failed: {}; lines are lost until a write succeeds", destination_,
                   n < 0 ? std::strerror(errno) : "short write");
    }
    return;
  }
  if (failing_) {
    failing_ = false;
    spdlog::info("access log {}: writing again", destination_);
  }
}

std::string access_log::reopen() {
  bool owns = false;
  int fd = -1;
  try {
    fd = open_destination(destination_, owns);
  } catch (const std::exception& e) {
    return e.what();
  }
  if (!owns) return "";
  std::lock_guard lock(mu_);
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
  fd_ = fd;
  owns_fd_ = true;
  return "";
}

}  // namespace npp::proxy
