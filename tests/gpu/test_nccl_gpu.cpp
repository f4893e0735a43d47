// tests/gpu/test_nccl_gpu.cpp -- the NCCL engine (dist/nccl.hpp) on real GPUs: make_nccl_communicator and every
// collective on device buffers, for any world size (the expected values are computed from W and the rank).
//
// Built when distill::cuda has NCCL (DISTILL_CUDA=ON, NCCL and MPI found: the CUDA summary says "NCCL found").
// Without a usable device it prints why and exits 77, which CTest reports as skipped (SKIP_RETURN_CODE).
//   world size 1 (CTest):  test_nccl_gpu                   the bootstrap is the single process (dist::World alone)
//   world size 2:          DISTILL_COMM_TIMEOUT=60 mpirun -np 2 build/tests/test_nccl_gpu
//                          (Open MPI as root: add --allow-run-as-root). Rank r uses cuda:(r % devices): NCCL needs a
//                          GPU per rank, so run it on a machine with 2 GPUs (or one rank per node). Every rank runs
//                          the same collectives in the same order; checks use CHECK (not REQUIRE) after them so a
//                          failing rank does not skip a collective its peer then waits for.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "distill/core/communicator.hpp"
#include "distill/cuda/api.hpp"
#include "distill/cuda/context.hpp"
#include "distill/dist/nccl.hpp"
#include "distill/dist/world.hpp"

static_assert(distill::dist::built_with_nccl(), "test_nccl_gpu needs distill::cuda built with NCCL");

namespace dl = distill;
// Not `using dl::CommType`: Open MPI's C++ bindings (mpi.h, through dist/world.hpp) declare a global ::CommType.
using dl::CommMemory;
using dl::Cuda;
using dl::index_t;
using dl::ReduceOp;

namespace {

dl::dist::World* g_world = nullptr;
dl::Context<Cuda>* g_ctx = nullptr;
std::shared_ptr<dl::Communicator> g_nccl;  // the communicator of g_ctx (its stream), made once by main

dl::Communicator& nccl() { return *g_nccl; }
std::int64_t W() { return nccl().size(); }
std::int64_t R() { return nccl().rank(); }

/// A device buffer of g_ctx made from, and read back into, std::vector.
template <class T>
struct Dev {
  dl::Tensor<T, 1, Cuda> t;
  explicit Dev(std::size_t n) : t(g_ctx->empty<T, 1>({static_cast<index_t>(n)})) {}
  explicit Dev(const std::vector<T>& v) : Dev(v.size()) {
    dl::cuda::copy_to_device(*g_ctx, t.data(), v.data(), sizeof(T) * v.size());
  }
  T* data() { return t.data(); }
  std::vector<T> host() {
    std::vector<T> v(static_cast<std::size_t>(t.numel()));
    dl::cuda::copy_to_host(*g_ctx, v.data(), t.data(), sizeof(T) * v.size());
    return v;
  }
};

/// Counts the elements that differ (one CHECK per buffer, not per element).
template <class T, class F>
std::size_t mismatches(const std::vector<T>& got, F expected) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] == expected(i) ? 0 : 1;
  return bad;
}

/// A host communicator that claims device memory: not a bootstrap.
class DeviceClaim final : public dl::Communicator {
public:
  int rank() const noexcept override { return 0; }
  int size() const noexcept override { return 1; }
  const char* engine() const noexcept override { return "fake"; }
  CommMemory memory() const noexcept override { return CommMemory::device; }
  void all_reduce(void*, std::size_t, dl::CommType, ReduceOp) override {}
  void all_gather(const void*, void*, std::size_t, dl::CommType) override {}
  void reduce_scatter(const void*, void*, std::size_t, dl::CommType, ReduceOp) override {}
  void broadcast(void*, std::size_t, dl::CommType, int) override {}
  void barrier() override {}
};

}  // namespace

TEST_CASE("make_nccl_communicator: this rank's engine, held by the Cuda context") {
  CHECK(std::string(nccl().engine()) == "nccl");
  CHECK(nccl().memory() == CommMemory::device);
  CHECK(nccl().rank() == g_world->rank());
  CHECK(nccl().size() == g_world->size());
  if (g_world->size() == 1) CHECK(std::string(g_world->comm()->engine()) == "single");
  CHECK(&g_ctx->comm() == g_nccl.get());
  CHECK(g_ctx->world_size() == g_world->size());
  CHECK(nccl().describe() == "rank " + std::to_string(R()) + " of " + std::to_string(W()) + " (nccl)");
}

