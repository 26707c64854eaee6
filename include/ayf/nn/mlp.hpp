// ayf/nn/mlp.hpp: a residual MLP that models a velocity field v(x, t, y) (teacher) or the average
// velocity F(x, t, s, lambda, y) of the Euler flow map f = x + (s - t) F (student, spec §2), with
// forward, forward_jvp (primal and tangent stacked as [2B, .], one GEMM per linear layer; design.md §4)
// and backward, which reuses the primal activations saved by forward or forward_jvp.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "ayf/core/model.hpp"
#include "ayf/nn/parameters.hpp"

namespace ayf::nn {

/// Architecture: z_0 = x W_x + e(t) W_t [+ e(s) W_s + e(lambda) W_lambda + onehot(y) W_y] + b_0;
/// z_{l+1} = z_l + silu(z_l) W_l + b_l for l < blocks; F = silu(z_L) W_out + b_out.
/// e(u) = [sin(omega_k u), cos(omega_k u)]_{k=1..K}, omega_k = frequency_scale * pi * k: a bounded
/// bandwidth (spec §8.1, measured: features up to ~25 rad per unit time train; ~400 break AYF-EMD).
struct mlp_config {
  std::size_t dims = 2;             ///< D, the data dimension
  std::size_t width = 256;          ///< hidden width W
  std::size_t blocks = 3;           ///< residual blocks
  std::size_t frequencies = 8;      ///< K per embedded scalar
  double frequency_scale = 1.0;     ///< omega_k = frequency_scale * pi * k
  bool embed_s = false;             ///< a flow-map student: F depends on s
  bool embed_lambda = false;        ///< the guidance scale is an input (spec §7)
  double lambda_scale = 1.0 / 3.0;  ///< lambda is embedded as e(lambda * lambda_scale)
  double default_lambda = 1.0;      ///< used when cond.guidance is null
  std::size_t classes = 0;          ///< 0: unconditional; labels in [0, classes), null_class = -1
  std::uint64_t seed = 0;           ///< Philox seed of the initialisation
};

/// Activations of one pass, owned by the caller and reused across steps (no allocation once warm).
/// After forward_jvp the tensors are stacked [2B, .]: rows [0, B) primal, rows [B, 2B) tangent.
template <backend B>
struct mlp_activations {
  std::size_t batch = 0;
  bool stacked = false;
  typename B::tensor input, embed_t, embed_s, embed_lambda, onehot, output;
  std::vector<typename B::tensor> z, a;  // residual stream and silu(z), per level 0..blocks
};

namespace detail {
struct silu {
  template <class T>
  AYF_HOST_DEVICE T operator()(T z) const {
    using std::exp;
    return z / (T(1) + exp(-z));
  }
};
/// d silu(z) = sigmoid(z) (1 + z (1 - sigmoid(z))) dz.
struct silu_tangent {
  template <class T>
  AYF_HOST_DEVICE T operator()(T z, T dz) const {
    using std::exp;
    const T sg = T(1) / (T(1) + exp(-z));
    return sg * (T(1) + z * (T(1) - sg)) * dz;
  }
};
/// sin(p), and cos(p) dp: the time embedding and its tangent.
struct sine {
  template <class T>
  AYF_HOST_DEVICE T operator()(T p) const {
    using std::sin;
    return sin(p);
  }
};
struct cos_times {
  template <class T>
  AYF_HOST_DEVICE T operator()(T p, T dp) const {
    using std::cos;
    return cos(p) * dp;
  }
};
struct onehot_equal {
  template <class T>
  AYF_HOST_DEVICE T operator()(T label, T column) const { return label == column ? T(1) : T(0); }
};
}  // namespace detail

template <backend B>
class mlp_flow_model {
public:
  using tensor = typename B::tensor;
  using context = typename B::context;
  using scalar = typename B::scalar;
  using activations = mlp_activations<B>;

  mlp_flow_model(context& ctx, const mlp_config& config)
      : m_config(validated(config)), m_params(ctx, make_layout(m_config, m_blocks)) {
    initialise(ctx);
    make_constants(ctx);
  }

