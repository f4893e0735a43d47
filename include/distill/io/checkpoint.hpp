// distill/io/checkpoint.hpp -- named tensors in a versioned, checksummed binary file, written atomically.
//
// snippet: fragment; includes: distill/models/resnet1d.hpp distill/optim/adam.hpp; given: Context<Cpu> ctx;
// models::ResNet1D<64> encoder{ctx}; nn::ProjectionHead<128, 128, 128> head{ctx};
// optim::Adam opt{params(encoder, head), {}};
//   distill::save_checkpoint("encoder.ckpt", encoder);       // parameters + BN buffers of one module
//   distill::load_checkpoint("encoder.ckpt", encoder);       // throws distill::Error if anything is off
//
//   io::Checkpoint ck;                                        // several modules, an optimizer, extra values
//   ck.put_module(encoder, "encoder");  ck.put_module(head, "head");  ck.put_optimizer(opt, "opt");
//   ck.save("run.ckpt");
//   auto back = io::Checkpoint::load("run.ckpt");
//   back.load_module(encoder, "encoder");  back.load_optimizer(opt, "opt");
//
// File format, version 1 (all integers little-endian):
//   offset  0  magic "DSTLCKPT" (8 bytes)
//           8  u32 format version (1)
//          12  u32 reserved (0)
//          16  u64 number of tensors
//          24  u64 payload size in bytes
//          32  u64 FNV-1a-64 checksum of the payload
//          40  payload: per tensor, in order
//                u32 name length, name bytes (UTF-8, no terminator)
//                u8 dtype tag (1 float32, 2 float64, 3 int32, 4 int64, 5 uint8), u8 rank, u16 reserved (0)
//                rank x i64 extents
//                numel x sizeof(dtype) bytes of row-major data
// save() writes a temporary file in the destination's directory, fsyncs it, renames it over the destination
// (std::filesystem::rename, atomic on POSIX) and fsyncs the directory: a reader sees the old file or the new
// one, never a partial one, and a failed save leaves no temporary behind. load() refuses a file that is
// truncated, has extra bytes, a wrong magic or version, or a payload whose checksum differs; every extent, the
// product of a tensor's extents and its byte size are checked for overflow and against the bytes that remain
// before anything is allocated, and a path that is a directory or a special file is refused by name; load_module()
// refuses a missing tensor, a dtype, rank or shape mismatch (naming the tensor and both shapes) and, when
// strict, a tensor in the file that the module does not have. Every message names the file.
// Cuda modules and optimizers are saved and loaded through host copies on their first parameter's context.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/core/error.hpp"
#include "distill/core/tensor.hpp"
#include "distill/io/file.hpp"

namespace distill::io {

static_assert(std::endian::native == std::endian::little,
              "distill checkpoints are written in little-endian byte order; this host is big-endian.");

enum class DType : std::uint8_t { Float32 = 1, Float64 = 2, Int32 = 3, Int64 = 4, UInt8 = 5 };

inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::UInt8: return "uint8";
  }
  return "unknown";
}
inline std::size_t dtype_size(DType d) {
  return d == DType::UInt8 ? 1 : (d == DType::Float32 || d == DType::Int32) ? 4 : 8;
}

template <class T>
constexpr DType dtype_of() {
  if constexpr (std::is_same_v<T, float>) return DType::Float32;
  else if constexpr (std::is_same_v<T, double>) return DType::Float64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return DType::Int32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return DType::Int64;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return DType::UInt8;
  else static_assert(dependent_false<T>, "checkpoint: only float, double, int32, int64 and uint8 tensors can be stored.");
}

inline constexpr char kCheckpointMagic[8] = {'D', 'S', 'T', 'L', 'C', 'K', 'P', 'T'};
inline constexpr std::uint32_t kCheckpointVersion = 1;
inline constexpr std::size_t kCheckpointHeaderBytes = 40;

