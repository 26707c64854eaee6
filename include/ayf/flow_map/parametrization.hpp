// ayf/flow_map/parametrization.hpp: flow maps from an average-velocity model F (spec §2):
// the general form f = c_skip(t,s) x + c_out(t,s) F with c_skip(t,t) = 1, c_out(t,t) = 0, and the
// AYF Euler form c_skip = 1, c_out = s - t, i.e. f(x, t, s) = x + (s - t) F(x, t, s).
#pragma once

#include <type_traits>
#include <utility>

#include "ayf/core/model.hpp"

namespace ayf {

/// c_skip = 1, c_out = s - t: the Euler parametrization (spec §2, boxed).
struct euler_coefficients {
  template <class T>
  AYF_HOST_DEVICE T skip(T /*t*/, T /*s*/) const { return T(1); }
  template <class T>
  AYF_HOST_DEVICE T out(T t, T s) const { return s - t; }
};

namespace detail {
/// k.skip(t, s) and k.out(t, s) as elementwise functors.
template <class K>
struct skip_coefficient {
  K k;
  template <class T>
  AYF_HOST_DEVICE T operator()(T t, T s) const { return k.skip(t, s); }
};
template <class K>
struct out_coefficient {
  K k;
  template <class T>
  AYF_HOST_DEVICE T operator()(T t, T s) const { return k.out(t, s); }
};
}  // namespace detail

/// f(x, t, s) = c_skip(t, s) x + c_out(t, s) F(x, t, s) for a flow_map_model F and coefficient
/// functor with `skip(t, s)` and `out(t, s)` (HD, trivially copyable). `Model` may be a reference.
template <backend B, class Model, class Coefficients = euler_coefficients>
class skip_out_flow_map {
  static_assert(flow_map_model<std::remove_reference_t<Model>, B>,
                "skip_out_flow_map needs a model with forward(ctx, x, t, s, cond, out) giving F");

public:
  explicit skip_out_flow_map(Model model, Coefficients coefficients = {})
      : m_model(std::forward<Model>(model)), m_coefficients(coefficients) {}

  /// out = f(x, t, s). x, out: [B, D]; t, s: [B, 1]. out must not alias x.
  void map(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
           const typename B::tensor& s, const condition<B>& cond, typename B::tensor& out);

  std::remove_reference_t<Model>& model() { return m_model; }

private:
  Model m_model;
  Coefficients m_coefficients;
  typename B::tensor m_average_velocity{}, m_skip{}, m_out{};
};

// Out of the class, not inline, so that an explicit instantiation declaration
// (ayf/backends/eigen/compiled.hpp) keeps a user's translation unit from instantiating it.
template <backend B, class Model, class Coefficients>
void skip_out_flow_map<B, Model, Coefficients>::map(typename B::context& ctx, const typename B::tensor& x,
                                                    const typename B::tensor& t, const typename B::tensor& s,
                                                    const condition<B>& cond, typename B::tensor& out) {
  const std::size_t batch = B::shape_of(x).rows;
  require_vector("flow_map", "t", batch, B::shape_of(t));
  require_vector("flow_map", "s", batch, B::shape_of(s));
  m_model.forward(ctx, x, t, s, cond, m_average_velocity);
  const Coefficients k = m_coefficients;
  B::transform(ctx, m_skip, detail::skip_coefficient<Coefficients>{k}, t, s);
  B::transform(ctx, m_out, detail::out_coefficient<Coefficients>{k}, t, s);
  B::scale_sum_rows(ctx, out, m_skip, x, m_out, m_average_velocity);
}

/// The Euler flow map f = x + (s - t) F.
template <backend B, class Model>
using euler_flow_map = skip_out_flow_map<B, Model, euler_coefficients>;

/// Wraps an average-velocity model as an Euler flow map; an lvalue is held by reference.
template <backend B, class Model>
auto make_euler_flow_map(Model&& model) {
  return euler_flow_map<B, Model>(std::forward<Model>(model));
}

/// The consistency model of a flow map: f(x, t) = f(x, t, 0) (spec §2, special cases).
template <backend B, class FlowMap>
class flow_map_consistency_model {
  static_assert(flow_map<std::remove_reference_t<FlowMap>, B>,
                "flow_map_consistency_model needs a flow map with map(ctx, x, t, s, cond, out)");

public:
  explicit flow_map_consistency_model(FlowMap flow) : m_flow(std::forward<FlowMap>(flow)) {}

  /// out = f(x, t, 0). x, out: [B, D]; t: [B, 1].
  void denoise(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
               const condition<B>& cond, typename B::tensor& out) {
    B::resize(ctx, m_zero, B::shape_of(t));
    B::fill(ctx, m_zero, typename B::scalar(0));
    m_flow.map(ctx, x, t, m_zero, cond, out);
  }

private:
  FlowMap m_flow;
  typename B::tensor m_zero{};
};

/// Views a flow map as a consistency model; an lvalue is held by reference.
template <backend B, class FlowMap>
auto as_consistency_model(FlowMap&& flow) {
  return flow_map_consistency_model<B, FlowMap>(std::forward<FlowMap>(flow));
}

/// A velocity field as an average-velocity model: F(x, t, s) = v(x, t) for every s, so its Euler
/// flow map is the teacher's Euler step x + (s - t) v(x, t) (spec §2: the student's initialisation).
template <backend B, class Velocity>
class velocity_average_velocity {
  static_assert(velocity_field<std::remove_reference_t<Velocity>, B>,
                "velocity_average_velocity needs a velocity field v(ctx, x, t, cond, out)");

public:
  explicit velocity_average_velocity(Velocity v) : m_velocity(std::forward<Velocity>(v)) {}

  void forward(typename B::context& ctx, const typename B::tensor& x, const typename B::tensor& t,
               const typename B::tensor& /*s*/, const condition<B>& cond, typename B::tensor& out) {
    m_velocity(ctx, x, t, cond, out);
  }

private:
  Velocity m_velocity;
};

/// The Euler-step flow map of a velocity field: f(x, t, s) = x + (s - t) v(x, t).
template <backend B, class Velocity>
auto velocity_as_flow_map(Velocity&& v) {
  using average = velocity_average_velocity<B, Velocity>;
  return euler_flow_map<B, average>(average(std::forward<Velocity>(v)));
}

}  // namespace ayf
