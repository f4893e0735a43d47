// distill/io/embedding_svg.hpp -- a picture of what an encoder learned: embeddings projected on their first two
// principal components, one dot per series, coloured by class, as a standalone SVG file.
//
// snippet: fragment; given: Tensor<float, 2> test_z; std::vector<index_t> test_y;
//   io::write_embedding_svg("out/embedding.svg", test_z, test_y, {.title = "GunPoint test embeddings"});
//
// pca_2d centres the rows, forms the covariance in double and finds its two leading eigenvectors by power iteration
// with deflation (deterministic start, sign fixed so that the largest component of each axis is positive). The
// axis labels give the share of the variance each component explains.
#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <string>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/tensor.hpp"
#include "distill/io/svg.hpp"

namespace distill::io {

struct Projection2D {
  std::vector<double> x, y;     // coordinates of each row on PC1 and PC2
  double explained[2] = {0, 0};  // fraction of the total variance along PC1 and PC2
};

/// The rows of z [N, D] projected on their first two principal components (D = 1: PC2 is 0).
inline Projection2D pca_2d(const Tensor<float, 2, Cpu>& z) {
  const index_t n = z.extent(0), d = z.extent(1);
  DISTILL_CHECK(n >= 1 && d >= 1, "pca_2d: embeddings of shape ", to_string(z.shape()), " are empty");
  const auto N = static_cast<std::size_t>(n), Dd = static_cast<std::size_t>(d);
  std::vector<double> mean(Dd, 0.0), c(Dd * Dd, 0.0), xc(N * Dd);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) mean[j] += double(z(i, j)) / double(n);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < d; ++j) xc[i * Dd + j] = double(z(i, j)) - mean[j];
  for (index_t i = 0; i < n; ++i) {
    const double* r = xc.data() + i * Dd;
    for (std::size_t a = 0; a < Dd; ++a) {
      if (r[a] == 0) continue;
      for (std::size_t b = a; b < Dd; ++b) c[a * Dd + b] += r[a] * r[b];
    }
  }
  double trace = 0;
  for (std::size_t a = 0; a < Dd; ++a) {
    for (std::size_t b = 0; b < a; ++b) c[a * Dd + b] = c[b * Dd + a];
    trace += c[a * Dd + a];
  }
  Projection2D p;
  p.x.assign(N, 0.0);
  p.y.assign(N, 0.0);
  std::vector<std::vector<double>> axes;
  // Deflation: v minus its parts along the components already found, scaled to unit length; returns the norm before.
  auto orthonormalise = [&](std::vector<double>& v) {
    for (const auto& u : axes) {
      double dot = 0;
      for (std::size_t a = 0; a < Dd; ++a) dot += v[a] * u[a];
      for (std::size_t a = 0; a < Dd; ++a) v[a] -= dot * u[a];
    }
    double nv = 0;
    for (double e : v) nv += e * e;
    nv = std::sqrt(nv);
    if (nv > 0)
      for (double& e : v) e /= nv;
    return nv;
  };
  for (int comp = 0; comp < std::min<int>(2, int(d)); ++comp) {
    std::vector<double> v(Dd), w(Dd);
    for (std::size_t a = 0; a < Dd; ++a) v[a] = 1.0 + 0.01 * double(a % 7) + (a % 2 ? 0.1 : -0.1);
    double lambda = 0;
    for (int it = 0; it < 1000; ++it) {
      if (orthonormalise(v) == 0) break;
      for (std::size_t a = 0; a < Dd; ++a) {
        double s = 0;
        for (std::size_t b = 0; b < Dd; ++b) s += c[a * Dd + b] * v[b];
        w[a] = s;
      }
      double next = 0;
      for (std::size_t a = 0; a < Dd; ++a) next += w[a] * v[a];
      const bool done = it > 0 && std::fabs(next - lambda) <= 1e-12 * std::max(1.0, std::fabs(next));
      lambda = next;
      v.swap(w);
      if (done) break;
    }
    orthonormalise(v);
    std::size_t big = 0;
    for (std::size_t a = 1; a < Dd; ++a)
      if (std::fabs(v[a]) > std::fabs(v[big])) big = a;
    if (v[big] < 0)
      for (double& e : v) e = -e;
    p.explained[comp] = trace > 0 ? std::max(0.0, lambda) / trace : 0.0;
    auto& out = comp == 0 ? p.x : p.y;
    for (std::size_t i = 0; i < N; ++i) {
      double s = 0;
      for (std::size_t a = 0; a < Dd; ++a) s += xc[i * Dd + a] * v[a];
      out[i] = s;
    }
    axes.push_back(std::move(v));
  }
  return p;
}

