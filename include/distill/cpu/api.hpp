// distill/cpu/api.hpp -- the CPU backend's entry points: what ops/, losses/ and optim/ call, declared without their
// bodies, with the types they take. The bodies are in the kernel headers named below (cpu/conv1d.hpp, ...), which
// include this file; this file includes neither Eigen nor the intrinsics headers.
//
// Header-only (the default), the ops include the kernel headers too and the kernels are instantiated where they
// are used. In compiled mode (DISTILL_COMPILED, set by linking distill::compiled) the ops include only this file:
// the float and double instantiations listed at the end come from the library (src/compiled/), declared extern
// template here (core/instances.hpp), and a user's translation unit parses no kernel body, no Eigen and no
// intrinsics. A new entry point: declare it here, define it in its kernel header, add it to its family's list.
#pragma once

#include <type_traits>

#include "distill/core/instances.hpp"
#include "distill/core/isa.hpp"
#include "distill/core/shape.hpp"
#include "distill/core/tensor.hpp"
#include "distill/cpu/exec.hpp"
#include "distill/problems/conv1d.hpp"
#include "distill/problems/kernels.hpp"
#include "distill/problems/similarity.hpp"

namespace distill::cpu {

using ::distill::AdamConfig;  // problems/kernels.hpp: the descriptors the Cuda backend takes too
using ::distill::SgdConfig;
using ::distill::Trans;

// --- conv1d (cpu/conv1d.hpp): implicit-GEMM passes, one per direction ------------------------------------------
/// y = conv1d(x, w) (+ bias); x [B, Cin, L], w [Cout, Cin, K], y [B, Cout, Lout] (g says how).
template <class T>
void conv1d_forward(Exec ex, const Conv1dGeometry& g, const T* x, const T* w, const T* bias, T* y);
/// dx = conv1d_transpose(dy, w) (dx is overwritten).
template <class T>
void conv1d_backward_input(Exec ex, const Conv1dGeometry& g, const T* dy, const T* w, T* dx);
/// dw += correlation of x and dy, db += sums of dy (db may be null).
template <class T>
void conv1d_backward_weight(Exec ex, const Conv1dGeometry& g, const T* x, const T* dy, T* dw, T* db);

// --- GEMM (cpu/gemm.hpp) ---------------------------------------------------------------------------------------
/// Row-major C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C, parallel over column panels of C.
template <class T>
void gemm(int threads, Trans ta, Trans tb, index_t M, index_t N, index_t K, T alpha, const T* A, const T* B,
          T beta, T* C);

// --- loss rows (cpu/cross_entropy.hpp) -------------------------------------------------------------------------------
/// Sum of v[0..n) in double, in index order.
template <class T>
double ordered_sum(const T* v, index_t n);
template <class T>
void soft_xent_rows(int threads, const T* x, const T* p, const T* lse, T* loss, index_t B, index_t K);
template <class T>
void hard_xent_backward(int threads, const T* x, const T* lse, const int* labels, T s, T* dx, index_t B,
                        index_t K);
template <class T>
void soft_xent_backward(int threads, const T* x, const T* p, const T* lse, T s, T* dx, T* dp, index_t B,
                        index_t K);
template <class T>
double squared_error_sum(int threads, const T* a, const T* b, index_t n);
template <class T>
void squared_error_backward(int threads, const T* a, const T* b, T k, T* da, T* db, index_t n);

// --- BatchNorm and L2 normalisation (cpu/batchnorm.hpp, cpu/normalize.hpp) -------------------------------------------------
template <class T>
void batch_norm_stats(int threads, const T* x, index_t B, index_t C, index_t L, double* mean, double* var);
template <class T>
void channel_affine(int threads, const T* x, T* y, index_t B, index_t C, index_t L, const T* shift, const T* scale,
                    const T* bias);
template <class T>
void batch_norm_grad_sums(int threads, const T* x, const T* dy, index_t B, index_t C, index_t L, const T* mean,
                          double* sum_dy, double* sum_dy_xmu);
template <class T>
void batch_norm_input_grad(int threads, const T* x, const T* dy, T* dx, index_t B, index_t C, index_t L,
                           const T* mean, const T* k_dy, const T* k_x, const T* k_0);
template <class T>
void l2_normalize_rows(int threads, const T* x, T* y, T* norms, index_t B, index_t D, double eps);
template <class T>
void l2_normalize_rows_backward(int threads, const T* y, const T* norms, const T* dy, T* dx, index_t B, index_t D,
                                double eps);

// --- optimizer updates (cpu/optim.hpp) -------------------------------------------------------------------------
template <class T>
void sgd_update(T* __restrict p, const T* __restrict g, T* __restrict buf, index_t n, const SgdConfig& h,
                int threads);
template <class T>
void adam_update(T* __restrict p, const T* __restrict g, T* __restrict m, T* __restrict v, T* __restrict vmax,
                 index_t n, const AdamConfig& h, int threads);
template <class T>
void ema_update(T* __restrict target, const T* __restrict source, index_t n, double momentum, int threads);

// --- pooling and softmax (cpu/pool.hpp, cpu/softmax.hpp) -------------------------------------------------------
template <class T>
void mean_rows(int threads, const T* x, T* y, index_t rows, index_t L);
template <class T>
void mean_rows_backward(int threads, const T* dy, T* dx, index_t rows, index_t L);
template <class T>
void logsumexp_rows(int threads, const T* x, T* lse, index_t B, index_t K);
template <class T>
void softmax_rows(int threads, const T* x, T* y, index_t B, index_t K);
template <class T>
void log_softmax_rows(int threads, const T* x, T* y, index_t B, index_t K);
template <class T>
void softmax_rows_backward(int threads, const T* y, const T* dy, T* dx, index_t B, index_t K);
template <class T>
void log_softmax_rows_backward(int threads, const T* y, const T* dy, T* dx, index_t B, index_t K);

}  // namespace distill::cpu

