#include "phalanx/coordinate_sort.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <immintrin.h>

#include "phalanx/error.hpp"
#include "phalanx/helpers/parallel.hpp"
#include "target_region.hpp"

namespace phalanx {

namespace {

// The sort: a bitonic sorting network of size m = 2^L >= n, run on a block of `width` columns (lane groups
// of 8 floats, one AVX2 register each). The m - n rows that are not data are padding (the largest float
// after the data, and for the median also the smallest before it). Every comparator puts the minimum at the
// lower row: stage s (s = 1 .. L) merges sorted runs of 2^(s-1) into runs of 2^s with one "flip" layer (row
// i against i ^ (2^s - 1)) and then half-cleaner layers (i against i ^ k, k = 2^(s-2) .. 1).
//
// The speed comes from how the layers are grouped into passes: up to three consecutive layers of one stage
// touch closed groups of 8 rows, so a pass loads 8 rows of a lane group into registers, runs all its
// comparators there and stores 8 rows, instead of one load/store round trip per comparator. For m = 64 a
// full sort takes 7 passes over the block (the first sorts aligned groups of 8 rows with Batcher's
// 19-comparator network, reading them straight from the input); the block stays in L1. The median needs
// two passes fewer (see median_of_halves).
//
// The padding rows hold -FLT_MAX and FLT_MAX rather than infinities: a finite value ties with them at
// worst, and ties do not change the sorted values, while the first pass can then flag any NaN or Inf it
// reads (x - x is not 0) without telling padding and data apart.

// Layers per pass: 8 rows in registers (AVX2 has 16; a fourth layer, 16 rows, measured no faster).
constexpr std::size_t kLayersPerPass = 3;
// Block widths are multiples of this, and of every kernel's vector width (16 floats for AVX-512).
constexpr std::int64_t kLanes = 16;
constexpr std::size_t kAlignment = 64;  // bytes: a whole AVX-512 register per aligned load

// One pass: `layers` consecutive layers of one stage, the first a flip layer when `flip`. The block rows are
// split into groups of 2^layers that only meet each other in these layers; offsets holds, per group, the
// float offset (row * stride) of the row in each register. Within a group, register r pairs with
// r ^ (2^layers - 1) in the flip layer and with r ^ 2^b in layer b, always with the minimum at the lower
// register (the registers are numbered so that this is also the lower row).
struct Pass {
  int layers = 0;
  bool flip = false;
  std::vector<std::int32_t> offsets;
};

struct Schedule {
  std::int64_t m = 1;      // network size (power of two >= n)
  std::int64_t stride = 0;  // floats per block row
  bool sort8 = false;      // first pass: sort aligned groups of 8 rows with the 19-comparator network
  std::vector<Pass> passes;        // the full sort
  std::size_t median_passes = 0;   // passes before the last stage (median_of_halves does its flip)
};

// The rows of one pass of stage s: layer b has the row bit h[b] (flip: s - 1; half-cleaner k: log2 k).
Pass make_pass(std::int64_t m, std::int64_t stride, int s, bool flip, const std::vector<int>& h) {
  Pass pass;
  pass.layers = static_cast<int>(h.size());
  pass.flip = flip;
  std::int64_t high = 0;
  for (int bit : h) high |= std::int64_t{1} << bit;
  const std::int64_t flip_mask = (std::int64_t{1} << s) - 1;
  const int size = 1 << pass.layers;
  for (std::int64_t rep = 0; rep < m; ++rep) {
    if (rep & high) continue;  // one representative per group: the row with all the group's bits clear
    for (int r = 0; r < size; ++r) {
      // Register r holds the row whose group bits spell r. With a flip, the rows whose flip bit is set sit
      // across the flip from the representative, so their other low bits are mirrored too.
      std::int64_t row = flip && (r & 1) ? ((rep ^ flip_mask) & ~high) : rep;
      for (int b = 0; b < pass.layers; ++b)
        if (r >> b & 1) row |= std::int64_t{1} << h[static_cast<std::size_t>(b)];
      pass.offsets.push_back(static_cast<std::int32_t>(row * stride));
    }
  }
  return pass;
}

// The network size for n rows: the smallest power of two >= n.
std::int64_t network_size(std::int64_t n) {
  std::int64_t m = 1;
  while (m < n) m <<= 1;
  return m;
}

Schedule make_schedule(std::int64_t n, std::int64_t stride) {
  Schedule schedule;
  schedule.stride = stride;
  schedule.m = network_size(n);
  int stages = 0;
  while ((std::int64_t{1} << stages) < schedule.m) ++stages;
  const std::int64_t m = schedule.m;
  int first = 1;
  if (stages >= 3) {
    schedule.sort8 = true;
    first = 4;
  }
  for (int s = first; s <= stages; ++s) {
    // Stage s has s layers (bits s - 1 for the flip, then s - 2 .. 0). Cut into passes of three layers from
    // the end, so the last pass of every stage works on aligned groups of 8 rows.
    std::vector<int> bits;
    for (int b = s - 1; b >= 0; --b) bits.push_back(b);
    const std::size_t head = bits.size() % kLayersPerPass == 0 ? kLayersPerPass : bits.size() % kLayersPerPass;
    if (s == stages) schedule.median_passes = schedule.passes.size();
    schedule.passes.push_back(make_pass(m, stride, s, true, {bits.begin(), bits.begin() + static_cast<long>(head)}));
    for (std::size_t b = head; b < bits.size(); b += kLayersPerPass)
      schedule.passes.push_back(make_pass(m, stride, s, false, {bits.begin() + static_cast<long>(b),
                                                               bits.begin() + static_cast<long>(b + kLayersPerPass)}));
  }
  return schedule;
}

// The block's schedule for n rows, made once per n and block stride.
const Schedule& schedule_for(std::int64_t n, std::int64_t stride) {
  static std::mutex mutex;
  static std::map<std::pair<std::int64_t, std::int64_t>, Schedule> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_pair(n, stride);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, make_schedule(n, stride)).first;
  return it->second;
}

// Columns per block: the m x width block (16 KiB) stays in L1 while the passes go over it.
std::int64_t block_width(std::int64_t m) { return std::clamp<std::int64_t>(4096 / m, kLanes, 512) / kLanes * kLanes; }

// The kernels, compiled three times from one source: for AVX-512F (one 16-float register per vector of
// columns), AVX2 (8 floats) and baseline x86-64 (4-float SSE registers); the dispatchers below pick the
// widest the CPU supports. Every lane does the same min, max, add and multiply in all three, so the
// results are the same bits whichever runs (CoordinateSortKernels.* compares them).
// One definition of the operations for every width: PREFIX is _mm512, _mm256 or _mm.
#define PHALANX_SORT_OPS(VECTOR, WIDTH, PREFIX)                                 \
  struct Ops {                                                                  \
    using V = VECTOR;                                                           \
    static constexpr std::int64_t kWidth = WIDTH;                               \
    static V load(const float* p) { return PREFIX##_load_ps(p); }               \
    static V loadu(const float* p) { return PREFIX##_loadu_ps(p); }             \
    static void store(float* p, V v) { PREFIX##_store_ps(p, v); }               \
    static void storeu(float* p, V v) { PREFIX##_storeu_ps(p, v); }             \
    static V min(V a, V b) { return PREFIX##_min_ps(a, b); }                    \
    static V max(V a, V b) { return PREFIX##_max_ps(a, b); }                    \
    static V add(V a, V b) { return PREFIX##_add_ps(a, b); }                    \
    static V sub(V a, V b) { return PREFIX##_sub_ps(a, b); }                    \
    static V mul(V a, V b) { return PREFIX##_mul_ps(a, b); }                    \
    static V set1(float x) { return PREFIX##_set1_ps(x); }                      \
  };

// Compiled for avx512f and avx2 whatever the build's -march (target_region.hpp); pick() chooses at run time.
PHALANX_TARGET_BEGIN("avx512f")
namespace avx512 {
PHALANX_SORT_OPS(__m512, 16, _mm512)
// Per-lane conditions: a 16-bit mask register.
struct Mask {
  using M = __mmask16;
  static M less(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
  static M less_equal(__m512 a, __m512 b) { return _mm512_cmp_ps_mask(a, b, _CMP_LE_OQ); }
  static M both(M a, M b) { return static_cast<M>(a & b); }
  static __m512 select(M m, __m512 yes, __m512 no) { return _mm512_mask_blend_ps(m, no, yes); }
  static __m512 add_where(M m, __m512 sum, __m512 x) { return _mm512_mask_add_ps(sum, m, sum, x); }
};
#include "coordinate_sort_kernels.inc"
}  // namespace avx512
PHALANX_TARGET_END

PHALANX_TARGET_BEGIN("avx2")
namespace avx2 {
PHALANX_SORT_OPS(__m256, 8, _mm256)
// Per-lane conditions: all-ones or all-zero lanes; add_where adds +0 (no change to a sum) where clear.
struct Mask {
  using M = __m256;
  static M less(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static M less_equal(__m256 a, __m256 b) { return _mm256_cmp_ps(a, b, _CMP_LE_OQ); }
  static M both(M a, M b) { return _mm256_and_ps(a, b); }
  static __m256 select(M m, __m256 yes, __m256 no) { return _mm256_blendv_ps(no, yes, m); }
  static __m256 add_where(M m, __m256 sum, __m256 x) { return _mm256_add_ps(sum, _mm256_and_ps(m, x)); }
};
#include "coordinate_sort_kernels.inc"
}  // namespace avx2
PHALANX_TARGET_END

namespace sse {
PHALANX_SORT_OPS(__m128, 4, _mm)
// As AVX2's, with SSE2's and/andnot/or for the select.
struct Mask {
  using M = __m128;
  static M less(__m128 a, __m128 b) { return _mm_cmplt_ps(a, b); }
  static M less_equal(__m128 a, __m128 b) { return _mm_cmple_ps(a, b); }
  static M both(M a, M b) { return _mm_and_ps(a, b); }
  static __m128 select(M m, __m128 yes, __m128 no) { return _mm_or_ps(_mm_and_ps(m, yes), _mm_andnot_ps(m, no)); }
  static __m128 add_where(M m, __m128 sum, __m128 x) { return _mm_add_ps(sum, _mm_and_ps(m, x)); }
};
#include "coordinate_sort_kernels.inc"
}  // namespace sse
#undef PHALANX_SORT_OPS

// The kernels in use: the widest this CPU runs, or the ones set_sort_kernel chose.
std::atomic<SortKernel> g_sort_kernel{SortKernel::Widest};

SortKernel sort_kernel_in_use() {
  static const SortKernel widest = cpu::has_avx512f() ? SortKernel::Avx512
                                   : cpu::has_avx2()    ? SortKernel::Avx2
                                                        : SortKernel::Sse2;
  const SortKernel chosen = g_sort_kernel.load(std::memory_order_relaxed);
  return chosen == SortKernel::Widest ? widest : chosen;
}

// The one of a kernel's three forms (avx512::f, avx2::f, sse::f) for the instruction set in use.
template <typename Kernel>
Kernel pick(Kernel avx512_form, Kernel avx2_form, Kernel sse_form) {
  switch (sort_kernel_in_use()) {
    case SortKernel::Avx512: return avx512_form;
    case SortKernel::Avx2: return avx2_form;
    default: return sse_form;
  }
}

// Runs the sort8 pass (if any, reading row r from source[r]) and passes [0, count) of the schedule over
// the block; `ahead` floats past each source row's columns are prefetched. Returns false when the first
// pass read a NaN or Inf.
bool run_passes(const float* const* source, float* block, std::int64_t width, std::int64_t ahead,
                const Schedule& schedule, std::size_t count) {
  return pick(avx512::run_passes, avx2::run_passes, sse::run_passes)(
      source, block, width, schedule.sort8, schedule.m, schedule.stride, ahead, schedule.passes.data(), count);
}

// A block of `width` columns (a multiple of kLanes, stride floats per row) of the rows, with `low` rows
// of -inf before them and +inf after them up to m rows.
class Block {
 public:
  Block(std::int64_t n, std::int64_t low)
      : n_(n), low_(low), m_(network_size(n)), width_(block_width(m_)),
        schedule_(schedule_for(n, width_)),
        data_(static_cast<std::size_t>(m_ * width_) + kAlignment / sizeof(float)),
        minus_(static_cast<std::size_t>(width_), -std::numeric_limits<float>::max()),
        plus_(static_cast<std::size_t>(width_), std::numeric_limits<float>::max()),
        source_(static_cast<std::size_t>(m_)) {
    // Align for the vector loads.
    auto address = reinterpret_cast<std::uintptr_t>(data_.data());
    base_ = data_.data() + ((kAlignment - address % kAlignment) % kAlignment) / sizeof(float);
  }
  std::int64_t width() const { return width_; }
  float* rows() { return base_ + low_ * width_; }
  float* data() { return base_; }
  std::int64_t m() const { return m_; }

  // The schedule's passes (after the sort8 pass, if any): all of them sort fully; the median needs
  // median_passes(); the trimmed mean runs all but the last (a 3-layer pass on aligned groups of 8 rows,
  // when last_pass_sorts_groups_of_8()) and does that one itself.
  std::size_t all_passes() const { return schedule_.passes.size(); }
  std::size_t median_passes() const { return schedule_.median_passes; }
  bool last_pass_sorts_groups_of_8() const {
    return !schedule_.passes.empty() && schedule_.passes.back().layers == 3 && !schedule_.passes.back().flip;
  }

  // Sorts columns [start, start + count) of the n rows that begin at in[0], ..., in[n - 1] into the block
  // (count <= width) by the sort8 pass and the first `passes` passes of the schedule.
  // Returns false when one of the values is NaN or Inf (the block is then meaningless).
  bool load_and_sort(const float* const* in, std::int64_t start, std::int64_t count, std::size_t passes) {
    if (count == width_ && schedule_.sort8) {
      // The first pass reads straight from the input rows (and the padding rows).
      for (std::int64_t r = 0; r < m_; ++r)
        source_[static_cast<std::size_t>(r)] = r < low_ ? minus_.data() : r >= low_ + n_ ? plus_.data()
                                                                           : in[r - low_] + start;
      return run_passes(source_.data(), base_, width_, width_, schedule_, passes);
    }
    // A narrower last block, or no first pass to read the input: copy the rows in first, with the lane
    // groups past `count` zero-filled. The padding is written every time: a partial sort (the median's)
    // leaves other values in those rows.
    std::fill(base_, base_ + low_ * width_, -std::numeric_limits<float>::max());
    std::fill(base_ + (low_ + n_) * width_, base_ + m_ * width_, std::numeric_limits<float>::max());
    float* dst = rows();
    bool finite = true;
    for (std::int64_t i = 0; i < n_; ++i) {
      const float* row = in[i] + start;
      std::memcpy(dst + i * width_, row, static_cast<std::size_t>(count) * sizeof(float));
      std::fill(dst + i * width_ + count, dst + (i + 1) * width_, 0.0f);
      if (!schedule_.sort8)  // else the first pass checks
        for (std::int64_t j = 0; j < count; ++j) finite = finite && std::isfinite(row[j]);
    }
    for (std::int64_t r = 0; r < m_; ++r) source_[static_cast<std::size_t>(r)] = base_ + r * width_;
    return run_passes(source_.data(), base_, round_up(count), 0, schedule_, passes) && finite;
  }

  static std::int64_t round_up(std::int64_t count) { return (count + kLanes - 1) / kLanes * kLanes; }

 private:
  std::int64_t n_, low_, m_, width_;
  const Schedule& schedule_;
  std::vector<float> data_;
  float* base_ = nullptr;
  std::vector<float> minus_, plus_;         // padding rows
  std::vector<const float*> source_;  // where the first pass reads each row
};

// Runs body(block, start, width) for every block of columns of an [n, d] input, in tasks of 16 blocks that
// may run on the engine's lent threads (helpers/parallel.hpp), each task with its own Block. Every column is
// its own computation, so the result is the same however the tasks are shared. A body returns false to stop
// (a non-finite value when the caller asked to know); then for_each_column_block returns false.
template <typename Body>
bool for_each_column_block(std::int64_t n, std::int64_t low, std::int64_t d, const Body& body) {
  const std::int64_t width = block_width(network_size(n)), per_task = 16 * width;
  std::atomic<bool> go_on{true};
  for_each_block((d + per_task - 1) / per_task, [&](std::int64_t task) {
    Block block(n, low);
    const std::int64_t end = std::min(d, (task + 1) * per_task);
    for (std::int64_t start = task * per_task; start < end && go_on.load(std::memory_order_relaxed); start += width)
      if (!body(block, start, std::min(width, end - start))) go_on = false;
  });
  return go_on;
}

// Mean of each column of a sorted block after dropping the `trim` smallest and `trim` largest values.
// (Sums first, one multiply after: no clone can fuse them into an FMA.)
__attribute__((target_clones("avx512f", "avx2", "default"))) void trimmed_mean_of_sorted(const float* sorted, std::int64_t n, std::int64_t width, std::int64_t trim, float* out) {
  std::fill(out, out + width, 0.0f);
  for (std::int64_t i = trim; i < n - trim; ++i) {
    const float* row = sorted + i * width;
    for (std::int64_t j = 0; j < width; ++j) out[j] += row[j];
  }
  const float scale = 1.0f / static_cast<float>(n - 2 * trim);
  for (std::int64_t j = 0; j < width; ++j) out[j] *= scale;
}

// Median of each column of a sorted block: the middle value, or the mean of the two middle values.
void median_of_sorted(const float* sorted, std::int64_t n, std::int64_t width, float* out) {
  const float* low = sorted + ((n - 1) / 2) * width;
  const float* high = sorted + (n / 2) * width;
  for (std::int64_t j = 0; j < width; ++j) out[j] = 0.5f * low[j] + 0.5f * high[j];
}

// For each column of a sorted block (value i of column j at sorted[i * width + j]), the mean of the `keep`
// values nearest to center[j]. In sorted order the nearest values are consecutive: of the n - keep + 1
// windows of keep consecutive values, the one whose farther end is nearest to the center (the lowest such
// window on exact ties, a choice that depends only on the values, not on the order of the rows); its values
// are summed in sorted order from +0 and the sum multiplied by 1 / keep. The vector kernel
// (coordinate_sort_kernels.inc) does whole vectors of columns; the last few columns are done here, one at a
// time, with the same operations.
void mean_of_nearest(const float* sorted, std::int64_t n, std::int64_t width, std::int64_t keep, const float* center,
                     float* out) {
  const std::int64_t done = pick(avx512::mean_of_nearest, avx2::mean_of_nearest, sse::mean_of_nearest)(
      sorted, n, width, keep, center, out);
  const float scale = 1.0f / static_cast<float>(keep);
  for (std::int64_t j = done; j < width; ++j) {
    float reach = std::numeric_limits<float>::infinity();
    std::int64_t begin = 0;
    for (std::int64_t w = 0; w + keep <= n; ++w) {
      const float farther = std::max(center[j] - sorted[w * width + j], sorted[(w + keep - 1) * width + j] - center[j]);
      if (farther < reach) {
        reach = farther;
        begin = w;
      }
    }
    float sum = 0.0f;
    for (std::int64_t i = begin; i < begin + keep; ++i) sum += sorted[i * width + j];
    out[j] = sum * scale;
  }
}

// Where each row of a contiguous [n, d] float32 tensor begins.
std::vector<const float*> row_starts(const at::Tensor& x) {
  std::vector<const float*> starts;
  for (std::int64_t i = 0; i < x.size(0); ++i) starts.push_back(x.data_ptr<float>() + i * x.size(1));
  return starts;
}

// reduce_sorted_columns over the n = in.size() rows of d columns that begin at in[0], in[1], ...
at::Tensor reduce_sorted_columns_of(const std::vector<const float*>& in, std::int64_t d,
                                    const SortedBlockReducer& reduce, bool* finite) {
  const auto n = static_cast<std::int64_t>(in.size());
  if (n == 0) throw Error("reduce_sorted_columns: no rows");
  at::Tensor out = at::empty({d}, at::kFloat);
  float* result = out.data_ptr<float>();
  const bool all_finite = for_each_column_block(n, 0, d, [&](Block& block, std::int64_t start, std::int64_t width) {
    if (!block.load_and_sort(in.data(), start, width, block.all_passes()) && finite) return false;
    float* sorted = block.rows();
    // The reducer sees `width` floats per row: close the gaps of a narrower last block (moving forward
    // is safe, every row moves to a lower address).
    if (width < block.width())
      for (std::int64_t i = 1; i < n; ++i)
        std::memmove(sorted + i * width, sorted + i * block.width(), static_cast<std::size_t>(width) * sizeof(float));
    reduce(sorted, n, width, result + start);
    return true;
  });
  if (finite) *finite = all_finite;
  return out;
}

}  // namespace

at::Tensor reduce_sorted_columns(const at::Tensor& rows, const SortedBlockReducer& reduce, bool* finite) {
  if (rows.dim() != 2 || rows.scalar_type() != at::kFloat)
    throw Error("reduce_sorted_columns expects an [n, d] float32 tensor");
  at::Tensor x = rows.contiguous();
  return reduce_sorted_columns_of(row_starts(x), x.size(1), reduce, finite);
}

namespace {

// Before the last stage the two halves of the m rows are sorted; the last stage's flip layer would put
// the m / 2 smallest values of every column in the lower half and the rest in the upper half, so the two
// middle values are the largest of the lower half and the smallest of the upper half. The rows were
// padded with as many smallest as largest floats (one more largest when m - n is odd), which puts the
// median of the n values exactly in the middle.
void median_of_halves(const float* block, std::int64_t m, std::int64_t stride, std::int64_t width, bool odd,
                      float* out) {
  pick(avx512::median_of_halves, avx2::median_of_halves, sse::median_of_halves)(block, m, stride, width, odd, out);
}

}  // namespace

at::Tensor coordinate_median(const at::Tensor& rows, bool* finite) {
  if (rows.dim() != 2 || rows.scalar_type() != at::kFloat)
    throw Error("coordinate_median expects an [n, d] float32 tensor");
  const std::int64_t n = rows.size(0), d = rows.size(1);
  if (n < 2)
    return reduce_sorted_columns(
        rows, [](const float* sorted, std::int64_t n, std::int64_t width, float* out) {
          median_of_sorted(sorted, n, width, out);
        },
        finite);
  at::Tensor x = rows.contiguous();
  at::Tensor out = at::empty({d}, at::kFloat);
  const std::vector<const float*> in = row_starts(x);
  float* result = out.data_ptr<float>();
  const bool all_finite = for_each_column_block(
      n, (network_size(n) - n) / 2, d, [&](Block& block, std::int64_t start, std::int64_t width) {
        if (!block.load_and_sort(in.data(), start, width, block.median_passes()) && finite) return false;
        median_of_halves(block.data(), block.m(), block.width(), width, n % 2 == 1, result + start);
        return true;
      });
  if (finite) *finite = all_finite;
  return out;
}

namespace {

// See the kernel in coordinate_sort_kernels.inc.
void trimmed_mean_last_pass(const float* block, std::int64_t stride, std::int64_t width, std::int64_t first,
                            std::int64_t end, std::int64_t count, float* out) {
  pick(avx512::trimmed_mean_last_pass, avx2::trimmed_mean_last_pass, sse::trimmed_mean_last_pass)(
      block, stride, width, first, end, count, out);
}

}  // namespace

at::Tensor coordinate_trimmed_mean(const at::Tensor& rows, std::int64_t trim, bool* finite) {
  const std::int64_t n = rows.size(0);
  if (trim < 0 || 2 * trim >= n)
    throw Error("trimmed mean: cannot drop " + std::to_string(trim) + " values at each end of " + std::to_string(n));
  if (rows.dim() == 2 && rows.scalar_type() == at::kFloat && network_size(n) >= 16) {
    // The last pass of the sort and the sum of the kept values in one (docs/BENCHMARKS.md): the block is neither
    // stored sorted nor read again, and the groups of 8 rows that lie wholly inside or outside the kept
    // ranks need no sorting at all.
    at::Tensor x = rows.contiguous();
    const std::int64_t d = x.size(1);
    at::Tensor out = at::empty({d}, at::kFloat);
    if (Block(n, 0).last_pass_sorts_groups_of_8()) {
      const std::vector<const float*> in = row_starts(x);
      float* result = out.data_ptr<float>();
      const bool all_finite = for_each_column_block(n, 0, d, [&](Block& block, std::int64_t start, std::int64_t width) {
        if (!block.load_and_sort(in.data(), start, width, block.all_passes() - 1) && finite) return false;
        trimmed_mean_last_pass(block.data(), block.width(), Block::round_up(width), trim, n - trim, width,
                               result + start);
        return true;
      });
      if (finite) *finite = all_finite;
      return out;
    }
  }
  return reduce_sorted_columns(
      rows,
      [trim](const float* sorted, std::int64_t n, std::int64_t width, float* out) {
        trimmed_mean_of_sorted(sorted, n, width, trim, out);
      },
      finite);
}

namespace {

SortedBlockReducer mean_closest_to_reducer(std::int64_t n, std::int64_t m, ColumnCentre centre, std::int64_t trim) {
  if (m < 1 || m > n)
    throw Error("mean closest to the centre: cannot keep " + std::to_string(m) + " of " + std::to_string(n) +
                " values per coordinate");
  if (centre == ColumnCentre::TrimmedMean && (trim < 0 || 2 * trim >= n))
    throw Error("trimmed mean: cannot drop " + std::to_string(trim) + " values at each end of " + std::to_string(n));
  return [m, centre, trim](const float* sorted, std::int64_t n, std::int64_t width, float* out) {
    alignas(32) float center[512];  // block widths are at most 512 (block_width)
    if (centre == ColumnCentre::Median)
      median_of_sorted(sorted, n, width, center);
    else
      trimmed_mean_of_sorted(sorted, n, width, trim, center);
    mean_of_nearest(sorted, n, width, m, center, out);
  };
}

}  // namespace

at::Tensor coordinate_mean_closest_to(const at::Tensor& rows, std::int64_t m, ColumnCentre centre, std::int64_t trim,
                                      bool* finite) {
  const std::int64_t n = rows.dim() == 2 ? rows.size(0) : 0;
  return reduce_sorted_columns(rows, mean_closest_to_reducer(n, m, centre, trim), finite);
}

at::Tensor coordinate_mean_closest_to(const at::Tensor& rows, const std::vector<std::int64_t>& chosen, std::int64_t m,
                                      ColumnCentre centre, std::int64_t trim, bool* finite) {
  if (rows.dim() != 2 || rows.scalar_type() != at::kFloat)
    throw Error("coordinate_mean_closest_to expects an [n, d] float32 tensor");
  const SortedBlockReducer reduce = mean_closest_to_reducer(static_cast<std::int64_t>(chosen.size()), m, centre, trim);
  at::Tensor x = rows.contiguous();
  const std::vector<const float*> all = row_starts(x);
  std::vector<const float*> in;
  for (std::int64_t i : chosen) {
    if (i < 0 || i >= x.size(0))
      throw Error("coordinate_mean_closest_to: row " + std::to_string(i) + " of " + std::to_string(x.size(0)));
    in.push_back(all[static_cast<std::size_t>(i)]);
  }
  return reduce_sorted_columns_of(in, x.size(1), reduce, finite);
}

bool set_sort_kernel(SortKernel kernel) {
  const bool runs = kernel == SortKernel::Widest || kernel == SortKernel::Sse2 ||
                    (kernel == SortKernel::Avx2 && cpu::has_avx2()) || (kernel == SortKernel::Avx512 && cpu::has_avx512f());
  if (runs) g_sort_kernel = kernel;
  return runs;
}

}  // namespace phalanx
