// IDX parsing: valid files, and truncated or corrupt ones (plain and gzip) that must give clear errors; and the
// data readers' conversion in blocks of samples (sample_blocks.hpp).
#include <zlib.h>

#include <ATen/ATen.h>

#include "idx_reader.hpp"
#include "phalanx/core/config/config.hpp"
#include "phalanx/core/engine/worker_pool.hpp"
#include "phalanx/helpers/parallel.hpp"
#include "sample_blocks.hpp"
#include "support.hpp"

namespace phalanx::test {
namespace {

std::vector<std::uint8_t> idx_bytes(std::vector<std::uint32_t> dims, std::size_t payload) {
  std::vector<std::uint8_t> b{0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims) {
    b.push_back(d >> 24);
    b.push_back((d >> 16) & 0xff);
    b.push_back((d >> 8) & 0xff);
    b.push_back(d & 0xff);
  }
  for (std::size_t i = 0; i < payload; ++i) b.push_back(static_cast<std::uint8_t>(i % 10));
  return b;
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  write_file(path, std::string(bytes.begin(), bytes.end()));
}

void write_gzip(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

TEST(Idx, ParsesImagesAndLabels) {
  idx::IdxArray images = idx::parse_idx(idx_bytes({3, 2, 2}, 12), "img", 0);
  EXPECT_EQ(images.dims, (std::vector<std::int64_t>{3, 2, 2}));
  at::Tensor x = idx::images_to_tensor(images, "img");
  EXPECT_EQ(x.sizes(), (at::IntArrayRef{3, 1, 2, 2}));
  EXPECT_FLOAT_EQ(x[0][0][0][1].item<float>(), 1.0f / 255.0f);
  at::Tensor y = idx::labels_to_tensor(idx::parse_idx(idx_bytes({5}, 5), "lab", 0), "lab", 10);
  EXPECT_EQ(y[4].item<std::int64_t>(), 4);
}

// The conversion and the standardisation run in blocks of 4,096 samples on the threads lent to a load; the
// result is bit for bit the whole-tensor ATen expression they replace, on two real threads, out of order.
TEST(Idx, ImagesAndStandardisationInBlocksOnLentThreadsAreTheWholeTensorsBits) {
  idx::IdxArray images;
  images.dims = {10000, 28, 28};  // two full blocks and a short one
  const at::Tensor random = at::randint(256, {10000 * 28 * 28}, at::kByte);
  images.data.assign(random.data_ptr<std::uint8_t>(), random.data_ptr<std::uint8_t>() + random.numel());
  const at::Tensor bytes = at::from_blob(images.data.data(), {10000, 1, 28, 28}, at::kByte);
  const at::Tensor want = bytes.to(at::kFloat).div_(255.0f);
  const double mean = want.mean().item<double>(), std = want.std().item<double>();
  const at::Tensor want_standard = want.clone().sub_(mean).div_(std);
  core::WorkerPool pool(2);
  std::vector<std::int64_t> blocks;
  LentThreads lent([&](std::int64_t count, const std::function<void(std::int64_t)>& block) {
    blocks.push_back(count);
    pool.run(count, [&](std::int64_t i, int /*slot*/) { block(count - 1 - i); });
  });
  at::Tensor x = idx::images_to_tensor(images, "img");
  EXPECT_TRUE(at::equal(x.view(at::kInt), want.view(at::kInt)));
  data::standardise(x, mean, std);
  EXPECT_TRUE(at::equal(x.view(at::kInt), want_standard.view(at::kInt)));
  EXPECT_EQ(blocks, (std::vector<std::int64_t>{3, 3}));  // the blocks did go to the lent threads
}

// unit_floats (the readers' conversion of uint8 images) stacks its parts without concatenating their bytes
// first: the concatenation's bits, for parts that end inside a block, on two real threads, out of order.
TEST(SampleBlocks, UnitFloatsOfSeveralPartsOnLentThreadsAreTheConcatenationsBits) {
  const std::vector<at::Tensor> parts = {at::randint(256, {5000, 3, 4, 4}, at::kByte),
                                         at::randint(256, {3, 3, 4, 4}, at::kByte),
                                         at::randint(256, {4097, 3, 4, 4}, at::kByte)};
  const at::Tensor want = at::cat(parts).to(at::kFloat).div_(255.0f);
  core::WorkerPool pool(2);
  std::vector<std::int64_t> blocks;
  LentThreads lent([&](std::int64_t count, const std::function<void(std::int64_t)>& block) {
    blocks.push_back(count);
    pool.run(count, [&](std::int64_t i, int /*slot*/) { block(count - 1 - i); });
  });
  const at::Tensor got = data::unit_floats(parts);
  EXPECT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(at::equal(got.view(at::kInt), want.view(at::kInt)));
  EXPECT_EQ(blocks, (std::vector<std::int64_t>{2, 2}));  // per part on the lent threads; one block runs in place
}

TEST(SampleBlocks, UnitFloatsRefusesNoImagesAndMixedShapes) {
  EXPECT_ERROR_WITH(data::unit_floats({}), "no images");
  EXPECT_ERROR_WITH(data::unit_floats({at::zeros({2, 3, 4, 4}, at::kByte), at::zeros({2, 3, 4, 5}, at::kByte)}),
                    "different shapes");
}

TEST(Idx, ReadsPlainAndGzipFilesAlike) {
  const std::string dir = temp_dir("idx_plain_gzip");
  auto bytes = idx_bytes({4, 3, 3}, 36);
  write_bytes(dir + "/plain", bytes);
  write_gzip(dir + "/packed.gz", bytes);
  EXPECT_EQ(idx::read_idx(dir + "/plain").data, idx::read_idx(dir + "/packed.gz").data);
}

TEST(Idx, TruncatedPayload) {
  auto bytes = idx_bytes({4, 3, 3}, 36);
  bytes.resize(bytes.size() - 5);
  EXPECT_ERROR_WITH(idx::parse_idx(bytes, "f.idx", 0), "f.idx", "truncated", "promises 36 bytes", "has 31");
}

TEST(Idx, TruncatedHeader) {
  EXPECT_ERROR_WITH(idx::parse_idx({0, 0, 8}, "f", 0), "shorter than the 4-byte header");
  auto bytes = idx_bytes({4, 3, 3}, 0);
  bytes.resize(9);
  EXPECT_ERROR_WITH(idx::parse_idx(bytes, "f", 0), "header cut short");
}

TEST(Idx, CorruptHeaders) {
  auto bytes = idx_bytes({2, 2}, 4);
  bytes[0] = 7;
  EXPECT_ERROR_WITH(idx::parse_idx(bytes, "f", 0), "bad magic number");
  bytes = idx_bytes({2, 2}, 4);
  bytes[2] = 0x0D;  // float elements
  EXPECT_ERROR_WITH(idx::parse_idx(bytes, "f", 0), "is not unsigned byte");
  bytes = idx_bytes({2, 2}, 4);
  bytes[3] = 9;
  EXPECT_ERROR_WITH(idx::parse_idx(bytes, "f", 0), "9 dimensions");
  EXPECT_ERROR_WITH(idx::parse_idx(idx_bytes({0, 2}, 0), "f", 0), "is zero");
  EXPECT_ERROR_WITH(idx::parse_idx(idx_bytes({5}, 6), "f", 0), "1 unexpected bytes");
}

TEST(Idx, ImplausibleSizesAreRefusedBeforeAllocating) {
  EXPECT_ERROR_WITH(idx::parse_idx(idx_bytes({4000000000u, 28, 28}, 0), "f", 10'000'000), "claims 4000000000 items");
  EXPECT_ERROR_WITH(idx::parse_idx(idx_bytes({1, 100000, 100000}, 0), "f", 0), "dimension 1 = 100000");
}

// read_idx reads the header first and then the data into a buffer of the promised size: every way a file can
// disagree with its header gives parse_idx's error, for plain and gzip files alike.
TEST(Idx, ReadIdxGivesParseIdxsErrorsForFiles) {
  const std::string dir = temp_dir("idx_read_errors");
  auto short_data = idx_bytes({4, 3, 3}, 31);
  auto long_data = idx_bytes({4, 3, 3}, 38);
  auto cut_header = idx_bytes({4, 3, 3}, 0);
  cut_header.resize(9);
  // Promises 10^7 x 4096 x 4096 bytes (far over the 1 GiB read limit): refused without allocating them.
  auto huge = idx_bytes({10'000'000u, 4096, 4096}, 100);
  for (const bool gzip : {false, true}) {
    auto write = [&](const std::string& name, const std::vector<std::uint8_t>& bytes) {
      const std::string path = dir + "/" + name + (gzip ? ".gz" : "");
      gzip ? write_gzip(path, bytes) : write_bytes(path, bytes);
      return path;
    };
    EXPECT_ERROR_WITH(idx::read_idx(write("short", short_data)), "short", "truncated", "promises 36 bytes", "has 31");
    EXPECT_ERROR_WITH(idx::read_idx(write("long", long_data)), "long", "2 unexpected bytes");
    EXPECT_ERROR_WITH(idx::read_idx(write("cut", cut_header)), "cut", "header cut short");
    EXPECT_ERROR_WITH(idx::read_idx(write("tiny", {0, 0})), "tiny", "shorter than the 4-byte header");
    EXPECT_ERROR_WITH(idx::read_idx(write("huge", huge)), "huge", "truncated", "has 100");
    const idx::IdxArray ok = idx::read_idx(write("ok", idx_bytes({4, 3, 3}, 36)));
    EXPECT_EQ(ok.dims, (std::vector<std::int64_t>{4, 3, 3}));
    EXPECT_EQ(ok.data, idx::parse_idx(idx_bytes({4, 3, 3}, 36), "ok", 0).data);
  }
}

TEST(Idx, TruncatedGzipStream) {
  const std::string dir = temp_dir("idx_trunc_gz");
  write_gzip(dir + "/full.gz", idx_bytes({100, 28, 28}, 78400));
  std::string packed = read_file(dir + "/full.gz");
  write_file(dir + "/cut.gz", packed.substr(0, packed.size() / 2));
  EXPECT_ERROR_WITH(idx::read_idx(dir + "/cut.gz"), "cut.gz", "gzip stream is truncated");
  // Cut inside the IDX header too: the gzip error, not the header's.
  write_file(dir + "/cut_early.gz", packed.substr(0, 30));
  EXPECT_ERROR_WITH(idx::read_idx(dir + "/cut_early.gz"), "cut_early.gz", "gzip stream is truncated");
}

TEST(Idx, CorruptGzipStream) {
  const std::string dir = temp_dir("idx_corrupt_gz");
  write_gzip(dir + "/full.gz", idx_bytes({100, 28, 28}, 78400));
  std::string packed = read_file(dir + "/full.gz");
  for (std::size_t i = 20; i < 60; ++i) packed[i] = static_cast<char>(packed[i] ^ 0x5a);
  write_file(dir + "/bad.gz", packed);
  EXPECT_ERROR_WITH(idx::read_idx(dir + "/bad.gz"), "bad.gz");
}

TEST(Idx, MissingFile) { EXPECT_ERROR_WITH(idx::read_idx("/nonexistent/file.gz"), "/nonexistent/file.gz", "cannot open"); }

TEST(Idx, LabelOutOfRange) {
  auto bytes = idx_bytes({3}, 0);
  bytes.insert(bytes.end(), {1, 2, 11});
  EXPECT_ERROR_WITH(idx::labels_to_tensor(idx::parse_idx(bytes, "lab", 0), "lab", 10), "label 11");
}

std::shared_ptr<DataSource> fashion(const std::string& path) {
  static auto ctx = make_context(1, 0);
  return builtin_registry().make_data(
      "fashion_mnist", params_for(core::Kind::Data, "fashion_mnist", "{path: '" + path + "'}"), *ctx);
}

TEST(FashionMnist, MissingFilesNameTheDebianPackage) {
  const std::string dir = temp_dir("fmnist_missing");
  EXPECT_ERROR_WITH(fashion(dir)->load(), "train-images-idx3-ubyte", dir.c_str(), "apt-get install dataset-fashion-mnist");
}

TEST(FashionMnist, MismatchedFilesAreRefused) {
  const std::string dir = temp_dir("fmnist_mismatch");
  write_gzip(dir + "/train-images-idx3-ubyte.gz", idx_bytes({4, 28, 28}, 4 * 784));
  write_gzip(dir + "/train-labels-idx1-ubyte.gz", idx_bytes({3}, 3));
  write_gzip(dir + "/t10k-images-idx3-ubyte.gz", idx_bytes({2, 28, 28}, 2 * 784));
  write_gzip(dir + "/t10k-labels-idx1-ubyte.gz", idx_bytes({2}, 2));
  EXPECT_ERROR_WITH(fashion(dir)->load(), "train-labels-idx1-ubyte", "3 labels for 4 images");
}

TEST(FashionMnist, SmallPlainFilesLoad) {
  const std::string dir = temp_dir("fmnist_small");
  write_bytes(dir + "/train-images-idx3-ubyte", idx_bytes({4, 28, 28}, 4 * 784));
  write_bytes(dir + "/train-labels-idx1-ubyte", idx_bytes({4}, 4));
  write_bytes(dir + "/t10k-images-idx3-ubyte", idx_bytes({2, 28, 28}, 2 * 784));
  write_bytes(dir + "/t10k-labels-idx1-ubyte", idx_bytes({2}, 2));
  Dataset d = fashion(dir)->load();
  EXPECT_EQ(d.train_x.sizes(), (at::IntArrayRef{4, 1, 28, 28}));
  EXPECT_EQ(d.classes, 10);
  EXPECT_NEAR(d.train_x.mean().item<double>(), 0.0, 1e-4);  // standardised
}

TEST(FashionMnist, TheDebianPackageLoads) {
  // CI installs dataset-fashion-mnist (.ci/run); a missing package must fail this test, not skip it.
  Dataset d = fashion("/usr/share/datasets/fashion-mnist")->load();
  EXPECT_EQ(d.train_x.size(0), 60000);
  EXPECT_EQ(d.test_x.size(0), 10000);
  EXPECT_EQ(d.train_y.max().item<std::int64_t>(), 9);
}

}  // namespace
}  // namespace phalanx::test
