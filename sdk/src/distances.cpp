#include "phalanx/distances.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/error.hpp"
#include "phalanx/row_math.hpp"
#include "phalanx/tensor_checks.hpp"

namespace phalanx {

at::Tensor pairwise_squared_distances(const at::Tensor& rows) {
  if (rows.dim() != 2) throw Error("pairwise_squared_distances expects an [n, d] tensor");
  const std::int64_t n = rows.size(0), d = rows.size(1);
  // The Gram matrix in float64: ||x_i||^2 + ||x_j||^2 - 2 x_i.x_j cancels badly in float32 when rows are
  // close to each other and far from the origin. It is accumulated over blocks of columns converted to
  // float64 one at a time (n x 256 KiB, in cache), so no float64 copy of the whole input is made: that
  // copy used to take most of the time of Krum, Multi-Krum, Bulyan and NNM (docs/BENCHMARKS.md).
  at::Tensor gram = at::zeros({n, n}, at::kDouble);
  const std::int64_t columns = std::max<std::int64_t>(256, (std::int64_t{1} << 15) / std::max<std::int64_t>(n, 1));
  at::Tensor buffer = at::empty({n, std::min(columns, d)}, at::kDouble);
  for (std::int64_t start = 0; start < d; start += columns) {
    const std::int64_t width = std::min(columns, d - start);
    at::Tensor part = width == buffer.size(1) ? buffer : at::empty({n, width}, at::kDouble);
    part.copy_(rows.narrow(1, start, width));
    gram.addmm_(part, part.t());
  }
  // The squared norms are the diagonal. Finite float32 values cannot overflow a float64 sum of squares, so
  // a non-finite norm means a NaN or Inf in the row, without a separate pass to find those rows (their
  // entries of the Gram matrix are overwritten below).
  at::Tensor norms = gram.diagonal().clone();
  at::Tensor dist = norms.unsqueeze(1).add(norms.unsqueeze(0)).sub_(gram.mul_(2.0)).clamp_min_(0.0);
  dist.fill_diagonal_(0.0);
  at::Tensor bad = at::isfinite(norms).logical_not();
  if (bad.any().item<bool>()) {
    at::Tensor either = bad.unsqueeze(1).logical_or(bad.unsqueeze(0));
    either.fill_diagonal_(false);
    dist.masked_fill_(either, std::numeric_limits<double>::infinity());
  }
  return dist;
}

at::Tensor krum_order(const at::Tensor& distances, std::int64_t neighbours) {
  if (distances.dim() != 2 || distances.size(0) != distances.size(1) || distances.scalar_type() != at::kDouble)
    throw Error("krum_order expects an [r, r] float64 distance matrix");
  const std::int64_t r = distances.size(0);
  if (r <= 1) return at::zeros({r}, at::kLong);
  if (neighbours < 1 || neighbours > r - 1)
    throw Error("krum_order: " + std::to_string(neighbours) + " neighbours among " + std::to_string(r) +
                " rows; needs 1 to " + std::to_string(r - 1));
  const std::int64_t k = neighbours;
  at::Tensor others = distances.add(distances.t()).mul_(0.5);
  others.fill_diagonal_(std::numeric_limits<double>::infinity());
  at::Tensor nearest = std::get<0>(others.sort(1)).contiguous();  // row i: distances to the others, ascending
  at::Tensor score = nearest.narrow(1, 0, k).sum(1).contiguous();
  auto s = score.accessor<double, 1>();
  auto near = nearest.accessor<double, 2>();
  std::vector<std::int64_t> order(static_cast<std::size_t>(r));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) {
    if (s[a] != s[b]) return s[a] < s[b];
    for (std::int64_t j = k; j < r - 1; ++j)
      if (near[a][j] != near[b][j]) return near[a][j] < near[b][j];
    return false;
  });
  return at::tensor(order, at::kLong);
}

}  // namespace phalanx

// ---- PairwiseDistances ---------------------------------------------------------------------------------

