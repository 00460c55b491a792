#include "phalanx/core/distributed/auth.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "phalanx/core/distributed/channel.hpp"
#include "phalanx/core/config/pipeline.hpp"
#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

constexpr std::size_t kMinKeyBytes = 16;
const char* const kKeyAdvice =
    "create one on one machine with `(umask 077; openssl rand -hex 32 > phalanx.key)`, copy it to every "
    "machine (scp -p keeps its mode 600), and name it in PHALANX_KEY_FILE or engine.key_file";

Digest hmac(const std::string& key, const std::string& data) {
  Digest out{};
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), out.data(), &length) ||
      length != out.size())
    throw Error("OpenSSL HMAC-SHA256 failed");
  return out;
}

// label | rank | world | server nonce | worker nonce, as bytes.
std::string transcript(const char* label, int rank, int world, const Nonce& server, const Nonce& worker) {
  std::string s(label);
  s.push_back('\0');
  const std::int64_t numbers[2] = {rank, world};
  s.append(reinterpret_cast<const char*>(numbers), sizeof numbers);
  s.append(reinterpret_cast<const char*>(server.data()), server.size());
  s.append(reinterpret_cast<const char*>(worker.data()), worker.size());
  return s;
}

}  // namespace

std::string read_key_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error("key file '" + path + "': " + std::strerror(errno) + "; " + kKeyAdvice);
  if (!S_ISREG(st.st_mode)) throw Error("key file '" + path + "' is not a regular file; " + kKeyAdvice);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    throw Error("key file '" + path + "' can be read by group or others (mode " +
                std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
                std::to_string(st.st_mode & 7) + "); make it private: chmod 600 " + path);
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  if (!in) throw Error("key file '" + path + "' cannot be read");
  std::string key = bytes.str();
  if (key.size() < kMinKeyBytes)
    throw Error("key file '" + path + "' holds " + std::to_string(key.size()) + " bytes, fewer than " +
                std::to_string(kMinKeyBytes) + "; " + kKeyAdvice);
  return key;
}

void write_new_key_file(const std::string& path) {
  std::array<unsigned char, 32> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) throw Error("OpenSSL could not generate a random key");
  static const char* hex = "0123456789abcdef";
  std::string text;
  for (unsigned char c : raw) text += {hex[c >> 4], hex[c & 15]};
  text += '\n';
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw Error("cannot create key file '" + path + "': " + std::strerror(errno));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) throw Error("cannot write key file '" + path + "'");
}

AuthSettings authentication_from(const PipelineSpec& spec) {
  AuthSettings a;
  if (spec.authentication == "off") return a;
  a.enabled = true;
  const char* env = std::getenv("PHALANX_KEY_FILE");
  if (env && *env) a.source = env;
  else a.source = spec.key_file;
  if (a.source.empty())
    throw Error("a distributed run authenticates its processes with a shared key, and none was given: " +
                std::string(kKeyAdvice) +
                " (`phalanx launch -n N` makes one itself). On a trusted, closed cluster only, "
                "engine.authentication: off turns this off.");
  a.key = read_key_file(a.source);
  return a;
}

Nonce random_nonce() {
  Nonce n{};
  if (RAND_bytes(n.data(), static_cast<int>(n.size())) != 1) throw Error("OpenSSL could not generate a nonce");
  return n;
}

Digest worker_proof(const std::string& key, int rank, int world, const Nonce& server, const Nonce& worker) {
  return hmac(key, transcript("phalanx worker proof v1", rank, world, server, worker));
}

Digest server_proof(const std::string& key, int rank, int world, const Nonce& server, const Nonce& worker) {
  return hmac(key, transcript("phalanx server proof v1", rank, world, server, worker));
}

Digest session_key(const std::string& key, int rank, int world, const Nonce& server, const Nonce& worker) {
  return hmac(key, transcript("phalanx session key v1", rank, world, server, worker));
}

bool same_digest(const Digest& a, const Digest& b) { return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0; }

// ---------------------------------------------------------------------------------------------------------

struct MessageAuthenticator::Mac {
  Digest key{};
  EVP_MAC* algorithm = nullptr;
  EVP_MAC_CTX* context = nullptr;
  explicit Mac(const Digest& k) : key(k) {
    algorithm = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    context = algorithm ? EVP_MAC_CTX_new(algorithm) : nullptr;
    if (!context) throw Error("OpenSSL has no HMAC (EVP_MAC_fetch failed)");
  }
  ~Mac() {
    EVP_MAC_CTX_free(context);
    EVP_MAC_free(algorithm);
  }
};

MessageAuthenticator::MessageAuthenticator(const Digest& session, int self, int peer)
    : self_(self), peer_(peer), sealing_(std::make_unique<Mac>(session)), verifying_(std::make_unique<Mac>(session)) {}

MessageAuthenticator::~MessageAuthenticator() = default;

Digest MessageAuthenticator::mac_of(Mac& mac, int from, int to, const Message& m) const {
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                         OSSL_PARAM_construct_end()};
  const auto words = header_words(m.header);
  const std::int64_t route[2] = {from, to};
  bool ok = EVP_MAC_init(mac.context, mac.key.data(), mac.key.size(), params) == 1 &&
            EVP_MAC_update(mac.context, reinterpret_cast<const unsigned char*>(route), sizeof route) == 1 &&
            EVP_MAC_update(mac.context, reinterpret_cast<const unsigned char*>(words.data()),
                           kMacCoveredWords * sizeof(std::int64_t)) == 1;
  if (ok && m.payload.defined() && m.payload.numel() > 0) {
    const at::Tensor body = m.payload.contiguous();
    ok = EVP_MAC_update(mac.context, static_cast<const unsigned char*>(body.data_ptr()), body.nbytes()) == 1;
  }
  Digest out{};
  std::size_t length = 0;
  if (!ok || EVP_MAC_final(mac.context, out.data(), &length, out.size()) != 1 || length != out.size())
    throw Error("OpenSSL HMAC-SHA256 failed");
  return out;
}

void MessageAuthenticator::seal(Message& m) {
  m.header.link_seq = ++sent_;
  m.header.mac = mac_of(*sealing_, self_, peer_, m);
}

std::string MessageAuthenticator::verify(const Message& m) {
  // The MAC first: only an authentic sequence number says anything about replay or order.
  if (!same_digest(mac_of(*verifying_, peer_, self_, m), m.header.mac))
    return "fails authentication (bad MAC: altered, forged, or sent with another key)";
  if (m.header.link_seq <= accepted_)
    return "is replayed or out of order (link sequence number " + std::to_string(m.header.link_seq) +
           ", already accepted up to " + std::to_string(accepted_) + ")";
  accepted_ = m.header.link_seq;
  return "";
}

}  // namespace phalanx::core
