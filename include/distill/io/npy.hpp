// distill/io/npy.hpp -- NumPy .npy files (format version 1.0) for host tensors and label vectors.
//
// write_npy stores a C-order little-endian array (float32 '<f4', float64 '<f8', int32 '<i4', int64 '<i8',
// uint8 '|u1'), header padded with spaces so the data starts on a 64-byte boundary, as numpy itself does:
// numpy.load reads the files. read_npy reads such a file back (any header length, version 1.0/2.0/3.0,
// C order, the exact dtype and rank asked for) and names the file and the mismatch when it cannot; extents and
// their product are checked for overflow and against the file size before allocating, and a directory or a
// special file is refused by name. parse_npy does the same for bytes in memory (the fuzz target's entry).
#pragma once

#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/tensor.hpp"
#include "distill/io/file.hpp"

namespace distill::io {

static_assert(std::endian::native == std::endian::little,
              "distill::io::npy writes little-endian arrays and assumes a little-endian host.");

template <class T>
constexpr const char* npy_descr() {
  if constexpr (std::is_same_v<T, float>) return "<f4";
  else if constexpr (std::is_same_v<T, double>) return "<f8";
  else if constexpr (std::is_same_v<T, std::int32_t>) return "<i4";
  else if constexpr (std::is_same_v<T, std::int64_t>) return "<i8";
  else if constexpr (std::is_same_v<T, std::uint8_t>) return "|u1";
  else static_assert(dependent_false<T>, "npy: supported element types are float, double, int32, int64 and uint8.");
}

/// The .npy header (magic, version, length, dict, padding) for an array of `shape`.
template <class T>
std::string npy_header(const std::vector<index_t>& shape) {
  // The shape as Python's tuple repr: "()", "(3,)", "(3, 4)".
  std::string tuple = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) tuple += ", ";
    tuple += std::to_string(shape[i]);
  }
  tuple += shape.size() == 1 ? ",)" : ")";
  std::string fixed = std::string("{'descr': '") + npy_descr<T>() + "', 'fortran_order': False, 'shape': " + tuple + ", }";
  const std::size_t prefix = 10;  // magic(6) + version(2) + header length(2)
  std::size_t total = prefix + fixed.size() + 1;  // + '\n'
  const std::size_t padded = (total + 63) / 64 * 64;
  fixed.append(padded - total, ' ');
  fixed += '\n';
  std::string h("\x93NUMPY", 6);
  h += char(1);
  h += char(0);
  const auto len = static_cast<std::uint16_t>(fixed.size());
  h += static_cast<char>(len & 0xff);
  h += static_cast<char>(len >> 8);
  return h + fixed;
}

/// Writes the numel(shape) values at `data` as an array of `shape`.
template <class T>
void write_npy(const std::string& path, const T* data, const std::vector<index_t>& shape) {
  index_t n = 1;
  for (index_t d : shape) n *= d;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  DISTILL_CHECK(out.good(), "write_npy: cannot open '", path, "' for writing");
  const std::string h = npy_header<T>(shape);
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  if (n) out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(sizeof(T) * static_cast<std::size_t>(n)));
  DISTILL_CHECK(out.good(), "write_npy: error while writing '", path, "'");
}

template <class T, std::size_t R>
void write_npy(const std::string& path, const Tensor<T, R, Cpu>& t) {
  std::vector<index_t> shape(t.shape().begin(), t.shape().end());
  write_npy<T>(path, t.data(), shape);
}

/// A 1-D vector (labels, lengths) as an int64/float array.
template <class T>
void write_npy(const std::string& path, const std::vector<T>& v) {
  write_npy<T>(path, v.data(), {static_cast<index_t>(v.size())});
}

/// Header fields of a .npy file.
struct NpyInfo {
  std::string descr;
  bool fortran_order = false;
  std::vector<index_t> shape;
  std::size_t data_offset = 0;
};

namespace detail {
inline std::string dict_value(const std::string& dict, const std::string& key, const std::string& path) {
  const std::string k = "'" + key + "'";
  auto p = dict.find(k);
  DISTILL_CHECK(p != std::string::npos, "read_npy: '", path, "': header has no ", k, " entry: ", dict);
  p = dict.find(':', p + k.size());
  DISTILL_CHECK(p != std::string::npos, "read_npy: '", path, "': malformed header: ", dict);
  ++p;
  while (p < dict.size() && dict[p] == ' ') ++p;
  std::size_t e = p;
  if (p < dict.size() && dict[p] == '(') e = dict.find(')', p) + 1;
  else if (p < dict.size() && dict[p] == '\'') e = dict.find('\'', p + 1) + 1;
  else
    while (e < dict.size() && dict[e] != ',' && dict[e] != '}') ++e;
  DISTILL_CHECK(e != std::string::npos && e > p && e <= dict.size(), "read_npy: '", path, "': malformed header: ", dict);
  return dict.substr(p, e - p);
}
}  // namespace detail

