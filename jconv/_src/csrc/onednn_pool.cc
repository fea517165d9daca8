// oneDNN max and average pooling for XLA:CPU through XLA's typed FFI (float32, 1-3 spatial axes,
// channels-first or channels-last data, PyTorch's semantics).
//
//   JconvMaxPoolFwd (x)       -> (y, ws)   forward; ws: per output, the window offset of its pick
//   JconvMaxPoolBwd (dy, ws)  -> dx       the input gradient (each dy to its pick)
//   JconvAvgPoolFwd (x)       -> y        average pooling (attribute include_pad: the divisor counts
//   JconvAvgPoolBwd (dy)      -> dx       the padding, or only the input's elements)
//   JconvPoolSupported(...)               (C) whether oneDNN takes a geometry, for the Python side
// Attributes: kernel, strides, pad_lo, pad_hi (per spatial axis), channels_last (0 / 1), blocked (0, or
// b: the activations, and ws, are oneDNN's blocked (N, C / b, *s, b)).
//
// ws is uint8 with y's shape: the offset of the picked element in the window, row-major over the
// kernel (oneDNN's own workspace for these geometries; JconvPoolSupported checks that it is).
// oneDNN picks the first maximum, as PyTorch does, but it drops NaN and answers -FLT_MAX for a
// window of -inf. So where x holds a value of magnitude >= FLT_MAX (NaN, +-inf, +-FLT_MAX), the
// forward runs a plain loop with PyTorch's CPU rule instead (pick while `v > max || isnan(v)`, from
// -inf at the window's first element): NaN propagates (the window's last NaN takes the gradient).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "oneapi/dnnl/dnnl.hpp"
#include "onednn_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Dims = memory::dims;

namespace {

using jconv::Engine;

// The pooling algorithms, as the Python side numbers them.
enum class Algo { kMax = 0, kAvgIncludePad = 1, kAvgExcludePad = 2 };

struct Geometry {
  Dims src, dst;                         // logical oneDNN dims (N, C, spatial...)
  Dims kernel, strides, pad_l, pad_r;    // per spatial axis
  bool channels_last;
  int64_t blocked;                       // 0: plain buffers; b: oneDNN's blocked (N, C / b, *s, b)
  Algo algo;
};

// The buffers' layout: plain channels-first / channels-last, or blocked.
memory::format_tag Tag(const Geometry& g) { return jconv::BufferTag(g.src.size(), g.channels_last, g.blocked); }

dnnl::algorithm OneDnnAlgorithm(Algo a) {
  switch (a) {
    case Algo::kMax: return dnnl::algorithm::pooling_max;
    case Algo::kAvgIncludePad: return dnnl::algorithm::pooling_avg_include_padding;
    default: return dnnl::algorithm::pooling_avg_exclude_padding;
  }
}

struct Entry {
  dnnl::pooling_forward fwd;
  dnnl::pooling_backward bwd;
  memory::desc src, dst, ws;
};

std::unique_ptr<Entry> Build(const Geometry& g) {
  memory::desc src(g.src, memory::data_type::f32, Tag(g));
  memory::desc dst(g.dst, memory::data_type::f32, Tag(g));
  const Dims dilation(g.kernel.size(), 0);
  const auto algo = OneDnnAlgorithm(g.algo);
  dnnl::pooling_forward::primitive_desc fwd(Engine(), dnnl::prop_kind::forward_training, algo, src, dst, g.strides,
                                            g.kernel, dilation, g.pad_l, g.pad_r);
  dnnl::pooling_backward::primitive_desc bwd(Engine(), algo, src, dst, g.strides, g.kernel, dilation, g.pad_l,
                                             g.pad_r, fwd);
  const memory::desc u8_dst(g.dst, memory::data_type::u8, Tag(g));
  if (g.algo == Algo::kMax && fwd.workspace_desc() != u8_dst)
    throw std::runtime_error("oneDNN's max pooling workspace is not uint8 in the output's layout");
  auto e = std::make_unique<Entry>();
  e->fwd = dnnl::pooling_forward(fwd);
  e->bwd = dnnl::pooling_backward(bwd);
  e->src = src, e->dst = dst, e->ws = fwd.workspace_desc();
  return e;
}

std::string Key(const Geometry& g) {
  std::string key = std::to_string(static_cast<int>(g.algo)) + (g.channels_last ? "L" : "F") +
                    std::to_string(g.blocked);
  for (const Dims* d : {&g.src, &g.dst, &g.kernel, &g.strides, &g.pad_l, &g.pad_r}) {
    key += '|';
    for (auto v : *d) key += std::to_string(v) + ',';
  }
  return key;
}

constexpr size_t kMaxCached = 256;

Entry& Cached(const Geometry& g) {
  thread_local std::unordered_map<std::string, std::unique_ptr<Entry>> cache;
  auto key = Key(g);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  if (cache.size() >= kMaxCached) cache.clear();
  return *(cache[key] = Build(g));
}

// Whether every |x| < FLT_MAX (no NaN, no infinity): the largest magnitude's bits, 16 lanes at once.
bool AllFinite(const float* x, size_t n) {
  const auto* bits = reinterpret_cast<const uint32_t*>(x);
  uint32_t lanes[16] = {0};
  size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) lanes[j] = std::max(lanes[j], bits[i + j] & 0x7fffffffu);
  uint32_t m = *std::max_element(lanes, lanes + 16);
  for (; i < n; ++i) m = std::max(m, bits[i] & 0x7fffffffu);
  return m < 0x7f7fffffu;  // FLT_MAX's bits
}

