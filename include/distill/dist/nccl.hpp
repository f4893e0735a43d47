// distill/dist/nccl.hpp -- CUDA ranks: the NCCL engine of core/communicator.hpp for Context<Cuda> (device memory).
//
// snippet: fragment; includes: distill/cuda/context.hpp distill/dist/world.hpp;
// given: int argc = 1; char** argv = nullptr; int threads = 1; std::uint64_t seed = 0; int local_rank = 0;
//   dist::World world(&argc, &argv);                                  // MPI ranks (dist/world.hpp)
//   Context<Cuda> ctx(threads, seed, /*device=*/local_rank);          // one GPU per rank
//   if constexpr (dist::built_with_nccl())
//     ctx.set_communicator(dist::make_nccl_communicator(ctx, *world.comm()));
//
// Plain C++ (no CUDA or NCCL header): the definition lives in kernels/nccl_communicator.cu, compiled into
// distill::cuda when CMake finds NCCL and MPI (cmake/cuda.cmake; the summary line says "NCCL found (...)"); such a
// build defines DISTILL_WITH_NCCL for everything linking distill::cuda, and built_with_nccl() is true. Without it the
// function is declared but defined nowhere: call it under `if constexpr (dist::built_with_nccl())` (a discarded
// branch needs no definition) or `#ifdef DISTILL_WITH_NCCL`. The emulation build (distill::cuda_emu) has no NCCL.
//
// make_nccl_communicator(ctx, bootstrap, timeout_s):
//   * world size and rank are the bootstrap's (a host-memory communicator, normally dist::World's MpiCommunicator):
//     rank 0 makes the ncclUniqueId and the bootstrap broadcasts it; every rank then joins the NCCL communicator
//     on ctx's device. Every rank needs its own GPU (NCCL refuses two ranks on one device). Collective: every rank
//     calls it, in the same order relative to its other collectives.
//   * the communicator works on device memory (memory() == CommMemory::device, engine() "nccl"): every buffer passed
//     to its collectives is device memory of ctx's device (Context<Cuda> tensors).
//   * collectives are enqueued on ctx's stream, ordered with the context's kernels and copies, and return after
//     enqueueing, like a kernel launch: the result is there for the kernels enqueued after them, and for the host
//     after ctx.synchronize() or a copy to the host. Exceptions: barrier() waits until every rank reached it and
//     the stream has drained (everything enqueued on ctx before it is done): a ctx.synchronize() with a deadline.
//   * errors: a failed NCCL call throws distill::Error naming the call, ncclGetErrorString and NCCL's last error
//     text; an asynchronous NCCL error (a peer's connection lost, ...) is found at the next collective or while
//     barrier() waits, the communicator is aborted (ncclCommAbort) and distill::Error is thrown; an aborted
//     communicator throws from every later collective.
//   * timeout: the communicator is non-blocking (NCCL's config.blocking = 0). Joining (in make_nccl_communicator),
//     every NCCL call that NCCL reports as still in progress, and barrier()'s wait poll ncclCommGetAsyncError with a
//     deadline of `timeout_s` seconds (0: $DISTILL_COMM_TIMEOUT, else 300: default_comm_timeout()); past
//     it the communicator is aborted (ncclCommAbort, which also ends its kernels still waiting for a peer) and
//     CommTimeout (core/communicator.hpp) is thrown naming the collective, the rank and "got no answer within ...
//     s". Not covered: a
//     collective already enqueued whose peer never joins blocks ctx.synchronize() and the copies to the host
//     forever (they wait on the stream without a deadline); call barrier() at the points a peer may have failed
//     (e.g. once per step) to bound that wait.
//   * the communicator uses ctx's stream: use it only while ctx lives (set_communicator makes ctx hold it; that is
//     the intended owner). Its destructor flushes and frees the NCCL communicator (ncclCommFinalize +
//     ncclCommDestroy, bounded by the deadline, else ncclCommAbort); destroyed during exception unwinding, it aborts.
#pragma once

#include <memory>

#include "distill/core/communicator.hpp"
#include "distill/core/device.hpp"

namespace distill {

template <class D>
class Context;

namespace dist {

/// True when distill::cuda was built with NCCL (DISTILL_WITH_NCCL): make_nccl_communicator is defined.
constexpr bool built_with_nccl() {
#ifdef DISTILL_WITH_NCCL
  return true;
#else
  return false;
#endif
}

/// The NCCL communicator of this rank for `ctx`'s device and stream; world size and rank are `bootstrap`'s (see
/// above). `timeout_s` > 0 is the deadline of joining and of barrier(); 0 takes $DISTILL_COMM_TIMEOUT or 300.
std::shared_ptr<Communicator> make_nccl_communicator(Context<Cuda>& ctx, Communicator& bootstrap, double timeout_s = 0);

}  // namespace dist
}  // namespace distill
