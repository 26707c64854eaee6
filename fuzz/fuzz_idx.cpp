// fuzz/fuzz_idx.cpp: ayf::io::parse_idx on arbitrary bytes, and on the gunzipped bytes when the input
// is a gzip stream (ayf::io::gunzip, output capped at 1 MiB). Corrupt input must raise ayf::error; a
// parsed array must hold exactly shape * item-size bytes and survive format_idx + parse_idx unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ayf/backends/zlib/gzip.hpp"
#include "ayf/core/error.hpp"
#include "ayf/io/idx.hpp"
#include "fuzz_support.hpp"

namespace {

void parse_and_check(std::string_view bytes) {
  ayf::io::idx_array array;
  try {
    array = ayf::io::parse_idx(bytes, "fuzz.idx");
  } catch (const ayf::error&) {
    return;
  }
  ayf_fuzz::check(!array.shape.empty(), "idx: at least one dimension");
  ayf_fuzz::check(array.payload.size() == array.size() * ayf::io::idx_detail::item_size(array.dtype),
                  "idx: payload bytes == elements * item size");
  ayf_fuzz::check(array.to_doubles().size() == array.size(), "idx: to_doubles gives one value per element");
  const std::string payload(array.payload.begin(), array.payload.end());
  const std::string file = ayf::io::format_idx(array.dtype, array.shape, payload);
  ayf_fuzz::check(file == bytes, "idx: format_idx reproduces the parsed file byte for byte");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = ayf_fuzz::bytes(data, size);
  if (ayf::io::is_gzip(bytes)) {
    std::string inflated;
    try {
      inflated = ayf::io::gunzip(bytes, "fuzz.idx.gz", std::size_t{1} << 20);
    } catch (const ayf::error&) {
      return 0;
    }
    parse_and_check(inflated);
    return 0;
  }
  parse_and_check(bytes);
  return 0;
}
