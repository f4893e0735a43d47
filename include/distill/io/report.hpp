// distill/io/report.hpp -- metric records written as CSV and JSON.
//
// A Record is an ordered list of (key, value) fields; values are numbers (shortest round-trip form), integers,
// booleans or strings. to_csv takes the union of the records' keys in first-appearance order as its header
// (RFC 4180 quoting); to_json writes an object or an array of objects (non-finite numbers become null).
// append_csv adds one row to a CSV file, writing the header first when the file is new and refusing a
// record whose keys differ from the file's header.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "distill/core/device.hpp"
#include "distill/core/error.hpp"

namespace distill::io {

class Record {
public:
  using Value = std::variant<double, std::int64_t, bool, std::string>;

  /// Sets (or replaces) a field; the first set fixes its position.
  template <class V>
  Record& set(const std::string& key, V v) {
    Value val;
    if constexpr (std::is_same_v<V, bool>) val = v;
    else if constexpr (std::is_integral_v<V>) val = static_cast<std::int64_t>(v);
    else if constexpr (std::is_floating_point_v<V>) val = static_cast<double>(v);
    else if constexpr (std::is_convertible_v<V, std::string>) val = std::string(v);
    else static_assert(dependent_false<V>, "Record::set: the value must be a number, a bool or a string.");
    for (auto& f : fields_)
      if (f.first == key) {
        f.second = std::move(val);
        return *this;
      }
    fields_.emplace_back(key, std::move(val));
    return *this;
  }
  bool has(const std::string& key) const { return find(key) != nullptr; }
  const Value& at(const std::string& key) const {
    const Value* v = find(key);
    DISTILL_CHECK(v != nullptr, "Record: no field named '", key, "'");
    return *v;
  }
  /// A numeric field as double (integers and booleans convert).
  double number(const std::string& key) const {
    const Value& v = at(key);
    if (auto d = std::get_if<double>(&v)) return *d;
    if (auto i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    if (auto b = std::get_if<bool>(&v)) return *b ? 1.0 : 0.0;
    DISTILL_FAIL("Record: field '", key, "' is a string, not a number");
  }
  const std::vector<std::pair<std::string, Value>>& fields() const noexcept { return fields_; }
  std::size_t size() const noexcept { return fields_.size(); }

private:
  const Value* find(const std::string& key) const {
    for (const auto& f : fields_)
      if (f.first == key) return &f.second;
    return nullptr;
  }
  std::vector<std::pair<std::string, Value>> fields_;
};

namespace detail {
inline std::string number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
inline std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o += static_cast<char>(c);
        }
    }
  }
  return o + "\"";
}
inline std::string json_value(const Record::Value& v) {
  if (auto d = std::get_if<double>(&v)) return std::isfinite(*d) ? number(*d) : "null";
  if (auto i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return json_string(std::get<std::string>(v));
}
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}
inline std::string csv_value(const Record::Value& v) {
  if (auto d = std::get_if<double>(&v)) return number(*d);
  if (auto i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  return csv_field(std::get<std::string>(v));
}
inline void write_text(const std::string& path, const std::string& text, bool append = false) {
  std::ofstream out(path, append ? std::ios::app : std::ios::trunc);
  DISTILL_CHECK(out.good(), "cannot open '", path, "' for writing");
  out << text;
  DISTILL_CHECK(out.good(), "error while writing '", path, "'");
}
}  // namespace detail

inline std::string to_json(const Record& r, int indent = 2) {
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  std::string o = "{";
  bool first = true;
  for (const auto& [k, v] : r.fields()) {
    o += first ? "\n" : ",\n";
    first = false;
    o += pad + detail::json_string(k) + ": " + detail::json_value(v);
  }
  return o + (r.size() ? "\n}" : "}");
}

inline std::string to_json(const std::vector<Record>& rs) {
  std::string o = "[";
  for (std::size_t i = 0; i < rs.size(); ++i) {
    std::string obj = to_json(rs[i], 2);
    // indent the object by two spaces
    std::string ind = "  ";
    for (char c : obj) {
      ind += c;
      if (c == '\n') ind += "  ";
    }
    o += (i ? ",\n" : "\n") + ind;
  }
  return o + (rs.empty() ? "]" : "\n]");
}

/// The union of keys, in order of first appearance.
inline std::vector<std::string> csv_columns(const std::vector<Record>& rs) {
  std::vector<std::string> cols;
  for (const auto& r : rs)
    for (const auto& f : r.fields()) {
      bool seen = false;
      for (const auto& c : cols) seen = seen || c == f.first;
      if (!seen) cols.push_back(f.first);
    }
  return cols;
}

inline std::string csv_row(const Record& r, const std::vector<std::string>& cols) {
  std::string o;
  for (std::size_t i = 0; i < cols.size(); ++i) {
    if (i) o += ',';
    if (r.has(cols[i])) o += detail::csv_value(r.at(cols[i]));
  }
  return o + "\n";
}

inline std::string csv_header(const std::vector<std::string>& cols) {
  std::string o;
  for (std::size_t i = 0; i < cols.size(); ++i) {
    if (i) o += ',';
    o += detail::csv_field(cols[i]);
  }
  return o + "\n";
}

inline std::string to_csv(const std::vector<Record>& rs) {
  const auto cols = csv_columns(rs);
  std::string o = csv_header(cols);
  for (const auto& r : rs) o += csv_row(r, cols);
  return o;
}

inline void write_json(const std::string& path, const Record& r) { detail::write_text(path, to_json(r) + "\n"); }
inline void write_json(const std::string& path, const std::vector<Record>& rs) {
  detail::write_text(path, to_json(rs) + "\n");
}
inline void write_csv(const std::string& path, const std::vector<Record>& rs) { detail::write_text(path, to_csv(rs)); }

/// Appends one row; a new or empty file gets the header first. The record's keys must match the header.
inline void append_csv(const std::string& path, const Record& r) {
  std::vector<std::string> cols;
  for (const auto& f : r.fields()) cols.push_back(f.first);
  const std::string header = csv_header(cols);
  std::string existing;
  {
    std::ifstream in(path);
    if (in.good()) std::getline(in, existing);
  }
  if (existing.empty()) {
    detail::write_text(path, header + csv_row(r, cols));
    return;
  }
  DISTILL_CHECK(existing + "\n" == header, "append_csv: '", path, "' has the header '", existing,
                "', but the record's fields are '", header.substr(0, header.size() - 1), "'");
  detail::write_text(path, csv_row(r, cols), true);
}

}  // namespace distill::io
