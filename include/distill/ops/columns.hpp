// distill/ops/columns.hpp -- small column-wise ops of L-MCL's aggregator and weight network, forward and backward
// side by side (Cpu device; docs/mcl.md):
//   concat1(x_1, ..., x_K)        [B, C_1], ..., [B, C_K] -> [B, C_1 + ... + C_K]   (torch.cat(xs, dim=1))
//   mix_columns(a, x_1, ..., x_K) a [B, K], x_k [B, C] -> y_i = sum_k a_ik x_k,i      (attention over exits)
//   sigmoid_cosine(a, b)          a, b [B, C] -> w_i = sigmoid(cos(a_i, b_i))          (L-MCL pair weights, [B])
// The Cuda device has no kernels for them yet: their Cuda overloads (at the end) compile, so that device-generic
// code such as L-MCL's builds for both devices, and refuse at run time with a message naming the op;
// has_column_ops<D> tells beforehand (MCL itself, which needs none of them, runs on both devices).
#pragma once

#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/ops/detail.hpp"

namespace distill {

namespace ops_detail {
template <class D>
constexpr void require_cpu_columns() {
  static_assert(!is_cuda<D>, "ops/columns.hpp (concat1, mix_columns, sigmoid_cosine) runs on the Cpu device only");
}
[[noreturn]] inline void refuse_cuda_columns(const char* op) {
  DISTILL_FAIL(op, ": the Cuda device has no kernel for it yet (ops/columns.hpp runs on the Cpu device only)");
}
}  // namespace ops_detail

/// Whether concat1, mix_columns and sigmoid_cosine compute on device D (host loops: devices with host memory).
template <class D>
inline constexpr bool has_column_ops = DeviceOps<D>::host_memory;

/// [x_1 | x_2 | ...]: concatenation of [B, C_k] matrices along the columns (PyTorch: torch.cat(xs, dim=1)).
template <class T, class D, class... Xs>
Var<T, 2, D> concat1(const Var<T, 2, D>& x0, const Xs&... xs) {
  ops_detail::require_cpu_columns<D>();
  const std::array<const Var<T, 2, D>*, 1 + sizeof...(Xs)> in{&x0, &xs...};
  const index_t B = x0.extent(0);
  index_t C = 0;
  for (auto* x : in) {
    DISTILL_CHECK(x->extent(0) == B, "concat1: inputs ", to_string(x0.shape()), " and ", to_string(x->shape()),
                  " have different row counts");
    C += x->extent(1);
  }
  auto& ctx = x0.ctx();
  Tensor<T, 2, D> out(Shape<2>{B, C});
  for (index_t i = 0; i < B; ++i) {
    index_t off = 0;
    for (auto* x : in) {
      const index_t c = x->extent(1);
      std::memcpy(out.data() + i * C + off, x->value().data() + i * c, sizeof(T) * static_cast<std::size_t>(c));
      off += c;
    }
  }
  return autograd::make_result("concat1", ctx, std::move(out),
      [in_vars = std::array<Var<T, 2, D>, 1 + sizeof...(Xs)>{x0, xs...}, B, C](const Tensor<T, 2, D>& g) mutable {
        index_t off = 0;
        for (auto& x : in_vars) {
          const index_t c = x.extent(1);
          if (x.requires_grad()) {
            T* gx = x.grad_buffer().data();
            for (index_t i = 0; i < B; ++i)
              for (index_t j = 0; j < c; ++j) gx[i * c + j] += g.data()[i * C + off + j];
          }
          off += c;
        }
      },
      x0, xs...);
}

/// y_i = sum_k a_ik x_k,i for attention a [B, K] and K matrices x_k [B, C] (L-MCL's aggregated logits).
///   da_ik = <g_i, x_k,i>,  dx_k,i = a_ik g_i.
template <class T, class D, class... Xs>
Var<T, 2, D> mix_columns(const Var<T, 2, D>& a, const Var<T, 2, D>& x0, const Xs&... xs) {
  ops_detail::require_cpu_columns<D>();
  constexpr index_t K = 1 + sizeof...(Xs);
  const std::array<const Var<T, 2, D>*, K> in{&x0, &xs...};
  DISTILL_CHECK(a.extent(1) == K, "mix_columns: attention of shape ", to_string(a.shape()), " for ", K,
                " inputs (expected [B, ", K, "])");
  const index_t B = a.extent(0), C = x0.extent(1);
  for (auto* x : in)
    DISTILL_CHECK(x->shape() == x0.shape() && B == x->extent(0), "mix_columns: inputs ", to_string(x0.shape()),
                  " and ", to_string(x->shape()), " for attention ", to_string(a.shape()), " do not match");
  Tensor<T, 2, D> out = Tensor<T, 2, D>::zeros(Shape<2>{B, C});
  for (index_t i = 0; i < B; ++i)
    for (index_t k = 0; k < K; ++k) {
      const T w = a.value()(i, k);
      const T* x = in[k]->value().data() + i * C;
      for (index_t j = 0; j < C; ++j) out.data()[i * C + j] += w * x[j];
    }
  return autograd::make_result("mix_columns", a.ctx(), std::move(out),
      [a, xv = std::array<Var<T, 2, D>, K>{x0, xs...}, B, C](const Tensor<T, 2, D>& g) mutable {
        for (index_t k = 0; k < K; ++k) {
          const T* x = xv[k].value().data();
          T* gx = xv[k].requires_grad() ? xv[k].grad_buffer().data() : nullptr;
          T* ga = a.requires_grad() ? a.grad_buffer().data() : nullptr;
          for (index_t i = 0; i < B; ++i) {
            const T w = a.value()(i, k);
            double dot = 0;
            for (index_t j = 0; j < C; ++j) {
              const T gij = g.data()[i * C + j];
              dot += double(gij) * double(x[i * C + j]);
              if (gx) gx[i * C + j] += w * gij;
            }
            if (ga) ga[i * K + k] += static_cast<T>(dot);
          }
        }
      },
      a, x0, xs...);
}

/// w_i = sigmoid(cos(a_i, b_i)) for a, b [B, C] (cos with the norms clamped at 1e-8, like F.cosine_similarity).
///   dw_i/dcos = w_i (1 - w_i),  dcos/da_i = b_i / (|a_i||b_i|) - cos a_i / |a_i|^2 (symmetrically for b).
template <class T, class D>
Var<T, 1, D> sigmoid_cosine(const Var<T, 2, D>& a, const Var<T, 2, D>& b) {
  ops_detail::require_cpu_columns<D>();
  check_same_shape(a.shape(), b.shape(), "sigmoid_cosine: a and b");
  const index_t B = a.extent(0), C = a.extent(1);
  Tensor<T, 1, D> out(Shape<1>{B});
  std::vector<double> na(static_cast<std::size_t>(B)), nb(na.size()), cs(na.size());
  for (index_t i = 0; i < B; ++i) {
    double aa = 0, bb = 0, ab = 0;
    const T* x = a.value().data() + i * C;
    const T* y = b.value().data() + i * C;
    for (index_t j = 0; j < C; ++j) {
      aa += double(x[j]) * double(x[j]);
      bb += double(y[j]) * double(y[j]);
      ab += double(x[j]) * double(y[j]);
    }
    na[i] = std::max(std::sqrt(aa), 1e-8);
    nb[i] = std::max(std::sqrt(bb), 1e-8);
    cs[i] = ab / (na[i] * nb[i]);
    out[i] = static_cast<T>(1.0 / (1.0 + std::exp(-cs[i])));
  }
  Tensor<T, 1, D> w = out;
  return autograd::make_result("sigmoid_cosine", a.ctx(), std::move(out),
      [a, b, w, na, nb, cs, B, C](const Tensor<T, 1, D>& g) mutable {
        const bool ga = a.requires_grad(), gb = b.requires_grad();
        if (!ga && !gb) return;
        for (index_t i = 0; i < B; ++i) {
          const double dc = double(g[i]) * double(w[i]) * (1.0 - double(w[i]));
          const T* x = a.value().data() + i * C;
          const T* y = b.value().data() + i * C;
          const double ab = na[i] * nb[i];
          for (index_t j = 0; j < C; ++j) {
            if (ga)
              a.grad_buffer().data()[i * C + j] +=
                  static_cast<T>(dc * (double(y[j]) / ab - cs[i] * double(x[j]) / (na[i] * na[i])));
            if (gb)
              b.grad_buffer().data()[i * C + j] +=
                  static_cast<T>(dc * (double(x[j]) / ab - cs[i] * double(y[j]) / (nb[i] * nb[i])));
          }
        }
      },
      a, b);
}

// The Cuda device's overloads: refused at run time (see has_column_ops).
template <class T, class... Xs>
Var<T, 2, Cuda> concat1(const Var<T, 2, Cuda>&, const Xs&...) {
  ops_detail::refuse_cuda_columns("concat1");
}
template <class T, class... Xs>
Var<T, 2, Cuda> mix_columns(const Var<T, 2, Cuda>&, const Var<T, 2, Cuda>&, const Xs&...) {
  ops_detail::refuse_cuda_columns("mix_columns");
}
template <class T>
Var<T, 1, Cuda> sigmoid_cosine(const Var<T, 2, Cuda>&, const Var<T, 2, Cuda>&) {
  ops_detail::refuse_cuda_columns("sigmoid_cosine");
}

}  // namespace distill
