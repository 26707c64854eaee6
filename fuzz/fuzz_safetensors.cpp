// fuzz/fuzz_safetensors.cpp: ayf::io::parse_safetensors on arbitrary bytes. Corrupt input must
// raise ayf::error; parsed tensors must hold prod(shape) * item-size bytes, and a parsed file must
// survive a write (serialize_safetensors) + read round trip unchanged (the writer may refuse a name
// the reader accepts, such as "", with ayf::error).
#include <cstddef>
#include <cstdint>
#include <string>

#include "ayf/core/error.hpp"
#include "ayf/io/safetensors.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ayf::io::safetensors_content content;
  try {
    content = ayf::io::parse_safetensors(ayf_fuzz::bytes(data, size), "fuzz.safetensors");
  } catch (const ayf::error&) {
    return 0;
  }
  for (const auto& t : content.tensors) {
    std::size_t count = 1;
    for (const auto extent : t.shape) count *= extent;
    ayf_fuzz::check(t.bytes.size() == count * ayf::io::safetensors_detail::item_size(t.dtype),
                    "safetensors: tensor bytes == prod(shape) * item size");
    ayf_fuzz::check(content.find(t.name) != nullptr, "safetensors: every tensor is found by name");
  }
  std::string written;
  try {
    written = ayf::io::serialize_safetensors(content.tensors, content.metadata);
  } catch (const ayf::error&) {
    return 0;
  }
  const ayf::io::safetensors_content again = ayf::io::parse_safetensors(written, "round trip");
  ayf_fuzz::check(again.metadata == content.metadata, "safetensors: round trip keeps the metadata");
  ayf_fuzz::check(again.tensors.size() == content.tensors.size(), "safetensors: round trip keeps every tensor");
  for (const auto& t : content.tensors) {
    const auto* u = again.find(t.name);
    ayf_fuzz::check(u != nullptr && u->dtype == t.dtype && u->shape == t.shape && u->bytes == t.bytes,
                    "safetensors: round trip keeps each tensor's dtype, shape and bytes");
  }
  return 0;
}