// PyTorch's CPU max pooling, as a plain loop (inputs with NaN or infinities only).
void Reference(const Geometry& g, const float* x, float* y, uint8_t* ws) {
  const size_t r = g.kernel.size();
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, p[3] = {0, 0, 0};
  for (size_t i = 0; i < r; ++i) {  // right-aligned: 1-D and 2-D are 3-D with leading size-1 axes
    size_t j = 3 - r + i;
    in[j] = g.src[2 + i], out[j] = g.dst[2 + i], k[j] = g.kernel[i], s[j] = g.strides[i], p[j] = g.pad_l[i];
  }
  const int64_t N = g.src[0], C = g.src[1];
  const int64_t b = g.blocked;
  auto offset = [&](int64_t n, int64_t c, const int64_t* pos, const int64_t* size) {
    const int64_t sp = (pos[0] * size[1] + pos[1]) * size[2] + pos[2], area = size[0] * size[1] * size[2];
    if (b) return ((n * (C / b) + c / b) * area + sp) * b + c % b;
    return g.channels_last ? (n * area + sp) * C + c : (n * C + c) * area + sp;
  };
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t o0 = 0; o0 < out[0]; ++o0)
        for (int64_t o1 = 0; o1 < out[1]; ++o1)
          for (int64_t o2 = 0; o2 < out[2]; ++o2) {
            float best = -std::numeric_limits<float>::infinity();
            int pick = -1;
            const int64_t o[3] = {o0, o1, o2};
            for (int64_t a = 0; a < k[0]; ++a)
              for (int64_t b = 0; b < k[1]; ++b)
                for (int64_t d = 0; d < k[2]; ++d) {
                  const int64_t pos[3] = {o[0] * s[0] + a - p[0], o[1] * s[1] + b - p[1], o[2] * s[2] + d - p[2]};
                  bool real = true;
                  for (int q = 0; q < 3; ++q) real &= pos[q] >= 0 && pos[q] < in[q];
                  if (!real) continue;
                  const float v = x[offset(n, c, pos, in)];
                  if (pick < 0 || v > best || std::isnan(v)) {
                    best = v;
                    pick = static_cast<int>((a * k[1] + b) * k[2] + d);
                  }
                }
            const int64_t at = offset(n, c, o, out);
            y[at] = best;
            ws[at] = static_cast<uint8_t>(pick);
          }
}

