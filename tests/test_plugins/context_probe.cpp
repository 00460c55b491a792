// Test plugins that write down what the engine hands them (SDK v2), one line per call, to the file named by
// their `record` parameter:
// - aggregator 'context_probe' (the mean of the rows): round, worker ids, staleness, and the sizes of the
//   parameters and of the server gradient it received;
// - attack 'oracle_probe' (sends the Byzantine workers' true messages, like 'none'): queries the defence
//   oracle three times, with the true rows and two disturbed versions, and records the round, whether the
//   previous aggregate was given and the first oracle answer's norm;
// - attacks 'shape_probe' (declares Need::ByzantineShapeOnly) and 'content_probe' (the same without that
//   promise): omniscient, send the honest rows' mean, and record the round and whether every Byzantine true
//   row they were handed was all zeros (zero_rows=1).
#include <fstream>
#include <sstream>

#include <ATen/ATen.h>

#include "phalanx/plugin.hpp"

namespace {

using namespace phalanx;

std::string join(const std::vector<std::int64_t>& values) {
  std::ostringstream out;
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? "," : "") << values[i];
  return out.str();
}

class ContextProbe : public Aggregator {
 public:
  explicit ContextProbe(std::string record) : record_(std::move(record)) {}
  at::Tensor aggregate(const at::Tensor& inputs) override { return inputs.mean(0); }
  at::Tensor aggregate_with_context(const at::Tensor& inputs, const RoundContext& round) override {
    std::ofstream(record_, std::ios::app) << "round=" << round.round << " ids=" << join(round.worker_ids)
                                          << " staleness=" << join(round.staleness) << " parameters="
                                          << (round.parameters.defined() ? round.parameters.numel() : -1)
                                          << " server_gradient="
                                          << (round.server_gradient.defined() ? round.server_gradient.numel() : -1)
                                          << "\n";
    return aggregate(inputs);
  }

 private:
  std::string record_;
};

class OracleProbe : public Attack {
 public:
  explicit OracleProbe(std::string record) : record_(std::move(record)) {}
  bool omniscient() const override { return true; }
  at::Tensor craft(const AttackRound& round) override {
    std::ofstream out(record_, std::ios::app);
    out << "round=" << round.step << " previous=" << (round.previous_aggregate.defined() ? 1 : 0);
    if (round.defence) {
      const at::Tensor rows = at::cat({round.honest, round.byzantine_true});
      const double first = round.defence->evaluate(rows).norm().item<double>();
      round.defence->evaluate(rows * 3.0);
      round.defence->evaluate(rows.neg());
      out << " oracle=" << first;
    }
    out << "\n";
    return round.byzantine_true;
  }

 private:
  std::string record_;
};

class ZeroRowProbe : public Attack {
 public:
  explicit ZeroRowProbe(std::string record) : record_(std::move(record)) {}
  bool omniscient() const override { return true; }
  at::Tensor craft(const AttackRound& round) override {
    const bool zero_rows = round.byzantine_true.numel() == 0 || round.byzantine_true.abs().max().item<float>() == 0;
    std::ofstream(record_, std::ios::app) << "round=" << round.step << " zero_rows=" << zero_rows << "\n";
    return round.honest.mean(0, /*keepdim=*/true).expand_as(round.byzantine_true).contiguous();
  }

 private:
  std::string record_;
};

ParamSpec record_param() { return {"record", ParamType::String, Value(std::string()), "file to append to", {}, {}, {}}; }

}  // namespace

PHALANX_PLUGIN("context_probe", "1.0") {
  registrar.add_aggregator({"context_probe", "mean that records its round context", {record_param()}},
                           [](const Params& p, const Context&) {
                             return std::make_unique<ContextProbe>(p.get_string("record"));
                           });
  registrar.add_attack({"oracle_probe", "sends true messages after querying the defence oracle", {record_param()}},
                       [](const Params& p, const Context&) { return std::make_unique<OracleProbe>(p.get_string("record")); });
  const auto zero_row_probe = [](const Params& p, const Context&) {
    return std::make_unique<ZeroRowProbe>(p.get_string("record"));
  };
  registrar.add_attack({"shape_probe", "honest mean; promises to read only the Byzantine rows' shape",
                        {record_param()}, {}, {Need::ByzantineShapeOnly}},
                       zero_row_probe);
  registrar.add_attack({"content_probe", "honest mean; records whether the Byzantine rows were zeros",
                        {record_param()}},
                       zero_row_probe);
}
