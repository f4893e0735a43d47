// Reliability: hardened readers (checkpoint, .npy), exact UCR labels and up-front data checks, temperature
// limits, the divergence guard and the full training state (save / resume / refuse). Each case of issue 16
// that the library handles has a test here; the example-level cases (options, output directory, SIGKILL and
// resume) are CTest command tests in tests/cmake/reliability.cmake.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "distill/data/dataset.hpp"
#include "distill/data/ucr.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/io/npy.hpp"
#include "distill/losses/queue.hpp"
#include "distill/io/train_state.hpp"
#include "distill/losses/contrastive.hpp"
#include "distill/losses/distillation.hpp"
#include "distill/nn/batchnorm.hpp"
#include "distill/nn/linear.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/reduce.hpp"
#include "distill/optim/adam.hpp"
#include "distill/optim/divergence.hpp"
#include "distill/optim/sgd.hpp"
#include "temp_dir.hpp"

using namespace distill;
using distill_test::TempDir;

namespace {

/// A checkpoint file with one float32 tensor of the given extents and `data_bytes` data bytes, with a valid
/// header and checksum (a crafted file, as an attacker would write it).
std::string crafted_checkpoint(const std::vector<std::int64_t>& extents, std::size_t data_bytes) {
  std::vector<unsigned char> payload;
  auto put = [&](const void* p, std::size_t n) {
    payload.insert(payload.end(), static_cast<const unsigned char*>(p), static_cast<const unsigned char*>(p) + n);
  };
  const std::uint32_t len = 1;
  put(&len, 4);
  payload.push_back('w');
  const unsigned char tag[4] = {1, static_cast<unsigned char>(extents.size()), 0, 0};
  put(tag, 4);
  for (auto e : extents) put(&e, 8);
  payload.resize(payload.size() + data_bytes, 0);
  std::string out(io::kCheckpointMagic, 8);
  const std::uint32_t version = 1, reserved = 0;
  const std::uint64_t count = 1, size = payload.size(), sum = io::fnv1a64(payload.data(), payload.size());
  out.append(reinterpret_cast<const char*>(&version), 4);
  out.append(reinterpret_cast<const char*>(&reserved), 4);
  out.append(reinterpret_cast<const char*>(&count), 8);
  out.append(reinterpret_cast<const char*>(&size), 8);
  out.append(reinterpret_cast<const char*>(&sum), 8);
  out.append(reinterpret_cast<const char*>(payload.data()), payload.size());
  return out;
}

std::string npy_with_shape(const std::string& shape, std::size_t data_bytes) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + dict.size() + 1) % 64) dict += ' ';
  dict += '\n';
  std::string h("\x93NUMPY\x01\x00", 8);
  h += static_cast<char>(dict.size() & 0xff);
  h += static_cast<char>(dict.size() >> 8);
  return h + dict + std::string(data_bytes, '\0');
}

}  // namespace

// --- readers -------------------------------------------------------------------------------------------------

TEST_CASE("checkpoint reader: extents whose product overflows are refused before allocating", "[reliability][io]") {
  TempDir dir("ckpt_extents");
  // 2^32 x 2^32 float32: the element count wraps to 0 in 64 bits; the reader must not accept it.
  const auto f = dir.write("big.ckpt", crafted_checkpoint({1ll << 32, 1ll << 32}, 0));
  REQUIRE_THROWS_WITH(io::Checkpoint::load(f), Catch::Contains("is malformed: tensor 'w' has shape [4294967296, "
                                                               "4294967296] (more elements than 2^64)"));
  // A count that fits in 64 bits but exceeds the payload, and a byte size that overflows (2^62 float32).
  REQUIRE_THROWS_WITH(io::Checkpoint::load(dir.write("b2.ckpt", crafted_checkpoint({1ll << 40}, 16))),
                      Catch::Contains("but only 16 payload bytes remain"));
  REQUIRE_THROWS_WITH(io::Checkpoint::load(dir.write("b3.ckpt", crafted_checkpoint({1ll << 62}, 8))),
                      Catch::Contains("more elements than 2^64"));
  // The honest file with the same layout loads.
  const auto ok = io::Checkpoint::load(dir.write("ok.ckpt", crafted_checkpoint({2, 3}, 24)));
  REQUIRE(ok.get<float, 2>("w").numel() == 6);
}

