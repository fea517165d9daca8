// oneDNN convolutions for XLA:CPU through XLA's typed FFI.
//
// Three handlers, one per term of a convolution's derivative (float32, 1-3 spatial axes,
// channels-first or channels-last data, weights (O, C / groups, *kernel)):
//   JconvConvFwd        (x, w)  -> y    forward
//   JconvConvBwdData    (dy, w) -> dx   input gradient (= the transposed convolution)
//   JconvConvBwdWeights (x, dy) -> dw   weight gradient
// Attributes: strides, dilation (1 = dense), pad_lo, pad_hi (per spatial axis), groups,
// channels_last (0 / 1), blocked (0, or b: the activations are oneDNN's blocked (N, C / b, *s, b)),
// direct (0 / 1: the primitives run on the channels-last buffers as they are, JconvConvNxc).
//
// The primitives run on oneDNN's own (blocked) memory formats (format_tag::any): the plain
// NCHW / NHWC ones were several times slower. Plain buffers are reordered in and out; blocked ones
// are already in the primitive's format, and JconvConvBlock (C) tells the Python side where oneDNN
// would pick that format and the same kernel, so that XLA can keep activations blocked between
// calls. Where that blocked layout would pad the channels (LeNet's 1 -> 6 -> 16), JconvConvNxc tells
// where oneDNN's channels-last kernels take the buffers as they are instead. A primitive and its reorders are built once per geometry and thread (thread_local caches:
// XLA may run several custom calls at once, each on its own thread); the blocked copies live in
// per-thread scratch buffers. One primitive runs at a time (ExecMutex): each already uses every core.

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <new>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "onednn_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Dims = memory::dims;

namespace {

using jconv::BufferDims;
using jconv::BufferTag;
using jconv::BlockedTag;
using jconv::Engine;

enum class Kind { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };

struct Geometry {
  Dims src, wei, dst;                   // logical oneDNN dims (N, C, spatial...), ([G,] O, I, k...)
  Dims strides, dilates, pad_l, pad_r;  // dilates: oneDNN counts the gaps (dilation - 1)
  bool channels_last;
  int64_t blocked;                      // 0: plain buffers; b: activations in oneDNN's nC...b layout
  bool direct;                          // plain channels-last activations the primitives take as they are
};

// (O, C / g, k...) -> (g, O / g, C / g, k...) when grouped: the same memory.
Dims WeightDims(ffi::Span<const int64_t> d, int64_t groups) {
  Dims out(d.begin(), d.end());
  if (groups > 1) {
    out[0] = d[0] / groups;
    out.insert(out.begin(), groups);
  }
  return out;
}

memory::format_tag WeightTag(size_t rank) {
  using t = memory::format_tag;
  switch (rank) {  // of the logical weight dims (O, I, k...)
    case 3: return t::oiw;
    case 4: return t::oihw;
    default: return t::oidhw;
  }
}

memory::format_tag GroupedWeightTag(size_t rank) {
  using t = memory::format_tag;
  switch (rank) {
    case 4: return t::goiw;
    case 5: return t::goihw;
    default: return t::goidhw;
  }
}

// A growing, 64-byte aligned scratch buffer. Each thread keeps one per operand slot, shared by
// every geometry it runs: memory stays bounded by the largest blocked tensor, not by the number
// of geometries (a cache of per-geometry buffers grew by gigabytes on ImageNet-sized models).
class Scratch {
 public:
  ~Scratch() { std::free(ptr_); }
  void* Get(size_t bytes) {
    if (bytes > size_) {
      std::free(ptr_);
      size_ = (bytes + 63) / 64 * 64;
      ptr_ = std::aligned_alloc(64, size_);
      if (ptr_ == nullptr) {
        size_ = 0;
        throw std::bad_alloc();
      }
    }
    return ptr_;
  }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

// One tensor of a primitive: XLA's plain memory and, where oneDNN chose another format,
// the reorder into or out of that format (through the thread's scratch buffer for the slot).
struct Operand {
  memory::desc user_md, prim_md;
  bool reordered = false;
  dnnl::reorder reorder;

