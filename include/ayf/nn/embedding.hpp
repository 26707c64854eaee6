// ayf/nn/embedding.hpp: the sinusoidal embedding of a scalar input, e(u) = [sin(omega_k c u),
// cos(omega_k c u)]_{k=1..K} with omega_k = frequency_scale * pi * k (a bounded bandwidth, spec §8.1),
// and the conditioning embedding of a flow-map network,
//   z = e(t) W_t [+ e(s) W_s] [+ e(lambda) W_lambda] [+ W_y[y]] + b,
// with tangent dz = e'(t) dt W_t + e'(s) ds W_s (lambda and the class are held fixed).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ayf/core/model.hpp"
#include "ayf/nn/linear.hpp"

namespace ayf::nn {

namespace detail {
/// sin(p), and cos(p) v: the embedding and its tangent (or its adjoint). `work`: a libm call costs
/// about as much as 32 elementwise operations (the host backends' transform splits by it).
struct sine {
  static constexpr std::size_t work = 32;
  template <class T>
  AYF_HOST_DEVICE T operator()(T p) const {
    using std::sin;
    return sin(p);
  }
};
struct cos_times {
  static constexpr std::size_t work = 32;
  template <class T>
  AYF_HOST_DEVICE T operator()(T p, T v) const {
    using std::cos;
    return cos(p) * v;
  }
};
/// {sin(p), cos(p) v}: an embedding's value and tangent in one pass (one sincos on the host).
struct sine_and_cos_times {
  static constexpr std::size_t work = 48;
  template <class T>
  AYF_HOST_DEVICE fn::value_pair<T> operator()(T p, T v) const {
    using std::cos;
    using std::sin;
    return {sin(p), cos(p) * v};
  }
};
}  // namespace detail

/// y = e(c u): u: [R, 1], y: [R, 2K]; no parameters. Tangent rows: dy = cos(omega c u + phase) omega c du.
template <backend B>
class sinusoidal_embedding {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using state = no_state;

  sinusoidal_embedding() = default;
  /// e(u * input_scale) with K frequencies omega_k = frequency_scale * pi * k.
  sinusoidal_embedding(std::size_t frequencies, double frequency_scale, double input_scale = 1.0)
      : m_frequencies(frequencies), m_frequency_scale(frequency_scale), m_input_scale(input_scale) {
    require(frequencies >= 1, "sinusoidal_embedding", "frequencies", "at least 1", frequencies);
    require(frequency_scale > 0, "sinusoidal_embedding", "frequency_scale", "a positive scale", frequency_scale);
  }

  [[nodiscard]] std::size_t input_size() const { return 1; }
  [[nodiscard]] std::size_t output_size() const { return 2 * m_frequencies; }
  void initialise(context& /*ctx*/, parameter_set<B>& /*params*/) const {}

  template <class Params>
  void forward(context& ctx, Params& /*params*/, const tensor& u, tensor& y, state& /*st*/, workspace<B>& /*ws*/,
               std::size_t n) const {
    detail::require_stacked<B>("sinusoidal_embedding::forward", u, 1, n);
    const std::size_t f = output_size();
    make_constants(ctx);
    B::resize(ctx, y, shape(B::shape_of(u).rows, f));
    auto phase = detail::rows_of<B>(ctx, y, 0, n);
    angles(ctx, detail::rows_of<B>(ctx, u, 0, n), phase);
    if (B::shape_of(u).rows == 2 * n) {
      auto tangent = detail::rows_of<B>(ctx, y, n, n);
      B::gemm(ctx, transpose::no, transpose::no, static_cast<scalar>(m_input_scale), detail::rows_of<B>(ctx, u, n, n),
              m_omega, scalar(0), tangent);
      B::transform_pair(ctx, phase, tangent, detail::sine_and_cos_times{}, phase, tangent);
    } else {
      B::transform(ctx, phase, detail::sine{}, phase);
    }
  }

