// Authentication of the distributed mode (docs/distributed.md, "Threat model"). Gloo has no TLS, so on top of
// it: a shared secret key, from which every worker proves itself to the server (and the server to it) with a
// challenge-response, and one HMAC-SHA256 (OpenSSL) per message after that, over header and payload, bound to
// the sending and receiving rank and to a per-link sequence number. No confidentiality: payloads travel in
// the clear.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>

namespace phalanx::core {

struct Message;
struct PipelineSpec;

/// The run's shared secret, or none when engine.authentication is off (a trusted cluster).
struct AuthSettings {
  bool enabled = false;
  std::string key;     // the key file's bytes
  std::string source;  // where the key came from, for messages
};

/// engine.authentication and the key file: PHALANX_KEY_FILE when set, else engine.key_file. Throws Error
/// (naming the file and what to do) when authentication is on and there is no usable key.
AuthSettings authentication_from(const PipelineSpec& spec);

/// Reads a key file: at least 16 bytes, not readable by group or others.
std::string read_key_file(const std::string& path);

/// Writes a fresh random key (32 bytes, hex) to `path`, created with mode 0600; throws Error if it exists.
void write_new_key_file(const std::string& path);

using Digest = std::array<std::uint8_t, 32>;
using Nonce = std::array<std::uint8_t, 32>;

Nonce random_nonce();

/// The handshake's proofs and the link's session key, each an HMAC of the shared key over a distinct label,
/// the worker's rank, the world size and both nonces (so none can be replayed into another run, rank or role).
Digest worker_proof(const std::string& key, int rank, int world, const Nonce& server, const Nonce& worker);
Digest server_proof(const std::string& key, int rank, int world, const Nonce& server, const Nonce& worker);
Digest session_key(const std::string& key, int rank, int world, const Nonce& server, const Nonce& worker);

/// Constant-time comparison of two digests.
bool same_digest(const Digest& a, const Digest& b);

/// One link's message authentication (a pair of ranks, both directions). seal() and verify() may run in two
/// threads at once (a sender and a receiver); each alone is not reentrant.
class MessageAuthenticator {
 public:
  MessageAuthenticator(const Digest& session, int self, int peer);
  ~MessageAuthenticator();
  MessageAuthenticator(const MessageAuthenticator&) = delete;
  MessageAuthenticator& operator=(const MessageAuthenticator&) = delete;

  /// Numbers `m` with the next sequence number of this direction and sets its MAC.
  void seal(Message& m);
  /// "" when `m` is authentic (its MAC is the peer's over header and payload) and newer than every message
  /// accepted before; else why not ("altered or forged", "replayed or reordered"). A message is accepted only
  /// once: its sequence number becomes the floor.
  std::string verify(const Message& m);

  struct Mac;

 private:
  Digest mac_of(Mac& mac, int from, int to, const Message& m) const;
  int self_, peer_;
  std::int64_t sent_ = 0, accepted_ = 0;
  std::unique_ptr<Mac> sealing_, verifying_;
};

}  // namespace phalanx::core
