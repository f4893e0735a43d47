// Data pipeline: UCR TSV parsing and loading, malformed-input errors, dataset/loader/samplers, augmentations.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "distill/data/augment.hpp"
#include "distill/data/dataset.hpp"
#include "distill/data/ucr.hpp"

using namespace distill;
using namespace distill::data;

namespace {

const std::vector<std::string> kBundled = {"Coffee",     "ECG200",     "ECGFiveDays",          "GunPoint",
                                           "TwoLeadECG", "MoteStrain", "SonyAIBORobotSurface1"};

/// A fresh temporary directory, removed at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("distill_test_data_" + tag + "_" + std::to_string(::getpid()) + "_" +
            std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const auto p = path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
};

/// Reference reader (independent of the library's parser): getline on TAB + strtod.
struct RefTable {
  std::vector<double> labels;
  std::vector<std::vector<double>> rows;
};
RefTable ref_read(const std::string& path) {
  RefTable t;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    std::string tok;
    std::vector<double> v;
    bool first = true;
    while (std::getline(ls, tok, '\t')) {
      const double x = std::strtod(tok.c_str(), nullptr);
      if (first) t.labels.push_back(x);
      else v.push_back(x);
      first = false;
    }
    t.rows.push_back(v);
  }
  return t;
}

double mean_of(const float* v, index_t n) {
  double s = 0;
  for (index_t i = 0; i < n; ++i) s += v[i];
  return s / double(n);
}
double sample_sd(const float* v, index_t n) {
  const double m = mean_of(v, n);
  double s = 0;
  for (index_t i = 0; i < n; ++i) s += (v[i] - m) * (v[i] - m);
  return std::sqrt(s / double(n - 1));
}

