// Conformance properties of plugins (plugin_check.hpp). Every rule runs with f = 2 Byzantine workers out of
// n = 7 on d = 11 coordinates, except one that refuses that setting as beyond its breakdown point (Bulyan
// needs n >= 4f + 3): it runs at the smallest n >= 7 it accepts, which its lines report.
#include "phalanx/core/plugins/plugin_check.hpp"

#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include "phalanx/error.hpp"

namespace phalanx::core {
namespace {

constexpr std::int64_t kF = 2;
constexpr std::int64_t kPreferredN = 7;
constexpr std::int64_t kLargestN = 25;
constexpr std::int64_t kDim = 11;
constexpr std::uint64_t kSeed = 1;

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();

/// A property's outcome: thrown by the checks below, caught by run_property.
struct Failed {
  std::string why;
};
void require(bool ok, const std::string& why) {
  if (!ok) throw Failed{why};
}

std::string shape_of(const at::Tensor& t) {
  if (!t.defined()) return "an undefined tensor";
  std::ostringstream s;
  s << t.sizes() << " " << t.scalar_type();
  return s.str();
}

/// Runs one property: a Failed or any exception from the plugin becomes a failure with its reason.
CheckResult run_property(const std::string& plugin, const std::string& property,
                         const std::function<std::string()>& check) {
  CheckResult r{plugin, property, CheckStatus::Fail, ""};
  try {
    r.detail = check();
    r.status = CheckStatus::Pass;
  } catch (const Failed& f) {
    r.detail = f.why;
  } catch (const c10::Error& e) {  // LibTorch's own: its message without the stack frames
    r.detail = std::string("threw: ") + e.what_without_backtrace();
  } catch (const std::exception& e) {
    r.detail = std::string("threw: ") + e.what();
  } catch (...) {
    r.detail = "threw something that is not a std::exception";
  }
  return r;
}

CheckResult skipped(const std::string& plugin, const std::string& property, const std::string& why) {
  return {plugin, property, CheckStatus::Skip, why};
}

Value section_for(const PluginEntry& entry, const CheckOptions& options) {
  auto it = options.params.find(entry.info.name);
  return it == options.params.end() ? Value::map({}) : it->second;
}

/// Parameter declarations: unique non-empty names, min <= max, choices only on strings, every default
/// accepted by the host's own validation (type, range, choices), and the section the checks use accepted.
std::string check_declarations(const Registry& registry, const PluginEntry& entry, const Value& section) {
  std::set<std::string> names;
  for (const ParamSpec& spec : entry.info.params) {
    require(!spec.name.empty(), "a parameter has an empty name");
    require(names.insert(spec.name).second, "parameter '" + spec.name + "' is declared twice");
    require(!(spec.min && spec.max && *spec.min > *spec.max), "parameter '" + spec.name + "' has min > max");
    require(spec.choices.empty() || spec.type == ParamType::String,
            "parameter '" + spec.name + "' has choices but is not a string");
    if (spec.default_value.is_null()) continue;
    try {
      Params::validate(entry.info.params, Value::map({{spec.name, spec.default_value}}), entry.info.name);
    } catch (const Error& e) {
      throw Failed{"the default of '" + spec.name + "' is not a valid value: " + e.what()};
    }
  }
  registry.validate(entry.kind, entry.info.name, section, kind_name(entry.kind));
  return std::to_string(names.size()) + " parameters" + (section.as_map().empty() ? "" : ", checked with " + section.to_string());
}

/// The context an engine hands a rule for `x` (as tests/plugins/aggregator_conformance_test.cpp does):
/// worker ids 0..n-1, staleness 0, zero parameters and, as the server gradient, the coordinate-wise
/// median of the finite values (honest-looking, and permuted along with the rows).
RoundContext round_for(const at::Tensor& x, std::int64_t round) {
  RoundContext r;
  r.round = round;
  for (std::int64_t i = 0; i < x.size(0); ++i) r.worker_ids.push_back(i);
  r.staleness.assign(x.size(0), 0);
  r.parameters = at::zeros({x.size(1)});
  r.server_gradient = std::get<0>(at::nanmedian(x.masked_fill(at::isinf(x), kNaN), 0));
  return r;
}

at::Tensor honest_rows(std::uint64_t seed, std::int64_t rows) {
  return at::randn({rows, kDim}, make_generator(seed)).mul_(0.01);
}

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

bool same_state(const State& a, const State& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [key, value] : a) {
    auto it = b.find(key);
    if (it == b.end() || value.defined() != it->second.defined()) return false;
    if (value.defined() && !(value.sizes() == it->second.sizes() && at::equal(value, it->second))) return false;
  }
  return true;
}

/// The Context a checked plugin sees: a run of n workers, b Byzantine, d = kDim. Its log lines are dropped:
/// the checker's output is one line per property.
class CheckContext : public Context {
 public:
  explicit CheckContext(RunInfo info) : info_(std::move(info)) {}
  const RunInfo& run() const override { return info_; }
  std::uint64_t seed() const override { return kSeed; }
  void log(LogLevel, const std::string&) const override {}

