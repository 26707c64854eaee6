// fuzz/csv_options.hpp: the reader options fuzz_csv parses every input with (make_corpus checks
// that each valid seed parses under one of them).
#pragma once

#include <vector>

#include "ayf/io/csv.hpp"

namespace ayf_fuzz {

inline std::vector<ayf::io::csv_read_options> csv_options() {
  return {{"", ','}, {"label", ','}, {"0", ','}, {"", ';'}};
}

}  // namespace ayf_fuzz