TEST_CASE("checkpoint reader: a directory or a FIFO is refused with the path named", "[reliability][io]") {
  TempDir dir("ckpt_dir");
  REQUIRE_THROWS_WITH(io::Checkpoint::load(dir.path),
                      Catch::StartsWith("checkpoint path '" + dir.path.string() + "' is a directory"));
  const auto fifo = dir.path / "pipe";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  REQUIRE_THROWS_WITH(io::Checkpoint::load(fifo), Catch::Contains("'" + fifo.string() + "' is not a regular file"));
  REQUIRE_THROWS_WITH(io::Checkpoint::load(dir.path / "missing.ckpt"), Catch::Contains("missing.ckpt': No such file"));
}

TEST_CASE("npy reader: huge or overflowing shapes give a clear error, not bad_alloc or a crash", "[reliability][io]") {
  TempDir dir("npy");
  const auto f1 = dir.write("a.npy", npy_with_shape("(4611686018427387904, 4)", 64));
  REQUIRE_THROWS_WITH((io::read_npy<float, 2>(f1)), Catch::Contains("needs more than 2^64 data bytes"));
  const auto f2 = dir.write("b.npy", npy_with_shape("(100000000000, 100000)", 64));
  REQUIRE_THROWS_WITH((io::read_npy<float, 2>(f2)),
                      Catch::Contains("shape [100000000000, 100000] needs 40000000000000000 data bytes but the file holds 64"));
  REQUIRE_THROWS_AS((io::read_npy<float, 2>(f2)), Error);
  REQUIRE_THROWS_WITH((io::read_npy<float, 2>(dir.path.string())), Catch::Contains("is a directory"));
  const auto f3 = dir.write("c.npy", npy_with_shape("(2, 4)", 32));
  REQUIRE((io::read_npy<float, 2>(f3)).numel() == 8);
  // A zero extent makes the total 0, but the other extents' product must still fit (found by the fuzzer).
  const auto f4 = dir.write("d.npy", npy_with_shape("(6080011, 1618427387904, 0)", 0));
  REQUIRE_THROWS_WITH((io::read_npy<float, 3>(f4)), Catch::Contains("needs more than 2^64 data bytes"));
  REQUIRE((io::read_npy<float, 3>(dir.write("e.npy", npy_with_shape("(0, 3, 5)", 0)))).numel() == 0);
}

// --- data checked up front ----------------------------------------------------------------------------------

TEST_CASE("UCR labels keep their exact identity beyond 2^53", "[reliability][ucr]") {
  const auto t = data::parse_ucr("9007199254740992\t1\t2\n9007199254740993\t3\t4\n9007199254740994\t5\t6\n", "big");
  const auto c = data::ucr_classes(t);
  REQUIRE(c.size() == 3);
  const auto d = data::make_ucr_dataset(t, c, false);
  REQUIRE(d.num_classes == 3);
  REQUIRE(d.labels == std::vector<index_t>{0, 1, 2});
  // Equal values in other spellings are one class; the order is exact numeric order.
  const auto u = data::parse_ucr("1\t0\n1.0\t0\n+1e0\t0\n10e-1\t0\n-2\t0\n0.5\t0\n-0\t0\n0.0\t0\n-1.5\t0\n", "forms");
  const auto cu = data::ucr_classes(u);
  REQUIRE(cu.keys.size() == 5);
  REQUIRE(cu.values == std::vector<double>{-2, -1.5, 0, 0.5, 1});
  REQUIRE(data::make_ucr_dataset(u, cu, false).labels == std::vector<index_t>{4, 4, 4, 4, 0, 3, 2, 2, 1});
  REQUIRE(data::detail::label_key("0.00120") == "12e-2");
  REQUIRE(data::detail::label_key("-120") == "-12e3");
}

