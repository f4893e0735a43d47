// distill/cpu/fused_losses_simd_isa.inl -- the float exponential rows of cpu/fused_losses_simd.hpp at one SIMD level.
//
// Included by cpu/fused_losses_simd.hpp for the avx2 and avx512 levels (no include guard on purpose), inside that
// level's target region (core/isa.hpp), with DISTILL_ISA_NS naming the level's namespace.

namespace distill::cpu::simd::DISTILL_ISA_NS {

inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.3f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

/// dst[j] = exp(src[j] - shift), j < n (dst may equal src).
inline void exp_shift(float* dst, const float* src, index_t n, float shift) {
  const __m256 sh = _mm256_set1_ps(shift);
  index_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(dst + j, exp8(_mm256_sub_ps(_mm256_loadu_ps(src + j), sh)));
  if (j < n) {
    alignas(32) float tmp[8] = {};
    for (index_t k = j; k < n; ++k) tmp[k - j] = src[k];
    _mm256_store_ps(tmp, exp8(_mm256_sub_ps(_mm256_load_ps(tmp), sh)));
    for (index_t k = j; k < n; ++k) dst[k] = tmp[k - j];
  }
}

/// Fixed-shift forward row of an off-diagonal tile: s[j] <- e_j = exp(s[j] - shift), col[j] += e_j, and the
/// row sum of e (16 lanes by j mod 16, fixed tree; the tail enters through a zero-padded vector).
inline double exp_row_colsum(float* s, index_t n, float shift, float* col) {
  const __m256 sh = _mm256_set1_ps(shift);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  index_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), sh));
    const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), sh));
    _mm256_storeu_ps(s + j, e0);
    _mm256_storeu_ps(s + j + 8, e1);
    _mm256_storeu_ps(col + j, _mm256_add_ps(_mm256_loadu_ps(col + j), e0));
    _mm256_storeu_ps(col + j + 8, _mm256_add_ps(_mm256_loadu_ps(col + j + 8), e1));
    a0 = _mm256_add_ps(a0, e0);
    a1 = _mm256_add_ps(a1, e1);
  }
  for (; j < n; j += 8) {
    alignas(32) float tmp[8];
    const index_t len = n - j < 8 ? n - j : 8;
    for (index_t k = 0; k < 8; ++k) tmp[k] = k < len ? s[j + k] : 0.0f;
    __m256 e = exp8(_mm256_sub_ps(_mm256_load_ps(tmp), sh));
    const __m256 keep = _mm256_cmp_ps(_mm256_set_ps(7, 6, 5, 4, 3, 2, 1, 0), _mm256_set1_ps(float(len)), _CMP_LT_OQ);
    e = _mm256_and_ps(e, keep);
    _mm256_store_ps(tmp, e);
    for (index_t k = 0; k < len; ++k) {
      s[j + k] = tmp[k];
      col[j + k] += tmp[k];
    }
    a0 = _mm256_add_ps(a0, e);
  }
  alignas(32) float l[16];
  _mm256_store_ps(l, a0);
  _mm256_store_ps(l + 8, a1);
  for (int w = 8; w >= 1; w /= 2)
    for (int k = 0; k < w; ++k) l[k] += l[k + w];
  return double(l[0]);
}

/// Fixed-shift backward row: s[j] <- exp(s[j] - shift) * (cj[j] + ci).
inline void exp_scale_row(float* s, index_t n, float shift, const float* cj, float ci) {
  const __m256 sh = _mm256_set1_ps(shift), c = _mm256_set1_ps(ci);
  index_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(s + j, _mm256_mul_ps(exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), sh)),
                                          _mm256_add_ps(_mm256_loadu_ps(cj + j), c)));
  for (; j < n; ++j) {
    alignas(32) float tmp[8] = {s[j]};
    _mm256_store_ps(tmp, exp8(_mm256_sub_ps(_mm256_load_ps(tmp), sh)));
    s[j] = tmp[0] * (cj[j] + ci);
  }
}