 private:
  RunInfo info_;
};

/// Fresh plugin instances of one kind for one setting; keeps their contexts alive as long as they are.
class Maker {
 public:
  Maker(const Registry& registry, const PluginEntry& entry, Value section)
      : registry_(registry), entry_(entry), section_(std::move(section)) {}

  const PluginEntry& entry() const { return entry_; }
  std::string label() const { return std::string(kind_name(entry_.kind)) + " '" + entry_.info.name + "'"; }

  const Context& context(std::int64_t n, std::int64_t b) {
    RunInfo info;
    info.workers = n;
    info.byzantine = b;
    info.dimension = kDim;
    info.total_steps = 100;
    info.seed = kSeed;
    contexts_.push_back(std::make_unique<CheckContext>(info));
    return *contexts_.back();
  }
  Params params() const {
    return registry_.validate(entry_.kind, entry_.info.name, section_, kind_name(entry_.kind));
  }
  const Registry& registry() const { return registry_; }

 private:
  const Registry& registry_;
  const PluginEntry& entry_;
  Value section_;
  std::vector<std::unique_ptr<CheckContext>> contexts_;
};

// ---- aggregators ----------------------------------------------------------------------------------

class AggregatorChecks {
 public:
  AggregatorChecks(const Registry& registry, const PluginEntry& entry, const Value& section,
                   AggregatorPromises promises)
      : make_(registry, entry, section), promises_(promises) {}

  void run(std::vector<CheckResult>& out) {
    const std::string who = make_.label();
    for (std::int64_t n = kPreferredN; n <= kLargestN && n_ == 0; ++n) {
      try {
        fresh(n);
        n_ = n;
      } catch (const Error&) {
        // refused as beyond the rule's breakdown point: try one more worker
      }
    }
    if (n_ == 0) {
      out.push_back({who, "setting", CheckStatus::Fail,
                     "accepts f = " + std::to_string(kF) + " for no n in " + std::to_string(kPreferredN) + ".." +
                         std::to_string(kLargestN)});
      return;
    }
    setting_ = "n = " + std::to_string(n_) + ", f = " + std::to_string(kF);
    out.push_back(run_property(who, "shape and dtype", [&] { return shape_and_dtype(); }));
    out.push_back(run_property(who, "determinism", [&] { return determinism(); }));
    out.push_back(run_property(who, "identical rows give that row", [&] { return identical_rows(); }));
    out.push_back(run_property(who, "input left unchanged", [&] { return input_unchanged(); }));
    out.push_back(run_property(who, "fewer rows than workers", [&] { return fewer_rows(); }));
    if (promises_.permutation_invariant)
      out.push_back(run_property(who, "permutation invariance", [&] { return permutation(); }));
    else
      out.push_back(skipped(who, "permutation invariance", "declared order-dependent"));
    out.push_back(run_property(who, "non-finite rows", [&] { return non_finite_rows(); }));
    if (promises_.robust)
      out.push_back(run_property(who, "bounded under f outliers", [&] { return outliers(); }));
    else
      out.push_back(skipped(who, "bounded under f outliers", "declared not robust"));
    out.push_back(run_property(who, "state round trip", [&] { return state_round_trip(); }));
  }

