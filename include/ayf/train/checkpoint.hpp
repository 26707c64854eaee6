// ayf/train/checkpoint.hpp: the complete training state in one safetensors file, written atomically
// (design.md §7): parameters, Adam moments and step count, EMA weights (optional), the iteration, the
// training context's Philox position (seed, offset) and metadata (format version, the model's kind and
// config as key=value strings (ayf/train/model_config.hpp), training settings, objective name). Float
// tensors keep their dtype (F32 / F64), so a resume is bit-exact. Every tensor and the metadata carry an
// FNV-1a checksum in the metadata ("checksum.<tensor>", "checksum.__metadata__", see
// ayf/io/safetensors.hpp). Saving and loading check that float tensors are finite and Adam's second
// moment is >= 0; loading checks every field and the checksums and raises ayf::error naming the file
// and the field. load_model builds a model from a checkpoint or an inference export (one tensor per
// parameter block, export_inference) without the caller restating its config.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/backend.hpp"
#include "ayf/core/error.hpp"
#include "ayf/io/safetensors.hpp"
#include "ayf/nn/optimizer.hpp"
#include "ayf/nn/parameters.hpp"
#include "ayf/train/model_config.hpp"

namespace ayf::train {

/// The format written into the metadata key "format" (v2: with checksums).
inline constexpr std::string_view checkpoint_format = "ayf.checkpoint.v2";
/// The format of older files, without checksums: still loaded, with every other check.
inline constexpr std::string_view checkpoint_format_v1 = "ayf.checkpoint.v1";
/// The format of an inference export (export_inference): one tensor per parameter block, with checksums.
inline constexpr std::string_view inference_format = "ayf.inference.v1";

/// What a checkpoint holds, by reference: the parameters are required; optimizer and ema may be
/// null (then they are neither written nor read). The rest are values: save writes them; load checks
/// `objective`, `model`, `config` and `settings` and sets `iteration`.
template <backend B>
struct training_state {
  nn::parameter_set<B>* parameters = nullptr;
  nn::adam<B>* optimizer = nullptr;
  nn::exponential_moving_average<B>* ema = nullptr;
  std::uint64_t iteration = 0;
  std::string objective;
  std::string model;                             ///< metadata "model" ("mlp", "unet"); empty: none
  std::map<std::string, std::string> config;     ///< the model's config, metadata "config.<key>"
  std::map<std::string, std::string> settings;   ///< training settings (batch, ...), metadata "train.<key>"
};

namespace checkpoint_detail {
template <backend B>
B backend_from(const nn::parameter_set<B>&);
}  // namespace checkpoint_detail

/// The backend of a model (from its parameters()).
template <class Model>
using backend_of_t = decltype(checkpoint_detail::backend_from(std::declval<Model&>().parameters()));

/// A model a checkpoint can describe: parameters() and a config() with config_traits.
template <class Model>
concept checkpointable_model = requires(Model& m) {
  m.parameters();
  m.config();
} && serializable_config<config_of<Model>>;

namespace checkpoint_detail {

/// The first value of `values` that is not finite (or negative, with `non_negative`), described as
/// "expected ..., received <v> at index <i>"; empty when there is none.
template <class T>
std::string value_problem(const std::vector<T>& values, bool non_negative) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    const double v = static_cast<double>(values[i]);
    if (!std::isfinite(v) || (non_negative && v < 0)) {
      return ayf::detail::concat("expected ", non_negative ? "finite values >= 0" : "finite values", ", received ", v,
                                 " at index ", i);
    }
  }
  return {};
}

inline std::vector<std::int64_t> to_i64(std::uint64_t a, std::uint64_t b) {
  std::vector<std::int64_t> out(2);
  std::memcpy(&out[0], &a, sizeof a);
  std::memcpy(&out[1], &b, sizeof b);
  return out;
}
inline std::uint64_t to_u64(std::int64_t v) {
  std::uint64_t out = 0;
  std::memcpy(&out, &v, sizeof v);
  return out;
}