/// Largest of x[0..n) (n >= 1).
inline float row_max(const float* x, index_t n) {
  index_t j = 0;
  float m = x[0];
  if (n >= 8) {
    __m256 v = _mm256_loadu_ps(x);
    for (j = 8; j + 8 <= n; j += 8) v = _mm256_max_ps(v, _mm256_loadu_ps(x + j));
    alignas(32) float l[8];
    _mm256_store_ps(l, v);
    for (int k = 0; k < 8; ++k) m = l[k] > m ? l[k] : m;
  }
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

/// Folds two 8-lane accumulators (lanes 0-7, 8-15) with the fixed tree of detail::lane_sum.
inline float fold16(__m256 a0, __m256 a1) {
  alignas(32) float l[16];
  _mm256_store_ps(l, a0);
  _mm256_store_ps(l + 8, a1);
  for (int w = 8; w >= 1; w /= 2)
    for (int k = 0; k < w; ++k) l[k] += l[k + w];
  return l[0];
}

/// One row of cpu::fused::kd_kl_rows (see there for the formulas): e[j] = exp((x[j] - max x) * inv_temp) into
/// e, returns (sum e, sum e * (y - x)) over the row in 16 lanes by j mod 16 + fixed tree + tail, as lane_sum.
inline void exp_scaled_row(const float* x, index_t n, float mx, float inv_temp, float* e, const float* y,
                           const float* z, double* sum_e, double* sum_ezy) {
  const __m256 m = _mm256_set1_ps(mx), it = _mm256_set1_ps(inv_temp);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, c0 = a0, c1 = a0;
  const index_t full = n - n % 16;
  for (index_t j = 0; j < full; j += 16) {
    const __m256 e0 = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), m), it));
    const __m256 e1 = exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), m), it));
    _mm256_storeu_ps(e + j, e0);
    _mm256_storeu_ps(e + j + 8, e1);
    a0 = _mm256_add_ps(a0, e0);
    a1 = _mm256_add_ps(a1, e1);
    if (y) {
      c0 = _mm256_fmadd_ps(e0, _mm256_sub_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(z + j)), c0);
      c1 = _mm256_fmadd_ps(e1, _mm256_sub_ps(_mm256_loadu_ps(y + j + 8), _mm256_loadu_ps(z + j + 8)), c1);
    }
  }
  float ta = 0.0f, tc = 0.0f;
  for (index_t j = full; j < n; j += 8) {
    alignas(32) float tmp[8] = {};
    const index_t len = n - j < 8 ? n - j : 8;
    for (index_t k = 0; k < len; ++k) tmp[k] = x[j + k];
    _mm256_store_ps(tmp, exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_load_ps(tmp), m), it)));
    for (index_t k = 0; k < len; ++k) {
      e[j + k] = tmp[k];
      ta += tmp[k];
      if (y) tc += tmp[k] * (y[j + k] - z[j + k]);
    }
  }
  *sum_e = double(fold16(a0, a1)) + double(ta);
  if (y) *sum_ezy = double(fold16(c0, c1)) + double(tc);
}

/// out[j] = a * (p[j] * u - q[j] * v)            (q may be null: out[j] = a * p[j] * u)
inline void scaled_diff(float* out, index_t n, float a, const float* p, float u, const float* q, float v) {
  const __m256 au = _mm256_set1_ps(a * u), av = _mm256_set1_ps(a * v);
  index_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 t = _mm256_mul_ps(_mm256_loadu_ps(p + j), au);
    _mm256_storeu_ps(out + j, q ? _mm256_fnmadd_ps(_mm256_loadu_ps(q + j), av, t) : t);
  }
  for (; j < n; ++j) out[j] = q ? p[j] * (a * u) - q[j] * (a * v) : p[j] * (a * u);
}

/// out[j] = c * p[j] * ((y[j] - x[j]) * inv_temp - d)
inline void kd_teacher_grad(float* out, index_t n, float c, const float* p, const float* y, const float* x,
                            float inv_temp, float d) {
  const __m256 cv = _mm256_set1_ps(c), it = _mm256_set1_ps(inv_temp), dv = _mm256_set1_ps(d);
  index_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 g = _mm256_fmsub_ps(_mm256_sub_ps(_mm256_loadu_ps(y + j), _mm256_loadu_ps(x + j)), it, dv);
    _mm256_storeu_ps(out + j, _mm256_mul_ps(_mm256_mul_ps(cv, _mm256_loadu_ps(p + j)), g));
  }
  for (; j < n; ++j) out[j] = c * p[j] * ((y[j] - x[j]) * inv_temp - d);
}

/// One KD-KL row: returns kl_i; ds / dt rows written when non-null. ex, ey: scratch rows (ex may be ds).
inline double kd_kl_row(const float* s, const float* t, index_t K, float inv_temp, float* ex, float* ey, float* ds,
                        float* dt, float coef) {
  const float ms = row_max(s, K), mt = row_max(t, K);
  double sy = 0, cr = 0, sx = 0;
  exp_scaled_row(t, K, mt, inv_temp, ey, t, s, &sy, &cr);
  cr = cr * double(inv_temp) / sy;
  exp_scaled_row(s, K, ms, inv_temp, ex, nullptr, nullptr, &sx, nullptr);
  const double lx = double(ms) * double(inv_temp) + std::log(sx);
  const double ly = double(mt) * double(inv_temp) + std::log(sy);
  const double k = cr - ly + lx;
  if (dt) kd_teacher_grad(dt, K, coef * float(1.0 / sy), ey, t, s, inv_temp, float(ly - lx + k));
  if (ds) scaled_diff(ds, K, coef, ex, float(1.0 / sx), ey, float(1.0 / sy));
  return k;
}

}  // namespace distill::cpu::simd::DISTILL_ISA_NS