Dataset toy_dataset(index_t n, index_t k, index_t L = 8) {
  Dataset d;
  d.name = "toy";
  d.num_classes = k;
  d.x = Tensor<float, 3, Cpu>({n, 1, L});
  for (index_t i = 0; i < n; ++i) {
    for (index_t t = 0; t < L; ++t) d.x(i, 0, t) = float(i * 1000 + t);
    d.labels.push_back(i % k);
    d.lengths.push_back(L);
  }
  return d;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------------------------------------------------

TEST_CASE("parse_ucr reads labels, decimals and exponent notation", "[ucr]") {
  const auto t = parse_ucr("1\t0.5\t-1.25e-3\t2\n-1\t+1E2\t3.5E-05\t-0\n", "mem");
  REQUIRE(t.rows == 2);
  REQUIRE(t.cols == 3);
  REQUIRE(t.labels == std::vector<double>{1, -1});
  const std::vector<float> expect = {0.5f, -1.25e-3f, 2.0f, 100.0f, 3.5e-05f, -0.0f};
  REQUIRE(t.values == expect);
  REQUIRE(t.lengths == std::vector<index_t>{3, 3});
  // CRLF, spaces around fields, no final newline.
  const auto u = parse_ucr("2 \t 0.25\t1e1\r\n2\t1\t2", "mem");
  REQUIRE(u.rows == 2);
  REQUIRE(u.values == std::vector<float>{0.25f, 10.0f, 1.0f, 2.0f});
}

TEST_CASE("parse_ucr keeps trailing-NaN lengths; the dataset fills interior NaN and zeroes padding", "[ucr]") {
  const std::string text =
      "0\t1\t2\t3\t4\t5\t6\n"
      "1\t1\tNaN\tNaN\t7\tNaN\tNaN\n"   // interior gap then padding: true length 4
      "0\tNaN\t2\tNaN\t4\t5\tNaN\n"     // leading NaN takes the first value; length 5
      "1\t9\tNaN\tNaN\tNaN\tNaN\tNaN\n";  // length 1
  const auto t = parse_ucr(text, "mem");
  REQUIRE(t.lengths == std::vector<index_t>{6, 4, 5, 1});
  const auto d = make_ucr_dataset(t, ucr_classes(t), false, "nan");
  d.validate();
  REQUIRE(d.varying_length());
  const std::vector<float> r1 = {1, 3, 5, 7, 0, 0};
  const std::vector<float> r2 = {2, 2, 3, 4, 5, 0};
  const std::vector<float> r3 = {9, 0, 0, 0, 0, 0};
  for (index_t j = 0; j < 6; ++j) {
    REQUIRE(d.x(1, 0, j) == Approx(r1[std::size_t(j)]));
    REQUIRE(d.x(2, 0, j) == Approx(r2[std::size_t(j)]));
    REQUIRE(d.x(3, 0, j) == r3[std::size_t(j)]);
  }
}

TEST_CASE("labels map to 0..K-1 in numeric order of the training labels, shared with the test split", "[ucr]") {
  const auto tr = parse_ucr("10\t1\n9\t2\n2\t3\n10\t4\n-1\t5\n", "train");
  const auto te = parse_ucr("2\t1\n-1\t1\n10\t1\n9\t1\n", "test");
  const auto classes = ucr_classes(tr);
  REQUIRE(classes.values == std::vector<double>{-1, 2, 9, 10});  // numeric, not lexicographic ("10" < "2" < "9")
  const auto dtr = make_ucr_dataset(tr, classes, false);
  const auto dte = make_ucr_dataset(te, classes, false);
  REQUIRE(dtr.labels == std::vector<index_t>{3, 2, 1, 3, 0});
  REQUIRE(dte.labels == std::vector<index_t>{1, 0, 3, 2});
  REQUIRE(dtr.num_classes == 4);
  REQUIRE(dte.class_values == classes.values);
}

TEST_CASE("malformed input raises errors naming file, line and column", "[ucr][errors]") {
  auto msg = [](const std::string& text) { return error_of([&] { parse_ucr(text, "f.tsv"); }); };
  // bad number: line 2, column of the field (byte 8), field 3
  CHECK_THAT(msg("1\t0.1\t0.2\n2\t0.3\tx1.5\n"), Catch::Contains("f.tsv:2:7:") && Catch::Contains("bad number 'x1.5'") &&
                                                    Catch::Contains("field 3"));
  CHECK_THAT(msg("1\t0.1\t1.5.2\n"), Catch::Contains("f.tsv:1:7:") && Catch::Contains("'1.5.2'"));
  CHECK_THAT(msg("1\t0.1\t0x10\n"), Catch::Contains("f.tsv:1:7:") && Catch::Contains("bad number"));
  CHECK_THAT(msg("a\t0.1\n"), Catch::Contains("f.tsv:1:1:") && Catch::Contains("label"));
  // ragged rows: too few values (column = end of line) and too many (column of the extra field)
  CHECK_THAT(msg("1\t0.1\t0.2\t0.3\n2\t0.3\t0.4\n"),
             Catch::Contains("f.tsv:2:10:") && Catch::Contains("ragged row: 2 values, but line 1 has 3"));
  CHECK_THAT(msg("1\t0.1\n2\t0.3\t0.4\n"), Catch::Contains("f.tsv:2:7:") && Catch::Contains("ragged row"));
  // empty file, whitespace-only file, empty field, trailing tab
  CHECK_THAT(msg(""), Catch::Contains("f.tsv:1:1:") && Catch::Contains("empty file"));
  CHECK_THAT(msg("\n \n"), Catch::Contains("empty file"));
  CHECK_THAT(msg("1\t0.1\t\t0.3\n"), Catch::Contains("f.tsv:1:7:") && Catch::Contains("empty value field (field 3)"));
  CHECK_THAT(msg("1\t0.1\t0.3\t\n"), Catch::Contains("f.tsv:1:11:") && Catch::Contains("empty value field"));
  // label only, NaN label, infinite / overflowing values, all-NaN series, blank line in the middle
  CHECK_THAT(msg("1\n"), Catch::Contains("f.tsv:1:2:") && Catch::Contains("no values"));
  CHECK_THAT(msg("NaN\t1\n"), Catch::Contains("f.tsv:1:1:") && Catch::Contains("not a finite number"));
  CHECK_THAT(msg("1\tinf\n"), Catch::Contains("f.tsv:1:3:") && Catch::Contains("not a finite single-precision"));
  CHECK_THAT(msg("1\t1e39\n"), Catch::Contains("f.tsv:1:3:") && Catch::Contains("not a finite single-precision"));
  CHECK_THAT(msg("1\t2\t1e999\n"), Catch::Contains("f.tsv:1:5:") && Catch::Contains("out of range"));
  CHECK_THAT(msg("1\t0\n2\tNaN\tNaN\n"), Catch::Contains("ragged"));
  CHECK_THAT(msg("1\tNaN\tNaN\n"), Catch::Contains("f.tsv:1:1:") && Catch::Contains("every value of the series is NaN"));
  CHECK_THAT(msg("1\t1\n\n2\t2\n"), Catch::Contains("f.tsv:2:1:") && Catch::Contains("empty line"));
  // trailing blank lines are fine
  REQUIRE(parse_ucr("1\t1\n2\t2\n\n\n", "f.tsv").rows == 2);
  // every error is a distill::Error
  REQUIRE_THROWS_AS(parse_ucr("1\t?\n", "f.tsv"), Error);
}

TEST_CASE("a test label missing from the training file is an error naming the test file and line", "[ucr][errors]") {
  TempDir dir("missing_label");
  dir.write("Toy/Toy_TRAIN.tsv", "1\t0\t1\t2\n2\t2\t1\t0\n");
  dir.write("Toy/Toy_TEST.tsv", "1\t0\t1\t2\n3\t2\t1\t0\n");
  const std::string test_path = (dir.path / "Toy" / "Toy_TEST.tsv").string();
  const std::string m = error_of([&] { load_ucr((dir.path / "Toy").string(), Split::Test); });
  CHECK_THAT(m, Catch::Contains(test_path + ":2:1:") && Catch::Contains("label 3 does not occur in the training file"));
  // The train split alone loads.
  REQUIRE(load_ucr((dir.path / "Toy").string(), Split::Train).size() == 2);
  // Errors from files name the file path.
  dir.write("Bad/Bad_TRAIN.tsv", "1\t0\t1\n1\t0\tq\n");
  dir.write("Bad/Bad_TEST.tsv", "1\t0\t1\n");
  CHECK_THAT(error_of([&] { load_ucr((dir.path / "Bad").string()); }),
             Catch::Contains((dir.path / "Bad" / "Bad_TRAIN.tsv").string() + ":2:5:"));
}

// ------------------------------------------------------------------------------------------------------------
// Normalisation and loading
// ------------------------------------------------------------------------------------------------------------

TEST_CASE("z-normalisation: Auto normalises raw sets only; Always and Never override", "[ucr]") {
  TempDir dir("znorm");
  // Raw values (not normalised), one varying-length row.
  dir.write("Raw/Raw_TRAIN.tsv", "1\t10\t12\t14\t16\n2\t100\t50\t0\tNaN\n");
  dir.write("Raw/Raw_TEST.tsv", "2\t5\t5\t5\t5\n1\t1\t2\t3\t4\n");
  const auto s = load_ucr((dir.path / "Raw").string());
  REQUIRE(s.train.z_normalized);
  REQUIRE(s.test.z_normalized);
  for (const Dataset* d : {&s.train, &s.test})
    for (index_t i = 0; i < d->size(); ++i) {
      const index_t len = d->lengths[std::size_t(i)];
      const float* row = &d->x(i, 0, 0);
      REQUIRE(std::fabs(mean_of(row, len)) < 1e-6);
      const bool constant = d == &s.test && i == 0;
      if (constant) {
        for (index_t t = 0; t < len; ++t) REQUIRE(row[t] == 0.0f);  // a constant series becomes zeros
      } else {
        REQUIRE(sample_sd(row, len) == Approx(1.0).epsilon(1e-6));
      }
      for (index_t t = len; t < d->length(); ++t) REQUIRE(row[t] == 0.0f);
    }
  REQUIRE(s.train.x(1, 0, 3) == 0.0f);
  // Never keeps the raw values.
  UcrOptions never;
  never.znorm = ZNorm::Never;
  const auto raw = load_ucr((dir.path / "Raw").string(), Split::Train, never);
  REQUIRE_FALSE(raw.z_normalized);
  REQUIRE(raw.x(0, 0, 1) == 12.0f);

  // An already-normalised set (a bundled one) is left byte-for-byte under Auto; Always renormalises it.
  const auto coffee = load_ucr("Coffee", Split::Train);
  REQUIRE_FALSE(coffee.z_normalized);
  REQUIRE(coffee.x(0, 0, 0) == -0.51841899f);
  UcrOptions always;
  always.znorm = ZNorm::Always;
  const auto coffee2 = load_ucr("Coffee", Split::Train, always);
  REQUIRE(coffee2.z_normalized);
  REQUIRE(coffee2.x(0, 0, 0) == Approx(-0.51841899).margin(1e-5));
}

TEST_CASE("is_z_normalized accepts sample or population std and rejects shifted or scaled rows", "[ucr]") {
  std::vector<float> v = {1, 2, 3, 4, 5, 6, 7};
  std::vector<float> a = v, b = v;
  z_normalize(a.data(), 7);
  REQUIRE(is_z_normalized(a.data(), 7));
  // population std
  const double m = 4, sd = std::sqrt(28.0 / 7.0);
  for (auto& x : b) x = static_cast<float>((x - m) / sd);
  REQUIRE(is_z_normalized(b.data(), 7));
  for (auto& x : a) x += 0.01f;
  REQUIRE_FALSE(is_z_normalized(a.data(), 7));
  for (auto& x : b) x *= 1.1f;
  REQUIRE_FALSE(is_z_normalized(b.data(), 7));
}

TEST_CASE("every bundled UCR set loads with the archive's sizes and an independent parser's values", "[ucr][bundled]") {
  // Sizes from the archive summary (data/ucr/MANIFEST.tsv, copied from the archive's DataSummary check).
  std::map<std::string, std::vector<index_t>> manifest;
  {
    std::ifstream in(std::string(DISTILL_DATA_DIR) + "/ucr/MANIFEST.tsv");
    REQUIRE(in.good());
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string name, a, b, c, d;
      std::getline(ls, name, '\t');
      std::getline(ls, a, '\t');
      std::getline(ls, b, '\t');
      std::getline(ls, c, '\t');
      std::getline(ls, d, '\t');
      manifest[name] = {std::stoll(a), std::stoll(b), std::stoll(c), std::stoll(d)};
    }
  }
  REQUIRE(manifest.size() == kBundled.size());
  for (const auto& name : kBundled) {
    INFO(name);
    const auto s = load_ucr(name);
    const auto& m = manifest.at(name);
    REQUIRE(s.train.size() == m[0]);
    REQUIRE(s.test.size() == m[1]);
    REQUIRE(s.train.length() == m[2]);
    REQUIRE(s.test.length() == m[2]);
    REQUIRE(s.train.num_classes == m[3]);
    REQUIRE_FALSE(s.train.z_normalized);  // all seven are normalised in the archive
    REQUIRE_FALSE(s.train.varying_length());
    s.train.validate();
    s.test.validate();
    for (auto c : s.train.class_counts()) REQUIRE(c > 0);
    for (auto c : s.test.class_counts()) REQUIRE(c > 0);
    const auto loc = resolve_ucr(name);
    for (const auto& [path, ds] : {std::pair{loc.train_path(), &s.train}, std::pair{loc.test_path(), &s.test}}) {
      const RefTable ref = ref_read(path);
      REQUIRE(index_t(ref.rows.size()) == ds->size());
      std::vector<double> cls = ref.labels;
      std::sort(cls.begin(), cls.end());
      cls.erase(std::unique(cls.begin(), cls.end()), cls.end());
      for (index_t i = 0; i < ds->size(); ++i) {
        REQUIRE(ds->class_values[std::size_t(ds->labels[std::size_t(i)])] == ref.labels[std::size_t(i)]);
        for (index_t t = 0; t < ds->length(); ++t)
          REQUIRE(ds->x(i, 0, t) == static_cast<float>(ref.rows[std::size_t(i)][std::size_t(t)]));
      }
    }
  }
  // ECG200 uses -1/1: -1 -> class 0.
  const auto ecg = load_ucr("ECG200", Split::Train);
  REQUIRE(ecg.class_values == std::vector<double>{-1, 1});
}