  /// A student that starts as exactly its teacher's Euler step: the teacher's weights fill the
  /// common prefix of the flat buffer, the s and lambda weights start at zero (spec §2).
  static mlp_flow_model from_teacher(context& ctx, const mlp_flow_model& teacher, mlp_config student) {
    const mlp_config& t = teacher.config();
    require(student.dims == t.dims && student.width == t.width && student.blocks == t.blocks &&
                student.frequencies == t.frequencies && student.frequency_scale == t.frequency_scale &&
                student.classes == t.classes,
            "mlp_flow_model::from_teacher", "student", "the teacher's dims, width, blocks, frequencies and classes",
            "a different architecture");
    require(!t.embed_s && !t.embed_lambda, "mlp_flow_model::from_teacher", "teacher",
            "a velocity model (no s or lambda inputs)", "a model with s or lambda inputs");
    mlp_flow_model out(ctx, student);
    B::fill(ctx, out.m_params.values, scalar(0));
    const std::size_t n = teacher.m_params.size();
    B::copy(ctx, B::slice(ctx, teacher.m_params.values, 0, shape(1, n)), B::slice(ctx, out.m_params.values, 0, shape(1, n)));
    return out;
  }

  [[nodiscard]] const mlp_config& config() const { return m_config; }
  parameter_set<B>& parameters() { return m_params; }
  const parameter_set<B>& parameters() const { return m_params; }

  /// out = F(x, t, s). x, out: [B, D]; t, s: [B, 1]; cond.labels / cond.guidance: [B, 1] or null.
  void forward(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
               tensor& out) {
    forward(ctx, x, t, s, cond, out, m_scratch);
  }

  /// forward, keeping the activations in `saved` for backward.
  void forward(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
               tensor& out, activations& saved) {
    run(ctx, x, t, s, cond, nullptr, nullptr, nullptr, saved);
    B::copy(ctx, saved.output, out);
  }

  /// Velocity-field call (teachers): out = F(x, t, t).
  void operator()(context& ctx, const tensor& x, const tensor& t, const condition<B>& cond, tensor& out) {
    forward(ctx, x, t, t, cond, out, m_scratch);
  }

  /// Primal and tangent in one pass: out = F(x, t, s), dout = dF[dx, dt, ds] (lambda and labels
  /// held fixed). dx: [B, D]; dt, ds: [B, 1]. Saves the primal activations for backward.
  void forward_jvp(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
                   const tensor& dx, const tensor& dt, const tensor& ds, tensor& out, tensor& dout,
                   activations& saved) {
    run(ctx, x, t, s, cond, &dx, &dt, &ds, saved);
    const std::size_t n = saved.batch, d = m_config.dims;
    B::copy(ctx, B::slice(ctx, std::as_const(saved.output), 0, shape(n, d)), out);
    B::copy(ctx, B::slice(ctx, std::as_const(saved.output), n * d, shape(n, d)), dout);
  }

  /// Accumulates dL/dtheta into parameters().gradients, given dL/dF ([B, D]) at the pass that
  /// filled `saved` (forward or the primal of forward_jvp; no second forward).
  void backward(context& ctx, const activations& saved, const tensor& grad_output) {
    const std::size_t n = saved.batch, w = m_config.width;
    require_shape("mlp_flow_model::backward", "grad_output", shape(n, m_config.dims), B::shape_of(grad_output));
    ensure_ones(ctx, n);
    const auto ones = B::slice(ctx, std::as_const(m_ones), 0, shape(n, 1));
    auto primal = [&](const tensor& stackable) {
      const shape sh = B::shape_of(stackable);
      return B::slice(ctx, stackable, 0, shape(n, sh.cols));
    };
    const std::size_t levels = m_config.blocks;
    B::resize(ctx, m_grad_a, shape(n, w));
    B::resize(ctx, m_grad_z, shape(n, w));
    // Output layer: F = a_L W_out + b_out.
    B::gemm(ctx, transpose::yes, transpose::no, scalar(1), primal(saved.a[levels]), grad_output, scalar(1),
            m_params.gradient(ctx, m_blocks.w_out));
    B::gemm(ctx, transpose::yes, transpose::no, scalar(1), ones, grad_output, scalar(1), m_params.gradient(ctx, m_blocks.b_out));
    B::gemm(ctx, transpose::no, transpose::yes, scalar(1), grad_output, m_params.value(ctx, m_blocks.w_out), scalar(0), m_grad_a);
    B::transform(ctx, m_grad_z, detail::silu_tangent{}, primal(saved.z[levels]), m_grad_a);
    // Residual blocks, last to first: z_{l+1} = z_l + a_l W_l + b_l.
    for (std::size_t l = levels; l-- > 0;) {
      B::gemm(ctx, transpose::yes, transpose::no, scalar(1), primal(saved.a[l]), m_grad_z, scalar(1),
              m_params.gradient(ctx, m_blocks.w_block[l]));
      B::gemm(ctx, transpose::yes, transpose::no, scalar(1), ones, m_grad_z, scalar(1), m_params.gradient(ctx, m_blocks.b_block[l]));
      B::gemm(ctx, transpose::no, transpose::yes, scalar(1), m_grad_z, m_params.value(ctx, m_blocks.w_block[l]), scalar(0), m_grad_a);
      B::transform(ctx, m_grad_a, detail::silu_tangent{}, primal(saved.z[l]), m_grad_a);
      B::scale_sum_rows(ctx, m_grad_z, 1.0, m_grad_z, 1.0, m_grad_a);
    }
    // First layer.
    auto accumulate = [&](const tensor& input, std::size_t block) {
      B::gemm(ctx, transpose::yes, transpose::no, scalar(1), primal(input), m_grad_z, scalar(1), m_params.gradient(ctx, block));
    };
    accumulate(saved.input, m_blocks.w_x);
    accumulate(saved.embed_t, m_blocks.w_t);
    if (m_config.embed_s) accumulate(saved.embed_s, m_blocks.w_s);
    if (m_config.embed_lambda) accumulate(saved.embed_lambda, m_blocks.w_lambda);
    if (m_config.classes > 0) accumulate(saved.onehot, m_blocks.w_y);
    B::gemm(ctx, transpose::yes, transpose::no, scalar(1), ones, m_grad_z, scalar(1), m_params.gradient(ctx, m_blocks.b_in));
  }

private:
  struct block_indices {
    std::size_t w_x = 0, w_t = 0, w_y = 0, b_in = 0, w_out = 0, b_out = 0, w_s = 0, w_lambda = 0;
    std::vector<std::size_t> w_block, b_block;
  };

