#include "phalanx/core/experiment/compare.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "phalanx/core/config/config.hpp"
#include "phalanx/core/config/core_params.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

std::string value_label(const Value& v) {
  if (v.type() == Value::Type::Map) {
    if (const Value* label = v.find("label")) return value_label(*label);
    std::string out;
    if (const Value* name = v.find("name")) out = value_label(*name);
    for (const auto& [k, item] : v.as_map())
      if (k != "name") out += "-" + k + value_label(item);
    return out;
  }
  std::string text = v.to_string(), out;
  for (char c : text)
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_') out += c;
  return out.empty() ? "x" : out;
}

namespace {

// A core key of section `section` ("optimizer" -> lr, weight_decay) or a core subsection ("optimizer" ->
// schedule): keys every plugin of that section shares, so dropping one is never what a plugin change needs.
bool is_core_key(const std::string& section, const std::string& key) {
  return is_core_section(section + "." + key) || core_param(section, key);
}

// Setting a whole section replaces the base's: the core keys the base set there and `value` does not go back
// to their defaults (a first run of configs/byzsgdnm/confirm_at_best_lr.yaml lost its cosine schedule so).
void note_dropped_keys(Variant& n, const std::string& path, const Value& value) {
  const Value* old = get_path(n.config, path);
  if (!old || old->type() != Value::Type::Map || value.type() != Value::Type::Map) return;
  std::string dropped;
  for (const auto& [k, item] : old->as_map())
    if (!value.find(k) && is_core_key(path, k)) dropped += (dropped.empty() ? "" : ", ") + k;
  if (dropped.empty()) return;
  n.warnings.push_back(value.location() + ": '" + path + "' replaces the whole section and drops the base's " +
                       dropped + " (reset to the defaults); to keep them, set single keys instead, e.g. '" + path +
                       ".name: ...'");
}

// `variants: [{label: ssgdm, optimizer: ssgdm, engine.name: sync}, ...]` sets several keys at once, for
// methods that differ in more than one place. `label` (optional) names the variant's folder.
void apply_variant(Variant& n, const std::string& key, const Value& value) {
  if (!is_variants_key(key)) {
    n.label += (n.label.empty() ? "" : "_") + value_label(value);
    n.choice.emplace_back(key, value);
    note_dropped_keys(n, key, value);
    set_path(n.config, key, value);
    return;
  }
  if (value.type() != Value::Type::Map || value.as_map().empty())
    throw Error(value.location() + ": each entry of " + key +
                " maps config keys to values, e.g. {label: ssgdm, optimizer: ssgdm, engine.name: sync}");
  std::string first;
  for (const auto& [path, item] : value.as_map()) {
    if (path == "label") continue;
    note_dropped_keys(n, path, item);
    set_path(n.config, path, item);
    if (first.empty()) first = value_label(item);
  }
  n.label += (n.label.empty() ? "" : "_") + (value.find("label") ? value_label(value) : first);
  n.choice.emplace_back(key, value);
}

}  // namespace

std::vector<Variant> expand_variants(const Value& root) {
  const Value* compare = root.find("compare");
  Value base = root;
  if (!compare || compare->type() != Value::Type::Map || compare->as_map().empty()) {
    return {Variant{"", {}, base}};
  }
  auto& entries = base.as_map();
  for (auto it = entries.begin(); it != entries.end(); ++it)
    if (it->first == "compare") {
      entries.erase(it);
      break;
    }
  std::vector<Variant> variants{Variant{"", {}, base}};
  for (const auto& [key, values] : compare->as_map()) {
    if (values.type() != Value::Type::List || values.as_list().empty())
      throw Error(values.location() + ": compare." + key + " must be a non-empty list");
    std::vector<Variant> next;
    for (const auto& v : variants) {
      for (const auto& value : values.as_list()) {
        Variant n = v;
        apply_variant(n, key, value);
        next.push_back(std::move(n));
      }
    }
    variants = std::move(next);
  }
  return variants;
}

std::vector<std::string> variant_warnings(const std::vector<Variant>& variants) {
  std::vector<std::string> out;
  for (const auto& v : variants)
    for (const auto& w : v.warnings)
      if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
  return out;
}

namespace {
std::string cell(const VariantResult& r) {
  if (!r.error.empty()) return to_string(RunStatus::failed);
  if (r.result.status != RunStatus::ok) return to_string(r.result.status);
  if (!r.result.has_last) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", 100.0 * r.result.last.test_accuracy);
  return buf;
}
bool same(const Value& a, const Value& b) { return a.to_string() == b.to_string(); }
}  // namespace

std::string comparison_table(const std::vector<std::pair<std::string, std::vector<Value>>>& keys,
                             const std::vector<VariantResult>& results) {
  std::ostringstream out;
  out << "Final test accuracy (%)\n\n";
  if (keys.size() == 2) {
    const auto& [col_key, cols] = keys[0];
    const auto& [row_key, rows] = keys[1];
    out << "| " << row_key << " \\ " << col_key << " |";
    for (const auto& c : cols) out << " " << value_label(c) << " |";
    out << "\n|---|";
    for (std::size_t i = 0; i < cols.size(); ++i) out << "---:|";
    out << "\n";
    for (const auto& r : rows) {
      out << "| " << value_label(r) << " |";
      for (const auto& c : cols) {
        std::string text = "-";
        for (const auto& res : results)
          if (same(res.variant.choice[0].second, c) && same(res.variant.choice[1].second, r)) text = cell(res);
        out << " " << text << " |";
      }
      out << "\n";
    }
  } else {
    out << "| run | test accuracy | test loss | steps |\n|---|---:|---:|---:|\n";
    for (const auto& res : results) {
      char loss[32] = "-";
      if (res.error.empty() && res.result.has_last) std::snprintf(loss, sizeof loss, "%.4f", res.result.last.test_loss);
      out << "| " << (res.variant.label.empty() ? "run" : res.variant.label) << " | " << cell(res) << " | " << loss
          << " | " << (res.result.has_last ? std::to_string(res.result.last.step) : "-") << " |\n";
    }
  }
  bool any_error = false;
  for (const auto& res : results) any_error = any_error || !res.error.empty() || res.result.status != RunStatus::ok;
  if (any_error) {
    out << "\n";
    for (const auto& res : results) {
      if (!res.error.empty()) out << "- " << res.variant.label << ": failed: " << res.error << "\n";
      else if (res.result.status != RunStatus::ok) out << "- " << res.variant.label << ": " << res.result.message << "\n";
    }
  }
  return out.str();
}

}  // namespace phalanx::core
