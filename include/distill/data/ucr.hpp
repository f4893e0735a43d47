// distill/data/ucr.hpp -- reader for the UCR 2018 archive's TSV files.
//
// Format: one series per line, `label<TAB>v1<TAB>...<TAB>vL`, LF (a trailing CR is tolerated), no header.
// Values are decimals or exponent form; `NaN` marks a missing value.
//
//   * Labels are mapped to 0..K-1 in sorted numeric order of the labels found in the TRAIN file; the test
//     file uses the same map, and a test label absent from train is an error. Label identity is exact: a label
//     is kept as its decimal text reduced to (sign, significant digits, exponent), so 9007199254740992 and
//     9007199254740993 are two classes (as doubles they would be one) and 1, 1.0 and 1e0 are one.
//   * TEST and TRAIN must have the same series length after the padding rule below: for fixed-length sets the
//     column counts must agree (an error names both files and both lengths); when either split has varying
//     lengths, the narrower split is padded like a shorter series to the wider one's column count.
//   * Varying-length sets pad a shorter series with trailing NaN: the true length (last non-NaN + 1) is kept,
//     and the padding becomes 0 (see data/dataset.hpp for the batch rule).
//   * NaN inside a series (before its last value) is filled by linear interpolation between its neighbours;
//     NaN before the first value takes the first value.
//   * z-normalisation per series (mean 0, sample std 1, over the true length). ZNorm::Auto normalises a
//     dataset when any TRAIN series is not already normalised (|mean| > 1e-3, or |std - 1| > 1e-3 for both the
//     sample and the population std); on the 90 sets of the local archive this reproduces the archive
//     README's list of the 27 non-normalised sets exactly. A constant series becomes all zeros.
//   * Malformed input throws distill::Error naming `file:line:column` (1-based, byte column) and the field.
//
// Entry points: parse_ucr (from memory; the fuzz target's entry), read_ucr_file, load_ucr (a bundled name, an
// archive name under DISTILL_UCR_DIR, or any directory holding <Name>_TRAIN.tsv and <Name>_TEST.tsv).
#pragma once

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/tensor.hpp"
#include "distill/data/dataset.hpp"

