// distill/io/checkpoint_format.hpp -- the bytes of a checkpoint file: dtype tags, header constants, the FNV-1a
// checksum, little-endian records, dotted entry names and the atomic file write. io::Checkpoint
// (io/checkpoint.hpp) builds its files from these; io::TrainState (io/train_state.hpp) writes through them too.
//
// snippet: fragment; includes: distill/io/checkpoint_format.hpp
//   static_assert(distill::io::dtype_of<float>() == distill::io::DType::Float32);
//   const std::vector<unsigned char> bytes{'a', 'b'};
//   distill::io::format::write_file_atomically("out.bin", bytes);   // temporary + fsync + rename + directory fsync
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
// format::write_file_atomically writes a temporary file in the destination's directory, fsyncs it, renames it over
// the destination (std::filesystem::rename, atomic on POSIX) and fsyncs the directory: a reader sees the old file or
// the new one, never a partial one, and a failed write leaves no temporary behind.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "distill/core/device.hpp"
#include "distill/core/error.hpp"
#include "distill/core/shape.hpp"

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

/// The pieces a checkpoint file is written with (io::Checkpoint::serialize / save, io::TrainState).
namespace format {
/// "[2, 3, 5]".
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
/// Appends the bytes of `v` (little-endian: the host order, checked above).
template <class X>
void put_le(std::vector<unsigned char>& out, X v) {
  unsigned char b[sizeof(X)];
  std::memcpy(b, &v, sizeof(X));
  out.insert(out.end(), b, b + sizeof(X));
}
/// Entry names are dotted paths: "<prefix>.<name>" (or just one of them when the other is empty).
inline std::string joined(std::string_view prefix, std::string_view name) {
  std::string s(prefix);
  if (!s.empty() && !name.empty()) s += '.';
  s += name;
  return s;
}
/// Whether `name` lies under `prefix` ("a.b" is under "a"; everything is under "").
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
/// Writes `bytes` to `file` atomically. Throws distill::Error naming the file on failure (no temporary left).
inline void write_file_atomically(const std::filesystem::path& file, const std::vector<unsigned char>& bytes) {
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
  const bool ok = write_all(fd, bytes.data(), bytes.size()) && ::fsync(fd) == 0;
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
}  // namespace format

}  // namespace distill::io