inline std::string shape_text(const std::vector<std::size_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

/// A file opened by `where` (load_checkpoint, load_model): its content, and errors naming it.
struct opened_file {
  std::string_view where;
  std::filesystem::path path;
  io::safetensors_content content;
  std::string format;

  template <class... Parts>
  [[noreturn]] void fail(const Parts&... parts) const {
    throw error(ayf::detail::concat(where, ": '", path.string(), "': ", parts...));
  }
  [[nodiscard]] const std::string* meta(const std::string& key) const {
    const auto it = content.metadata.find(key);
    return it == content.metadata.end() ? nullptr : &it->second;
  }
  /// The metadata "config.<key>" entries, without the prefix.
  [[nodiscard]] std::map<std::string, std::string> config() const {
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : content.metadata) {
      if (key.starts_with("config.")) out[key.substr(7)] = value;
    }
    return out;
  }

  /// The tensor `name` with dtype T and shape `shape`, finite (and >= 0 for Adam's second moment).
  template <class T>
  std::vector<T> get(std::string_view name, const std::vector<std::size_t>& shape) const {
    const io::safetensors_tensor* t = content.find(name);
    if (t == nullptr) fail("tensor '", name, "' missing");
    constexpr io::safetensors_dtype wanted = io::safetensors_detail::dtype_of<T>();
    if (t->dtype != wanted) {
      fail("tensor '", name, "': dtype expected ", io::safetensors_detail::name_of(wanted), ", received ",
           io::safetensors_detail::name_of(t->dtype));
    }
    if (t->shape != shape) {
      fail("tensor '", name, "': shape expected ", shape_text(shape), ", received ", shape_text(t->shape),
           name == "parameters" ? " (parameter count differs from the model's)" : "");
    }
    std::vector<T> values = io::safetensors_values<T>(*t);
    if constexpr (std::is_floating_point_v<T>) {
      if (const std::string problem = value_problem(values, name == "adam.second_moment"); !problem.empty()) {
        fail("tensor '", name, "': ", problem);
      }
    }
    return values;
  }
};

/// Reads `path`, checks that its format is one of `formats` and, unless v1, its checksums.
inline opened_file open(std::string_view where, const std::filesystem::path& path,
                        std::initializer_list<std::string_view> formats) {
  opened_file f{where, path, {}, {}};
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) f.fail("no such file");
  try {
    f.content = io::read_safetensors(path);
  } catch (const error& e) {
    f.fail("corrupt or truncated safetensors file (", e.what(), ")");
  }
  const std::string* format = f.meta("format");
  bool known = false;
  std::string expected;
  for (const auto candidate : formats) {
    known = known || (format != nullptr && *format == candidate);
    expected += expected.empty() ? std::string(candidate) : " (or " + std::string(candidate) + ")";
  }
  if (!known) f.fail("metadata 'format' expected ", expected, ", received ", format ? *format : "none");
  f.format = *format;
  if (f.format != checkpoint_format_v1) {
    if (const std::string problem = io::safetensors_checksum_problem(f.content); !problem.empty()) f.fail(problem);
  }
  return f;
}

}  // namespace checkpoint_detail

/// Writes `state` and ctx.rng to `path` atomically (temp file, fsync, rename), with checksums. Raises
/// ayf::error("save_checkpoint: '<path>': tensor '<name>': expected finite values, ...") and writes nothing
/// when a parameter, moment or EMA weight is not finite or a second moment is negative.
template <backend B>
void save_checkpoint(const std::filesystem::path& path, typename B::context& ctx, const training_state<B>& state) {
  require(state.parameters != nullptr, "save_checkpoint", "state.parameters", "a parameter set", "null");
  using scalar = typename B::scalar;
  io::safetensors_content content;
  const std::size_t p = state.parameters->size();
  const auto add_checked = [&](const std::string& name, const std::vector<scalar>& values) {
    if (const std::string problem = checkpoint_detail::value_problem(values, name == "adam.second_moment");
        !problem.empty()) {
      throw error(ayf::detail::concat("save_checkpoint: '", path.string(), "': tensor '", name, "': ", problem));
    }
    content.add<scalar>(name, values, {p});
  };
  add_checked("parameters", B::to_host(ctx, state.parameters->values));
  if (state.optimizer != nullptr) {
    add_checked("adam.first_moment", B::to_host(ctx, state.optimizer->first_moment()));
    add_checked("adam.second_moment", B::to_host(ctx, state.optimizer->second_moment()));
    content.add<std::int64_t>("adam.steps", {static_cast<std::int64_t>(state.optimizer->steps())}, {1});
  }
  if (state.ema != nullptr) {
    add_checked("ema", B::to_host(ctx, state.ema->average()));
    content.add<std::int64_t>("ema.updates", {static_cast<std::int64_t>(state.ema->updates())}, {1});
  }
  content.add<std::int64_t>("iteration", {static_cast<std::int64_t>(state.iteration)}, {1});
  content.add<std::int64_t>("rng", checkpoint_detail::to_i64(ctx.rng.seed, ctx.rng.offset), {2});
  content.metadata["format"] = std::string(checkpoint_format);
  content.metadata["objective"] = state.objective;
  content.metadata["parameter_count"] = std::to_string(p);
  if (!state.model.empty()) content.metadata["model"] = state.model;
  for (const auto& [key, value] : state.config) content.metadata["config." + key] = value;
  for (const auto& [key, value] : state.settings) content.metadata["train." + key] = value;
  io::add_safetensors_checksums(content);
  io::write_safetensors(path, content);
}