  void Init(const memory::desc& user, const memory::desc& prim, bool into_prim) {
    user_md = user;
    prim_md = prim;
    reordered = user != prim;
    if (reordered) {
      reorder = into_prim ? dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), user, Engine(), prim))
                          : dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), prim, Engine(), user));
    }
  }
  // The memory the primitive reads: XLA's buffer in place, or its reordered copy.
  memory In(void* data, Scratch& scratch, dnnl::stream& s) {
    memory user(user_md, Engine(), data);
    if (!reordered) return user;
    memory prim(prim_md, Engine(), scratch.Get(prim_md.get_size()));
    reorder.execute(s, user, prim);
    return prim;
  }
  // The memory the primitive writes: XLA's buffer, or a scratch one that Finish reorders out.
  memory Out(void* data, Scratch& scratch) {
    return reordered ? memory(prim_md, Engine(), scratch.Get(prim_md.get_size())) : memory(user_md, Engine(), data);
  }
  void Finish(memory& prim, void* data, dnnl::stream& s) {
    if (!reordered) return;
    memory user(user_md, Engine(), data);
    reorder.execute(s, prim, user);
  }
};

struct Entry {
  dnnl::primitive prim;
  Operand a, b, out;            // the two inputs and the result, in the handler's argument order
  int arg_a, arg_b, arg_out;    // their oneDNN argument names (DNNL_ARG_SRC, ...)
};

std::string Key(Kind kind, const Geometry& g) {
  std::string key = std::to_string(static_cast<int>(kind)) + (g.channels_last ? "L" : "F") +
                    std::to_string(g.blocked) + (g.direct ? "D" : "R");
  for (const Dims* d : {&g.src, &g.wei, &g.dst, &g.strides, &g.dilates, &g.pad_l, &g.pad_r}) {
    key += '|';
    for (auto v : *d) key += std::to_string(v) + ',';
  }
  return key;
}

// The three terms' primitive descriptors for activations described by `src` and `dst` (weights: any).
struct Terms {
  dnnl::convolution_forward::primitive_desc fwd;
  dnnl::convolution_backward_data::primitive_desc data;
  dnnl::convolution_backward_weights::primitive_desc weights;

  Terms(const Geometry& g, const memory::desc& src, const memory::desc& dst) {
    const memory::desc wei(g.wei, memory::data_type::f32, memory::format_tag::any);
    const auto algo = dnnl::algorithm::convolution_direct;
    fwd = dnnl::convolution_forward::primitive_desc(Engine(), dnnl::prop_kind::forward_training, algo, src, wei, dst,
                                                    g.strides, g.dilates, g.pad_l, g.pad_r);
    data = dnnl::convolution_backward_data::primitive_desc(Engine(), algo, src, wei, dst, g.strides, g.dilates,
                                                           g.pad_l, g.pad_r, fwd);
    weights = dnnl::convolution_backward_weights::primitive_desc(Engine(), algo, src, wei, dst, g.strides, g.dilates,
                                                                 g.pad_l, g.pad_r, fwd);
  }
  std::string Impl(Kind kind) const {
    return kind == Kind::kFwd ? fwd.impl_info_str() : kind == Kind::kBwdData ? data.impl_info_str()
                                                                                : weights.impl_info_str();
  }
};

