// Full-size passes of the fused CBAM operator (cbam/nn/fused/operator.py) on the CPU.
//
// Every kernel streams its full-size inputs once and allocates no full-size temporary besides its
// result. Layout: x, grad (B, C, N) contiguous, N = H * W; small tensors (B, C) or (B, N) contiguous.
// Channel-axis passes walk c outer and a block of N inner, so their accumulators stay in L1.
// Max pools keep the first maximal element (as torch.max(dim) does) and propagate NaN.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>
#include <vector>

namespace {

using at::Tensor;

constexpr int64_t kBlock = 1024;  // H*W positions per task of a channel-axis pass
constexpr int64_t kGrain = 1 << 15;  // elements below which a pass runs on one thread

struct Dims {
  int64_t b, c, n;
};

Dims full_dims(const Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() == 4 && x.is_contiguous() && x.device().is_cpu(),
              "cbam_cpu: ", name, " must be a contiguous 4-D CPU tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "cbam_cpu: ", name, " must be float32 or float64");
  return {x.size(0), x.size(1), x.size(2) * x.size(3)};
}

void check_small(const Tensor& t, const Tensor& like, int64_t numel, const char* name) {
  TORCH_CHECK(t.is_contiguous() && t.device().is_cpu() && t.numel() == numel,
              "cbam_cpu: ", name, " must be a contiguous CPU tensor of ", numel, " elements");
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), "cbam_cpu: ", name, " has the wrong dtype");
}

void check_index(const Tensor& t, int64_t numel, const char* name) {
  TORCH_CHECK(t.is_contiguous() && t.scalar_type() == at::kLong && t.numel() == numel,
              "cbam_cpu: ", name, " must be a contiguous int64 tensor of ", numel, " elements");
}

int64_t grain_rows(int64_t row_len) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(row_len, 1)); }

Tensor empty_or_none(bool present, at::IntArrayRef shape, const at::TensorOptions& options) {
  return at::empty(present ? shape : at::IntArrayRef({0}), options);
}

// ---- row loops (restrict-qualified so that GCC vectorizes them) -----------------------------------

// Sum and (kMax) maximum of a row in one loop (NaN aside: the caller checks the sum for NaN). GCC
// does not vectorize the max reduction on its own, so the loop uses GCC/Clang vector extensions:
// two 32-byte accumulators of each.
template <typename T, bool kMax>
inline void row_sum_max(const T* __restrict__ x, int64_t n, T& sum, T& max) {
  typedef T V __attribute__((vector_size(32)));
  constexpr int64_t L = 32 / sizeof(T);
  T s = 0, best = x[0];
  int64_t j = 0;
  if (n >= 2 * L) {
    V m0, m1;
    std::memcpy(&m0, x, sizeof(V));
    std::memcpy(&m1, x + L, sizeof(V));
    V s0 = m0, s1 = m1;
    for (j = 2 * L; j + 2 * L <= n; j += 2 * L) {
      V v0, v1;
      std::memcpy(&v0, x + j, sizeof(V));
      std::memcpy(&v1, x + j + L, sizeof(V));
      s0 += v0;
      s1 += v1;
      if (kMax) {
        m0 = v0 > m0 ? v0 : m0;
        m1 = v1 > m1 ? v1 : m1;
      }
    }
    s0 += s1;
    m0 = m1 > m0 ? m1 : m0;
    for (int64_t l = 0; l < L; ++l) {
      s += s0[l];
      if (kMax) best = m0[l] > best ? m0[l] : best;
    }
  }
  for (; j < n; ++j) {
    s += x[j];
    if (kMax) best = x[j] > best ? x[j] : best;
  }
  sum = s;
  max = best;
}

