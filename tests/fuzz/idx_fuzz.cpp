// Fuzzes the IDX reader of the Fashion-MNIST plugin (plugins/data/idx_reader.cpp) through the path a run
// takes: read_idx on a file (gzip or plain: zlib reads both), then the conversion to image or label
// tensors. Inputs are files, so gzip framing, CRC and truncation are fuzzed too.
#include <cstdint>

#include <ATen/ATen.h>

#include "fuzz_support.hpp"
#include "idx_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace phalanx;
  const std::string file = fuzz::write_file(fuzz::scratch_dir() / "data-idx-ubyte.gz", data, size);
  fuzz::expect_clean(file, [&] {
    const idx::IdxArray a = idx::read_idx(file);
    std::int64_t total = 1;
    for (auto d : a.dims) total *= d;
    if (static_cast<std::size_t>(total) != a.data.size()) fuzz::finding("dims do not match the data size");
    if (a.dims.size() == 3 && idx::images_to_tensor(a, file).numel() != total)
      fuzz::finding("image tensor size differs from the IDX data");
    if (a.dims.size() == 1 && idx::labels_to_tensor(a, file, 10).numel() != total)
      fuzz::finding("label tensor size differs from the IDX data");
  });
  return 0;
}
