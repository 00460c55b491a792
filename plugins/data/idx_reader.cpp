#include "idx_reader.hpp"

#include <cerrno>
#include <cstring>

#include <ATen/ATen.h>
#include <zlib.h>

#include "phalanx/error.hpp"

namespace phalanx::idx {

IdxArray parse_idx(const std::vector<std::uint8_t>& bytes, const std::string& name, std::int64_t max_items) {
  auto corrupt = [&](const std::string& what) {
    return Error(name + ": not a valid IDX file (" + what + "); the file is corrupt or truncated, reinstall or "
                 "re-download it");
  };
  if (bytes.size() < 4) throw corrupt("shorter than the 4-byte header");
  if (bytes[0] != 0 || bytes[1] != 0) throw corrupt("bad magic number");
  if (bytes[2] != 0x08) throw corrupt("element type 0x" + std::to_string(bytes[2]) + " is not unsigned byte (0x08)");
  const int ndims = bytes[3];
  if (ndims < 1 || ndims > 4) throw corrupt(std::to_string(ndims) + " dimensions (expected 1 to 4)");
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  if (bytes.size() < header) throw corrupt("header cut short");
  IdxArray out;
  std::uint64_t total = 1;
  for (int i = 0; i < ndims; ++i) {
    const std::uint8_t* p = bytes.data() + 4 + 4 * i;
    std::uint64_t dim = (std::uint64_t(p[0]) << 24) | (std::uint64_t(p[1]) << 16) | (std::uint64_t(p[2]) << 8) | p[3];
    if (dim == 0) throw corrupt("dimension " + std::to_string(i) + " is zero");
    if (i == 0 && max_items > 0 && dim > static_cast<std::uint64_t>(max_items))
      throw corrupt("claims " + std::to_string(dim) + " items");
    if (i > 0 && dim > 4096) throw corrupt("dimension " + std::to_string(i) + " = " + std::to_string(dim));
    total *= dim;
    out.dims.push_back(static_cast<std::int64_t>(dim));
  }
  const std::uint64_t payload = bytes.size() - header;
  if (payload < total)
    throw corrupt("truncated: header promises " + std::to_string(total) + " bytes of data, file has " +
                  std::to_string(payload));
  if (payload > total) throw corrupt(std::to_string(payload - total) + " unexpected bytes after the data");
  out.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return out;
}

IdxArray read_idx(const std::string& path, std::int64_t max_items) {
  gzFile f = gzopen(path.c_str(), "rb");  // transparently reads plain files too
  if (!f) throw Error(path + ": cannot open: " + std::strerror(errno ? errno : ENOENT));
  std::vector<std::uint8_t> bytes;
  std::uint8_t buffer[1 << 16];
  // Bound the bytes read so a corrupt gzip "bomb" cannot exhaust memory: MNIST-like files are < 100 MB.
  const std::size_t limit = 1ull << 30;
  for (;;) {
    int n = gzread(f, buffer, sizeof buffer);
    if (n < 0) {
      int code = 0;
      std::string msg = gzerror(f, &code);
      gzclose(f);
      throw Error(path + ": corrupt gzip data (" + msg + "); reinstall or re-download the file");
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), buffer, buffer + n);
    if (bytes.size() > limit) {
      gzclose(f);
      throw Error(path + ": decompresses to more than 1 GiB; not an IDX data file");
    }
  }
  // gzread stops quietly at a truncated gzip stream; gzclose reports it.
  int status = gzclose(f);
  if (status == Z_BUF_ERROR) throw Error(path + ": the gzip stream is truncated; reinstall or re-download the file");
  if (status != Z_OK) throw Error(path + ": error reading gzip stream (code " + std::to_string(status) + ")");
  return parse_idx(bytes, path, max_items);
}

at::Tensor images_to_tensor(const IdxArray& images, const std::string& name) {
  if (images.dims.size() != 3) throw Error(name + ": expected an image file with 3 dimensions (N, rows, cols)");
  at::Tensor bytes = at::from_blob(const_cast<std::uint8_t*>(images.data.data()),
                                   {images.dims[0], 1, images.dims[1], images.dims[2]}, at::kByte);
  return bytes.to(at::kFloat).div_(255.0f);
}

at::Tensor labels_to_tensor(const IdxArray& labels, const std::string& name, std::int64_t classes) {
  if (labels.dims.size() != 1) throw Error(name + ": expected a label file with 1 dimension");
  for (std::uint8_t v : labels.data)
    if (v >= classes) throw Error(name + ": label " + std::to_string(v) + " is outside 0.." + std::to_string(classes - 1));
  return at::from_blob(const_cast<std::uint8_t*>(labels.data.data()), {labels.dims[0]}, at::kByte).to(at::kLong);
}

}  // namespace phalanx::idx