// Index of the first element equal to v, or of the first NaN when v is NaN.
template <typename T>
inline int64_t row_find(const T* __restrict__ x, int64_t n, T v) {
  if (std::isnan(v)) {
    for (int64_t j = 0; j < n; ++j) {
      if (std::isnan(x[j])) return j;
    }
    return 0;
  }
  typedef T V __attribute__((vector_size(32)));
  typedef int64_t W __attribute__((vector_size(32)));
  constexpr int64_t L = 32 / sizeof(T);
  int64_t j = 0;
  for (; j + 2 * L <= n; j += 2 * L) {  // skip whole chunks without a match, 2 vector compares each
    V v0, v1;
    std::memcpy(&v0, x + j, sizeof(V));
    std::memcpy(&v1, x + j + L, sizeof(V));
    const W hit = (W)((v0 == v) | (v1 == v));
    if (hit[0] | hit[1] | hit[2] | hit[3]) break;
  }
  for (; j < n; ++j) {
    if (x[j] == v) return j;
  }
  return 0;
}

template <typename T>
inline void row_scale(T* __restrict__ out, const T* __restrict__ x, T a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = x[j] * a;
}

template <typename T>
inline void row_scale_gate(T* __restrict__ out, const T* __restrict__ x, T a, const T* __restrict__ s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = (x[j] * a) * s[j];
}

template <typename T>
inline void row_gate(T* __restrict__ out, const T* __restrict__ x, const T* __restrict__ s, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = x[j] * s[j];
}

// sum_j x[j] * (v[j] + (index[j] == c) * m[j])
template <typename T>
inline T row_descriptor_dot(const T* __restrict__ x, const T* __restrict__ v, const T* __restrict__ m,
                            const int32_t* __restrict__ index, int32_t c, int64_t n) {
  T s = 0;
  for (int64_t j = 0; j < n; ++j) s += x[j] * (v[j] + (index[j] == c ? m[j] : T(0)));
  return s;
}

// out[j] = a * (g[j] * s[j] + v[j] + (index[j] == c) * m[j]) + d
template <typename T>
inline void row_input_grad(T* __restrict__ out, const T* __restrict__ g, const T* __restrict__ s,
                           const T* __restrict__ v, const T* __restrict__ m, const int32_t* __restrict__ index,
                           int32_t c, T a, T d, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = a * (g[j] * s[j] + v[j] + (index[j] == c ? m[j] : T(0))) + d;
}

template <typename T>
inline void row_axpb(T* __restrict__ out, const T* __restrict__ g, T a, T d, int64_t n) {
  for (int64_t j = 0; j < n; ++j) out[j] = a * g[j] + d;
}

// acc[j] += g[j] * x[j] * a (kDs); returns sum_j g[j] * x[j] * s[j] (kT)
template <typename T, bool kDs, bool kT>
inline T row_grad_product(T* __restrict__ acc, const T* __restrict__ g, const T* __restrict__ x, T a,
                          const T* __restrict__ s, int64_t n) {
  T t = 0;
  for (int64_t j = 0; j < n; ++j) {
    const T p = g[j] * x[j];
    if (kDs) acc[j] += p * a;
    if (kT) t += p * s[j];
  }
  return t;
}

// sum[j] += x[j] * a; (kMax) m[j], index[j] <- x[j] * a, c where x[j] * a > m[j]
template <typename T, bool kMax>
inline void row_channel_pool(T* __restrict__ sum, T* __restrict__ m, int32_t* __restrict__ index,
                             const T* __restrict__ x, T a, int32_t c, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const T v = x[j] * a;
    sum[j] += v;
    if (kMax) {
      const bool gt = v > m[j];
      m[j] = gt ? v : m[j];
      index[j] = gt ? c : index[j];
    }
  }
}

// ---- forward -------------------------------------------------------------------------------------

