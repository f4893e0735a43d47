// distill/cpu/conv1d_isa.inl -- the conv1d passes at one instruction-set level (no include guard on purpose).
//
// Included by cpu/conv1d.hpp once per level, with DISTILL_ISA_LEVEL (0 portable, 1 avx2, 2 avx512) and
// DISTILL_ISA_NS (the namespace of that level) defined and, for levels >= 1, inside the target region that lets
// the compiler emit that level's instructions. Code here tests DISTILL_ISA_LEVEL, never __AVX2__.

namespace distill::cpu::conv1d_detail::DISTILL_ISA_NS {

#if DISTILL_ISA_LEVEL >= 1
template <class AP, class BP>
inline void ukernel_simd(index_t kc, const AP& a, const BP& b, float* C, index_t ldc, index_t mr, index_t nr,
                         const float* init) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(),
         c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(),
         c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(),
         c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (index_t k = 0; k < kc; ++k) {
    const float* bk = b.row(k);
    const __m256 b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8);
    __m256 av = _mm256_broadcast_ss(a.addr(k, 0));
    c00 = _mm256_fmadd_ps(av, b0, c00);
    c01 = _mm256_fmadd_ps(av, b1, c01);
    av = _mm256_broadcast_ss(a.addr(k, 1));
    c10 = _mm256_fmadd_ps(av, b0, c10);
    c11 = _mm256_fmadd_ps(av, b1, c11);
    av = _mm256_broadcast_ss(a.addr(k, 2));
    c20 = _mm256_fmadd_ps(av, b0, c20);
    c21 = _mm256_fmadd_ps(av, b1, c21);
    av = _mm256_broadcast_ss(a.addr(k, 3));
    c30 = _mm256_fmadd_ps(av, b0, c30);
    c31 = _mm256_fmadd_ps(av, b1, c31);
    av = _mm256_broadcast_ss(a.addr(k, 4));
    c40 = _mm256_fmadd_ps(av, b0, c40);
    c41 = _mm256_fmadd_ps(av, b1, c41);
    av = _mm256_broadcast_ss(a.addr(k, 5));
    c50 = _mm256_fmadd_ps(av, b0, c50);
    c51 = _mm256_fmadd_ps(av, b1, c51);
  }
  if (mr == 6 && nr == 16) {
    auto put = [&](float* c, __m256 v0, __m256 v1, const float* in) {
      if (in) {
        const __m256 bi = _mm256_broadcast_ss(in);
        _mm256_storeu_ps(c, _mm256_add_ps(v0, bi));
        _mm256_storeu_ps(c + 8, _mm256_add_ps(v1, bi));
      } else {
        _mm256_storeu_ps(c, _mm256_add_ps(_mm256_loadu_ps(c), v0));
        _mm256_storeu_ps(c + 8, _mm256_add_ps(_mm256_loadu_ps(c + 8), v1));
      }
    };
    put(C, c00, c01, init);
    put(C + ldc, c10, c11, init ? init + 1 : nullptr);
    put(C + 2 * ldc, c20, c21, init ? init + 2 : nullptr);
    put(C + 3 * ldc, c30, c31, init ? init + 3 : nullptr);
    put(C + 4 * ldc, c40, c41, init ? init + 4 : nullptr);
    put(C + 5 * ldc, c50, c51, init ? init + 5 : nullptr);
  } else {
    alignas(32) float t[6 * 16];
    _mm256_store_ps(t + 0, c00);
    _mm256_store_ps(t + 8, c01);
    _mm256_store_ps(t + 16, c10);
    _mm256_store_ps(t + 24, c11);
    _mm256_store_ps(t + 32, c20);
    _mm256_store_ps(t + 40, c21);
    _mm256_store_ps(t + 48, c30);
    _mm256_store_ps(t + 56, c31);
    _mm256_store_ps(t + 64, c40);
    _mm256_store_ps(t + 72, c41);
    _mm256_store_ps(t + 80, c50);
    _mm256_store_ps(t + 88, c51);
    write_tile(t, index_t(16), C, ldc, mr, nr, init);
  }
}