// Whether a term runs on channels-last activations as they are (kernel `direct`) rather than
// reordered into the layout oneDNN picks (kernel `chosen`): where `direct` is the same kernel, or a
// jit one for a wider ISA (LeNet's 6 -> 16 weight gradient: jit:avx512_core on NHWC, 0.25 ms,
// against jit:avx2 on nChw8c, 0.68 ms with the reorders). Another kernel family (brgemm, gemm,
// reference) stays reordered: LeNet's 6 -> 16 input gradient took 0.87 ms on NHWC's brgemm kernel,
// 0.74 ms reordered (2 cores, batch 128, csrc probes).
bool DirectPays(const std::string& direct, const std::string& chosen) {
  if (direct == chosen) return true;
  return direct.rfind("jit:avx512", 0) == 0 && chosen.rfind("jit:avx2", 0) == 0;
}

std::unique_ptr<Entry> Build(Kind kind, const Geometry& g) {
  const auto f32 = memory::data_type::f32;
  const size_t r = g.src.size();
  const bool grouped = g.wei.size() == r + 1;
  const auto act_tag = BufferTag(r, g.channels_last, g.blocked);
  memory::desc src_user(g.src, f32, act_tag);
  memory::desc dst_user(g.dst, f32, act_tag);
  memory::desc wei_user(g.wei, f32, grouped ? GroupedWeightTag(g.wei.size()) : WeightTag(g.wei.size()));
  // Blocked activations are already in the primitive's format: no reorder in or out. Direct ones
  // are where that term's kernel on them is as good as the one oneDNN picks (DirectPays).
  const auto any = memory::format_tag::any;
  const Terms chosen(g, g.blocked ? src_user : memory::desc(g.src, f32, any),
                     g.blocked ? dst_user : memory::desc(g.dst, f32, any));
  std::optional<Terms> given;
  if (g.direct) given.emplace(g, src_user, dst_user);
  const Terms& t = given && DirectPays(given->Impl(kind), chosen.Impl(kind)) ? *given : chosen;
  auto e = std::make_unique<Entry>();
  switch (kind) {
    case Kind::kFwd:
      e->prim = dnnl::convolution_forward(t.fwd);
      e->a.Init(src_user, t.fwd.src_desc(), true);
      e->b.Init(wei_user, t.fwd.weights_desc(), true);
      e->out.Init(dst_user, t.fwd.dst_desc(), false);
      e->arg_a = DNNL_ARG_SRC, e->arg_b = DNNL_ARG_WEIGHTS, e->arg_out = DNNL_ARG_DST;
      break;
    case Kind::kBwdData:
      e->prim = dnnl::convolution_backward_data(t.data);
      e->a.Init(dst_user, t.data.diff_dst_desc(), true);
      e->b.Init(wei_user, t.data.weights_desc(), true);
      e->out.Init(src_user, t.data.diff_src_desc(), false);
      e->arg_a = DNNL_ARG_DIFF_DST, e->arg_b = DNNL_ARG_WEIGHTS, e->arg_out = DNNL_ARG_DIFF_SRC;
      break;
    case Kind::kBwdWeights:
      e->prim = dnnl::convolution_backward_weights(t.weights);
      e->a.Init(src_user, t.weights.src_desc(), true);
      e->b.Init(dst_user, t.weights.diff_dst_desc(), true);
      e->out.Init(wei_user, t.weights.diff_weights_desc(), false);
      e->arg_a = DNNL_ARG_SRC, e->arg_b = DNNL_ARG_DIFF_DST, e->arg_out = DNNL_ARG_DIFF_WEIGHTS;
      break;
  }
  return e;
}

// Primitives per geometry, per thread. Bounded: a program with very many geometries rebuilds.
constexpr size_t kMaxCached = 256;

Entry& Cached(Kind kind, const Geometry& g) {
  thread_local std::unordered_map<std::string, std::unique_ptr<Entry>> cache;
  auto key = Key(kind, g);
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  if (cache.size() >= kMaxCached) cache.clear();
  return *(cache[key] = Build(kind, g));
}