// Per row (b, c): mean, max and first argmax over N; one read from memory (the row then sits in cache).
template <typename T, bool kMax>
void hw_pool_kernel(const T* x, int64_t rows, int64_t n, T* avg, T* mx, int64_t* idx) {
  at::parallel_for(0, rows, grain_rows(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const T* row = x + r * n;
      T total, best;
      row_sum_max<T, kMax>(row, n, total, best);
      if (avg) avg[r] = total / static_cast<T>(n);
      if (kMax) {
        if (std::isnan(total)) {  // a NaN in the row is its maximum (torch.max semantics)
          for (int64_t k = 0; k < n; ++k) {
            if (std::isnan(row[k])) {
              best = row[k];
              break;
            }
          }
        }
        mx[r] = best;
        if (idx) idx[r] = row_find(row, n, best);
      }
    }
  });
}

std::tuple<Tensor, Tensor, Tensor> hw_pool(const Tensor& x, bool want_avg, bool want_max, bool want_index) {
  const Dims d = full_dims(x, "x");
  TORCH_CHECK(d.n > 0, "cbam_cpu: empty feature map");
  const auto opt = x.options();
  Tensor avg = empty_or_none(want_avg, {d.b, d.c}, opt);
  Tensor mx = empty_or_none(want_max, {d.b, d.c}, opt);
  Tensor idx = empty_or_none(want_max && want_index, {d.b, d.c}, opt.dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cbam_cpu::hw_pool", [&] {
    scalar_t* avg_p = want_avg ? avg.mutable_data_ptr<scalar_t>() : nullptr;
    if (want_max) {
      hw_pool_kernel<scalar_t, true>(x.const_data_ptr<scalar_t>(), d.b * d.c, d.n, avg_p,
                                     mx.mutable_data_ptr<scalar_t>(),
                                     want_index ? idx.mutable_data_ptr<int64_t>() : nullptr);
    } else {
      hw_pool_kernel<scalar_t, false>(x.const_data_ptr<scalar_t>(), d.b * d.c, d.n, avg_p, nullptr, nullptr);
    }
  });
  return {avg, mx, idx};
}

// Per position (b, n): mean, max and first argmax over c of a[b, c] * x[b, c, n], without writing
// the product: c outer, a block of n inner.
template <typename T, bool kMax>
void channel_pool_kernel(const T* x, const T* a, Dims d, T* avg, T* mx, int64_t* idx) {
  const int64_t blocks = (d.n + kBlock - 1) / kBlock;
  at::parallel_for(0, d.b * blocks, grain_rows(d.c * std::min(d.n, kBlock)), [&](int64_t t0, int64_t t1) {
    std::vector<T> sum(kBlock), m(kBlock);
    std::vector<int32_t> at_(kBlock);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / blocks, n0 = (task % blocks) * kBlock, len = std::min(kBlock, d.n - n0);
      const T* xb = x + b * d.c * d.n + n0;
      const T* ab = a + b * d.c;
      for (int64_t j = 0; j < len; ++j) {
        const T v = xb[j] * ab[0];
        sum[j] = v;
        m[j] = v;
        at_[j] = 0;
      }
      for (int64_t c = 1; c < d.c; ++c) {
        row_channel_pool<T, kMax>(sum.data(), m.data(), at_.data(), xb + c * d.n, ab[c], static_cast<int32_t>(c), len);
      }
      for (int64_t j = 0; j < len; ++j) {
        const int64_t o = b * d.n + n0 + j;
        if (avg) avg[o] = sum[j] / static_cast<T>(d.c);
        if (kMax) {
          T best = m[j];
          int64_t best_at = at_[j];
          if (std::isnan(sum[j])) {  // a NaN along the channels is their maximum
            for (int64_t c = 0; c < d.c; ++c) {
              const T v = xb[c * d.n + j] * ab[c];
              if (std::isnan(v)) {
                best = v;
                best_at = c;
                break;
              }
            }
          }
          mx[o] = best;
          if (idx) idx[o] = best_at;
        }
      }
    }
  });
}