template <class AP, class BP>
inline void ukernel_simd(index_t kc, const AP& a, const BP& b, double* C, index_t ldc, index_t mr, index_t nr,
                         const double* init) {
  __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd(), c10 = _mm256_setzero_pd(),
          c11 = _mm256_setzero_pd(), c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd(),
          c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd(), c40 = _mm256_setzero_pd(),
          c41 = _mm256_setzero_pd(), c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
  for (index_t k = 0; k < kc; ++k) {
    const double* bk = b.row(k);
    const __m256d b0 = _mm256_loadu_pd(bk), b1 = _mm256_loadu_pd(bk + 4);
    __m256d av = _mm256_broadcast_sd(a.addr(k, 0));
    c00 = _mm256_fmadd_pd(av, b0, c00);
    c01 = _mm256_fmadd_pd(av, b1, c01);
    av = _mm256_broadcast_sd(a.addr(k, 1));
    c10 = _mm256_fmadd_pd(av, b0, c10);
    c11 = _mm256_fmadd_pd(av, b1, c11);
    av = _mm256_broadcast_sd(a.addr(k, 2));
    c20 = _mm256_fmadd_pd(av, b0, c20);
    c21 = _mm256_fmadd_pd(av, b1, c21);
    av = _mm256_broadcast_sd(a.addr(k, 3));
    c30 = _mm256_fmadd_pd(av, b0, c30);
    c31 = _mm256_fmadd_pd(av, b1, c31);
    av = _mm256_broadcast_sd(a.addr(k, 4));
    c40 = _mm256_fmadd_pd(av, b0, c40);
    c41 = _mm256_fmadd_pd(av, b1, c41);
    av = _mm256_broadcast_sd(a.addr(k, 5));
    c50 = _mm256_fmadd_pd(av, b0, c50);
    c51 = _mm256_fmadd_pd(av, b1, c51);
  }
  alignas(32) double t[6 * 8];
  _mm256_store_pd(t + 0, c00);
  _mm256_store_pd(t + 4, c01);
  _mm256_store_pd(t + 8, c10);
  _mm256_store_pd(t + 12, c11);
  _mm256_store_pd(t + 16, c20);
  _mm256_store_pd(t + 20, c21);
  _mm256_store_pd(t + 24, c30);
  _mm256_store_pd(t + 28, c31);
  _mm256_store_pd(t + 32, c40);
  _mm256_store_pd(t + 36, c41);
  _mm256_store_pd(t + 40, c50);
  _mm256_store_pd(t + 44, c51);
  write_tile(t, index_t(8), C, ldc, mr, nr, init);
}
#endif

template <class T, class AP, class BP>
inline void ukernel(index_t kc, const AP& a, const BP& b, T* C, index_t ldc, index_t mr, index_t nr,
                    const T* init) {
#if DISTILL_ISA_LEVEL >= 1
  ukernel_simd(kc, a, b, C, ldc, mr, nr, init);
#else
  ukernel_generic(kc, a, b, C, ldc, mr, nr, init);
#endif
}

// Single-row variant for M == 1 (Cout = 1, or a first layer's grad-input with Cin = 1): C[0, j] (+)= sum_k
// A(k) * B(k, j) over up to 4 * NR columns, so no accumulator is spent on absent rows. A(k) = a[k * astride].
template <class T, class BP>
inline void ukernel_row(index_t kc, const T* a, index_t astride, const BP& b, T* C, index_t nr, const T* init) {
  constexpr index_t W = 4 * Blocking<T>::NR;
#if DISTILL_ISA_LEVEL >= 1
  if constexpr (std::is_same_v<T, float>) {
    __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps(),
           c4 = _mm256_setzero_ps(), c5 = _mm256_setzero_ps(), c6 = _mm256_setzero_ps(), c7 = _mm256_setzero_ps();
    for (index_t k = 0; k < kc; ++k) {
      const __m256 av = _mm256_broadcast_ss(a + k * astride);
      const float* bk = b.row(k);
      c0 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bk), c0);
      c1 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bk + 8), c1);
      c2 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bk + 16), c2);
      c3 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bk + 24), c3);
      c4 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bk + 32), c4);
      c5 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bk + 40), c5);
      c6 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bk + 48), c6);
      c7 = _mm256_fmadd_ps(av, _mm256_loadu_ps(bk + 56), c7);
    }
    alignas(32) float t[W];
    _mm256_store_ps(t, c0);
    _mm256_store_ps(t + 8, c1);
    _mm256_store_ps(t + 16, c2);
    _mm256_store_ps(t + 24, c3);
    _mm256_store_ps(t + 32, c4);
    _mm256_store_ps(t + 40, c5);
    _mm256_store_ps(t + 48, c6);
    _mm256_store_ps(t + 56, c7);
    write_tile(t, W, C, 0, 1, nr, init);
    return;
  }
#endif
  T acc[W] = {};
  for (index_t k = 0; k < kc; ++k) {
    const T av = a[k * astride];
    const T* bk = b.row(k);
    for (index_t j = 0; j < W; ++j) acc[j] += av * bk[j];
  }
  write_tile(acc, W, C, 0, 1, nr, init);
}

