// Properties every attack registered in this build must have, the attack counterpart of
// aggregator_conformance_test.cpp: the suite is instantiated over the registry's list, so a new attack plugin
// is tested without touching this file. What each attack sends is checked against hand-computed values and
// reference code in attack_test.cpp, attack_rules_test.cpp and defence_attacks_test.cpp.
//
// Every attack runs with its default parameters for n = 6 workers of which b = 2 are Byzantine, on rounds as
// the engine builds them: h = 4 honest messages, the b true messages, no previous aggregate in round 0, and a
// defence oracle (here the coordinate-wise median) for attacks that search against the defence.
#include <set>
#include <vector>

#include <ATen/ATen.h>

#include "phalanx/context.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

constexpr std::int64_t kWorkers = 6;
constexpr std::int64_t kByzantine = 2;
constexpr std::int64_t kHonest = kWorkers - kByzantine;
constexpr std::int64_t kDim = 5;

// Attacks whose message is non-finite by design (they test the server's input checks, docs/reliability.md).
const std::set<std::string> kNonFiniteByDesign{"nan", "inf"};

std::vector<std::string> attack_names() {
  std::vector<std::string> names;
  for (const core::PluginEntry* entry : builtin_registry().list(core::Kind::Attack)) names.push_back(entry->info.name);
  return names;
}

class MedianOracle : public DefenceOracle {
 public:
  at::Tensor evaluate(const at::Tensor& rows) const override { return std::get<0>(at::median(rows, 0)); }
};

class AttackConformance : public ::testing::TestWithParam<std::string> {
 protected:
  std::shared_ptr<Attack> make() {
    contexts_.push_back(make_context(kWorkers, kByzantine));
    return builtin_registry().make_attack(GetParam(), params_for(core::Kind::Attack, GetParam()), *contexts_.back());
  }

  /// Round `step` of a run: honest messages around a common direction, drawn from `seed`.
  AttackRound round(std::int64_t step, std::uint64_t seed) const {
    at::Generator generator = make_generator(seed);
    const at::Tensor direction = at::randn({kDim}, generator);
    AttackRound r;
    r.honest = direction + at::randn({kHonest, kDim}, generator).mul_(0.1);
    r.byzantine_true = direction + at::randn({kByzantine, kDim}, generator).mul_(0.1);
    r.step = step;
    if (step > 0) r.previous_aggregate = direction.clone();
    r.defence = &oracle_;
    return r;
  }

 private:
  MedianOracle oracle_;
  std::vector<std::unique_ptr<core::RunContext>> contexts_;  // outlive the attacks of one test
};

TEST_P(AttackConformance, CraftsOneFiniteRowPerByzantineWorker) {
  auto attack = make();
  for (std::int64_t step = 0; step < 3; ++step) {
    const at::Tensor out = attack->craft(round(step, 10 + step));
    SCOPED_TRACE("round " + std::to_string(step));
    ASSERT_EQ(out.sizes(), at::IntArrayRef({kByzantine, kDim}));
    EXPECT_EQ(out.scalar_type(), at::kFloat);
    if (kNonFiniteByDesign.count(GetParam()) == 0) EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << out;
  }
}

TEST_P(AttackConformance, DoesNotModifyItsInput) {
  AttackRound r = round(1, 20);
  const at::Tensor honest = r.honest.clone(), truth = r.byzantine_true.clone(), previous = r.previous_aggregate.clone();
  make()->craft(r);
  EXPECT_TRUE(at::equal(r.honest, honest));
  EXPECT_TRUE(at::equal(r.byzantine_true, truth));
  EXPECT_TRUE(at::equal(r.previous_aggregate, previous));
}

TEST_P(AttackConformance, SameSeedGivesBitIdenticalMessages) {
  auto first = make(), second = make();
  for (std::int64_t step = 0; step < 3; ++step) {
    const at::Tensor a = first->craft(round(step, 30 + step)), b = second->craft(round(step, 30 + step));
    EXPECT_TRUE(at::equal(a, b) || (a.isnan().all().item<bool>() && b.isnan().all().item<bool>()))
        << "round " << step << "\n" << a << "\n" << b;
  }
}

TEST_P(AttackConformance, RestoredCopyContinuesIdentically) {
  auto original = make();
  original->craft(round(0, 40));
  original->craft(round(1, 41));
  auto restored = make();
  restored->load_state(original->save_state());
  for (std::int64_t step = 2; step < 4; ++step) {
    const at::Tensor a = original->craft(round(step, 40 + step)), b = restored->craft(round(step, 40 + step));
    EXPECT_TRUE(at::equal(a, b) || (a.isnan().all().item<bool>() && b.isnan().all().item<bool>()))
        << "round " << step << "\n" << a << "\n" << b;
  }
}

TEST_P(AttackConformance, AnAttackThatIsNotOmniscientIgnoresTheHonestMessages) {
  // The distributed mode gathers the honest messages only for omniscient attacks: any other attack must
  // craft the same messages whatever they are.
  auto attack = make(), twin = make();
  if (attack->omniscient()) return;  // reading them is its job (attack_rules_test.cpp checks the flags)
  AttackRound r = round(1, 50), other = round(1, 50);
  other.honest = at::randn({kHonest, kDim}, make_generator(51)).mul_(100);
  const at::Tensor a = attack->craft(r), b = twin->craft(other);
  EXPECT_TRUE(at::equal(a, b) || (a.isnan().all().item<bool>() && b.isnan().all().item<bool>())) << a << "\n" << b;
}

INSTANTIATE_TEST_SUITE_P(Builtins, AttackConformance, ::testing::ValuesIn(attack_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace phalanx::test
