// fuzz/make_corpus.cpp: writes the seed corpus, fuzz/corpus/<reader>/, with the library's own
// writers (small valid files) plus hand-made edge cases (named edge_*), then checks that every seed
// but the edge cases is read back by the reader as its harness calls it, and that the edge cases are
// rejected. Deterministic: running it again gives the committed files byte for byte.
//   ayf_fuzz_make_corpus <corpus directory>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/io/csv.hpp"
#include "ayf/io/npy.hpp"
#include "ayf/io/safetensors.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/train/checkpoint.hpp"
#include "checkpoint_model.hpp"
#include "csv_options.hpp"

namespace {

namespace fs = std::filesystem;

void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw ayf::error("make_corpus: cannot write " + (dir / name).string());
}

std::string slurp(const fs::path& path) { return ayf::io::read_file(path, "make_corpus"); }

/// A version 1.0 file with a hand-written header dict (padded so the data starts at 64 bytes).
std::string npy_with_header(std::string dict, const std::string& data) {
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict + data;
}

void npy(const fs::path& dir) {
  using ayf::io::format_npy;
  const std::vector<double> f8{0.0, -1.5, 2.25, 1e300, -0.0, 3.0};
  const std::vector<float> f4{1.0f, -2.0f, 0.5f, 7.0f};
  const std::vector<std::int32_t> i4{0, 1, -1, 2147483647};
  const std::vector<std::int64_t> i8{3, -4};
  const std::vector<std::uint8_t> u1{0, 1, 2, 255, 7, 9};
  put(dir, "f8_2x3.npy", format_npy(f8.data(), f8.size(), {2, 3}));
  put(dir, "f4_4.npy", format_npy(f4.data(), f4.size(), {4}));
  put(dir, "i4_2x2.npy", format_npy(i4.data(), i4.size(), {2, 2}));
  put(dir, "i8_2x1.npy", format_npy(i8.data(), i8.size(), {2, 1}));
  put(dir, "u1_3x2.npy", format_npy(u1.data(), u1.size(), {3, 2}));
  put(dir, "f8_empty_0x3.npy", format_npy(f8.data(), 0, {0, 3}));
  // Version 2.0 (4-byte header length), same dict.
  std::string v1 = format_npy(i8.data(), i8.size(), {2});
  std::string v2 = v1.substr(0, 6) + std::string("\x02\x00", 2) + v1.substr(8, 2) + std::string(2, '\0') + v1.substr(10);
  put(dir, "i8_2_v2.npy", v2);
  // Old NumPy style: double quotes, a Python 2 long suffix, keys in another order, no trailing comma.
  put(dir, "oldstyle_u1.npy",
      npy_with_header("{\"shape\": (3L,), \"fortran_order\": False, \"descr\": \"|u1\"}", std::string("\x01\x02\x03", 3)));
  // Edge cases: data one byte short; a Fortran-ordered array.
  const std::string whole = format_npy(f4.data(), f4.size(), {2, 2});
  put(dir, "edge_truncated.npy", whole.substr(0, whole.size() - 1));
  put(dir, "edge_fortran.npy",
      npy_with_header("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", whole.substr(64)));
}

void csv(const fs::path& dir) {
  ayf::data::points p;
  p.rows = 3;
  p.cols = 2;
  p.values = {0.5, -1.25, 1e-300, 3.0, -0.0, 123456.789};
  p.labels = {0, 2, -1};
  put(dir, "labelled.csv", ayf::io::format_points_csv(p));
  p.labels.clear();
  put(dir, "named_header.csv", ayf::io::format_points_csv(p, {"x", "y"}));
  put(dir, "no_header.csv", "1,2,3\n4,5,6\n");
  put(dir, "crlf_quoted_padded.csv", "\"label\", \"a\" ,b\r\n 1 , +2.5 ,-3e2\r\n\r\n0,4,.5\r\n");
  put(dir, "semicolons.csv", "a;b\n1;2\n");
  // Edge cases: a ragged row; a non-finite value.
  put(dir, "edge_ragged.csv", "x0,x1\n1,2\n3\n");
  put(dir, "edge_inf.csv", "x0,label\ninf,1\n");
}

void safetensors(const fs::path& dir) {
  using ayf::io::safetensors_content;
  safetensors_content one;
  one.add<float>("weight", {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f}, {2, 3});
  put(dir, "f32_2x3.safetensors", ayf::io::serialize_safetensors(one.tensors, one.metadata));

  safetensors_content mixed;
  mixed.add<double>("a.f64", {0.5, -0.25}, {2});
  mixed.add<std::int64_t>("b.i64", {7}, {});
  mixed.add<std::int32_t>("c.i32", {1, -2, 3}, {3, 1});
  mixed.add<std::uint8_t>("d.u8", {9, 8}, {1, 2});
  mixed.add<float>("e.empty", {}, {0, 4});
  mixed.metadata["format"] = "pt";
  mixed.metadata["note"] = "quote \" backslash \\ tab \t caf\xc3\xa9";
  put(dir, "mixed_metadata.safetensors", ayf::io::serialize_safetensors(mixed.tensors, mixed.metadata));

  // Hand-written headers: \u escapes (one a surrogate pair), whitespace, keys in another order.
  const auto hand = [](const std::string& json, const std::string& data) {
    std::string out;
    for (int k = 0; k < 8; ++k) out += static_cast<char>((json.size() >> (8 * k)) & 0xff);
    return out + json + data;
  };
  put(dir, "escapes.safetensors",
      hand("{ \"na\\u00efve\\ud83d\\ude00\" : { \"data_offsets\" : [0, 2], \"shape\" : [2], \"dtype\" : \"U8\" } }",
           std::string("\x05\x06", 2)));
  put(dir, "empty_object.safetensors", hand("{}", ""));
  // Edge cases: overlapping tensors; a header length past the end of the file.
  put(dir, "edge_overlap.safetensors",
      hand("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
           "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}",
           std::string("\x01\x02\x03", 3)));
  put(dir, "edge_header_too_long.safetensors", std::string("\xff\x00\x00\x00\x00\x00\x00\x00{}", 10));
}