/// dst[t * NR + r] = src[r * lds + t] for r < rows (<= NR), t < n; columns r >= rows are zero. Packs NR rows of
/// dy, transposed, into one B panel of grad-weight.
template <class T>
void pack_transposed(T* dst, const T* src, index_t lds, index_t rows, index_t n) {
  constexpr index_t NR = Blocking<T>::NR;
  index_t t = 0;
#if DISTILL_ISA_LEVEL >= 1
  if constexpr (std::is_same_v<T, float>) {
    if (rows == NR) {
      for (; t + 8 <= n; t += 8) {
        for (index_t h = 0; h < NR; h += 8) {
          const float* s = src + h * lds + t;
          const __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds), r2 = _mm256_loadu_ps(s + 2 * lds),
                       r3 = _mm256_loadu_ps(s + 3 * lds), r4 = _mm256_loadu_ps(s + 4 * lds),
                       r5 = _mm256_loadu_ps(s + 5 * lds), r6 = _mm256_loadu_ps(s + 6 * lds),
                       r7 = _mm256_loadu_ps(s + 7 * lds);
          const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
                       t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
                       t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                       t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
          const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                       u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                       u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                       u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
          float* d = dst + t * NR + h;
          _mm256_store_ps(d + 0 * NR, _mm256_permute2f128_ps(u0, u4, 0x20));
          _mm256_store_ps(d + 1 * NR, _mm256_permute2f128_ps(u1, u5, 0x20));
          _mm256_store_ps(d + 2 * NR, _mm256_permute2f128_ps(u2, u6, 0x20));
          _mm256_store_ps(d + 3 * NR, _mm256_permute2f128_ps(u3, u7, 0x20));
          _mm256_store_ps(d + 4 * NR, _mm256_permute2f128_ps(u0, u4, 0x31));
          _mm256_store_ps(d + 5 * NR, _mm256_permute2f128_ps(u1, u5, 0x31));
          _mm256_store_ps(d + 6 * NR, _mm256_permute2f128_ps(u2, u6, 0x31));
          _mm256_store_ps(d + 7 * NR, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
      }
    }
  }
#endif
  for (; t < n; ++t) {
    for (index_t r = 0; r < rows; ++r) dst[t * NR + r] = src[r * lds + t];
    for (index_t r = rows; r < NR; ++r) dst[t * NR + r] = T(0);
  }
}

/// The shared driver of forward and grad-input: for every batch element b,
///   C_b[M x N] (+)= Apacked[M x Kd] * Bcol_b[Kd x N],  Bcol_b[k, j] = pad_b[off[k] + j]
/// where pad_b (pad_elems values, made by `make_pad(b, pad_b)`) has 4 * NR readable columns past N + max(off).
/// `init` (forward) gives the per-row value the first reduction block starts from; without it C accumulates.
template <class T, class MakePad>
void implicit_gemm(Exec ex, index_t Bn, index_t M, index_t N, index_t Kd, const T* apack, const index_t* off,
                   index_t pad_elems, MakePad make_pad, T* C, index_t c_batch_stride, const T* init,
                   double macs) {
  const int threads = ex.threads;
  constexpr index_t MR = Blocking<T>::MR, NR = Blocking<T>::NR, KC = Blocking<T>::KC;
  const index_t splits = column_splits(Bn, N, NR, threads);
  const index_t per = round_up((N + splits - 1) / splits, NR);
  const index_t items = Bn * splits;
  const int nt = static_cast<int>(std::min<index_t>(threads_for_work(macs, threads), items));
  const index_t per_thread = (items + nt - 1) / nt;
  Scratch<T> pads(ex, nt * pad_elems);  // allocated here: nothing may throw inside the parallel region
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int th = 0; th < nt; ++th) {
    T* pad = pads.get() + th * pad_elems;
    index_t padded = -1;  // batch element whose rows `pad` holds
    for (index_t it = th * per_thread; it < std::min(items, (th + 1) * per_thread); ++it) {
      const index_t b = it / splits, n0 = std::min(N, (it % splits) * per), n1 = std::min(N, n0 + per);
      if (n1 <= n0) continue;
      if (b != padded) make_pad(b, pad);
      padded = b;
      T* Cb = C + b * c_batch_stride;
      for (index_t k0 = 0; k0 < Kd; k0 += KC) {
        const index_t kc = std::min(KC, Kd - k0);
        const T* in = k0 == 0 ? init : nullptr;
        if (M == 1) {  // one output row: wide single-row tiles
          for (index_t j = n0; j < n1; j += 4 * NR)
            ukernel_row(kc, apack + k0 * MR, MR, OffsetB<T>{pad + j, off + k0}, Cb + j,
                        std::min(4 * NR, n1 - j), in);
          continue;
        }
        for (index_t j = n0; j < n1; j += NR) {
          const OffsetB<T> bp{pad + j, off + k0};
          const index_t nr = std::min(NR, n1 - j);
          for (index_t i = 0; i < M; i += MR)
            ukernel(kc, PackedA<T>{apack + (i / MR) * Kd * MR + k0 * MR}, bp, Cb + i * N + j, N,
                    std::min(MR, M - i), nr, in ? in + i : nullptr);
        }
      }
    }
  }
}



