// tests/thrust/conformance.cpp: the Thrust backend against the Eigen backend (after ggml's
// test-backend-ops): every conformance case of cases.hpp in double and float, with max abs error,
// relative error and NMSE printed per case; the same argument errors; and no allocation inside a
// warmed-up training step. Compiled by the host compiler for the TBB/CPP systems (ayf_tests_thrust)
// and by nvcc for the CUDA system (ayf_tests_cuda, through conformance_cuda.cu).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "ayf/backends/thrust/backend.hpp"
#include "ayf/data/batch_sampler.hpp"
#include "cases.hpp"
#include "compare.hpp"
#include "reference.hpp"
#include "support/tolerance.hpp"

namespace {

using namespace ayf_conformance;

const char* system_name() {
#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
  return "cuda";
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_TBB
  return "tbb";
#elif THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_OMP
  return "omp";
#else
  return "cpp";
#endif
}

template <class S>
void check_case(const std::string& name) {
  const case_info& info = find_case(name);
  const bool single = std::is_same_v<S, float>;
  const std::vector<double> got = run_case<ayf::thrust_backend<S>>(name);
  const std::vector<double> want = eigen_case(name, single);
  REQUIRE(!want.empty());
  REQUIRE(got.size() == want.size());
  bool finite = true;
  for (double v : want) finite = finite && std::isfinite(v);
  REQUIRE(finite);
  const comparison c = compare(got, want);
  const double tolerance = ayf_test::tolerance<S, ayf::thrust_backend<S>>::relative;
  std::printf("conformance %-4s %-26s %-6s n=%-6zu max_abs=%-10.3e rel=%-10.3e nmse=%-10.3e %s\n", system_name(),
              name.c_str(), single ? "float" : "double", want.size(), c.max_abs, c.relative, c.nmse,
              c.bitwise ? "bitwise" : "");
  INFO(name << " in " << (single ? "float" : "double") << ": max abs error " << c.max_abs << ", relative "
            << c.relative << ", NMSE " << c.nmse);
  if (info.mode == agreement::bitwise) {
    CHECK(c.bitwise);
  } else {
    CHECK(c.relative < tolerance);
  }
}

void check_both(const std::string& name) {
  check_case<double>(name);
  check_case<float>(name);
}

}  // namespace

namespace {

/// The test of one conformance case.
struct conformance_invoker final : Catch::ITestInvoker {
  std::string name;
  explicit conformance_invoker(std::string n) : name(std::move(n)) {}
  void invoke() const override { check_both(name); }
};

/// One TEST_CASE "thrust conforms to eigen: <name>" per entry of cases(), registered at start-up, so a
/// case added to cases.hpp is checked (and listed to ctest) without a second entry here.
const bool cases_registered = [] {
  static std::vector<std::string> names;  // Catch keeps references to the names
  names.reserve(cases().size());
  for (const auto& c : cases()) {
    names.push_back("thrust conforms to eigen: " + c.name);
    // AutoReg's constructor registers the test case; the registry owns the invoker.
    Catch::AutoReg(new conformance_invoker(c.name), CATCH_INTERNAL_LINEINFO, Catch::StringRef(),
                   Catch::NameAndTags{names.back(), "[thrust][conformance]"});
  }
  return true;
}();

}  // namespace

TEST_CASE("thrust raises the Eigen backend's argument errors, word for word", "[thrust][errors]") {
  for (const bool single : {false, true}) {
    const auto got = single ? error_messages<ayf::thrust_backend<float>>() : error_messages<ayf::thrust_backend<double>>();
    const auto want = eigen_error_messages(single);
    REQUIRE(got.size() == want.size());
    for (std::size_t k = 0; k < want.size(); ++k) {
      INFO("call " << k);
      CHECK(got[k] == want[k]);
    }
    // The wrong calls raise (all but the one deliberate no-error call) and name an argument.
    const auto raised = std::count_if(want.begin(), want.end(), [](const std::string& m) { return m != "(no error)"; });
    CHECK(raised == static_cast<long>(want.size()) - 1);
    for (const auto& m : want)
      if (m != "(no error)") CHECK_THAT(m, Catch::Contains("argument '"));
  }
}

TEST_CASE("no allocation inside warmed-up flow-matching and AYF-EMD steps on the Thrust backend", "[thrust][allocation]") {
  using B = ayf::thrust_backend<float>;
  using model = ayf::nn::mlp_flow_model<B>;
  using counter = ayf::thrust_allocation_counter;
  B::context ctx(5);
  // The counter sees tensor allocations (so this test can fail).
  {
    const auto before = counter::count();
    auto probe = B::make(ctx, shape(8, 8));
    B::resize(ctx, probe, shape(64, 64));
    CHECK(counter::count() - before == 2);
    B::resize(ctx, probe, shape(2, 2));
    B::resize(ctx, probe, shape(32, 32));  // within capacity
    CHECK(counter::count() - before == 2);
  }
  auto config = [](bool student, std::uint64_t seed) {
    ayf::nn::mlp_config c = mlp_shape(student, seed);
    c.dims = 2;
    c.width = 64;
    c.classes = 3;
    return c;
  };
  model teacher(ctx, config(false, 1));
  model weak(ctx, config(false, 2));
  auto guided = ayf::make_autoguided_velocity<B>(teacher, weak);
  model student = model::from_teacher(ctx, teacher, config(true, 3));
  ayf::nn::adam<B> teacher_adam(ctx, teacher.parameters());
  ayf::nn::adam<B> student_adam(ctx, student.parameters());
  ayf::flow_matching<B, model> fm;
  ayf::ayf_emd<B, model> emd;
  auto x0 = B::make(ctx, shape(96, 2));
  auto labels = B::make(ctx, shape::vector(96));
  B::fill(ctx, labels, 1.0f);
  double iteration = 0;
  auto steps = [&] {
    B::randn(ctx, x0);
    teacher.parameters().zero_gradients(ctx);
    fm.step(ctx, teacher, x0, &labels);
    teacher_adam.step(ctx, teacher.parameters());
    student.parameters().zero_gradients(ctx);
    emd.step(ctx, student, guided, x0, &labels, iteration++);
    student_adam.step(ctx, student.parameters());
  };
  // The trainer's batches: a batch sampler uploads each batch into the tensors it drew the last one into.
  ayf::data::points points;
  points.rows = 40;
  points.cols = 2;
  for (std::size_t r = 0; r < points.rows; ++r) {
    points.values.insert(points.values.end(), {0.1 * static_cast<double>(r), -0.05 * static_cast<double>(r)});
    points.labels.push_back(static_cast<int>(r % 3));
  }
  ayf::data::batch_sampler<B> sampler(points, {96, 0.1, 7});
  std::uint64_t batch = 0;
  auto sampled_steps = [&] {
    sampler.draw(ctx, batch++);
    student.parameters().zero_gradients(ctx);
    emd.step(ctx, student, guided, sampler.x(), sampler.labels(), iteration++);
    student_adam.step(ctx, student.parameters());
  };
  for (int k = 0; k < 3; ++k) steps(), sampled_steps();
  const auto warm = counter::count();
  for (int k = 0; k < 5; ++k) steps(), sampled_steps();
  const auto allocations = counter::count() - warm;
  std::printf("allocation %-4s 5 warmed-up FM + AYF-EMD steps and 5 on sampled batches: %llu allocations (%llu during warmup in total)\n",
              system_name(), static_cast<unsigned long long>(allocations), static_cast<unsigned long long>(warm));
  CHECK(allocations == 0);
}