template <typename Span>
Geometry MakeGeometry(const Span& src, const Span& dst, ffi::Span<const int64_t> kernel,
                      ffi::Span<const int64_t> strides, ffi::Span<const int64_t> pad_lo,
                      ffi::Span<const int64_t> pad_hi, int64_t channels_last, int64_t blocked, Algo algo) {
  Geometry g;
  g.algo = algo;
  g.channels_last = channels_last != 0;
  g.blocked = blocked;
  g.src = jconv::BufferDims(src, g.channels_last, blocked);
  g.dst = jconv::BufferDims(dst, g.channels_last, blocked);
  g.kernel.assign(kernel.begin(), kernel.end());
  g.strides.assign(strides.begin(), strides.end());
  g.pad_l.assign(pad_lo.begin(), pad_lo.end());
  g.pad_r.assign(pad_hi.begin(), pad_hi.end());
  return g;
}

ffi::Error Fwd(ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y, ffi::Result<ffi::AnyBuffer> ws,
               ffi::Span<const int64_t> kernel, ffi::Span<const int64_t> strides, ffi::Span<const int64_t> pad_lo,
               ffi::Span<const int64_t> pad_hi, int64_t channels_last, int64_t blocked) {
  if (x.element_type() != ffi::F32 || ws->element_type() != ffi::U8)
    return ffi::Error::InvalidArgument("jconv oneDNN max pooling: float32 input, uint8 workspace only");
  try {
    Geometry g = MakeGeometry(x.dimensions(), y->dimensions(), kernel, strides, pad_lo, pad_hi, channels_last,
                              blocked, Algo::kMax);
    const auto* xs = static_cast<const float*>(x.untyped_data());
    if (!AllFinite(xs, x.element_count())) {
      Reference(g, xs, static_cast<float*>(y->untyped_data()), static_cast<uint8_t*>(ws->untyped_data()));
      return ffi::Error::Success();
    }
    thread_local dnnl::stream stream(Engine());
    Entry& e = Cached(g);
    std::lock_guard<std::mutex> lock(jconv::ExecMutex());
    memory mx(e.src, Engine(), x.untyped_data()), my(e.dst, Engine(), y->untyped_data());
    memory mw(e.ws, Engine(), ws->untyped_data());
    e.fwd.execute(stream, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DST, my}, {DNNL_ARG_WORKSPACE, mw}});
    stream.wait();
  } catch (const std::exception& err) {
    return ffi::Error::Internal(std::string("jconv oneDNN max pooling: ") + err.what());
  }
  return ffi::Error::Success();
}

ffi::Error Bwd(ffi::AnyBuffer dy, ffi::AnyBuffer ws, ffi::Result<ffi::AnyBuffer> dx,
               ffi::Span<const int64_t> kernel, ffi::Span<const int64_t> strides, ffi::Span<const int64_t> pad_lo,
               ffi::Span<const int64_t> pad_hi, int64_t channels_last, int64_t blocked) {
  if (dy.element_type() != ffi::F32 || ws.element_type() != ffi::U8 || dx->element_type() != ffi::F32)
    return ffi::Error::InvalidArgument("jconv oneDNN max pooling: float32 gradients, uint8 workspace only");
  try {
    Geometry g = MakeGeometry(dx->dimensions(), dy.dimensions(), kernel, strides, pad_lo, pad_hi, channels_last,
                              blocked, Algo::kMax);
    thread_local dnnl::stream stream(Engine());
    Entry& e = Cached(g);
    std::lock_guard<std::mutex> lock(jconv::ExecMutex());
    memory mdy(e.dst, Engine(), dy.untyped_data()), mdx(e.src, Engine(), dx->untyped_data());
    memory mw(e.ws, Engine(), ws.untyped_data());
    e.bwd.execute(stream, {{DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_DIFF_SRC, mdx}, {DNNL_ARG_WORKSPACE, mw}});
    stream.wait();
  } catch (const std::exception& err) {
    return ffi::Error::Internal(std::string("jconv oneDNN max pooling gradient: ") + err.what());
  }
  return ffi::Error::Success();
}