TEST_CASE("load_ucr resolves directories, archive roots and environment variables", "[ucr]") {
  TempDir dir("resolve");
  dir.write("archive/Toy/Toy_TRAIN.tsv", "1\t0\t1\t2\n2\t2\t1\t0\n");
  dir.write("archive/Toy/Toy_TEST.tsv", "2\t0\t1\t2\n");
  dir.write("renamed/Other_TRAIN.tsv", "1\t0\t1\n");
  dir.write("renamed/Other_TEST.tsv", "1\t1\t0\n");
  // a directory path
  REQUIRE(load_ucr((dir.path / "archive" / "Toy").string(), Split::Test).labels == std::vector<index_t>{1});
  // a directory whose single *_TRAIN.tsv has another name
  const auto loc = resolve_ucr((dir.path / "renamed").string());
  REQUIRE(loc.name == "Other");
  // an explicit root, then DISTILL_UCR_DIR
  UcrOptions o;
  o.root = (dir.path / "archive").string();
  REQUIRE(load_ucr("Toy", Split::Train, o).size() == 2);
  ::setenv("DISTILL_UCR_DIR", (dir.path / "archive").string().c_str(), 1);
  REQUIRE(load_ucr("Toy", Split::Train).name == "Toy");
  ::unsetenv("DISTILL_UCR_DIR");
  // an unknown name lists what was tried
  CHECK_THAT(error_of([] { resolve_ucr("NoSuchSet"); }),
             Catch::Contains("UCR dataset 'NoSuchSet' not found") && Catch::Contains("/ucr/NoSuchSet"));
  // missing TEST file
  dir.write("half/Half_TRAIN.tsv", "1\t0\t1\n");
  CHECK_THAT(error_of([&] { load_ucr((dir.path / "half").string()); }),
             Catch::Contains("cannot open UCR file") && Catch::Contains("Half_TEST.tsv"));
}

