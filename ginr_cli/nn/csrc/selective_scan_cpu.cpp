// The selective scan of Mamba (S6) for the CPU, forward and backward, fused: one pass over the sequence,
// parallel over batch and channels.
//
//   h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t,   y_t = <h_t, C_t> + D u_t,   out_t = y_t silu(z_t)
//   dt_t = softplus(delta_t + delta_bias)   (softplus optional)
//
// Layout, prepared by scan_cpu.py: u, delta, z (b, e, l); A (e, p); Bt, Ct (b, g, l, p); D, delta_bias (e,);
// all contiguous and of one dtype (float or double). The e channels form g equal groups, each with its own B
// and C (BiMamba runs its two directions as two groups of one call); a group marked in `reverse` runs from
// t = l - 1 down to 0, so a reverse Mamba needs no flipped copies. p is the state size s padded with zeros
// to a multiple of 16.
//
// The float32 forward with 16 states (the default) takes 16 channels per vector, one per lane, each state in
// a register of its own (forward_block): no sum across lanes per step. Everything else goes one row (batch,
// channel) at a time, vectorised over the state dimension. On CPUs with AVX-512 the decays' exp2 uses the
// hardware's rounding and scaling (the *_avx512 entry points), elsewhere Exp2Portable.
// Backward recomputes the states of the row into a per-thread (l, p) buffer, then walks back in time:
// nothing of size b * e * l * s is kept between forward and backward (recomputing costs about one forward;
// keeping the states would write and re-read 8 * b * e * l * p bytes instead). dB and dC sum over channels,
// so each thread accumulates its own (b, g, l, p) copy, summed by the caller: deterministic, no atomics.
//
// The math (exp, exp2, softplus, sigmoid) is in fast_math.h. GCC >= 12 or Clang (vector extensions and
// __builtin_shufflevector); elsewhere the build fails and scan.py keeps to its PyTorch scan.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "fast_math.h"

