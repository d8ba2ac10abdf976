// YAML manifests through load_text(): yaml-cpp's event parser under our caps (depth pre-scan,
// flow-collection length, alias expansion budget), core-schema typing, multi-document streams,
// then the Kubernetes/native decoders. Inputs starting with '{' or '[' take the JSON path, so
// the seeds start otherwise; the caps are lowered a little to let the fuzzer reach them.
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = npp::fuzz::as_text(data, size);
  npp::fuzz::check_loader([&] { return npp::config::load_text(text, npp::config::load_options{}); });
  npp::config::load_options small;
  small.max_depth = 8;
  npp::fuzz::check_loader([&] { return npp::config::load_text(text, small); });
  return 0;
}