struct EmbeddingSvgOptions {
  std::string title = "test embeddings (first two principal components)";
  int width = 560;
  int height = 520;
};

/// The scatter plot of pca_2d(z), one colour per label (labels in [0, #classes)).
inline std::string embedding_svg(const Tensor<float, 2, Cpu>& z, std::span<const index_t> labels,
                                 const EmbeddingSvgOptions& o = {}) {
  using detail::esc;
  using detail::num;
  DISTILL_CHECK(index_t(labels.size()) == z.extent(0), "embedding_svg: ", labels.size(),
                " labels for embeddings of shape ", to_string(z.shape()));
  DISTILL_CHECK(o.width >= 200 && o.height >= 150, "embedding_svg: the plot must be at least 200x150, got ", o.width,
                "x", o.height);
  const Projection2D p = pca_2d(z);
  index_t classes = 0;
  for (index_t c : labels) {
    DISTILL_CHECK(c >= 0, "embedding_svg: negative label ", c);
    classes = std::max(classes, c + 1);
  }
  auto range = [](const std::vector<double>& v) {
    double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
    if (!(hi > lo)) lo -= 1, hi += 1;
    const double pad = 0.05 * (hi - lo);
    return std::pair<double, double>{lo - pad, hi + pad};
  };
  const auto [x0, x1] = range(p.x);
  const auto [y0, y1] = range(p.y);
  const detail::Frame f{70, o.width - 20.0 - (classes > 0 ? 70.0 : 0.0), 40, o.height - 50.0, x0, x1, y0, y1};
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  std::string s = detail::header(o.width, o.height, o.title, 14, (f.L + f.R) / 2);
  detail::axes(s, f, o.height, "PC1 (" + num("%.1f", 100 * p.explained[0]) + "% of variance)",
                   "PC2 (" + num("%.1f", 100 * p.explained[1]) + "% of variance)", "#eeeeee", true,
                   [](double t) { return num("%g", t); });
  const double R = f.R, T = f.T;
  auto px = [&](double x) { return f.px(x); };
  auto py = [&](double y) { return f.py(y); };
  for (std::size_t i = 0; i < labels.size(); ++i)
    s += "<circle cx=\"" + num("%.2f", px(p.x[i])) + "\" cy=\"" + num("%.2f", py(p.y[i])) + "\" r=\"3\" fill=\"" +
         colors[labels[i] % 10] + "\" fill-opacity=\"0.7\"/>\n";
  for (index_t c = 0; c < classes; ++c) {
    const double ly = T + 10 + 16.0 * double(c);
    s += "<circle cx=\"" + num("%.2f", R + 16) + "\" cy=\"" + num("%.2f", ly) + "\" r=\"4\" fill=\"" + colors[c % 10] +
         "\"/>\n";
    s += "<text x=\"" + num("%.2f", R + 26) + "\" y=\"" + num("%.2f", ly) + "\" dominant-baseline=\"middle\">class " +
         std::to_string(c) + "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

inline void write_embedding_svg(const std::string& path, const Tensor<float, 2, Cpu>& z,
                                std::span<const index_t> labels, const EmbeddingSvgOptions& o = {}) {
  detail::write_file(path, embedding_svg(z, labels, o), "write_embedding_svg");
}

}  // namespace distill::io