TEST_CASE("UCR: TEST length must equal TRAIN length for fixed-length sets", "[reliability][ucr]") {
  TempDir dir("ucr_len");
  dir.write("Toy/Toy_TRAIN.tsv", "1\t1\t2\t3\n2\t3\t2\t1\n");
  dir.write("Toy/Toy_TEST.tsv", "1\t1\t2\n2\t3\t2\n");
  const auto root = (dir.path / "Toy").string();
  REQUIRE_THROWS_WITH(data::load_ucr(root), Catch::StartsWith("the TEST file '" + root + "/Toy_TEST.tsv' has series of "
                                                              "length 2 but the TRAIN file '" + root +
                                                              "/Toy_TRAIN.tsv' has series of length 3"));
  REQUIRE_THROWS_WITH(data::load_ucr(root, data::Split::Train), Catch::Contains("Toy_TEST.tsv' has series of length 2"));
  // Varying-length sets (NaN padding) are padded to the common width, lengths kept.
  dir.write("Var/Var_TRAIN.tsv", "1\t1\t2\tNaN\n2\t3\t2\t1\n");
  dir.write("Var/Var_TEST.tsv", "1\t1\t2\n2\t3\t2\n");
  const auto s = data::load_ucr((dir.path / "Var").string());
  REQUIRE(s.test.length() == 3);
  REQUIRE(s.test.lengths == std::vector<index_t>{2, 2});
  REQUIRE(s.test.x(0, 0, 2) == 0.0f);
}

TEST_CASE("require_trainable refuses one class or one series before training", "[reliability][data]") {
  TempDir dir("ucr_req");
  dir.write("One/One_TRAIN.tsv", "1\t1\t2\t3\n1\t3\t2\t1\n");
  dir.write("One/One_TEST.tsv", "1\t1\t2\t3\n");
  const auto one_class = data::load_ucr((dir.path / "One").string());
  REQUIRE_THROWS_WITH(data::require_trainable(one_class.train, "dcrls"),
                      Catch::StartsWith("dataset 'One' has 1 class in its training split but dcrls needs at least 2"));
  dir.write("Single/Single_TRAIN.tsv", "1\t1\t2\t3\n");
  dir.write("Single/Single_TEST.tsv", "1\t1\t2\t3\n");
  const auto single = data::load_ucr((dir.path / "Single").string());
  REQUIRE_THROWS_WITH(data::require_trainable(single.train, "dcrls"),
                      Catch::StartsWith("dataset 'Single' has 1 training series but dcrls needs at least 2"));
  REQUIRE_NOTHROW(data::require_trainable(single.train, "a probe", {.min_series = 1, .min_classes = 1}));
}

// --- temperatures and the divergence guard ------------------------------------------------------------------

TEST_CASE("temperatures: 1/tau must be finite in float", "[reliability][losses]") {
  Context<Cpu> ctx;
  auto z = parameter(ctx, Tensor<float, 2, Cpu>::full(Shape<2>{2, 3}, 0.5f));
  REQUIRE_NOTHROW(losses::nt_xent(z, z, 0.2));
  for (double tau : {2e-39, 1e-40, 0.0, -1.0, 1e39, std::numeric_limits<double>::quiet_NaN()})
    REQUIRE_THROWS_WITH(losses::nt_xent(z, z, tau), Catch::Contains("is not a usable temperature"));
  REQUIRE_THROWS_WITH(losses::soft_contrastive_kl(z, z, z, z, 1e-20, 1e-20), Catch::Contains("tau * temperature"));
  REQUIRE_THROWS_WITH(losses::soft_contrastive_kl(z, z, z, z, 1.0, 1e20), Catch::Contains("T^2 loss scale"));
  // A NaN embedding must surface as a NaN loss (never be masked into a finite value).
  auto zn = parameter(ctx, Tensor<float, 2, Cpu>::full(Shape<2>{2, 3}, 0.5f));
  zn.value()[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(losses::nt_xent(zn, z, 0.2).value()[0]));
  CHECK(std::isnan(losses::soft_contrastive_kl(zn, zn, z, z, 0.2, 3.0).value()[0]));
  REQUIRE(optim::checked_temperature("--tau", 0.2) == 0.2);
  REQUIRE_THROWS_WITH(optim::checked_temperature("--tau", 2e-39), Catch::StartsWith("--tau 2e-39 is not a usable"));
  REQUIRE_THROWS_WITH(optim::checked_scale("--lambda", std::nan(""), 0, 1e6), Catch::StartsWith("--lambda nan is out of range"));
  REQUIRE_THROWS_WITH(optim::checked_scale("--lr", 1e39, 0, 1e6), Catch::StartsWith("--lr 1e+39 is out of range"));
}