/// FNV-1a, 64 bit.
inline std::uint64_t fnv1a64(const unsigned char* p, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

namespace ckpt_detail {
inline std::string shape_str(const std::vector<index_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}
template <class Tn>
std::vector<index_t> shape_of(const Tn& t) {
  const auto& s = t.shape();
  return std::vector<index_t>(s.begin(), s.end());
}
template <class X>
void put_le(std::vector<unsigned char>& out, X v) {
  unsigned char b[sizeof(X)];
  std::memcpy(b, &v, sizeof(X));
  out.insert(out.end(), b, b + sizeof(X));
}
inline std::string joined(std::string_view prefix, std::string_view name) {
  std::string s(prefix);
  if (!s.empty() && !name.empty()) s += '.';
  s += name;
  return s;
}
inline bool under_prefix(const std::string& name, std::string_view prefix) {
  if (prefix.empty()) return true;
  return name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0 && name[prefix.size()] == '.';
}
/// Writes all of [p, p+n) to fd; false on error (errno set).
inline bool write_all(int fd, const unsigned char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}
template <class Tn>
void require_host(const Tn&) {
  static_assert(std::is_same_v<typename Tn::device_type, Cpu>,
                "checkpoint: this call reads or writes host memory; a bare Cuda tensor has no context to copy it "
                "with: use put(ctx, name, tensor), put the Var or load_module, or copy it to a Cpu tensor first.");
}
template <class Tn>
inline constexpr bool on_cuda = std::is_same_v<typename std::remove_cvref_t<Tn>::device_type, Cuda>;
/// Where a planned load writes: host memory (ctx null) or device memory through ctx. The function pointers are
/// taken only where a Cuda destination is seen, so Cpu-only programs never reference the CUDA library.
struct Destination {
  Context<Cuda>* ctx = nullptr;
  void (*upload)(Context<Cuda>&, void*, const void*, std::size_t) = nullptr;
  void (*wait)(Context<Cuda>&) = nullptr;
};
template <class Tn>
Destination destination_of(Context<Cuda>* ctx) {
  if constexpr (on_cuda<Tn>)
    return Destination{ctx,
                       [](Context<Cuda>& c, void* d, const void* h, std::size_t n) { cuda::copy_to_device(c, d, h, n); },
                       [](Context<Cuda>& c) { cuda::synchronize(c); }};
  else
    return Destination{};
}
inline Context<Cuda>& require_context(Context<Cuda>* ctx, std::string_view name) {
  DISTILL_CHECK(ctx != nullptr, "checkpoint: Cuda tensor '", name, "' has no context to copy it with (a module ",
                "or optimizer without Cuda parameters)");
  return *ctx;
}
}  // namespace ckpt_detail

/// An ordered set of named tensors, with the file it came from (for messages).
class Checkpoint {
public:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<index_t> shape;
    std::vector<unsigned char> bytes;
    index_t numel() const {
      index_t n = 1;
      for (auto e : shape) n *= e;
      return n;
    }
  };

  Checkpoint() = default;

  // --- building ------------------------------------------------------------------------------------------
  /// Store a copy of `t` under `name` (replacing an entry of that name).
  template <class T, std::size_t R, class D>
  void put(const std::string& name, const Tensor<T, R, D>& t) {
    ckpt_detail::require_host(t);
    DISTILL_CHECK(!name.empty(), "checkpoint: tensor names must not be empty");
    Entry e{name, dtype_of<T>(), ckpt_detail::shape_of(t), {}};
    const std::size_t n = sizeof(T) * static_cast<std::size_t>(t.numel());
    e.bytes.resize(n);
    if (n) std::memcpy(e.bytes.data(), t.data(), n);
    auto it = index_.find(name);
    if (it != index_.end()) {
      entries_[it->second] = std::move(e);
    } else {
      index_.emplace(name, entries_.size());
      entries_.push_back(std::move(e));
    }
  }
  /// A device tensor: stored through a host copy (waits for ctx's stream).
  template <class T, std::size_t R>
  void put(Context<Cuda>& ctx, const std::string& name, const Tensor<T, R, Cuda>& t) {
    put(name, to_host(ctx, t));
  }
  template <class T, std::size_t R, class D>
  void put(const std::string& name, const Var<T, R, D>& v) {
    if constexpr (std::is_same_v<D, Cuda>)
      put(v.ctx(), name, v.value());
    else
      put(name, v.value());
  }

  /// Every parameter and buffer of a module, named "<prefix>.<name>" (Cuda modules through host copies).
  template <class Module>
  void put_module(const Module& m, std::string_view prefix = {}) {
    m.for_each_parameter([&](std::string_view name, const auto& var) { put(ckpt_detail::joined(prefix, name), var); });
    if constexpr (requires { m.for_each_buffer([](std::string_view, const auto&) {}); })
      m.for_each_buffer([&](std::string_view name, const auto& t) {
        const std::string full = ckpt_detail::joined(prefix, name);
        if constexpr (ckpt_detail::on_cuda<decltype(t)>)
          put(ckpt_detail::require_context(cuda_context_of(m), full), full, t);
        else
          put(full, t);
      });
  }

  /// An optimizer's state (step counters, moment buffers), named "<prefix>.<i>.<buffer>".
  template <class Optimizer>
  void put_optimizer(Optimizer& opt, std::string_view prefix = "optimizer") {
    opt.for_each_state([&](std::string_view name, auto& t) {
      const std::string full = ckpt_detail::joined(prefix, name);
      if constexpr (ckpt_detail::on_cuda<decltype(t)>)
        put(ckpt_detail::require_context(optimizer_context(opt), full), full, t);
      else
        put(full, t);
    });
    Tensor<double, 0, Cpu> lr(Shape<0>{});
    lr[0] = opt.lr();
    put(ckpt_detail::joined(prefix, "lr"), lr);
  }

  // --- reading -------------------------------------------------------------------------------------------
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  std::size_t size() const noexcept { return entries_.size(); }
  const std::vector<Entry>& entries() const noexcept { return entries_; }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const auto& e : entries_) n.push_back(e.name);
    return n;
  }
  /// The file this checkpoint was loaded from or last saved to (empty if neither).
  const std::filesystem::path& path() const noexcept { return path_; }

  /// The entry `name`, checked to hold a T tensor of rank R.
  template <class T, std::size_t R>
  const Entry& entry(const std::string& name) const {
    auto it = index_.find(name);
    DISTILL_CHECK(it != index_.end(), "checkpoint ", where(), " has no tensor '", name, "'");
    const Entry& e = entries_[it->second];
    DISTILL_CHECK(e.dtype == dtype_of<T>(), "checkpoint ", where(), ": tensor '", name, "' is stored as ",
                  dtype_name(e.dtype), " but ", dtype_name(dtype_of<T>()), " was expected");
    DISTILL_CHECK(e.shape.size() == R, "checkpoint ", where(), ": tensor '", name, "' has rank ", e.shape.size(),
                  " (shape ", ckpt_detail::shape_str(e.shape), ") but rank ", R, " was expected");
    return e;
  }

  /// A new host tensor with the stored values.
  template <class T, std::size_t R>
  Tensor<T, R, Cpu> get(const std::string& name) const {
    const Entry& e = entry<T, R>(name);
    Shape<R> s{};
    for (std::size_t i = 0; i < R; ++i) s[i] = e.shape[i];
    Tensor<T, R, Cpu> t(s);
    if (!e.bytes.empty()) std::memcpy(t.data(), e.bytes.data(), e.bytes.size());
    return t;
  }

  /// Copy the stored values into `dst`, whose shape must match.
  template <class T, std::size_t R, class D>
  void read_into(const std::string& name, Tensor<T, R, D>& dst) const {
    ckpt_detail::require_host(dst);
    const Entry& e = checked_for(name, dst);
    if (!e.bytes.empty()) std::memcpy(dst.data(), e.bytes.data(), e.bytes.size());
  }

  /// Restore every parameter and buffer of a module from "<prefix>.<name>". Everything is validated before
  /// anything is written, so a refused load leaves the module unchanged. strict: the file may not hold other
  /// tensors under the prefix.
  /// Cuda modules are written by uploads on the context of their first Cuda parameter.
  template <class Module>
  void load_module(Module& m, std::string_view prefix = {}, bool strict = true) const {
    std::vector<std::pair<const Entry*, void*>> plan;
    std::vector<ckpt_detail::Destination> device;  // per plan entry
    Context<Cuda>* ctx = nullptr;
    auto visit = [&](std::string_view name, auto& t) {
      const std::string full = ckpt_detail::joined(prefix, name);
      plan.emplace_back(&checked_for(full, t), static_cast<void*>(t.data()));
      if constexpr (ckpt_detail::on_cuda<decltype(t)>) {
        if (!ctx) ctx = cuda_context_of(m);
        device.push_back(ckpt_detail::destination_of<decltype(t)>(&ckpt_detail::require_context(ctx, full)));
      } else {
        device.emplace_back();
      }
    };
    m.for_each_parameter([&](std::string_view name, auto& var) { visit(name, var.value()); });
    if constexpr (requires { m.for_each_buffer([](std::string_view, auto&) {}); }) m.for_each_buffer(visit);
    if (strict) check_all_used(plan, prefix, "the module");
    write_plan(plan, device);
  }

  /// Restore an optimizer's state (written by put_optimizer with the same prefix) and its learning rate.
  template <class Optimizer>
  void load_optimizer(Optimizer& opt, std::string_view prefix = "optimizer") const {
    std::vector<std::pair<const Entry*, void*>> plan;
    std::vector<ckpt_detail::Destination> device;
    opt.for_each_state([&](std::string_view name, auto& t) {
      const std::string full = ckpt_detail::joined(prefix, name);
      plan.emplace_back(&checked_for(full, t), static_cast<void*>(t.data()));
      if constexpr (ckpt_detail::on_cuda<decltype(t)>)
        device.push_back(
            ckpt_detail::destination_of<decltype(t)>(&ckpt_detail::require_context(optimizer_context(opt), full)));
      else
        device.emplace_back();
    });
    const auto lr = get<double, 0>(ckpt_detail::joined(prefix, "lr"));
    plan.emplace_back(&entry<double, 0>(ckpt_detail::joined(prefix, "lr")), nullptr);
    device.emplace_back();
    check_all_used(plan, prefix, std::string("the ") + opt.name() + " optimizer");
    write_plan(plan, device);
    opt.set_lr(lr[0]);
  }

  // --- files ---------------------------------------------------------------------------------------------
  /// The serialised file contents (header + payload).
  std::vector<unsigned char> serialize() const {
    std::vector<unsigned char> payload;
    for (const auto& e : entries_) {
      ckpt_detail::put_le<std::uint32_t>(payload, static_cast<std::uint32_t>(e.name.size()));
      payload.insert(payload.end(), e.name.begin(), e.name.end());
      ckpt_detail::put_le<std::uint8_t>(payload, static_cast<std::uint8_t>(e.dtype));
      ckpt_detail::put_le<std::uint8_t>(payload, static_cast<std::uint8_t>(e.shape.size()));
      ckpt_detail::put_le<std::uint16_t>(payload, 0);
      for (auto x : e.shape) ckpt_detail::put_le<std::int64_t>(payload, x);
      payload.insert(payload.end(), e.bytes.begin(), e.bytes.end());
    }
    // Header fields written with memcpy into a pre-sized buffer (GCC 12 misreports vector::insert here).
    std::vector<unsigned char> out(kCheckpointHeaderBytes + payload.size());
    const std::uint32_t version = kCheckpointVersion, reserved = 0;
    const std::uint64_t count = entries_.size(), size = payload.size();
    const std::uint64_t sum = fnv1a64(payload.data(), payload.size());
    std::memcpy(out.data(), kCheckpointMagic, 8);
    std::memcpy(out.data() + 8, &version, 4);
    std::memcpy(out.data() + 12, &reserved, 4);
    std::memcpy(out.data() + 16, &count, 8);
    std::memcpy(out.data() + 24, &size, 8);
    std::memcpy(out.data() + 32, &sum, 8);
    if (!payload.empty()) std::memcpy(out.data() + kCheckpointHeaderBytes, payload.data(), payload.size());
    return out;
  }

  /// Write atomically to `file` (temporary in the same directory + fsync + rename + directory fsync).
  void save(const std::filesystem::path& file) {
    const auto bytes = serialize();
    write_atomically(file, bytes);
    path_ = file;
  }

  /// Parse and verify file contents; `file` is used in messages.
  static Checkpoint parse(const std::vector<unsigned char>& data, const std::filesystem::path& file) {
    Checkpoint ck;
    ck.path_ = file;
    std::string f = "'";  // appended, not "'" + ...: GCC 12 reports a false -Wrestrict for that form when inlined
    f.append(file.string()).append("'");
    DISTILL_CHECK(data.size() >= kCheckpointHeaderBytes, "checkpoint ", f, " is truncated: it has ", data.size(),
                  " bytes, fewer than the ", kCheckpointHeaderBytes, "-byte header");
    DISTILL_CHECK(std::memcmp(data.data(), kCheckpointMagic, 8) == 0, "checkpoint ", f,
                  " is not a distill checkpoint (the file does not start with the magic 'DSTLCKPT')");
    auto rd = [&](std::size_t off, auto v) {
      std::memcpy(&v, data.data() + off, sizeof(v));
      return v;
    };
    const auto version = rd(8, std::uint32_t{});
    DISTILL_CHECK(version == kCheckpointVersion, "checkpoint ", f, " has format version ", version,
                  "; this build of distill reads version ", kCheckpointVersion);
    DISTILL_CHECK(rd(12, std::uint32_t{}) == 0, "checkpoint ", f, " is malformed: the reserved header field is not 0");
    const auto count = rd(16, std::uint64_t{});
    const auto payload_bytes = rd(24, std::uint64_t{});
    const auto stored_sum = rd(32, std::uint64_t{});
    const std::uint64_t have = data.size() - kCheckpointHeaderBytes;
    DISTILL_CHECK(have >= payload_bytes, "checkpoint ", f, " is truncated: the header announces ", payload_bytes,
                  " payload bytes but only ", have, " follow it");
    DISTILL_CHECK(have == payload_bytes, "checkpoint ", f, " has ", have - payload_bytes,
                  " unexpected bytes after the ", payload_bytes, "-byte payload");
    // Every tensor takes at least 8 bytes (name length, dtype, rank, reserved): a larger count is a lie.
    DISTILL_CHECK(count <= payload_bytes / 8, "checkpoint ", f, " is malformed: the header announces ", count,
                  " tensors, more than its ", payload_bytes, "-byte payload can hold");
    const unsigned char* p = data.data() + kCheckpointHeaderBytes;
    const std::uint64_t sum = fnv1a64(p, payload_bytes);
    DISTILL_CHECK(sum == stored_sum, "checkpoint ", f, " is corrupted: the payload checksum is 0x", std::hex, sum,
                  " but the header records 0x", stored_sum, std::dec);
    std::size_t off = 0;
    auto need = [&](std::size_t n, std::uint64_t k, const char* what) {
      DISTILL_CHECK(off + n <= payload_bytes, "checkpoint ", f, " is malformed: the ", what, " of tensor #", k,
                    " runs past the end of the payload");
    };
    auto rdp = [&](auto v) {
      std::memcpy(&v, p + off, sizeof(v));
      off += sizeof(v);
      return v;
    };
    for (std::uint64_t k = 0; k < count; ++k) {
      Entry e;
      need(4, k, "name length");
      const auto len = rdp(std::uint32_t{});
      need(len, k, "name");
      e.name.assign(reinterpret_cast<const char*>(p + off), len);
      off += len;
      need(4, k, "dtype and rank");
      const auto tag = rdp(std::uint8_t{});
      const auto rank = rdp(std::uint8_t{});
      DISTILL_CHECK(rdp(std::uint16_t{}) == 0, "checkpoint ", f, " is malformed: tensor '", e.name,
                    "' has a non-zero reserved field");
      DISTILL_CHECK(tag >= 1 && tag <= 5, "checkpoint ", f, " is malformed: tensor '", e.name,
                    "' has unknown dtype tag ", int(tag));
      e.dtype = static_cast<DType>(tag);
      need(8u * rank, k, "extents");
      // Extents, their product and the byte size are checked for overflow and against the bytes left before
      // anything is allocated (a crafted 2^32 x 2^32 tensor must not wrap around to 0 elements).
      std::uint64_t numel = 1;
      bool overflow = false;
      for (int i = 0; i < rank; ++i) {
        const auto x = rdp(std::int64_t{});
        DISTILL_CHECK(x >= 0, "checkpoint ", f, " is malformed: tensor '", e.name, "' has a negative extent ", x);
        e.shape.push_back(x);
        overflow = overflow || __builtin_mul_overflow(numel, static_cast<std::uint64_t>(x), &numel);
      }
      std::uint64_t nbytes = 0;
      overflow = overflow || !extents_fit(e.shape.begin(), e.shape.end());  // also when a zero extent hides it
      overflow = overflow || __builtin_mul_overflow(numel, dtype_size(e.dtype), &nbytes);
      DISTILL_CHECK(!overflow && nbytes <= payload_bytes - off, "checkpoint ", f, " is malformed: tensor '", e.name,
                    "' has shape ", ckpt_detail::shape_str(e.shape), " (", overflow ? "more elements than 2^64" :
                    std::to_string(nbytes) + " bytes", ") but only ", payload_bytes - off,
                    " payload bytes remain");
      e.bytes.assign(p + off, p + off + nbytes);
      off += nbytes;
      DISTILL_CHECK(!ck.contains(e.name), "checkpoint ", f, " is malformed: tensor '", e.name, "' appears twice");
      ck.index_.emplace(e.name, ck.entries_.size());
      ck.entries_.push_back(std::move(e));
    }
    DISTILL_CHECK(off == payload_bytes, "checkpoint ", f, " is malformed: ", payload_bytes - off,
                  " payload bytes follow the last of its ", count, " tensors");
    return ck;
  }

  /// Read and verify a checkpoint file.
  static Checkpoint load(const std::filesystem::path& file) {
    require_regular_file(file, "checkpoint");
    std::ifstream in(file, std::ios::binary | std::ios::ate);
    DISTILL_CHECK(in.good(), "cannot open checkpoint '", file.string(), "': ", std::strerror(errno));
    const std::streamoff size = in.tellg();
    DISTILL_CHECK(size >= 0, "cannot read checkpoint '", file.string(), "' (is it a regular file?)");
    std::vector<unsigned char> data(static_cast<std::size_t>(size));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(data.data()), size);
    DISTILL_CHECK(in.gcount() == size, "error reading checkpoint '", file.string(), "': expected ", size,
                  " bytes, read ", in.gcount());
    return parse(data, file);
  }

  /// Write `bytes` to `file` atomically. Throws distill::Error naming the file on failure (no temp left).
  static void write_atomically(const std::filesystem::path& file, const std::vector<unsigned char>& bytes) {
    namespace fs = std::filesystem;
    const fs::path dir = file.has_parent_path() ? file.parent_path() : fs::path(".");
    const std::string base = file.filename().string();
    DISTILL_CHECK(!base.empty(), "save_checkpoint: '", file.string(), "' names a directory, not a file");
    int fd = -1;
    fs::path tmp;
    const auto stamp = static_cast<unsigned long long>(std::chrono::steady_clock::now().time_since_epoch().count());
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
      tmp = dir / ("." + base + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(stamp) + "-" +
                   std::to_string(attempt));
      fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 && errno != EEXIST) break;
    }
    DISTILL_CHECK(fd >= 0, "cannot save checkpoint '", file.string(), "': cannot create a temporary file in '",
                  dir.string(), "': ", std::strerror(errno));
    const bool ok = ckpt_detail::write_all(fd, bytes.data(), bytes.size()) && ::fsync(fd) == 0;
    const int err = errno;
    const bool closed = ::close(fd) == 0;
    if (!ok || !closed) {
      std::error_code ec;
      fs::remove(tmp, ec);
      DISTILL_FAIL("cannot save checkpoint '", file.string(), "': writing the temporary file failed: ",
                   std::strerror(ok ? errno : err));
    }
    std::error_code ec;
    fs::rename(tmp, file, ec);
    if (ec) {
      std::error_code ec2;
      fs::remove(tmp, ec2);
      DISTILL_FAIL("cannot save checkpoint '", file.string(), "': renaming the temporary file failed: ", ec.message());
    }
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {  // make the rename durable; best effort (some file systems refuse directory fsync)
      (void)::fsync(dfd);
      ::close(dfd);
    }
  }

