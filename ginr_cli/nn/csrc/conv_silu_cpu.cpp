// Mamba's depthwise conv and its SiLU, fused, for the CPU, forward and backward: one pass per (batch,
// channel) row instead of mkldnn's depthwise conv (slow at these shapes) and a separate SiLU.
//
//   a_t = bias + sum_k w_k x_{t + o_k},   y_t = silu(a_t),   x outside [0, l) is 0
//   o_k = k - (K - 1)   causal, the forward Mamba's conv
//   o_k = (K - 1) - k   anti-causal, a reverse Mamba's causal conv seen on the unflipped sequence
//
// Layout: x (b, e, l) with any batch stride (a channel slice of in_proj's output), rows contiguous; w (e, K);
// bias (e,). The e channels form g equal groups, each causal or, when marked in `reverse`, anti-causal.
// Backward recomputes a_t (cheaper than keeping it):
//   ds_t = dy_t silu'(a_t),   dx_s = sum_k w_k ds_{s - o_k},   dw_k = sum_t ds_t x_{t + o_k},   dbias = sum_t ds_t

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "fast_math.h"

namespace {

using namespace ginr_fast;

struct Rows {
  int64_t b, e, l, K, groups, batch_stride;
  std::vector<uint8_t> reverse;

  bool reversed(int64_t c) const { return !reverse.empty() && reverse[c / (e / groups)]; }
  int64_t offset(int64_t c, int64_t k) const { return reversed(c) ? (K - 1) - k : k - (K - 1); }
};

// a (l) = bias + sum_k w_k x_{t + o_k} of row (bi, c).
template <typename T>
GINR_INLINE void preactivation(const Rows& r, const T* x, const T* w, const T* bias, int64_t c, T* a) {
  for (int64_t t = 0; t < r.l; ++t) a[t] = bias ? bias[c] : T(0);
  for (int64_t k = 0; k < r.K; ++k) {
    const int64_t o = r.offset(c, k);
    const T wk = w[c * r.K + k];
    const int64_t lo = std::max<int64_t>(0, -o), hi = std::min(r.l, r.l - o);  // t with t + o in [0, l)
    for (int64_t t = lo; t < hi; ++t) a[t] += wk * x[t + o];
  }
}

template <typename T>
GINR_CLONES void forward_row(const Rows& r, const T* x, const T* w, const T* bias, int64_t i, T* __restrict out) {
  const int64_t c = i % r.e;
  preactivation<T>(r, x + i / r.e * r.batch_stride + c * r.l, w, bias, c, out);
  for (int64_t t = 0; t < r.l; ++t) out[t] *= sigmoid(out[t]);
}

// sum_t a_t b_t over n terms, in one cache line of partial sums: a plain loop stays scalar without
// -ffast-math (the compiler may not reorder the adds), and so would any loop it sits in.
template <typename T>
GINR_INLINE T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  constexpr int64_t W = 64 / sizeof(T);
  T acc[W] = {};
  int64_t t = 0;
  for (; t + W <= n; t += W)
    for (int64_t j = 0; j < W; ++j) acc[j] += a[t + j] * b[t + j];
  T sum = 0;
  for (int64_t j = 0; j < W; ++j) sum += acc[j];
  for (; t < n; ++t) sum += a[t] * b[t];
  return sum;
}

// dx (l), dw (K) and dbias of row i; ds: scratch (l), ones: l ones (for dbias as a dot product).
template <typename T>
GINR_CLONES void backward_row(const Rows& r, const T* x, const T* w, const T* bias, const T* dy, int64_t i,
                              T* __restrict ds, const T* ones, T* __restrict dx, T* __restrict dw,
                              T* __restrict dbias) {
  const int64_t c = i % r.e;
  const T* xi = x + i / r.e * r.batch_stride + c * r.l;
  const T* g = dy + i * r.l;
  preactivation<T>(r, xi, w, bias, c, ds);
  for (int64_t t = 0; t < r.l; ++t) {  // silu'(a) = s (1 + a (1 - s)), s = sigmoid(a)
    const T a = ds[t], s = sigmoid(a);
    ds[t] = g[t] * s * (T(1) + a * (T(1) - s));
  }
  dbias[i] = dot(ds, ones, r.l);
  T* dxi = dx + i * r.l;
  std::fill(dxi, dxi + r.l, T(0));
  for (int64_t k = 0; k < r.K; ++k) {
    const int64_t o = r.offset(c, k);
    const T wk = w[c * r.K + k];
    const int64_t lo = std::max<int64_t>(0, -o), hi = std::min(r.l, r.l - o);
    for (int64_t t = lo; t < hi; ++t) dxi[t + o] += wk * ds[t];
    dw[i * r.K + k] = dot(ds + lo, xi + lo + o, hi - lo);
  }
}