namespace {

using namespace ginr_fast;

template <typename T>
constexpr int64_t kLanes = 64 / sizeof(T);  // one cache line: 16 floats or 8 doubles
constexpr int64_t kStatePad = 16;            // p is a multiple of this (STATE_LANES in scan_cpu.py)
constexpr double kLog2e = 1.4426950408889634;  // decays are 2^(dt A log2(e)): see exp2_decay
constexpr int64_t kChunk = 64;                 // steps per chunk of Scan::forward_block

// Sum of W lanes, halving with vector adds (a plain loop stays scalar without -ffast-math).
template <int64_t W, typename T>
GINR_INLINE T tree_sum(const T* a) {
  if constexpr (W == 2) {
    return a[0] + a[1];
  } else {
    typedef T Half __attribute__((vector_size(W / 2 * sizeof(T))));
    Half lo, hi;
    std::memcpy(&lo, a, sizeof(Half));
    std::memcpy(&hi, a + W / 2, sizeof(Half));
    const Half sum = lo + hi;
    T half[W / 2];
    std::memcpy(half, &sum, sizeof(Half));
    return tree_sum<W / 2>(half);
  }
}

GINR_INLINE f32x16 load16(const float* x) {
  f32x16 v;
  std::memcpy(&v, x, sizeof v);
  return v;
}

// Swaps the off-diagonal B x B blocks of the 2B x 2B squares that rows a and b (= a + B) cut across.
template <int B, int... J>
GINR_INLINE void swap_blocks(f32x16& a, f32x16& b, std::integer_sequence<int, J...>) {
  const f32x16 lo = __builtin_shufflevector(a, b, ((J & B) ? 16 + J - B : J)...);
  const f32x16 hi = __builtin_shufflevector(a, b, ((J & B) ? 16 + J : J + B)...);
  a = lo;
  b = hi;
}

template <int B>
GINR_INLINE void swap_stage(f32x16* r) {
  for (int i = 0; i < 16; ++i)
    if (!(i & B)) swap_blocks<B>(r[i], r[i + B], std::make_integer_sequence<int, 16>{});
}

// dst (16 x 16, rows dst_ld apart) = src (16 x 16, rows src_ld apart) transposed: the blocks swapped at
// every scale, 64 two-register shuffles.
GINR_INLINE void transpose16(const float* __restrict src, int64_t src_ld, float* __restrict dst, int64_t dst_ld) {
  f32x16 r[16];
  for (int i = 0; i < 16; ++i) r[i] = load16(src + i * src_ld);
  swap_stage<1>(r);
  swap_stage<2>(r);
  swap_stage<4>(r);
  swap_stage<8>(r);
  for (int i = 0; i < 16; ++i) std::memcpy(dst + i * dst_ld, &r[i], sizeof r[i]);
}

// Sum of the 16 lanes, in tree_sum's order.
GINR_INLINE float lane_sum(f32x16 v) {
  typedef float f32x8 __attribute__((vector_size(32)));
  typedef float f32x4 __attribute__((vector_size(16)));
  const f32x8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
                  __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const f32x4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// Gradient outputs of backward(), as raw rows; dB, dC point at this thread's own (b, g, l, p) copy.
template <typename T>
struct Grads {
  T *du, *ddelta, *dA, *dB, *dC, *dD, *dz, *dbias;
};

// Per-thread scratch, reused across rows: O(l) for the forward, O(l * p) for the backward.
template <typename T>
struct RowWork {
  std::vector<T> dt, y, gy, hs, decays, h, carry, zeros;
  RowWork(int64_t l, int64_t p, bool backward)
      : dt(l), y(backward ? l : 0), gy(backward ? l : 0), hs(backward ? l * p : 0),
        decays(backward ? l * p : 0), h(p), carry(p), zeros(p) {}
};

template <typename T>
struct Scan {
  const T *u, *delta, *A, *Bt, *Ct, *D, *z, *bias;  // D, z, bias null when absent
  int64_t e, l, p, groups;
  bool apply_softplus;
  std::vector<uint8_t> reverse;  // per group

  int64_t group_of(int64_t ei) const { return ei / (e / groups); }
  const T* B_of(int64_t bi, int64_t ei) const { return Bt + (bi * groups + group_of(ei)) * l * p; }
  const T* C_of(int64_t bi, int64_t ei) const { return Ct + (bi * groups + group_of(ei)) * l * p; }
  bool reversed(int64_t ei) const { return !reverse.empty() && reverse[group_of(ei)]; }

  // dt of row i for steps [t0, t0 + n). One loop per case: with the branch inside, the softplus loop stays
  // scalar.
  GINR_INLINE void discretize(int64_t i, int64_t t0, int64_t n, T* __restrict dt) const {
    const T* x = delta + i * l + t0;
    const T b = bias ? bias[i % e] : T(0);
    if (apply_softplus) {
      for (int64_t t = 0; t < n; ++t) dt[t] = softplus(x[t] + b);
    } else {
      for (int64_t t = 0; t < n; ++t) dt[t] = x[t] + b;
    }
  }

  // y (l) = <h_t, C_t> + D u_t of row i; with kKeep also the states h_t and decays exp(dt_t A), each (l, p),
  // in step order (step k is time l - 1 - k in a reversed group). kP: p as a compile-time constant, or 0.
  template <int64_t kP, bool kKeep, typename Exp2 = Exp2Portable>
  GINR_INLINE void recur(int64_t i, const T* __restrict dt, T* __restrict y, T* __restrict h, T* __restrict hs,
                         T* __restrict decays) const {
    if constexpr (std::is_same_v<T, float> && kP == 16) {
      if (reversed(i % e)) recur_f32x16<kKeep, true, Exp2>(i, dt, y, hs, decays);
      else recur_f32x16<kKeep, false, Exp2>(i, dt, y, hs, decays);
    } else {
      if (reversed(i % e)) recur_in<kP, kKeep, true>(i, dt, y, h, hs, decays);
      else recur_in<kP, kKeep, false>(i, dt, y, h, hs, decays);
    }
  }

  // The same recurrence for float and p = 16 (the default state size), written on f32x16: the state stays in
  // one register, with no stack round trip for the sum and no aliasing checks per step.
  template <bool kKeep, bool kReverse, typename Exp2>
  GINR_INLINE void recur_f32x16(int64_t i, const float* __restrict dt, float* __restrict y, float* __restrict hs,
                                float* __restrict decays) const {
    const int64_t ei = i % e;
    const float* ui = u + i * l;
    const f32x16 a = load16(A + ei * 16) * float(kLog2e);
    const float* Bb = B_of(i / e, ei);
    const float* Cb = C_of(i / e, ei);
    f32x16 h = {};
    for (int64_t k = 0; k < l; ++k) {
      const int64_t t = kReverse ? l - 1 - k : k;
      const float d = dt[t];
      const f32x16 decay = Exp2()(d * a);
      h = decay * h + (d * ui[t]) * load16(Bb + t * 16);
      y[t] = lane_sum(h * load16(Cb + t * 16));
      if constexpr (kKeep) {
        std::memcpy(hs + k * 16, &h, sizeof h);
        std::memcpy(decays + k * 16, &decay, sizeof decay);
      }
    }
    if (D) {
      const float dv = D[ei];
      for (int64_t t = 0; t < l; ++t) y[t] += dv * ui[t];
    }
  }

  template <int64_t kP, bool kKeep, bool kReverse>
  GINR_INLINE void recur_in(int64_t i, const T* __restrict dt, T* __restrict y, T* __restrict h,
                            T* __restrict hs, T* __restrict decays) const {
    constexpr int64_t W = kLanes<T>;
    const int64_t p = kP ? kP : this->p, ei = i % e;
    const T* ui = u + i * l;
    const T* a = A + ei * p;
    const T* Bb = B_of(i / e, ei);
    const T* Cb = C_of(i / e, ei);
    std::fill(h, h + p, T(0));
    for (int64_t k = 0; k < l; ++k) {
      const int64_t t = kReverse ? l - 1 - k : k;
      const T d = dt[t], du = d * ui[t];
      const T* bt = Bb + t * p;
      const T* ct = Cb + t * p;
      T acc[W] = {};
      for (int64_t c = 0; c < p; c += W) {
        for (int64_t j = 0; j < W; ++j) {
          const T decay = exp2_decay(d * (a[c + j] * T(kLog2e)));
          const T hv = decay * h[c + j] + du * bt[c + j];
          h[c + j] = hv;
          acc[j] += hv * ct[c + j];
          if constexpr (kKeep) {
            hs[k * p + c + j] = hv;
            decays[k * p + c + j] = decay;
          }
        }
      }
      y[t] = tree_sum<W>(acc);
    }
    if (D) {
      const T dv = D[ei];
      for (int64_t t = 0; t < l; ++t) y[t] += dv * ui[t];
    }
  }

  // The float forward with p = 16, for a block of up to 16 channels of one group: one channel per lane, each
  // of the 16 states in a vector of its own, B_t and C_t broadcast to all lanes. Unlike forward_row it sums
  // over the states with plain vector adds, not across lanes at every step. u, dt and y pass through 16 x 16
  // transposes, a chunk of steps at a time; the chunks run backwards in a reversed group.
  // (The body of forward_block and forward_block_avx512 below, which differ in their exp2.)
  template <typename Exp2>
  GINR_INLINE void forward_block_with(int64_t bi, int64_t c0, int64_t rows, float* __restrict out) const {
    alignas(64) float staged[16 * kChunk];  // rows x steps of one chunk
    alignas(64) float dtT[kChunk * 16], uT[kChunk * 16], yT[kChunk * 16];  // steps x lanes
    alignas(64) float aT[16 * 16] = {};  // states x lanes: A log2(e)
    f32x16 h[16] = {}, dv = {};
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t n = 0; n < 16; ++n) aT[n * 16 + r] = A[(c0 + r) * 16 + n] * float(kLog2e);
      if (D) dv[r] = D[c0 + r];
    }
    const int64_t i0 = bi * e + c0;  // first row
    const bool rev = reversed(c0);
    const float* Bb = B_of(bi, c0);
    const float* Cb = C_of(bi, c0);
    const int64_t chunks = (l + kChunk - 1) / kChunk;
    for (int64_t ci = 0; ci < chunks; ++ci) {
      const int64_t t0 = (rev ? chunks - 1 - ci : ci) * kChunk, n = std::min(kChunk, l - t0);
      const int64_t tiles = (n + 15) / 16;
      std::fill(staged, staged + 16 * kChunk, 0.0f);  // rows past `rows` and steps past n stay 0
      for (int64_t r = 0; r < rows; ++r) discretize(i0 + r, t0, n, staged + r * kChunk);
      for (int64_t k = 0; k < tiles; ++k) transpose16(staged + 16 * k, kChunk, dtT + 256 * k, 16);
      for (int64_t r = 0; r < rows; ++r)
        std::memcpy(staged + r * kChunk, u + (i0 + r) * l + t0, n * sizeof(float));
      for (int64_t k = 0; k < tiles; ++k) transpose16(staged + 16 * k, kChunk, uT + 256 * k, 16);
      if (rev) recur_block<true, Exp2>(n, dtT, uT, Bb + t0 * 16, Cb + t0 * 16, aT, dv, h, yT);
      else recur_block<false, Exp2>(n, dtT, uT, Bb + t0 * 16, Cb + t0 * 16, aT, dv, h, yT);
      for (int64_t k = 0; k < tiles; ++k) transpose16(yT + 256 * k, 16, staged + 16 * k, kChunk);
      for (int64_t r = 0; r < rows; ++r) {
        float* o = out + (i0 + r) * l + t0;
        const float* y = staged + r * kChunk;
        if (z) {
          const float* zr = z + (i0 + r) * l + t0;
          for (int64_t t = 0; t < n; ++t) o[t] = y[t] * zr[t] * sigmoid(zr[t]);
        } else {
          std::memcpy(o, y, n * sizeof(float));
        }
      }
    }
  }