/// y = conv1d(x, w) + bias. `bias` may be null. y is overwritten.
template <class T>
void forward(Exec ex, const Conv1dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  constexpr index_t MR = Blocking<T>::MR, NR = Blocking<T>::NR;
  if (g.B == 0) return;
  const index_t M = g.Cout, N = g.Lout, Kd = g.patch();
  Scratch<T> apack(ex, round_up(M, MR) * Kd);
  prepack_a(apack.get(), M, Kd, [&](index_t i, index_t k) { return w[i * Kd + k]; });
  // xpad[c, q] = x[b, c, q - pad_left]; Xcol[(c, u), t] = xpad[c, t + u * dilation]. Width covers the reads of a
  // partial last tile (up to 4 * NR - 1 columns past Lout).
  const index_t width = N + g.dilation * (g.K - 1) + 4 * NR;
  std::vector<index_t> off(static_cast<std::size_t>(Kd));
  for (index_t k = 0; k < Kd; ++k) off[k] = (k / g.K) * width + (k % g.K) * g.dilation;
  std::vector<T> init(static_cast<std::size_t>(round_up(M, MR)), T(0));
  if (bias) std::copy(bias, bias + M, init.begin());
  implicit_gemm<T>(
      ex, g.B, M, N, Kd, apack.get(), off.data(), g.Cin * width,
      [&](index_t b, T* pad) { pad_rows(pad, width, x + b * g.Cin * g.L, g.Cin, g.L, g.pad_left); }, y, M * N,
      init.data(), g.macs());
}

/// dx += the gradient of conv1d_forward with respect to x, given dy.
template <class T>
void backward_input(Exec ex, const Conv1dGeometry& g, const T* dy, const T* w, T* dx) {
  constexpr index_t MR = Blocking<T>::MR, NR = Blocking<T>::NR;
  if (g.B == 0) return;
  const index_t M = g.Cin, N = g.L, Kd = g.Cout * g.K, K = g.K, CinK = g.Cin * g.K;
  Scratch<T> apack(ex, round_up(M, MR) * Kd);
  // A[c, (o, u)] = w[o, c, u]
  prepack_a(apack.get(), M, Kd, [&](index_t i, index_t k) { return w[(k / K) * CinK + i * K + k % K]; });
  // dx[b, c, s] += sum_{o, u} w[o, c, u] * dy[b, o, s + pad_left - u * dilation]
  //             = sum_{o, u} w[o, c, u] * dypad[o, s + (K - 1 - u) * dilation],  dypad[o, q] = dy[b, o, q - lead]
  const index_t span = g.dilation * (K - 1), lead = span - g.pad_left;
  const index_t width = N + span + 4 * NR;
  std::vector<index_t> off(static_cast<std::size_t>(Kd));
  for (index_t k = 0; k < Kd; ++k) off[k] = (k / K) * width + (K - 1 - k % K) * g.dilation;
  implicit_gemm<T>(
      ex, g.B, M, N, Kd, apack.get(), off.data(), g.Cout * width,
      [&](index_t b, T* pad) { pad_rows(pad, width, dy + b * g.Cout * g.Lout, g.Cout, g.Lout, lead); }, dx, M * N,
      static_cast<const T*>(nullptr), g.macs());
}

