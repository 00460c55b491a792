#include "phalanx/value.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "phalanx/error.hpp"

namespace phalanx {

Value::Value(bool v) : type_(Type::Bool), bool_(v) {}
Value::Value(int v) : type_(Type::Int), int_(v) {}
Value::Value(std::int64_t v) : type_(Type::Int), int_(v) {}
Value::Value(double v) : type_(Type::Double), double_(v) {}
Value::Value(std::string v) : type_(Type::String), string_(std::move(v)) {}
Value::Value(const char* v) : type_(Type::String), string_(v) {}

Value Value::list(List items) {
  Value v;
  v.type_ = Type::List;
  v.list_ = std::move(items);
  return v;
}

Value Value::map(Map entries) {
  Value v;
  v.type_ = Type::Map;
  v.map_ = std::move(entries);
  return v;
}

const char* Value::type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "boolean";
    case Type::Int: return "integer";
    case Type::Double: return "number";
    case Type::String: return "string";
    case Type::List: return "list";
    case Type::Map: return "map";
  }
  return "?";
}

namespace {
[[noreturn]] void wrong_type(const Value& v, const char* wanted) {
  throw Error(std::string("internal: value ") + v.to_string() + " is a " + Value::type_name(v.type()) +
              ", not a " + wanted);
}
}  // namespace

bool Value::as_bool() const {
  if (type_ != Type::Bool) wrong_type(*this, "boolean");
  return bool_;
}
std::int64_t Value::as_int() const {
  if (type_ != Type::Int) wrong_type(*this, "integer");
  return int_;
}
double Value::as_double() const {
  if (type_ == Type::Int) return static_cast<double>(int_);
  if (type_ != Type::Double) wrong_type(*this, "number");
  return double_;
}
const std::string& Value::as_string() const {
  if (type_ != Type::String) wrong_type(*this, "string");
  return string_;
}
const Value::List& Value::as_list() const {
  if (type_ != Type::List) wrong_type(*this, "list");
  return list_;
}
const Value::Map& Value::as_map() const {
  if (type_ != Type::Map) wrong_type(*this, "map");
  return map_;
}
Value::Map& Value::as_map() {
  if (type_ != Type::Map) wrong_type(*this, "map");
  return map_;
}

const Value* Value::find(const std::string& key) const {
  if (type_ != Type::Map) return nullptr;
  for (const auto& [k, v] : map_)
    if (k == key) return &v;
  return nullptr;
}
Value* Value::find(const std::string& key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

void Value::set(const std::string& key, Value v) {
  if (type_ != Type::Map) wrong_type(*this, "map");
  for (auto& [k, old] : map_) {
    if (k == key) {
      if (v.location().empty()) v.set_location(old.location());
      old = std::move(v);
      return;
    }
  }
  map_.emplace_back(key, std::move(v));
}

std::string Value::to_string() const {
  std::ostringstream out;
  switch (type_) {
    case Type::Null: out << "null"; break;
    case Type::Bool: out << (bool_ ? "true" : "false"); break;
    case Type::Int: out << int_; break;
    case Type::Double: {
      if (std::isfinite(double_) && double_ == std::floor(double_) && std::fabs(double_) < 1e15) {
        out << static_cast<std::int64_t>(double_) << ".0";  // keep it a float when read back
      } else {
        // Shortest text that reads back as the same double.
        char buf[32];
        for (int precision = 6; precision <= 17; ++precision) {
          std::snprintf(buf, sizeof buf, "%.*g", precision, double_);
          if (std::strtod(buf, nullptr) == double_) break;
        }
        out << buf;
      }
      break;
    }
    case Type::String: out << string_; break;
    case Type::List: {
      out << "[";
      for (std::size_t i = 0; i < list_.size(); ++i) out << (i ? ", " : "") << list_[i].to_string();
      out << "]";
      break;
    }
    case Type::Map: {
      out << "{";
      for (std::size_t i = 0; i < map_.size(); ++i)
        out << (i ? ", " : "") << map_[i].first << ": " << map_[i].second.to_string();
      out << "}";
      break;
    }
  }
  return out.str();
}

}  // namespace phalanx
