// tests/device/compare_outputs.cpp -- compares what two runs of an example wrote (checkpoints and .npy arrays),
// element by element within a tolerance; used by device_parity.py (CTest <example>_device_parity) to check that
// `--device cuda` trains like `--device cpu`.
//
//   compare_outputs A.ckpt B.ckpt --rel R --abs E [--noise B F]
//       every float tensor: |a - b| <= R * max|a| + E (per tensor); non-float entries identical;
//   compare_outputs A.npy  B.npy  --rel R --abs E     one float32 array, likewise.
// --noise B F: elements outside the tolerance are accepted if each is within B and together they are at most a
// fraction F of all elements. (Adam moves an element by about lr per step whatever the size of its gradient, so an
// element whose exact gradient is 0, such as the bias of a convolution that feeds a BatchNorm, follows the sign of
// its rounding noise on each device: they may end up to 2 * lr * steps apart. Real disagreements -- a layer not
// updated, a wrong gradient -- move whole tensors, far more than a small fraction.)
// Exit 0 when all agree; 1 naming each tensor that does not (worst difference, its scale); 2 on bad usage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "distill/io/checkpoint.hpp"
#include "distill/io/npy.hpp"

namespace {

struct Verdict {
  std::size_t bad = 0;    // beyond the tolerance and beyond the noise bound
  std::size_t noisy = 0;  // beyond the tolerance, within the noise bound
  double worst = 0, scale = 0;
};

Verdict compare(const float* a, const float* b, std::size_t n, double rel, double abs_tol, double noise) {
  Verdict v;
  for (std::size_t i = 0; i < n; ++i) v.scale = std::max(v.scale, std::fabs(double(a[i])));
  for (std::size_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    v.worst = std::max(v.worst, std::isnan(d) ? INFINITY : d);
    if (d <= rel * v.scale + abs_tol) continue;
    if (d <= noise) ++v.noisy;
    else ++v.bad;
  }
  return v;
}

bool ends_with(const std::string& s, const char* suffix) {
  const std::size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool with_noise = argc == 10 && std::string(argv[7]) == "--noise";
  if ((argc != 7 && !with_noise) || std::string(argv[3]) != "--rel" || std::string(argv[5]) != "--abs") {
    std::fprintf(stderr, "usage: compare_outputs A B --rel R --abs E [--noise B F]  (A, B: two .ckpt or .npy files)\n");
    return 2;
  }
  const std::string fa = argv[1], fb = argv[2];
  const double rel = std::stod(argv[4]), abs_tol = std::stod(argv[6]);
  const double noise = with_noise ? std::stod(argv[8]) : 0, noisy_fraction = with_noise ? std::stod(argv[9]) : 0;
  try {
    int failed = 0;
    std::size_t tensors = 0, elements = 0, noisy = 0;
    double worst_ratio = 0;
    auto report = [&](const std::string& name, const Verdict& v, std::size_t n) {
      ++tensors;
      elements += n;
      noisy += v.noisy;
      const double allowed = rel * v.scale + abs_tol;
      worst_ratio = std::max(worst_ratio, allowed > 0 ? v.worst / allowed : v.worst);
      if (v.bad) {
        ++failed;
        std::printf("DIFFERS %s: %zu of %zu elements, worst |a - b| %.3g (allowed %.3g, scale %.3g)\n", name.c_str(),
                    v.bad, n, v.worst, allowed, v.scale);
      } else if (v.noisy) {
        std::printf("noise   %s: %zu of %zu elements beyond %.3g, all within %.3g (worst %.3g)\n", name.c_str(),
                    v.noisy, n, allowed, noise, v.worst);
      }
    };
    if (ends_with(fa, ".npy")) {
      const auto a = distill::io::read_npy<float, 2>(fa), b = distill::io::read_npy<float, 2>(fb);
      if (a.shape() != b.shape()) {
        std::printf("DIFFERS %s: shapes %s and %s\n", fa.c_str(), distill::to_string(a.shape()).c_str(),
                    distill::to_string(b.shape()).c_str());
        return 1;
      }
      report(fa, compare(a.data(), b.data(), std::size_t(a.numel()), rel, abs_tol, noise), std::size_t(a.numel()));
    } else {
      const auto a = distill::io::Checkpoint::load(fa), b = distill::io::Checkpoint::load(fb);
      if (a.names() != b.names()) {
        std::printf("DIFFERS: %s and %s hold different tensors\n", fa.c_str(), fb.c_str());
        return 1;
      }
      for (const auto& ea : a.entries()) {
        const auto& eb = b.entries()[&ea - a.entries().data()];
        if (ea.dtype != eb.dtype || ea.shape != eb.shape || ea.bytes.size() != eb.bytes.size()) {
          std::printf("DIFFERS %s: dtype or shape\n", ea.name.c_str());
          ++failed;
          continue;
        }
        if (ea.dtype != distill::io::DType::Float32) {  // counters, positions, rng states: exactly equal
          if (ea.bytes != eb.bytes) {
            std::printf("DIFFERS %s: non-float entry not identical\n", ea.name.c_str());
            ++failed;
          }
          continue;
        }
        const std::size_t n = ea.bytes.size() / sizeof(float);
        std::vector<float> x(n), y(n);
        if (n) {
          std::memcpy(x.data(), ea.bytes.data(), ea.bytes.size());
          std::memcpy(y.data(), eb.bytes.data(), eb.bytes.size());
        }
        report(ea.name, compare(x.data(), y.data(), n, rel, abs_tol, noise), n);
      }
    }
    const bool too_noisy = double(noisy) > noisy_fraction * double(elements);
    std::printf("%s: %zu tensor(s), %zu elements, worst difference %.3g of the tolerance; %zu element(s) (%.4f %%) "
                "beyond it within the noise bound %.3g (at most %.4f %% accepted); %s\n",
                fa.c_str(), tensors, elements, worst_ratio, noisy, 100.0 * double(noisy) / double(std::max<std::size_t>(elements, 1)),
                noise, 100.0 * noisy_fraction, failed || too_noisy ? "DIFFERENT" : "agree");
    if (too_noisy) ++failed;
    return failed ? 1 : 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare_outputs: %s\n", e.what());
    return 2;
  }
}