namespace distill::data {

enum class Split { Train, Test };
enum class ZNorm { Auto, Always, Never };

inline const char* split_name(Split s) { return s == Split::Train ? "TRAIN" : "TEST"; }

/// A parsed UCR file before label mapping and normalisation. NaN are kept as read.
struct UcrTable {
  std::string source;            // file name used in error messages
  index_t rows = 0;              // series (= data lines; line of row r is r + 1)
  index_t cols = 0;              // values per line (label excluded)
  std::vector<double> labels;    // raw label of each row (nearest double; for display and arithmetic)
  std::vector<std::string> label_keys;  // exact label of each row (see detail::label_key)
  std::vector<float> values;     // rows * cols, row-major, NaN as read
  std::vector<index_t> lengths;  // true length of each row: index of its last non-NaN value + 1
};

namespace detail {

[[noreturn]] inline void fail_at(std::string_view source, index_t line, index_t col, const std::string& what) {
  DISTILL_FAIL(source, ":", line, ":", col, ": ", what);
}

inline std::string quoted(std::string_view tok) {
  std::string s(tok.substr(0, 32));
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  return "'" + s + (tok.size() > 32 ? "...'" : "'");
}

/// Parses a whole token as a double: optional sign, decimal or exponent form, nan/inf. Returns false on any
/// leftover or malformed character; `range` is set when the magnitude overflows a double.
inline bool parse_double(std::string_view tok, double& out, bool& range) {
  range = false;
  if (tok.empty()) return false;
  std::size_t start = 0;
  if (tok[0] == '+') {
    start = 1;
    if (tok.size() == 1 || tok[1] == '-' || tok[1] == '+') return false;
  }
  const char* b = tok.data() + start;
  const char* e = tok.data() + tok.size();
  auto r = std::from_chars(b, e, out, std::chars_format::general);
  if (r.ec == std::errc::result_out_of_range) {
    range = true;
    return false;
  }
  return r.ec == std::errc() && r.ptr == e;
}

/// The exact identity of a decimal label: "<sign><significant digits>e<exponent>" with value 0.d1d2... x 10^e,
/// no leading or trailing zero digits ("0" for zero). Two labels are one class iff their keys are equal.
/// `tok` must already have parsed as a finite double.
inline std::string label_key(std::string_view tok) {
  std::size_t i = 0;
  bool neg = false;
  if (i < tok.size() && (tok[i] == '+' || tok[i] == '-')) neg = tok[i++] == '-';
  std::string digits;
  long long exp10 = 0;  // position of the decimal point relative to the start of `digits`
  bool seen_point = false, leading = true;
  for (; i < tok.size() && tok[i] != 'e' && tok[i] != 'E'; ++i) {
    const char c = tok[i];
    if (c == '.') {
      seen_point = true;
      continue;
    }
    if (leading && c == '0') {
      if (seen_point) --exp10;  // 0.00d: each zero after the point moves the first digit right
      continue;
    }
    leading = false;
    digits += c;
    if (!seen_point) ++exp10;
  }
  if (i < tok.size()) {  // exponent: clamp its magnitude (the value is a finite double, so it is bounded anyway)
    long long e = 0;
    bool eneg = false;
    ++i;
    if (i < tok.size() && (tok[i] == '+' || tok[i] == '-')) eneg = tok[i++] == '-';
    for (; i < tok.size(); ++i) e = std::min<long long>(e * 10 + (tok[i] - '0'), 1'000'000'000);
    exp10 += eneg ? -e : e;
  }
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  if (digits.empty()) return "0";
  return std::string(neg ? "-" : "") + digits + "e" + std::to_string(exp10);
}

/// Exact numeric order of two label keys.
inline bool label_key_less(const std::string& a, const std::string& b) {
  auto split = [](const std::string& k, int& sign, std::string& d, long long& e) {
    if (k == "0") {
      sign = 0;
      return;
    }
    sign = k[0] == '-' ? -1 : 1;
    const std::size_t at = k.find('e');
    d = k.substr(sign < 0 ? 1 : 0, at - (sign < 0 ? 1 : 0));
    e = std::stoll(k.substr(at + 1));
  };
  int sa = 0, sb = 0;
  std::string da, db;
  long long ea = 0, eb = 0;
  split(a, sa, da, ea);
  split(b, sb, db, eb);
  if (sa != sb) return sa < sb;
  if (sa == 0) return false;
  const bool mag_less = ea != eb ? ea < eb : da < db;  // magnitude order (digits have no trailing zeros)
  const bool mag_equal = ea == eb && da == db;
  return sa > 0 ? mag_less : !mag_less && !mag_equal;
}

}  // namespace detail

/// Parses UCR TSV text held in memory. `source` names the input in error messages.
inline UcrTable parse_ucr(std::string_view text, std::string_view source = "<memory>") {
  using detail::fail_at;
  using detail::quoted;
  UcrTable t;
  t.source = std::string(source);
  const std::size_t n = text.size();
  std::size_t pos = 0;
  index_t line_no = 0;
  index_t first_blank = 0;  // first blank line seen (0: none)
  while (pos < n) {
    ++line_no;
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = n;
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) {
      if (!first_blank) first_blank = line_no;
      continue;
    }
    if (first_blank) fail_at(source, first_blank, 1, "empty line before the data line " + std::to_string(line_no));

    // Split into TAB-separated fields; field 0 is the label.
    index_t field = 0;
    std::size_t fpos = 0;
    const index_t row = t.rows;
    while (true) {
      std::size_t fend = line.find('\t', fpos);
      if (fend == std::string_view::npos) fend = line.size();
      std::string_view tok = line.substr(fpos, fend - fpos);
      const index_t col = static_cast<index_t>(fpos) + 1;
      // Tolerate spaces around a field.
      const std::size_t a = tok.find_first_not_of(' ');
      tok = a == std::string_view::npos ? std::string_view() : tok.substr(a, tok.find_last_not_of(' ') - a + 1);
      if (tok.empty())
        fail_at(source, line_no, col,
                field == 0 ? std::string("empty label field") : "empty value field (field " + std::to_string(field + 1) + ")");
      double v = 0;
      bool range = false;
      if (!detail::parse_double(tok, v, range))
        fail_at(source, line_no, col,
                std::string(range ? "number out of range " : "bad number ") + quoted(tok) + " in " +
                    (field == 0 ? std::string("the label field") : "field " + std::to_string(field + 1)));
      if (field == 0) {
        if (!std::isfinite(v)) fail_at(source, line_no, col, "the label " + quoted(tok) + " is not a finite number");
        t.labels.push_back(v);
        t.label_keys.push_back(detail::label_key(tok[0] == '+' ? tok.substr(1) : tok));
      } else {
        if (t.rows > 0 && field > t.cols)
          fail_at(source, line_no, col,
                  "ragged row: more than " + std::to_string(t.cols) + " values (line 1 has " + std::to_string(t.cols) + ")");
        if (!std::isnan(v) && (std::isinf(v) || std::fabs(v) > double(std::numeric_limits<float>::max())))
          fail_at(source, line_no, col, "value " + quoted(tok) + " in field " + std::to_string(field + 1) +
                                            " is not a finite single-precision number");
        t.values.push_back(static_cast<float>(v));
      }
      ++field;
      if (fend == line.size()) break;
      fpos = fend + 1;
    }
    const index_t nvals = field - 1;
    const index_t end_col = static_cast<index_t>(line.size()) + 1;
    if (nvals == 0) fail_at(source, line_no, end_col, "the line holds a label but no values");
    if (t.rows == 0) t.cols = nvals;
    else if (nvals != t.cols)
      fail_at(source, line_no, end_col,
              "ragged row: " + std::to_string(nvals) + " values, but line 1 has " + std::to_string(t.cols));
    // True length: the last non-NaN value.
    const float* rv = t.values.data() + row * t.cols;
    index_t len = t.cols;
    while (len > 0 && std::isnan(rv[len - 1])) --len;
    if (len == 0) fail_at(source, line_no, 1, "every value of the series is NaN");
    t.lengths.push_back(len);
    ++t.rows;
  }
  if (t.rows == 0) fail_at(source, 1, 1, "empty file: no data lines");
  return t;
}

/// Reads and parses one UCR TSV file.
inline UcrTable read_ucr_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DISTILL_CHECK(in.good(), "cannot open UCR file '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  DISTILL_CHECK(!in.bad(), "error while reading UCR file '", path, "'");
  const std::string text = ss.str();
  return parse_ucr(text, path);
}

/// The classes of a UCR set: the distinct exact labels of its TRAIN table in numeric order (class id k is the
/// k-th smallest), with their nearest doubles.
struct UcrClasses {
  std::vector<std::string> keys;  // detail::label_key of each class
  std::vector<double> values;     // the label as a double (two classes may share one: use keys for identity)
  std::size_t size() const noexcept { return keys.size(); }
};

/// Sorted distinct labels of a table (the class order: class id k is the k-th smallest train label).
inline UcrClasses ucr_classes(const UcrTable& t) {
  std::vector<std::size_t> order(t.label_keys.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return detail::label_key_less(t.label_keys[a], t.label_keys[b]); });
  UcrClasses c;
  for (std::size_t i : order)
    if (c.keys.empty() || c.keys.back() != t.label_keys[i]) {
      c.keys.push_back(t.label_keys[i]);
      c.values.push_back(t.labels[i]);
    }
  return c;
}