namespace phalanx {

namespace {

constexpr double kUnit32 = 0x1p-24;  // unit roundoff of float32

// gamma_W of the header, with a 1 % margin for the norms being estimates themselves.
double float_block_gamma(std::int64_t columns) {
  const double wu = static_cast<double>(columns) * kUnit32;
  return 1.01 * wu / (1.0 - wu);
}

bool all_finite(const float* x, std::int64_t count) {
  bool ok = true;
  for (std::int64_t e = 0; e < count; ++e) ok &= (x[e] - x[e] == 0.0f);
  return ok;
}

}  // namespace

PairwiseDistances::PairwiseDistances(const at::Tensor& rows) {
  if (rows.dim() != 2) throw Error("PairwiseDistances expects an [n, d] tensor");
  n_ = rows.size(0);
  const auto cells = static_cast<std::size_t>(n_ * n_);
  value_.assign(cells, 0.0);
  error_.assign(cells, 0.0);
  finite_.assign(static_cast<std::size_t>(n_), 1);
  inexact_.assign(static_cast<std::size_t>(n_), 0);
  if (rows.scalar_type() == at::kFloat) {
    rows_ = rows.contiguous();
    build_from_float_gram();
  } else {
    rows_ = rows;
    build_exact();
  }
}

void PairwiseDistances::build_exact() {
  at::Tensor exact = pairwise_squared_distances(rows_).contiguous();
  std::copy(exact.data_ptr<double>(), exact.data_ptr<double>() + value_.size(), value_.begin());
  at::Tensor finite = at::isfinite(rows_).all(1).contiguous();
  for (std::int64_t i = 0; i < n_; ++i) finite_[static_cast<std::size_t>(i)] = finite.data_ptr<bool>()[i] ? 1 : 0;
}

void PairwiseDistances::build_from_float_gram() {
  const std::int64_t n = n_, d = rows_.size(1), width = kBlockColumns;
  std::vector<double> gram(static_cast<std::size_t>(n * n), 0.0);
  at::Tensor block = at::empty({n, n}, at::kFloat);
  const float* b = block.data_ptr<float>();
  for (std::int64_t start = 0; start < d; start += width) {
    at::Tensor part = rows_.narrow(1, start, std::min(width, d - start));
    at::mm_out(block, part, part.t());
    if (all_finite(b, n * n)) {
      for (std::size_t e = 0; e < gram.size(); ++e) gram[e] += static_cast<double>(b[e]);
      continue;
    }
    // Overflow (or a NaN/Inf row): this block in float64, where finite float32 values cannot overflow.
    at::Tensor wide = part.to(at::kDouble);
    at::Tensor exact = at::mm(wide, wide.t()).contiguous();
    const double* x = exact.data_ptr<double>();
    for (std::size_t e = 0; e < gram.size(); ++e) gram[e] += x[e];
  }
  const double gamma = float_block_gamma(width);
  // Underflow: each float32 product is off by at most 2^-150 in absolute terms (and by at most |y_l| 2^-126
  // if denormals are flushed), four Gram entries per distance.
  const double underflow = 4.0 * static_cast<double>(d) * 0x1p-150;
  const double flushed = 2.0 * 0x1p-126 * std::sqrt(static_cast<double>(d));
  std::vector<double> norm(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    norm[static_cast<std::size_t>(i)] = gram[static_cast<std::size_t>(i * n + i)];
    // A finite float32 row cannot overflow its float64 squared norm: non-finite means NaN or Inf in it.
    finite_[static_cast<std::size_t>(i)] = std::isfinite(norm[static_cast<std::size_t>(i)]) ? 1 : 0;
  }
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i; j < n; ++j) {
      const auto ij = static_cast<std::size_t>(i * n + j), ji = static_cast<std::size_t>(j * n + i);
      double v = 0, e = 0;
      if (i != j && !(finite(i) && finite(j))) {
        v = std::numeric_limits<double>::infinity();
      } else if (i != j) {
        const double ni = norm[static_cast<std::size_t>(i)], nj = norm[static_cast<std::size_t>(j)];
        v = std::max(0.0, ni + nj - 2.0 * gram[ij]);  // upper triangle only: the matrix is exactly symmetric
        const double roots = std::sqrt(ni) + std::sqrt(nj);
        e = (gamma + 1e-12) * roots * roots + underflow + flushed * roots;
      }
      value_[ij] = value_[ji] = v;
      error_[ij] = error_[ji] = e;
      if (e > 0) {
        ++inexact_[static_cast<std::size_t>(i)];
        ++inexact_[static_cast<std::size_t>(j)];
      }
    }
}