template <class B>
std::string checkpoint_bytes(const fs::path& scratch, bool with_optimizer, bool with_ema, const std::string& objective,
                             std::uint64_t iteration) {
  typename B::context ctx(11);
  ayf::nn::mlp_flow_model<B> model(ctx, ayf_fuzz::checkpoint_config());
  ayf::nn::adam<B> optimizer(ctx, model.parameters());
  ayf::nn::exponential_moving_average<B> ema(ctx, model.parameters(), 0.9);
  auto state = ayf::train::make_training_state<B>(model, with_optimizer ? &optimizer : nullptr,
                                                  with_ema ? &ema : nullptr, objective);
  state.iteration = iteration;
  ayf::train::save_checkpoint<B>(scratch, ctx, state);
  std::string bytes = slurp(scratch);
  fs::remove(scratch);
  return bytes;
}

void checkpoint(const fs::path& dir) {
  using f32 = ayf::eigen_backend<float>;
  using f64 = ayf::eigen_backend<double>;
  const fs::path scratch = fs::temp_directory_path() / "ayf_fuzz_make_corpus.safetensors";
  put(dir, "f32_adam_ema.safetensors", checkpoint_bytes<f32>(scratch, true, true, ayf_fuzz::checkpoint_objective_f32, 5));
  put(dir, "f64_parameters.safetensors",
      checkpoint_bytes<f64>(scratch, false, false, ayf_fuzz::checkpoint_objective_f64, 0));
  // Edge cases: the float state without its EMA tensor; the double state under the float objective.
  put(dir, "edge_no_ema.safetensors", checkpoint_bytes<f32>(scratch, true, false, ayf_fuzz::checkpoint_objective_f32, 1));
  put(dir, "edge_wrong_objective.safetensors",
      checkpoint_bytes<f64>(scratch, false, false, ayf_fuzz::checkpoint_objective_f32, 2));
}

/// Throws unless every file in `dir` but the edge_* ones is accepted by `accepts` and the edge_* ones are not.
template <class Accepts>
void verify(const fs::path& dir, Accepts accepts) {
  for (const auto& entry : fs::directory_iterator(dir)) {
    const bool edge = entry.path().filename().string().rfind("edge_", 0) == 0;
    if (accepts(entry.path()) == edge) {
      throw ayf::error("make_corpus: " + entry.path().string() + (edge ? " is accepted" : " is rejected"));
    }
  }
}

template <class F>
bool no_error(F f) {
  try {
    f();
    return true;
  } catch (const ayf::error&) {
    return false;
  }
}

template <class B>
bool loads(const fs::path& path, bool with_optimizer_and_ema, const std::string& objective) {
  typename B::context ctx(3);
  ayf::nn::mlp_flow_model<B> model(ctx, ayf_fuzz::checkpoint_config());
  ayf::nn::adam<B> optimizer(ctx, model.parameters());
  ayf::nn::exponential_moving_average<B> ema(ctx, model.parameters(), 0.9);
  auto state = ayf::train::make_training_state<B>(model, with_optimizer_and_ema ? &optimizer : nullptr,
                                                  with_optimizer_and_ema ? &ema : nullptr, objective);
  return no_error([&] { ayf::train::load_checkpoint<B>(path, ctx, state); });
}

void verify_all(const fs::path& root) {
  verify(root / "npy", [](const fs::path& p) { return no_error([&] { (void)ayf::io::read_npy(p); }); });
  verify(root / "csv", [](const fs::path& p) {
    bool any = false;
    for (const auto& options : ayf_fuzz::csv_options()) {
      any = any || no_error([&] { (void)ayf::io::read_points_csv(p, options); });
    }
    return any;
  });
  verify(root / "safetensors", [](const fs::path& p) { return no_error([&] { (void)ayf::io::read_safetensors(p); }); });
  verify(root / "checkpoint", [](const fs::path& p) {
    return loads<ayf::eigen_backend<float>>(p, true, ayf_fuzz::checkpoint_objective_f32) ||
           loads<ayf::eigen_backend<double>>(p, false, ayf_fuzz::checkpoint_objective_f64);
  });
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus directory>\n", argv[0]);
    return 2;
  }
  try {
    const fs::path root = argv[1];
    npy(root / "npy");
    csv(root / "csv");
    safetensors(root / "safetensors");
    checkpoint(root / "checkpoint");
    verify_all(root);
  } catch (const ayf::error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