Rows rows_of(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias,
             at::IntArrayRef reverse) {
  TORCH_CHECK(x.dim() == 3 && x.stride(2) == 1 && x.stride(1) == x.size(2),
              "conv_silu_cpu: x must be (b, e, l) with contiguous rows");
  TORCH_CHECK(w.dim() == 2 && w.size(0) == x.size(1) && w.is_contiguous(), "conv_silu_cpu: w must be (e, K)");
  TORCH_CHECK(w.scalar_type() == x.scalar_type() && (!bias || bias->scalar_type() == x.scalar_type()),
              "conv_silu_cpu: x, w and bias must share a dtype");
  TORCH_CHECK(!bias || (bias->numel() == x.size(1) && bias->is_contiguous()), "conv_silu_cpu: bias must be (e,)");
  const int64_t groups = reverse.empty() ? 1 : static_cast<int64_t>(reverse.size());
  TORCH_CHECK(x.size(1) % groups == 0, "conv_silu_cpu: channels do not split into the reverse flags' groups");
  return {x.size(0), x.size(1), x.size(2), w.size(1), groups, x.stride(0),
          std::vector<uint8_t>(reverse.begin(), reverse.end())};
}

// y = silu(conv(x)) written into `out`, a contiguous (b, e, l) tensor (a buffer reused at inference).
void forward_out(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias,
                 at::IntArrayRef reverse, at::Tensor& out) {
  const Rows r = rows_of(x, w, bias, reverse);
  TORCH_CHECK(out.sizes() == at::IntArrayRef({r.b, r.e, r.l}) && out.is_contiguous() &&
                  out.scalar_type() == x.scalar_type() && out.device().is_cpu(),
              "conv_silu_cpu: out must be a contiguous (b, e, l) CPU tensor of x's dtype");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_silu_cpu_forward", [&] {
    using T = scalar_t;
    const T *xp = x.data_ptr<T>(), *wp = w.data_ptr<T>(), *bp = bias ? bias->data_ptr<T>() : nullptr;
    T* yp = out.data_ptr<T>();
    at::parallel_for(0, r.b * r.e, 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) forward_row<T>(r, xp, wp, bp, i, yp + i * r.l);
    });
  });
}

at::Tensor forward(const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& bias,
                   at::IntArrayRef reverse) {
  at::Tensor y = at::empty({x.size(0), x.size(1), x.size(2)}, x.options());
  forward_out(x, w, bias, reverse, y);
  return y;
}

// Returns dx (b, e, l), dw (b, e, K) and dbias (b, e): the caller sums the last two over b.
std::vector<at::Tensor> backward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& w,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef reverse) {
  const Rows r = rows_of(x, w, bias, reverse);
  TORCH_CHECK(dy.sizes() == at::IntArrayRef({r.b, r.e, r.l}) && dy.is_contiguous(), "conv_silu_cpu: dy must be like y");
  at::Tensor dx = at::empty({r.b, r.e, r.l}, x.options()), dw = at::empty({r.b, r.e, r.K}, x.options()),
             dbias = at::empty({r.b, r.e}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_silu_cpu_backward", [&] {
    using T = scalar_t;
    const T *xp = x.data_ptr<T>(), *wp = w.data_ptr<T>(), *bp = bias ? bias->data_ptr<T>() : nullptr;
    at::parallel_for(0, r.b * r.e, 16, [&](int64_t begin, int64_t end) {
      std::vector<T> ds(r.l), ones(r.l, T(1));
      for (int64_t i = begin; i < end; ++i)
        backward_row<T>(r, xp, wp, bp, dy.data_ptr<T>(), i, ds.data(), ones.data(), dx.data_ptr<T>(),
                        dw.data_ptr<T>(), dbias.data_ptr<T>());
    });
  });
  return {dx, dw, dbias};
}

}  // namespace

TORCH_LIBRARY(ginr_conv, m) {
  m.def("forward(Tensor x, Tensor w, Tensor? bias, int[] reverse) -> Tensor", &forward);
  m.def("forward_out(Tensor x, Tensor w, Tensor? bias, int[] reverse, Tensor(a!) out) -> ()", &forward_out);
  m.def("backward(Tensor dy, Tensor x, Tensor w, Tensor? bias, int[] reverse) -> Tensor[]", &backward);
}
