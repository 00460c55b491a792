#include "phalanx/core/distributed_checkpoint.hpp"

#include <fstream>
#include <iterator>

#include <ATen/core/Dict.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "phalanx/error.hpp"

namespace phalanx::core {

std::string save_checkpoint(const std::string& dir, const at::Tensor& params, const EnginePlugins& plugins) {
  c10::Dict<std::string, at::Tensor> all;
  all.insert("params", params.clone());
  auto add = [&](const std::string& prefix, const Stateful& s) {
    for (const auto& [key, value] : s.save_state()) all.insert(prefix + "/" + key, value);
  };
  add("optimizer", *plugins.optimizer);
  add("aggregator", *plugins.aggregator);
  for (std::size_t i = 0; i < plugins.preaggregators.size(); ++i)
    add("preaggregator" + std::to_string(i), *plugins.preaggregators[i]);
  add("attack", *plugins.attack);
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(all));
  const std::string file = dir + "/checkpoint.pt", tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw Error("cannot write checkpoint '" + tmp + "' (disk full?)");
  }
  std::rename(tmp.c_str(), file.c_str());
  return file;
}

State load_checkpoint(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot read checkpoint '" + file + "'");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  c10::IValue v = torch::jit::pickle_load(bytes);
  if (!v.isGenericDict()) throw Error("'" + file + "' is not a phalanx checkpoint (expected a dict of tensors)");
  State out;
  for (const auto& item : v.toGenericDict()) out[item.key().toStringRef()] = item.value().toTensor();
  return out;
}

}  // namespace phalanx::core
