// fuzz/fuzz_npy.cpp: ayf::io::parse_npy on arbitrary bytes. Corrupt input must raise ayf::error; a
// parsed array must hold exactly shape * item-size bytes, convert to doubles, and survive a
// write (format_npy) + read round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/io/npy.hpp"
#include "fuzz_support.hpp"

namespace {

template <class T>
void round_trip(const ayf::io::npy_array& array) {
  std::vector<T> values(array.size());
  ayf_fuzz::check(values.size() * sizeof(T) == array.data.size(), "npy: data bytes == elements * item size");
  if (!values.empty()) std::memcpy(values.data(), array.data.data(), array.data.size());
  const std::string file = ayf::io::format_npy(values.data(), values.size(), array.shape);
  const ayf::io::npy_array again = ayf::io::parse_npy(file, "round trip");
  ayf_fuzz::check(again.dtype == array.dtype, "npy: round trip keeps the dtype");
  ayf_fuzz::check(again.shape == array.shape, "npy: round trip keeps the shape");
  ayf_fuzz::check(again.data == array.data, "npy: round trip keeps the bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ayf::io::npy_array array;
  try {
    array = ayf::io::parse_npy(ayf_fuzz::bytes(data, size), "fuzz.npy");
  } catch (const ayf::error&) {
    return 0;
  }
  ayf_fuzz::check(array.shape.size() == 1 || array.shape.size() == 2, "npy: 1 or 2 dimensions");
  const std::vector<double> doubles = array.to_doubles();
  ayf_fuzz::check(doubles.size() == array.size(), "npy: to_doubles gives one value per element");
  try {
    const std::vector<std::int64_t> integers = array.to_int64();
    ayf_fuzz::check(integers.size() == array.size(), "npy: to_int64 gives one value per element");
  } catch (const ayf::error&) {
    // A float array with a non-integral value.
  }
  switch (array.dtype) {
    case ayf::io::npy_dtype::f4: round_trip<float>(array); break;
    case ayf::io::npy_dtype::f8: round_trip<double>(array); break;
    case ayf::io::npy_dtype::i4: round_trip<std::int32_t>(array); break;
    case ayf::io::npy_dtype::i8: round_trip<std::int64_t>(array); break;
    case ayf::io::npy_dtype::u1: round_trip<std::uint8_t>(array); break;
  }
  return 0;
}