 private:
  std::shared_ptr<Aggregator> fresh(std::int64_t n = 0) {
    return make_.registry().make_aggregator(make_.entry().info.name, make_.params(), make_.context(n > 0 ? n : n_, kF));
  }
  static at::Tensor aggregate(Aggregator& rule, const at::Tensor& x, std::int64_t round = 0) {
    return rule.aggregate_with_context(x, round_for(x, round));
  }
  at::Tensor checked(const at::Tensor& out) const {
    require(out.defined() && out.sizes() == at::IntArrayRef({kDim}) && out.scalar_type() == at::kFloat,
            "returned " + shape_of(out) + " for [" + std::to_string(n_) + ", " + std::to_string(kDim) +
                "] float rows; expected [" + std::to_string(kDim) + "] Float");
    return out;
  }
  std::int64_t first_free() const { return promises_.trusted_rows; }

  std::string shape_and_dtype() {
    checked(aggregate(*fresh(), honest_rows(1, n_)));
    return setting_;
  }
  std::string determinism() {
    at::Tensor x = honest_rows(2, n_);
    at::Tensor a = checked(aggregate(*fresh(), x));
    at::Tensor b = checked(aggregate(*fresh(), x));
    require(at::equal(a, b), "two fresh instances with the same seed disagree on the same rows");
    return setting_;
  }
  std::string identical_rows() {
    // Small enough to lie inside centered clipping's default radius (0.1), where clipping leaves it alone.
    at::Tensor row = at::tensor({0.05f, -0.02f, 0.01f, 0.0f, 0.03f, 0.02f, -0.01f, 0.0f, 0.01f, 0.04f, -0.03f});
    at::Tensor out = checked(aggregate(*fresh(), row.unsqueeze(0).repeat({n_, 1})));
    require(at::allclose(out, row, 1e-6, 1e-7),
            "n copies of one row give another vector (max difference " + number((out - row).abs().max().item<float>()) + ")");
    return setting_;
  }
  std::string input_unchanged() {
    at::Tensor x = honest_rows(3, n_);
    x[n_ - 1].fill_(1e20f);
    at::Tensor copy = x.clone();
    aggregate(*fresh(), x);
    require(at::equal(x, copy), "aggregate wrote into its input rows");
    return setting_;
  }
  std::string fewer_rows() {
    // Pre-aggregators such as bucketing hand the rule fewer rows than there are workers, down to one.
    for (std::int64_t rows = n_ - 1; rows >= 1; --rows) {
      at::Tensor out = aggregate(*fresh(), honest_rows(30 + rows, rows));
      require(out.defined() && out.sizes() == at::IntArrayRef({kDim}) && at::isfinite(out).all().item<bool>(),
              "with " + std::to_string(rows) + " rows returned " + shape_of(out) + " (or non-finite values)");
    }
    return "1.." + std::to_string(n_ - 1) + " rows";
  }
  std::string permutation() {
    at::Tensor x = honest_rows(5, n_);
    at::Tensor reference = checked(aggregate(*fresh(), x));
    const std::int64_t fixed = first_free();
    at::Tensor kept = at::arange(fixed, at::kLong);
    at::Tensor reversed = at::cat({kept, at::arange(n_ - 1, fixed - 1, -1, at::kLong)});
    at::Tensor shuffled = at::cat({kept, at::randperm(n_ - fixed, make_generator(9), at::kLong).add_(fixed)});
    for (const at::Tensor& order : {reversed, shuffled}) {
      at::Tensor permuted = checked(aggregate(*fresh(), x.index_select(0, order)));
      require(at::allclose(reference, permuted, 1e-5, 1e-6),
              "rows in another order give another result (max difference " +
                  number((reference - permuted).abs().max().item<float>()) +
                  "); declare order-dependent if that is intended");
    }
    return setting_;
  }
  std::string non_finite_rows() {
    // Bad rows at the front and in the middle, not only at the end where Byzantine workers usually sit: a
    // whole NaN row, and a row holding +Inf, -Inf and NaN among finite values.
    at::Tensor mixed = at::zeros({kDim});
    mixed[0] = kInf;
    mixed[3] = -kInf;
    mixed[7] = kNaN;
    const std::vector<at::Tensor> bad_rows{at::full({kDim}, kNaN), mixed};
    const std::vector<std::int64_t> positions{first_free(), n_ / 2};
    for (std::int64_t bad = 1; bad <= kF; ++bad) {
      at::Tensor x = honest_rows(10 + bad, n_);
      for (std::int64_t i = 0; i < bad; ++i) x[positions[i]].copy_(bad_rows[i]);
      const std::string with = " with " + std::to_string(bad) + " NaN/Inf rows";
      if (promises_.robust) {
        at::Tensor out = checked(aggregate(*fresh(), x));
        require(at::isfinite(out).all().item<bool>(), "non-finite result" + with);
        continue;
      }
      // A rule that does not promise robustness must still refuse such rows with an error, not return NaN.
      try {
        at::Tensor out = aggregate(*fresh(), x);
        require(at::isfinite(checked(out)).all().item<bool>(), "non-finite result" + with + " and no error");
      } catch (const Error&) {
      }
    }
    return promises_.robust ? "finite with up to f NaN/Inf rows" : "a clear error or a finite result";
  }
  std::string outliers() {
    // Honest rows are about 0.01 per coordinate; f rows of 1e20 (same sign, then opposite signs) must not
    // drag the rule near them. A rule that bounds only sybils (foolsgold) must stay finite, and bounded
    // when the huge rows are equal.
    for (float second : {1e20f, -1e20f}) {
      at::Tensor x = honest_rows(20, n_);
      x[first_free()].fill_(1e20f);
      x[n_ - 1].fill_(second);
      at::Tensor out = checked(aggregate(*fresh(), x));
      const std::string rows = "with rows of 1e20 and " + number(second);
      require(at::isfinite(out).all().item<bool>(), "non-finite result " + rows);
      const float largest = out.abs().max().item<float>();
      if (promises_.bounds_magnitude || second > 0)
        require(largest < 1.0f, "result reaches " + number(largest) + " " + rows + " (honest rows ~0.01)");
    }
    return promises_.bounds_magnitude ? "|result| < 1 with f rows of 1e20" : "finite (declared unbounded)";
  }
  std::string state_round_trip() {
    // Two rounds on one instance; a second instance that loads the state saved after round 0 must give the
    // same round 1 and end in the same state.
    at::Tensor x0 = honest_rows(40, n_);
    at::Tensor x1 = honest_rows(41, n_);
    auto first = fresh();
    aggregate(*first, x0, 0);
    State saved = first->save_state();
    auto second = fresh();
    second->load_state(saved);
    require(same_state(second->save_state(), saved), "save_state after load_state differs from what was loaded");
    at::Tensor a = aggregate(*first, x1, 1);
    at::Tensor b = aggregate(*second, x1, 1);
    require(at::equal(a, b), "an instance restored from save_state aggregates the next round differently");
    require(same_state(first->save_state(), second->save_state()), "the restored instance ends in another state");
    return std::to_string(saved.size()) + " state tensors";
  }

