// What jconv's oneDNN handlers share (onednn_conv.cc, onednn_pool.cc): the CPU engine, the lock
// one primitive runs under, and the activation layouts of XLA's buffers (plain and blocked).

#ifndef JCONV_ONEDNN_COMMON_H_
#define JCONV_ONEDNN_COMMON_H_

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "oneapi/dnnl/dnnl.hpp"

namespace jconv {

// The one CPU engine of the process (a function-local static of an inline function: one instance).
inline dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// Held while a primitive runs. XLA:CPU runs independent custom calls at once on its own threads, and
// each oneDNN primitive already spreads over every core with OpenMP: two at once contend for the
// cores and both run slower (measured: ResNet-18's step lost 35 ms a step to overlapping calls).
inline std::mutex& ExecMutex() {
  static std::mutex mutex;
  return mutex;
}

// An activation's logical oneDNN dims (N, C, spatial...) from its buffer's dims (channels last:
// (N, spatial..., C)).
template <typename Span>
dnnl::memory::dims ActivationDims(const Span& d, bool channels_last) {
  dnnl::memory::dims out(d.begin(), d.end());
  if (channels_last) {
    out[1] = d[d.size() - 1];
    for (size_t i = 2; i < d.size(); ++i) out[i] = d[i - 1];
  }
  return out;
}

// The plain layout of an activation of `rank` logical dims.
inline dnnl::memory::format_tag ActivationTag(size_t rank, bool channels_last) {
  using t = dnnl::memory::format_tag;
  switch (rank) {
    case 3: return channels_last ? t::nwc : t::ncw;
    case 4: return channels_last ? t::nhwc : t::nchw;
    default: return channels_last ? t::ndhwc : t::ncdhw;
  }
}

// oneDNN's blocked activation layout (N, C / b, spatial..., b) for b = 8 or 16.
inline dnnl::memory::format_tag BlockedTag(size_t rank, int64_t b) {
  using t = dnnl::memory::format_tag;
  switch (rank) {
    case 3: return b == 8 ? t::nCw8c : t::nCw16c;
    case 4: return b == 8 ? t::nChw8c : t::nChw16c;
    default: return b == 8 ? t::nCdhw8c : t::nCdhw16c;
  }
}

// The logical dims (N, C, spatial...) of a blocked buffer (N, C / b, spatial..., b).
template <typename Span>
dnnl::memory::dims BlockedDims(const Span& d) {
  dnnl::memory::dims out(d.begin(), d.end() - 1);
  out[1] *= d[d.size() - 1];
  return out;
}

// An activation buffer's logical dims and layout: blocked (b > 0) or plain (channels first / last).
template <typename Span>
dnnl::memory::dims BufferDims(const Span& d, bool channels_last, int64_t blocked) {
  return blocked ? BlockedDims(d) : ActivationDims(d, channels_last);
}

inline dnnl::memory::format_tag BufferTag(size_t rank, bool channels_last, int64_t blocked) {
  return blocked ? BlockedTag(rank, blocked) : ActivationTag(rank, channels_last);
}

}  // namespace jconv

#endif  // JCONV_ONEDNN_COMMON_H_