TEST_CASE("divergence guard: non-finite loss terms, gradients and values stop training by name", "[reliability][optim]") {
  const optim::TrainPosition at{2, 4};
  REQUIRE_NOTHROW(optim::require_finite(1.5, "L_DC", at));
  REQUIRE_THROWS_AS(optim::require_finite(std::nan(""), "L_DC", at), optim::DivergenceError);
  REQUIRE_THROWS_WITH(optim::require_finite(std::nan(""), "L_DC", at),
                      Catch::StartsWith("training diverged at epoch 3, step 5: loss term L_DC is NaN"));
  REQUIRE_THROWS_WITH(optim::require_finite(-INFINITY, "L_SD", at), Catch::Contains("loss term L_SD is -inf"));

  Context<Cpu> ctx(1, 3);
  nn::Linear<4, 2> lin(ctx);
  auto ps = params(lin);
  optim::Adam opt(ps, {.lr = 1e-2});
  auto x = constant(ctx, Tensor<float, 2, Cpu>::full(Shape<2>{3, 4}, 1.0f));
  sum(lin.forward(x)).backward();
  REQUIRE_NOTHROW(optim::require_finite_gradients(ps, at));
  ps[0].grad()[5] = std::numeric_limits<float>::quiet_NaN();
  REQUIRE_THROWS_WITH(optim::require_finite_gradients(ps, at),
                      Catch::Contains("the gradient of parameter 'weight' [2, 4] is NaN at element 5"));
  REQUIRE_NOTHROW(optim::require_finite_values(ps, at));
  ps[1].data()[1] = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_WITH(optim::require_finite_values(ps, at), Catch::Contains("the value of parameter 'bias' [2] is +inf"));
}

TEST_CASE("checked_step: one update with every divergence check; a non-finite loss stops before the update",
          "[reliability][optim]") {
  const optim::TrainPosition at{0, 1};
  Context<Cpu> ctx(1, 4);
  nn::Linear<4, 2> lin(ctx);
  auto ps = params(lin);
  optim::SGD<float> opt(ps, {.lr = 0.5});
  auto x = constant(ctx, Tensor<float, 2, Cpu>::full(Shape<2>{3, 4}, 1.0f));
  const std::vector<float> w0(ps[0].data(), ps[0].data() + ps[0].numel());
  auto loss = sum(lin.forward(x));
  const double expected = double(loss.value()[0]);
  CHECK(optim::checked_step(opt, loss, at) == expected);
  // d sum / d w_ij = 3 (three rows of ones): every weight moved by -lr * 3.
  for (index_t i = 0; i < ps[0].numel(); ++i) CHECK(ps[0].data()[i] == Approx(w0[std::size_t(i)] - 1.5f));
  const std::vector<float> w1(ps[0].data(), ps[0].data() + ps[0].numel());
  auto nan_x = constant(ctx, Tensor<float, 2, Cpu>::full(Shape<2>{3, 4}, std::numeric_limits<float>::quiet_NaN()));
  auto bad = sum(lin.forward(nan_x));
  REQUIRE_THROWS_WITH(optim::checked_step(opt, bad, at),
                      Catch::StartsWith("training diverged at epoch 1, step 2: loss term total is NaN"));
  CHECK(std::vector<float>(ps[0].data(), ps[0].data() + ps[0].numel()) == w1);  // no update
}

// --- the full training state --------------------------------------------------------------------------------