  Maker make_;
  AggregatorPromises promises_;
  std::int64_t n_ = 0;
  std::string setting_;
};

// ---- pre-aggregators ------------------------------------------------------------------------------

void check_preaggregator(const Registry& registry, const PluginEntry& entry, const Value& section,
                         std::vector<CheckResult>& out) {
  Maker make(registry, entry, section);
  const std::string who = make.label();
  auto fresh = [&] { return registry.make_preaggregator(entry.info.name, make.params(), make.context(kPreferredN, kF)); };
  auto transform = [](PreAggregator& rule, const at::Tensor& x, std::int64_t round) {
    return rule.transform_with_context(x, round_for(x, round));
  };
  auto checked = [](PreAggregator& rule, const at::Tensor& y) {
    require(y.defined() && y.dim() == 2 && y.size(1) == kDim && y.size(0) >= 1 && y.size(0) <= kPreferredN &&
                y.scalar_type() == at::kFloat,
            "returned " + shape_of(y) + " for [" + std::to_string(kPreferredN) + ", " + std::to_string(kDim) +
                "] rows; expected [n', " + std::to_string(kDim) + "] Float with 1 <= n' <= n");
    require(!rule.keeps_row_order() || y.size(0) == kPreferredN, "keeps_row_order() is true but the row count changed");
    return y;
  };
  out.push_back(run_property(who, "shape and dtype", [&] {
    auto rule = fresh();
    checked(*rule, transform(*rule, honest_rows(1, kPreferredN), 0));
    return std::string("n = 7, f = 2");
  }));
  out.push_back(run_property(who, "determinism", [&] {
    at::Tensor x = honest_rows(2, kPreferredN);
    auto a = fresh();
    auto b = fresh();
    require(at::equal(checked(*a, transform(*a, x, 0)), checked(*b, transform(*b, x, 0))),
            "two fresh instances with the same seed disagree on the same rows");
    return std::string("n = 7, f = 2");
  }));
  out.push_back(run_property(who, "state round trip", [&] {
    auto first = fresh();
    transform(*first, honest_rows(40, kPreferredN), 0);
    State saved = first->save_state();
    auto second = fresh();
    second->load_state(saved);
    at::Tensor x1 = honest_rows(41, kPreferredN);
    require(at::equal(transform(*first, x1, 1), transform(*second, x1, 1)),
            "an instance restored from save_state transforms the next round differently");
    require(same_state(first->save_state(), second->save_state()), "the restored instance ends in another state");
    return std::to_string(saved.size()) + " state tensors";
  }));
}

// ---- attacks --------------------------------------------------------------------------------------

/// The defence an omniscient attack searches against here: the coordinate-wise median.
class MedianOracle : public DefenceOracle {
 public:
  at::Tensor evaluate(const at::Tensor& rows) const override { return std::get<0>(rows.median(0)); }
};

void check_attack(const Registry& registry, const PluginEntry& entry, const Value& section,
                         std::vector<CheckResult>& out) {
  Maker make(registry, entry, section);
  const std::string who = make.label();
  const std::int64_t honest_count = kPreferredN - kF;
  const MedianOracle oracle;
  auto fresh = [&] { return registry.make_attack(entry.info.name, make.params(), make.context(kPreferredN, kF)); };
  auto round_of = [&](std::uint64_t seed, std::int64_t step) {
    AttackRound r;
    r.honest = honest_rows(seed, honest_count);
    r.byzantine_true = honest_rows(seed + 100, kF);
    r.step = step;
    if (step > 0) r.previous_aggregate = honest_rows(seed + 200, 1)[0];
    r.defence = &oracle;
    return r;
  };
  auto checked = [&](const at::Tensor& y) {
    require(y.defined() && y.sizes() == at::IntArrayRef({kF, kDim}) && y.scalar_type() == at::kFloat,
            "returned " + shape_of(y) + "; expected [" + std::to_string(kF) + ", " + std::to_string(kDim) + "] Float");
    return y;
  };
  auto same = [](const at::Tensor& a, const at::Tensor& b) { return at::equal(a.nan_to_num(0), b.nan_to_num(0)) && at::equal(at::isnan(a), at::isnan(b)); };
  out.push_back(run_property(who, "shape and dtype", [&] {
    checked(fresh()->craft(round_of(1, 0)));
    return std::string("n = 7, b = 2, coordinate-wise median as the defence");
  }));
  out.push_back(run_property(who, "determinism", [&] {
    AttackRound r = round_of(2, 0);
    require(same(checked(fresh()->craft(r)), checked(fresh()->craft(r))),
            "two fresh instances with the same seed craft different rows for the same round");
    return std::string("n = 7, b = 2");
  }));
  out.push_back(run_property(who, "state round trip", [&] {
    auto first = fresh();
    first->craft(round_of(40, 0));
    State saved = first->save_state();
    auto second = fresh();
    second->load_state(saved);
    AttackRound next = round_of(41, 1);
    require(same(first->craft(next), second->craft(next)),
            "an instance restored from save_state crafts the next round differently");
    require(same_state(first->save_state(), second->save_state()), "the restored instance ends in another state");
    return std::to_string(saved.size()) + " state tensors";
  }));
  if (!entry.declares(Need::ByzantineShapeOnly)) return;
  // The engine does not compute the Byzantine messages for such an attack: their values must not matter.
  out.push_back(run_property(who, "Byzantine messages unread", [&] {
    AttackRound r = round_of(3, 0), other = round_of(3, 0);
    other.byzantine_true = honest_rows(303, kF).mul(-7);
    require(same(checked(fresh()->craft(r)), checked(fresh()->craft(other))),
            "declares Need::ByzantineShapeOnly, but rounds that differ only in byzantine_true's values give "
            "different rows; drop the declaration or stop reading those values");
    return std::string("two rounds that differ only in byzantine_true");
  }));
}

// ---- optimizers -----------------------------------------------------------------------------------

void check_optimizer(const Registry& registry, const PluginEntry& entry, const Value& section,
                         std::vector<CheckResult>& out) {
  Maker make(registry, entry, section);
  const std::string who = make.label();
  auto fresh = [&] { return registry.make_optimizer(entry.info.name, make.params(), make.context(kPreferredN, kF)); };
  // One step: worker 0's rule turns a gradient into its message, the server applies it.
  auto step = [](Optimizer& opt, WorkerRule& rule, at::Tensor& params, std::int64_t t) {
    at::Tensor message = rule.message(honest_rows(50 + t, 1)[0], t);
    Arrival arrival;
    arrival.computed_at = t;
    arrival.current = t;
    opt.apply(params, message, arrival, 0.1);
  };
  out.push_back(run_property(who, "state round trip", [&] {
    auto first = fresh();
    auto first_rule = first->make_worker_rule(0);
    at::Tensor params = honest_rows(60, 1)[0];
    step(*first, *first_rule, params, 0);
    State saved = first->save_state();
    State saved_rule = first_rule->save_state();
    auto second = fresh();
    auto second_rule = second->make_worker_rule(0);
    second->load_state(saved);
    second_rule->load_state(saved_rule);
    at::Tensor params2 = params.clone();
    step(*first, *first_rule, params, 1);
    step(*second, *second_rule, params2, 1);
    require(at::equal(params, params2), "an optimizer restored from save_state takes the next step differently");
    require(same_state(first->save_state(), second->save_state()) &&
                same_state(first_rule->save_state(), second_rule->save_state()),
            "the restored optimizer or worker rule ends in another state");
    return std::to_string(saved.size() + saved_rule.size()) + " state tensors (server and worker 0)";
  }));
}

}  // namespace

