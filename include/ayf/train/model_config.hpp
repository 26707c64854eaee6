// ayf/train/model_config.hpp: a model config as key -> string (checkpoint metadata "config.<key>", and
// "model" = its kind) and back. Each config lists its stored fields once in config_traits<Config>::fields,
// so a new field is one line there. Values: unsigned integers in decimal, bools as 1 / 0, doubles with 17
// significant digits (they read back exactly), vectors comma-separated ("1,2,4"). The initialisation
// seed is not stored: a loaded model takes its weights from the file.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "ayf/core/error.hpp"
#include "ayf/nn/mlp.hpp"
#include "ayf/nn/unet.hpp"

namespace ayf::train {

/// Specialised per config: `model` (the metadata value "model") and `fields(c, f)`, which calls
/// f("<key>", c.<member>) for every stored member (c const or not).
template <class Config>
struct config_traits;

template <>
struct config_traits<nn::mlp_config> {
  static constexpr std::string_view model = "mlp";
  template <class C, class F>
  static void fields(C& c, F&& f) {
    f("dims", c.dims);
    f("width", c.width);
    f("blocks", c.blocks);
    f("frequencies", c.frequencies);
    f("frequency_scale", c.frequency_scale);
    f("embed_s", c.embed_s);
    f("embed_lambda", c.embed_lambda);
    f("lambda_scale", c.lambda_scale);
    f("default_lambda", c.default_lambda);
    f("classes", c.classes);
  }
};

template <>
struct config_traits<nn::unet_config> {
  static constexpr std::string_view model = "unet";
  template <class C, class F>
  static void fields(C& c, F&& f) {
    f("height", c.height);
    f("width", c.width);
    f("channels", c.channels);
    f("base_channels", c.base_channels);
    f("channel_multipliers", c.channel_multipliers);
    f("blocks_per_level", c.blocks_per_level);
    f("groups", c.groups);
    f("norm_eps", c.norm_eps);
    f("embedding_channels", c.embedding_channels);
    f("frequencies", c.frequencies);
    f("frequency_scale", c.frequency_scale);
    f("embed_s", c.embed_s);
    f("embed_lambda", c.embed_lambda);
    f("lambda_scale", c.lambda_scale);
    f("default_lambda", c.default_lambda);
    f("classes", c.classes);
    f("attention_levels", c.attention_levels);
    f("attention_heads", c.attention_heads);
  }
};

/// A config with a config_traits specialisation.
template <class Config>
concept serializable_config = requires { config_traits<Config>::model; };

/// The config type of a model (what `config()` returns).
template <class Model>
using config_of = std::remove_cvref_t<decltype(std::declval<const Model&>().config())>;

namespace config_detail {

template <class T>
std::string to_text(const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v ? "1" : "0";
  } else if constexpr (std::is_same_v<T, std::vector<std::size_t>>) {
    std::string out;
    for (std::size_t k = 0; k < v.size(); ++k) {
      if (k > 0) out += ',';
      out += std::to_string(v[k]);
    }
    return out;
  } else {
    static_assert(std::is_unsigned_v<T> || std::is_same_v<T, double>, "config field: unsupported type");
    return ayf::detail::concat(v);  // 17 significant digits for doubles
  }
}

/// Parses `text` into `v`; false when it is not a complete value of T.
inline bool parse_unsigned(std::string_view text, std::uint64_t& v) {
  if (text.empty() || text.front() < '0' || text.front() > '9') return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc{} && end == text.data() + text.size();
}

template <class T>
bool from_text(std::string_view text, T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    if (text != "0" && text != "1") return false;
    v = text == "1";
    return true;
  } else if constexpr (std::is_same_v<T, std::vector<std::size_t>>) {
    std::vector<std::size_t> out;
    while (!text.empty()) {
      const std::size_t comma = text.find(',');
      std::uint64_t item = 0;
      if (!parse_unsigned(text.substr(0, comma), item) || item > SIZE_MAX) return false;
      out.push_back(static_cast<std::size_t>(item));
      if (comma == std::string_view::npos) break;
      text.remove_prefix(comma + 1);
      if (text.empty()) return false;  // a trailing comma
    }
    v = std::move(out);
    return true;
  } else if constexpr (std::is_same_v<T, double>) {
    double d = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || !std::isfinite(d)) return false;
    v = d;
    return true;
  } else {
    static_assert(std::is_unsigned_v<T>, "config field: unsupported type");
    std::uint64_t u = 0;
    if (!parse_unsigned(text, u) || u > static_cast<std::uint64_t>(static_cast<T>(-1))) return false;
    v = static_cast<T>(u);
    return true;
  }
}

template <class T>
constexpr std::string_view expected_text() {
  if constexpr (std::is_same_v<T, bool>) return "1 or 0";
  else if constexpr (std::is_same_v<T, std::vector<std::size_t>>) return "comma-separated unsigned integers";
  else if constexpr (std::is_same_v<T, double>) return "a finite number";
  else return "an unsigned integer";
}

}  // namespace config_detail

/// `c` as key -> string (the keys of the metadata "config.<key>", without the prefix).
template <serializable_config Config>
std::map<std::string, std::string> config_strings(const Config& c) {
  std::map<std::string, std::string> out;
  config_traits<Config>::fields(c, [&](const char* key, const auto& v) { out[key] = config_detail::to_text(v); });
  return out;
}

/// The Config stored in `strings` (keys without the "config." prefix); members not stored keep their
/// defaults (the seed). Raises ayf::error("<source>: metadata 'config.<key>' ...") when a key is missing
/// or its value does not parse, naming the expected form and the received text.
template <serializable_config Config>
Config config_from_strings(const std::map<std::string, std::string>& strings, std::string_view source) {
  Config c{};
  config_traits<Config>::fields(c, [&](const char* key, auto& v) {
    using T = std::remove_cvref_t<decltype(v)>;
    const auto it = strings.find(key);
    if (it == strings.end()) {
      throw error(ayf::detail::concat(source, ": metadata 'config.", key, "' missing (a ",
                                      config_traits<Config>::model, " config needs it)"));
    }
    if (!config_detail::from_text(it->second, v)) {
      throw error(ayf::detail::concat(source, ": metadata 'config.", key, "' expected ",
                                      config_detail::expected_text<T>(), ", received '", it->second, "'"));
    }
  });
  return c;
}

}  // namespace ayf::train
