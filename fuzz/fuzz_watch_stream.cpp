// The Kubernetes watch and list stream readers (config/watch_events.hpp), fed the way a chunked
// HTTP body feeds them. The first input byte picks a chunk size; the rest is the stream.
// Differential checks: the result must not depend on where the chunks end.
//  - ndjson_reader: the same lines (each within the cap, without '\n') whether the stream comes
//    in one piece or in chunks; parse_watch_event() either decodes a line or says why.
//  - list_stream_reader: the same items, the same verdict and resourceVersion, in one piece or
//    in chunks.
#include <string>
#include <vector>

#include "config/watch_events.hpp"
#include "fuzz/fuzz_support.hpp"

namespace {

constexpr std::size_t max_line = 4096;

std::vector<std::string> lines_of(std::string_view stream, std::size_t chunk, std::string* failed) {
  npp::config::ndjson_reader r(max_line);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < stream.size(); i += chunk) {
    r.feed(stream.substr(i, chunk));
    while (auto line = r.next_line()) out.push_back(std::move(*line));
  }
  *failed = r.failed();
  return out;
}

struct list_result {
  bool ok;
  std::string version;
  std::vector<std::string> items;
};

list_result list_of(std::string_view stream, std::size_t chunk) {
  list_result res;
  npp::config::list_stream_reader r(max_line, 16, [&](nlohmann::json&& item) { res.items.push_back(item.dump()); });
  for (std::size_t i = 0; i < stream.size(); i += chunk) r.feed(stream.substr(i, chunk));
  res.ok = r.finish(&res.version);
  return res;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0] % 64;
  const auto stream = npp::fuzz::as_text(data + 1, size - 1);

  std::string failed_whole, failed_chunked;
  const auto whole = lines_of(stream, stream.size() + 1, &failed_whole);
  const auto chunked = lines_of(stream, chunk, &failed_chunked);
  FUZZ_CHECK(failed_whole.empty() == failed_chunked.empty(), "oversize verdict depends on chunking");
  if (failed_whole.empty()) FUZZ_CHECK(whole == chunked, "lines depend on chunking (%zu vs %zu)", whole.size(), chunked.size());
  for (const auto& line : chunked) {
    FUZZ_CHECK(line.size() <= max_line, "line of %zu bytes over the cap", line.size());
    FUZZ_CHECK(line.find('\n') == std::string::npos, "newline inside a line");
    std::string why;
    auto ev = npp::config::parse_watch_event(line, &why);
    FUZZ_CHECK(ev.has_value() != !why.empty(), "parse_watch_event: result and reason disagree");
  }

  const auto a = list_of(stream, stream.size() + 1);
  const auto b = list_of(stream, chunk);
  FUZZ_CHECK(a.ok == b.ok, "list verdict depends on chunking");
  if (a.ok) {
    FUZZ_CHECK(a.version == b.version, "resourceVersion depends on chunking");
    FUZZ_CHECK(a.items == b.items, "items depend on chunking (%zu vs %zu)", a.items.size(), b.items.size());
  }
  return 0;
}
