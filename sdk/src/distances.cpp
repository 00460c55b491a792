#include "phalanx/distances.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <immintrin.h>

#include "phalanx/error.hpp"
#include "phalanx/row_math.hpp"
#include "phalanx/tensor_checks.hpp"
#include "target_region.hpp"

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
constexpr double kUnit64 = 0x1p-53;  // unit roundoff of float64

// Products each float32 lane of the Gram kernel sums before it is added in float64: the float32 error is
// that of a sum of kLaneTerms terms, 16 times below that of the 256-column BLAS blocks used before
// (docs/BENCHMARKS.md), so far fewer distances need the float64 pass.
constexpr std::int64_t kLaneTerms = 16;
constexpr int kTileRows = 4, kTileColumns = 2;
// 8-column steps of every row kept in L2 (64 rows x 4 KiB) while all the tiles go over them.
constexpr std::int64_t kPanelVectors = 128;

double gamma_of(double terms, double unit) { return terms * unit / (1.0 - terms * unit); }

// Bound factor of the Gram kernel: a float32 sum of kLaneTerms products per lane, then float64 sums of
// d / (8 kLaneTerms) lane values, 8 lanes and 7 tail products; 1 % margin for the norms being estimates.
double float_gram_gamma(std::int64_t d) {
  const double float64_terms = static_cast<double>(d / (8 * kLaneTerms) + 16);
  return 1.01 * (gamma_of(kLaneTerms, kUnit32) + 2.0 * gamma_of(float64_terms, kUnit64));
}

// Entries recomputed in float64 (any order of d products and sums).
double float64_gamma(std::int64_t d) { return 1.01 * gamma_of(static_cast<double>(d) + 1, kUnit64); }

