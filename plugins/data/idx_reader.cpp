#include "idx_reader.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <ATen/ATen.h>
#include <zlib.h>

#include "phalanx/error.hpp"
#include "sample_blocks.hpp"

namespace phalanx::idx {

namespace {

Error corrupt(const std::string& name, const std::string& what) {
  return Error(name + ": not a valid IDX file (" + what + "); the file is corrupt or truncated, reinstall or "
               "re-download it");
}

// Bytes read at most, so a corrupt gzip "bomb" cannot exhaust memory: MNIST-like files are < 100 MB.
constexpr std::uint64_t kReadLimit = 1ull << 30;

struct Header {
  std::vector<std::int64_t> dims;
  std::size_t size = 0;     // bytes of the header itself
  std::uint64_t total = 1;  // bytes of data it promises
};

// The magic number and the dimensions, from the first `size` bytes of the file (at least the 4-byte magic
// and the 4 bytes of each dimension it names, or the error says which part is missing).
Header parse_header(const std::uint8_t* bytes, std::size_t size, const std::string& name, std::int64_t max_items) {
  if (size < 4) throw corrupt(name, "shorter than the 4-byte header");
  if (bytes[0] != 0 || bytes[1] != 0) throw corrupt(name, "bad magic number");
  if (bytes[2] != 0x08)
    throw corrupt(name, "element type 0x" + std::to_string(bytes[2]) + " is not unsigned byte (0x08)");
  const int ndims = bytes[3];
  if (ndims < 1 || ndims > 4) throw corrupt(name, std::to_string(ndims) + " dimensions (expected 1 to 4)");
  Header header;
  header.size = 4 + 4 * static_cast<std::size_t>(ndims);
  if (size < header.size) throw corrupt(name, "header cut short");
  for (int i = 0; i < ndims; ++i) {
    const std::uint8_t* p = bytes + 4 + 4 * i;
    std::uint64_t dim = (std::uint64_t(p[0]) << 24) | (std::uint64_t(p[1]) << 16) | (std::uint64_t(p[2]) << 8) | p[3];
    if (dim == 0) throw corrupt(name, "dimension " + std::to_string(i) + " is zero");
    if (i == 0 && max_items > 0 && dim > static_cast<std::uint64_t>(max_items))
      throw corrupt(name, "claims " + std::to_string(dim) + " items");
    if (i > 0 && dim > 4096) throw corrupt(name, "dimension " + std::to_string(i) + " = " + std::to_string(dim));
    header.total *= dim;
    header.dims.push_back(static_cast<std::int64_t>(dim));
  }
  return header;
}

// The payload's size against the header's promise, for a file whose data has `payload` bytes.
void check_payload(const Header& header, std::uint64_t payload, const std::string& name) {
  if (payload < header.total)
    throw corrupt(name, "truncated: header promises " + std::to_string(header.total) + " bytes of data, file has " +
                            std::to_string(payload));
  if (payload > header.total)
    throw corrupt(name, std::to_string(payload - header.total) + " unexpected bytes after the data");
}

// A gzip (or plain) file read in place: every read checks zlib's status, and gzclose's verdict on the
// stream's end (a truncated stream) is an error too.
class GzipFile {
 public:
  explicit GzipFile(const std::string& path) : path_(path), file_(gzopen(path.c_str(), "rb")) {
    if (!file_) throw Error(path + ": cannot open: " + std::strerror(errno ? errno : ENOENT));
  }
  ~GzipFile() {
    if (file_) gzclose(file_);
  }
  GzipFile(const GzipFile&) = delete;
  GzipFile& operator=(const GzipFile&) = delete;

