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
// The file format (header, checksum, records) and the atomic write live in io/checkpoint_format.hpp.
// save() writes atomically (format::write_file_atomically): a reader sees the old file or the new one, never a
// partial one, and a failed save leaves no temporary behind. load() refuses a file that is truncated, has extra
// bytes, a wrong magic or version, or a payload whose checksum differs; every extent, the product of a tensor's
// extents and its byte size are checked for overflow and against the bytes that remain before anything is
// allocated, and a path that is a directory or a special file is refused by name; load_module() refuses a missing
// tensor, a dtype, rank or shape mismatch (naming the tensor and both shapes) and, when strict, a tensor in the
// file that the module does not have. Every message names the file.
// Cuda modules and optimizers are saved and loaded through host copies on their first parameter's context
// (DeviceOps<D>::read_bytes / write_bytes: the same code for every device).
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/backend/device_ops.hpp"
#include "distill/core/error.hpp"
#include "distill/core/tensor.hpp"
#include "distill/io/checkpoint_format.hpp"
#include "distill/io/file.hpp"

namespace distill::io {

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
  /// Store a copy of the host tensor `t` under `name` (replacing an entry of that name).
  template <class T, std::size_t R, class D>
  void put(const std::string& name, const Tensor<T, R, D>& t) {
    require_host(t);
    store(name, t, static_cast<Context<D>*>(nullptr));
  }
  /// A tensor of ctx's device: stored through a host copy (on the Cuda device: waits for ctx's stream).
  template <class T, std::size_t R, class D>
  void put(Context<D>& ctx, const std::string& name, const Tensor<T, R, D>& t) {
    store(name, t, &ctx);
  }
  template <class T, std::size_t R, class D>
  void put(const std::string& name, const Var<T, R, D>& v) {
    put(v.ctx(), name, v.value());
  }

  /// Every parameter and buffer of a module, named "<prefix>.<name>" (Cuda modules through host copies).
  template <class Module>
  void put_module(const Module& m, std::string_view prefix = {}) {
    m.for_each_parameter([&](std::string_view name, const auto& var) { put(format::joined(prefix, name), var); });
    if constexpr (requires { m.for_each_buffer([](std::string_view, const auto&) {}); })
      m.for_each_buffer([&](std::string_view name, const auto& t) {
        const std::string full = format::joined(prefix, name);
        store(full, t, require_context(context_of<device_of<decltype(t)>>(m), full));
      });
  }

