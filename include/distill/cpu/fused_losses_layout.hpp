// distill/cpu/fused_losses_layout.hpp -- the fused losses' embedding layout (cpu::fused::Emb, declared in
// cpu/api.hpp): rows padded to a multiple of 16 columns with zeros, L2-normalised on the way in when asked
// (F.normalize semantics), plus the packed transpose the tile products read; and the way back, a gradient in that
// layout scattered to the input rows through the normalisation's Jacobian.
#pragma once

#include "distill/cpu/fused_losses_threads.hpp"

namespace distill::cpu::fused {

// ------------------------------------------------------------------------------------------------------------
// Embedding rows in the tile layout.
// ------------------------------------------------------------------------------------------------------------

/// Builds Emb from up to two stacked row blocks of width d, L2-normalising each row (F.normalize semantics,
/// z = x / max(||x||, eps)) when `normalize`.
template <class T>
Emb<T> make_emb(Exec ex, RowSource<T> a, RowSource<T> b, index_t d, bool normalize) {
  const int threads = ex.threads;
  Emb<T> e;
  e.n = a.n + b.n;
  e.d = d;
  e.dp = tile::round_up(std::max<index_t>(d, 1), tile::kColumnQuantum);
  e.normalized = normalize;
  const index_t n = e.n, dp = e.dp;
  const index_t np = tile::round_up(std::max<index_t>(n, 1), tile::kColumnQuantum);
  e.z = ex.buffer<T>(n * dp);
  e.zt = ex.buffer<T>(np * dp);
  e.norm = ex.buffer<T>(n);
  T* z = e.z.data();
  T* zt = e.zt.data();
  T* nrm = e.norm.data();
  const int nt = static_cast<int>(std::clamp<index_t>(n * d / 16384, 1, std::max(threads, 1)));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t i = 0; i < n; ++i) {
    const T* x = i < a.n ? a.p + i * d : b.p + (i - a.n) * d;
    T* zi = z + i * dp;
    T scale = T(1);
    if (normalize) {
      double ss = 0;
      for (index_t k = 0; k < d; ++k) ss += double(x[k]) * double(x[k]);
      const double nr = std::sqrt(ss);
      nrm[i] = static_cast<T>(nr);
      scale = static_cast<T>(1.0 / std::max(nr, kNormEps));
    }
    for (index_t k = 0; k < d; ++k) zi[k] = x[k] * scale;
    for (index_t k = d; k < dp; ++k) zi[k] = T(0);
  }
  const index_t panels = np / tile::kColumnQuantum;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t p = 0; p < panels; ++p) {
    T* out = zt + p * dp * tile::kColumnQuantum;
    for (index_t r = 0; r < tile::kColumnQuantum; ++r) {
      const index_t i = p * tile::kColumnQuantum + r;
      if (i < n) {
        const T* zi = z + i * dp;
        for (index_t k = 0; k < dp; ++k) out[k * tile::kColumnQuantum + r] = zi[k];
      } else {
        for (index_t k = 0; k < dp; ++k) out[k * tile::kColumnQuantum + r] = T(0);
      }
    }
  }
  return e;
}

/// Backward of the row normalisation for rows [r0, r0 + count) of `e`: h has row stride dp, dx row stride d:
///   dx_i += (h_i - z_i <z_i, h_i>) / ||x_i||   if ||x_i|| > eps,   dx_i += h_i / eps otherwise (PyTorch).
/// Without normalisation dx_i += h_i.
template <class T>
void emb_backward(int threads, const Emb<T>& e, const T* h, index_t r0, index_t count, T* dx) {
  const index_t d = e.d, dp = e.dp;
  const int nt = static_cast<int>(std::clamp<index_t>(count * d / 16384, 1, std::max(threads, 1)));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t r = 0; r < count; ++r) {
    const index_t i = r0 + r;
    const T* hi = h + i * dp;
    T* di = dx + r * d;
    if (!e.normalized) {
      for (index_t k = 0; k < d; ++k) di[k] += hi[k];
      continue;
    }
    const T* zi = e.row(i);
    const double nr = double(e.norm[i]);
    if (nr > kNormEps) {
      double dot = 0;
      for (index_t k = 0; k < d; ++k) dot += double(zi[k]) * double(hi[k]);
      const T inv = static_cast<T>(1.0 / nr), dt = static_cast<T>(dot);
      for (index_t k = 0; k < d; ++k) di[k] += (hi[k] - zi[k] * dt) * inv;
    } else {
      const T inv = static_cast<T>(1.0 / kNormEps);
      for (index_t k = 0; k < d; ++k) di[k] += hi[k] * inv;
    }
  }
}

/// out[i] = sum_t part[t][i] for `slots` partial arrays of length len (part 0 is `out` itself).
template <class T>
void reduce_partials(int threads, T* out, const T* parts /*slots-1 arrays after out*/, int slots, index_t len) {
  if (slots <= 1) return;
  const int nt = static_cast<int>(std::clamp<index_t>(len / 16384, 1, std::max(threads, 1)));
#pragma omp parallel for num_threads(nt) schedule(static)
  for (index_t i = 0; i < len; ++i) {
    T s = out[i];
    for (int t = 1; t < slots; ++t) s += parts[(t - 1) * len + i];
    out[i] = s;
  }
}


}  // namespace distill::cpu::fused
