// libFuzzer target for the checkpoint reader (distill/io/checkpoint.hpp) and the resume path of the training
// state (distill/io/train_state.hpp: TrainState::restore_from).
//
// Built with clang++ -fsanitize=fuzzer,address,undefined by tests/fuzz/run_fuzz.sh checkpoint (or the CMake target
// fuzz_checkpoint when clang++ is available), and with a plain main() (replay_main.cpp) as the CTest test
// fuzz_checkpoint_replay, which runs the seed corpus tests/fuzz/corpus_checkpoint.
//
// Each input is parsed twice: as it is (header checks: magic, version, sizes, checksum) and with the header's
// payload size and checksum recomputed, so the fuzzer reaches the tensor records behind the checksum. A parsed
// checkpoint is read back in every way a program reads one: every tensor fetched with its own dtype and rank,
// loaded into a small module and an optimizer, and restored as a full training state (configuration, module,
// optimizer, random stream, loader position, counters, series). The reader may reject an input only with
// distill::Error; an accepted one must satisfy the invariants checked below.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "distill/io/checkpoint.hpp"
#include "distill/io/train_state.hpp"
#include "distill/nn/batchnorm.hpp"
#include "distill/nn/linear.hpp"
#include "distill/optim/adam.hpp"

namespace {
void require(bool ok) {
  if (!ok) std::abort();
}

distill::data::Dataset fuzz_dataset() {
  distill::data::Dataset d;
  d.name = "fuzz";
  d.num_classes = 2;
  d.x = distill::Tensor<float, 3, distill::Cpu>::zeros({6, 1, 4});
  for (int i = 0; i < 6; ++i) {
    d.labels.push_back(i % 2);
    d.lengths.push_back(4);
  }
  return d;
}

/// The objects a small training run registers; `state` restores into them.
struct Target {
  distill::Context<distill::Cpu> ctx{1, 7};
  distill::nn::Linear<4, 3> lin{ctx};
  distill::nn::BatchNorm1d<3> bn{ctx};
  distill::optim::Adam<float> opt{distill::params(lin, bn), {.lr = 1e-3}};
  distill::data::DataLoader loader{fuzz_dataset(), {.batch_size = 2, .shuffle = true}, ctx.make_rng(1)};
  distill::CounterRng aug = ctx.make_rng(2);
  std::int64_t epoch = 0, step = 0;
  double sum = 0;
  std::vector<double> curve;
  distill::io::TrainState state{"fuzz-state"};
  Target() {
    state.config("program", "fuzz").config("seed", 7).config("threads", 1, distill::io::TrainState::Match::Warn);
    state.add_module("model.lin", lin).add_module("model.bn", bn).add_optimizer("adam", opt).add_rng("rng.aug", aug);
    state.add_loader("loader", loader, epoch, step).add_value("epoch.loss", sum).add_series("curve.loss", curve);
  }
};

template <std::size_t R>
void read_rank(const distill::io::Checkpoint& ck, const distill::io::Checkpoint::Entry& e) {
  using distill::io::DType;
  auto check = [&](const auto& t) { require(static_cast<std::size_t>(t.numel()) * distill::io::dtype_size(e.dtype) == e.bytes.size()); };
  switch (e.dtype) {
    case DType::Float32: check(ck.get<float, R>(e.name)); break;
    case DType::Float64: check(ck.get<double, R>(e.name)); break;
    case DType::Int32: check(ck.get<std::int32_t, R>(e.name)); break;
    case DType::Int64: check(ck.get<std::int64_t, R>(e.name)); break;
    case DType::UInt8: check(ck.get<std::uint8_t, R>(e.name)); break;
  }
}

void exercise(const std::vector<unsigned char>& bytes) {
  using distill::io::Checkpoint;
  Checkpoint ck;
  try {
    ck = Checkpoint::parse(bytes, "fuzz.ckpt");
  } catch (const distill::Error&) {
    return;
  }
  // Accepted: sizes agree, and the file re-serialises to the same bytes.
  for (const auto& e : ck.entries()) {
    std::uint64_t n = 1;
    for (auto x : e.shape) {
      require(x >= 0);
      require(!__builtin_mul_overflow(n, static_cast<std::uint64_t>(x), &n));
    }
    require(n * distill::io::dtype_size(e.dtype) == e.bytes.size());
    try {
      switch (e.shape.size()) {
        case 0: read_rank<0>(ck, e); break;
        case 1: read_rank<1>(ck, e); break;
        case 2: read_rank<2>(ck, e); break;
        case 3: read_rank<3>(ck, e); break;
        default: break;
      }
    } catch (const distill::Error&) {
      std::abort();  // the entry's own dtype and rank must always be readable
    }
  }
  require(ck.serialize() == bytes);
  Target t;
  try {
    ck.load_module(t.lin, "model.lin", false);
  } catch (const distill::Error&) {
  }
  try {
    ck.load_optimizer(t.opt, "adam");
  } catch (const distill::Error&) {
  }
  try {
    t.state.restore_from(ck);
  } catch (const distill::Error&) {
    return;
  }
  // A restored state is one this run could have written: its own snapshot restores without complaint.
  try {
    t.state.restore_from(t.state.snapshot());
  } catch (const distill::Error&) {
    std::abort();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<unsigned char> bytes(data, data + size);
  exercise(bytes);
  if (size >= distill::io::kCheckpointHeaderBytes) {  // the same records behind a valid size and checksum
    const std::uint64_t payload = size - distill::io::kCheckpointHeaderBytes;
    const std::uint64_t sum = distill::io::fnv1a64(bytes.data() + distill::io::kCheckpointHeaderBytes, payload);
    std::memcpy(bytes.data() + 24, &payload, 8);
    std::memcpy(bytes.data() + 32, &sum, 8);
    exercise(bytes);
  }
  return 0;
}

#ifdef DISTILL_FUZZ_MAKE_SEEDS
// Writes the seed corpus: a full training state of the Target above, a module checkpoint, and small variants.
#include <fstream>
int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  auto write = [&](const char* name, const std::vector<unsigned char>& b) {
    std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  };
  Target t;
  t.epoch = 1;
  t.step = 1;
  t.curve = {0.5, 0.25};
  write("state.ckpt", t.state.snapshot().serialize());
  distill::io::Checkpoint m;
  m.put_module(t.lin, "model.lin");
  write("module.ckpt", m.serialize());
  distill::io::Checkpoint e;
  write("empty.ckpt", e.serialize());
  distill::io::Checkpoint s;
  distill::Tensor<double, 0, distill::Cpu> x(distill::Shape<0>{});
  x[0] = 1.5;
  s.put("x", x);
  distill::Tensor<std::uint8_t, 1, distill::Cpu> c({3});
  c[0] = 'a';
  c[1] = '=';
  c[2] = 'b';
  s.put("config", c);
  write("scalar.ckpt", s.serialize());
  return 0;
}
#endif
