#include "phalanx/params.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "phalanx/error.hpp"
#include "phalanx/suggest.hpp"

namespace phalanx {

const char* param_type_name(ParamType t) {
  switch (t) {
    case ParamType::Bool: return "boolean";
    case ParamType::Int: return "integer";
    case ParamType::Double: return "number";
    case ParamType::String: return "string";
    case ParamType::IntList: return "list of integers";
    case ParamType::DoubleList: return "list of numbers";
  }
  return "?";
}

const char* need_name(Need need) {
  switch (need) {
    case Need::ServerGradient: return "the server's gradient";
    case Need::WorkerIds: return "worker ids";
    case Need::Parameters: return "the server parameters";
    case Need::DefenceOracle: return "the defence oracle";
    case Need::ByzantineShapeOnly: return "only the shape of the Byzantine messages";
  }
  return "?";
}

namespace {

std::string located(const std::string& path, const Value& v, const std::string& fallback_location) {
  const std::string& where = v.location().empty() ? fallback_location : v.location();
  return where.empty() ? path : where + ": " + path;
}

bool is_integral(const Value& v) {
  if (v.type() == Value::Type::Int) return true;
  return v.type() == Value::Type::Double && std::isfinite(v.as_double()) &&
         v.as_double() == std::floor(v.as_double()) && std::fabs(v.as_double()) < 9e15;
}

// Converts `v` to the spec's type or explains why it cannot.
Value coerce_scalar(const Value& v, ParamType scalar, const std::string& what) {
  switch (scalar) {
    case ParamType::Bool:
      if (v.type() == Value::Type::Bool) return v;
      break;
    case ParamType::Int:
      if (is_integral(v)) {
        Value out(static_cast<std::int64_t>(v.as_double()));
        out.set_location(v.location());
        return out;
      }
      break;
    case ParamType::Double:
      if (v.is_number()) {
        Value out(v.as_double());
        out.set_location(v.location());
        return out;
      }
      break;
    case ParamType::String:
      if (v.type() == Value::Type::String) return v;
      break;
    default: break;
  }
  const std::string type = param_type_name(scalar);
  const char* article = type[0] == 'i' ? "an " : "a ";
  throw Error(what + " must be " + article + type + ", got " + Value::type_name(v.type()) + " '" + v.to_string() + "'");
}

void check_range(const ParamSpec& spec, const Value& v, const std::string& what) {
  if (!v.is_number()) return;
  double x = v.as_double();
  if (!std::isfinite(x)) throw Error(what + " must be finite, got " + v.to_string());
  if ((spec.min && x < *spec.min) || (spec.max && x > *spec.max)) {
    std::ostringstream range;
    range << "[" << (spec.min ? Value(*spec.min).to_string() : std::string("-inf")) << ", "
          << (spec.max ? Value(*spec.max).to_string() : std::string("inf")) << "]";
    throw Error(what + " = " + v.to_string() + " is out of range " + range.str());
  }
}

}  // namespace

Params Params::validate(const std::vector<ParamSpec>& specs, const Value& given, const std::string& path,
                        const std::vector<std::string>& ignored_keys) {
  Params p;
  p.path_ = path;
  p.section_location_ = given.location();
  if (!given.is_null() && given.type() != Value::Type::Map)
    throw Error(located(path, given, "") + " must be a map of parameters, got '" + given.to_string() + "'");

  if (!given.is_null()) {
    for (const auto& [key, value] : given.as_map()) {
      bool ignored = false;
      for (const auto& k : ignored_keys) ignored = ignored || k == key;
      if (ignored) continue;
      const ParamSpec* spec = nullptr;
      for (const auto& s : specs)
        if (s.name == key) spec = &s;
      std::string what = located(path + "." + key, value, given.location());
      if (!spec) {
        std::string msg = what + ": unknown parameter '" + key + "'";
        // The section's core keys (optimizer.lr, ...) are valid too: leaving them out sent a user who
        // misspelt `lr` to the plugin's own list, which does not hold it (docs/reliability.md, hostile inputs).
        std::vector<std::string> valid;
        for (const auto& k : ignored_keys)
          if (k != "name") valid.push_back(k);
        for (const auto& s : specs) valid.push_back(s.name);
        const std::string nearest = nearest_name(key, valid);
        if (!nearest.empty()) msg += "; did you mean '" + nearest + "'?";
        std::string names;
        for (const auto& v : valid) names += (names.empty() ? "" : ", ") + v;
        msg += names.empty() ? " (this plugin takes no parameters)" : " (valid: " + names + ")";
        throw Error(msg);
      }
      if (value.is_null() && spec->default_value.is_null()) {
        p.values_.set(key, value);
        continue;
      }
      Value checked;
      if (spec->type == ParamType::IntList || spec->type == ParamType::DoubleList) {
        ParamType element = spec->type == ParamType::IntList ? ParamType::Int : ParamType::Double;
        Value::List items;
        if (value.type() == Value::Type::List) {
          for (const auto& item : value.as_list()) items.push_back(coerce_scalar(item, element, what + " element"));
        } else {
          items.push_back(coerce_scalar(value, element, what));  // a scalar is a list of one
        }
        for (const auto& item : items) check_range(*spec, item, what + " element");
        checked = Value::list(std::move(items));
      } else {
        checked = coerce_scalar(value, spec->type, what);
        check_range(*spec, checked, what);
        if (!spec->choices.empty()) {
          bool ok = false;
          for (const auto& c : spec->choices) ok = ok || c == checked.as_string();
          if (!ok) {
            std::string list;
            for (const auto& c : spec->choices) list += (list.empty() ? "" : ", ") + c;
            throw Error(what + " = '" + checked.as_string() + "' is not one of: " + list);
          }
        }
      }
      checked.set_location(value.location());
      p.values_.set(key, std::move(checked));
    }
  }
  for (const auto& spec : specs)
    if (!p.values_.find(spec.name)) p.values_.set(spec.name, spec.default_value);
  return p;
}

bool Params::has(const std::string& name) const {
  const Value* v = values_.find(name);
  return v && !v->is_null();
}

const Value& Params::require(const std::string& name) const {
  const Value* v = values_.find(name);
  if (!v) throw Error("internal: plugin at '" + path_ + "' read parameter '" + name + "' it never declared");
  if (v->is_null()) throw Error(where(name) + " has no value and no default; set it in the config");
  return *v;
}

std::string Params::where(const std::string& name) const {
  const Value* v = values_.find(name);
  std::string loc = v && !v->location().empty() ? v->location() : section_location_;
  return (loc.empty() ? "" : loc + ": ") + path_ + "." + name;
}

bool Params::get_bool(const std::string& name) const { return require(name).as_bool(); }
std::int64_t Params::get_int(const std::string& name) const { return require(name).as_int(); }
double Params::get_double(const std::string& name) const { return require(name).as_double(); }
std::string Params::get_string(const std::string& name) const { return require(name).as_string(); }

std::vector<std::int64_t> Params::get_int_list(const std::string& name) const {
  std::vector<std::int64_t> out;
  for (const auto& v : require(name).as_list()) out.push_back(v.as_int());
  return out;
}

std::vector<double> Params::get_double_list(const std::string& name) const {
  std::vector<double> out;
  for (const auto& v : require(name).as_list()) out.push_back(v.as_double());
  return out;
}

std::int64_t Params::get_int_or(const std::string& name, std::int64_t fallback) const {
  return has(name) ? get_int(name) : fallback;
}

void Params::fail(const std::string& name, const std::string& problem) const {
  throw Error(where(name) + ": " + problem);
}

}  // namespace phalanx
