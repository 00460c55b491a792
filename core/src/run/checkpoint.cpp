#include "phalanx/core/run/checkpoint.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "phalanx/error.hpp"

namespace phalanx::core {

namespace {

constexpr char kMagic[] = "phalanx-checkpoint 1\n";
constexpr std::size_t kMagicSize = sizeof kMagic - 1;
constexpr std::size_t kHeaderSize = kMagicSize + 8 + 4;

std::uint32_t crc_of(const char* data, std::size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib's length is a uInt: feed large payloads in pieces.
  for (std::size_t done = 0; done < size;) {
    const std::size_t piece = std::min<std::size_t>(size - done, 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data + done), static_cast<uInt>(piece));
    done += piece;
  }
  return static_cast<std::uint32_t>(crc);
}

void put_le(std::vector<char>& out, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

std::uint64_t get_le(const char* in, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
  return value;
}

[[noreturn]] void fail_write(const std::string& path) {
  throw Error("cannot write checkpoint '" + path + "': " + std::strerror(errno) +
              " (disk full or folder not writable?); the previous checkpoint, if any, is intact");
}

}  // namespace

void Checkpoint::put(const std::string& name, const at::Tensor& value) { entries_[name] = value; }

void Checkpoint::put_int(const std::string& name, std::int64_t value) {
  entries_[name] = at::full({}, value, at::kLong);
}

void Checkpoint::put_double(const std::string& name, double value) {
  entries_[name] = at::full({}, value, at::kDouble);
}

void Checkpoint::put_text(const std::string& name, const std::string& value) {
  at::Tensor bytes = at::empty({static_cast<std::int64_t>(value.size())}, at::kByte);
  if (!value.empty()) std::memcpy(bytes.data_ptr(), value.data(), value.size());
  entries_[name] = bytes;
}

void Checkpoint::put_state(const std::string& prefix, const State& state) {
  for (const auto& [key, value] : state) entries_[prefix + "/" + key] = value;
}

const at::Tensor& Checkpoint::get(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    throw Error(source_ + ": has no entry '" + name + "'; it was written by another version of phalanx or for "
                "another kind of run");
  return it->second;
}

std::int64_t Checkpoint::get_int(const std::string& name) const {
  const at::Tensor& t = get(name);
  if (t.scalar_type() != at::kLong || t.numel() != 1) throw Error(source_ + ": entry '" + name + "' is not an integer");
  return t.item<std::int64_t>();
}

double Checkpoint::get_double(const std::string& name) const {
  const at::Tensor& t = get(name);
  if (t.scalar_type() != at::kDouble || t.numel() != 1) throw Error(source_ + ": entry '" + name + "' is not a number");
  return t.item<double>();
}

std::string Checkpoint::get_text(const std::string& name) const {
  const at::Tensor& t = get(name);
  if (t.scalar_type() != at::kByte || t.dim() != 1) throw Error(source_ + ": entry '" + name + "' is not text");
  at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), static_cast<std::size_t>(c.numel()));
}

State Checkpoint::get_state(const std::string& prefix) const {
  State out;
  const std::string start = prefix + "/";
  for (auto it = entries_.lower_bound(start); it != entries_.end() && it->first.rfind(start, 0) == 0; ++it)
    out[it->first.substr(start.size())] = it->second;
  return out;
}

void Checkpoint::write(const std::string& file) const {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, value] : entries_) dict.insert(name, value.contiguous());
  const std::vector<char> payload = torch::jit::pickle_save(c10::IValue(dict));
  std::vector<char> header(kMagic, kMagic + kMagicSize);
  put_le(header, payload.size(), 8);
  put_le(header, crc_of(payload.data(), payload.size()), 4);

  const std::string tmp = file + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_write(tmp);
  auto write_all = [&](const std::vector<char>& bytes) {
    for (std::size_t done = 0; done < bytes.size();) {
      const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  };
  // fsync before the rename: otherwise a power cut can leave the new name pointing at unwritten blocks.
  if (!write_all(header) || !write_all(payload) || ::fsync(fd) != 0) {
    const int saved = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    errno = saved;
    fail_write(tmp);
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), file.c_str()) != 0) fail_write(file);
}

Checkpoint Checkpoint::read(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot read checkpoint '" + file + "': " + std::strerror(errno));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < kMagicSize || std::memcmp(bytes.data(), kMagic, kMagicSize) != 0)
    throw Error("'" + file + "' is not a phalanx checkpoint (it does not start with \"phalanx-checkpoint 1\")");
  if (bytes.size() < kHeaderSize)
    throw Error("checkpoint '" + file + "' is truncated (" + std::to_string(bytes.size()) + " bytes)");
  const std::uint64_t size = get_le(bytes.data() + kMagicSize, 8);
  const auto crc = static_cast<std::uint32_t>(get_le(bytes.data() + kMagicSize + 8, 4));
  if (bytes.size() - kHeaderSize != size)
    throw Error("checkpoint '" + file + "' is truncated or has trailing bytes: " +
                std::to_string(bytes.size() - kHeaderSize) + " bytes of payload, the header says " +
                std::to_string(size) + "; resume from an intact copy or start the run again");
  if (crc_of(bytes.data() + kHeaderSize, size) != crc)
    throw Error("checkpoint '" + file + "' is corrupt (checksum mismatch); resume from an intact copy or start the "
                "run again");
  c10::IValue value;
  try {
    value = torch::jit::pickle_load(std::vector<char>(bytes.begin() + kHeaderSize, bytes.end()));
  } catch (const std::exception& e) {
    throw Error("checkpoint '" + file + "' cannot be decoded: " + std::string(e.what()).substr(0, 200));
  }
  if (!value.isGenericDict()) throw Error("checkpoint '" + file + "' does not hold a dict of tensors");
  Checkpoint out;
  out.source_ = "checkpoint '" + file + "'";
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString() || !item.value().isTensor())
      throw Error("checkpoint '" + file + "' holds an entry that is not a named tensor");
    out.entries_[item.key().toStringRef()] = item.value().toTensor();
  }
  return out;
}

}  // namespace phalanx::core
