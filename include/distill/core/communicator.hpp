// distill/core/communicator.hpp -- the collective operations a context's ranks share, behind one small interface.
//
// A Communicator is held by every Context (core/context.hpp): its rank, world size and collectives. The default is
// the single process (world size 1, every collective a copy or nothing), so code written for data-parallel training
// runs unchanged on one process. Engines implement the interface: MPI for host memory (dist/mpi.hpp), NCCL for CUDA
// device memory (kernels/nccl_communicator.cu, declared in dist/nccl.hpp). No sockets of our own.
//
// Semantics (those of MPI / NCCL; every rank calls the same collectives in the same order with the same counts):
//   all_reduce(buf, n)                in place: buf = op over ranks of buf           (n elements)
//   all_gather(send, recv, n)         recv[r*n, (r+1)*n) = send of rank r            (recv holds size()*n)
//   reduce_scatter(send, recv, n)     recv = op over ranks of send[rank*n, (rank+1)*n) (send holds size()*n)
//   broadcast(buf, n, root)           buf = buf of rank `root`
//   barrier()
// Sums are computed in a fixed order for a fixed world size (MPI's and NCCL's reductions are deterministic for a
// fixed size and layout), so a data-parallel run repeats bitwise. An engine may throw (a timeout naming the
// collective and the rank that waited) instead of hanging when a peer died.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <type_traits>

#include "distill/core/error.hpp"

namespace distill {

enum class CommType { f32, f64, i64 };

/// Thrown by an engine when a collective did not complete within its deadline (a peer rank died or stalled).
class CommTimeout : public Error {
public:
  using Error::Error;
};
enum class ReduceOp { sum, max };

template <class T>
constexpr CommType comm_type_of() {
  if constexpr (std::is_same_v<T, float>) return CommType::f32;
  else if constexpr (std::is_same_v<T, double>) return CommType::f64;
  else {
    static_assert(std::is_same_v<T, std::int64_t>, "Communicator: collectives take float, double or int64_t.");
    return CommType::i64;
  }
}

inline std::size_t comm_type_size(CommType t) noexcept { return t == CommType::f32 ? 4 : 8; }

/// The collectives' deadline in seconds: $DISTILL_COMM_TIMEOUT (> 0) or 300. Engines wait at most this long for
/// their peers, then throw CommTimeout.
inline double default_comm_timeout() {
  const char* v = std::getenv("DISTILL_COMM_TIMEOUT");
  if (!v || !*v) return 300.0;
  char* end = nullptr;
  const double s = std::strtod(v, &end);
  DISTILL_CHECK(end && *end == '\0' && s > 0, "DISTILL_COMM_TIMEOUT='", v, "' is not a positive number of seconds");
  return s;
}

/// Where a communicator's buffers live: host memory (MPI, the single process) or CUDA device memory (NCCL).
enum class CommMemory { host, device };

class Communicator {
public:
  virtual ~Communicator() = default;
  virtual int rank() const noexcept = 0;
  virtual int size() const noexcept = 0;
  /// "single", "mpi", "nccl": for header lines and messages.
  virtual const char* engine() const noexcept = 0;
  virtual CommMemory memory() const noexcept = 0;

  virtual void all_reduce(void* buf, std::size_t n, CommType t, ReduceOp op) = 0;
  virtual void all_gather(const void* send, void* recv, std::size_t n, CommType t) = 0;
  virtual void reduce_scatter(const void* send, void* recv, std::size_t n, CommType t, ReduceOp op) = 0;
  virtual void broadcast(void* buf, std::size_t n, CommType t, int root) = 0;
  virtual void barrier() = 0;

  // Typed forms.
  template <class T>
  void all_reduce(std::span<T> buf, ReduceOp op = ReduceOp::sum) {
    all_reduce(buf.data(), buf.size(), comm_type_of<T>(), op);
  }
  template <class T>
  void all_gather(std::span<const T> send, std::span<T> recv) {
    check_counts("all_gather", recv.size(), send.size());
    all_gather(send.data(), recv.data(), send.size(), comm_type_of<T>());
  }
  template <class T>
  void reduce_scatter(std::span<const T> send, std::span<T> recv, ReduceOp op = ReduceOp::sum) {
    check_counts("reduce_scatter", send.size(), recv.size());
    reduce_scatter(send.data(), recv.data(), recv.size(), comm_type_of<T>(), op);
  }
  template <class T>
  void broadcast(std::span<T> buf, int root = 0) {
    broadcast(buf.data(), buf.size(), comm_type_of<T>(), root);
  }

  /// "rank 1 of 2 (mpi)" for messages.
  std::string describe() const {
    std::string s = "rank ";
    s += std::to_string(rank());
    s += " of ";
    s += std::to_string(size());
    s += " (";
    s += engine();
    s += ')';
    return s;
  }

private:
  void check_counts(const char* what, std::size_t whole, std::size_t part) const {
    DISTILL_CHECK(whole == part * static_cast<std::size_t>(size()), "Communicator::", what, ": the whole buffer has ",
                  whole, " elements but ", size(), " ranks x ", part, " per rank = ",
                  part * static_cast<std::size_t>(size()));
  }
};

/// World size 1: reductions and broadcasts leave the data as it is, gathers and scatters copy. Host memory.
class SingleProcess final : public Communicator {
public:
  int rank() const noexcept override { return 0; }
  int size() const noexcept override { return 1; }
  const char* engine() const noexcept override { return "single"; }
  CommMemory memory() const noexcept override { return CommMemory::host; }
  void all_reduce(void*, std::size_t, CommType, ReduceOp) override {}
  void all_gather(const void* send, void* recv, std::size_t n, CommType t) override { copy(send, recv, n, t); }
  void reduce_scatter(const void* send, void* recv, std::size_t n, CommType t, ReduceOp) override {
    copy(send, recv, n, t);
  }
  void broadcast(void*, std::size_t, CommType, int root) override {
    DISTILL_CHECK(root == 0, "Communicator::broadcast: root ", root, " is not a rank of a world of size 1");
  }
  void barrier() override {}

private:
  static void copy(const void* src, void* dst, std::size_t n, CommType t) {
    if (n && src != dst) std::memmove(dst, src, n * comm_type_size(t));
  }
};

}  // namespace distill
