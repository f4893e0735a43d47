// distill/dist/mpi.hpp -- MPI ranks for host memory: MpiCommunicator and the MpiSession that starts and ends MPI.
//
// Needs <mpi.h> and the MPI library: link distill::mpi (CMake; it defines DISTILL_WITH_MPI and OMPI_SKIP_MPICXX:
// MPI's C API only).
// Every collective is MPI's non-blocking form (MPI_Iallreduce, MPI_Iallgather, MPI_Ireduce_scatter_block,
// MPI_Ibcast, MPI_Ibarrier) completed by polling with a deadline: a peer that died or stalled makes the waiting rank
// throw dist::CommTimeout naming the collective, its size and the rank, instead of hanging; the program then ends
// the job (MpiSession::abort), and mpirun names the rank that exited. The deadline is `timeout_s` (default
// $DISTILL_COMM_TIMEOUT seconds, else 300). MPI is called from the thread that made the session only
// (MPI_THREAD_FUNNELED): distill's OpenMP regions never communicate.
#pragma once

#include <mpi.h>

#include <chrono>
#include <limits>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "distill/core/communicator.hpp"
#include "distill/core/error.hpp"

namespace distill::dist {

namespace detail {
inline MPI_Datatype mpi_type(CommType t) {
  switch (t) {
    case CommType::f32: return MPI_FLOAT;
    case CommType::f64: return MPI_DOUBLE;
    case CommType::i64: return MPI_INT64_T;
  }
  return MPI_DATATYPE_NULL;
}
inline MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::sum ? MPI_SUM : MPI_MAX; }
inline int mpi_count(std::size_t n, const char* what) {
  DISTILL_CHECK(n <= static_cast<std::size_t>(std::numeric_limits<int>::max()), "MpiCommunicator::", what, ": ", n,
                " elements exceed MPI's int count; split the buffer");
  return static_cast<int>(n);
}
inline void mpi_ok(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  DISTILL_FAIL(call, " failed: ", std::string(text, static_cast<std::size_t>(len)));
}
}  // namespace detail

/// Collectives over an MPI communicator (MPI_COMM_WORLD by default) on host memory.
class MpiCommunicator final : public Communicator {
public:
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD, double timeout_s = default_comm_timeout())
      : comm_(comm), timeout_s_(timeout_s) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    DISTILL_CHECK(initialized, "MpiCommunicator: MPI is not initialised (make a dist::MpiSession first)");
    DISTILL_CHECK(timeout_s > 0, "MpiCommunicator: the collective timeout must be positive, got ", timeout_s);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }

  int rank() const noexcept override { return rank_; }
  int size() const noexcept override { return size_; }
  const char* engine() const noexcept override { return "mpi"; }
  CommMemory memory() const noexcept override { return CommMemory::host; }
  double timeout() const noexcept { return timeout_s_; }
  MPI_Comm handle() const noexcept { return comm_; }

  void all_reduce(void* buf, std::size_t n, CommType t, ReduceOp op) override {
    MPI_Request r;
    detail::mpi_ok(MPI_Iallreduce(MPI_IN_PLACE, buf, detail::mpi_count(n, "all_reduce"), detail::mpi_type(t),
                                  detail::mpi_op(op), comm_, &r),
                   "MPI_Iallreduce");
    wait(r, "all_reduce", n, t);
  }
  void all_gather(const void* send, void* recv, std::size_t n, CommType t) override {
    MPI_Request r;
    const int c = detail::mpi_count(n, "all_gather");
    detail::mpi_ok(MPI_Iallgather(send, c, detail::mpi_type(t), recv, c, detail::mpi_type(t), comm_, &r),
                   "MPI_Iallgather");
    wait(r, "all_gather", n, t);
  }
  void reduce_scatter(const void* send, void* recv, std::size_t n, CommType t, ReduceOp op) override {
    MPI_Request r;
    detail::mpi_ok(MPI_Ireduce_scatter_block(send, recv, detail::mpi_count(n, "reduce_scatter"), detail::mpi_type(t),
                                             detail::mpi_op(op), comm_, &r),
                   "MPI_Ireduce_scatter_block");
    wait(r, "reduce_scatter", n, t);
  }
  void broadcast(void* buf, std::size_t n, CommType t, int root) override {
    DISTILL_CHECK(root >= 0 && root < size_, "MpiCommunicator::broadcast: root ", root, " is not a rank of a world of ",
                  size_);
    MPI_Request r;
    detail::mpi_ok(MPI_Ibcast(buf, detail::mpi_count(n, "broadcast"), detail::mpi_type(t), root, comm_, &r),
                   "MPI_Ibcast");
    wait(r, "broadcast", n, t);
  }
  void barrier() override {
    MPI_Request r;
    detail::mpi_ok(MPI_Ibarrier(comm_, &r), "MPI_Ibarrier");
    wait(r, "barrier", 0, CommType::f32);
  }

private:
  /// Polls until done: spins for the first millisecond (the common case: peers are in step), then sleeps 50 us
  /// between polls; past the deadline, throws naming the collective.
  void wait(MPI_Request& r, const char* what, std::size_t n, CommType t) const {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto deadline =
        start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout_s_));
    for (int polls = 0;; ++polls) {
      int done = 0;
      detail::mpi_ok(MPI_Test(&r, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) return;
      const auto now = clock::now();
      if (now > deadline)
        throw CommTimeout(std::string("dist: ") + what + " of " + std::to_string(n) + " x " +
                          std::to_string(comm_type_size(t)) + "-byte values on " + describe() +
                          " got no answer within " + std::to_string(timeout_s_) +
                          " s: a peer rank died or stalled (DISTILL_COMM_TIMEOUT sets the deadline)");
      if (now - start > std::chrono::milliseconds(1)) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  MPI_Comm comm_;
  double timeout_s_;
  int rank_ = 0, size_ = 1;
};

/// Starts MPI (MPI_Init_thread, FUNNELED) unless it already runs, and finalises it at the end if it started it.
/// comm() is the world's communicator, for Context::set_communicator. abort() ends every rank of the job (after an
/// error on one rank: the others may be waiting in a collective, which a normal exit would leave hanging).
class MpiSession {
public:
  MpiSession(int* argc = nullptr, char*** argv = nullptr) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
      int provided = 0;
      detail::mpi_ok(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      owns_ = true;
    }
    comm_ = std::make_shared<MpiCommunicator>(MPI_COMM_WORLD);
  }
  ~MpiSession() {
    if (!owns_) return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  const std::shared_ptr<Communicator>& comm() const noexcept { return comm_; }
  [[noreturn]] void abort(int code) const {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::abort();  // not reached
  }

private:
  bool owns_ = false;
  std::shared_ptr<Communicator> comm_;
};

}  // namespace distill::dist