  static mlp_config validated(const mlp_config& c) {
    require(c.dims >= 1, "mlp_config", "dims", "at least 1", c.dims);
    require(c.width >= 1, "mlp_config", "width", "at least 1", c.width);
    require(c.frequencies >= 1, "mlp_config", "frequencies", "at least 1", c.frequencies);
    require(c.frequency_scale > 0, "mlp_config", "frequency_scale", "a positive scale", c.frequency_scale);
    return c;
  }

  /// The teacher's blocks come first, so a student's buffer starts with its teacher's.
  static parameter_layout make_layout(const mlp_config& c, block_indices& k) {
    parameter_layout layout;
    const std::size_t e = 2 * c.frequencies;
    k.w_x = layout.add("in.w_x", c.dims, c.width);
    k.w_t = layout.add("in.w_t", e, c.width);
    if (c.classes > 0) k.w_y = layout.add("in.w_y", c.classes, c.width);
    k.b_in = layout.add("in.b", 1, c.width);
    for (std::size_t l = 0; l < c.blocks; ++l) {
      k.w_block.push_back(layout.add("block" + std::to_string(l) + ".w", c.width, c.width));
      k.b_block.push_back(layout.add("block" + std::to_string(l) + ".b", 1, c.width));
    }
    k.w_out = layout.add("out.w", c.width, c.dims);
    k.b_out = layout.add("out.b", 1, c.dims);
    if (c.embed_s) k.w_s = layout.add("in.w_s", e, c.width);
    if (c.embed_lambda) k.w_lambda = layout.add("in.w_lambda", e, c.width);
    return layout;
  }

  /// Weights N(0, 1 / fan_in) (residual blocks scaled by 1 / sqrt(blocks)), biases 0, s and lambda
  /// weights 0 (so a fresh student ignores s and lambda until trained).
  void initialise(context& model_ctx) {
    context ctx(m_config.seed);
    B::fill(model_ctx, m_params.values, scalar(0));
    const std::size_t e = 2 * m_config.frequencies;
    const double fan_in = static_cast<double>(m_config.dims + e + m_config.classes);
    auto normal = [&](std::size_t block, double std) {
      auto v = m_params.value(ctx, block);
      B::randn(ctx, v);
      B::scale_sum_rows(ctx, v, std, v);
    };
    normal(m_blocks.w_x, 1 / std::sqrt(fan_in));
    normal(m_blocks.w_t, 1 / std::sqrt(fan_in));
    if (m_config.classes > 0) normal(m_blocks.w_y, 1 / std::sqrt(fan_in));
    const double width = static_cast<double>(m_config.width);
    for (std::size_t l = 0; l < m_config.blocks; ++l) {
      normal(m_blocks.w_block[l], 1 / std::sqrt(width * static_cast<double>(m_config.blocks)));
    }
    normal(m_blocks.w_out, 1 / std::sqrt(width));
  }

