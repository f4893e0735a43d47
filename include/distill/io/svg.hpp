// distill/io/svg.hpp -- a loss-curve plot as a standalone SVG file (no dependencies).
//
// One polyline per series over a frame with "nice" ticks (steps of 1, 2 or 5 times a power of ten), axis
// labels, a title and a legend. Non-finite values (and non-positive ones on a log axis) break the line.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "distill/core/error.hpp"

namespace distill::io {

struct CurveSeries {
  std::string name;
  std::vector<double> y;
  std::vector<double> x;  // empty: 1, 2, ..., y.size() (epochs)
};

struct SvgOptions {
  std::string title = "training loss";
  std::string xlabel = "epoch";
  std::string ylabel = "loss";
  int width = 720;
  int height = 420;
  bool log_y = false;
};

namespace detail {
inline std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}
inline std::string num(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}
/// Tick positions covering [lo, hi] with a step of 1, 2 or 5 times a power of ten (about `target` ticks).
inline std::vector<double> nice_ticks(double lo, double hi, int target = 5) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

/// The plot area [L, R] x [T, B] in pixels and the data range it shows.
struct Frame {
  double L, R, T, B, x0, x1, y0, y1;
  double px(double x) const { return L + (x - x0) / (x1 - x0) * (R - L); }
  double py(double y) const { return B - (y - y0) / (y1 - y0) * (B - T); }
};

/// The XML header, the <svg> element, a white background and the title centred at title_x.
inline std::string header(int width, int height, const std::string& title, int title_size, double title_x) {
  std::string s;
  s += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
       std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " + std::to_string(height) +
       "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect x=\"0\" y=\"0\" width=\"" + std::to_string(width) + "\" height=\"" + std::to_string(height) +
       "\" fill=\"white\"/>\n";
  s += "<text x=\"" + num("%.1f", title_x) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"" +
       std::to_string(title_size) + "\">" + esc(title) + "</text>\n";
  return s;
}

/// Horizontal grid lines with y tick labels (`ylabel_of(tick)`), x ticks (tick marks, or full grid lines when
/// `x_grid`) with labels, the frame, and the axis labels.
template <class YLabel>
void axes(std::string& s, const Frame& f, int height, const std::string& xlabel, const std::string& ylabel,
          const char* grid, bool x_grid, YLabel&& ylabel_of) {
  for (double t : nice_ticks(f.y0, f.y1)) {
    const std::string y = num("%.2f", f.py(t));
    s += "<line x1=\"" + num("%.2f", f.L) + "\" y1=\"" + y + "\" x2=\"" + num("%.2f", f.R) + "\" y2=\"" + y +
         "\" stroke=\"" + grid + "\"/>\n";
    s += "<text x=\"" + num("%.2f", f.L - 6) + "\" y=\"" + y + "\" text-anchor=\"end\" dominant-baseline=\"middle\">" +
         ylabel_of(t) + "</text>\n";
  }
  for (double t : nice_ticks(f.x0, f.x1)) {
    const std::string x = num("%.2f", f.px(t));
    if (x_grid)
      s += "<line x1=\"" + x + "\" y1=\"" + num("%.2f", f.T) + "\" x2=\"" + x + "\" y2=\"" + num("%.2f", f.B) +
           "\" stroke=\"" + grid + "\"/>\n";
    else
      s += "<line x1=\"" + x + "\" y1=\"" + num("%.2f", f.B) + "\" x2=\"" + x + "\" y2=\"" + num("%.2f", f.B + 5) +
           "\" stroke=\"black\"/>\n";
    s += "<text x=\"" + x + "\" y=\"" + num("%.2f", f.B + 18) + "\" text-anchor=\"middle\">" + num("%g", t) + "</text>\n";
  }
  s += "<rect x=\"" + num("%.2f", f.L) + "\" y=\"" + num("%.2f", f.T) + "\" width=\"" + num("%.2f", f.R - f.L) +
       "\" height=\"" + num("%.2f", f.B - f.T) + "\" fill=\"none\" stroke=\"black\"/>\n";
  s += "<text x=\"" + num("%.1f", (f.L + f.R) / 2) + "\" y=\"" + num("%.1f", height - 12.0) +
       "\" text-anchor=\"middle\">" + esc(xlabel) + "</text>\n";
  s += "<text x=\"16\" y=\"" + num("%.1f", (f.T + f.B) / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 16 " +
       num("%.1f", (f.T + f.B) / 2) + ")\">" + esc(ylabel) + "</text>\n";
}
}  // namespace detail

inline std::string loss_curve_svg(const std::vector<CurveSeries>& series, const SvgOptions& o = {}) {
  using detail::esc;
  using detail::num;
  DISTILL_CHECK(o.width >= 200 && o.height >= 150, "loss_curve_svg: the plot must be at least 200x150, got ",
                o.width, "x", o.height);
  auto ok = [&](double v) { return std::isfinite(v) && (!o.log_y || v > 0); };
  auto xv = [](const CurveSeries& s, std::size_t i) { return s.x.empty() ? double(i + 1) : s.x[i]; };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    DISTILL_CHECK(s.x.empty() || s.x.size() == s.y.size(), "loss_curve_svg: series '", s.name, "' has ", s.x.size(),
                  " x values and ", s.y.size(), " y values");
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      if (!ok(s.y[i]) || !std::isfinite(xv(s, i))) continue;
      const double y = o.log_y ? std::log10(s.y[i]) : s.y[i];
      x0 = std::min(x0, xv(s, i)), x1 = std::max(x1, xv(s, i));
      y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  }
  if (!(x1 >= x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;  // nothing to draw: an empty frame
  if (x1 == x0) x0 -= 0.5, x1 += 0.5;
  if (y1 == y0) y0 -= (y0 == 0 ? 1 : std::fabs(y0) * 0.1), y1 += (y1 == 0 ? 1 : std::fabs(y1) * 0.1);
  const double pad_y = (y1 - y0) * 0.05;
  y0 -= pad_y, y1 += pad_y;

  const detail::Frame f{70, o.width - 20.0, 40, o.height - 50.0, x0, x1, y0, y1};
  const double R = f.R, T = f.T;
  auto px = [&](double x) { return f.px(x); };
  auto py = [&](double y) { return f.py(y); };

  std::string s = detail::header(o.width, o.height, o.title, 15, (f.L + f.R) / 2);
  detail::axes(s, f, o.height, o.xlabel, o.ylabel + (o.log_y ? " (log scale)" : ""), "#dddddd", false,
                   [&](double t) { return o.log_y ? num("%g", std::pow(10.0, t)) : num("%g", t); });
  // curves
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
  for (std::size_t k = 0; k < series.size(); ++k) {
    const auto& c = series[k];
    const char* color = colors[k % 8];
    std::string pts;
    auto flush = [&] {
      if (!pts.empty())
        s += "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"1.5\" points=\"" + pts + "\"/>\n";
      pts.clear();
    };
    for (std::size_t i = 0; i < c.y.size(); ++i) {
      if (!ok(c.y[i]) || !std::isfinite(xv(c, i))) {
        flush();
        continue;
      }
      const double y = o.log_y ? std::log10(c.y[i]) : c.y[i];
      if (!pts.empty()) pts += ' ';
      pts += num("%.2f", px(xv(c, i)));
      pts += ',';
      pts += num("%.2f", py(y));
    }
    flush();
    const double ly = T + 14 + 16.0 * double(k);
    s += "<line x1=\"" + num("%.2f", R - 130) + "\" y1=\"" + num("%.2f", ly) + "\" x2=\"" + num("%.2f", R - 110) +
         "\" y2=\"" + num("%.2f", ly) + "\" stroke=\"" + color + "\" stroke-width=\"2\"/>\n";
    s += "<text x=\"" + num("%.2f", R - 104) + "\" y=\"" + num("%.2f", ly) + "\" dominant-baseline=\"middle\">" +
         esc(c.name) + "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

namespace detail {
/// Writes `text` to `path` (truncating); errors name the caller `what`.
inline void write_file(const std::string& path, const std::string& text, const char* what) {
  std::ofstream out(path, std::ios::trunc);
  DISTILL_CHECK(out.good(), what, ": cannot open '", path, "' for writing");
  out << text;
  DISTILL_CHECK(out.good(), what, ": error while writing '", path, "'");
}
}  // namespace detail

inline void write_loss_svg(const std::string& path, const std::vector<CurveSeries>& series, const SvgOptions& o = {}) {
  detail::write_file(path, loss_curve_svg(series, o), "write_loss_svg");
}

/// One curve of per-epoch losses.
inline void write_loss_svg(const std::string& path, const std::vector<double>& losses, const SvgOptions& o = {}) {
  write_loss_svg(path, std::vector<CurveSeries>{{"loss", losses, {}}}, o);
}

}  // namespace distill::io