private:
  std::string where() const {
    if (path_.empty()) return "(in memory)";
    std::string s(1, '\'');  // (appends, not "'" + string: GCC 12 reports a false -Wrestrict for that at -O3)
    s += path_.string();
    s += '\'';
    return s;
  }

  /// Copies the planned entries into their destinations (host memcpy, or an upload on the given context).
  static void write_plan(const std::vector<std::pair<const Entry*, void*>>& plan,
                         const std::vector<ckpt_detail::Destination>& device) {
    const ckpt_detail::Destination* last = nullptr;
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const auto& [e, dst] = plan[i];
      if (!dst || e->bytes.empty()) continue;
      if (device[i].ctx) {
        device[i].upload(*device[i].ctx, dst, e->bytes.data(), e->bytes.size());
        last = &device[i];
      } else {
        std::memcpy(dst, e->bytes.data(), e->bytes.size());
      }
    }
    if (last) last->wait(*last->ctx);  // the uploads read host memory owned by this checkpoint
  }
  /// The context of an optimizer's first parameter when it updates Cuda parameters, else null.
  template <class Optimizer>
  static Context<Cuda>* optimizer_context(Optimizer& opt) {
    if constexpr (std::is_same_v<typename Optimizer::device_type, Cuda>)
      return opt.params().empty() ? nullptr : &opt.params()[0].ctx();
    else
      return nullptr;
  }

  template <class Tn>
  const Entry& checked_for(const std::string& name, const Tn& dst) const {
    using T = typename Tn::value_type;
    constexpr std::size_t R = Tn::rank;
    auto it = index_.find(name);
    DISTILL_CHECK(it != index_.end(), "checkpoint ", where(), " has no tensor '", name, "' (expected shape ",
                  ckpt_detail::shape_str(ckpt_detail::shape_of(dst)), ")");
    const Entry& e = entries_[it->second];
    DISTILL_CHECK(e.dtype == dtype_of<T>(), "checkpoint ", where(), ": tensor '", name, "' is stored as ",
                  dtype_name(e.dtype), " but ", dtype_name(dtype_of<T>()), " was expected");
    const auto want = ckpt_detail::shape_of(dst);
    DISTILL_CHECK(e.shape == want, "checkpoint ", where(), ": tensor '", name, "' has shape ",
                  ckpt_detail::shape_str(e.shape), " in the file but shape ", ckpt_detail::shape_str(want),
                  " was expected");
    (void)R;
    return e;
  }

  void check_all_used(const std::vector<std::pair<const Entry*, void*>>& plan, std::string_view prefix,
                      const std::string& who) const {
    std::vector<const Entry*> used;
    for (const auto& pr : plan) used.push_back(pr.first);
    for (const auto& e : entries_) {
      if (!ckpt_detail::under_prefix(e.name, prefix)) continue;
      bool found = false;
      for (auto* u : used) found = found || u == &e;
      DISTILL_CHECK(found, "checkpoint ", where(), " has a tensor '", e.name, "' (shape ",
                    ckpt_detail::shape_str(e.shape), ") that ", who, " does not have");
    }
  }

  std::vector<Entry> entries_;
  std::map<std::string, std::size_t> index_;
  std::filesystem::path path_;
};

/// Save one module's parameters and buffers to `file` (atomically).
template <class Module>
void save_checkpoint(const std::filesystem::path& file, const Module& m) {
  Checkpoint ck;
  ck.put_module(m);
  ck.save(file);
}

/// Load one module's parameters and buffers from `file`; strict: the file holds exactly the module's tensors.
template <class Module>
void load_checkpoint(const std::filesystem::path& file, Module& m, bool strict = true) {
  Checkpoint::load(file).load_module(m, {}, strict);
}

}  // namespace distill::io

namespace distill {
using io::load_checkpoint;
using io::save_checkpoint;
}  // namespace distill