  /// Reads up to `count` bytes into `out`; fewer only at the end of the data.
  std::uint64_t read(std::uint8_t* out, std::uint64_t count) {
    std::uint64_t done = 0;
    while (done < count) {
      const auto chunk = static_cast<unsigned>(std::min<std::uint64_t>(count - done, 1u << 30));
      const int n = gzread(file_, out + done, chunk);
      if (n < 0) {
        int code = 0;
        const std::string message = gzerror(file_, &code);
        throw Error(path_ + ": corrupt gzip data (" + message + "); reinstall or re-download the file");
      }
      if (n == 0) break;
      done += static_cast<std::uint64_t>(n);
    }
    return done;
  }

  /// Reads and counts what is left; an error once the file has given more than kReadLimit bytes in all.
  std::uint64_t count_rest(std::uint64_t already) {
    std::uint8_t buffer[1 << 16];
    std::uint64_t rest = 0;
    for (std::uint64_t n; (n = read(buffer, sizeof buffer)) > 0;) {
      rest += n;
      if (already + rest > kReadLimit) throw Error(path_ + ": decompresses to more than 1 GiB; not an IDX data file");
    }
    return rest;
  }

  /// Closes the file; a gzip stream that ended early is an error here (gzread stops quietly).
  void close() {
    const int status = gzclose(file_);
    file_ = nullptr;
    if (status == Z_BUF_ERROR) throw Error(path_ + ": the gzip stream is truncated; reinstall or re-download the file");
    if (status != Z_OK) throw Error(path_ + ": error reading gzip stream (code " + std::to_string(status) + ")");
  }

 private:
  std::string path_;
  gzFile file_;
};

}  // namespace

IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& name, std::int64_t max_items) {
  Header header = parse_header(bytes.data(), bytes.size(), name, max_items);
  check_payload(header, bytes.size() - header.size, name);
  IdxArray out;
  out.dims = std::move(header.dims);
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header.size), bytes.end());
  return out;
}

// The header first, then the data straight into its final buffer of the promised size (reading into a
// growing buffer and copying it out cost about a fifth of a one-step run's time, docs/BENCHMARKS.md, "Sweeps").
IdxArray read_idx(const std::string& path, std::int64_t max_items) {
  GzipFile file(path);
  std::uint8_t head[4 + 4 * 4];
  std::uint64_t got = file.read(head, 4);
  const std::uint64_t head_size = got == 4 ? 4 + 4 * static_cast<std::uint64_t>(std::min<int>(head[3], 4)) : got;
  if (got == 4) got += file.read(head + 4, head_size - 4);
  Header header;
  try {
    header = parse_header(head, got, path, max_items);
  } catch (const Error&) {
    // A gzip stream cut inside the header is reported as such, as for one cut later: its own error first.
    file.count_rest(got);
    file.close();
    throw;
  }
  IdxArray out;
  std::uint64_t payload = 0;
  if (header.total <= kReadLimit) {  // else the data cannot be right: count it to say how much there is
    out.data.resize(header.total);
    payload = file.read(out.data.data(), header.total);
  }
  payload += file.count_rest(header.size + payload);
  file.close();
  check_payload(header, payload, path);
  out.dims = std::move(header.dims);
  return out;
}

at::Tensor images_to_tensor(const IdxArray& images, const std::string& name) {
  if (images.dims.size() != 3) throw Error(name + ": expected an image file with 3 dimensions (N, rows, cols)");
  return data::unit_floats({at::from_blob(const_cast<std::uint8_t*>(images.data.data()),
                                          {images.dims[0], 1, images.dims[1], images.dims[2]}, at::kByte)});
}

at::Tensor labels_to_tensor(const IdxArray& labels, const std::string& name, std::int64_t classes) {
  if (labels.dims.size() != 1) throw Error(name + ": expected a label file with 1 dimension");
  for (std::uint8_t v : labels.data)
    if (v >= classes) throw Error(name + ": label " + std::to_string(v) + " is outside 0.." + std::to_string(classes - 1));
  return at::from_blob(const_cast<std::uint8_t*>(labels.data.data()), {labels.dims[0]}, at::kByte).to(at::kLong);
}

}  // namespace phalanx::idx
