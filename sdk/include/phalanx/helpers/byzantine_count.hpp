// The Byzantine-count parameter `f` that robust aggregators and pre-aggregators share: declared with one
// spec, resolved to the run's number of Byzantine workers when the user leaves it out, and checked against
// the worker count with one wording, so `phalanx plugins` and the errors read the same for every rule.
#pragma once

#include <cstdint>
#include <string>

#include "phalanx/context.hpp"
#include "phalanx/export.hpp"
#include "phalanx/params.hpp"

namespace phalanx {

/// The spec of `f`: an Int >= 0 without a default ("automatic": the run's number of Byzantine workers).
PHALANX_EXPORT ParamSpec byzantine_count_param(
    const std::string& help = "Byzantine rows tolerated (auto: number of Byzantine workers)");

/// `f` as the user set it, or the run's number of Byzantine workers.
PHALANX_EXPORT std::int64_t byzantine_count(const Params& params, const Context& context);

/// Fails parameter `f` unless n > 2f, with "<rule> needs a majority of honest rows, n > 2f; ..." and the
/// largest f that n allows.
PHALANX_EXPORT void require_honest_majority(const Params& params, std::int64_t f, std::int64_t n,
                                            const std::string& rule);

/// Fails parameter `f` unless n >= multiple * f + 3 (Krum and Multi-Krum: 2, Bulyan: 4), naming the
/// largest f that n allows.
PHALANX_EXPORT void require_workers_for(const Params& params, std::int64_t f, std::int64_t n,
                                        std::int64_t multiple, const std::string& rule);

/// Throws unless a pre-aggregator that tolerates f rows receives more than f rows this round (f < n), naming
/// the pre-aggregator and what to do: fewer rows than at configuration time arrive after a pre-aggregator
/// that reduces them (bucketing).
PHALANX_EXPORT void require_rows_above(std::int64_t f, std::int64_t n, const std::string& preaggregator);

}  // namespace phalanx