  GINR_CLONES void forward_block(int64_t bi, int64_t c0, int64_t rows, float* out) const {
    forward_block_with<Exp2Portable>(bi, c0, rows, out);
  }
#ifdef GINR_AVX512
  __attribute__((target("arch=x86-64-v4"), flatten)) void forward_block_avx512(int64_t bi, int64_t c0, int64_t rows,
                                                                     float* out) const {
    forward_block_with<Exp2Avx512>(bi, c0, rows, out);
  }
#endif

  // n steps of the block recurrence (see forward_block); h carries the states from chunk to chunk.
  template <bool kReverse, typename Exp2>
  static GINR_INLINE void recur_block(int64_t n, const float* __restrict dtT, const float* __restrict uT,
                                      const float* __restrict bt, const float* __restrict ct,
                                      const float* __restrict aT, f32x16 dv, f32x16* __restrict h_io,
                                      float* __restrict yT) {
    f32x16 h[16];
    for (int j = 0; j < 16; ++j) h[j] = h_io[j];
    for (int64_t kk = 0; kk < n; ++kk) {
      const int64_t k = kReverse ? n - 1 - kk : kk;
      const f32x16 d = load16(dtT + 16 * k), x = load16(uT + 16 * k), dx = d * x;
      const float* b = bt + 16 * k;
      const float* c = ct + 16 * k;
      f32x16 acc[4] = {dv * x, {}, {}, {}};  // four partial sums: no chain of 16 dependent adds per step
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) {
        h[j] = Exp2()(d * load16(aT + 16 * j)) * h[j] + dx * b[j];
        acc[j % 4] += h[j] * c[j];
      }
      const f32x16 y = (acc[0] + acc[1]) + (acc[2] + acc[3]);
      std::memcpy(yT + 16 * k, &y, sizeof y);
    }
    for (int j = 0; j < 16; ++j) h_io[j] = h[j];
  }

  template <int64_t kP>
  GINR_CLONES void forward_row(int64_t i, RowWork<T>& w, T* __restrict out) const {
    discretize(i, 0, l, w.dt.data());
    recur<kP, false>(i, w.dt.data(), out, w.h.data(), nullptr, nullptr);
    if (z) {
      const T* zi = z + i * l;
      for (int64_t t = 0; t < l; ++t) out[t] *= zi[t] * sigmoid(zi[t]);
    }
  }

  // Gradients of row i: recompute its states, then walk back in time.
  template <int64_t kP>
  GINR_CLONES void backward_row(int64_t i, const T* dout, RowWork<T>& w, const Grads<T>& g) const {
    backward_row_with<kP, Exp2Portable>(i, dout, w, g);
  }
