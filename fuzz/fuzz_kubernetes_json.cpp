// Kubernetes objects as JSON through load_text(): Service, EndpointSlice, List / ServiceList /
// EndpointSliceList as kubectl prints them, annotations, joins of slices to Services. The same
// entry point reads the native format, so mutations that turn one into the other are covered.
#include "fuzz/fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = npp::fuzz::as_text(data, size);
  npp::fuzz::check_loader([&] { return npp::config::load_text(text, npp::config::load_options{}); });
  return 0;
}
