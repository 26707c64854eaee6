// tests/test_classifier.cpp: softmax cross-entropy against a direct long-double evaluation and its
// gradient against central differences; the image classifier's logits against its features and last
// layer evaluated by hand, batch-split invariance, parameter gradients against directional differences
// (double), and a few training steps that fit a small labelled set.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "ayf/backends/eigen/backend.hpp"
#include "ayf/nn/classifier.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/objectives/cross_entropy.hpp"

namespace {

using B = ayf::eigen_backend<double>;
using tensor = B::tensor;

tensor uniform(std::size_t rows, std::size_t cols, std::uint64_t seed, double lo = -1, double hi = 1) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  tensor t(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols));
  for (Eigen::Index i = 0; i < t.size(); ++i) t.data()[i] = u(gen);
  return t;
}

tensor label_tensor(const std::vector<int>& labels) {
  tensor y(static_cast<Eigen::Index>(labels.size()), 1);
  for (std::size_t i = 0; i < labels.size(); ++i) y(static_cast<Eigen::Index>(i), 0) = labels[i];
  return y;
}

double loss_of(B::context& ctx, const tensor& z, const tensor& y) {
  return ayf::softmax_cross_entropy<B>(ctx, z, y).loss;
}

}  // namespace

TEST_CASE("softmax cross-entropy equals -log softmax and its gradient central differences", "[classifier][cpu]") {
  B::context ctx(1);
  const tensor z = uniform(6, 5, 3, -4, 4);
  const tensor y = label_tensor({0, 4, 2, 2, 1, 3});
  tensor grad;
  const auto r = ayf::softmax_cross_entropy<B>(ctx, z, y, &grad);
  long double expected = 0;
  std::size_t correct = 0;
  for (Eigen::Index i = 0; i < z.rows(); ++i) {
    long double sum = 0;
    Eigen::Index arg = 0;
    for (Eigen::Index j = 0; j < z.cols(); ++j) {
      sum += std::exp(static_cast<long double>(z(i, j)));
      if (z(i, j) > z(i, arg)) arg = j;
    }
    const auto c = static_cast<Eigen::Index>(y(i, 0));
    expected -= std::log(std::exp(static_cast<long double>(z(i, c))) / sum);
    correct += arg == c ? 1 : 0;
  }
  CHECK(r.loss == Approx(static_cast<double>(expected / 6)).epsilon(1e-13));
  CHECK(r.correct == correct);
  // Rows of the gradient sum to zero; directional derivatives match central differences.
  for (Eigen::Index i = 0; i < grad.rows(); ++i) CHECK(std::abs(grad.row(i).sum()) < 1e-15);
  for (std::uint64_t seed = 10; seed < 14; ++seed) {
    const tensor u = uniform(6, 5, seed);
    const double h = 1e-5;
    const double fd = (loss_of(ctx, z + h * u, y) - loss_of(ctx, z - h * u, y)) / (2 * h);
    CHECK((grad.array() * u.array()).sum() == Approx(fd).epsilon(1e-8));
  }
  // Large logits stay finite (shifted log-sum-exp).
  const tensor big = 1000.0 * z;
  CHECK(std::isfinite(loss_of(ctx, big, y)));
}

TEST_CASE("softmax cross-entropy rejects labels outside [0, K)", "[classifier][cpu]") {
  B::context ctx(1);
  const tensor z = uniform(3, 4, 1);
  CHECK_THROWS_WITH(ayf::softmax_cross_entropy<B>(ctx, z, label_tensor({0, 4, 1})),
                    Catch::Contains("labels") && Catch::Contains("row 1") && Catch::Contains("received 4"));
  CHECK_THROWS_WITH(ayf::softmax_cross_entropy<B>(ctx, z, label_tensor({0, -1, 1})), Catch::Contains("received -1"));
  CHECK_THROWS_WITH(ayf::softmax_cross_entropy<B>(ctx, z, label_tensor({0, 1})), Catch::Contains("labels"));
}

TEST_CASE("image classifier: logits are the last layer of its features, per sample", "[classifier][cpu]") {
  B::context ctx(1);
  const ayf::nn::classifier_config config{.height = 8, .width = 12, .channels = 2, .base_channels = 4, .groups = 2,
                                          .features = 6, .classes = 3, .seed = 5};
  ayf::nn::image_classifier<B> net(ctx, config);
  const tensor x = uniform(5, 8 * 12 * 2, 7);
  tensor logits;
  ayf::nn::image_classifier<B>::activations saved;
  net.forward(ctx, x, logits, saved);
  REQUIRE(logits.rows() == 5);
  REQUIRE(logits.cols() == 3);
  const tensor phi = net.features(saved);
  REQUIRE(phi.cols() == 6);
  CHECK(phi.minCoeff() > -0.2785);  // SiLU's minimum is about -0.27846
  const auto& layout = net.parameters().layout;
  const double* theta = net.parameters().values.data();
  const auto* w = layout.find("fc2.w");
  const auto* b = layout.find("fc2.b");
  REQUIRE(w != nullptr);
  REQUIRE(b != nullptr);
  for (Eigen::Index i = 0; i < 5; ++i) {
    for (Eigen::Index j = 0; j < 3; ++j) {
      double v = theta[b->offset + static_cast<std::size_t>(j)];
      for (Eigen::Index k = 0; k < 6; ++k) v += phi(i, k) * theta[w->offset + static_cast<std::size_t>(k * 3 + j)];
      CHECK(logits(i, j) == Approx(v).epsilon(1e-12));
    }
  }
  // A sample's logits do not depend on the rest of the batch.
  tensor one;
  ayf::nn::image_classifier<B>::activations saved_one;
  net.forward(ctx, tensor(x.row(3)), one, saved_one);
  CHECK((one.row(0) - logits.row(3)).cwiseAbs().maxCoeff() < 1e-12);
  // Inputs are checked.
  CHECK_THROWS_WITH(net.forward(ctx, uniform(2, 10, 1), one, saved_one), Catch::Contains("x"));
  CHECK_THROWS_WITH(ayf::nn::image_classifier<B>(ctx, {.height = 6}), Catch::Contains("height"));
}