// ------------------------------------------------------------------------------------------------------------
// Dataset, loader, samplers
// ------------------------------------------------------------------------------------------------------------

TEST_CASE("Dataset::subset and fixed_length crop or pad with zeros", "[dataset]") {
  Dataset d = toy_dataset(5, 2, 6);
  d.lengths[1] = 4;
  for (index_t t = 4; t < 6; ++t) d.x(1, 0, t) = 0;
  const std::vector<index_t> idx = {4, 1, 1};
  const auto s = d.subset(idx);
  REQUIRE(s.size() == 3);
  REQUIRE(s.labels == std::vector<index_t>{0, 1, 1});
  REQUIRE(s.x(0, 0, 2) == 4002.0f);
  REQUIRE(s.lengths == std::vector<index_t>{6, 4, 4});
  const auto crop = d.fixed_length(3);
  REQUIRE(crop.length() == 3);
  REQUIRE(crop.x(2, 0, 2) == 2002.0f);
  REQUIRE(crop.lengths[1] == 3);
  const auto pad = d.fixed_length(9);
  REQUIRE(pad.length() == 9);
  REQUIRE(pad.x(3, 0, 5) == 3005.0f);
  for (index_t t = 6; t < 9; ++t) REQUIRE(pad.x(3, 0, t) == 0.0f);
  REQUIRE(pad.lengths[1] == 4);
  const std::vector<index_t> bad = {7};
  REQUIRE_THROWS_WITH(d.subset(bad), Catch::Contains("index 7 out of range"));
}