/// dw += the gradient of conv1d_forward with respect to w (skipped when dw is null); db += the sum over (b, t) of
/// dy when db is not null.
template <class T>
void backward_weight(Exec ex, const Conv1dGeometry& g, const T* x, const T* dy, T* dw, T* db) {
  const int threads = ex.threads;
  constexpr index_t MR = Blocking<T>::MR, NR = Blocking<T>::NR, KC = Blocking<T>::KCW;
  if (g.B == 0) return;
  const index_t Cout = g.Cout, Lout = g.Lout, K = g.K, M = g.patch(), N = Cout;
  const int nt0 = threads_for_work(g.macs(), threads);

  // dy transposed into B panels, dyP[p][b * Lout + t][r] = dy[b, p * NR + r, t] (zero for p * NR + r >= Cout),
  // and the per-batch-element bias sums (added in batch order below); both parallel over b.
  const index_t npanels = (N + NR - 1) / NR, BL = g.B * Lout;
  Scratch<T> dyP(ex, dw ? npanels * BL * NR : 0);
  std::vector<double> bsum(static_cast<std::size_t>(db ? g.B * Cout : 0));
#pragma omp parallel for num_threads(static_cast<int>(std::min<index_t>(nt0, g.B))) schedule(static)
  for (index_t b = 0; b < g.B; ++b) {
    const T* src = dy + b * Cout * Lout;
    if (dw)
      for (index_t p = 0; p < npanels; ++p)
        pack_transposed(dyP.get() + (p * BL + b * Lout) * NR, src + p * NR * Lout, Lout,
                        std::min(NR, Cout - p * NR), Lout);
    if (db) {
      for (index_t o = 0; o < Cout; ++o) {
        const T* r = src + o * Lout;
        T lanes[8] = {};
        index_t t = 0;
        for (; t + 8 <= Lout; t += 8)
          for (int q = 0; q < 8; ++q) lanes[q] += r[t + q];
        for (; t < Lout; ++t) lanes[0] += r[t];
        double sum = 0;
        for (int q = 0; q < 8; ++q) sum += double(lanes[q]);
        bsum[b * Cout + o] = sum;
      }
    }
  }
  if (db) {
    for (index_t o = 0; o < Cout; ++o) {
      double sum = 0;
      for (index_t b = 0; b < g.B; ++b) sum += bsum[b * Cout + o];
      db[o] += static_cast<T>(sum);
    }
  }
  if (!dw) return;

  // dwT[(c, u), o] = sum_{b, t} xpad_b[c, t + u * dilation] * dy[b, o, t]; one block of rows (or of
  // columns, when there are too few rows) per thread.
  Scratch<T> dwT(ex, round_up(M, MR) * N, true);
  const index_t mpanels = (M + MR - 1) / MR;
  const bool split_rows = mpanels >= 2 * nt0 || mpanels >= npanels;
  const index_t nblocks = split_rows ? mpanels : npanels;
  const int nt = static_cast<int>(std::min<index_t>(nt0, nblocks));
  const index_t per = (nblocks + nt - 1) / nt;
  const index_t width = Lout + g.dilation * (K - 1);  // xpad[c, q] = x[b, c, q - pad_left]
  Scratch<T> xpads(ex, nt * g.Cin * width);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int th = 0; th < nt; ++th) {
    const index_t blk0 = std::min(nblocks, th * per), blk1 = std::min(nblocks, blk0 + per);
    if (blk1 <= blk0) continue;
    T* xpad = xpads.get() + th * g.Cin * width;
    const index_t m0 = split_rows ? blk0 * MR : 0, m1 = split_rows ? std::min(M, blk1 * MR) : M;
    const index_t n0 = split_rows ? 0 : blk0 * NR, n1 = split_rows ? N : std::min(N, blk1 * NR);
    for (index_t b = 0; b < g.B; ++b) {
      pad_rows(xpad, width, x + b * g.Cin * g.L, g.Cin, g.L, g.pad_left);
      for (index_t t0 = 0; t0 < Lout; t0 += KC) {
        const index_t kc = std::min(KC, Lout - t0);
        for (index_t j = n0; j < n1; j += NR) {
          const StridedB<T> bp{dyP.get() + ((j / NR) * BL + b * Lout + t0) * NR, NR};
          for (index_t i = m0; i < m1; i += MR) {
            RowsA<T> ap;
            for (index_t r = 0; r < MR; ++r) {
              const index_t m = std::min(i + r, M - 1);
              ap.r[r] = xpad + (m / K) * width + (m % K) * g.dilation + t0;
            }
            ukernel(kc, ap, bp, dwT.get() + i * N + j, N, std::min(MR, m1 - i), std::min(NR, n1 - j),
                    static_cast<const T*>(nullptr));
          }
        }
      }
    }
  }
  // dw[o, m] += dwT[m, o]
  for (index_t o = 0; o < Cout; ++o)
    for (index_t m = 0; m < M; ++m) dw[o * M + m] += dwT.get()[m * N + o];
}

}  // namespace distill::cpu::conv1d_detail::DISTILL_ISA_NS