void PairwiseDistances::make_exact(const std::vector<std::pair<std::int64_t, std::int64_t>>& pairs) {
  std::vector<std::pair<std::int64_t, std::int64_t>> todo;
  std::vector<char> queued(value_.size(), 0);
  for (auto [i, j] : pairs) {
    if (i > j) std::swap(i, j);
    const auto ij = static_cast<std::size_t>(i * n_ + j);
    if (i == j || error_[ij] == 0.0 || queued[ij]) continue;
    queued[ij] = 1;
    todo.emplace_back(i, j);
  }
  if (todo.empty()) return;
  // One pass over the columns, block by block: the rows a block needs are read from memory once and stay
  // in L2 for the other pairs (64 rows x 512 floats = 128 KiB).
  const std::int64_t d = rows_.size(1);
  constexpr std::int64_t kColumns = 512;
  const float* x = rows_.data_ptr<float>();
  std::vector<double> sums(todo.size(), 0.0);
  for (std::int64_t start = 0; start < d; start += kColumns) {
    const std::int64_t width = std::min(kColumns, d - start);
    for (std::size_t p = 0; p < todo.size(); ++p)
      sums[p] += squared_distance(x + todo[p].first * d + start, x + todo[p].second * d + start, width);
  }
  for (std::size_t p = 0; p < todo.size(); ++p) {
    const auto [i, j] = todo[p];
    const auto ij = static_cast<std::size_t>(i * n_ + j), ji = static_cast<std::size_t>(j * n_ + i);
    value_[ij] = value_[ji] = sums[p];
    error_[ij] = error_[ji] = 0.0;
    --inexact_[static_cast<std::size_t>(i)];
    --inexact_[static_cast<std::size_t>(j)];
  }
  made_exact_ += static_cast<std::int64_t>(todo.size());
}

void PairwiseDistances::make_rows_exact(const std::vector<std::int64_t>& rows) {
  std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
  for (std::int64_t i : rows)
    for (std::int64_t j = 0; j < n_; ++j)
      if (j != i) pairs.emplace_back(i, j);
  make_exact(pairs);
}

std::vector<std::int64_t> PairwiseDistances::finite_rows() const {
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < n_; ++i)
    if (finite(i)) rows.push_back(i);
  return rows;
}

at::Tensor PairwiseDistances::matrix(const std::vector<std::int64_t>& subset) const {
  const auto r = static_cast<std::int64_t>(subset.size());
  at::Tensor out = at::empty({r, r}, at::kDouble);
  double* o = out.data_ptr<double>();
  for (std::int64_t a = 0; a < r; ++a)
    for (std::int64_t b = 0; b < r; ++b) o[a * r + b] = value(subset[a], subset[b]);
  return out;
}

namespace {

// Lower and upper bounds of the Krum score of subset[a]: the sum of its `k` smallest lower (upper) bounds.
std::pair<double, double> score_interval(const PairwiseDistances& dist, const std::vector<std::int64_t>& subset,
                                         std::int64_t a, std::int64_t k, std::vector<double>& low,
                                         std::vector<double>& high) {
  low.clear();
  high.clear();
  const std::int64_t i = subset[static_cast<std::size_t>(a)];
  for (std::size_t b = 0; b < subset.size(); ++b) {
    if (static_cast<std::int64_t>(b) == a) continue;
    const double v = dist.value(i, subset[b]), e = dist.error(i, subset[b]);
    low.push_back(std::max(0.0, v - e));
    high.push_back(v + e);
  }
  std::nth_element(low.begin(), low.begin() + (k - 1), low.end());
  std::nth_element(high.begin(), high.begin() + (k - 1), high.end());
  double lo = 0, hi = 0;
  for (std::int64_t l = 0; l < k; ++l) {
    lo += low[static_cast<std::size_t>(l)];
    hi += high[static_cast<std::size_t>(l)];
  }
  // The sums themselves round (k additions in float64), and the float64 path rounds as well.
  const double slack = 1e-12 * (std::abs(lo) + std::abs(hi));
  return {lo - slack, hi + slack};
}

}  // namespace

