// Per-round diagnostics (SDK v3): named scalars a plugin reports each round (which row Krum chose, how many
// rows centered clipping clipped, how spread FoolsGold's weights are), so a run's metrics show why a rule
// behaves as it does. A plugin declares its diagnostics in PluginInfo::diagnostics and reports them through
// the sink the engine hands it (RoundContext::diagnostics, AttackRound::diagnostics); the engines write one
// column `<plugin>.<name>` per declared diagnostic into every evaluation row (docs/plugins.md).
#pragma once

#include <string>

#include "phalanx/export.hpp"

namespace phalanx {

/// How the rounds between two evaluation rows become the row's value.
enum class DiagnosticSummary {
  Mean,  // mean of the values reported since the previous row (counts, fractions, spreads)
  Last,  // the value of the last report before the row (identities: a chosen worker's id)
};

/// One declared diagnostic. The column is `<plugin name>.<name>`; NaN in a row when nothing was reported since
/// the previous one.
struct PHALANX_EXPORT DiagnosticSpec {
  std::string name;  // [a-z0-9_]+, unique within the plugin
  std::string help;  // one line, shown by `phalanx plugins`
  DiagnosticSummary summary = DiagnosticSummary::Mean;
};

/// Where a plugin reports its diagnostics. Null in calls that are not real rounds (defence-oracle queries,
/// tests and tools, the distributed asynchronous server), so always report through RoundContext::report or
/// AttackRound::report, which check.
class PHALANX_EXPORT DiagnosticSink {
 public:
  virtual ~DiagnosticSink();
  /// Records `value` for the declared diagnostic `name` this round. An undeclared name is an error naming the
  /// plugin; a second report of one name in one round replaces the first.
  virtual void report(const char* name, double value) = 0;
};

}  // namespace phalanx