  /// du = sum_j dy_j cos(phase_j) omega_j c (the input gradient; there are no parameters).
  template <class Params>
  void backward(context& ctx, Params& /*params*/, const tensor& u, const state& /*st*/, const tensor& grad_y,
                tensor* grad_u, workspace<B>& ws, gradient_mode mode) const {
    const std::size_t n = B::shape_of(grad_y).rows, f = output_size();
    require_shape("sinusoidal_embedding::backward", "grad_y", shape(n, f), B::shape_of(grad_y));
    if (!wants_inputs(mode) || grad_u == nullptr) return;
    make_constants(ctx);
    auto phase = detail::scratch<B>(ctx, ws.rows_a, shape(n, f));
    angles(ctx, detail::rows_of<B>(ctx, u, 0, n), phase);
    B::transform(ctx, phase, detail::cos_times{}, phase, grad_y);
    B::gemm(ctx, transpose::no, transpose::yes, static_cast<scalar>(m_input_scale), phase, m_omega, scalar(0), *grad_u);
  }

private:
  /// phase = c u omega + [0..0, pi/2..pi/2], so that sin(phase) = [sin, cos].
  template <class U, class Out>
  void angles(context& ctx, const U& u, Out&& phase) const {
    B::gemm(ctx, transpose::no, transpose::no, static_cast<scalar>(m_input_scale), u, m_omega, scalar(0), phase);
    B::broadcast_add(ctx, phase, 1.0, m_phase);
  }

  /// omega = [omega_1..omega_K, omega_1..omega_K] and the phases, built once per layer.
  void make_constants(context& ctx) const {
    const std::size_t k = m_frequencies;
    if (B::shape_of(m_omega).cols == 2 * k) return;
    std::vector<scalar> omega(2 * k), phase(2 * k);
    constexpr double pi = 3.141592653589793238462643383279;
    for (std::size_t i = 0; i < k; ++i) {
      omega[i] = omega[i + k] = static_cast<scalar>(m_frequency_scale * pi * static_cast<double>(i + 1));
      phase[i] = scalar(0);
      phase[i + k] = static_cast<scalar>(pi / 2);
    }
    m_omega = B::from_host(ctx, omega, shape(1, 2 * k));
    m_phase = B::from_host(ctx, phase, shape(1, 2 * k));
  }

  std::size_t m_frequencies = 1;
  double m_frequency_scale = 1.0, m_input_scale = 1.0;
  mutable tensor m_omega{}, m_phase{};
};

/// What the conditioning embedding depends on.
struct conditioning_config {
  std::size_t width = 0;            ///< E, the embedding width
  std::size_t frequencies = 8;      ///< K per embedded scalar
  double frequency_scale = 1.0;     ///< omega_k = frequency_scale * pi * k (spec §8.1)
  bool embed_s = false;             ///< a flow-map student: z depends on s
  bool embed_lambda = false;        ///< the guidance scale is an input (spec §7)
  double lambda_scale = 1.0 / 3.0;  ///< lambda is embedded as e(lambda * lambda_scale)
  double default_lambda = 1.0;      ///< used when the guidance is not given
  std::size_t classes = 0;          ///< 0: unconditional; labels in [0, classes), null_class = -1 gives 0
};

/// The conditioning of a model config (mlp_config, unet_config: the same field names) at width E.
template <class Config>
conditioning_config conditioning_of(const Config& c, std::size_t width) {
  conditioning_config cc;
  cc.width = width;
  cc.frequencies = c.frequencies;
  cc.frequency_scale = c.frequency_scale;
  cc.embed_s = c.embed_s;
  cc.embed_lambda = c.embed_lambda;
  cc.lambda_scale = c.lambda_scale;
  cc.default_lambda = c.default_lambda;
  cc.classes = c.classes;
  return cc;
}

/// What backward needs: the sinusoidal features (stacked for t and s) and the labels.
template <backend B>
struct conditioning_state {
  std::size_t batch = 0;
  typename B::tensor embed_t{}, embed_s{}, embed_lambda{}, lambda{}, labels{};
  bool has_labels = false;
};

/// z = e(t) W_t [+ e(s) W_s] + ([e(lambda) W_lambda] + [W_y[y]] + b on the primal rows): [R, E].
/// Blocks: "<name>.t.w", "<name>.y" (the class table, [classes, E]), "<name>.b", "<name>.s.w",
/// "<name>.lambda.w". Backward accumulates the parameter gradients (t, s, lambda and the labels are
/// not differentiated).
template <backend B>
class conditioning_embedding {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using state = conditioning_state<B>;