// --- tile products of the fused losses (cpu/fused_losses_gemm.hpp) ---------------------------------------------------
namespace distill::cpu::tile {

/// Column granularity of every tile product (all padded widths are multiples of it).
inline constexpr index_t kColumnQuantum = 16;
/// Rows of C held in registers by the micro-kernel.
inline constexpr int kMR = 6;

inline constexpr index_t round_up(index_t n, index_t q) { return (n + q - 1) / q * q; }

template <class T>
void mm(Isa isa, index_t m, index_t n, index_t K, const T* A, index_t a_r, index_t a_k, const T* B, index_t ldb,
        index_t panel_w, index_t panel_stride, T* C, index_t ldc, T alpha, bool accumulate);
template <class T>
void mm_nn(Isa isa, index_t m, index_t n, index_t K, const T* A, index_t lda, const T* B, index_t ldb, T* C,
           index_t ldc, T alpha, bool accumulate);
template <class T>
void mm_tn(Isa isa, index_t m, index_t n, index_t K, const T* A, index_t lda, const T* B, index_t ldb, T* C,
           index_t ldc, T alpha, bool accumulate);
template <class T>
void mm_packed(Isa isa, index_t m, index_t n, index_t K, const T* A, index_t lda, const T* Ppacked, T* C,
               index_t ldc, T alpha, bool accumulate);

}  // namespace distill::cpu::tile