namespace {

data::Dataset toy_dataset(index_t n) {
  data::Dataset d;
  d.name = "toy";
  d.num_classes = 2;
  d.x = Tensor<float, 3, Cpu>({n, 1, 4});
  for (index_t i = 0; i < n * 4; ++i) d.x.data()[i] = std::sin(0.37f * float(i));
  for (index_t i = 0; i < n; ++i) {
    d.labels.push_back(i % 2);
    d.lengths.push_back(4);
  }
  return d;
}

/// A small run: Linear + BatchNorm, Adam, a loader, a noise stream, a loss curve; trains steps [from, to).
struct Run {
  Context<Cpu> ctx{1, 11};
  nn::Linear<4, 3> lin{ctx};
  nn::BatchNorm1d<3> bn{ctx};
  optim::Adam<float> opt{params(lin, bn), {.lr = 1e-2}};
  data::DataLoader loader{toy_dataset(10), {.batch_size = 4, .shuffle = true}, ctx.make_rng(1)};
  CounterRng noise = ctx.make_rng(2);
  std::int64_t epoch = 0, step = 0;
  double epoch_sum = 0;
  std::vector<double> curve;
  io::TrainState state;

  explicit Run(const std::filesystem::path& dir, const std::string& dataset = "toy") : state(dir) {
    state.config("dataset", dataset).config("lr", 1e-2).config("threads", 1, io::TrainState::Match::Warn);
    state.add_module("lin", lin).add_module("bn", bn).add_optimizer("adam", opt).add_rng("noise", noise);
    state.add_loader("loader", loader, epoch, step).add_value("epoch_sum", epoch_sum).add_series("curve", curve);
  }
  void train_until(std::int64_t global) {
    const auto nb = loader.num_batches();
    while (epoch * nb + step < global) {
      auto b = data::gather(loader.dataset(), loader.epoch_plan(epoch)[static_cast<std::size_t>(step)]);
      Tensor<float, 2, Cpu> x({b.x.extent(0), 4});
      for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = b.x.data()[i] + 0.1f * float(noise.normal());
      auto y = bn.forward(lin.forward(constant(ctx, std::move(x))));
      auto loss = mean(y * y);
      opt.zero_grad();
      loss.backward();
      opt.step();
      epoch_sum += loss.value()[0];
      if (++step == nb) {
        curve.push_back(epoch_sum);
        epoch_sum = 0;
        step = 0;
        ++epoch;
      }
    }
  }
  std::vector<unsigned char> bytes() const { return state.snapshot().serialize(); }
};

}  // namespace

TEST_CASE("TrainState: save, restore into fresh objects, continue: bitwise equal to an uninterrupted run",
          "[reliability][train_state]") {
  TempDir a("ts_a"), b("ts_b");
  Run ref(a.path);
  ref.train_until(8);
  Run first(b.path);
  first.train_until(4);
  first.state.save();
  first.train_until(5);
  first.state.save();  // the step-4 file becomes state.prev.ckpt
  REQUIRE(std::filesystem::exists(first.state.previous_file()));
  Run resumed(b.path);
  resumed.state.restore();
  REQUIRE(resumed.state.warnings().empty());
  REQUIRE(resumed.epoch * resumed.loader.num_batches() + resumed.step == 5);
  REQUIRE(resumed.step != 0);  // resumes inside an epoch
  REQUIRE(resumed.noise == first.noise);
  resumed.train_until(8);
  REQUIRE(resumed.bytes() == ref.bytes());
  REQUIRE(resumed.curve == ref.curve);
}

TEST_CASE("TrainState: a MoCo queue's keys and position survive save and restore; a bad position is refused",
          "[reliability][train_state]") {
  TempDir dir("ts_queue");
  CounterRng rng(7, 1);
  losses::Queue<float> q(5, 3);
  Tensor<float, 2> keys(Shape<2>{7, 3});
  for (auto& v : keys) v = static_cast<float>(rng.normal());
  q.enqueue(keys.slice0(0, 3));  // not full: size 3, head 3
  {
    io::TrainState st(dir.path);
    st.add_queue("queue", q);
    st.save();
  }
  losses::Queue<float> back(5, 3);
  io::TrainState st(dir.path);
  st.add_queue("queue", back);
  st.restore();
  REQUIRE(back.size() == 3);
  REQUIRE(back.head() == 3);
  // The same keys in the same slots, and the same ring behaviour afterwards.
  q.enqueue(keys.slice0(3, 4));
  back.enqueue(keys.slice0(3, 4));
  REQUIRE(back.full());
  REQUIRE(back.head() == 2);
  for (index_t i = 0; i < 15; ++i) REQUIRE(back.storage().data()[i] == q.storage().data()[i]);
  REQUIRE_THROWS_WITH(back.set_position(2, 4), Catch::Contains("not a position of a queue of capacity 5"));
  REQUIRE_THROWS_WITH(back.set_position(6, 0), Catch::Contains("not a position"));
}

