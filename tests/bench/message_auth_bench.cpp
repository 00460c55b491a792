// The cost of the distributed mode's message authentication (docs/distributed.md, "Cost of the MACs"): one
// HMAC-SHA256 over header and payload when a message is sealed and again when it is verified, beside a copy of
// the same payload (what the server already does once per message for its parameter snapshot). Not run by
// ctest.
//
//   phalanx_auth_bench [--benchmark_filter=...] [--benchmark_repetitions=5]
#include <benchmark/benchmark.h>

#include <ATen/ATen.h>

#include "phalanx/core/distributed/channel.hpp"

namespace {

using namespace phalanx::core;

Message gradient(std::int64_t d) {
  Message m;
  m.header.kind = MessageKind::Gradient;
  m.header.sender = 1;
  m.header.numel = d;
  m.header.dtype = static_cast<std::int64_t>(at::kFloat);
  m.payload = at::randn({d});
  return m;
}

Digest key() { return session_key("benchmark key, 32 bytes long....", 1, 5, Nonce{}, Nonce{}); }

void BM_CopyPayload(benchmark::State& state) {
  const Message m = gradient(state.range(0));
  at::Tensor copy = at::empty_like(m.payload);
  for (auto _ : state) benchmark::DoNotOptimize(copy.copy_(m.payload).data_ptr());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(m.payload.nbytes()));
}

void BM_SealMessage(benchmark::State& state) {
  Message m = gradient(state.range(0));
  MessageAuthenticator worker(key(), 1, 0);
  for (auto _ : state) {
    worker.seal(m);
    benchmark::DoNotOptimize(m.header.mac.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(m.payload.nbytes()));
}

void BM_VerifyMessage(benchmark::State& state) {
  Message m = gradient(state.range(0));
  MessageAuthenticator worker(key(), 1, 0), server(key(), 0, 1);
  for (auto _ : state) {
    state.PauseTiming();
    worker.seal(m);
    state.ResumeTiming();
    if (!server.verify(m).empty()) state.SkipWithError("an authentic message was rejected");
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(m.payload.nbytes()));
}

BENCHMARK(BM_CopyPayload)->Arg(1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SealMessage)->Arg(1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_VerifyMessage)->Arg(1000000)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