#ifdef GINR_AVX512
  template <int64_t kP>
  __attribute__((target("arch=x86-64-v4"), flatten)) void backward_row_avx512(int64_t i, const T* dout,
                                                                            RowWork<T>& w,
                                                                            const Grads<T>& g) const {
    backward_row_with<kP, Exp2Avx512>(i, dout, w, g);
  }
#endif

  // (The body of backward_row and backward_row_avx512, which differ in their exp2.)
  template <int64_t kP, typename Exp2>
  GINR_INLINE void backward_row_with(int64_t i, const T* dout, RowWork<T>& w, const Grads<T>& g) const {
    constexpr int64_t W = kLanes<T>;
    const int64_t p = kP ? kP : this->p, ei = i % e;
    const bool rev = reversed(ei);
    discretize(i, 0, l, w.dt.data());
    recur<kP, true, Exp2>(i, w.dt.data(), w.y.data(), w.h.data(), w.hs.data(), w.decays.data());

    // Gate: out = y silu(z), so dL/dy = dout silu(z) and dL/dz = dout y silu'(z).
    const T* go = dout + i * l;
    const T* ui = u + i * l;
    T* gy = w.gy.data();
    if (z) {
      const T* zi = z + i * l;
      T* dz = g.dz + i * l;
      for (int64_t t = 0; t < l; ++t) {
        const T sg = sigmoid(zi[t]);
        gy[t] = go[t] * zi[t] * sg;
        dz[t] = go[t] * w.y[t] * sg * (T(1) + zi[t] * (T(1) - sg));
      }
    } else {
      std::copy(go, go + l, gy);
    }

    // Back over the steps; carry = dL/dh reaching step k from the later steps.
    const T* a = A + ei * p;
    T* dA = g.dA + i * p;
    T* du = g.du + i * l;
    T* ddt = g.ddelta + i * l;
    T* carry = w.carry.data();
    std::fill(carry, carry + p, T(0));
    const int64_t rows = (i / e * groups + group_of(ei)) * l;  // of this row's Bt, Ct, dB, dC
    const T dv = D ? D[ei] : T(0);
    T dD = 0;
    for (int64_t k = l - 1; k >= 0; --k) {
      const int64_t t = rev ? l - 1 - k : k;
      const T gt = gy[t], d = w.dt[t], ut = ui[t];
      const int64_t row = (rows + t) * p;
      T r_a[W] = {}, r_b[W] = {};  // lanes of sum_s dL/d(dt A_s) A_s and of sum_s dL/dh_s B_s
      step_back<W, kP>(p, gt, d, d * ut, a, Bt + row, Ct + row, w.hs.data() + k * p,
                       k > 0 ? w.hs.data() + (k - 1) * p : w.zeros.data(), w.decays.data() + k * p, carry, dA,
                       g.dB + row, g.dC + row, r_a, r_b);
      const T xb = tree_sum<W>(r_b);
      ddt[t] = tree_sum<W>(r_a) + ut * xb;  // dt enters through exp(dt A) and through dt B u
      du[t] = d * xb + (D ? gt * dv : T(0));
      dD += gt * ut;
    }

    // Through softplus (its derivative is the sigmoid, 1 above torch's threshold) and the bias.
    if (apply_softplus) {
      const T* x = delta + i * l;
      const T b = bias ? bias[ei] : T(0);
      for (int64_t t = 0; t < l; ++t) ddt[t] *= (x[t] + b > T(20)) ? T(1) : sigmoid(x[t] + b);
    }
    T dbias = 0;
    for (int64_t t = 0; t < l; ++t) dbias += ddt[t];
    g.dD[i] = dD;
    g.dbias[i] = dbias;
  }

  // One step back over the states; x = dL/dh_t, from the output and from step t + 1 (carry). Its own
  // function so that __restrict__ tells the compiler that none of these rows overlap.
  template <int64_t W, int64_t kP>
  static GINR_INLINE void step_back(int64_t p_, T gt, T d, T dut, const T* __restrict a, const T* __restrict bt,
                                    const T* __restrict ct, const T* __restrict ht, const T* __restrict hprev,
                                    const T* __restrict dec, T* __restrict carry, T* __restrict dA,
                                    T* __restrict dbt, T* __restrict dct, T* __restrict r_a, T* __restrict r_b) {
    const int64_t p = kP ? kP : p_;
    for (int64_t c = 0; c < p; c += W) {
      for (int64_t j = 0; j < W; ++j) {
        const int64_t k = c + j;
        const T x = gt * ct[k] + carry[k];
        const T dlog = x * hprev[k] * dec[k];  // dL/d(dt_t A_k)
        dct[k] += gt * ht[k];
        dbt[k] += x * dut;
        dA[k] += dlog * d;
        r_a[j] += dlog * a[k];
        r_b[j] += x * bt[k];
        carry[k] = x * dec[k];
      }
    }
  }
};

