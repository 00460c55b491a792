#include "phalanx/core/distributed/checkpoint.hpp"

#include <cstring>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Dict.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "phalanx/core/run/checkpoint.hpp"
#include "phalanx/core/run/run_control.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

std::string worker_state_entry(std::int64_t w) { return "distributed/worker" + std::to_string(w) + "/state"; }

at::Tensor pack_state(const State& state) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, value] : state) dict.insert(name, value.contiguous());
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(dict));
  at::Tensor out = at::empty({static_cast<std::int64_t>(bytes.size())}, at::kByte);
  if (!bytes.empty()) std::memcpy(out.data_ptr(), bytes.data(), bytes.size());
  return out;
}

State unpack_state(const at::Tensor& bytes, const std::string& who) {
  if (!bytes.defined() || bytes.scalar_type() != at::kByte || bytes.dim() != 1)
    throw Error(who + ": the saved worker state is not a byte string");
  const at::Tensor c = bytes.contiguous();
  const char* data = static_cast<const char*>(c.data_ptr());
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(std::vector<char>(data, data + c.numel()));
  } catch (const std::exception& e) {
    throw Error(who + ": the saved worker state cannot be decoded: " + std::string(e.what()).substr(0, 200));
  }
  if (!value.isGenericDict()) throw Error(who + ": the saved worker state is not a dict of tensors");
  State out;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor())
      throw Error(who + ": the saved worker state holds an entry that is not a named tensor");
    out[item.key().toStringRef()] = item.value().toTensor();
  }
  return out;
}

// The entries go through a Checkpoint so the batch stream saves and loads itself as in a simulated run.
State worker_state(RunSetup& run, const EnginePlugins& plugins, std::int64_t w) {
  Checkpoint checkpoint;
  checkpoint.put_state("w/rule", plugins.worker_rules[w]->save_state());
  checkpoint.put_state("w/attack", plugins.attack->save_state());
  run.streams[w].save(checkpoint, "w/batches");
  checkpoint.put("w/generator", at::detail::getDefaultCPUGenerator().get_state());
  return checkpoint.get_state("w");
}

void restore_worker_state(const State& state, RunSetup& run, EnginePlugins& plugins, std::int64_t w) {
  Checkpoint checkpoint;
  checkpoint.put_state("w", state);
  plugins.worker_rules[w]->load_state(checkpoint.get_state("w/rule"));
  plugins.attack->load_state(checkpoint.get_state("w/attack"));
  run.streams[w].load(checkpoint, "w/batches");
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(checkpoint.get("w/generator"));
}

std::int64_t worker_state_limit(std::int64_t d, std::int64_t train_size) {
  return 16 * d + 16 * train_size + (std::int64_t{1} << 20);
}

}  // namespace phalanx::core