  conditioning_embedding() = default;
  conditioning_embedding(parameter_layout& layout, const std::string& name, const conditioning_config& c)
      : m_config(c), m_time(c.frequencies, c.frequency_scale), m_lambda(c.frequencies, c.frequency_scale, c.lambda_scale) {
    require(c.width >= 1, "conditioning_embedding", "width", "at least 1", c.width);
    const std::size_t f = 2 * c.frequencies;
    m_w_t = linear<B>(layout, name + ".t", f, c.width, false);
    if (c.classes > 0) m_w_y = layout.add(name + ".y", c.classes, c.width);
    m_b = layout.add(name + ".b", 1, c.width);
    if (c.embed_s) m_w_s = linear<B>(layout, name + ".s", f, c.width, false);
    if (c.embed_lambda) m_w_lambda = linear<B>(layout, name + ".lambda", f, c.width, false);
  }

  [[nodiscard]] const conditioning_config& config() const { return m_config; }
  [[nodiscard]] std::size_t output_size() const { return m_config.width; }
  /// The fan-in of z: one embedding and the classes (the s and lambda weights start at zero).
  [[nodiscard]] std::size_t fan_in() const { return 2 * m_config.frequencies + m_config.classes; }

  /// W_t and W_y ~ N(0, 1 / fan_in) (fan_in given by the model), b = 0, W_s = W_lambda = 0 (so a
  /// fresh student ignores s and lambda until trained).
  void initialise(context& ctx, parameter_set<B>& params, double fan_in) const {
    detail::normal_init<B>(ctx, params, m_w_t.weight_block(), 1 / std::sqrt(fan_in));
    if (m_config.classes > 0) detail::normal_init<B>(ctx, params, m_w_y, 1 / std::sqrt(fan_in));
    B::fill(ctx, params.value(ctx, m_b), scalar(0));
    if (m_config.embed_s) B::fill(ctx, params.value(ctx, m_w_s.weight_block()), scalar(0));
    if (m_config.embed_lambda) B::fill(ctx, params.value(ctx, m_w_lambda.weight_block()), scalar(0));
  }
  void initialise(context& ctx, parameter_set<B>& params) const {
    initialise(ctx, params, static_cast<double>(fan_in()));
  }