template <typename T>
Scan<T> make_scan(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
                  const at::Tensor& Ct, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
                  const std::optional<at::Tensor>& bias, bool softplus, at::IntArrayRef reverse) {
  auto ptr = [](const std::optional<at::Tensor>& x) { return x ? x->data_ptr<T>() : nullptr; };
  std::vector<uint8_t> rev(reverse.begin(), reverse.end());
  return {u.data_ptr<T>(), delta.data_ptr<T>(), A.data_ptr<T>(), Bt.data_ptr<T>(), Ct.data_ptr<T>(),
          ptr(D), ptr(z), ptr(bias), u.size(1), u.size(2), A.size(1), Bt.size(1), softplus, rev};
}

// Shapes, dtype and contiguity: scan_cpu.py prepares them, this guards the raw loops against a wrong caller.
void check(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
           const at::Tensor& Ct, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
           const std::optional<at::Tensor>& bias, at::IntArrayRef reverse) {
  TORCH_CHECK(u.dim() == 3 && A.dim() == 2 && Bt.dim() == 4,
              "selective_scan_cpu: u (b, e, l), A (e, p), Bt (b, g, l, p)");
  const int64_t b = u.size(0), e = u.size(1), l = u.size(2), p = A.size(1), g = Bt.size(1);
  const auto dtype = u.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "selective_scan_cpu: float32 or float64, got ", dtype);
  TORCH_CHECK(p > 0 && p % kStatePad == 0, "selective_scan_cpu: the state size must be padded to a multiple of ",
              kStatePad);
  TORCH_CHECK(g > 0 && e % g == 0, "selective_scan_cpu: ", e, " channels do not split into ", g, " groups");
  TORCH_CHECK(reverse.empty() || static_cast<int64_t>(reverse.size()) == g,
              "selective_scan_cpu: reverse needs one flag per group");
  auto expect = [&](const at::Tensor& x, at::IntArrayRef shape, const char* name) {
    TORCH_CHECK(x.sizes() == shape, "selective_scan_cpu: ", name, " has shape ", x.sizes(), ", expected ", shape);
    TORCH_CHECK(x.scalar_type() == dtype && x.is_contiguous() && x.device().is_cpu(), "selective_scan_cpu: ",
                name, " must be a contiguous CPU tensor of u's dtype");
  };
  expect(u, {b, e, l}, "u");
  expect(delta, {b, e, l}, "delta");
  expect(A, {e, p}, "A");
  expect(Bt, {b, g, l, p}, "Bt");
  expect(Ct, {b, g, l, p}, "Ct");
  if (D) expect(*D, {e}, "D");
  if (z) expect(*z, {b, e, l}, "z");
  if (bias) expect(*bias, {e}, "delta_bias");
}