std::tuple<Tensor, Tensor, Tensor> channel_pool(const Tensor& x, const Tensor& scale, bool want_avg, bool want_max,
                                                bool want_index) {
  const Dims d = full_dims(x, "x");
  TORCH_CHECK(d.c > 0 && d.c < (int64_t(1) << 31), "cbam_cpu: unsupported channel count");
  check_small(scale, x, d.b * d.c, "scale");
  const auto opt = x.options();
  Tensor avg = empty_or_none(want_avg, {d.b, d.n}, opt);
  Tensor mx = empty_or_none(want_max, {d.b, d.n}, opt);
  Tensor idx = empty_or_none(want_max && want_index, {d.b, d.n}, opt.dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cbam_cpu::channel_pool", [&] {
    scalar_t* avg_p = want_avg ? avg.mutable_data_ptr<scalar_t>() : nullptr;
    if (want_max) {
      channel_pool_kernel<scalar_t, true>(x.const_data_ptr<scalar_t>(), scale.const_data_ptr<scalar_t>(), d, avg_p,
                                          mx.mutable_data_ptr<scalar_t>(),
                                          want_index ? idx.mutable_data_ptr<int64_t>() : nullptr);
    } else {
      channel_pool_kernel<scalar_t, false>(x.const_data_ptr<scalar_t>(), scale.const_data_ptr<scalar_t>(), d, avg_p,
                                           nullptr, nullptr);
    }
  });
  return {avg, mx, idx};
}

// out[b, c, n] = x[b, c, n] * a[b, c] * s[b, n] (either gate optional): one read, one write.
Tensor gate(const Tensor& x, const std::optional<Tensor>& a, const std::optional<Tensor>& s) {
  const Dims d = full_dims(x, "x");
  const bool has_a = a.has_value(), has_s = s.has_value();
  if (has_a) check_small(*a, x, d.b * d.c, "a");
  if (has_s) check_small(*s, x, d.b * d.n, "s");
  Tensor out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cbam_cpu::gate", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* ap = has_a ? a->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* sp = has_s ? s->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* op = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, d.b * d.c, grain_rows(d.n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const scalar_t* xr = xp + r * d.n;
        scalar_t* orow = op + r * d.n;
        if (sp && ap) {
          row_scale_gate(orow, xr, ap[r], sp + (r / d.c) * d.n, d.n);
        } else if (sp) {
          row_gate(orow, xr, sp + (r / d.c) * d.n, d.n);
        } else {
          row_scale(orow, xr, ap ? ap[r] : scalar_t(1), d.n);
        }
      }
    });
  });
  return out;
}

// ---- backward ------------------------------------------------------------------------------------

// One read of grad and x: ds[b, n] = sum_c g*x*a[b, c] (kDs) and t[b, c] = sum_n g*x*s[b, n] (kT).
template <typename T, bool kDs, bool kT>
void backward_reduce_kernel(const T* g, const T* x, const T* a, const T* s, Dims d, T* ds, T* t) {
  const int64_t blocks = (d.n + kBlock - 1) / kBlock;
  std::vector<T> partial(kT ? d.b * blocks * d.c : 0);
  at::parallel_for(0, d.b * blocks, grain_rows(d.c * std::min(d.n, kBlock)), [&](int64_t t0, int64_t t1) {
    std::vector<T> acc(kDs ? kBlock : 0);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / blocks, n0 = (task % blocks) * kBlock, len = std::min(kBlock, d.n - n0);
      const int64_t off = b * d.c * d.n + n0;
      const T* sb = kT ? s + b * d.n + n0 : nullptr;
      if (kDs) std::fill(acc.begin(), acc.begin() + len, T(0));
      for (int64_t c = 0; c < d.c; ++c) {
        const T tc = row_grad_product<T, kDs, kT>(acc.data(), g + off + c * d.n, x + off + c * d.n,
                                                  kDs ? a[b * d.c + c] : T(0), sb, len);
        if (kT) partial[(b * blocks + task % blocks) * d.c + c] = tc;
      }
      if (kDs) std::copy(acc.begin(), acc.begin() + len, ds + b * d.n + n0);
    }
  });
  if (kT) {
    for (int64_t b = 0; b < d.b; ++b) {
      for (int64_t c = 0; c < d.c; ++c) {
        T total = 0;
        for (int64_t k = 0; k < blocks; ++k) total += partial[(b * blocks + k) * d.c + c];
        t[b * d.c + c] = total;
      }
    }
  }
}