  /// omega = [omega_1..omega_K, omega_1..omega_K], phase = [0..0, pi/2..pi/2]: e(u) = sin(u omega + phase).
  void make_constants(context& ctx) {
    const std::size_t k = m_config.frequencies;
    std::vector<scalar> omega(2 * k), phase(2 * k), columns(m_config.classes);
    constexpr double pi = 3.141592653589793238462643383279;
    for (std::size_t i = 0; i < k; ++i) {
      omega[i] = omega[i + k] = static_cast<scalar>(m_config.frequency_scale * pi * static_cast<double>(i + 1));
      phase[i] = scalar(0);
      phase[i + k] = static_cast<scalar>(pi / 2);
    }
    for (std::size_t c = 0; c < m_config.classes; ++c) columns[c] = static_cast<scalar>(c);
    m_omega = B::from_host(ctx, omega, shape(1, 2 * k));
    m_phase = B::from_host(ctx, phase, shape(1, 2 * k));
    m_class_columns = B::from_host(ctx, columns, shape(1, m_config.classes));
    m_class_ones = B::from_host(ctx, std::vector<scalar>(m_config.classes, scalar(1)), shape(1, m_config.classes));
  }

  void ensure_ones(context& ctx, std::size_t rows) {
    if (B::shape_of(m_ones).rows < rows) {
      B::resize(ctx, m_ones, shape(rows, 1));
      B::fill(ctx, m_ones, scalar(1));
    }
  }