TEST_CASE("DataLoader: seeded shuffling covers every series once per epoch and is reproducible", "[loader]") {
  const Dataset d = toy_dataset(37, 3);
  LoaderOptions o;
  o.batch_size = 8;
  o.drop_last = false;
  DataLoader a(d, o, CounterRng(5, 11)), b(d, o, CounterRng(5, 11)), c(d, o, CounterRng(6, 11));
  REQUIRE(a.num_batches() == 5);
  const auto p0 = a.epoch_plan(0);
  std::vector<index_t> all;
  for (std::size_t i = 0; i < p0.size(); ++i) {
    REQUIRE(index_t(p0[i].size()) == (i + 1 < p0.size() ? 8 : 5));
    all.insert(all.end(), p0[i].begin(), p0[i].end());
  }
  std::vector<index_t> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  std::vector<index_t> iota(37);
  std::iota(iota.begin(), iota.end(), index_t(0));
  REQUIRE(sorted == iota);
  REQUIRE(all != iota);  // shuffled
  REQUIRE(b.epoch_plan(0) == p0);
  REQUIRE(a.epoch_plan(3) == b.epoch_plan(3));
  REQUIRE(a.epoch_plan(1) != p0);
  REQUIRE(c.epoch_plan(0) != p0);
  // batches carry the gathered series
  const Batch bt = a.batch(2, 1);
  const auto plan2 = a.epoch_plan(2);
  for (index_t i = 0; i < bt.size(); ++i) {
    const index_t src = plan2[1][std::size_t(i)];
    REQUIRE(bt.indices[std::size_t(i)] == src);
    REQUIRE(bt.labels[std::size_t(i)] == src % 3);
    REQUIRE(bt.x(i, 0, 3) == float(src * 1000 + 3));
  }
  // no shuffling: sequential order
  o.shuffle = false;
  DataLoader seq(d, o, CounterRng(1));
  REQUIRE(seq.epoch_plan(4)[0] == std::vector<index_t>{0, 1, 2, 3, 4, 5, 6, 7});
}

