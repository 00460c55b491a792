// What the server knows about a round besides its rows (SDK v2; diagnostics since v3): handed to aggregators and pre-aggregators
// that ask for it, and, for omniscient attacks, the defence they attack. A defence never learns which rows
// are Byzantine: worker ids are stable across rounds but carry no order that would reveal it.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "phalanx/diagnostics.hpp"
#include "phalanx/export.hpp"

namespace phalanx {

struct PHALANX_EXPORT RoundContext {
  /// Index of the server update this round produces (0, 1, ...); -1 when called outside a run.
  std::int64_t round = -1;
  /// Per row: a stable id of the worker that sent it, in [0, n). Empty when unknown (outside a run, or after
  /// a pre-aggregator that mixes rows across workers, such as bucketing).
  std::vector<std::int64_t> worker_ids;
  /// Per row: server updates between the parameters the worker computed at and the current ones (0 in
  /// synchronous rounds). Empty exactly when worker_ids is.
  std::vector<std::int64_t> staleness;
  /// [d] the current server parameters, a copy (writing to it changes nothing); undefined outside a run.
  at::Tensor parameters;
  /// [d] the server's own gradient at `parameters` on its clean sample (the config's
  /// `server_data: {samples: N}`, drawn from honest workers' data); undefined unless configured.
  at::Tensor server_gradient;
  /// Where this round's diagnostics go (phalanx/diagnostics.hpp); null when nothing records them.
  DiagnosticSink* diagnostics = nullptr;

  /// Reports a declared diagnostic when this call records them; does nothing otherwise.
  void report(const char* name, double value) const {
    if (diagnostics) diagnostics->report(name, value);
  }
};

/// The configured pre-aggregators followed by the aggregator, for omniscient attacks (AttackRound::defence).
class PHALANX_EXPORT DefenceOracle {
 public:
  virtual ~DefenceOracle();
  /// The [d] aggregate the defence would return for these [n, d] candidate rows, given in the order the
  /// server will see them: the honest rows of the AttackRound first, then the attack's rows. Runs on a copy
  /// of the defence's state: no call changes what the real defence does later.
  virtual at::Tensor evaluate(const at::Tensor& rows) const = 0;
};

}  // namespace phalanx