  /// An optimizer's state (step counters, moment buffers), named "<prefix>.<i>.<buffer>".
  template <class Optimizer>
  void put_optimizer(Optimizer& opt, std::string_view prefix = "optimizer") {
    opt.for_each_state([&](std::string_view name, auto& t) {
      const std::string full = format::joined(prefix, name);
      store(full, t, require_context(optimizer_context<device_of<decltype(t)>>(opt), full));
    });
    Tensor<double, 0, Cpu> lr(Shape<0>{});
    lr[0] = opt.lr();
    put(format::joined(prefix, "lr"), lr);
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
                  " (shape ", format::shape_str(e.shape), ") but rank ", R, " was expected");
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
    require_host(dst);
    const Entry& e = checked_for(name, dst);
    if (!e.bytes.empty()) std::memcpy(dst.data(), e.bytes.data(), e.bytes.size());
  }

  /// Restore every parameter and buffer of a module from "<prefix>.<name>". Everything is validated before
  /// anything is written, so a refused load leaves the module unchanged. strict: the file may not hold other
  /// tensors under the prefix.
  /// Cuda modules are written by uploads on the context of their first Cuda parameter.
  template <class Module>
  void load_module(Module& m, std::string_view prefix = {}, bool strict = true) const {
    Plan plan;
    auto visit = [&](std::string_view name, auto& t) {
      const std::string full = format::joined(prefix, name);
      plan.add(checked_for(full, t), t, require_context(context_of<device_of<decltype(t)>>(m), full));
    };
    m.for_each_parameter([&](std::string_view name, auto& var) { visit(name, var.value()); });
    if constexpr (requires { m.for_each_buffer([](std::string_view, auto&) {}); }) m.for_each_buffer(visit);
    if (strict) check_all_used(plan, prefix, "the module");
    plan.write();
  }

  /// Restore an optimizer's state (written by put_optimizer with the same prefix) and its learning rate.
  template <class Optimizer>
  void load_optimizer(Optimizer& opt, std::string_view prefix = "optimizer") const {
    Plan plan;
    opt.for_each_state([&](std::string_view name, auto& t) {
      const std::string full = format::joined(prefix, name);
      plan.add(checked_for(full, t), t, require_context(optimizer_context<device_of<decltype(t)>>(opt), full));
    });
    const auto lr = get<double, 0>(format::joined(prefix, "lr"));
    plan.read_only(entry<double, 0>(format::joined(prefix, "lr")));
    check_all_used(plan, prefix, std::string("the ") + opt.name() + " optimizer");
    plan.write();
    opt.set_lr(lr[0]);
  }

  // --- files ---------------------------------------------------------------------------------------------
  /// The serialised file contents (header + payload).
  std::vector<unsigned char> serialize() const {
    std::vector<unsigned char> payload;
    for (const auto& e : entries_) {
      format::put_le<std::uint32_t>(payload, static_cast<std::uint32_t>(e.name.size()));
      payload.insert(payload.end(), e.name.begin(), e.name.end());
      format::put_le<std::uint8_t>(payload, static_cast<std::uint8_t>(e.dtype));
      format::put_le<std::uint8_t>(payload, static_cast<std::uint8_t>(e.shape.size()));
      format::put_le<std::uint16_t>(payload, 0);
      for (auto x : e.shape) format::put_le<std::int64_t>(payload, x);
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
                    "' has shape ", format::shape_str(e.shape), " (", overflow ? "more elements than 2^64" :
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

  /// Write `bytes` to `file` atomically (format::write_file_atomically). Throws distill::Error naming the file on
  /// failure (no temporary left).
  static void write_atomically(const std::filesystem::path& file, const std::vector<unsigned char>& bytes) {
    format::write_file_atomically(file, bytes);
  }

private:
  std::string where() const {
    if (path_.empty()) return "(in memory)";
    std::string s(1, '\'');  // (appends, not "'" + string: GCC 12 reports a false -Wrestrict for that at -O3)
    s += path_.string();
    s += '\'';
    return s;
  }

  template <class Tn>
  using device_of = typename std::remove_cvref_t<Tn>::device_type;

  template <class Tn>
  static void require_host(const Tn&) {
    static_assert(DeviceOps<typename Tn::device_type>::host_memory,
                  "checkpoint: this call reads or writes host memory; a bare Cuda tensor has no context to copy it "
                  "with: use put(ctx, name, tensor), put the Var or load_module, or copy it to a Cpu tensor first.");
  }
  /// `ctx`, refused when null where the device needs one to copy (a Cuda tensor of a module or optimizer without
  /// Cuda parameters).
  template <class D>
  static Context<D>* require_context(Context<D>* ctx, std::string_view name) {
    DISTILL_CHECK(ctx != nullptr || DeviceOps<D>::host_memory, "checkpoint: Cuda tensor '", name,
                  "' has no context to copy it with (a module or optimizer without Cuda parameters)");
    return ctx;
  }
  /// The context of an optimizer's first parameter if it lives on device D, else null (its step counters are host
  /// tensors whatever its device).
  template <class D, class Optimizer>
  static Context<D>* optimizer_context(Optimizer& opt) {
    return opt.params().empty() ? nullptr : context_on<D>(opt.params()[0]);
  }

  /// A copy of `t` (on ctx's device; ctx may be null for host memory) stored under `name`.
  template <class T, std::size_t R, class D>
  void store(const std::string& name, const Tensor<T, R, D>& t, Context<D>* ctx) {
    DISTILL_CHECK(!name.empty(), "checkpoint: tensor names must not be empty");
    Entry e{name, dtype_of<T>(), format::shape_of(t), {}};
    e.bytes.resize(sizeof(T) * static_cast<std::size_t>(t.numel()));
    DeviceOps<D>::read_bytes(ctx, e.bytes.data(), t.data(), e.bytes.size());
    auto it = index_.find(name);
    if (it != index_.end()) {
      entries_[it->second] = std::move(e);
    } else {
      index_.emplace(name, entries_.size());
      entries_.push_back(std::move(e));
    }
  }

  /// What a load writes where, validated before anything is written: each entry goes to a tensor of some device,
  /// through that device's DeviceOps on the tensor's context (function pointers taken per device, so Cpu-only
  /// programs never reference the CUDA library).
  class Plan {
  public:
    template <class Tn, class D>
    void add(const Entry& e, Tn& dst, Context<D>* ctx) {
      steps_.push_back(Step{&e, static_cast<void*>(dst.data()), ctx, &write_bytes<D>, &synchronize<D>});
    }
    /// An entry that is checked and read by the caller but not written anywhere.
    void read_only(const Entry& e) { steps_.push_back(Step{&e, nullptr, nullptr, nullptr, nullptr}); }
    bool uses(const Entry& e) const {
      for (const auto& st : steps_)
        if (st.entry == &e) return true;
      return false;
    }
    /// Copies every entry into its destination, then waits for each context written through (the copies read
    /// host memory owned by the checkpoint).
    void write() const {
      std::vector<const Step*> waits;
      for (const auto& st : steps_) {
        if (!st.dst || st.entry->bytes.empty()) continue;
        st.write(st.ctx, st.dst, st.entry->bytes.data(), st.entry->bytes.size());
        bool seen = false;
        for (const Step* w : waits) seen = seen || (w->ctx == st.ctx && w->wait == st.wait);
        if (!seen) waits.push_back(&st);
      }
      for (const Step* w : waits) w->wait(w->ctx);
    }

  private:
    struct Step {
      const Entry* entry;
      void* dst;
      void* ctx;  // a Context<D>* of the destination's device (null where the device needs none)
      void (*write)(void*, void*, const void*, std::size_t);
      void (*wait)(void*);
    };
    template <class D>
    static void write_bytes(void* ctx, void* dst, const void* src, std::size_t n) {
      DeviceOps<D>::write_bytes(static_cast<Context<D>*>(ctx), dst, src, n);
    }
    template <class D>
    static void synchronize(void* ctx) {
      DeviceOps<D>::synchronize(static_cast<Context<D>*>(ctx));
    }
    std::vector<Step> steps_;
  };

  template <class Tn>
  const Entry& checked_for(const std::string& name, const Tn& dst) const {
    using T = typename Tn::value_type;
    constexpr std::size_t R = Tn::rank;
    auto it = index_.find(name);
    DISTILL_CHECK(it != index_.end(), "checkpoint ", where(), " has no tensor '", name, "' (expected shape ",
                  format::shape_str(format::shape_of(dst)), ")");
    const Entry& e = entries_[it->second];
    DISTILL_CHECK(e.dtype == dtype_of<T>(), "checkpoint ", where(), ": tensor '", name, "' is stored as ",
                  dtype_name(e.dtype), " but ", dtype_name(dtype_of<T>()), " was expected");
    const auto want = format::shape_of(dst);
    DISTILL_CHECK(e.shape == want, "checkpoint ", where(), ": tensor '", name, "' has shape ",
                  format::shape_str(e.shape), " in the file but shape ", format::shape_str(want),
                  " was expected");
    (void)R;
    return e;
  }

  void check_all_used(const Plan& plan, std::string_view prefix, const std::string& who) const {
    for (const auto& e : entries_) {
      if (!format::under_prefix(e.name, prefix)) continue;
      DISTILL_CHECK(plan.uses(e), "checkpoint ", where(), " has a tensor '", e.name, "' (shape ",
                    format::shape_str(e.shape), ") that ", who, " does not have");
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