TEST_CASE("DataLoader: drop_last applies only when N >= 2B; the batch size is clamped to N", "[loader]") {
  LoaderOptions o;
  o.batch_size = 16;
  o.drop_last = true;
  DataLoader small(toy_dataset(20, 2), o, CounterRng(0));  // 20 < 32: keep the partial batch
  REQUIRE_FALSE(small.drops_last());
  REQUIRE(small.num_batches() == 2);
  REQUIRE(small.epoch_plan(0)[1].size() == 4);
  DataLoader big(toy_dataset(40, 2), o, CounterRng(0));  // 40 >= 32: drop it
  REQUIRE(big.drops_last());
  REQUIRE(big.num_batches() == 2);
  DataLoader exact(toy_dataset(32, 2), o, CounterRng(0));
  REQUIRE(exact.drops_last());
  REQUIRE(exact.num_batches() == 2);
  o.batch_size = 64;
  DataLoader tiny(toy_dataset(10, 2), o, CounterRng(0));
  REQUIRE(tiny.batch_size() == 10);
  REQUIRE(tiny.num_batches() == 1);
  REQUIRE(tiny.epoch(0)[0].size() == 10);
  o.batch_size = 0;
  REQUIRE_THROWS_WITH(DataLoader(toy_dataset(4, 2), o, CounterRng(0)), Catch::Contains("batch size must be >= 1"));
}

TEST_CASE("m-per-class sampler: B/m distinct classes with m series each, balanced over epochs", "[loader][mcl]") {
  Dataset d = toy_dataset(60, 5);
  // make class 4 tiny (2 series) to exercise the reshuffle-on-exhaustion path
  for (index_t i = 0; i < 60; ++i)
    if (d.labels[std::size_t(i)] == 4 && i >= 10) d.labels[std::size_t(i)] = 3;
  LoaderOptions o;
  o.batch_size = 6;
  o.m_per_class = 2;
  DataLoader l(d, o, CounterRng(9));
  REQUIRE(l.num_batches() == 10);
  std::map<index_t, int> seen;
  for (index_t e = 0; e < 20; ++e)
    for (const auto& b : l.epoch_plan(e)) {
      REQUIRE(b.size() == 6);
      std::map<index_t, int> per_class;
      for (index_t i : b) {
        ++per_class[d.labels[std::size_t(i)]];
        ++seen[i];
      }
      REQUIRE(per_class.size() == 3);
      for (const auto& [c, n] : per_class) REQUIRE(n == 2);
    }
  REQUIRE(seen.size() == 60);  // every series is drawn at some point
  REQUIRE(l.epoch_plan(7) == DataLoader(d, o, CounterRng(9)).epoch_plan(7));
  o.batch_size = 7;
  REQUIRE_THROWS_WITH(DataLoader(d, o, CounterRng(0)), Catch::Contains("multiple of m"));
  o.batch_size = 12;
  REQUIRE_THROWS_WITH(DataLoader(d, o, CounterRng(0)), Catch::Contains("needs 6 classes per batch") &&
                                                          Catch::Contains("has 5"));
}

// ------------------------------------------------------------------------------------------------------------
// Augmentations
// ------------------------------------------------------------------------------------------------------------

namespace {
/// x(b, c, t) = b * b_step + c * 1000 + t (exact in float for the sizes used here).
Tensor<float, 3, Cpu> ramp(index_t B, index_t C, index_t L, index_t b_step = 10000) {
  Tensor<float, 3, Cpu> x({B, C, L});
  for (index_t b = 0; b < B; ++b)
    for (index_t c = 0; c < C; ++c)
      for (index_t t = 0; t < L; ++t) x(b, c, t) = float(b * b_step + c * 1000 + t);
  return x;
}
bool same(const Tensor<float, 3, Cpu>& a, const Tensor<float, 3, Cpu>& b) {
  return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin());
}
}  // namespace

TEST_CASE("jitter adds N(0, sigma^2) noise; reproducible for a seed", "[augment]") {
  const auto x = ramp(64, 2, 200, 0);
  CounterRng r1(3), r2(3), r3(4);
  const auto y = jitter(x, 0.03, r1);
  REQUIRE(same(y, jitter(x, 0.03, r2)));
  REQUIRE_FALSE(same(y, jitter(x, 0.03, r3)));
  double s = 0, ss = 0;
  const index_t n = x.numel();
  for (index_t i = 0; i < n; ++i) {
    const double d = double(y[i]) - double(x[i]);
    s += d;
    ss += d * d;
  }
  const double mean = s / double(n), sd = std::sqrt(ss / double(n) - mean * mean);
  REQUIRE(std::fabs(mean) < 4 * 0.03 / std::sqrt(double(n)) + 1e-5);
  REQUIRE(sd == Approx(0.03).epsilon(0.1));
  // next call on the same generator gives new noise
  REQUIRE_FALSE(same(jitter(x, 0.03, r1), y));
}