ffi::Error Run(Kind kind, ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
               ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
               ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi, int64_t groups,
               int64_t channels_last, int64_t blocked, int64_t direct) {
  if (a.element_type() != ffi::F32 || b.element_type() != ffi::F32 || out->element_type() != ffi::F32)
    return ffi::Error::InvalidArgument("jconv oneDNN convolution: float32 only");
  try {
    Geometry g;
    g.channels_last = channels_last != 0;
    g.blocked = blocked;
    g.direct = direct != 0 && g.channels_last && !blocked;
    auto a_dims = a.dimensions(), b_dims = b.dimensions(), o_dims = out->dimensions();
    auto act = [&](ffi::Span<const int64_t> d) { return BufferDims(d, g.channels_last, blocked); };
    switch (kind) {  // (src, wei, dst) from (a, b, out)
      case Kind::kFwd:
        g.src = act(a_dims);
        g.wei = WeightDims(b_dims, groups);
        g.dst = act(o_dims);
        break;
      case Kind::kBwdData:
        g.dst = act(a_dims);
        g.wei = WeightDims(b_dims, groups);
        g.src = act(o_dims);
        break;
      case Kind::kBwdWeights:
        g.src = act(a_dims);
        g.dst = act(b_dims);
        g.wei = WeightDims(o_dims, groups);
        break;
    }
    g.strides.assign(strides.begin(), strides.end());
    for (auto d : dilation) g.dilates.push_back(d - 1);
    g.pad_l.assign(pad_lo.begin(), pad_lo.end());
    g.pad_r.assign(pad_hi.begin(), pad_hi.end());

    thread_local dnnl::stream stream(Engine());
    thread_local Scratch scratch[3];
    Entry& e = Cached(kind, g);
    std::lock_guard<std::mutex> lock(jconv::ExecMutex());
    memory ma = e.a.In(a.untyped_data(), scratch[0], stream);
    memory mb = e.b.In(b.untyped_data(), scratch[1], stream);
    memory mo = e.out.Out(out->untyped_data(), scratch[2]);
    e.prim.execute(stream, {{e.arg_a, ma}, {e.arg_b, mb}, {e.arg_out, mo}});
    e.out.Finish(mo, out->untyped_data(), stream);
    stream.wait();
  } catch (const std::exception& err) {
    return ffi::Error::Internal(std::string("jconv oneDNN convolution: ") + err.what());
  }
  return ffi::Error::Success();
}

template <Kind kind>
ffi::Error Handler(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> out,
                   ffi::Span<const int64_t> strides, ffi::Span<const int64_t> dilation,
                   ffi::Span<const int64_t> pad_lo, ffi::Span<const int64_t> pad_hi, int64_t groups,
                   int64_t channels_last, int64_t blocked, int64_t direct) {
  return Run(kind, a, b, out, strides, dilation, pad_lo, pad_hi, groups, channels_last, blocked, direct);
}

auto Binding() {
  return ffi::Ffi::Bind()
      .Arg<ffi::AnyBuffer>()
      .Arg<ffi::AnyBuffer>()
      .Ret<ffi::AnyBuffer>()
      .Attr<ffi::Span<const int64_t>>("strides")
      .Attr<ffi::Span<const int64_t>>("dilation")
      .Attr<ffi::Span<const int64_t>>("pad_lo")
      .Attr<ffi::Span<const int64_t>>("pad_hi")
      .Attr<int64_t>("groups")
      .Attr<int64_t>("channels_last")
      .Attr<int64_t>("blocked")
      .Attr<int64_t>("direct");
}