// Compiled for avx2,fma and avx512f whatever the build's -march (target_region.hpp); the caller checks the CPU.
PHALANX_TARGET_BEGIN("avx2,fma")
namespace avx2_fma {
struct Ops {
  using V = __m256;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static void add_to(double* out, V v) {
    _mm256_storeu_pd(out, _mm256_add_pd(_mm256_loadu_pd(out), _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
    _mm256_storeu_pd(out + 4, _mm256_add_pd(_mm256_loadu_pd(out + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
  }
};
#include "float_gram_kernels.inc"
}  // namespace avx2_fma
PHALANX_TARGET_END

PHALANX_TARGET_BEGIN("avx512f")
#include "float_gram_avx512.inc"
PHALANX_TARGET_END

namespace sse2 {
struct Ops {
  struct V {
    __m128 lo, hi;
  };
  static V zero() { return {_mm_setzero_ps(), _mm_setzero_ps()}; }
  static V load(const float* p) { return {_mm_loadu_ps(p), _mm_loadu_ps(p + 4)}; }
  static V fma(V a, V b, V c) { return {_mm_add_ps(_mm_mul_ps(a.lo, b.lo), c.lo), _mm_add_ps(_mm_mul_ps(a.hi, b.hi), c.hi)}; }
  static void add_to(double* out, V v) {
    const __m128 parts[2] = {v.lo, v.hi};
    for (int h = 0; h < 2; ++h) {
      double* o = out + 4 * h;
      _mm_storeu_pd(o, _mm_add_pd(_mm_loadu_pd(o), _mm_cvtps_pd(parts[h])));
      _mm_storeu_pd(o + 2, _mm_add_pd(_mm_loadu_pd(o + 2), _mm_cvtps_pd(_mm_movehl_ps(parts[h], parts[h]))));
    }
  }
};
#include "float_gram_kernels.inc"
}  // namespace sse2

bool has_avx2_fma() { return cpu::has_avx2() && cpu::has_fma(); }

std::atomic<GramKernel> g_gram_kernel{GramKernel::Widest};

// The tile function of the kernel in use: the widest this CPU runs, or the one set_gram_kernel chose.
GramKernel chosen_gram_kernel() {
  const GramKernel kernel = g_gram_kernel.load(std::memory_order_relaxed);
  if (kernel != GramKernel::Widest) return kernel;
  return cpu::has_avx512f() ? GramKernel::Avx512 : has_avx2_fma() ? GramKernel::Avx2Fma : GramKernel::Sse2;
}

// The widest tile the kernel has (rows of b per tile; always kTileRows rows of a).
int tile_columns(GramKernel kernel) { return kernel == GramKernel::Avx512 ? avx512::kTileColumns : kTileColumns; }

avx2_fma::TileFunction tile_for(GramKernel kernel, int rows, int columns) {
  switch (kernel) {
    case GramKernel::Avx512: return avx512::tile_function(rows, columns);
    case GramKernel::Avx2Fma: return avx2_fma::tile_function(rows, columns);
    default: return sse2::tile_function(rows, columns);
  }
}

// Fetches the next panel of columns [start, start + width) of all n rows into the caches a share at a time,
// one share before each of the current panel's `tiles` tile calls. Without it the first tiles of each panel
// waited on memory: the hardware prefetcher does not follow 64 rows 4 KiB at a time (docs/BENCHMARKS.md, "The
// Gram kernel's next panel"). The current and the next panel (2 x 64 rows x 4 KiB) fit in L2.
class NextPanelPrefetch {
 public:
  NextPanelPrefetch(const float* x, std::int64_t n, std::int64_t d, std::int64_t start, std::int64_t width,
                    std::int64_t tiles)
      : x_(x), n_(n), d_(d), start_(start), lines_per_row_((width + kFloatsPerLine - 1) / kFloatsPerLine),
        per_tile_((n * lines_per_row_ + tiles - 1) / std::max<std::int64_t>(tiles, 1)) {}

  void next_share() {
    for (std::int64_t k = 0; k < per_tile_ && row_ < n_; ++k) {
      _mm_prefetch(reinterpret_cast<const char*>(x_ + row_ * d_ + start_ + line_ * kFloatsPerLine), _MM_HINT_T1);
      if (++line_ == lines_per_row_) {
        line_ = 0;
        ++row_;
      }
    }
  }

 private:
  static constexpr std::int64_t kFloatsPerLine = 16;  // 64-byte cache lines
  const float* x_;
  std::int64_t n_, d_, start_, lines_per_row_, per_tile_;
  std::int64_t row_ = 0, line_ = 0;
};

// The Gram matrix of the float32 rows x ([n, d]) into gram ([n, n], float64), by tiles of kTileRows x
// tile_columns(kernel) rows over panels of columns: every row is read from memory once, and only the upper
// triangle is computed. Each entry is within float_gram_gamma(d) * sum |x_il x_jl| of the exact one.
void float_gram(const float* x, std::int64_t n, std::int64_t d, std::vector<double>& gram) {
  const std::int64_t vectors = d / 8;
  std::vector<double> lanes(static_cast<std::size_t>(n * n * 8), 0.0);
  std::vector<const float*> panel(static_cast<std::size_t>(n));
  const GramKernel kernel = chosen_gram_kernel();
  const std::int64_t most_columns = tile_columns(kernel);
  double part[kTileRows * avx512::kTileColumns * 8];  // the widest tile of any kernel
  std::int64_t tiles = 0;  // tile calls per panel
  for (std::int64_t ib = 0; ib < n; ib += kTileRows) tiles += (n - ib + most_columns - 1) / most_columns;
  for (std::int64_t first = 0; first < vectors; first += kPanelVectors) {
    const std::int64_t count = std::min(kPanelVectors, vectors - first);
    for (std::int64_t i = 0; i < n; ++i) panel[static_cast<std::size_t>(i)] = x + i * d + 8 * first;
    NextPanelPrefetch prefetch(x, n, d, 8 * (first + count), 8 * std::min(kPanelVectors, vectors - first - count),
                               tiles);
    for (std::int64_t ib = 0; ib < n; ib += kTileRows) {
      const int rows = static_cast<int>(std::min<std::int64_t>(kTileRows, n - ib));
      for (std::int64_t jb = ib; jb < n; jb += most_columns) {
        const int columns = static_cast<int>(std::min<std::int64_t>(most_columns, n - jb));
        for (int i = 0; i < rows; ++i)
          for (int j = 0; j < columns; ++j)
            std::copy_n(&lanes[static_cast<std::size_t>(((ib + i) * n + jb + j) * 8)], 8, part + (i * columns + j) * 8);
        auto tile = tile_for(kernel, rows, columns);
        prefetch.next_share();
        tile(&panel[static_cast<std::size_t>(ib)], &panel[static_cast<std::size_t>(jb)], count, part);
        for (int i = 0; i < rows; ++i)
          for (int j = 0; j < columns; ++j)
            std::copy_n(part + (i * columns + j) * 8, 8, &lanes[static_cast<std::size_t>(((ib + i) * n + jb + j) * 8)]);
      }
    }
  }
  // Every pair i <= j lies in a tile (jb runs from ib): the lanes, then the last d % 8 columns, in float64.
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = i; j < n; ++j) {
      const double* lane = &lanes[static_cast<std::size_t>((i * n + j) * 8)];
      double sum = 0;
      for (int l = 0; l < 8; ++l) sum += lane[l];
      for (std::int64_t c = 8 * vectors; c < d; ++c)
        sum += static_cast<double>(x[i * d + c]) * static_cast<double>(x[j * d + c]);
      gram[static_cast<std::size_t>(i * n + j)] = gram[static_cast<std::size_t>(j * n + i)] = sum;
    }
}

bool all_finite(const float* x, std::int64_t count) {
  bool ok = true;
  for (std::int64_t e = 0; e < count; ++e) ok &= (x[e] - x[e] == 0.0f);
  return ok;
}

// The Gram entries of the rows flagged in `wide` recomputed in float64, over blocks of 256 columns converted
// one at a time (no float64 copy of the whole input).
void gram_in_float64(const std::vector<char>& wide, std::vector<double>& gram, const at::Tensor& rows) {
  std::vector<std::int64_t> picked;
  for (std::size_t i = 0; i < wide.size(); ++i)
    if (wide[i]) picked.push_back(static_cast<std::int64_t>(i));
  if (picked.empty()) return;
  const std::int64_t n = rows.size(0), d = rows.size(1), columns = 256;
  at::Tensor index = at::tensor(picked, at::kLong);
  at::Tensor exact = at::zeros({static_cast<std::int64_t>(picked.size()), n}, at::kDouble);
  for (std::int64_t start = 0; start < d; start += columns) {
    at::Tensor part = rows.narrow(1, start, std::min(columns, d - start)).to(at::kDouble);
    exact.addmm_(part.index_select(0, index), part.t());
  }
  const double* e = exact.data_ptr<double>();
  for (std::size_t p = 0; p < picked.size(); ++p)
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t i = picked[p];
      gram[static_cast<std::size_t>(i * n + j)] = gram[static_cast<std::size_t>(j * n + i)] =
          e[static_cast<std::int64_t>(p) * n + j];
    }
}

// out[j] = x[j] in float64, eight at a time where the CPU has AVX2, sixteen with AVX-512 (a plain copy_n
// converts two at a time).
__attribute__((target_clones("avx512f", "avx2", "default"))) void widen(const float* x, std::int64_t count, double* out) {
  for (std::int64_t j = 0; j < count; ++j) out[j] = static_cast<double>(x[j]);
}

}  // namespace

bool set_gram_kernel(GramKernel kernel) {
  const bool runs = kernel == GramKernel::Widest || kernel == GramKernel::Sse2 ||
                    (kernel == GramKernel::Avx2Fma && has_avx2_fma()) || (kernel == GramKernel::Avx512 && cpu::has_avx512f());
  if (runs) g_gram_kernel = kernel;
  return runs;
}

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
  const std::int64_t n = n_, d = rows_.size(1);
  const float* rows = rows_.data_ptr<float>();
  std::vector<double> gram(static_cast<std::size_t>(n * n), 0.0);
  float_gram(rows, n, d, gram);
  // A row whose squared norm is not finite holds NaN or Inf, or its float32 products overflowed; the latter
  // rows ("wide") get their Gram entries again in float64, where finite float32 values cannot overflow.
  std::vector<char> wide(static_cast<std::size_t>(n), 0);
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(gram[static_cast<std::size_t>(i * n + i)]) && all_finite(rows + i * d, d))
      wide[static_cast<std::size_t>(i)] = 1;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      if (!std::isfinite(gram[static_cast<std::size_t>(i * n + j)]) &&
          std::isfinite(gram[static_cast<std::size_t>(i * n + i)]) &&
          std::isfinite(gram[static_cast<std::size_t>(j * n + j)]))
        wide[static_cast<std::size_t>(i)] = wide[static_cast<std::size_t>(j)] = 1;
  gram_in_float64(wide, gram, rows_);
  const double gamma = float_gram_gamma(d), gamma_wide = float64_gamma(d);
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
        const bool either_wide = wide[static_cast<std::size_t>(i)] || wide[static_cast<std::size_t>(j)];
        e = ((either_wide ? gamma_wide : gamma) + 1e-12) * roots * roots + underflow + flushed * roots;
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
  // One pass over the columns, block by block: each row a block needs is read from memory and converted to
  // float64 once (at most 64 rows x 512 columns = 256 KiB, in L2), then every pair is two loads, a
  // subtraction and a multiply-add per column. squared_distance_of_wide_rows does squared_distance's
  // arithmetic, so the sums are the same as from the float32 rows.
  const std::int64_t d = rows_.size(1);
  constexpr std::int64_t kColumns = 512;
  const float* x = rows_.data_ptr<float>();
  std::vector<std::int64_t> slot(static_cast<std::size_t>(n_), -1), involved;
  for (const auto& [i, j] : todo)
    for (std::int64_t r : {i, j})
      if (slot[static_cast<std::size_t>(r)] < 0) {
        slot[static_cast<std::size_t>(r)] = static_cast<std::int64_t>(involved.size());
        involved.push_back(r);
      }
  std::vector<double> wide(involved.size() * kColumns);
  std::vector<double> sums(todo.size(), 0.0);
  for (std::int64_t start = 0; start < d; start += kColumns) {
    const std::int64_t width = std::min(kColumns, d - start);
    const std::int64_t next = std::min(kColumns, std::max<std::int64_t>(0, d - start - kColumns));
    for (std::size_t s = 0; s < involved.size(); ++s) {
      const float* row = x + involved[s] * d + start;
      widen(row, width, wide.data() + s * kColumns);
      // The hardware prefetcher does not follow dozens of rows 2 KiB at a time: fetch each row's next block
      // into L2 while this one is being used (a block iteration is ample lead time).
      for (std::int64_t j = 0; j < next; j += 16)
        _mm_prefetch(reinterpret_cast<const char*>(row + kColumns + j), _MM_HINT_T1);
    }
    for (std::size_t p = 0; p < todo.size(); ++p)
      sums[p] += squared_distance_of_wide_rows(wide.data() + slot[static_cast<std::size_t>(todo[p].first)] * kColumns,
                                               wide.data() + slot[static_cast<std::size_t>(todo[p].second)] * kColumns,
                                               width);
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

// True when every distance from subset[a] to the other rows of the subset is exact.
bool exact_within(const PairwiseDistances& dist, const std::vector<std::int64_t>& subset, std::int64_t a) {
  const std::int64_t i = subset[static_cast<std::size_t>(a)];
  if (dist.exact(i)) return true;
  for (std::int64_t j : subset)
    if (dist.error(i, j) != 0.0) return false;
  return true;
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
        if (exact_within(distances, subset, a) && exact_within(distances, subset, b)) continue;
        unsure.push_back(subset[static_cast<std::size_t>(a)]);
        unsure.push_back(subset[static_cast<std::size_t>(b)]);
      }
    }
    if (unsure.empty()) return order;
    // Only the distances inside the subset decide its order: those from the unsure rows are made exact (a
    // row of Bulyan's later Krum steps no longer needs its distances to the rows chosen before).
    std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
    for (std::int64_t i : unsure)
      for (std::int64_t j : subset)
        if (j != i) pairs.emplace_back(i, j);
    distances.make_exact(pairs);
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
