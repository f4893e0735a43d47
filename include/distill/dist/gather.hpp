// distill/dist/gather.hpp -- the global batch of a data-parallel run: rows of every rank, forward and backward.
//
// all_gather_rows(z): z [n, d] on each of W ranks -> [W*n, d], rank r's rows at [r*n, (r+1)*n) (the order of a
// single process that saw the whole global batch). Backward: the gradient of the gathered rows is summed over ranks
// and each rank keeps its own rows (reduce-scatter). With every rank computing the same loss on the gathered rows
// and the gradients averaged over ranks afterwards (dist/data_parallel.hpp), the update equals the single-process
// one on the global batch: the reduce-scatter hands rank r W times the loss gradient of its rows, and the average
// divides by W. The fused O(N*D) loss kernels are unchanged; each rank's extra memory is the gathered [W*n, d].
// World size 1: returns z itself.
//
// shard_rows(x, comm): the rows of this rank, [rank*n/W, (rank+1)*n/W), of a global batch every rank holds
// (built from the same seeded loader and augmentations), so a data-parallel run sees exactly the single process's
// batch. The global batch must divide evenly.
#pragma once

#include <cstring>
#include <span>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/core/communicator.hpp"
#include "distill/backend/device_ops.hpp"

namespace distill::dist {

namespace detail {
/// Every rank passes the same n (a mismatch would make the collectives read past buffers): checked with one
/// all-reduce of (n, -n) under max. Host-memory engines only (a device engine's buffers live on the GPU).
inline void check_same_rows(Communicator& comm, index_t n, const char* what) {
  if (comm.memory() != CommMemory::host) return;
  std::int64_t v[2] = {n, -n};
  comm.all_reduce(std::span<std::int64_t>(v, 2), ReduceOp::max);
  DISTILL_CHECK(v[0] == -v[1], what, ": the ranks hold different row counts (between ", -v[1], " and ", v[0],
                "; this is ", comm.describe(), " with ", n, "); shard the global batch evenly");
}
}  // namespace detail

template <class T, class D>
Var<T, 2, D> all_gather_rows(const Var<T, 2, D>& z) {
  auto& ctx = z.ctx();
  Communicator& comm = ctx.comm();
  const int W = comm.size();
  if (W == 1) return z;
  const index_t n = z.extent(0), d = z.extent(1);
  detail::check_same_rows(comm, n, "all_gather_rows");
  const std::size_t per_rank = static_cast<std::size_t>(n * d);
  Tensor<T, 2, D> out = DeviceOps<D>::template zeros<T, 2>(ctx, Shape<2>{n * W, d});
  comm.all_gather(z.value().data(), out.data(), per_rank, comm_type_of<T>());
  return autograd::make_result("all_gather_rows", ctx, std::move(out),
      [z, per_rank, n, d](const Tensor<T, 2, D>& g) mutable {
        if (!z.requires_grad()) return;
        auto& c = z.ctx();
        Tensor<T, 2, D> mine = DeviceOps<D>::template zeros<T, 2>(c, Shape<2>{n, d});
        c.comm().reduce_scatter(g.data(), mine.data(), per_rank, comm_type_of<T>(), ReduceOp::sum);
        DeviceOps<D>::accumulate(c, z.grad_buffer(), mine);
      },
      z);
}

/// This rank's rows of a host tensor every rank holds (axis 0 split evenly over the world).
template <class T, std::size_t R>
Tensor<T, R, Cpu> shard_rows(const Tensor<T, R, Cpu>& x, const Communicator& comm) {
  static_assert(R >= 1, "shard_rows: a rank-0 tensor has no rows.");
  const index_t rows = x.extent(0), W = comm.size();
  if (W == 1) return x;
  DISTILL_CHECK(rows % W == 0, "shard_rows: a global batch of ", rows, " rows does not split evenly over ", W,
                " ranks; choose a batch size divisible by the world size");
  Shape<R> s = x.shape();
  s[0] = rows / W;
  Tensor<T, R, Cpu> out(s);
  const std::size_t n = static_cast<std::size_t>(out.numel());
  if (n) std::memcpy(out.data(), x.data() + static_cast<std::size_t>(comm.rank()) * n, n * sizeof(T));
  return out;
}

/// This rank's part of a per-row list (labels, lengths) of a global batch.
template <class U>
std::vector<U> shard_rows(std::span<const U> items, const Communicator& comm) {
  const std::size_t W = static_cast<std::size_t>(comm.size());
  DISTILL_CHECK(items.size() % W == 0, "shard_rows: a global batch of ", items.size(),
                " rows does not split evenly over ", W, " ranks; choose a batch size divisible by the world size");
  const std::size_t n = items.size() / W, r = static_cast<std::size_t>(comm.rank());
  return std::vector<U>(items.begin() + static_cast<std::ptrdiff_t>(r * n),
                        items.begin() + static_cast<std::ptrdiff_t>((r + 1) * n));
}

}  // namespace distill::dist
