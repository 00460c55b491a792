#include "phalanx/helpers/byzantine_count.hpp"

#include "phalanx/error.hpp"

namespace phalanx {

ParamSpec byzantine_count_param(const std::string& help) {
  return {"f", ParamType::Int, Value(), help, 0};
}

std::int64_t byzantine_count(const Params& params, const Context& context) {
  return params.get_int_or("f", context.run().byzantine);
}

void require_honest_majority(const Params& params, std::int64_t f, std::int64_t n, const std::string& rule) {
  if (n > 2 * f) return;
  params.fail("f", rule + " needs a majority of honest rows, n > 2f; f = " + std::to_string(f) + " with n = " +
                       std::to_string(n) + " is too many. The largest f for n = " + std::to_string(n) + " is " +
                       std::to_string((n - 1) / 2) + ".");
}

void require_workers_for(const Params& params, std::int64_t f, std::int64_t n, std::int64_t multiple,
                         const std::string& rule) {
  if (n >= multiple * f + 3) return;
  params.fail("f", rule + " needs n >= " + std::to_string(multiple) + "f + 3 workers; f = " + std::to_string(f) +
                       " with n = " + std::to_string(n) + " is too many. " +
                       (n >= 3 ? "The largest f for n = " + std::to_string(n) + " is " +
                                     std::to_string((n - 3) / multiple) + "."
                               : rule + " needs at least 3 workers even with f = 0."));
}

void require_rows_above(std::int64_t f, std::int64_t n, const std::string& preaggregator) {
  if (f < n) return;
  throw Error("pre-aggregator '" + preaggregator + "': f = " + std::to_string(f) + " but it receives only " +
              std::to_string(n) + " rows (f must be below the number of rows); lower f, or move " + preaggregator +
              " before a pre-aggregator that reduces the rows");
}

}  // namespace phalanx