/// Parses the header of a .npy file held in `bytes`.
inline NpyInfo parse_npy_header(std::string_view bytes, const std::string& path = "<memory>") {
  DISTILL_CHECK(bytes.size() >= 10 && bytes.substr(0, 6) == std::string_view("\x93NUMPY", 6), "read_npy: '", path,
                "' is not a .npy file (bad magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t hlen = 0, off = 0;
  if (major == 1) {
    hlen = static_cast<unsigned char>(bytes[8]) | (std::size_t(static_cast<unsigned char>(bytes[9])) << 8);
    off = 10;
  } else {
    DISTILL_CHECK((major == 2 || major == 3) && bytes.size() >= 12, "read_npy: '", path, "': unsupported version ", major);
    for (int i = 0; i < 4; ++i) hlen |= std::size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    off = 12;
  }
  DISTILL_CHECK(off + hlen <= bytes.size(), "read_npy: '", path, "': truncated header");
  const std::string dict(bytes.substr(off, hlen));
  NpyInfo info;
  info.data_offset = off + hlen;
  std::string d = detail::dict_value(dict, "descr", path);
  DISTILL_CHECK(d.size() >= 2 && d.front() == '\'' && d.back() == '\'', "read_npy: '", path, "': bad descr ", d);
  info.descr = d.substr(1, d.size() - 2);
  info.fortran_order = detail::dict_value(dict, "fortran_order", path) == "True";
  std::string s = detail::dict_value(dict, "shape", path);
  DISTILL_CHECK(s.size() >= 2 && s.front() == '(' && s.back() == ')', "read_npy: '", path, "': bad shape ", s);
  std::istringstream ss(s.substr(1, s.size() - 2));
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto a = item.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    const auto z = item.find_last_not_of(' ');
    index_t v = -1;
    auto r = std::from_chars(item.data() + a, item.data() + z + 1, v);
    DISTILL_CHECK(r.ec == std::errc() && r.ptr == item.data() + z + 1 && v >= 0, "read_npy: '", path,
                  "': bad extent '", item, "' in shape ", s);
    info.shape.push_back(v);
  }
  return info;
}

/// Parses the contents of a .npy file (held in `bytes`) into a rank-R tensor of T. The extents, their product
/// and the byte size are checked for overflow and against the bytes present before anything is allocated.
template <class T, std::size_t R>
Tensor<T, R, Cpu> parse_npy(std::string_view bytes, const std::string& path = "<memory>") {
  const NpyInfo info = parse_npy_header(bytes, path);
  DISTILL_CHECK(info.descr == npy_descr<T>(), "read_npy: '", path, "' holds dtype '", info.descr, "', expected '",
                npy_descr<T>(), "'");
  DISTILL_CHECK(!info.fortran_order, "read_npy: '", path, "' is in Fortran order; only C order is supported");
  DISTILL_CHECK(info.shape.size() == R, "read_npy: '", path, "' has rank ", info.shape.size(), ", expected ", R);
  std::uint64_t numel = 1, nbytes = 0;
  bool overflow = false;
  for (index_t e : info.shape) overflow = overflow || __builtin_mul_overflow(numel, std::uint64_t(e), &numel);
  overflow = overflow || !extents_fit(info.shape.begin(), info.shape.end());  // also when a zero extent hides it
  overflow = overflow || __builtin_mul_overflow(numel, std::uint64_t(sizeof(T)), &nbytes);
  const std::uint64_t have = bytes.size() - info.data_offset;
  Shape<R> s{};
  for (std::size_t i = 0; i < R; ++i) s[i] = info.shape[i];
  DISTILL_CHECK(!overflow && nbytes <= have, "read_npy: '", path, "' is truncated or malformed: shape ",
                to_string(s), " needs ", overflow ? std::string("more than 2^64") : std::to_string(nbytes),
                " data bytes but the file holds ", have);
  Tensor<T, R, Cpu> t(s);
  if (nbytes) std::memcpy(t.data(), bytes.data() + info.data_offset, nbytes);
  return t;
}

/// Reads a .npy file written by numpy or write_npy into a rank-R tensor of T.
template <class T, std::size_t R>
Tensor<T, R, Cpu> read_npy(const std::string& path) {
  require_regular_file(path, ".npy");
  std::ifstream in(path, std::ios::binary);
  DISTILL_CHECK(in.good(), "read_npy: cannot open '", path, "'");
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_npy<T, R>(buf.str(), path);
}

}  // namespace distill::io