// --- fused contrastive and distillation losses (cpu/fused_losses.hpp; the maths in docs/losses.md) -------------------
namespace distill::cpu::fused {

using cpu::Exec;

using problems::fixed_shift_ok;     // problems/similarity.hpp: shared with the Cuda side
using problems::fixed_shift_range;
using problems::kNormEps;
/// Default tile edge (rows and columns of one similarity tile); a multiple of 16 and of the micro-kernel's 6.
inline constexpr index_t kTile = 96;

/// Rows of an embedding set: row i at z + i * dp (columns d..dp zero), its packed transpose (panel p holds rows
/// 16p..16p+15 as [dp x 16], rows beyond n zero) and, when normalised, the input norms.
template <class T>
struct Emb {
  index_t n = 0, d = 0, dp = 0;
  bool normalized = false;
  Tensor<T, 1> z, zt, norm;
  const T* row(index_t i) const { return z.data() + i * dp; }
  const T* panel(index_t j0) const { return zt.data() + (j0 / tile::kColumnQuantum) * dp * tile::kColumnQuantum; }
};

/// One source block of rows for make_emb (rows are stacked in the order given).
template <class T>
struct RowSource {
  const T* p = nullptr;
  index_t n = 0;
};
/// "Exclude i == j" (the self-pairs of a two-view batch) or not.
enum class Mask { none, diagonal };

template <class T>
Emb<T> make_emb(Exec ex, RowSource<T> a, RowSource<T> b, index_t d, bool normalize);
template <class T>
void emb_backward(int threads, const Emb<T>& e, const T* h, index_t r0, index_t count, T* dx);
template <class T>
void self_lse(Exec ex, const Emb<T>& Z, T scale, bool fixed, T shift, double* lse, index_t bt = kTile);
template <class T>
void self_backward(Exec ex, const Emb<T>& Z, T scale, bool fixed, T shift, const double* lse, const double* a,
                   T* dz, index_t bt = kTile);
template <class T>
void cross_lse(Exec ex, const Emb<T>& A, const Emb<T>& B, T scale, bool fixed, T shift, Mask mask,
               double* row_lse, double* col_lse, index_t bt = kTile);
template <class T>
void cross_backward(Exec ex, const Emb<T>& A, const Emb<T>& B, T scale, bool fixed, T shift, Mask mask,
                    const double* row_lse, const double* a, const double* col_lse, const double* b, T* dA, T* dB,
                    index_t bt = kTile);
template <class T>
void softkl_forward(Exec ex, const Emb<T>& A, const Emb<T>& B, const Emb<T>& C, const Emb<T>& E, T scale,
                    bool fixed, Mask mask, double* lse_x, double* lse_y, double* cross, index_t bt = kTile);
template <class T>
void softkl_backward(Exec ex, const Emb<T>& A, const Emb<T>& B, const Emb<T>& C, const Emb<T>& E, T scale,
                     Mask mask, const double* lse_x, const double* lse_y, const double* a, T* dA, T* dB,
                     index_t bt = kTile);
template <class T>
void kd_kl_rows(Exec exe, index_t B, index_t K, const T* s, const T* t, T inv_temp, double* kl, T* ds, T* dt,
                T coef);
template <class T>
void normalized_mse_rows(int threads, index_t n, index_t d, const T* a, const T* b, double* rows, T* da, T* db,
                         T coef);

}  // namespace distill::cpu::fused

