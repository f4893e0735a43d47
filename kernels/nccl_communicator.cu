// kernels/nccl_communicator.cu -- dist::make_nccl_communicator (distill/dist/nccl.hpp): NcclCommunicator, the
// collectives of CUDA ranks over NCCL on a Context<Cuda>'s stream.
//
// nvcc compiles this file into distill::cuda next to distill_cuda.cu when CMake finds NCCL and MPI
// (cmake/cuda.cmake); never in the emulation build, which has no NCCL. The semantics (device memory, enqueued on the
// context's stream, errors, the deadline of joining and barrier(), what the deadline does not cover) are documented
// in distill/dist/nccl.hpp.
//
// The NCCL communicator is non-blocking (config.blocking = 0): an NCCL call that returns ncclInProgress (joining,
// the lazy connection set-up of a first collective, finalising) completes in the background, and the next call must
// wait until ncclCommGetAsyncError reports it done. That wait polls with the deadline, so a peer that never joins
// makes this rank abort the communicator (ncclCommAbort) and throw instead of hanging.
#include <nccl.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "distill/cuda/context.hpp"
#include "distill/dist/nccl.hpp"

#include "context.cuh"

namespace distill::dist {

namespace {

/// `timeout_s` if positive; 0: $DISTILL_COMM_TIMEOUT (seconds, > 0) or 300 (core/communicator.hpp).
double deadline_seconds(double timeout_s) {
  if (timeout_s != 0) {
    DISTILL_CHECK(timeout_s > 0, "make_nccl_communicator: the collective timeout must be positive (or 0 for the "
                                 "default), got ", timeout_s);
    return timeout_s;
  }
  return default_comm_timeout();
}

ncclDataType_t nccl_type(CommType t) {
  switch (t) {
    case CommType::f32: return ncclFloat32;
    case CommType::f64: return ncclFloat64;
    case CommType::i64: return ncclInt64;
  }
  DISTILL_FAIL("NcclCommunicator: unknown CommType ", static_cast<int>(t));
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::sum ? ncclSum : ncclMax; }

class NcclCommunicator final : public Communicator {
public:
  NcclCommunicator(Context<Cuda>& ctx, Communicator& bootstrap, double timeout_s)
      : state_(&ctx.state()), timeout_s_(deadline_seconds(timeout_s)), rank_(bootstrap.rank()),
        size_(bootstrap.size()) {
    DISTILL_CHECK(bootstrap.memory() == CommMemory::host, "make_nccl_communicator: the bootstrap communicator (",
                  bootstrap.describe(), ") must work on host memory (dist::World's MPI communicator, or the single "
                  "process); it broadcasts NCCL's unique id from rank 0");
    state_->activate();
    stream_ = state_->stream();
    device_ = state_->info().index;

    // Rank 0 makes the id; the bootstrap hands it to every rank (as 16 int64 words: 128 bytes).
    ncclUniqueId id;
    std::memset(&id, 0, sizeof id);
    if (rank_ == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess)
        DISTILL_FAIL("make_nccl_communicator: ncclGetUniqueId failed on ", describe(), ": ", ncclGetErrorString(r));
    }
    static_assert(sizeof(ncclUniqueId) % sizeof(std::int64_t) == 0);
    std::int64_t words[sizeof(ncclUniqueId) / sizeof(std::int64_t)];
    std::memcpy(words, &id, sizeof id);
    bootstrap.broadcast(words, sizeof words / sizeof words[0], CommType::i64, 0);
    std::memcpy(&id, words, sizeof id);

    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, size_, id, rank_, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
      const std::string last = last_error();
      abort_comm();
      DISTILL_FAIL("make_nccl_communicator: ncclCommInitRankConfig failed on ", describe(), " (device cuda:", device_,
                   "): ", ncclGetErrorString(r), last);
    }
    wait("joining the communicator (ncclCommInitRankConfig)", 0, CommType::f32, [] { return true; });

    // The barrier's one value, zeroed once (its content never matters). A failure here must not leak the joined
    // communicator (no destructor runs for a constructor that throws).
    try {
      barrier_buf_ = state_->allocator().allocate(sizeof(float));
      DISTILL_CUDA_CHECK(cudaMemsetAsync(barrier_buf_.get(), 0, sizeof(float), stream_));
    } catch (...) {
      abort_comm();
      throw;
    }
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  /// Flushes and frees the NCCL communicator (bounded by the deadline; past it, or after an error, or while an
  /// exception unwinds, aborts it instead). Does not touch the context, which may already be gone.
  ~NcclCommunicator() override {
    if (!comm_) return;
    (void)cudaSetDevice(device_);
    if (std::uncaught_exceptions() > 0) {
      abort_comm();
      return;
    }
    ncclResult_t r = ncclCommFinalize(comm_);
    if (r == ncclSuccess || r == ncclInProgress) {
      const auto deadline = deadline_from_now();
      ncclResult_t state = ncclInProgress;
      while (ncclCommGetAsyncError(comm_, &state) == ncclSuccess && state == ncclInProgress &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(50));
      if (state == ncclSuccess) {
        (void)ncclCommDestroy(comm_);
        comm_ = nullptr;
        return;
      }
    }
    abort_comm();
  }

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  const char* engine() const noexcept override { return "nccl"; }
  CommMemory memory() const noexcept override { return CommMemory::device; }