// A geometry from the queries' C arguments (logical dims; plain buffers, or direct channels-last ones).
Geometry Queried(int64_t rank, const int64_t* src, int64_t wei_rank, const int64_t* wei, const int64_t* dst,
                 const int64_t* strides, const int64_t* dilation, const int64_t* pad_lo, const int64_t* pad_hi,
                 bool direct) {
  const int64_t r = rank - 2;
  Geometry g;
  g.src.assign(src, src + rank);
  g.wei.assign(wei, wei + wei_rank);
  g.dst.assign(dst, dst + rank);
  g.strides.assign(strides, strides + r);
  for (int64_t i = 0; i < r; ++i) g.dilates.push_back(dilation[i] - 1);
  g.pad_l.assign(pad_lo, pad_lo + r);
  g.pad_r.assign(pad_hi, pad_hi + r);
  g.channels_last = direct;
  g.direct = direct;
  g.blocked = 0;
  return g;
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JconvConvFwd, Handler<Kind::kFwd>, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JconvConvBwdData, Handler<Kind::kBwdData>, Binding());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JconvConvBwdWeights, Handler<Kind::kBwdWeights>, Binding());

// The channel block b (16 or 8) where a convolution may run on blocked activations: for every term
// (forward, input gradient, weight gradient), oneDNN left to choose (format_tag::any) picks the
// nC..b layout for both activations, and given that layout picks the same kernel. 0 otherwise (plain
// buffers, reordered in the call). Logical dims: src (N, C, s...), wei ([G,] O, I, k...), dst;
// `rank` = len(src), `wei_rank` = len(wei); strides, dilation (1 = dense), pads per spatial axis.
extern "C" int64_t JconvConvBlock(int64_t rank, const int64_t* src, int64_t wei_rank, const int64_t* wei,
                                  const int64_t* dst, const int64_t* strides, const int64_t* dilation,
                                  const int64_t* pad_lo, const int64_t* pad_hi) {
  try {
    const Geometry g = Queried(rank, src, wei_rank, wei, dst, strides, dilation, pad_lo, pad_hi, false);
    const auto f32 = memory::data_type::f32;
    const auto any = memory::format_tag::any;
    const Terms chosen(g, memory::desc(g.src, f32, any), memory::desc(g.dst, f32, any));
    for (int64_t b : {16, 8}) {
      const memory::desc s(g.src, f32, BlockedTag(rank, b)), d(g.dst, f32, BlockedTag(rank, b));
      if (chosen.fwd.src_desc() != s || chosen.fwd.dst_desc() != d || chosen.data.diff_src_desc() != s ||
          chosen.data.diff_dst_desc() != d || chosen.weights.src_desc() != s || chosen.weights.diff_dst_desc() != d)
        continue;
      const Terms blocked(g, s, d);
      const bool same = blocked.fwd.impl_info_str() == chosen.fwd.impl_info_str() &&
                        blocked.data.impl_info_str() == chosen.data.impl_info_str() &&
                        blocked.weights.impl_info_str() == chosen.weights.impl_info_str();
      return same ? b : 0;
    }
  } catch (...) {
  }
  return 0;
}

// 1 where the forward or the weight gradient of a convolution (logical dims as for JconvConvBlock) runs
// on channels-last activations taken as they are (DirectPays), else 0. Asked where the blocked
// layout would pad the channels; the terms that do not pay reorder the channels-last buffers.
extern "C" int64_t JconvConvNxc(int64_t rank, const int64_t* src, int64_t wei_rank, const int64_t* wei,
                                const int64_t* dst, const int64_t* strides, const int64_t* dilation,
                                const int64_t* pad_lo, const int64_t* pad_hi) {
  try {
    const Geometry g = Queried(rank, src, wei_rank, wei, dst, strides, dilation, pad_lo, pad_hi, true);
    const auto f32 = memory::data_type::f32;
    const auto tag = jconv::ActivationTag(rank, true);
    const auto any = memory::format_tag::any;
    const Terms given(g, memory::desc(g.src, f32, tag), memory::desc(g.dst, f32, tag));
    const Terms chosen(g, memory::desc(g.src, f32, any), memory::desc(g.dst, f32, any));
    return DirectPays(given.Impl(Kind::kFwd), chosen.Impl(Kind::kFwd)) ||
           DirectPays(given.Impl(Kind::kBwdWeights), chosen.Impl(Kind::kBwdWeights));
  } catch (...) {
  }
  return 0;
}
