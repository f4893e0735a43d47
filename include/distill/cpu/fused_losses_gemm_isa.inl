// distill/cpu/fused_losses_gemm_isa.inl -- the tile product of cpu/fused_losses_gemm.hpp at one instruction-set level.
//
// Included by cpu/fused_losses_gemm.hpp once per level (no include guard on purpose), with DISTILL_ISA_LEVEL and
// DISTILL_ISA_NS defined and, for levels >= 1, inside that level's target region (core/isa.hpp).

namespace distill::cpu::tile::DISTILL_ISA_NS {

#if DISTILL_ISA_LEVEL >= 1
template <class T>
struct Simd;
template <>
struct Simd<float> {
  using V = __m256;
  static constexpr int lanes = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float a) { return _mm256_set1_ps(a); }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
};
template <>
struct Simd<double> {
  using V = __m256d;
  static constexpr int lanes = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V set1(double a) { return _mm256_set1_pd(a); }
  static V bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
};

/// MR x (2 * lanes) block: C[r][0..2L) (=|+=) alpha * sum_k a(r,k) b(k, 0..2L). The accumulators are named
/// variables (arrays of vectors get spilled to the stack by GCC), rows beyond MR are compiled out.
template <class T, int MR>
inline void micro(index_t K, const T* A, index_t a_r, index_t a_k, const T* B, index_t ldb, T* C, index_t ldc,
                  T alpha, bool accumulate) {
  static_assert(MR >= 1 && MR <= 6, "tile::micro: 1 to 6 rows per micro-tile.");
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int L = S::lanes;
  V c00 = S::zero(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00, c40 = c00,
    c41 = c00, c50 = c00, c51 = c00;
  const T* p0 = A;
  const T* p1 = A + (MR > 1 ? a_r : 0);
  const T* p2 = A + (MR > 2 ? 2 * a_r : 0);
  const T* p3 = A + (MR > 3 ? 3 * a_r : 0);
  const T* p4 = A + (MR > 4 ? 4 * a_r : 0);
  const T* p5 = A + (MR > 5 ? 5 * a_r : 0);
  const T* b = B;
  for (index_t k = 0; k < K; ++k, b += ldb) {
    const V b0 = S::load(b), b1 = S::load(b + L);
    const index_t o = k * a_k;
#define DISTILL_TILE_ROW(R, P, C0, C1)        \
  if constexpr (MR > R) {                     \
    const V a = S::bcast(P + o);              \
    C0 = S::fma(a, b0, C0);                   \
    C1 = S::fma(a, b1, C1);                   \
  }
    DISTILL_TILE_ROW(0, p0, c00, c01)
    DISTILL_TILE_ROW(1, p1, c10, c11)
    DISTILL_TILE_ROW(2, p2, c20, c21)
    DISTILL_TILE_ROW(3, p3, c30, c31)
    DISTILL_TILE_ROW(4, p4, c40, c41)
    DISTILL_TILE_ROW(5, p5, c50, c51)
#undef DISTILL_TILE_ROW
  }
  const V al = S::set1(alpha);
  auto put = [&](int r, V v0, V v1) {
    T* c = C + r * ldc;
    if (accumulate) {
      S::store(c, S::fma(al, v0, S::load(c)));
      S::store(c + L, S::fma(al, v1, S::load(c + L)));
    } else {
      S::store(c, S::mul(al, v0));
      S::store(c + L, S::mul(al, v1));
    }
  };
  put(0, c00, c01);
  if constexpr (MR > 1) put(1, c10, c11);
  if constexpr (MR > 2) put(2, c20, c21);
  if constexpr (MR > 3) put(3, c30, c31);
  if constexpr (MR > 4) put(4, c40, c41);
  if constexpr (MR > 5) put(5, c50, c51);
}
template <class T>
inline constexpr index_t kNR = 2 * Simd<T>::lanes;
#else
template <class T, int MR>
inline void micro(index_t K, const T* A, index_t a_r, index_t a_k, const T* B, index_t ldb, T* C, index_t ldc,
                  T alpha, bool accumulate) {
  constexpr int NR = 16;
  T acc[MR][NR] = {};
  for (index_t k = 0; k < K; ++k) {
    const T* bk = B + k * ldb;
    const T* ak = A + k * a_k;
    for (int r = 0; r < MR; ++r) {
      const T a = ak[r * a_r];
      for (int c = 0; c < NR; ++c) acc[r][c] += a * bk[c];
    }
  }
  for (int r = 0; r < MR; ++r) {
    T* c = C + r * ldc;
    for (int j = 0; j < NR; ++j) c[j] = accumulate ? c[j] + alpha * acc[r][j] : alpha * acc[r][j];
  }
}
template <class T>
inline constexpr index_t kNR = 16;
#endif

template <class T>
inline void micro_rows(int rows, index_t K, const T* A, index_t a_r, index_t a_k, const T* B, index_t ldb, T* C,
                       index_t ldc, T alpha, bool accumulate) {
  switch (rows) {
    case 6: micro<T, 6>(K, A, a_r, a_k, B, ldb, C, ldc, alpha, accumulate); break;
    case 5: micro<T, 5>(K, A, a_r, a_k, B, ldb, C, ldc, alpha, accumulate); break;
    case 4: micro<T, 4>(K, A, a_r, a_k, B, ldb, C, ldc, alpha, accumulate); break;
    case 3: micro<T, 3>(K, A, a_r, a_k, B, ldb, C, ldc, alpha, accumulate); break;
    case 2: micro<T, 2>(K, A, a_r, a_k, B, ldb, C, ldc, alpha, accumulate); break;
    default: micro<T, 1>(K, A, a_r, a_k, B, ldb, C, ldc, alpha, accumulate); break;
  }
}


/// C[m x n] (=|+=) alpha * sum_{k < K} a(r, k) b(k, c); see the file comment for the operand layouts.
/// n % 16 == 0. With K == 0 the product is zero (C is set to 0, or left alone when accumulating).
template <class T>
void mm(index_t m, index_t n, index_t K, const T* A, index_t a_r, index_t a_k, const T* B, index_t ldb,
        index_t panel_w, index_t panel_stride, T* C, index_t ldc, T alpha, bool accumulate) {
  constexpr index_t NR = kNR<T>;
  static_assert(kColumnQuantum % NR == 0, "tile::mm: the column quantum must be a multiple of the register width.");
  for (index_t c0 = 0; c0 < n; c0 += NR) {
    const T* Bc = B + (c0 / panel_w) * panel_stride + (c0 % panel_w);
    for (index_t r0 = 0; r0 < m; r0 += kMR) {
      const int rows = static_cast<int>(std::min<index_t>(kMR, m - r0));
      micro_rows<T>(rows, K, A + r0 * a_r, a_r, a_k, Bc, ldb, C + r0 * ldc + c0, ldc, alpha, accumulate);
    }
  }
}

}  // namespace distill::cpu::tile::DISTILL_ISA_NS