TEST_CASE("TrainState: a damaged state.ckpt falls back to the previous good one", "[reliability][train_state]") {
  TempDir a("ts_fallback");
  Run run(a.path);
  run.train_until(2);
  run.state.save();
  const auto at2 = run.bytes();
  run.train_until(3);
  run.state.save();
  {  // flip one payload byte of the newest file
    std::fstream f(run.state.file(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x5a');
  }
  Run back(a.path);
  back.state.restore();
  REQUIRE(back.state.warnings().size() == 1);
  REQUIRE_THAT(back.state.warnings()[0], Catch::StartsWith("state.ckpt is damaged") && Catch::Contains("checksum"));
  REQUIRE(back.bytes() == at2);
  // Neither file usable: a clear error.
  std::filesystem::remove(run.state.previous_file());
  Run none(a.path);
  REQUIRE_THROWS_WITH(none.state.restore(), Catch::StartsWith("cannot resume from '" + a.path.string() + "'") &&
                                                Catch::Contains("no state.prev.ckpt to fall back to"));
  TempDir empty("ts_empty");
  Run fresh(empty.path);
  REQUIRE_FALSE(fresh.state.exists());
  REQUIRE_THROWS_WITH(fresh.state.restore(), Catch::StartsWith("no training state to resume in"));
}

TEST_CASE("TrainState: another configuration is refused naming the key; a Warn key only warns",
          "[reliability][train_state]") {
  TempDir a("ts_config");
  {
    Run run(a.path);
    run.train_until(1);
    run.state.save();
  }
  Run other(a.path, "Coffee");
  REQUIRE_THROWS_WITH(other.state.restore(),
                      Catch::StartsWith("cannot resume: this run has dataset = Coffee but the training state '") &&
                          Catch::Contains("was saved with dataset = toy; use the same dataset to resume"));
  Run threads(a.path);
  threads.state.config("threads", 2, io::TrainState::Match::Warn);
  threads.state.restore();
  REQUIRE(threads.state.warnings().size() == 1);
  REQUIRE_THAT(threads.state.warnings()[0], Catch::Contains("threads = 2") && Catch::Contains("not bitwise identical"));
  Run extra(a.path);
  extra.state.config("variant", "sd");
  REQUIRE_THROWS_WITH(extra.state.restore(), Catch::Contains("saved without a variant setting"));
}

TEST_CASE("TrainState: a changed seed or data order is refused", "[reliability][train_state]") {
  TempDir a("ts_seed");
  {
    Run run(a.path);
    run.train_until(1);
    run.state.save();
  }
  Run seed(a.path);
  seed.noise = CounterRng(999, 3);
  REQUIRE_THROWS_WITH(seed.state.restore(), Catch::Contains("random stream 'noise' was saved with another seed"));
  Run order(a.path);
  order.loader = data::DataLoader(toy_dataset(10), {.batch_size = 4, .shuffle = true}, CounterRng(5, 1));
  REQUIRE_THROWS_WITH(order.state.restore(), Catch::Contains("the data order of epoch 1 differs from the saved one"));
}

TEST_CASE("TrainState: save is atomic and leaves no temporaries; stale ones are cleaned on resume",
          "[reliability][train_state]") {
  TempDir a("ts_atomic");
  Run run(a.path);
  run.state.save();
  run.state.save();
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(a.path)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  REQUIRE(names == std::vector<std::string>{"state.ckpt", "state.prev.ckpt"});
  a.write(".state.ckpt.tmp-123-4-0", "torn");
  Run back(a.path);
  back.state.restore();
  REQUIRE_FALSE(std::filesystem::exists(a.path / ".state.ckpt.tmp-123-4-0"));
  REQUIRE(io::file_fingerprint(run.state.file()).find(" bytes, fnv1a64 ") != std::string::npos);
}
