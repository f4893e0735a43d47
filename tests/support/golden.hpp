// tests/support/golden.hpp -- reader for the golden files written by tests/golden/golden_io.py.
#pragma once

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/tensor.hpp"

namespace distill::testing {

class Golden {
public:
  explicit Golden(const std::string& path) : path_(path) {
    std::ifstream in(path);
    DISTILL_CHECK(in.good(), "golden file ", path, " cannot be opened (regenerate with tests/golden/make_golden.py)");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      DISTILL_CHECK(line[0] == '@', path, ": expected '@name rank dims...', got '", line.substr(0, 40), "'");
      std::istringstream hs(line.substr(1));
      Entry e;
      std::string name;
      int rank = 0;
      hs >> name >> rank;
      e.shape.resize(rank);
      for (auto& d : e.shape) hs >> d;
      index_t n = 1;
      for (auto d : e.shape) n *= d;
      std::getline(in, line);
      std::istringstream vs(line);
      e.values.resize(n);
      for (auto& v : e.values) vs >> v;
      DISTILL_CHECK(!vs.fail(), path, ": array '", name, "' has fewer than ", n, " values");
      entries_[name] = std::move(e);
    }
  }

  bool has(const std::string& name) const { return entries_.count(name) != 0; }

  template <class T, std::size_t R>
  Tensor<T, R, Cpu> get(const std::string& name) const {
    auto it = entries_.find(name);
    DISTILL_CHECK(it != entries_.end(), path_, ": no array named '", name, "'");
    DISTILL_CHECK(it->second.shape.size() == R, path_, ": array '", name, "' has rank ", it->second.shape.size(),
                  ", expected ", R);
    Shape<R> s{};
    for (std::size_t i = 0; i < R; ++i) s[i] = it->second.shape[i];
    Tensor<T, R, Cpu> t(s);
    for (index_t i = 0; i < t.numel(); ++i) t[i] = static_cast<T>(it->second.values[i]);
    return t;
  }
  double scalar(const std::string& name) const { return get<double, 1>(name)[0]; }

private:
  struct Entry {
    std::vector<index_t> shape;
    std::vector<double> values;
  };
  std::string path_;
  std::map<std::string, Entry> entries_;
};

inline std::string golden_path(const std::string& file) { return std::string(DISTILL_GOLDEN_DIR) + "/" + file; }

}  // namespace distill::testing