/// Whether a series (first `len` values) is already z-normalised (see the header comment for the rule).
inline bool is_z_normalized(const float* v, index_t len, double tol = 1e-3) {
  double mean = 0;
  for (index_t i = 0; i < len; ++i) mean += v[i];
  mean /= double(len);
  double ss = 0;
  for (index_t i = 0; i < len; ++i) ss += (v[i] - mean) * (v[i] - mean);
  if (std::fabs(mean) > tol) return false;
  const double sd_pop = std::sqrt(ss / double(len));
  const double sd_smp = len > 1 ? std::sqrt(ss / double(len - 1)) : 0.0;
  return sd_pop < 1e-8 || std::fabs(sd_pop - 1) <= tol || std::fabs(sd_smp - 1) <= tol;
}

/// Fills NaN inside the first `len` values: linear interpolation between the valid neighbours, and the first
/// valid value before it. Requires v[len-1] to be a number.
inline void fill_missing(float* v, index_t len) {
  index_t i = 0;
  while (i < len) {
    if (!std::isnan(v[i])) {
      ++i;
      continue;
    }
    index_t j = i;
    while (j < len && std::isnan(v[j])) ++j;  // v[j] valid (j < len since v[len-1] is valid)
    if (i == 0) {
      for (index_t k = 0; k < j; ++k) v[k] = v[j];
    } else {
      const double a = v[i - 1], b = v[j];
      const double span = double(j - (i - 1));
      for (index_t k = i; k < j; ++k) v[k] = static_cast<float>(a + (b - a) * double(k - (i - 1)) / span);
    }
    i = j;
  }
}

/// z-normalises the first `len` values (sample std; a constant series becomes zeros).
inline void z_normalize(float* v, index_t len) {
  double mean = 0;
  for (index_t i = 0; i < len; ++i) mean += v[i];
  mean /= double(len);
  double ss = 0;
  for (index_t i = 0; i < len; ++i) ss += (v[i] - mean) * (v[i] - mean);
  const double sd = len > 1 ? std::sqrt(ss / double(len - 1)) : 0.0;
  const double inv = sd > 1e-8 ? 1.0 / sd : 0.0;
  for (index_t i = 0; i < len; ++i) v[i] = static_cast<float>((v[i] - mean) * inv);
}