/// Restores `state` (parameters, optimizer, ema, iteration) and ctx.rng from `path`. Checks the
/// format, the checksums (v2; v1 files have none), objective, model (when both name one), config and
/// settings (every key of state.config / state.settings, and no extra key; files written before
/// settings had their own prefix keep them as "config.<key>", which is accepted), each tensor's
/// presence, dtype and shape, that float tensors are finite and the second moment is >= 0. Raises
/// ayf::error("load_checkpoint: '<path>': <field> ...") on any mismatch; on error nothing has been modified.
template <backend B>
void load_checkpoint(const std::filesystem::path& path, typename B::context& ctx, training_state<B>& state) {
  require(state.parameters != nullptr, "load_checkpoint", "state.parameters", "a parameter set", "null");
  const auto f = checkpoint_detail::open("load_checkpoint", path, {checkpoint_format, checkpoint_format_v1});
  const std::string* objective = f.meta("objective");
  if (objective == nullptr || *objective != state.objective) {
    f.fail("metadata 'objective' expected '", state.objective, "', received '", objective ? *objective : "none", "'");
  }
  if (const std::string* model = f.meta("model"); model != nullptr && !state.model.empty() && *model != state.model) {
    f.fail("metadata 'model' expected '", state.model, "', received '", *model, "'");
  }
  for (const auto& [key, value] : state.config) {
    const std::string* stored = f.meta("config." + key);
    if (stored == nullptr || *stored != value) {
      f.fail("model config 'config.", key, "' expected ", value, ", received ", stored ? *stored : "none");
    }
  }
  for (const auto& [key, value] : state.settings) {
    const std::string* stored = f.meta("train." + key);
    if (stored == nullptr) stored = f.meta("config." + key);
    if (stored == nullptr || *stored != value) {
      f.fail("training setting 'train.", key, "' expected ", value, ", received ", stored ? *stored : "none");
    }
  }
  for (const auto& [key, value] : f.content.metadata) {
    if (key.starts_with("config.") && !state.config.contains(key.substr(7)) && !state.settings.contains(key.substr(7))) {
      f.fail("model config '", key, "' = ", value, " is not in the model's config");
    }
    if (key.starts_with("train.") && !state.settings.contains(key.substr(6))) {
      f.fail("training setting '", key, "' = ", value, " is not among the run's settings");
    }
  }
  const std::size_t p = state.parameters->size();
  // Check everything before modifying anything.
  using scalar = typename B::scalar;
  const auto params = f.get<scalar>("parameters", {p});
  std::vector<scalar> first, second, ema;
  std::int64_t adam_steps = 0;
  if (state.optimizer != nullptr) {
    first = f.get<scalar>("adam.first_moment", {p});
    second = f.get<scalar>("adam.second_moment", {p});
    adam_steps = f.get<std::int64_t>("adam.steps", {1})[0];
    if (adam_steps < 0) f.fail("tensor 'adam.steps': expected >= 0, received ", adam_steps);
  }
  const std::int64_t iteration = f.get<std::int64_t>("iteration", {1})[0];
  if (iteration < 0) f.fail("tensor 'iteration': expected >= 0, received ", iteration);
  std::int64_t ema_updates = 0;
  if (state.ema != nullptr) {
    ema = f.get<scalar>("ema", {p});
    // Files written before the EMA counted its updates: one update per iteration.
    ema_updates = f.content.find("ema.updates") != nullptr ? f.get<std::int64_t>("ema.updates", {1})[0] : iteration;
    if (ema_updates < 0) f.fail("tensor 'ema.updates': expected >= 0, received ", ema_updates);
  }
  const auto rng = f.get<std::int64_t>("rng", {2});

  const shape sh(1, p);
  B::copy(ctx, B::from_host(ctx, params, sh), state.parameters->values);
  if (state.optimizer != nullptr) {
    B::copy(ctx, B::from_host(ctx, first, sh), state.optimizer->first_moment());
    B::copy(ctx, B::from_host(ctx, second, sh), state.optimizer->second_moment());
    state.optimizer->set_steps(static_cast<std::uint64_t>(adam_steps));
  }
  if (state.ema != nullptr) {
    B::copy(ctx, B::from_host(ctx, ema, sh), state.ema->average());
    state.ema->set_updates(static_cast<std::uint64_t>(ema_updates));
  }
  state.iteration = static_cast<std::uint64_t>(iteration);
  ctx.rng.seed = checkpoint_detail::to_u64(rng[0]);
  ctx.rng.offset = checkpoint_detail::to_u64(rng[1]);
}

/// The training_state of any checkpointable model (its kind and config from config_traits).
template <backend B, checkpointable_model Model>
training_state<B> make_training_state(Model& model, nn::adam<B>* optimizer, nn::exponential_moving_average<B>* ema,
                                      std::string objective) {
  using traits = config_traits<config_of<Model>>;
  training_state<B> s;
  s.parameters = &model.parameters();
  s.optimizer = optimizer;
  s.ema = ema;
  s.objective = std::move(objective);
  s.model = std::string(traits::model);
  s.config = config_strings(model.config());
  return s;
}

