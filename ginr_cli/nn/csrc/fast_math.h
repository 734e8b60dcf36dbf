// Branch-free math for the compiled CPU kernels (scan, conv): exp, exp2, softplus and sigmoid written out so
// that loops calling them vectorise (a libm call keeps a loop scalar), and the per-CPU clones of the hot loops.
// Built with plain -O3 (+ -fno-trapping-math, which changes no value), no -ffast-math. GCC or Clang.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// The hot loops are compiled for three x86 levels and picked at load time by the CPU (an ifunc), so the
// cached build stays portable while AVX2 and AVX-512 machines get their wide vectors; -march=native would tie
// the build to the machine that compiled it.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GINR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GINR_CLONES
#endif
#define GINR_INLINE inline __attribute__((always_inline))

namespace ginr_fast {

template <typename To, typename From>
GINR_INLINE To bit_cast(From x) {
  To y;
  std::memcpy(&y, &x, sizeof(y));
  return y;
}

// GCC vectors of one cache line (one AVX-512 register; two or four narrower ones elsewhere): the kernels keep a
// row's 16 float states in one, so the compiler neither spills them nor versions the loop for aliasing. And
// half of one (one AVX2 register), where comparisons must not be scalarised (see Exp2Portable).
typedef float f32x16 __attribute__((vector_size(64)));
typedef float f32x8 __attribute__((vector_size(32)));
typedef int32_t i32x8 __attribute__((vector_size(32)));

template <typename F>
struct IntOf {  // the integer lanes of F's width
  using type = int32_t;
};
template <>
struct IntOf<f32x8> {
  using type = i32x8;
};

template <typename F>
GINR_INLINE F splat(float c) {
  return F{} + c;  // a scalar, or c in every lane
}

// exp(x) = 2^k exp(r), x = k ln2 + r (Cody-Waite split of ln2), a polynomial for exp(r). This part takes x
// already clamped and returns exp(r) and k; the callers write 2^k into exponent bits. About 1 ulp (Cephes expf).
template <typename F, typename I = typename IntOf<F>::type>
GINR_INLINE F exp_reduced(F xc, I& k) {
  const F magic = splat<F>(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer held in the low bits
  F kf = xc * 1.44269504088896341f + magic;
  k = bit_cast<I>(kf) - bit_cast<I>(magic);
  kf -= magic;
  F r = xc - kf * 0.693359375f;
  r = r - kf * -2.12194440e-4f;
  F p = splat<F>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return p * r * r + r + 1.0f;
}

// exp(x), 2^k in two halves so each stays a normal number: gradual underflow to 0, overflow to inf, NaN
// kept. Branch-free (selects only), so loops calling it vectorise.
GINR_INLINE float fast_exp(float x) {
  float xc = x > -104.0f ? x : -104.0f;  // NaN lands here too and is restored at the end
  xc = xc < 89.0f ? xc : 89.0f;
  int32_t k;
  const float p = exp_reduced(xc, k);
  const int32_t k1 = k >> 1, k2 = k - k1;
  const float y = p * bit_cast<float>((k1 + 127) << 23) * bit_cast<float>((k2 + 127) << 23);
  return x == x ? y : x;
}

// The part of exp2_decay after the rounding of t to k: 2^f for f in [-1/2, 1/2].
template <typename F>
GINR_INLINE F exp2_fraction(F f) {
  F q = splat<F>(1.5469732170e-4f);
  q = q * f + 1.3410000829e-3f;
  q = q * f + 9.6180308610e-3f;
  q = q * f + 5.5502973497e-2f;
  q = q * f + 2.4022650719e-1f;
  q = q * f + 6.9314724207e-1f;
  return q * f + 1.0f;  // exactly 1 at f = 0: a biased 2^0 would compound over the steps of a slow decay
}

// 2^t, for the scan's decays exp(dt A) = 2^(dt A log2(e)) with A scaled by log2(e) once per channel. t is
// clamped to [-125, 127], where 2^k is one normal number (2^-125 = 2.4e-38 is as good as 0 for a decay); a
// NaN passes both clamps and the polynomial and stays NaN in the final product. 2^f on [-1/2, 1/2] is
// 1 + f q(f), q a degree-5 minimax fit (relative error 4e-9 before rounding, under 2 ulp after; unbiased, as
// it must be: a decay off by one ulp in one direction compounds over the steps of a slow decay). 14 vector
// operations, against about 20 for exp(x) above. F: float or f32x8, lane by lane (on f32x16 GCC would scalarise
// the clamps where the CPU has no 64-byte registers: see Exp2Portable).
template <typename F>
GINR_INLINE F exp2_decay(F t) {
  using I = typename IntOf<F>::type;
  const F lo = splat<F>(-125.0f), hi = splat<F>(127.0f), magic = splat<F>(12582912.0f);
  t = lo > t ? lo : t;  // max and min written so that a NaN t is kept
  t = hi < t ? hi : t;
  const F kf = t + magic;         // t rounded to an integer k, held in the low bits
  const F f = t - (kf - magic);   // in [-1/2, 1/2]
  const F p = exp2_fraction(f);
  const I k_bias = bit_cast<I>(kf) - (bit_cast<I>(magic) - 127);  // k + 127
  return p * bit_cast<F>(k_bias << 23);
}

GINR_INLINE double fast_exp(double x) {  // same scheme, Taylor series to r^13 (|r| <= ln2 / 2: error < 1e-17)
  double xc = x > -746.0 ? x : -746.0;
  xc = xc < 710.0 ? xc : 710.0;
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  double kf = xc * 1.4426950408889634 + magic;
  const int64_t k = bit_cast<int64_t>(kf) - bit_cast<int64_t>(magic);
  kf -= magic;
  double r = xc - kf * 6.93145751953125e-1;
  r = r - kf * 1.42860682030941723212e-6;
  double p = 1.0;
  for (int n = 13; n >= 1; --n) p = 1.0 + p * r * (1.0 / n);  // unrolled, the reciprocals fold
  const int64_t k1 = k >> 1, k2 = k - k1;
  const double y = p * bit_cast<double>((k1 + 1023) << 52) * bit_cast<double>((k2 + 1023) << 52);
  return x == x ? y : x;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GINR_AVX512 1
// exp2_decay with AVX-512's rounding and scaling instructions (vrndscaleps, vscalefps): 10 operations instead
// of 14, and underflow to 0, overflow to inf and NaN come out as exp2's. Called only where the CPU has them
// (x86-64-v4).
struct Exp2Avx512 {
  __attribute__((target("avx512f"))) inline f32x16 operator()(f32x16 t) const {
    const __m512 k = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_scalef_ps(exp2_fraction(t - f32x16(k)), k);
  }
};
#endif

// exp2_decay on the two 32-byte halves: GCC 12 turns the comparisons of its clamps on 64-byte vectors into 16
// scalar ones where the CPU has no 64-byte registers (AVX2: several times slower, see the README's
// Performance section), not those of 32-byte vectors. For CPUs without AVX-512 (with it, Exp2Avx512 runs).
struct Exp2Portable {
  GINR_INLINE f32x16 operator()(f32x16 t) const {
    f32x8 half[2];
    std::memcpy(half, &t, sizeof t);  // split and join by copies: GCC joins 32-byte vectors lane by lane
    half[0] = exp2_decay(half[0]);
    half[1] = exp2_decay(half[1]);
    std::memcpy(&t, half, sizeof t);
    return t;
  }
};

GINR_INLINE double exp2_decay(double t) { return fast_exp(t * 0.69314718055994531); }  // not the hot path

// log(1 + y) for y in [0, 1]: y P(y), P a degree-8 minimax fit of log(1 + y) / y (relative error 3e-8
// before rounding, about 2 ulp after). No division and no range reduction, so loops calling it vectorise to
// plain FMAs.
GINR_INLINE float log1p_unit(float y) {
  float p = 5.2323834971e-3f;
  p = p * y - 2.9504854232e-2f;
  p = p * y + 7.8226990998e-2f;
  p = p * y - 1.3663505018e-1f;
  p = p * y + 1.9106228650e-1f;
  p = p * y - 2.4843071401e-1f;
  p = p * y + 3.3319112659e-1f;
  p = p * y - 4.9999493361e-1f;
  p = p * y + 9.9999994040e-1f;
  return y * p;
}

// softplus as torch computes it (beta 1, threshold 20): x above 20, log(1 + exp(x)) below, here
// max(x, 0) + log1p(exp(-|x|)). NaN kept.
GINR_INLINE float softplus(float x) {
  const float tail = log1p_unit(fast_exp(-std::fabs(x)));
  return x > 20.0f ? x : (x > 0.0f ? x : 0.0f) + tail;
}
inline double softplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }  // not the hot path

template <typename T>
GINR_INLINE T sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

}  // namespace ginr_fast