  void all_reduce(void* buf, std::size_t n, CommType t, ReduceOp op) override {
    begin("all_reduce", n, t);
    if (n == 0) return;
    enqueue(ncclAllReduce(buf, buf, n, nccl_type(t), nccl_op(op), comm_, stream_), "ncclAllReduce", "all_reduce", n,
            t);
  }
  void all_gather(const void* send, void* recv, std::size_t n, CommType t) override {
    begin("all_gather", n, t);
    if (n == 0) return;
    enqueue(ncclAllGather(send, recv, n, nccl_type(t), comm_, stream_), "ncclAllGather", "all_gather", n, t);
  }
  void reduce_scatter(const void* send, void* recv, std::size_t n, CommType t, ReduceOp op) override {
    begin("reduce_scatter", n, t);
    if (n == 0) return;
    enqueue(ncclReduceScatter(send, recv, n, nccl_type(t), nccl_op(op), comm_, stream_), "ncclReduceScatter",
            "reduce_scatter", n, t);
  }
  void broadcast(void* buf, std::size_t n, CommType t, int root) override {
    DISTILL_CHECK(root >= 0 && root < size_, "NcclCommunicator::broadcast: root ", root,
                  " is not a rank of a world of ", size_);
    begin("broadcast", n, t);
    if (n == 0) return;
    enqueue(ncclBroadcast(buf, buf, n, nccl_type(t), root, comm_, stream_), "ncclBroadcast", "broadcast", n, t);
  }
  /// A one-value all-reduce, then a wait (with the deadline) for the stream: every rank got here and everything
  /// enqueued on the context before is done.
  void barrier() override {
    begin("barrier", 0, CommType::f32);
    enqueue(ncclAllReduce(barrier_buf_.get(), barrier_buf_.get(), 1, ncclFloat32, ncclSum, comm_, stream_),
            "ncclAllReduce", "barrier", 0, CommType::f32);
    wait("barrier", 0, CommType::f32, [this] {
      const cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) return true;
      if (e == cudaErrorNotReady) return false;
      (void)cudaGetLastError();
      DISTILL_FAIL("NcclCommunicator::barrier on ", describe(), ": the context's stream failed: ", cudaGetErrorName(e),
                   " (", cudaGetErrorString(e), ")");
    });
  }

private:
  using clock = std::chrono::steady_clock;

  clock::time_point deadline_from_now() const {
    return clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s_));
  }

  /// " (NCCL: <ncclGetLastError>)" when NCCL has a message for the communicator, else "".
  std::string last_error() const {
    const char* s = ncclGetLastError(comm_);
    return s && *s ? std::string(" (NCCL: ") + s + ")" : std::string();
  }

  void abort_comm() noexcept {
    if (!comm_) return;
    (void)ncclCommAbort(comm_);
    comm_ = nullptr;
  }

  static std::string describe_call(const char* what, std::size_t n, CommType t) {
    std::string s = what;
    if (n) s += " of " + std::to_string(n) + " x " + std::to_string(comm_type_size(t)) + "-byte values";
    return s;
  }

  /// Before each collective: the communicator is alive, the context's device is current, and NCCL reports no
  /// error of an earlier collective (an asynchronous one aborts it and throws).
  void begin(const char* what, std::size_t n, CommType t) {
    DISTILL_CHECK(comm_ != nullptr, "NcclCommunicator::", what, " on ", describe(), ": the NCCL communicator was "
                  "aborted after an earlier error or timeout; make a new one (on every rank)");
    state_->activate();
    wait(what, n, t, [] { return true; });
  }

  /// The result of enqueueing a collective: ncclInProgress waits (with the deadline) until NCCL is done with it;
  /// an error throws naming the call (a usage error leaves the communicator usable, any other aborts it).
  void enqueue(ncclResult_t r, const char* call, const char* what, std::size_t n, CommType t) {
    if (r == ncclSuccess) return;
    if (r == ncclInProgress) {
      wait(what, n, t, [] { return true; });
      return;
    }
    const std::string last = last_error();
    const bool usage = r == ncclInvalidArgument || r == ncclInvalidUsage;
    if (!usage) abort_comm();
    DISTILL_FAIL("NcclCommunicator: ", describe_call(what, n, t), " on ", describe(), ": ", call, " failed: ",
                 ncclGetErrorString(r), last, usage ? "" : "; the NCCL communicator was aborted");
  }

  /// Polls until NCCL's state is no longer ncclInProgress and `done()` holds: spins for the first millisecond, then
  /// sleeps 50 us between polls. An asynchronous NCCL error aborts the communicator and throws; so does the deadline.
  template <class Done>
  void wait(const char* what, std::size_t n, CommType t, Done&& done) {
    const auto start = clock::now();
    const auto deadline = deadline_from_now();
    for (;;) {
      ncclResult_t state = ncclInProgress;
      const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
      if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
        const std::string last = last_error();
        abort_comm();
        DISTILL_FAIL("NcclCommunicator: ", describe_call(what, n, t), " on ", describe(), ": ",
                     r != ncclSuccess ? "ncclCommGetAsyncError failed: " : "NCCL reported an asynchronous error: ",
                     ncclGetErrorString(r != ncclSuccess ? r : state), last,
                     "; the NCCL communicator was aborted (a peer rank may have died)");
      }
      if (state == ncclSuccess && done()) return;
      const auto now = clock::now();
      if (now > deadline) {
        abort_comm();
        throw CommTimeout(std::string("dist: ") + describe_call(what, n, t) + " on " + describe() +
                          " got no answer within " + std::to_string(timeout_s_) +
                          " s: a peer rank died or stalled (DISTILL_COMM_TIMEOUT sets the deadline); the NCCL "
                          "communicator was aborted");
      }
      if (now - start > std::chrono::milliseconds(1)) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  cuda::ContextState* state_;
  double timeout_s_;
  int rank_, size_;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  std::shared_ptr<void> barrier_buf_;
};

}  // namespace

std::shared_ptr<Communicator> make_nccl_communicator(Context<Cuda>& ctx, Communicator& bootstrap, double timeout_s) {
  return std::make_shared<NcclCommunicator>(ctx, bootstrap, timeout_s);
}

}  // namespace distill::dist
