#include "phalanx/core/config/config.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

std::string where(const std::string& origin, const YAML::Mark& mark) {
  return origin + ":" + std::to_string(mark.line + 1);
}

// Plain scalars follow YAML 1.2's core schema; quoted scalars always stay strings.
Value scalar_value(const YAML::Node& node) {
  const std::string& text = node.Scalar();
  if (node.Tag() == "!") return Value(text);
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") return Value();
  if (text == "true" || text == "True" || text == "TRUE") return Value(true);
  if (text == "false" || text == "False" || text == "FALSE") return Value(false);
  // std::stoll/std::stod without their exceptions (no digits, out of range), which made every word in a
  // config cost two throws: an alias bomb of 100000 words took seconds to refuse, and over ten seconds
  // under the sanitizers (tests/fuzz/config_fuzz). Same rules: the whole text must convert, in range.
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(begin, &end, 10);
  if (end != begin && errno != ERANGE && end == begin + text.size()) return Value(static_cast<std::int64_t>(i));
  errno = 0;
  const double d = std::strtod(begin, &end);
  if (end != begin && errno != ERANGE && end == begin + text.size() && text.find_first_of("0123456789") != std::string::npos)
    return Value(d);
  if (text == ".inf" || text == "+.inf") return Value(HUGE_VAL);
  if (text == "-.inf") return Value(-HUGE_VAL);
  if (text == ".nan" || text == ".NaN") return Value(std::nan(""));
  return Value(text);
}

// A config is a few hundred values; YAML aliases nested in aliases ("billion laughs") could make
// converting a small file take exponential time and memory, so conversion stops at this many (docs/reliability.md).
constexpr std::size_t kMaxConfigValues = 100'000;
// An alias inside its own anchor (`a: &a [*a]`) makes yaml-cpp build a cycle, and converting it recursed
// until the stack overflowed (SIGSEGV) before the value budget ran out (tests/fuzz/config_fuzz). Real
// configs nest a few levels.
constexpr int kMaxConfigDepth = 64;

Value convert(const YAML::Node& node, const std::string& origin, std::size_t& budget, int depth = 0) {
  if (budget-- == 0)
    throw Error(where(origin, node.Mark()) + ": the config expands to more than " + std::to_string(kMaxConfigValues) +
                " values (aliases repeated inside aliases?); a pipeline config needs far fewer");
  if (depth > kMaxConfigDepth)
    throw Error(where(origin, node.Mark()) + ": the config nests more than " + std::to_string(kMaxConfigDepth) +
                " levels deep (an alias used inside its own anchor, like `a: &a [*a]`?)");
  Value out;
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: break;
    case YAML::NodeType::Scalar: out = scalar_value(node); break;
    case YAML::NodeType::Sequence: {
      Value::List items;
      for (const auto& item : node) items.push_back(convert(item, origin, budget, depth + 1));
      out = Value::list(std::move(items));
      break;
    }
    case YAML::NodeType::Map: {
      out = Value::map({});
      for (const auto& kv : node) {
        if (!kv.first.IsScalar())
          throw Error(where(origin, kv.first.Mark()) + ": map keys must be plain names");
        const std::string key = kv.first.Scalar();
        if (out.find(key))
          throw Error(where(origin, kv.first.Mark()) + ": key '" + key + "' appears twice in the same map");
        Value child = convert(kv.second, origin, budget, depth + 1);
        // Null values have no mark of their own in yaml-cpp; the key's line is the useful one.
        child.set_location(where(origin, kv.second.IsNull() ? kv.first.Mark() : kv.second.Mark()));
        if (child.is_null() || child.type() == Value::Type::Map || child.type() == Value::Type::List)
          child.set_location(where(origin, kv.first.Mark()));
        out.as_map().emplace_back(key, std::move(child));
      }
      break;
    }
  }
  out.set_location(where(origin, node.Mark()));
  return out;
}

}  // namespace

Value parse_yaml(const std::string& text, const std::string& origin) {
  try {
    YAML::Node root = YAML::Load(text);
    std::size_t budget = kMaxConfigValues;
    return convert(root, origin, budget);
  } catch (const YAML::Exception& e) {
    throw Error(origin + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
}

Value load_yaml_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read config file '" + path + "': " + std::strerror(errno));
  std::stringstream buffer;
  buffer << in.rdbuf();
  Value root = parse_yaml(buffer.str(), path);
  if (root.is_null()) throw Error(path + ": the config file is empty");
  if (root.type() != Value::Type::Map)
    throw Error(root.location() + ": a pipeline config must be a map of sections (data, model, ...)");
  return root;
}

void set_path(Value& root, const std::string& dotted, Value value) {
  Value* node = &root;
  std::stringstream parts(dotted);
  std::string part;
  std::vector<std::string> keys;
  while (std::getline(parts, part, '.')) {
    if (part.empty()) throw Error("'" + dotted + "' is not a valid key path (empty part)");
    keys.push_back(part);
  }
  if (keys.empty()) throw Error("empty key path");
  for (std::size_t i = 0; i + 1 < keys.size(); ++i) {
    Value* child = node->find(keys[i]);
    if (!child) {
      node->set(keys[i], Value::map({}));
      child = node->find(keys[i]);
    } else if (child->type() != Value::Type::Map) {
      throw Error("cannot set '" + dotted + "': '" + keys[i] + "' is not a section (it holds " +
                  child->to_string() + ")");
    }
    node = child;
  }
  node->set(keys.back(), std::move(value));
}

const Value* get_path(const Value& root, const std::string& dotted) {
  const Value* node = &root;
  std::stringstream parts(dotted);
  std::string part;
  while (std::getline(parts, part, '.')) {
    node = node->find(part);
    if (!node) return nullptr;
  }
  return node;
}

void apply_override(Value& root, const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw Error("--set expects key=value (e.g. --set optimizer.lr=0.2), got '" + assignment + "'");
  const std::string key = assignment.substr(0, eq);
  Value value = parse_yaml(assignment.substr(eq + 1), "--set " + key);
  value.set_location("--set " + key);
  set_path(root, key, std::move(value));
}

namespace {
void emit(YAML::Emitter& out, const Value& v) {
  switch (v.type()) {
    case Value::Type::Null: out << YAML::Null; break;
    case Value::Type::Bool: out << v.as_bool(); break;
    case Value::Type::Int: out << v.as_int(); break;
    case Value::Type::Double: out << v.to_string(); break;
    case Value::Type::String: {
      // Quote strings that would read back as another type.
      Value reread = scalar_value(YAML::Node(v.as_string()));
      if (reread.type() != Value::Type::String) out << YAML::DoubleQuoted;
      out << v.as_string();
      break;
    }
    case Value::Type::List: {
      bool scalars = true;
      for (const auto& item : v.as_list())
        scalars = scalars && item.type() != Value::Type::Map && item.type() != Value::Type::List;
      out << (scalars ? YAML::Flow : YAML::Block) << YAML::BeginSeq;
      for (const auto& item : v.as_list()) emit(out, item);
      out << YAML::EndSeq;
      break;
    }
    case Value::Type::Map: {
      out << YAML::BeginMap;
      for (const auto& [k, item] : v.as_map()) {
        out << YAML::Key << k << YAML::Value;
        emit(out, item);
      }
      out << YAML::EndMap;
      break;
    }
  }
}
}  // namespace

std::string to_yaml(const Value& v) {
  YAML::Emitter out;
  emit(out, v);
  return std::string(out.c_str()) + "\n";
}

}  // namespace phalanx::core
