// The distributed mode's authentication in process, on crafted messages: what the receiving side of a link
// accepts and what it rejects (forged, altered, replayed, reordered, reflected), the handshake's proofs and
// the key files. The end-to-end counterparts, with real processes, are in distributed_test.cpp.
#include <sys/stat.h>

#include <ATen/ATen.h>

#include "phalanx/core/distributed/channel.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

using core::Digest;
using core::Message;
using core::MessageAuthenticator;
using core::Nonce;

Nonce nonce_of(std::uint8_t fill) {
  Nonce n{};
  n.fill(fill);
  return n;
}

const std::string kKey = "0123456789abcdef0123456789abcdef";

Digest link_key(const std::string& key = kKey, int rank = 2) {
  return core::session_key(key, rank, 5, nonce_of(1), nonce_of(2));
}

Message gradient(std::int64_t index, float value) {
  Message m;
  m.header.kind = core::MessageKind::Gradient;
  m.header.sender = 2;
  m.header.index = index;
  m.header.numel = 1000;
  m.header.dtype = static_cast<std::int64_t>(at::kFloat);
  m.payload = at::full({1000}, value);
  return m;
}

// The two ends of the link between the server (rank 0) and worker rank 2.
struct Link {
  MessageAuthenticator worker{link_key(), 2, 0};
  MessageAuthenticator server{link_key(), 0, 2};
};

TEST(DistributedAuth, AcceptsAnAuthenticMessageOnce) {
  Link link;
  Message m = gradient(3, 0.5f);
  link.worker.seal(m);
  EXPECT_EQ(link.server.verify(m), "");
  EXPECT_THAT(link.server.verify(m), ::testing::HasSubstr("replayed or out of order"));
}

TEST(DistributedAuth, RejectsAnAlteredPayloadOrHeader) {
  Link link;
  Message m = gradient(3, 0.5f);
  link.worker.seal(m);
  Message payload = m, index = m, loss = m, sequence = m;
  payload.payload = m.payload.clone();
  payload.payload[999] = 0.25f;
  index.header.index = 2;
  loss.header.loss = 1.0;
  sequence.header.link_seq = 7;
  for (const Message* altered : {&payload, &index, &loss, &sequence})
    EXPECT_THAT(link.server.verify(*altered), ::testing::HasSubstr("bad MAC"));
  EXPECT_EQ(link.server.verify(m), "");  // the rejected copies did not burn the true message's number
}

TEST(DistributedAuth, RejectsForgedMessages) {
  Link link;
  const std::string other_key = "fedcba9876543210fedcba9876543210";
  MessageAuthenticator wrong_key(link_key(other_key), 2, 0), other_rank(link_key(kKey, 3), 3, 0);
  Message a = gradient(0, 1.0f), b = gradient(0, 1.0f), unsealed = gradient(0, 1.0f);
  wrong_key.seal(a);
  other_rank.seal(b);  // rank 3's valid message, injected into rank 2's link
  for (const Message* forged : {&a, &b, &unsealed})
    EXPECT_THAT(link.server.verify(*forged), ::testing::HasSubstr("bad MAC"));
}

TEST(DistributedAuth, RejectsReorderedAndReflectedMessages) {
  Link link;
  Message first = gradient(0, 1.0f), second = gradient(1, 2.0f);
  link.worker.seal(first);
  link.worker.seal(second);
  EXPECT_EQ(link.server.verify(second), "");
  EXPECT_THAT(link.server.verify(first), ::testing::HasSubstr("replayed or out of order"));
  // The server's own message sent back to it: the direction is under the MAC.
  Message params = gradient(0, 3.0f);
  link.server.seal(params);
  EXPECT_THAT(link.server.verify(params), ::testing::HasSubstr("bad MAC"));
  EXPECT_EQ(link.worker.verify(params), "");
}

TEST(DistributedAuth, ProofsDependOnKeyRankNoncesAndRole) {
  const Digest p = core::worker_proof(kKey, 2, 5, nonce_of(1), nonce_of(2));
  EXPECT_TRUE(core::same_digest(p, core::worker_proof(kKey, 2, 5, nonce_of(1), nonce_of(2))));
  EXPECT_FALSE(core::same_digest(p, core::worker_proof(kKey + "x", 2, 5, nonce_of(1), nonce_of(2))));
  EXPECT_FALSE(core::same_digest(p, core::worker_proof(kKey, 3, 5, nonce_of(1), nonce_of(2))));
  EXPECT_FALSE(core::same_digest(p, core::worker_proof(kKey, 2, 5, nonce_of(9), nonce_of(2))));
  EXPECT_FALSE(core::same_digest(p, core::server_proof(kKey, 2, 5, nonce_of(1), nonce_of(2))));
  EXPECT_FALSE(core::same_digest(p, core::session_key(kKey, 2, 5, nonce_of(1), nonce_of(2))));
}

TEST(DistributedAuth, KeyFilesMustBePrivateAndLongEnough) {
  const std::string dir = temp_dir("auth_keys");
  const std::string fresh = dir + "/fresh.key";
  core::write_new_key_file(fresh);
  struct stat st {};
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(core::read_key_file(fresh).size(), 65u);  // 32 random bytes in hex and a newline
  EXPECT_THROW(core::write_new_key_file(fresh), Error);  // never overwrites a key

  write_file(dir + "/shared.key", kKey);
  ::chmod((dir + "/shared.key").c_str(), 0644);
  EXPECT_THAT([&] { core::read_key_file(dir + "/shared.key"); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("chmod 600")));
  write_file(dir + "/short.key", "abc");
  ::chmod((dir + "/short.key").c_str(), 0600);
  EXPECT_THAT([&] { core::read_key_file(dir + "/short.key"); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("fewer than 16")));
}

TEST(DistributedAuth, NoKeyIsAnErrorUnlessAuthenticationIsExplicitlyOff) {
  ::unsetenv("PHALANX_KEY_FILE");
  core::PipelineSpec spec;
  EXPECT_THAT([&] { core::authentication_from(spec); },
              ::testing::ThrowsMessage<Error>(::testing::HasSubstr("engine.authentication: off")));
  spec.authentication = "off";
  EXPECT_FALSE(core::authentication_from(spec).enabled);
}

}  // namespace
}  // namespace phalanx::test