// ---------------------------------------------------------------------------------------------------------------
// The float and double instantiations that compiled mode builds once (src/compiled/), one list per family.
// ---------------------------------------------------------------------------------------------------------------
namespace distill::cpu {
#define DISTILL_CPU_CONV1D_INSTANCES(PREFIX, T) \
  PREFIX void conv1d_forward<T>(Exec, const Conv1dGeometry&, const T*, const T*, const T*, T*); \
  PREFIX void conv1d_backward_input<T>(Exec, const Conv1dGeometry&, const T*, const T*, T*); \
  PREFIX void conv1d_backward_weight<T>(Exec, const Conv1dGeometry&, const T*, const T*, T*, T*);
#define DISTILL_CPU_GEMM_INSTANCES(PREFIX, T) \
  PREFIX void gemm<T>(int, Trans, Trans, index_t, index_t, index_t, T, const T*, const T*, T, T*);
#define DISTILL_CPU_LOSS_INSTANCES(PREFIX, T) \
  PREFIX double ordered_sum<T>(const T*, index_t); \
  PREFIX void soft_xent_rows<T>(int, const T*, const T*, const T*, T*, index_t, index_t); \
  PREFIX void hard_xent_backward<T>(int, const T*, const T*, const int*, T, T*, index_t, index_t); \
  PREFIX void soft_xent_backward<T>(int, const T*, const T*, const T*, T, T*, T*, index_t, index_t); \
  PREFIX double squared_error_sum<T>(int, const T*, const T*, index_t); \
  PREFIX void squared_error_backward<T>(int, const T*, const T*, T, T*, T*, index_t);
#define DISTILL_CPU_NORM_INSTANCES(PREFIX, T) \
  PREFIX void batch_norm_stats<T>(int, const T*, index_t, index_t, index_t, double*, double*); \
  PREFIX void channel_affine<T>(int, const T*, T*, index_t, index_t, index_t, const T*, const T*, const T*); \
  PREFIX void batch_norm_grad_sums<T>(int, const T*, const T*, index_t, index_t, index_t, const T*, double*, double*); \
  PREFIX void batch_norm_input_grad<T>(int, const T*, const T*, T*, index_t, index_t, index_t, const T*, \
      const T*, const T*, const T*); \
  PREFIX void l2_normalize_rows<T>(int, const T*, T*, T*, index_t, index_t, double); \
  PREFIX void l2_normalize_rows_backward<T>(int, const T*, const T*, const T*, T*, index_t, index_t, double);
#define DISTILL_CPU_OPTIM_INSTANCES(PREFIX, T) \
  PREFIX void sgd_update<T>(T*, const T*, T*, index_t, const SgdConfig&, int); \
  PREFIX void adam_update<T>(T*, const T*, T*, T*, T*, index_t, const AdamConfig&, int); \
  PREFIX void ema_update<T>(T*, const T*, index_t, double, int);
#define DISTILL_CPU_POOL_INSTANCES(PREFIX, T) \
  PREFIX void mean_rows<T>(int, const T*, T*, index_t, index_t); \
  PREFIX void mean_rows_backward<T>(int, const T*, T*, index_t, index_t);
#define DISTILL_CPU_SOFTMAX_INSTANCES(PREFIX, T) \
  PREFIX void logsumexp_rows<T>(int, const T*, T*, index_t, index_t); \
  PREFIX void softmax_rows<T>(int, const T*, T*, index_t, index_t); \
  PREFIX void log_softmax_rows<T>(int, const T*, T*, index_t, index_t); \
  PREFIX void softmax_rows_backward<T>(int, const T*, const T*, T*, index_t, index_t); \
  PREFIX void log_softmax_rows_backward<T>(int, const T*, const T*, T*, index_t, index_t);
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_CONV1D_INSTANCES)
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_GEMM_INSTANCES)
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_LOSS_INSTANCES)
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_NORM_INSTANCES)
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_OPTIM_INSTANCES)
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_POOL_INSTANCES)
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_SOFTMAX_INSTANCES)
}  // namespace distill::cpu
namespace distill::cpu::tile {
#define DISTILL_CPU_TILE_INSTANCES(PREFIX, T) \
  PREFIX void mm<T>(Isa, index_t, index_t, index_t, const T*, index_t, index_t, const T*, index_t, index_t, \
      index_t, T*, index_t, T, bool); \
  PREFIX void mm_nn<T>(Isa, index_t, index_t, index_t, const T*, index_t, const T*, index_t, T*, index_t, T, bool); \
  PREFIX void mm_tn<T>(Isa, index_t, index_t, index_t, const T*, index_t, const T*, index_t, T*, index_t, T, bool); \
  PREFIX void mm_packed<T>(Isa, index_t, index_t, index_t, const T*, index_t, const T*, T*, index_t, T, bool);
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_TILE_INSTANCES)
}  // namespace distill::cpu::tile
namespace distill::cpu::fused {
#define DISTILL_CPU_FUSED_INSTANCES(PREFIX, T) \
  PREFIX Emb<T> make_emb<T>(Exec, RowSource<T>, RowSource<T>, index_t, bool); \
  PREFIX void emb_backward<T>(int, const Emb<T>&, const T*, index_t, index_t, T*); \
  PREFIX void self_lse<T>(Exec, const Emb<T>&, T, bool, T, double*, index_t); \
  PREFIX void self_backward<T>(Exec, const Emb<T>&, T, bool, T, const double*, const double*, T*, index_t); \
  PREFIX void cross_lse<T>(Exec, const Emb<T>&, const Emb<T>&, T, bool, T, Mask, double*, double*, index_t); \
  PREFIX void cross_backward<T>(Exec, const Emb<T>&, const Emb<T>&, T, bool, T, Mask, const double*, \
      const double*, const double*, const double*, T*, T*, index_t); \
  PREFIX void softkl_forward<T>(Exec, const Emb<T>&, const Emb<T>&, const Emb<T>&, const Emb<T>&, T, bool, \
      Mask, double*, double*, double*, index_t); \
  PREFIX void softkl_backward<T>(Exec, const Emb<T>&, const Emb<T>&, const Emb<T>&, const Emb<T>&, T, Mask, \
      const double*, const double*, const double*, T*, T*, index_t); \
  PREFIX void kd_kl_rows<T>(Exec, index_t, index_t, const T*, const T*, T, double*, T*, T*, T); \
  PREFIX void normalized_mse_rows<T>(int, index_t, index_t, const T*, const T*, double*, T*, T*, T);
DISTILL_EXTERN_INSTANCES(DISTILL_CPU_FUSED_INSTANCES)
}  // namespace distill::cpu::fused