/// Whether ZNorm::Auto normalises a dataset whose training table is `train`.
inline bool needs_z_normalization(const UcrTable& train) {
  std::vector<float> row;
  for (index_t r = 0; r < train.rows; ++r) {
    const index_t len = train.lengths[static_cast<std::size_t>(r)];
    row.assign(train.values.begin() + r * train.cols, train.values.begin() + r * train.cols + len);
    fill_missing(row.data(), len);
    if (!is_z_normalized(row.data(), len)) return true;
  }
  return false;
}

/// Builds a Dataset from a parsed table: labels mapped through `classes` (sorted exact train labels), missing
/// values filled, padding zeroed, optionally z-normalised. `width` (>= t.cols; 0: t.cols) pads every series
/// with zeros to that many columns, as the varying-length rule pads a shorter series.
inline Dataset make_ucr_dataset(const UcrTable& t, const UcrClasses& classes, bool normalize, std::string name = {},
                                index_t width = 0) {
  if (width == 0) width = t.cols;
  DISTILL_CHECK(width >= t.cols, "make_ucr_dataset: width ", width, " is narrower than the ", t.cols, " columns of '",
                t.source, "'");
  Dataset d;
  d.name = name.empty() ? t.source : std::move(name);
  d.num_classes = static_cast<index_t>(classes.size());
  d.class_values = classes.values;
  d.z_normalized = normalize;
  d.x = Tensor<float, 3, Cpu>::zeros({t.rows, 1, width});
  d.labels.resize(static_cast<std::size_t>(t.rows));
  d.lengths = t.lengths;
  for (index_t r = 0; r < t.rows; ++r) {
    const std::string& lab = t.label_keys[static_cast<std::size_t>(r)];
    auto it = std::lower_bound(classes.keys.begin(), classes.keys.end(), lab, detail::label_key_less);
    if (it == classes.keys.end() || *it != lab) {
      std::ostringstream cls;
      for (std::size_t k = 0; k < classes.size() && k < 16; ++k) cls << (k ? ", " : "") << classes.values[k];
      if (classes.size() > 16) cls << ", ...";
      std::ostringstream lab_s;
      lab_s << t.labels[static_cast<std::size_t>(r)];
      detail::fail_at(t.source, r + 1, 1,
                          "label " + lab_s.str() + " does not occur in the training file (its classes: " + cls.str() + ")");
    }
    d.labels[static_cast<std::size_t>(r)] = static_cast<index_t>(it - classes.keys.begin());
    const index_t len = t.lengths[static_cast<std::size_t>(r)];
    float* dst = d.x.data() + r * width;
    std::copy(t.values.begin() + r * t.cols, t.values.begin() + r * t.cols + len, dst);
    fill_missing(dst, len);
    if (normalize) z_normalize(dst, len);
  }
  return d;
}

struct UcrOptions {
  ZNorm znorm = ZNorm::Auto;
  /// Extra archive root searched first for a bare name (<root>/<Name>/<Name>_TRAIN.tsv).
  std::string root;
};

/// Directory and dataset name of a UCR set. Search order (docs/data.md):
///   1. `name_or_path` as a directory (its <basename>_TRAIN.tsv, else its only *_TRAIN.tsv);
///   2. for a bare name: <root>/<name> (UcrOptions::root, the explicit archive root);
///   3. $DISTILL_UCR_DIR/<name>;
///   4. the installed bundled sets, <prefix>/share/distill/ucr/<name> (a consumer of the installed package);
///   5. the source tree's bundled sets, data/ucr/<name> (a consumer of the build tree, our tests and examples);
///   6. $DISTILL_DATA_DIR/ucr/<name>.
struct UcrLocation {
  std::string dir;
  std::string name;
  std::string train_path() const { return dir + "/" + name + "_TRAIN.tsv"; }
  std::string test_path() const { return dir + "/" + name + "_TEST.tsv"; }
};