  /// e(u * scale) into the primal rows of `features` and, with a tangent, e'(.) du into the rest.
  void embed(context& ctx, const tensor& u, const tensor* du, double scale, std::size_t n, tensor& features) {
    const std::size_t e = 2 * m_config.frequencies;
    auto phase = B::slice(ctx, features, 0, shape(n, e));
    const auto ones = B::slice(ctx, std::as_const(m_ones), 0, shape(n, 1));
    B::gemm(ctx, transpose::no, transpose::no, static_cast<scalar>(scale), u, m_omega, scalar(0), phase);
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), ones, m_phase, scalar(1), phase);
    if (du != nullptr) {
      auto tangent = B::slice(ctx, features, n * e, shape(n, e));
      B::gemm(ctx, transpose::no, transpose::no, static_cast<scalar>(scale), *du, m_omega, scalar(0), tangent);
      B::transform(ctx, tangent, detail::cos_times{}, phase, tangent);
    }
    B::transform(ctx, phase, detail::sine{}, phase);
  }

  /// The shared pass. Without tangents: rows = B; with them: every activation is [2B, .].
  void run(context& ctx, const tensor& x, const tensor& t, const tensor& s, const condition<B>& cond,
           const tensor* dx, const tensor* dt, const tensor* ds, activations& act) {
    const shape sx = B::shape_of(x);
    const std::size_t n = sx.rows, d = m_config.dims, w = m_config.width, e = 2 * m_config.frequencies;
    const bool jvp = dx != nullptr;
    require_shape("mlp_flow_model", "x", shape(n, d), sx);
    require_vector("mlp_flow_model", "t", n, B::shape_of(t));
    require_vector("mlp_flow_model", "s", n, B::shape_of(s));
    if (jvp) {
      require_shape("mlp_flow_model::forward_jvp", "dx", sx, B::shape_of(*dx));
      require_vector("mlp_flow_model::forward_jvp", "dt", n, B::shape_of(*dt));
      require_vector("mlp_flow_model::forward_jvp", "ds", n, B::shape_of(*ds));
    }
    const std::size_t rows = jvp ? 2 * n : n;
    act.batch = n;
    act.stacked = jvp;
    ensure_ones(ctx, rows);
    const auto ones = B::slice(ctx, std::as_const(m_ones), 0, shape(n, 1));

    // Inputs, stacked [x; dx].
    B::resize(ctx, act.input, shape(rows, d));
    B::copy(ctx, x, B::slice(ctx, act.input, 0, shape(n, d)));
    if (jvp) B::copy(ctx, *dx, B::slice(ctx, act.input, n * d, shape(n, d)));
    B::resize(ctx, act.embed_t, shape(rows, e));
    embed(ctx, t, jvp ? dt : nullptr, 1.0, n, act.embed_t);

    // First layer.
    act.z.resize(m_config.blocks + 1);
    act.a.resize(m_config.blocks + 1);
    tensor& z0 = act.z[0];
    B::resize(ctx, z0, shape(rows, w));
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.input, m_params.value(ctx, m_blocks.w_x), scalar(0), z0);
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.embed_t, m_params.value(ctx, m_blocks.w_t), scalar(1), z0);
    auto z0_primal = B::slice(ctx, z0, 0, shape(n, w));
    if (m_config.embed_s) {
      B::resize(ctx, act.embed_s, shape(rows, e));
      embed(ctx, s, jvp ? ds : nullptr, 1.0, n, act.embed_s);
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.embed_s, m_params.value(ctx, m_blocks.w_s), scalar(1), z0);
    }
    if (m_config.embed_lambda) {
      B::resize(ctx, act.embed_lambda, shape(n, e));
      if (cond.guidance != nullptr) {
        require_vector("mlp_flow_model", "cond.guidance", n, B::shape_of(*cond.guidance));
        embed(ctx, *cond.guidance, nullptr, m_config.lambda_scale, n, act.embed_lambda);
      } else {
        B::resize(ctx, m_default_lambda, shape(n, 1));
        B::fill(ctx, m_default_lambda, static_cast<scalar>(m_config.default_lambda));
        embed(ctx, m_default_lambda, nullptr, m_config.lambda_scale, n, act.embed_lambda);
      }
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.embed_lambda, m_params.value(ctx, m_blocks.w_lambda),
              scalar(1), z0_primal);
    }
    if (m_config.classes > 0) {
      B::resize(ctx, act.onehot, shape(n, m_config.classes));
      if (cond.labels != nullptr) {
        require_vector("mlp_flow_model", "cond.labels", n, B::shape_of(*cond.labels));
        // onehot[i, c] = (label_i == c); the null class -1 gives a zero row.
        B::gemm(ctx, transpose::no, transpose::no, scalar(1), *cond.labels, m_class_ones, scalar(0), act.onehot);
        B::resize(ctx, m_class_grid, shape(n, m_config.classes));
        B::gemm(ctx, transpose::no, transpose::no, scalar(1), ones, m_class_columns, scalar(0), m_class_grid);
        B::transform(ctx, act.onehot, detail::onehot_equal{}, act.onehot, m_class_grid);
      } else {
        B::fill(ctx, act.onehot, scalar(0));
      }
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.onehot, m_params.value(ctx, m_blocks.w_y), scalar(1), z0_primal);
    }
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), ones, m_params.value(ctx, m_blocks.b_in), scalar(1), z0_primal);

    // Residual blocks and the output layer.
    for (std::size_t l = 0; l <= m_config.blocks; ++l) {
      activate(ctx, act.z[l], act.a[l], n, jvp);
      if (l == m_config.blocks) break;
      tensor& next = act.z[l + 1];
      B::copy(ctx, act.z[l], next);
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.a[l], m_params.value(ctx, m_blocks.w_block[l]), scalar(1), next);
      B::gemm(ctx, transpose::no, transpose::no, scalar(1), ones, m_params.value(ctx, m_blocks.b_block[l]), scalar(1),
              B::slice(ctx, next, 0, shape(n, w)));
    }
    B::resize(ctx, act.output, shape(rows, d));
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), act.a[m_config.blocks], m_params.value(ctx, m_blocks.w_out),
            scalar(0), act.output);
    B::gemm(ctx, transpose::no, transpose::no, scalar(1), ones, m_params.value(ctx, m_blocks.b_out), scalar(1),
            B::slice(ctx, act.output, 0, shape(n, d)));
  }

  /// a = silu(z) on the primal rows; da = silu'(z) dz on the tangent rows.
  void activate(context& ctx, const tensor& z, tensor& a, std::size_t n, bool jvp) {
    const std::size_t w = m_config.width;
    B::resize(ctx, a, B::shape_of(z));
    const auto z_primal = B::slice(ctx, z, 0, shape(n, w));
    if (jvp) {
      B::transform(ctx, B::slice(ctx, a, n * w, shape(n, w)), detail::silu_tangent{}, z_primal,
                   B::slice(ctx, z, n * w, shape(n, w)));
    }
    B::transform(ctx, B::slice(ctx, a, 0, shape(n, w)), detail::silu{}, z_primal);
  }

  mlp_config m_config;
  block_indices m_blocks;
  parameter_set<B> m_params;
  activations m_scratch;
  tensor m_omega{}, m_phase{}, m_class_columns{}, m_class_ones{}, m_class_grid{}, m_ones{}, m_default_lambda{};
  tensor m_grad_a{}, m_grad_z{};
};

}  // namespace ayf::nn