  /// z: [R, E] with R = n, or R = 2n when dt and ds are given (rows [n, 2n) the tangent).
  /// t, s: [n, 1]; cond.labels / cond.guidance: [n, 1] or null.
  void forward(context& ctx, parameter_set<B>& params, const tensor& t, const tensor& s, const condition<B>& cond,
               const tensor* dt, const tensor* ds, tensor& z, state& st, workspace<B>& ws) const {
    const std::size_t n = B::shape_of(t).rows, e = m_config.width;
    require_vector("conditioning_embedding", "t", n, B::shape_of(t));
    require_vector("conditioning_embedding", "s", n, B::shape_of(s));
    const bool jvp = dt != nullptr;
    if (jvp) {
      require(ds != nullptr, "conditioning_embedding", "ds", "a tangent with dt", "null");
      require_vector("conditioning_embedding", "dt", n, B::shape_of(*dt));
      require_vector("conditioning_embedding", "ds", n, B::shape_of(*ds));
    }
    st.batch = n;
    no_state none;
    // e(t) W_t [+ e(s) W_s] over the stacked rows.
    embed(ctx, params, t, dt, n, st.embed_t, ws);
    m_w_t.forward(ctx, params, st.embed_t, z, none, ws, n);
    if (m_config.embed_s) {
      embed(ctx, params, s, ds, n, st.embed_s, ws);
      m_w_s.forward(ctx, params, st.embed_s, z, none, ws, n, true);
    }
    B::resize(ctx, z, shape(jvp ? 2 * n : n, e));
    auto primal = detail::rows_of<B>(ctx, z, 0, n);
    if (m_config.embed_lambda) {
      B::resize(ctx, st.lambda, shape(n, 1));
      if (cond.guidance != nullptr) {
        require_vector("conditioning_embedding", "cond.guidance", n, B::shape_of(*cond.guidance));
        B::copy(ctx, *cond.guidance, st.lambda);
      } else {
        B::fill(ctx, st.lambda, static_cast<scalar>(m_config.default_lambda));
      }
      m_lambda.forward(ctx, params, st.lambda, st.embed_lambda, none, ws, n);
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), st.embed_lambda, params.value(ctx, m_w_lambda.weight_block()),
              scalar(1), primal);
    }
    st.has_labels = m_config.classes > 0 && cond.labels != nullptr;
    if (st.has_labels) {
      require_vector("conditioning_embedding", "cond.labels", n, B::shape_of(*cond.labels));
      B::copy(ctx, *cond.labels, st.labels);
      // W_y[y]: the row of the class; the null class -1 (or no labels) gives a zero row.
      auto rows = detail::scratch<B>(ctx, ws.image_a, shape(n, e));
      B::gather_rows(ctx, rows, params.value(ctx, m_w_y), st.labels);
      B::scale_sum_rows(ctx, primal, 1.0, primal, 1.0, rows);
    }
    B::broadcast_add(ctx, primal, 1.0, params.value(ctx, m_b));
  }

  /// Given dL/dz ([n, E]): accumulates dW_t, dW_s, dW_lambda, dW_y (rows of the labels) and db.
  void backward(context& ctx, parameter_set<B>& params, const state& st, const tensor& grad_z, workspace<B>& ws) const {
    const std::size_t n = st.batch;
    require_shape("conditioning_embedding::backward", "grad_z", shape(n, m_config.width), B::shape_of(grad_z));
    m_w_t.backward(ctx, params, st.embed_t, no_state{}, grad_z, nullptr, ws, gradient_mode::parameters);
    if (m_config.embed_s) m_w_s.backward(ctx, params, st.embed_s, no_state{}, grad_z, nullptr, ws, gradient_mode::parameters);
    if (m_config.embed_lambda) {
      m_w_lambda.backward(ctx, params, st.embed_lambda, no_state{}, grad_z, nullptr, ws, gradient_mode::parameters);
    }
    if (st.has_labels) B::scatter_add_rows(ctx, params.gradient(ctx, m_w_y), st.labels, grad_z);
    B::sum_columns(ctx, params.gradient(ctx, m_b), 1.0, grad_z);
  }

private:
  /// e(u) into `features` ([n or 2n, 2K], stacked with e'(u) du when du is given).
  void embed(context& ctx, parameter_set<B>& params, const tensor& u, const tensor* du, std::size_t n,
             tensor& features, workspace<B>& ws) const {
    no_state none;
    if (du == nullptr) {
      m_time.forward(ctx, params, u, features, none, ws, n);
      return;
    }
    B::resize(ctx, m_stacked, shape(2 * n, 1));
    B::copy(ctx, u, detail::rows_of<B>(ctx, m_stacked, 0, n));
    B::copy(ctx, *du, detail::rows_of<B>(ctx, m_stacked, n, n));
    m_time.forward(ctx, params, m_stacked, features, none, ws, n);
  }

  conditioning_config m_config{};
  sinusoidal_embedding<B> m_time{}, m_lambda{};
  linear<B> m_w_t{}, m_w_s{}, m_w_lambda{};
  std::size_t m_w_y = 0, m_b = 0;
  mutable tensor m_stacked{};
};

}  // namespace ayf::nn