std::tuple<Tensor, Tensor> backward_reduce(const Tensor& grad, const Tensor& x, const std::optional<Tensor>& a,
                                           const std::optional<Tensor>& s) {
  const Dims d = full_dims(x, "x");
  full_dims(grad, "grad");
  TORCH_CHECK(grad.sizes() == x.sizes() && grad.scalar_type() == x.scalar_type(), "cbam_cpu: grad must match x");
  const bool want_ds = a.has_value(), want_t = s.has_value();
  TORCH_CHECK(want_ds || want_t, "cbam_cpu::backward_reduce: nothing to compute");
  if (want_ds) check_small(*a, x, d.b * d.c, "a");
  if (want_t) check_small(*s, x, d.b * d.n, "s");
  Tensor ds = empty_or_none(want_ds, {d.b, d.n}, x.options());
  Tensor t = empty_or_none(want_t, {d.b, d.c}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cbam_cpu::backward_reduce", [&] {
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* ap = want_ds ? a->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* sp = want_t ? s->const_data_ptr<scalar_t>() : nullptr;
    scalar_t* dsp = want_ds ? ds.mutable_data_ptr<scalar_t>() : nullptr;
    scalar_t* tp = want_t ? t.mutable_data_ptr<scalar_t>() : nullptr;
    if (want_ds && want_t) {
      backward_reduce_kernel<scalar_t, true, true>(gp, xp, ap, sp, d, dsp, tp);
    } else if (want_ds) {
      backward_reduce_kernel<scalar_t, true, false>(gp, xp, ap, sp, d, dsp, tp);
    } else {
      backward_reduce_kernel<scalar_t, false, true>(gp, xp, ap, sp, d, dsp, tp);
    }
  });
  return {ds, t};
}

// r[b, c] = sum_n x[b, c, n] * (avg[b, n] + (index[b, n] == c) * max[b, n]): the part of dL/dM_c
// that flows through the spatial descriptor of F' = M_c * F.
Tensor descriptor_dot(const Tensor& x, const Tensor& avg, const Tensor& mx, const Tensor& index) {
  const Dims d = full_dims(x, "x");
  check_small(avg, x, d.b * d.n, "avg");
  check_small(mx, x, d.b * d.n, "max");
  check_index(index, d.b * d.n, "index");
  Tensor index32 = index.to(at::kInt);
  Tensor r = at::empty({d.b, d.c}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cbam_cpu::descriptor_dot", [&] {
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* vp = avg.const_data_ptr<scalar_t>();
    const scalar_t* mp = mx.const_data_ptr<scalar_t>();
    const int32_t* ip = index32.const_data_ptr<int32_t>();
    scalar_t* rp = r.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, d.b * d.c, grain_rows(d.n), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t b = row / d.c;
        const int32_t c = static_cast<int32_t>(row % d.c);
        rp[row] = row_descriptor_dot(xp + row * d.n, vp + b * d.n, mp + b * d.n, ip + b * d.n, c, d.n);
      }
    });
  });
  return r;
}