inline UcrLocation resolve_ucr(const std::string& name_or_path, const std::string& root = {}) {
  namespace fs = std::filesystem;
  std::vector<std::string> tried;
  auto try_dir = [&](const fs::path& dir, UcrLocation& out) {
    std::error_code ec;
    tried.push_back(dir.string());
    if (!fs::is_directory(dir, ec)) return false;
    fs::path norm = dir;
    if (!norm.has_filename()) norm = norm.parent_path();
    const std::string base = norm.filename().string();
    if (fs::is_regular_file(dir / (base + "_TRAIN.tsv"), ec)) {
      out = {norm.string(), base};
      return true;
    }
    std::vector<std::string> found;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      const std::string f = e.path().filename().string();
      const std::string suf = "_TRAIN.tsv";
      if (f.size() > suf.size() && f.compare(f.size() - suf.size(), suf.size(), suf) == 0)
        found.push_back(f.substr(0, f.size() - suf.size()));
    }
    if (found.size() == 1) {
      out = {norm.string(), found[0]};
      return true;
    }
    return false;
  };
  UcrLocation loc;
  if (try_dir(fs::path(name_or_path), loc)) return loc;
  const bool bare = name_or_path.find('/') == std::string::npos && !name_or_path.empty();
  if (bare) {
    if (!root.empty() && try_dir(fs::path(root) / name_or_path, loc)) return loc;
    if (const char* env = std::getenv("DISTILL_UCR_DIR"); env && *env && try_dir(fs::path(env) / name_or_path, loc))
      return loc;
#ifdef DISTILL_INSTALLED_DATA_DIR
    if (try_dir(fs::path(DISTILL_INSTALLED_DATA_DIR) / "ucr" / name_or_path, loc)) return loc;
#endif
#ifdef DISTILL_DATA_DIR
    if (try_dir(fs::path(DISTILL_DATA_DIR) / "ucr" / name_or_path, loc)) return loc;
#endif
    if (const char* env = std::getenv("DISTILL_DATA_DIR");
        env && *env && try_dir(fs::path(env) / "ucr" / name_or_path, loc))
      return loc;
  }
  std::string list;
  for (const auto& t : tried) {
    if (!list.empty()) list += ", ";
    list += t;
  }
  DISTILL_FAIL("UCR dataset '", name_or_path, "' not found: no directory holding <Name>_TRAIN.tsv among ", list,
               " (set DISTILL_UCR_DIR to an archive root, or pass a directory path)");
}

struct UcrSplits {
  Dataset train;
  Dataset test;
};

/// The common column count of a TRAIN and a TEST table (see the header comment): equal counts, or the larger
/// one when either split has varying lengths. Throws naming both sources when fixed-length splits disagree.
inline index_t ucr_common_width(const UcrTable& train, const UcrTable& test) {
  if (train.cols == test.cols) return train.cols;
  auto varying = [](const UcrTable& t) {
    return std::any_of(t.lengths.begin(), t.lengths.end(), [&](index_t l) { return l != t.cols; });
  };
  DISTILL_CHECK(varying(train) || varying(test), "the TEST file '", test.source, "' has series of length ", test.cols,
                " but the TRAIN file '", train.source, "' has series of length ", train.cols,
                "; both splits of a fixed-length set must have the same length");
  return std::max(train.cols, test.cols);
}

/// Both splits of a UCR set, with one label map (from TRAIN), one normalisation decision (from TRAIN) and one
/// series length (ucr_common_width).
inline UcrSplits load_ucr(const std::string& name_or_path, const UcrOptions& opt = {}) {
  const UcrLocation loc = resolve_ucr(name_or_path, opt.root);
  const UcrTable tr = read_ucr_file(loc.train_path());
  const UcrTable te = read_ucr_file(loc.test_path());
  const index_t width = ucr_common_width(tr, te);
  const auto classes = ucr_classes(tr);
  const bool norm = opt.znorm == ZNorm::Always || (opt.znorm == ZNorm::Auto && needs_z_normalization(tr));
  return {make_ucr_dataset(tr, classes, norm, loc.name, width), make_ucr_dataset(te, classes, norm, loc.name, width)};
}

/// One split. Both files are read: the label map and the normalisation decision come from TRAIN, and the
/// lengths of the two splits are checked against each other.
inline Dataset load_ucr(const std::string& name_or_path, Split split, const UcrOptions& opt = {}) {
  const UcrLocation loc = resolve_ucr(name_or_path, opt.root);
  const UcrTable tr = read_ucr_file(loc.train_path());
  const UcrTable te = read_ucr_file(loc.test_path());
  const index_t width = ucr_common_width(tr, te);
  const auto classes = ucr_classes(tr);
  const bool norm = opt.znorm == ZNorm::Always || (opt.znorm == ZNorm::Auto && needs_z_normalization(tr));
  return make_ucr_dataset(split == Split::Train ? tr : te, classes, norm, loc.name, width);
}

}  // namespace distill::data