// Whether the float kernels take their AVX-512 versions (forward_block_avx512, backward_row_avx512, built for
// x86-64-v4): where the CPU has that level, unless a test turns them off (set_avx512) to check the portable
// ones.
#ifdef GINR_AVX512
std::atomic<bool> use_avx512{[] {
  __builtin_cpu_init();  // this runs as a static initialiser, maybe before libgcc's own
  return __builtin_cpu_supports("x86-64-v4") != 0;
}()};
#else
std::atomic<bool> use_avx512{false};
#endif

bool set_avx512(bool enable) {
#ifdef GINR_AVX512
  use_avx512 = enable && __builtin_cpu_supports("x86-64-v4");
#endif
  return use_avx512;
}

// The forward over every row of a batch of b: in channel blocks where forward_block applies, else by rows.
template <typename T>
void run_forward(const Scan<T>& s, int64_t b, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    if (s.p == 16) {  // blocks of up to 16 channels, none straddling two groups
      const int64_t size = s.e / s.groups, blocks = (size + 15) / 16;
      at::parallel_for(0, b * s.groups * blocks, 1, [&](int64_t begin, int64_t end) {
        const bool avx512 = use_avx512;
        for (int64_t j = begin; j < end; ++j) {
          const int64_t bi = j / (s.groups * blocks), first = j % blocks * 16;
          const int64_t c0 = j / blocks % s.groups * size + first, rows = std::min<int64_t>(16, size - first);
#ifdef GINR_AVX512
          if (avx512) {
            s.forward_block_avx512(bi, c0, rows, y);
            continue;
          }
#endif
          s.forward_block(bi, c0, rows, y);
        }
      });
      return;
    }
  }
  at::parallel_for(0, b * s.e, 1, [&](int64_t begin, int64_t end) {
    RowWork<T> w(s.l, s.p, /*backward=*/false);  // O(l + p): nothing of size l * s
    for (int64_t i = begin; i < end; ++i) {
      if (s.p == kStatePad) s.template forward_row<kStatePad>(i, w, y + i * s.l);
      else s.template forward_row<0>(i, w, y + i * s.l);
    }
  });
}

