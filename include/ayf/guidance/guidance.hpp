// ayf/guidance/guidance.hpp: guided teachers as velocity fields (spec §7): autoguidance
// v_weak + lambda (v - v_weak) (Eq. 3), classifier-free guidance v_uncond + w (v_cond - v_uncond),
// and weighted sums of any velocity fields.
#pragma once

#include <array>
#include <tuple>
#include <type_traits>
#include <utility>

#include "ayf/core/functors.hpp"
#include "ayf/core/model.hpp"

namespace ayf {

namespace detail {
/// Writes lambda and 1 - lambda per sample: from cond.guidance when given, else `fallback`.
template <backend B>
void guidance_weights(typename B::context& ctx, const condition<B>& cond, double fallback,
                      std::size_t batch, typename B::tensor& lambda,
                      typename B::tensor& one_minus_lambda) {
  B::resize(ctx, lambda, shape::vector(batch));
  if (cond.guidance != nullptr) {
    require_vector("guidance", "cond.guidance", batch, B::shape_of(*cond.guidance));
    B::copy(ctx, *cond.guidance, lambda);
  } else {
    B::fill(ctx, lambda, static_cast<typename B::scalar>(fallback));
  }
  B::transform(ctx, one_minus_lambda, fn::one_minus{}, lambda);
}
}  // namespace detail

/// Autoguidance (spec Eq. 3): v = lambda v_strong + (1 - lambda) v_weak, lambda per sample from
/// cond.guidance ([B, 1]) or `default_lambda`. Both teachers see the same labels.
template <backend B, class Strong, class Weak>
class autoguided_velocity {
  static_assert(velocity_field<std::remove_reference_t<Strong>, B>, "Strong must be a velocity field");
  static_assert(velocity_field<std::remove_reference_t<Weak>, B>, "Weak must be a velocity field");

public:
  autoguided_velocity(Strong strong, Weak weak, double default_lambda = 2.0)
      : m_strong(std::forward<Strong>(strong)), m_weak(std::forward<Weak>(weak)),
        m_default_lambda(default_lambda) {}

  /// out = v_weak + lambda (v_strong - v_weak). x, out: [B, D]; t: [B, 1].
  void operator()(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const condition<B>& cond, typename B::tensor& out) {
    const condition<B> teacher_cond{cond.labels, nullptr};
    m_strong(ctx, x, t, teacher_cond, m_v_strong);
    m_weak(ctx, x, t, teacher_cond, m_v_weak);
    detail::guidance_weights<B>(ctx, cond, m_default_lambda, B::shape_of(x).rows, m_lambda, m_rest);
    B::scale_sum_rows(ctx, out, m_lambda, m_v_strong, m_rest, m_v_weak);
  }

  [[nodiscard]] double default_lambda() const { return m_default_lambda; }

private:
  Strong m_strong;
  Weak m_weak;
  double m_default_lambda;
  typename B::tensor m_v_strong{}, m_v_weak{}, m_lambda{}, m_rest{};
};

template <backend B, class Strong, class Weak>
auto make_autoguided_velocity(Strong&& strong, Weak&& weak, double default_lambda = 2.0) {
  return autoguided_velocity<B, Strong, Weak>(std::forward<Strong>(strong), std::forward<Weak>(weak),
                                              default_lambda);
}

/// Classifier-free guidance: v = w v(x, t, y) + (1 - w) v(x, t, null_class), w per sample from
/// cond.guidance or `default_scale`. Requires cond.labels.
template <backend B, class Velocity>
class classifier_free_guided_velocity {
  static_assert(velocity_field<std::remove_reference_t<Velocity>, B>,
                "Velocity must be a velocity field");

public:
  explicit classifier_free_guided_velocity(Velocity v, double default_scale = 3.0)
      : m_velocity(std::forward<Velocity>(v)), m_default_scale(default_scale) {}

  void operator()(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const condition<B>& cond, typename B::tensor& out) {
    const std::size_t batch = B::shape_of(x).rows;
    require(cond.labels != nullptr, "classifier_free_guided_velocity", "cond.labels",
            "class labels to guide toward", "none");
    require_vector("classifier_free_guided_velocity", "cond.labels", batch, B::shape_of(*cond.labels));
    B::resize(ctx, m_null_labels, shape::vector(batch));
    B::fill(ctx, m_null_labels, static_cast<typename B::scalar>(null_class));
    m_velocity(ctx, x, t, condition<B>{cond.labels, nullptr}, m_v_cond);
    m_velocity(ctx, x, t, condition<B>{&m_null_labels, nullptr}, m_v_uncond);
    detail::guidance_weights<B>(ctx, cond, m_default_scale, batch, m_scale, m_rest);
    B::scale_sum_rows(ctx, out, m_scale, m_v_cond, m_rest, m_v_uncond);
  }

private:
  Velocity m_velocity;
  double m_default_scale;
  typename B::tensor m_null_labels{}, m_v_cond{}, m_v_uncond{}, m_scale{}, m_rest{};
};

template <backend B, class Velocity>
auto make_classifier_free_guided_velocity(Velocity&& v, double default_scale = 3.0) {
  return classifier_free_guided_velocity<B, Velocity>(std::forward<Velocity>(v), default_scale);
}

/// v = sum_k w_k v_k(x, t) with fixed weights: any linear composition of velocity fields.
template <backend B, class... Fields>
class weighted_sum_velocity {
  static_assert(sizeof...(Fields) >= 1, "weighted_sum_velocity needs at least one field");
  static_assert((velocity_field<std::remove_reference_t<Fields>, B> && ...),
                "every term must be a velocity field");

public:
  weighted_sum_velocity(std::array<double, sizeof...(Fields)> weights, Fields... fields)
      : m_weights(weights), m_fields(std::forward<Fields>(fields)...) {}

  void operator()(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const condition<B>& cond, typename B::tensor& out) {
    [&]<std::size_t... K>(std::index_sequence<K...>) {
      (accumulate<K>(ctx, x, t, cond, out), ...);
    }(std::index_sequence_for<Fields...>{});
  }

private:
  template <std::size_t K>
  void accumulate(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
                  const condition<B>& cond, typename B::tensor& out) {
    std::get<K>(m_fields)(ctx, x, t, cond, m_term);
    if constexpr (K == 0) {
      B::scale_sum_rows(ctx, out, m_weights[0], m_term);
    } else {
      B::scale_sum_rows(ctx, out, 1.0, out, m_weights[K], m_term);
    }
  }

  std::array<double, sizeof...(Fields)> m_weights;
  std::tuple<Fields...> m_fields;
  typename B::tensor m_term{};
};

template <backend B, class... Fields>
auto make_weighted_sum_velocity(std::array<double, sizeof...(Fields)> weights, Fields&&... fields) {
  return weighted_sum_velocity<B, Fields...>(weights, std::forward<Fields>(fields)...);
}

}  // namespace ayf