std::vector<std::int64_t> krum_order(PairwiseDistances& distances, const std::vector<std::int64_t>& subset,
                                     std::int64_t neighbours, std::int64_t certain) {
  const auto r = static_cast<std::int64_t>(subset.size());
  std::vector<double> low, high, lo(static_cast<std::size_t>(r)), hi(static_cast<std::size_t>(r));
  for (;;) {
    at::Tensor order_tensor = krum_order(distances.matrix(subset), neighbours);
    std::vector<std::int64_t> order(order_tensor.data_ptr<std::int64_t>(), order_tensor.data_ptr<std::int64_t>() + r);
    if (r <= 1) return order;
    for (std::int64_t a = 0; a < r; ++a)
      std::tie(lo[static_cast<std::size_t>(a)], hi[static_cast<std::size_t>(a)]) =
          score_interval(distances, subset, a, neighbours, low, high);
    std::vector<std::int64_t> unsure;
    for (std::int64_t p = 0; p < std::min(certain, r); ++p) {
      const std::int64_t a = order[static_cast<std::size_t>(p)];
      for (std::int64_t q = certain; q < r; ++q) {
        const std::int64_t b = order[static_cast<std::size_t>(q)];
        if (hi[static_cast<std::size_t>(a)] < lo[static_cast<std::size_t>(b)]) continue;
        // Both exact: their scores and tie-breaks are those of the float64 path.
        if (distances.exact(subset[static_cast<std::size_t>(a)]) && distances.exact(subset[static_cast<std::size_t>(b)]))
          continue;
        unsure.push_back(subset[static_cast<std::size_t>(a)]);
        unsure.push_back(subset[static_cast<std::size_t>(b)]);
      }
    }
    if (unsure.empty()) return order;
    distances.make_rows_exact(unsure);
  }
}

at::Tensor nearest_rows(PairwiseDistances& distances, std::int64_t k) {
  const std::int64_t n = distances.size();
  if (k < 1 || k > n) throw Error("nearest_rows: k = " + std::to_string(k) + " with " + std::to_string(n) + " rows");
  std::vector<std::int64_t> all(static_cast<std::size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  for (bool settled = k == n; !settled;) {
    // Row i's own distance is -1 (exact). An entry whose interval reaches across the boundary between the
    // k nearest and the rest (by estimate) could be on the other side: those are made exact, and the
    // boundary is checked again. With every such entry exact, topk sees the float64 values.
    std::vector<std::pair<std::int64_t, std::int64_t>> unsure;
    std::vector<std::int64_t> order(all);
    for (std::int64_t i = 0; i < n; ++i) {
      if (distances.exact(i)) continue;
      auto key = [&](std::int64_t j) { return j == i ? -1.0 : distances.value(i, j); };
      auto error = [&](std::int64_t j) { return j == i ? 0.0 : distances.error(i, j); };
      std::nth_element(order.begin(), order.begin() + k, order.end(),
                       [&](std::int64_t a, std::int64_t b) { return key(a) < key(b); });
      double inside = -1.0, outside = std::numeric_limits<double>::infinity();
      for (std::int64_t l = 0; l < n; ++l) {
        const std::int64_t j = order[static_cast<std::size_t>(l)];
        if (l < k) inside = std::max(inside, key(j) + error(j));
        else outside = std::min(outside, key(j) - error(j));
      }
      for (std::int64_t l = 0; l < n; ++l) {
        const std::int64_t j = order[static_cast<std::size_t>(l)];
        if (error(j) == 0.0) continue;
        if (l < k ? key(j) + error(j) >= outside : key(j) - error(j) <= inside) unsure.emplace_back(i, j);
      }
    }
    settled = unsure.empty();
    distances.make_exact(unsure);
  }
  at::Tensor matrix = distances.matrix(all);
  matrix.fill_diagonal_(-1.0);
  return std::get<1>(matrix.topk(k, /*dim=*/1, /*largest=*/false, /*sorted=*/false));
}

}  // namespace phalanx