std::vector<CheckResult> check_plugin(const Registry& registry, const PluginEntry& entry,
                                      const CheckOptions& options) {
  std::vector<CheckResult> out;
  const std::string who = std::string(kind_name(entry.kind)) + " '" + entry.info.name + "'";
  const Value section = section_for(entry, options);
  out.push_back(run_property(who, "parameter declarations", [&] { return check_declarations(registry, entry, section); }));
  if (out.back().status != CheckStatus::Pass) return out;  // nothing can be created without valid parameters
  switch (entry.kind) {
    case Kind::Aggregator: {
      auto it = options.promises.find(entry.info.name);
      AggregatorChecks(registry, entry, section, it == options.promises.end() ? AggregatorPromises{} : it->second)
          .run(out);
      break;
    }
    case Kind::PreAggregator: check_preaggregator(registry, entry, section, out); break;
    case Kind::Attack: check_attack(registry, entry, section, out); break;
    case Kind::Optimizer: check_optimizer(registry, entry, section, out); break;
    case Kind::Data:
    case Kind::Model: break;  // loading data or building a network needs files and shapes: run them in a pipeline
  }
  return out;
}

std::vector<CheckResult> check_registry(const Registry& registry, const CheckOptions& options) {
  std::vector<CheckResult> out;
  for (Kind kind : all_kinds())
    for (const PluginEntry* entry : registry.list(kind)) {
      std::vector<CheckResult> one = check_plugin(registry, *entry, options);
      out.insert(out.end(), one.begin(), one.end());
    }
  return out;
}

std::string format_result(const CheckResult& r) {
  const char* status = r.status == CheckStatus::Pass ? "PASS" : r.status == CheckStatus::Fail ? "FAIL" : "SKIP";
  std::string line = std::string(status) + "  " + r.plugin + "  " + r.property;
  if (!r.detail.empty()) line += r.status == CheckStatus::Pass ? "  (" + r.detail + ")" : ": " + r.detail;
  return line;
}

void parse_promises(const std::string& text, CheckOptions& options) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw Error("--expect '" + text + "': write NAME=PROMISE[,PROMISE...]");
  AggregatorPromises& p = options.promises[text.substr(0, eq)];
  std::stringstream list(text.substr(eq + 1));
  for (std::string item; std::getline(list, item, ',');) {
    if (item == "not-robust") p.robust = p.bounds_magnitude = false;
    else if (item == "unbounded") p.bounds_magnitude = false;
    else if (item == "order-dependent") p.permutation_invariant = false;
    else if (item == "trusts-first-row") p.trusted_rows = 1;
    else
      throw Error("--expect '" + text + "': unknown promise '" + item +
                  "' (valid: not-robust, unbounded, order-dependent, trusts-first-row)");
  }
}


}  // namespace phalanx::core