// dx = a * (g * s + avg_s + [index_s == c] * max_s) + avg_c + [n == index_c] * max_c: one read of
// grad, one write. The spatial terms (s, avg_s, max_s, index_s, (B, N)) come together or not at
// all; the channel terms (a, avg_c, (B, C)) are per-row scalars, max_c/index_c optional.
Tensor backward_input(const Tensor& grad, const Tensor& a, const Tensor& avg_c, const std::optional<Tensor>& max_c,
                      const std::optional<Tensor>& index_c, const std::optional<Tensor>& s,
                      const std::optional<Tensor>& avg_s, const std::optional<Tensor>& max_s,
                      const std::optional<Tensor>& index_s) {
  const Dims d = full_dims(grad, "grad");
  check_small(a, grad, d.b * d.c, "a");
  check_small(avg_c, grad, d.b * d.c, "avg_c");
  const bool has_max_c = max_c.has_value(), spatial = s.has_value();
  TORCH_CHECK(has_max_c == index_c.has_value(), "cbam_cpu: max_c and index_c come together");
  if (has_max_c) {
    check_small(*max_c, grad, d.b * d.c, "max_c");
    check_index(*index_c, d.b * d.c, "index_c");
  }
  Tensor index32;
  if (spatial) {
    TORCH_CHECK(avg_s.has_value() && max_s.has_value() && index_s.has_value(),
                "cbam_cpu: s, avg_s, max_s and index_s come together");
    check_small(*s, grad, d.b * d.n, "s");
    check_small(*avg_s, grad, d.b * d.n, "avg_s");
    check_small(*max_s, grad, d.b * d.n, "max_s");
    check_index(*index_s, d.b * d.n, "index_s");
    index32 = index_s->to(at::kInt);
  }
  Tensor dx = at::empty_like(grad);
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "cbam_cpu::backward_input", [&] {
    const scalar_t* gp = grad.const_data_ptr<scalar_t>();
    const scalar_t* ap = a.const_data_ptr<scalar_t>();
    const scalar_t* cp = avg_c.const_data_ptr<scalar_t>();
    const scalar_t* mcp = has_max_c ? max_c->const_data_ptr<scalar_t>() : nullptr;
    const int64_t* icp = has_max_c ? index_c->const_data_ptr<int64_t>() : nullptr;
    const scalar_t* sp = spatial ? s->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* vp = spatial ? avg_s->const_data_ptr<scalar_t>() : nullptr;
    const scalar_t* mp = spatial ? max_s->const_data_ptr<scalar_t>() : nullptr;
    const int32_t* ip = spatial ? index32.const_data_ptr<int32_t>() : nullptr;
    scalar_t* dxp = dx.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, d.b * d.c, grain_rows(d.n), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t b = row / d.c;
        const int32_t c = static_cast<int32_t>(row % d.c);
        const scalar_t ac = ap[row], dc = cp[row];
        scalar_t* out = dxp + row * d.n;
        if (spatial) {
          row_input_grad(out, gp + row * d.n, sp + b * d.n, vp + b * d.n, mp + b * d.n, ip + b * d.n, c, ac, dc, d.n);
        } else {
          row_axpb(out, gp + row * d.n, ac, dc, d.n);
        }
        if (has_max_c) out[icp[row]] += mcp[row];
      }
    });
  });
  return dx;
}

}  // namespace

TORCH_LIBRARY(cbam_cpu, m) {
  m.def("hw_pool(Tensor x, bool avg, bool max, bool index) -> (Tensor, Tensor, Tensor)");
  m.def("channel_pool(Tensor x, Tensor scale, bool avg, bool max, bool index) -> (Tensor, Tensor, Tensor)");
  m.def("gate(Tensor x, Tensor? a, Tensor? s) -> Tensor");
  m.def("backward_reduce(Tensor grad, Tensor x, Tensor? a, Tensor? s) -> (Tensor, Tensor)");
  m.def("descriptor_dot(Tensor x, Tensor avg, Tensor max, Tensor index) -> Tensor");
  m.def(
      "backward_input(Tensor grad, Tensor a, Tensor avg_c, Tensor? max_c, Tensor? index_c, Tensor? s, "
      "Tensor? avg_s, Tensor? max_s, Tensor? index_s) -> Tensor");
}

TORCH_LIBRARY_IMPL(cbam_cpu, CPU, m) {
  m.impl("hw_pool", &hw_pool);
  m.impl("channel_pool", &channel_pool);
  m.impl("gate", &gate);
  m.impl("backward_reduce", &backward_reduce);
  m.impl("descriptor_dot", &descriptor_dot);
  m.impl("backward_input", &backward_input);
}
