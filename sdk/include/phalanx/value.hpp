// A configuration value: the SDK's own tree so plugins never see yaml-cpp. Values remember where they
// came from ("quickstart.yaml:12") so every error can point at the line to fix.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "phalanx/export.hpp"

namespace phalanx {

class PHALANX_EXPORT Value {
 public:
  enum class Type { Null, Bool, Int, Double, String, List, Map };
  using List = std::vector<Value>;
  using Map = std::vector<std::pair<std::string, Value>>;  // keeps the order of the file

  Value() = default;
  Value(bool v);                // NOLINT: implicit on purpose, values read like literals
  Value(int v);                 // NOLINT
  Value(std::int64_t v);        // NOLINT
  Value(double v);              // NOLINT
  Value(std::string v);         // NOLINT
  Value(const char* v);         // NOLINT
  static Value list(List items);
  static Value map(Map entries);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_number() const { return type_ == Type::Int || type_ == Type::Double; }

  bool as_bool() const;
  std::int64_t as_int() const;
  double as_double() const;  // ints promote
  const std::string& as_string() const;
  const List& as_list() const;
  const Map& as_map() const;
  Map& as_map();

  /// Entry of a map, or nullptr.
  const Value* find(const std::string& key) const;
  Value* find(const std::string& key);
  /// Sets or replaces a map entry (keeps position when replacing).
  void set(const std::string& key, Value v);

  /// Compact YAML flow representation: 0.1, [1, 2], {name: cm}.
  std::string to_string() const;
  static const char* type_name(Type t);

  /// "file.yaml:12" where known, else empty.
  const std::string& location() const { return location_; }
  void set_location(std::string where) { location_ = std::move(where); }

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  std::int64_t int_ = 0;
  double double_ = 0.0;
  std::string string_;
  List list_;
  Map map_;
  std::string location_;
};

}  // namespace phalanx