TEST_CASE("scale multiplies each (series, channel) by one factor ~ N(mean, sigma^2)", "[augment]") {
  Tensor<float, 3, Cpu> x = Tensor<float, 3, Cpu>::full({400, 3, 10}, 2.0f);
  for (index_t t = 0; t < 10; ++t) x(0, 0, t) = float(t + 1);
  CounterRng rng(1);
  const auto y = scale(x, 1.0, 0.1, rng);
  std::vector<double> f;
  for (index_t b = 0; b < 400; ++b)
    for (index_t c = 0; c < 3; ++c) {
      const double fb = y(b, c, 0) / x(b, c, 0);
      for (index_t t = 1; t < 10; ++t) REQUIRE(y(b, c, t) / x(b, c, t) == Approx(fb).epsilon(1e-6));
      f.push_back(fb);
    }
  const double m = std::accumulate(f.begin(), f.end(), 0.0) / double(f.size());
  double v = 0;
  for (double a : f) v += (a - m) * (a - m);
  const double sd = std::sqrt(v / double(f.size() - 1));
  REQUIRE(m == Approx(1.0).margin(0.02));
  REQUIRE(sd == Approx(0.1).epsilon(0.1));
  CounterRng r2(1);
  const auto z = scale(x, 2.0, 1.1, r2);  // TS-TCC weak view
  double m2 = 0;
  for (index_t b = 0; b < 400; ++b) m2 += z(b, 1, 0) / 2.0;
  REQUIRE(m2 / 400 == Approx(2.0).margin(0.2));
}

TEST_CASE("permute_segments reorders at most max_segments contiguous segments of each series", "[augment]") {
  const index_t B = 300, C = 2, L = 50;
  const auto x = ramp(B, C, L);
  CounterRng rng(8);
  const auto y = permute_segments(x, 5, rng);
  std::map<int, int> seg_hist;
  for (index_t b = 0; b < B; ++b) {
    // same multiset of values, same permutation on every channel
    std::vector<float> a(&x(b, 0, 0), &x(b, 0, 0) + L), p(&y(b, 0, 0), &y(b, 0, 0) + L);
    std::sort(p.begin(), p.end());
    REQUIRE(a == p);
    int segments = 1;
    for (index_t t = 1; t < L; ++t) {
      if (y(b, 0, t) != y(b, 0, t - 1) + 1) ++segments;
      REQUIRE(y(b, 1, t) - y(b, 1, t - 1) == y(b, 0, t) - y(b, 0, t - 1));
    }
    REQUIRE(segments <= 5);
    ++seg_hist[segments];
  }
  // k uniform in 1..5: permutations with 4-5 visible segments are common, identity is rarer than 1/5 + shuffles
  REQUIRE(seg_hist[1] > 0);
  REQUIRE(seg_hist[4] + seg_hist[5] > 60);
  REQUIRE_FALSE(same(x, y));
  CounterRng r2(8);
  REQUIRE(same(y, permute_segments(x, 5, r2)));
}

TEST_CASE("crop_resize takes a window of ratio*L and resamples it linearly to L", "[augment]") {
  const index_t L = 101;
  const auto x = ramp(50, 2, L, 0);
  CounterRng rng(2);
  const auto y = crop_resize(x, 0.9, rng);
  const index_t w = 91;
  std::set<float> starts;
  for (index_t b = 0; b < 50; ++b) {
    const double base = 0;
    const double start = y(b, 0, 0) - base;
    starts.insert(float(start));
    REQUIRE(start >= 0);
    REQUIRE(start <= double(L - w));
    REQUIRE(y(b, 0, L - 1) - base == Approx(start + double(w - 1)).margin(1e-3));
    for (index_t t = 0; t < L; ++t) {  // linear: slope (w-1)/(L-1); channel 1 shifted by 1000
      REQUIRE(y(b, 0, t) - base == Approx(start + double(t) * double(w - 1) / double(L - 1)).margin(1e-3));
      REQUIRE(y(b, 1, t) - y(b, 0, t) == Approx(1000.0).margin(1e-3));
    }
  }
  REQUIRE(starts.size() > 5);
  CounterRng r2(2);
  REQUIRE(same(crop_resize(x, 1.0, r2), x));  // ratio 1: identity
  REQUIRE_THROWS_WITH(crop_resize(x, 0.0, r2), Catch::Contains("ratio must be in (0, 1]"));
}