TEST_CASE("image classifier backward matches directional differences of the cross-entropy", "[classifier][cpu]") {
  B::context ctx(1);
  const ayf::nn::classifier_config config{.height = 8, .width = 8, .channels = 1, .base_channels = 4, .groups = 2,
                                          .features = 5, .classes = 4, .seed = 9};
  ayf::nn::image_classifier<B> net(ctx, config);
  const tensor x = uniform(3, 64, 2);
  const tensor y = label_tensor({1, 3, 0});
  auto loss = [&]() {
    tensor logits;
    ayf::nn::image_classifier<B>::activations saved;
    net.forward(ctx, x, logits, saved);
    return ayf::softmax_cross_entropy<B>(ctx, logits, y).loss;
  };
  tensor logits, grad;
  ayf::nn::image_classifier<B>::activations saved;
  net.forward(ctx, x, logits, saved);
  ayf::softmax_cross_entropy<B>(ctx, logits, y, &grad);
  net.parameters().zero_gradients(ctx);
  net.backward(ctx, saved, grad);
  const tensor g = net.parameters().gradients;
  REQUIRE(g.cwiseAbs().maxCoeff() > 0);
  tensor& theta = net.parameters().values;
  const tensor theta0 = theta;
  const std::size_t p = net.size();
  for (std::uint64_t seed = 20; seed < 24; ++seed) {
    const tensor u = uniform(1, p, seed);
    const double h = 1e-5;
    theta = theta0 + h * u;
    const double up = loss();
    theta = theta0 - h * u;
    const double down = loss();
    theta = theta0;
    const double fd = (up - down) / (2 * h);
    CHECK((g.array() * u.array()).sum() == Approx(fd).epsilon(1e-6).margin(1e-10));
  }
  // Each parameter block is reached: a direction inside one block alone.
  for (const auto& block : net.parameters().layout.blocks()) {
    tensor u = tensor::Zero(1, static_cast<Eigen::Index>(p));
    const tensor r = uniform(1, block.extent.rows * block.extent.cols, 31);
    u.block(0, static_cast<Eigen::Index>(block.offset), 1, r.cols()) = r;
    const double h = 1e-5;
    theta = theta0 + h * u;
    const double up = loss();
    theta = theta0 - h * u;
    const double down = loss();
    theta = theta0;
    INFO("block " << block.name);
    CHECK((g.array() * u.array()).sum() == Approx((up - down) / (2 * h)).epsilon(1e-6).margin(1e-10));
  }
}

TEST_CASE("image classifier trained with Adam fits a small labelled set", "[classifier][train][cpu]") {
  // Class c: a bright c-th horizontal band on noise; 3 classes, 8 x 8 images.
  using F = ayf::eigen_backend<float>;
  F::context ctx(1);
  const std::size_t n = 48;
  std::mt19937_64 gen(4);
  std::normal_distribution<float> noise(0.0f, 0.3f);
  std::vector<float> xs(n * 64), ys(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = i % 3;
    ys[i] = static_cast<float>(c);
    for (std::size_t p = 0; p < 64; ++p) xs[i * 64 + p] = noise(gen) + ((p / 8) / 3 == c ? 1.0f : -0.5f);
  }
  const F::tensor x = F::from_host(ctx, xs, ayf::shape(n, 64)), y = F::from_host(ctx, ys, ayf::shape(n, 1));
  ayf::nn::image_classifier<F> net(ctx, {.height = 8, .width = 8, .base_channels = 4, .groups = 2, .features = 16,
                                          .classes = 3, .seed = 1});
  ayf::nn::adam<F> adam(ctx, net.parameters(), {.learning_rate = 1e-2});
  F::tensor logits, grad;
  ayf::nn::image_classifier<F>::activations saved;
  double first = 0;
  ayf::cross_entropy_result r;
  for (int step = 0; step < 60; ++step) {
    net.parameters().zero_gradients(ctx);
    net.forward(ctx, x, logits, saved);
    r = ayf::softmax_cross_entropy<F>(ctx, logits, y, &grad);
    if (step == 0) first = r.loss;
    net.backward(ctx, saved, grad);
    adam.step(ctx, net.parameters());
  }
  CHECK(first > 0.9);  // about log 3 at initialisation
  CHECK(r.loss < 0.1);
  CHECK(r.correct == n);
}