TEMPLATE_TEST_CASE("nccl all_reduce: sum and max over ranks, in place", "", float, double, std::int64_t) {
  using T = TestType;
  const std::size_t n = 1003;
  std::vector<T> mine(n);
  for (std::size_t i = 0; i < n; ++i) mine[i] = static_cast<T>((R() + 1) * static_cast<std::int64_t>(i % 97 + 1));
  Dev<T> a(mine), b(mine);
  nccl().all_reduce(std::span<T>(a.data(), n));  // typed form, sum
  nccl().all_reduce(b.data(), n, dl::comm_type_of<T>(), ReduceOp::max);
  const std::int64_t tri = W() * (W() + 1) / 2;
  auto base = [](std::size_t i) { return static_cast<std::int64_t>(i % 97 + 1); };
  CHECK(mismatches(a.host(), [&](std::size_t i) { return static_cast<T>(tri * base(i)); }) == 0);
  CHECK(mismatches(b.host(), [&](std::size_t i) { return static_cast<T>(W() * base(i)); }) == 0);
}

TEMPLATE_TEST_CASE("nccl all_gather: rank r's values at [r*n, (r+1)*n)", "", float, double, std::int64_t) {
  using T = TestType;
  const std::size_t n = 517, total = n * static_cast<std::size_t>(W());
  auto value = [](std::int64_t r, std::size_t i) {
    return static_cast<T>(r * 1000 + static_cast<std::int64_t>(i % 500));
  };
  std::vector<T> mine(n);
  for (std::size_t i = 0; i < n; ++i) mine[i] = value(R(), i);
  Dev<T> send(mine), recv(total), inplace(std::vector<T>(total, T(-1)));
  nccl().all_gather(std::span<const T>(send.data(), n), std::span<T>(recv.data(), total));  // typed form
  // In place: this rank's part already sits in the output.
  dl::cuda::copy_to_device(*g_ctx, inplace.data() + static_cast<std::size_t>(R()) * n, mine.data(), sizeof(T) * n);
  nccl().all_gather(inplace.data() + static_cast<std::size_t>(R()) * n, inplace.data(), n, dl::comm_type_of<T>());
  auto expected = [&](std::size_t j) { return value(static_cast<std::int64_t>(j / n), j % n); };
  CHECK(mismatches(recv.host(), expected) == 0);
  CHECK(mismatches(inplace.host(), expected) == 0);
}

TEMPLATE_TEST_CASE("nccl reduce_scatter: this rank's slice of the sum / max over ranks", "", float, double,
                   std::int64_t) {
  using T = TestType;
  const std::size_t n = 333, total = n * static_cast<std::size_t>(W());
  auto base = [](std::size_t j) { return static_cast<std::int64_t>(j % 89 + 1); };
  std::vector<T> mine(total);
  for (std::size_t j = 0; j < total; ++j) mine[j] = static_cast<T>((R() + 1) * base(j));
  Dev<T> send(mine), sum(n), max(n);
  nccl().reduce_scatter(std::span<const T>(send.data(), total), std::span<T>(sum.data(), n));  // typed form, sum
  nccl().reduce_scatter(send.data(), max.data(), n, dl::comm_type_of<T>(), ReduceOp::max);
  const std::int64_t tri = W() * (W() + 1) / 2;
  const std::size_t off = static_cast<std::size_t>(R()) * n;
  CHECK(mismatches(sum.host(), [&](std::size_t i) { return static_cast<T>(tri * base(off + i)); }) == 0);
  CHECK(mismatches(max.host(), [&](std::size_t i) { return static_cast<T>(W() * base(off + i)); }) == 0);
}

TEMPLATE_TEST_CASE("nccl broadcast: the root's values everywhere; a root outside the world throws", "", float, double,
                   std::int64_t) {
  using T = TestType;
  const std::size_t n = 129;
  auto value = [](std::int64_t r, std::size_t i) { return static_cast<T>(r * 100 + static_cast<std::int64_t>(i % 7)); };
  std::vector<T> mine(n);
  for (std::size_t i = 0; i < n; ++i) mine[i] = value(R(), i);
  Dev<T> first(mine), last(mine);
  nccl().broadcast(std::span<T>(first.data(), n), 0);
  nccl().broadcast(last.data(), n, dl::comm_type_of<T>(), static_cast<int>(W() - 1));
  CHECK(mismatches(first.host(), [&](std::size_t i) { return value(0, i); }) == 0);
  CHECK(mismatches(last.host(), [&](std::size_t i) { return value(W() - 1, i); }) == 0);
  CHECK_THROWS_AS(nccl().broadcast(first.data(), n, dl::comm_type_of<T>(), static_cast<int>(W())), dl::Error);
  CHECK_THROWS_AS(nccl().broadcast(first.data(), n, dl::comm_type_of<T>(), -1), dl::Error);
}

