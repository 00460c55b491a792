// Reader for the IDX format of MNIST and Fashion-MNIST (gzip-compressed or plain; zlib reads both).
// Every malformed input (missing, truncated, wrong magic, impossible sizes, trailing bytes) is a
// phalanx::Error naming the file and what is wrong with it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace phalanx::idx {

struct IdxArray {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> data;  // unsigned bytes, row-major
};

/// Parses an IDX file of unsigned bytes (type code 0x08). `max_items` (0: no limit) bounds the first
/// dimension, so a corrupt header cannot make us allocate gigabytes.
IdxArray read_idx(const std::string& path, std::int64_t max_items = 10'000'000);
/// Parses IDX bytes already in memory (`name` appears in errors), with read_idx's checks and errors.
IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& name, std::int64_t max_items);

/// Images [N, 1, H, W] float32 scaled to [0, 1] and labels [N] int64, checked against each other.
at::Tensor images_to_tensor(const IdxArray& images, const std::string& name);
at::Tensor labels_to_tensor(const IdxArray& labels, const std::string& name, std::int64_t classes);

}  // namespace phalanx::idx