// Average pooling, forward (x -> y) or backward (dy -> dx): one call of the cached primitive.
ffi::Error Avg(bool backward, ffi::AnyBuffer in, ffi::Result<ffi::AnyBuffer> out, ffi::Span<const int64_t> kernel,
               ffi::Span<const int64_t> strides, ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi,
               int64_t channels_last, int64_t blocked, int64_t include_pad) {
  if (in.element_type() != ffi::F32 || out->element_type() != ffi::F32)
    return ffi::Error::InvalidArgument("jconv oneDNN average pooling: float32 only");
  try {
    const Algo algo = include_pad ? Algo::kAvgIncludePad : Algo::kAvgExcludePad;
    Geometry g = backward ? MakeGeometry(out->dimensions(), in.dimensions(), kernel, strides, pad_lo, pad_hi,
                                         channels_last, blocked, algo)
                          : MakeGeometry(in.dimensions(), out->dimensions(), kernel, strides, pad_lo, pad_hi,
                                         channels_last, blocked, algo);
    thread_local dnnl::stream stream(Engine());
    Entry& e = Cached(g);
    std::lock_guard<std::mutex> lock(jconv::ExecMutex());
    if (backward) {
      memory mdy(e.dst, Engine(), in.untyped_data()), mdx(e.src, Engine(), out->untyped_data());
      e.bwd.execute(stream, {{DNNL_ARG_DIFF_DST, mdy}, {DNNL_ARG_DIFF_SRC, mdx}});
    } else {
      memory mx(e.src, Engine(), in.untyped_data()), my(e.dst, Engine(), out->untyped_data());
      e.fwd.execute(stream, {{DNNL_ARG_SRC, mx}, {DNNL_ARG_DST, my}});
    }
    stream.wait();
  } catch (const std::exception& err) {
    return ffi::Error::Internal(std::string("jconv oneDNN average pooling: ") + err.what());
  }
  return ffi::Error::Success();
}

template <bool backward>
ffi::Error AvgHandler(ffi::AnyBuffer in, ffi::Result<ffi::AnyBuffer> out, ffi::Span<const int64_t> kernel,
                      ffi::Span<const int64_t> strides, ffi::Span<const int64_t> pad_lo,
                      ffi::Span<const int64_t> pad_hi, int64_t channels_last, int64_t blocked,
                      int64_t include_pad) {
  return Avg(backward, in, out, kernel, strides, pad_lo, pad_hi, channels_last, blocked, include_pad);
}

// The attributes every pooling handler takes, appended to binding `b`.
template <typename Binding>
auto WithPoolAttrs(Binding&& b) {
  return std::move(b).template Attr<ffi::Span<const int64_t>>("kernel")
      .template Attr<ffi::Span<const int64_t>>("strides")
      .template Attr<ffi::Span<const int64_t>>("pad_lo")
      .template Attr<ffi::Span<const int64_t>>("pad_hi")
      .template Attr<int64_t>("channels_last")
      .template Attr<int64_t>("blocked");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    JconvMaxPoolFwd, Fwd,
    WithPoolAttrs(ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    JconvMaxPoolBwd, Bwd,
    WithPoolAttrs(ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>()));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JconvAvgPoolFwd, AvgHandler<false>,
                              WithPoolAttrs(ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>())
                                  .Attr<int64_t>("include_pad"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JconvAvgPoolBwd, AvgHandler<true>,
                              WithPoolAttrs(ffi::Ffi::Bind().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>())
                                  .Attr<int64_t>("include_pad"));

// 1 where oneDNN takes this geometry for `algo` (0 max, 1 average counting the padding, 2 average of
// the input's elements): its primitives build and, for max, its workspace is uint8 in the output's
// layout; else 0. `src` and `dst` are the buffers' dims (rank + 2 each, + 3 blocked), the rest per
// spatial axis.
extern "C" int JconvPoolSupported(int64_t algo, int64_t spatial_rank, const int64_t* src, const int64_t* dst,
                                  const int64_t* kernel, const int64_t* strides, const int64_t* pad_lo,
                                  const int64_t* pad_hi, int64_t channels_last, int64_t blocked) {
  try {
    const size_t r = static_cast<size_t>(spatial_rank), n = r + (blocked ? 3 : 2);
    using S = ffi::Span<const int64_t>;
    Build(MakeGeometry(S(src, n), S(dst, n), S(kernel, r), S(strides, r), S(pad_lo, r), S(pad_hi, r), channels_last,
                       blocked, static_cast<Algo>(algo)));
    return 1;
  } catch (const std::exception&) {
    return 0;
  }
}