// y written into `out`, a contiguous tensor like u (a buffer reused at inference).
void forward_out(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
                 const at::Tensor& Ct, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
                 const std::optional<at::Tensor>& bias, bool softplus, at::IntArrayRef reverse, at::Tensor& out) {
  check(u, delta, A, Bt, Ct, D, z, bias, reverse);
  TORCH_CHECK(out.sizes() == u.sizes() && out.scalar_type() == u.scalar_type() && out.is_contiguous() &&
                  out.device().is_cpu(),
              "selective_scan_cpu: out must be a contiguous CPU tensor like u");
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_cpu_forward", [&] {
    using T = scalar_t;
    const auto s = make_scan<T>(u, delta, A, Bt, Ct, D, z, bias, softplus, reverse);
    run_forward(s, u.size(0), out.data_ptr<T>());
  });
}

at::Tensor forward(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& Bt,
                   const at::Tensor& Ct, const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
                   const std::optional<at::Tensor>& bias, bool softplus, at::IntArrayRef reverse) {
  at::Tensor out = at::empty(u.sizes(), u.options());
  forward_out(u, delta, A, Bt, Ct, D, z, bias, softplus, reverse, out);
  return out;
}

// Returns du, ddelta (b, e, l); dA (b, e, p); dBt, dCt (threads, b, g, l, p); dD, dbias (b, e); dz (b, e, l)
// or empty. The caller sums dA, dD, dbias over b and dBt, dCt over thread groups.
std::vector<at::Tensor> backward(const at::Tensor& dout, const at::Tensor& u, const at::Tensor& delta,
                                 const at::Tensor& A, const at::Tensor& Bt, const at::Tensor& Ct,
                                 const std::optional<at::Tensor>& D, const std::optional<at::Tensor>& z,
                                 const std::optional<at::Tensor>& bias, bool softplus, at::IntArrayRef reverse) {
  check(u, delta, A, Bt, Ct, D, z, bias, reverse);
  TORCH_CHECK(dout.sizes() == u.sizes() && dout.scalar_type() == u.scalar_type() && dout.is_contiguous(),
              "selective_scan_cpu: dout must be a contiguous tensor like u");
  const int64_t b = u.size(0), e = u.size(1), l = u.size(2), p = A.size(1), g = Bt.size(1), rows = b * e;
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows));
  const auto opt = u.options();
  at::Tensor du = at::empty({b, e, l}, opt), ddelta = at::empty({b, e, l}, opt), dA = at::zeros({b, e, p}, opt),
             dB = at::zeros({threads, b, g, l, p}, opt), dC = at::zeros({threads, b, g, l, p}, opt),
             dD = at::empty({b, e}, opt), dz = at::empty({z ? b : 0, e, l}, opt), dbias = at::empty({b, e}, opt);
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "selective_scan_cpu_backward", [&] {
    using T = scalar_t;
    const auto s = make_scan<T>(u, delta, A, Bt, Ct, D, z, bias, softplus, reverse);
    const int64_t per_thread = (rows + threads - 1) / threads, size = b * g * l * p;
    at::parallel_for(0, threads, 1, [&](int64_t t0, int64_t t1) {
      [[maybe_unused]] const bool avx512 = use_avx512;
      RowWork<T> w(l, p, /*backward=*/true);
      for (int64_t th = t0; th < t1; ++th) {
        const Grads<T> grads{du.data_ptr<T>(), ddelta.data_ptr<T>(), dA.data_ptr<T>(), dB.data_ptr<T>() + th * size,
                             dC.data_ptr<T>() + th * size, dD.data_ptr<T>(), z ? dz.data_ptr<T>() : nullptr,
                             dbias.data_ptr<T>()};
        for (int64_t i = th * per_thread; i < std::min(rows, (th + 1) * per_thread); ++i) {
#ifdef GINR_AVX512
          if (avx512 && p == kStatePad) {
            s.template backward_row_avx512<kStatePad>(i, dout.data_ptr<T>(), w, grads);
            continue;
          }
#endif
          if (p == kStatePad) s.template backward_row<kStatePad>(i, dout.data_ptr<T>(), w, grads);
          else s.template backward_row<0>(i, dout.data_ptr<T>(), w, grads);
        }
      }
    });
  });
  return {du, ddelta, dA, dB, dC, dD, dz, dbias};
}

}  // namespace

TORCH_LIBRARY(ginr_scan, m) {
  m.def("forward(Tensor u, Tensor delta, Tensor A, Tensor Bt, Tensor Ct, Tensor? D, Tensor? z, "
        "Tensor? delta_bias, bool delta_softplus, int[] reverse) -> Tensor",
        &forward);
  m.def("forward_out(Tensor u, Tensor delta, Tensor A, Tensor Bt, Tensor Ct, Tensor? D, Tensor? z, "
        "Tensor? delta_bias, bool delta_softplus, int[] reverse, Tensor(a!) out) -> ()",
        &forward_out);
  m.def("set_avx512(bool enable) -> bool", &set_avx512);  // for tests; returns whether it is now on
  m.def("backward(Tensor dout, Tensor u, Tensor delta, Tensor A, Tensor Bt, Tensor Ct, Tensor? D, Tensor? z, "
        "Tensor? delta_bias, bool delta_softplus, int[] reverse) -> Tensor[]",
        &backward);
}