/// Which weights of a training checkpoint load_model takes.
enum class checkpoint_weights { parameters, ema };

/// Writes an inference file: one tensor per block of model.parameters().layout, named by the block
/// ("in.w_x", "block0.w", ...), shape [rows, cols] of the block, dtype F32 / F64 as the backend's scalar,
/// holding the EMA weights (or the parameters when ema is null); metadata "format" = ayf.inference.v1,
/// "model", "config.<key>", "weights" (ema / parameters), "parameter_count" and checksums. Written
/// atomically; raises ayf::error("export_inference: '<path>': tensor '<block>': ...") and writes nothing
/// when a weight is not finite.
template <checkpointable_model Model>
void export_inference(const std::filesystem::path& path, typename backend_of_t<Model>::context& ctx,
                      const Model& model, const nn::exponential_moving_average<backend_of_t<Model>>* ema = nullptr) {
  using B = backend_of_t<Model>;
  using scalar = typename B::scalar;
  const auto& params = model.parameters();
  const std::vector<scalar> all = B::to_host(ctx, ema != nullptr ? ema->average() : params.values);
  io::safetensors_content content;
  for (const auto& block : params.layout.blocks()) {
    const std::size_t n = block.extent.rows * block.extent.cols;
    std::vector<scalar> values(all.begin() + static_cast<std::ptrdiff_t>(block.offset),
                               all.begin() + static_cast<std::ptrdiff_t>(block.offset + n));
    if (const std::string problem = checkpoint_detail::value_problem(values, false); !problem.empty()) {
      throw error(ayf::detail::concat("export_inference: '", path.string(), "': tensor '", block.name, "': ", problem));
    }
    content.add<scalar>(block.name, values, {block.extent.rows, block.extent.cols});
  }
  content.metadata["format"] = std::string(inference_format);
  content.metadata["model"] = std::string(config_traits<config_of<Model>>::model);
  content.metadata["weights"] = ema != nullptr ? "ema" : "parameters";
  content.metadata["parameter_count"] = std::to_string(params.size());
  for (const auto& [key, value] : config_strings(model.config())) content.metadata["config." + key] = value;
  io::add_safetensors_checksums(content);
  io::write_safetensors(path, content);
}

/// A model built from the config stored in `path` (metadata "model" and "config.<key>"), with the
/// weights of the file: an inference export's blocks, or a training checkpoint's "parameters" (or "ema"
/// with checkpoint_weights::ema). Raises ayf::error("load_model: '<path>': ...") naming the missing or
/// bad key, the model kind, or the tensor whose dtype / shape / values do not fit.
template <checkpointable_model Model>
Model load_model(const std::filesystem::path& path, typename backend_of_t<Model>::context& ctx,
                 checkpoint_weights weights = checkpoint_weights::parameters) {
  using B = backend_of_t<Model>;
  using scalar = typename B::scalar;
  using traits = config_traits<config_of<Model>>;
  const auto f = checkpoint_detail::open("load_model", path, {checkpoint_format, checkpoint_format_v1, inference_format});
  const std::string* kind = f.meta("model");
  if (kind == nullptr || *kind != traits::model) {
    f.fail("metadata 'model' expected '", traits::model, "', received '", kind ? *kind : "none", "'");
  }
  const std::string source = ayf::detail::concat("load_model: '", path.string(), "'");
  const auto config = config_from_strings<config_of<Model>>(f.config(), source);
  std::optional<Model> built;
  try {
    built.emplace(ctx, config);
  } catch (const error& e) {
    f.fail("the stored config does not build a ", traits::model, " (", e.what(), ")");
  }
  Model& model = *built;
  auto& params = model.parameters();
  const std::size_t p = params.size();
  std::vector<scalar> values;
  if (f.format == inference_format) {
    values.resize(p);
    for (const auto& block : params.layout.blocks()) {
      const auto v = f.get<scalar>(block.name, {block.extent.rows, block.extent.cols});
      std::copy(v.begin(), v.end(), values.begin() + static_cast<std::ptrdiff_t>(block.offset));
    }
    if (f.content.tensors.size() != params.layout.blocks().size()) {
      f.fail("holds ", f.content.tensors.size(), " tensors, the model has ", params.layout.blocks().size(),
             " parameter blocks");
    }
  } else {
    values = f.get<scalar>(weights == checkpoint_weights::ema ? "ema" : "parameters", {p});
  }
  B::copy(ctx, B::from_host(ctx, values, shape(1, p)), params.values);
  return std::move(model);
}

}  // namespace ayf::train
