// Branch-free math for the compiled CPU kernels (scan, conv): exp, softplus and sigmoid written out so that
// loops calling them vectorise (a libm call keeps a loop scalar), and the per-CPU clones of the hot loops.
// Built with plain -O3 (+ -fno-trapping-math, which changes no value), no -ffast-math. GCC or Clang.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

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
// row's 16 float states in one, so the compiler neither spills them nor versions the loop for aliasing.
typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));

template <typename F>
struct IntOf {
  using type = int32_t;
};
template <>
struct IntOf<f32x16> {
  using type = i32x16;
};

template <typename F>
GINR_INLINE F splat(float c) {
  return F{} + c;  // a scalar, or c in every lane
}

// exp(x) = 2^k exp(r), x = k ln2 + r (Cody-Waite split of ln2), a polynomial for exp(r). This part takes x
// already clamped and returns exp(r) and k; the callers write 2^k into exponent bits. About 1 ulp (Cephes expf).
// F: float or f32x16, lane by lane.
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

// exp(x) with x clamped to [-87, 88], where 2^k is one normal number: one scale instead of two. For the
// scan's decays exp(dt A), where anything under exp(-87) = 1.6e-38 is as good as 0. NaN kept. F: float or
// f32x16.
template <typename F>
GINR_INLINE F fast_exp_clamped(F x) {
  const F lo = splat<F>(-87.0f), hi = splat<F>(88.0f);
  F xc = x > lo ? x : lo;
  xc = xc < hi ? xc : hi;
  typename IntOf<F>::type k;
  const F y = exp_reduced(xc, k) * bit_cast<F>((k + 127) << 23);
  return x == x ? y : x;
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

GINR_INLINE double fast_exp_clamped(double x) { return fast_exp(x); }  // double: not the hot path

// log(1 + y) for y in [0, 1], branch-free (Cephes logf on [sqrt(1/2), sqrt(2)], then Goldberg's correction
// for the rounding of 1 + y).
GINR_INLINE float log1p_unit(float y) {
  const float w = 1.0f + y;
  const bool big = w > 1.41421356f;
  const float f = (big ? 0.5f * w : w) - 1.0f;
  const float ef = big ? 1.0f : 0.0f;
  const float z = f * f;
  float p = 7.0376836292e-2f;
  p = p * f - 1.1514610310e-1f;
  p = p * f + 1.1676998740e-1f;
  p = p * f - 1.2420140846e-1f;
  p = p * f + 1.4249322787e-1f;
  p = p * f - 1.6668057665e-1f;
  p = p * f + 2.0000714765e-1f;
  p = p * f - 2.4999993993e-1f;
  p = p * f + 3.3333331174e-1f;
  float lg = f * z * p + ef * -2.12194440e-4f - 0.5f * z;
  lg = f + lg + ef * 0.693359375f;
  const float d = w - 1.0f;
  return d == 0.0f ? y : lg * (y / d);
}

// softplus as torch computes it (beta 1, threshold 20): x above 20, log(1 + exp(x)) below.
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