TEST_CASE("nccl collectives are ordered with the context's kernels on its stream") {
  const std::size_t n = 4099;
  Dev<float> x(n);
  dl::cuda::fill<float>(*g_ctx, x.data(), static_cast<float>(R() + 1), static_cast<index_t>(n));  // no sync between
  nccl().all_reduce(x.data(), n, dl::CommType::f32, ReduceOp::sum);
  dl::cuda::scale<float>(*g_ctx, x.data(), x.data(), 2.0f, static_cast<index_t>(n));
  const float want = 2.0f * static_cast<float>(W() * (W() + 1) / 2);
  CHECK(mismatches(x.host(), [&](std::size_t) { return want; }) == 0);
}

TEST_CASE("nccl barrier, and zero-count collectives do nothing") {
  nccl().barrier();
  Dev<double> x(std::vector<double>{1.5, 2.5});
  nccl().all_reduce(x.data(), 0, dl::CommType::f64, ReduceOp::sum);
  nccl().all_gather(x.data(), x.data(), 0, dl::CommType::f64);
  nccl().reduce_scatter(x.data(), x.data(), 0, dl::CommType::f64, ReduceOp::max);
  nccl().broadcast(x.data(), 0, dl::CommType::f64, 0);
  nccl().barrier();
  CHECK(x.host() == std::vector<double>{1.5, 2.5});
}

TEST_CASE("make_nccl_communicator: a second communicator on the same context, then destroyed") {
  // World size 1: an explicit SingleProcess bootstrap (its broadcast leaves rank 0's unique id as it is).
  dl::SingleProcess single;
  dl::Communicator& boot = g_world->size() == 1 ? static_cast<dl::Communicator&>(single) : *g_world->comm();
  std::vector<std::int64_t> got;
  {
    auto second = dl::dist::make_nccl_communicator(*g_ctx, boot, 60);
    CHECK(second->size() == g_world->size());
    Dev<std::int64_t> v(std::vector<std::int64_t>{R() + 1, 10 * (R() + 1)});
    second->all_reduce(v.data(), 2, dl::CommType::i64, ReduceOp::sum);
    second->barrier();
    got = v.host();
  }  // ncclCommFinalize + ncclCommDestroy
  const std::int64_t tri = W() * (W() + 1) / 2;
  CHECK(got == std::vector<std::int64_t>{tri, 10 * tri});
}

TEST_CASE("make_nccl_communicator: refuses a device-memory bootstrap and a negative timeout") {
  DeviceClaim fake;
  CHECK_THROWS_AS(dl::dist::make_nccl_communicator(*g_ctx, fake), dl::Error);
  CHECK_THROWS_AS(dl::dist::make_nccl_communicator(*g_ctx, *g_world->comm(), -1.0), dl::Error);
}

int main(int argc, char** argv) {
  dl::dist::World world(&argc, &argv);  // MPI under mpirun, the single process otherwise
  if (dl::cuda::emulated()) {
    std::fprintf(stderr, "test_nccl_gpu: linked against the emulation build, which has no NCCL\n");
    return 1;
  }
  const int devices = dl::cuda::device_count();
  if (devices == 0) {
    std::printf("test_nccl_gpu: no CUDA device (or driver) available: skipped\n");
    return 77;
  }
  int rc = 0;
  {
    dl::Context<Cuda> ctx(1, 7, world.rank() % devices);
    g_world = &world;
    g_ctx = &ctx;
    g_nccl = dl::dist::make_nccl_communicator(ctx, *world.comm());
    ctx.set_communicator(g_nccl);  // the context holds it from now on (and destroys it after its stream)
    std::printf("test_nccl_gpu: %s, %s\n", g_nccl->describe().c_str(), dl::cuda::describe(ctx.device_info()).c_str());
    rc = Catch::Session().run(argc, argv);
    g_nccl.reset();
  }
  return rc;
}
