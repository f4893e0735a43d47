// Evaluation suite: metrics, k-NN and k-means against scikit-learn golden values, the linear probe against a
// plain-loop reference, .npy / CSV / JSON / SVG / progress outputs, and the UCR-directory-to-metrics path.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <sstream>
#include <string>
#include <vector>

#include "distill/data/ucr.hpp"
#include "distill/eval/evaluate.hpp"
#include "distill/eval/kmeans.hpp"
#include "distill/eval/knn.hpp"
#include "distill/eval/linear_probe.hpp"
#include "distill/eval/metrics.hpp"
#include "distill/io/embedding_svg.hpp"
#include "distill/io/npy.hpp"
#include "distill/io/progress.hpp"
#include "distill/io/report.hpp"
#include "distill/io/svg.hpp"
#include "distill/nn/batchnorm.hpp"
#include "distill/nn/layers.hpp"
#include "distill/nn/sequential.hpp"
#include "support/golden.hpp"

using namespace distill;
using namespace distill::eval;

namespace {

const testing::Golden& golden() {
  static const testing::Golden g(testing::golden_path("metrics.txt"));
  return g;
}
std::vector<index_t> ints(const std::string& name) {
  const auto t = golden().get<double, 1>(name);
  std::vector<index_t> v;
  for (index_t i = 0; i < t.numel(); ++i) v.push_back(static_cast<index_t>(std::llround(t[i])));
  return v;
}
Tensor<float, 2, Cpu> floats2(const std::string& name) { return golden().get<float, 2>(name); }

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("distill_test_eval_" + tag + "_" + std::to_string(::getpid()) + "_" +
            std::to_string(reinterpret_cast<std::uintptr_t>(this)));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

// ------------------------------------------------------------------------------------------------------------
// Metrics
// ------------------------------------------------------------------------------------------------------------

TEST_CASE("NMI, Rand Index, ARI and accuracy match scikit-learn", "[metrics][golden]") {
  const int n = static_cast<int>(golden().scalar("num_cases"));
  REQUIRE(n == 9);
  for (int i = 0; i < n; ++i) {
    const std::string c = "case" + std::to_string(i) + "_";
    INFO(c);
    const auto t = ints(c + "true"), p = ints(c + "pred");
    CHECK(nmi(t, p) == Approx(golden().scalar(c + "nmi")).margin(1e-12));
    CHECK(rand_index(t, p) == Approx(golden().scalar(c + "ri")).margin(1e-12));
    CHECK(adjusted_rand_index(t, p) == Approx(golden().scalar(c + "ari")).margin(1e-12));
    CHECK(accuracy(p, t) == Approx(golden().scalar(c + "acc")).margin(1e-12));
    // symmetric scores
    CHECK(nmi(p, t) == Approx(nmi(t, p)).margin(1e-12));
    CHECK(adjusted_rand_index(p, t) == Approx(adjusted_rand_index(t, p)).margin(1e-12));
  }
}

TEST_CASE("metrics: hand-computed pair counts and input errors", "[metrics]") {
  // truth {0,0,1,1}, pred {0,0,0,1}: pairs same in both: (0,1); truth only: (2,3); pred only: (0,2),(1,2).
  const std::vector<index_t> t = {0, 0, 1, 1}, p = {0, 0, 0, 1};
  const PairCounts pc = pair_counts(t, p);
  REQUIRE(pc.both == 1);
  REQUIRE(pc.truth_only == 1);
  REQUIRE(pc.pred_only == 2);
  REQUIRE(pc.neither == 2);
  REQUIRE(rand_index(t, p) == Approx(3.0 / 6.0));
  const std::vector<index_t> shorter = {0, 1};
  REQUIRE_THROWS_WITH(nmi(t, shorter), Catch::Contains("different lengths (4 and 2)"));
  REQUIRE_THROWS_WITH(accuracy(shorter, t), Catch::Contains("2 predictions for 4 labels"));
}

// ------------------------------------------------------------------------------------------------------------
// k-NN and k-means
// ------------------------------------------------------------------------------------------------------------

TEST_CASE("k-NN predictions match scikit-learn (brute force, Euclidean and cosine)", "[knn][golden]") {
  const auto xtr = floats2("knn_xtr"), xte = floats2("knn_xte");
  const auto ytr = ints("knn_ytr"), yte = ints("knn_yte");
  for (const auto& [name, metric] : {std::pair{"euclidean", Distance::Euclidean}, std::pair{"cosine", Distance::Cosine}})
    for (int k : {1, 3, 4, 7}) {
      const std::string key = std::string("knn_") + name + "_k" + std::to_string(k);
      INFO(key);
      const auto pred = knn_predict(xtr, ytr, xte, k, metric, 1);
      REQUIRE(pred == ints(key + "_pred"));
      REQUIRE(knn_predict(xtr, ytr, xte, k, metric, 2) == pred);  // thread count does not matter
      REQUIRE(knn_accuracy(xtr, ytr, xte, yte, k, metric) == Approx(golden().scalar(key + "_acc")));
    }
  REQUIRE_THROWS_WITH(knn_predict(xtr, ytr, xte, 41), Catch::Contains("k = 41 must be in [1, 40]"));
  // vote ties go to the smallest class id: two neighbours at distance 1 and 2 of classes 1 and 0
  Tensor<float, 2, Cpu> a({2, 1}), q({1, 1});
  a[0] = 1, a[1] = 2, q[0] = 0;
  const std::vector<index_t> ya = {1, 0};
  REQUIRE(knn_predict(a, ya, q, 2) == std::vector<index_t>{0});
  REQUIRE(knn_predict(a, ya, q, 1) == std::vector<index_t>{1});
}

TEST_CASE("k-means reaches scikit-learn's inertia and partition on Gaussian mixtures", "[kmeans][golden]") {
  for (const std::string name : {"blobs", "overlap"}) {
    INFO(name);
    const auto x = floats2("kmeans_" + name + "_x");
    KMeansOptions o;
    o.k = static_cast<index_t>(golden().scalar("kmeans_" + name + "_k"));
    o.n_init = 10;
    o.seed = 1;
    o.tol = 1e-8;
    o.max_iter = 1000;
    const auto r = kmeans(x, o);
    REQUIRE(r.inertia == Approx(golden().scalar("kmeans_" + name + "_inertia")).epsilon(1e-6));
    REQUIRE(adjusted_rand_index(r.labels, ints("kmeans_" + name + "_labels")) == Approx(1.0));
  }
}

TEST_CASE("k-means invariants: nearest-centre labels, mean centres, inertia, seeds and threads", "[kmeans]") {
  CounterRng rng(5);
  const index_t n = 97, d = 3;
  Tensor<float, 2, Cpu> x({n, d});
  for (auto& v : x) v = static_cast<float>(rng.normal());
  KMeansOptions o;
  o.k = 4;
  o.seed = 3;
  const auto r = kmeans(x, o);
  // labels are the nearest centres; centres are the means of their points; inertia is the sum of distances
  double inertia = 0;
  std::vector<double> sums(static_cast<std::size_t>(o.k * d), 0.0);
  std::vector<int> counts(static_cast<std::size_t>(o.k), 0);
  for (index_t i = 0; i < n; ++i) {
    double best = 1e300;
    index_t arg = -1;
    for (index_t c = 0; c < o.k; ++c) {
      double s = 0;
      for (index_t j = 0; j < d; ++j) s += std::pow(double(x(i, j)) - r.centers[std::size_t(c * d + j)], 2);
      if (s < best) best = s, arg = c;
    }
    REQUIRE(r.labels[std::size_t(i)] == arg);
    inertia += best;
    ++counts[std::size_t(arg)];
    for (index_t j = 0; j < d; ++j) sums[std::size_t(arg * d + j)] += x(i, j);
  }
  REQUIRE(r.inertia == Approx(inertia).epsilon(1e-12));
  for (index_t c = 0; c < o.k; ++c) {
    REQUIRE(counts[std::size_t(c)] > 0);
    for (index_t j = 0; j < d; ++j)
      REQUIRE(r.centers[std::size_t(c * d + j)] == Approx(sums[std::size_t(c * d + j)] / counts[std::size_t(c)]).margin(1e-6));
  }
  // reproducible; thread count does not matter; more restarts never worsen the result
  REQUIRE(kmeans(x, o).labels == r.labels);
  o.threads = 2;
  REQUIRE(kmeans(x, o).labels == r.labels);
  o.n_init = 1;
  REQUIRE(kmeans(x, o).inertia >= r.inertia - 1e-9);
  // k = N: every point its own cluster
  o.k = n;
  o.n_init = 1;
  REQUIRE(kmeans(x, o).inertia == Approx(0.0).margin(1e-12));
  o.k = n + 1;
  REQUIRE_THROWS_WITH(kmeans(x, o), Catch::Contains("k = 98 must be in [1, N] for 97 points"));
}

// ------------------------------------------------------------------------------------------------------------
// Linear probe
// ------------------------------------------------------------------------------------------------------------

namespace {
/// Plain-loop softmax regression with torch.optim.Adam's update, in double (the reference).
std::vector<double> reference_probe_losses(const Tensor<float, 2, Cpu>& x_raw, const std::vector<index_t>& y,
                                           index_t k, int steps, double lr) {
  const index_t n = x_raw.extent(0), d = x_raw.extent(1);
  std::vector<double> x(static_cast<std::size_t>(n * d));
  for (index_t j = 0; j < d; ++j) {
    double m = 0, v = 0;
    for (index_t i = 0; i < n; ++i) m += x_raw(i, j);
    m /= double(n);
    for (index_t i = 0; i < n; ++i) v += (x_raw(i, j) - m) * (x_raw(i, j) - m);
    const double sd = std::sqrt(v / double(n));
    for (index_t i = 0; i < n; ++i) x[std::size_t(i * d + j)] = (x_raw(i, j) - m) / (sd > 1e-12 ? sd : 1.0);
  }
  const std::size_t np = static_cast<std::size_t>(k * d + k);  // W then b
  std::vector<double> p(np, 0.0), m(np, 0.0), v(np, 0.0), g(np);
  std::vector<double> losses;
  for (int t = 1; t <= steps; ++t) {
    std::fill(g.begin(), g.end(), 0.0);
    double loss = 0;
    for (index_t i = 0; i < n; ++i) {
      std::vector<double> z(static_cast<std::size_t>(k));
      double mx = -1e300;
      for (index_t c = 0; c < k; ++c) {
        double s = p[std::size_t(k * d + c)];
        for (index_t j = 0; j < d; ++j) s += p[std::size_t(c * d + j)] * x[std::size_t(i * d + j)];
        z[std::size_t(c)] = s;
        mx = std::max(mx, s);
      }
      double se = 0;
      for (double s : z) se += std::exp(s - mx);
      const double lse = mx + std::log(se);
      loss += lse - z[std::size_t(y[std::size_t(i)])];
      for (index_t c = 0; c < k; ++c) {
        const double dz = (std::exp(z[std::size_t(c)] - lse) - (c == y[std::size_t(i)] ? 1.0 : 0.0)) / double(n);
        g[std::size_t(k * d + c)] += dz;
        for (index_t j = 0; j < d; ++j) g[std::size_t(c * d + j)] += dz * x[std::size_t(i * d + j)];
      }
    }
    losses.push_back(loss / double(n));
    for (std::size_t q = 0; q < np; ++q) {
      m[q] = 0.9 * m[q] + 0.1 * g[q];
      v[q] = 0.999 * v[q] + 0.001 * g[q] * g[q];
      const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
      p[q] -= lr / bc1 * m[q] / (std::sqrt(v[q]) / std::sqrt(bc2) + 1e-8);
    }
  }
  return losses;
}
}  // namespace

TEST_CASE("linear probe: losses follow a plain-loop softmax regression with Adam", "[probe]") {
  CounterRng rng(21);
  const index_t n = 33, d = 7, k = 3;
  Tensor<float, 2, Cpu> x({n, d});
  std::vector<index_t> y;
  for (index_t i = 0; i < n; ++i) {
    y.push_back(i % k);
    for (index_t j = 0; j < d; ++j) x(i, j) = static_cast<float>(rng.normal() * (j + 1) + (j == y.back() ? 2.0 : 0.0));
  }
  Context<Cpu> ctx(1, 0);
  ProbeOptions o;
  o.steps = 60;
  o.lr = 0.05;
  const auto r = linear_probe(ctx, x, y, x, y, k, o);
  const auto ref = reference_probe_losses(x, y, k, 60, 0.05);
  REQUIRE(r.losses.size() == ref.size());
  REQUIRE(r.losses[0] == Approx(std::log(3.0)).epsilon(1e-6));
  for (std::size_t i = 0; i < ref.size(); ++i) REQUIRE(r.losses[i] == Approx(ref[i]).epsilon(1e-4));
  REQUIRE(r.losses.back() < 0.6 * r.losses.front());
  REQUIRE(r.train_accuracy == Approx(r.test_accuracy));  // same data on both sides
  // The context's grad mode is restored, the inputs are not modified.
  {
    NoGradGuard ng(ctx);
    const auto r2 = linear_probe(ctx, x, y, x, y, k, o);
    REQUIRE(r2.losses == r.losses);
    REQUIRE_FALSE(ctx.grad_enabled());
  }
  REQUIRE(ctx.grad_enabled());
}

TEST_CASE("linear probe: separable classes reach 100 %, mini-batches work, bad input is rejected", "[probe]") {
  CounterRng rng(2);
  const index_t n = 60, d = 4;
  Tensor<float, 2, Cpu> x({n, d}), xt({20, d});
  std::vector<index_t> y, yt;
  auto fill = [&](Tensor<float, 2, Cpu>& t, std::vector<index_t>& lab) {
    for (index_t i = 0; i < t.extent(0); ++i) {
      lab.push_back(i % 2);
      for (index_t j = 0; j < d; ++j) t(i, j) = static_cast<float>(rng.normal() * 0.3 + (lab.back() ? 3.0 : -3.0) * (j == 0));
    }
  };
  fill(x, y);
  fill(xt, yt);
  Context<Cpu> ctx(2, 0);
  ProbeOptions o;
  o.steps = 200;
  o.batch_size = 16;
  const auto r = linear_probe(ctx, x, y, xt, yt, 2, o);
  REQUIRE(r.train_accuracy == 1.0);
  REQUIRE(r.test_accuracy == 1.0);
  REQUIRE(r.weight.shape() == Shape<2>{2, d});
  const std::vector<index_t> bad(std::size_t(n), 2);
  REQUIRE_THROWS_WITH(linear_probe(ctx, x, bad, xt, yt, 2, o), Catch::Contains("training label 2 outside [0, 2)"));
  Tensor<float, 2, Cpu> wrong({20, d + 1});
  REQUIRE_THROWS_WITH(linear_probe(ctx, x, y, wrong, yt, 2, o), Catch::Contains("differ in dimension"));
}

// ------------------------------------------------------------------------------------------------------------
// Outputs: .npy, CSV/JSON, SVG, progress line
// ------------------------------------------------------------------------------------------------------------

TEST_CASE(".npy files: numpy's header layout, round trip, and read errors", "[io][npy]") {
  TempDir dir("npy");
  Tensor<float, 3, Cpu> t({2, 3, 4});
  for (index_t i = 0; i < t.numel(); ++i) t[i] = 0.5f * float(i) - 3.0f;
  const std::string f = dir.file("x.npy");
  io::write_npy(f, t);
  const std::string bytes = slurp(f);
  // magic, version 1.0, little-endian header length, dict, space padding, newline; data 64-byte aligned
  REQUIRE(bytes.substr(0, 8) == std::string("\x93NUMPY\x01\x00", 8));
  const std::size_t hlen = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
  REQUIRE((10 + hlen) % 64 == 0);
  const std::string dict = bytes.substr(10, hlen);
  REQUIRE(dict.rfind("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 0) == 0);
  REQUIRE(dict.back() == '\n');
  REQUIRE(dict.find_first_not_of(' ', 62) == hlen - 1);
  REQUIRE(bytes.size() == 10 + hlen + 24 * 4);
  const auto info = io::parse_npy_header(bytes);
  REQUIRE(info.descr == "<f4");
  REQUIRE(info.shape == std::vector<index_t>{2, 3, 4});
  const auto back = io::read_npy<float, 3>(f);
  REQUIRE(back.shape() == t.shape());
  REQUIRE(std::equal(back.begin(), back.end(), t.begin()));
  // 1-D int64 labels: the 1-tuple is written "(5,)"
  const std::vector<index_t> labels = {3, 1, 4, 1, 5};
  io::write_npy(dir.file("y.npy"), labels);
  const std::string lb = slurp(dir.file("y.npy"));
  REQUIRE(lb.find("{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }") == 10);
  const auto ly = io::read_npy<std::int64_t, 1>(dir.file("y.npy"));
  REQUIRE(std::vector<index_t>(ly.begin(), ly.end()) == labels);
  // double, rank 2
  Tensor<double, 2, Cpu> e({1, 3});
  e[0] = 1e-300, e[1] = -2.5, e[2] = 7;
  io::write_npy(dir.file("e.npy"), e);
  REQUIRE(io::read_npy<double, 2>(dir.file("e.npy"))[0] == 1e-300);
  // errors
  REQUIRE_THROWS_WITH((io::read_npy<double, 3>(f)), Catch::Contains("holds dtype '<f4', expected '<f8'"));
  REQUIRE_THROWS_WITH((io::read_npy<float, 2>(f)), Catch::Contains("has rank 3, expected 2"));
  std::ofstream(dir.file("trunc.npy"), std::ios::binary) << bytes.substr(0, bytes.size() - 4);
  REQUIRE_THROWS_WITH((io::read_npy<float, 3>(dir.file("trunc.npy"))), Catch::Contains("is truncated"));
  std::ofstream(dir.file("junk.npy"), std::ios::binary) << "not numpy";
  REQUIRE_THROWS_WITH((io::read_npy<float, 3>(dir.file("junk.npy"))), Catch::Contains("bad magic"));
}

TEST_CASE("metric records as JSON and CSV", "[io][report]") {
  io::Record r;
  r.set("dataset", "Gun,Point \"x\"").set("acc", 0.9133333333333333).set("n", 150).set("ok", true).set("ri", std::nan(""));
  REQUIRE(io::to_json(r) ==
          "{\n  \"dataset\": \"Gun,Point \\\"x\\\"\",\n  \"acc\": 0.9133333333333333,\n  \"n\": 150,\n  \"ok\": true,\n"
          "  \"ri\": null\n}");
  io::Record s;
  s.set("n", 3).set("extra", 0.5);
  REQUIRE(io::to_csv({r, s}) ==
          "dataset,acc,n,ok,ri,extra\n\"Gun,Point \"\"x\"\"\",0.9133333333333333,150,true,nan,\n,,3,,,0.5\n");
  REQUIRE(io::to_json(std::vector<io::Record>{s}) == "[\n  {\n    \"n\": 3,\n    \"extra\": 0.5\n  }\n]");
  r.set("acc", 1.0);  // replacing keeps the position
  REQUIRE(r.fields()[1].first == "acc");
  REQUIRE(r.number("acc") == 1.0);
  REQUIRE_THROWS_WITH(r.number("dataset"), Catch::Contains("is a string"));

  TempDir dir("csv");
  const std::string f = dir.file("m.csv");
  io::append_csv(f, s);
  io::Record s2;
  s2.set("n", 4).set("extra", 0.25);
  io::append_csv(f, s2);
  REQUIRE(slurp(f) == "n,extra\n3,0.5\n4,0.25\n");
  REQUIRE_THROWS_WITH(io::append_csv(f, r), Catch::Contains("has the header 'n,extra'"));
  io::write_json(dir.file("m.json"), s);
  REQUIRE(slurp(dir.file("m.json")) == "{\n  \"n\": 3,\n  \"extra\": 0.5\n}\n");
}

TEST_CASE("SVG loss curve: one polyline per series inside the frame, breaks at non-finite values", "[io][svg]") {
  std::vector<double> a, b;
  for (int i = 0; i < 50; ++i) {
    a.push_back(2.0 * std::exp(-0.05 * i));
    b.push_back(i == 20 ? std::nan("") : 1.5 * std::exp(-0.03 * i));
  }
  io::SvgOptions o;
  o.title = "DCRLS <GunPoint> & co";
  const std::string svg = io::loss_curve_svg({{"train", a, {}}, {"view 2", b, {}}}, o);
  REQUIRE(svg.rfind("<?xml", 0) == 0);
  REQUIRE(svg.find("</svg>") != std::string::npos);
  REQUIRE(svg.find("DCRLS &lt;GunPoint&gt; &amp; co") != std::string::npos);
  std::size_t polylines = 0, pos = 0;
  std::vector<std::size_t> points;
  while ((pos = svg.find("points=\"", pos)) != std::string::npos) {
    pos += 8;
    const std::string pts = svg.substr(pos, svg.find('"', pos) - pos);
    std::istringstream ps(pts);
    std::string xy;
    std::size_t np = 0;
    while (ps >> xy) {
      const double px = std::stod(xy.substr(0, xy.find(','))), py = std::stod(xy.substr(xy.find(',') + 1));
      REQUIRE(px >= 70 - 1e-9);
      REQUIRE(px <= o.width - 20 + 1e-9);
      REQUIRE(py >= 40 - 1e-9);
      REQUIRE(py <= o.height - 50 + 1e-9);
      ++np;
    }
    points.push_back(np);
    ++polylines;
  }
  REQUIRE(polylines == 3);  // series 2 is split at the NaN
  REQUIRE(points == std::vector<std::size_t>{50, 20, 29});
  // the log axis drops non-positive values; an empty plot is still a valid frame
  o.log_y = true;
  REQUIRE(io::loss_curve_svg({{"z", {1.0, 0.0, 0.1}, {}}}, o).find("(log scale)") != std::string::npos);
  REQUIRE(io::loss_curve_svg({}, o).find("</svg>") != std::string::npos);
  REQUIRE_THROWS_WITH(io::loss_curve_svg({{"bad", {1.0, 2.0}, {1.0}}}, o), Catch::Contains("1 x values and 2 y values"));
  TempDir dir("svg");
  io::write_loss_svg(dir.file("loss.svg"), a);
  REQUIRE(slurp(dir.file("loss.svg")).find("polyline") != std::string::npos);
}

TEST_CASE("embedding picture: PCA axes against a planted 2-D structure, one dot per series", "[io][svg][pca]") {
  // Rows a * u + b * v + small noise in 6-D with orthonormal u, v: PC1 = +-u (var(a) > var(b)), PC2 = +-v.
  const index_t n = 200, d = 6;
  const double u[d] = {0.6, 0.8, 0, 0, 0, 0}, v[d] = {0, 0, 0, 0.28, 0.96, 0};
  CounterRng rng(5);
  Tensor<float, 2> z({n, d});
  std::vector<double> a(n), b(n);
  std::vector<index_t> y(n);
  for (index_t i = 0; i < n; ++i) {
    a[i] = 3.0 * rng.normal();
    b[i] = 1.0 * rng.normal();
    y[i] = i % 3;
  }
  // Centre both coordinates and make them uncorrelated in the sample, so the sample's axes are exactly u and v.
  double ma = 0, mb = 0, ab = 0, aa = 0;
  for (index_t i = 0; i < n; ++i) ma += a[i] / n, mb += b[i] / n;
  for (index_t i = 0; i < n; ++i) a[i] -= ma, b[i] -= mb, ab += a[i] * b[i], aa += a[i] * a[i];
  for (index_t i = 0; i < n; ++i) b[i] -= ab / aa * a[i];
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) z(i, j) = float(5.0 + a[i] * u[j] + b[i] * v[j] + 0.01 * rng.normal());
  const io::Projection2D p = io::pca_2d(z);
  // The projections are the planted coordinates up to sign and centring: |correlation| ~ 1.
  auto corr = [&](const std::vector<double>& s, const std::vector<double>& t) {
    double ms = 0, mt = 0;
    for (index_t i = 0; i < n; ++i) ms += s[i] / n, mt += t[i] / n;
    double st = 0, ss = 0, tt = 0;
    for (index_t i = 0; i < n; ++i) {
      st += (s[i] - ms) * (t[i] - mt);
      ss += (s[i] - ms) * (s[i] - ms);
      tt += (t[i] - mt) * (t[i] - mt);
    }
    return st / std::sqrt(ss * tt);
  };
  CHECK(std::fabs(corr(p.x, a)) > 0.9999);
  CHECK(std::fabs(corr(p.y, b)) > 0.999);
  double va = 0, vb = 0;
  for (index_t i = 0; i < n; ++i) va += a[i] * a[i], vb += b[i] * b[i];
  CHECK(p.explained[0] == Approx(va / (va + vb)).margin(0.02));
  CHECK(p.explained[0] + p.explained[1] == Approx(1.0).margin(1e-3));
  const std::string svg = io::embedding_svg(z, y, {.title = "planted"});
  CHECK(std::count(svg.begin(), svg.end(), '\n') > n);
  std::size_t dots = 0;
  for (std::size_t pos = svg.find("<circle"); pos != std::string::npos; pos = svg.find("<circle", pos + 1)) ++dots;
  CHECK(dots == std::size_t(n) + 3);  // one per series + the 3 legend entries
  CHECK_THAT(svg, Catch::Contains("PC1 (") && Catch::Contains("class 2") && Catch::Contains("planted"));
  CHECK_THROWS_WITH(io::embedding_svg(z, std::span<const index_t>(y).subspan(1)), Catch::Contains("labels"));
}

TEST_CASE("progress line: epoch, loss, items/s and ETA through fmt", "[io][progress]") {
  REQUIRE(io::format_duration(0) == "0:00");
  REQUIRE(io::format_duration(83.4) == "1:23");
  REQUIRE(io::format_duration(3725) == "1:02:05");
  REQUIRE(io::format_duration(-1) == "--:--");
  io::ProgressMeter m(300, "GunPoint");
  REQUIRE(m.update(1, 1.23456789, 50, 0.5) == "[GunPoint] epoch   1/300  loss 1.23457  100.0 items/s  ETA 2:30");
  // the ETA uses the mean epoch time so far: (0.5 + 1.5) / 2 * 298 = 298 s
  REQUIRE(m.update(2, 0.5, 60, 1.5) == "[GunPoint] epoch   2/300  loss 0.5  40.0 items/s  ETA 4:58");
  REQUIRE(m.elapsed_seconds() == 2.0);
  io::ProgressMeter q(5);
  REQUIRE(q.update(5, 0.1, 10, 0.0) == "epoch 5/5  loss 0.1  0.0 items/s  ETA 0:00");
  REQUIRE_THROWS_WITH(q.update(6, 0.1, 10, 1.0), Catch::Contains("epoch 6 outside [1, 5]"));
  REQUIRE_THAT(q.tick(1, 0.2, 1), Catch::Contains("epoch 1/5  loss 0.2"));
}

// ------------------------------------------------------------------------------------------------------------
// End to end: a UCR directory to a metrics file
// ------------------------------------------------------------------------------------------------------------

TEST_CASE("UCR directory to metrics file: raw-series 1-NN reproduces the archive's Euclidean baseline", "[eval][e2e]") {
  // Test error of 1-NN with Euclidean distance on the raw series, from the UCR archive's DataSummary
  // ("ED (w=0)" column): https://www.cs.ucr.edu/~eamonn/time_series_data_2018/
  const std::vector<std::pair<std::string, double>> published = {
      {"Coffee", 0.0},       {"ECG200", 0.12},     {"ECGFiveDays", 0.2033},           {"GunPoint", 0.0867},
      {"TwoLeadECG", 0.2529}, {"MoteStrain", 0.1214}, {"SonyAIBORobotSurface1", 0.3045}};
  TempDir dir("e2e");
  Context<Cpu> ctx(2, 0);
  EvalOptions o;
  o.probe_options.steps = 200;
  const eval::OutputPaths out{dir.file("json/metrics.json"), dir.file("metrics.csv"), dir.file("emb/gp_"),
                              dir.file("emb/embedding.svg")};
  for (const auto& [name, err] : published) {
    INFO(name);
    const auto r = evaluate_ucr(ctx, name, flatten_series, o, out, io::Record().set("model", "raw"));
    REQUIRE(r.dataset == name);
    REQUIRE(r.knn_accuracy == Approx(1.0 - err).margin(6e-5));
    REQUIRE(r.probe_accuracy > 0.5);
    REQUIRE(r.probe_train_accuracy >= r.probe_accuracy - 0.2);
    REQUIRE(r.kmeans_ri >= 0.0);
    REQUIRE(r.kmeans_ri <= 1.0);
    REQUIRE(r.kmeans_nmi >= 0.0);
    REQUIRE(r.kmeans_nmi <= 1.0);
    REQUIRE(r.dim == r.length);
    const std::string json = slurp(dir.file("json/metrics.json"));
    REQUIRE_THAT(json, Catch::Contains("\"dataset\": \"" + name + "\"") && Catch::Contains("\"knn_acc\": "));
  }
  // one CSV row per dataset under one header
  const std::string csv = slurp(dir.file("metrics.csv"));
  REQUIRE(std::count(csv.begin(), csv.end(), '\n') == 8);
  REQUIRE(csv.rfind("model,dataset,n_train,n_test,length,classes,dim,probe_acc,probe_train_acc,knn_k,knn_acc,kmeans_ri,"
                    "kmeans_nmi,kmeans_ari,eval_seconds\nraw,Coffee,28,28,286,2,286,",
                    0) == 0);
  // the last dataset's embeddings and labels
  const auto z = io::read_npy<float, 2>(dir.file("emb/gp_test_z.npy"));
  const auto y = io::read_npy<std::int64_t, 1>(dir.file("emb/gp_test_y.npy"));
  REQUIRE(z.shape() == Shape<2>{601, 70});
  REQUIRE(y.numel() == 601);
  const auto sony = data::load_ucr("SonyAIBORobotSurface1", data::Split::Test);
  REQUIRE(std::equal(z.begin(), z.end(), sony.x.begin()));
  REQUIRE_THAT(slurp(dir.file("emb/embedding.svg")), Catch::Contains("SonyAIBORobotSurface1 test embeddings"));
}

TEST_CASE("evaluate_embeddings: skipped metrics are left out; embedding in chunks", "[eval]") {
  const auto s = data::load_ucr("Coffee");
  Context<Cpu> ctx(1, 0);
  int calls = 0;
  auto embed = [&](const Tensor<float, 3, Cpu>& x) {
    ++calls;
    REQUIRE_FALSE(ctx.grad_enabled());  // embedding runs under NoGradGuard
    Tensor<float, 2, Cpu> z({x.extent(0), 2});
    for (index_t i = 0; i < x.extent(0); ++i) {
      z(i, 0) = x(i, 0, 100);
      z(i, 1) = x(i, 0, 200);
    }
    return z;
  };
  const auto z = embed_dataset(ctx, s.train, embed, 5);
  REQUIRE(calls == 6);  // 28 series in chunks of 5
  REQUIRE(z(27, 1) == s.train.x(27, 0, 200));
  REQUIRE(ctx.grad_enabled());
  EvalOptions o;
  o.probe = false;
  o.kmeans = false;
  o.knn_k = 3;
  const auto r = evaluate_splits(ctx, s, embed, o);
  const io::Record rec = r.record();
  REQUIRE_FALSE(rec.has("probe_acc"));
  REQUIRE_FALSE(rec.has("kmeans_ri"));
  REQUIRE(rec.number("knn_k") == 3);
  REQUIRE(rec.number("knn_acc") ==
          knn_accuracy(embed_dataset(ctx, s.train, embed), s.train.labels, embed_dataset(ctx, s.test, embed), s.test.labels, 3));
  auto bad = [](const Tensor<float, 3, Cpu>& x) { return Tensor<float, 2, Cpu>({x.extent(0) + 1, 2}); };
  REQUIRE_THROWS_WITH(embed_dataset(ctx, s.train, bad), Catch::Contains("returned [29, 2] for a batch of 28 series"));
}

TEST_CASE("embed_dataset / evaluate_splits run the modules in eval mode and restore their mode", "[eval][mode]") {
  // BatchNorm with distinctive running statistics: in eval mode the embedding of a series is (x - 0.5) / sqrt(4 +
  // eps), whatever else is in the batch; in train mode it would use the batch's statistics (and update the
  // running ones), so the embedding of one series would depend on the others.
  const auto s = data::load_ucr("Coffee");
  Context<Cpu> ctx(1, 0);
  nn::Sequential<nn::BatchNorm1d<1>, nn::Flatten> net{ctx};
  auto& bn = net.get<0>();
  bn.running_mean()[0] = 0.5f;
  bn.running_var()[0] = 4.0f;
  const float inv = 1.0f / std::sqrt(4.0f + 1e-5f);
  auto require_running_eval = [&](const Tensor<float, 2, Cpu>& z, const data::Dataset& ds) {
    REQUIRE(z.shape() == Shape<2>{ds.size(), ds.length()});
    for (index_t i = 0; i < ds.size(); ++i)
      for (index_t l = 0; l < ds.length(); ++l)
        REQUIRE(z(i, l) == Approx((ds.x(i, 0, l) - 0.5f) * inv).margin(1e-5));
  };
  REQUIRE(net.is_training());

  // A module as the embedding: chunks of 5 and the whole split agree exactly (no batch statistics).
  const auto z5 = embed_dataset(ctx, s.train, net, 5);
  const auto z28 = embed_dataset(ctx, s.train, net, 28);
  REQUIRE(std::equal(z5.begin(), z5.end(), z28.begin()));
  require_running_eval(z5, s.train);
  REQUIRE(net.is_training());
  REQUIRE(bn.is_training());
  REQUIRE(bn.running_mean()[0] == 0.5f);  // eval mode leaves the running statistics alone
  REQUIRE(bn.running_var()[0] == 4.0f);

  // A function with the modules it runs.
  int calls = 0;
  auto fn = [&](const Var<float, 3, Cpu>& x) {
    ++calls;
    REQUIRE_FALSE(bn.is_training());
    return net(x);
  };
  EvalOptions o;
  o.probe = false;
  o.kmeans = false;
  o.embed_batch = 7;
  o.knn_k = 1;
  const auto r = evaluate_splits(ctx, s, embedding(fn, net), o);
  REQUIRE(calls == 8);  // 28 train + 28 test series in chunks of 7
  REQUIRE(net.is_training());
  REQUIRE(bn.running_mean()[0] == 0.5f);
  // An affine map of every series keeps the Euclidean neighbours: the raw-series 1-NN accuracy.
  REQUIRE(r.knn_accuracy == evaluate_splits(ctx, s, flatten_series, o).knn_accuracy);
  require_running_eval(embed_dataset(ctx, s.test, embedding(fn, net)), s.test);

  // A module already in eval mode stays there; the mode comes back after an exception too.
  net.eval();
  (void)embed_dataset(ctx, s.train, net);
  REQUIRE_FALSE(net.is_training());
  net.train();
  auto throwing = [&](const Var<float, 3, Cpu>&) -> Var<float, 2, Cpu> {
    REQUIRE_FALSE(bn.is_training());
    throw std::runtime_error("embedding failed");
  };
  REQUIRE_THROWS_WITH(evaluate_splits(ctx, s, embedding(throwing, net), o), Catch::Contains("embedding failed"));
  REQUIRE(net.is_training());
  REQUIRE(bn.is_training());

  // The guard on its own.
  {
    nn::EvalModeGuard guard(net, bn);
    REQUIRE_FALSE(net.is_training());
  }
  REQUIRE(net.is_training());
}