TEST_CASE("time_mask zeroes a fraction of the steps, on every channel", "[augment]") {
  const auto x = Tensor<float, 3, Cpu>::full({100, 2, 80}, 1.0f);
  CounterRng rng(4);
  const auto y = time_mask(x, 0.25, rng);
  index_t masked = 0;
  for (index_t b = 0; b < 100; ++b)
    for (index_t t = 0; t < 80; ++t) {
      REQUIRE(y(b, 0, t) == y(b, 1, t));
      masked += y(b, 0, t) == 0.0f;
    }
  REQUIRE(double(masked) / 8000.0 == Approx(0.25).margin(0.02));
  const auto z = time_mask(x, 0.25, rng, {}, true);
  for (index_t b = 0; b < 100; ++b) {
    index_t first = -1, last = -1, count = 0;
    for (index_t t = 0; t < 80; ++t)
      if (z(b, 0, t) == 0.0f) {
        if (first < 0) first = t;
        last = t;
        ++count;
      }
    REQUIRE(count == 20);
    REQUIRE(last - first + 1 == 20);  // one contiguous span
  }
}

TEST_CASE("augmentations respect true lengths: padding stays zero", "[augment]") {
  Tensor<float, 3, Cpu> x = Tensor<float, 3, Cpu>::zeros({4, 1, 30});
  const std::vector<index_t> len = {30, 10, 1, 2};
  for (index_t b = 0; b < 4; ++b)
    for (index_t t = 0; t < len[std::size_t(b)]; ++t) x(b, 0, t) = float(t + 1);
  AugmentConfig a;
  a.crop_ratio = 0.8;
  a.max_segments = 4;
  a.scale_sigma = 0.2;
  a.jitter_sigma = 0.05;
  a.mask_ratio = 0.1;
  CounterRng rng(12);
  const auto y = augment(x, a, rng, len);
  for (index_t b = 0; b < 4; ++b)
    for (index_t t = len[std::size_t(b)]; t < 30; ++t) REQUIRE(y(b, 0, t) == 0.0f);
  REQUIRE_THROWS_WITH(augment(x, a, rng, std::vector<index_t>{1, 2}), Catch::Contains("2 lengths for a batch"));
}

TEST_CASE("two-view batches: independent views of the same series, reproducible for a seed", "[augment]") {
  const auto s = load_ucr("GunPoint");
  LoaderOptions o;
  o.batch_size = 16;
  DataLoader loader(s.train, o, CounterRng(0, 1));
  const Batch b = loader.batch(0, 0);
  CounterRng r1(77), r2(77);
  const auto v = make_two_views(b, AugmentConfig::dcrls_view1(), AugmentConfig::dcrls_view2(), r1);
  const auto w = make_two_views(b, AugmentConfig::dcrls_view1(), AugmentConfig::dcrls_view2(), r2);
  REQUIRE(same(v.view1, w.view1));
  REQUIRE(same(v.view2, w.view2));
  REQUIRE(v.labels == b.labels);
  REQUIRE(v.indices == b.indices);
  REQUIRE(v.view1.shape() == b.x.shape());
  REQUIRE_FALSE(same(v.view1, b.x));
  REQUIRE_FALSE(same(v.view2, b.x));
  // view 1 (jitter + scaling) stays close to a scaled copy of the input; the same pipeline on both views
  // still gives different views (independent draws).
  double corr_num = 0, n1 = 0, n2 = 0;
  for (index_t t = 0; t < b.x.extent(2); ++t) {
    corr_num += double(v.view1(0, 0, t)) * b.x(0, 0, t);
    n1 += double(v.view1(0, 0, t)) * v.view1(0, 0, t);
    n2 += double(b.x(0, 0, t)) * b.x(0, 0, t);
  }
  REQUIRE(corr_num / std::sqrt(n1 * n2) > 0.99);
  CounterRng r3(5);
  const auto u = make_two_views(b, AugmentConfig::dcrls_view1(), AugmentConfig::dcrls_view1(), r3);
  REQUIRE_FALSE(same(u.view1, u.view2));
  // presets follow docs/dcrls.md, "Augmentations"
  REQUIRE(AugmentConfig::dcrls_view1().jitter_sigma == 0.03);
  REQUIRE(AugmentConfig::dcrls_view1().scale_sigma == 0.1);
  REQUIRE(AugmentConfig::dcrls_view2().max_segments == 5);
  REQUIRE(AugmentConfig::tstcc_strong().max_segments == 7);
  REQUIRE(AugmentConfig::tstcc_weak().scale_mean == 2.0);
}
