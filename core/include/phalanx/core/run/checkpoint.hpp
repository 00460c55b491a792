// A checkpoint file: named tensors (plus numbers and text stored as tensors) in one file that is written
// atomically and checked when read. Engines decide what goes in (run_checkpoint.hpp); this file only knows
// how to keep it safe.
//
// Layout: the line "phalanx-checkpoint 1\n", the payload's length (8 bytes, little endian), its CRC-32
// (4 bytes), then the payload: a LibTorch pickle of a dict {name: tensor}. A file cut short, a flipped bit
// or a file from another program is refused before anything is loaded from it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <ATen/core/Tensor.h>

#include "phalanx/stateful.hpp"

namespace phalanx::core {

class Checkpoint {
 public:
  Checkpoint() = default;

  void put(const std::string& name, const at::Tensor& value);
  void put_int(const std::string& name, std::int64_t value);
  void put_double(const std::string& name, double value);  // bit for bit
  void put_text(const std::string& name, const std::string& value);
  /// Every tensor of `state` under "<prefix>/<key>".
  void put_state(const std::string& prefix, const State& state);

  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  /// The entry `name`; throws an Error naming the file and the entry when it is missing.
  const at::Tensor& get(const std::string& name) const;
  std::int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  std::string get_text(const std::string& name) const;
  /// The entries under "<prefix>/", with the prefix taken off.
  State get_state(const std::string& prefix) const;

  /// Writes `file` atomically: a temporary file in the same folder, flushed to disk, then renamed over
  /// `file`, so a crash while saving leaves the previous checkpoint intact.
  void write(const std::string& file) const;
  /// Reads a file written by write(); throws an Error naming `file` when it is missing, truncated,
  /// corrupt or not a phalanx checkpoint.
  static Checkpoint read(const std::string& file);

 private:
  std::map<std::string, at::Tensor> entries_;
  std::string source_ = "checkpoint";  // the file it was read from, for error messages
};

}  // namespace phalanx::core
