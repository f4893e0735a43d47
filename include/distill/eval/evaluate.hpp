// distill/eval/evaluate.hpp -- the evaluation suite end to end: UCR directory -> embeddings -> metrics file.
//
// Protocol (docs/data.md, "Evaluation"): embed the train and test splits with the frozen encoder, then
//   * linear probe: softmax regression fitted on the train embeddings, test accuracy;
//   * k-NN accuracy (k = 1 by default, Euclidean) of test embeddings against train embeddings;
//   * k-means with k = number of classes (10 seeded restarts) on the TEST embeddings, scored against the test
//     labels with Rand Index, NMI (arithmetic) and ARI.
// Outputs: a JSON object, a row appended to a CSV file, and optionally the embeddings and labels as .npy and a
// picture of the test embeddings (embedding.svg: first two principal components, coloured by class).
//
// The embedding is a module (`evaluate_splits(ctx, splits, encoder)`), or a function together with the modules it
// runs (`eval::embedding(fn, encoder, head)`): those modules are put in eval mode while the splits are embedded
// (BatchNorm uses its running statistics, which stay as they are) and get their previous mode back afterwards,
// also when an exception leaves. A plain function (such as `flatten_series`) is called as it is.
//
// snippet: fragment; includes: distill/models/resnet1d.hpp; given: Context<Cpu> ctx;
// models::ResNet1D<64> encoder{ctx}; nn::ProjectionHead<128, 128, 128> head{ctx};
//   auto splits = data::load_ucr("GunPoint");
//   // ... train encoder and head on splits.train ...
//   auto r = eval::evaluate_splits(ctx, splits, encoder, {},
//                                  {.metrics_json = "out/gunpoint.json", .metrics_csv = "out/metrics.csv"},
//                                  io::Record().set("model", "dcrls").set("seed", 0));
//   auto projected = [&](const Var<float, 3>& x) { return head(encoder(x)); };
//   auto r2 = eval::evaluate_splits(ctx, splits, eval::embedding(projected, encoder, head));
// A model on the Cuda device is evaluated the same way through `eval::on_device(cuda_ctx, fn, modules...)`: chunks go
// up, embeddings come back, the metrics are computed on the host.
//
// `eval::flatten_series` is the identity "encoder" (raw series as the embedding): a baseline and a check,
// since its 1-NN accuracy is the archive's published Euclidean 1-NN accuracy.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "distill/autograd/var.hpp"
#include "distill/core/context.hpp"
#include "distill/data/dataset.hpp"
#include "distill/data/ucr.hpp"
#include "distill/eval/kmeans.hpp"
#include "distill/eval/knn.hpp"
#include "distill/eval/linear_probe.hpp"
#include "distill/eval/metrics.hpp"
#include "distill/io/embedding_svg.hpp"
#include "distill/io/npy.hpp"
#include "distill/io/report.hpp"
#include "distill/nn/module.hpp"

namespace distill::eval {

struct EvalOptions {
  bool probe = true;
  ProbeOptions probe_options{};
  index_t knn_k = 1;  // 0 skips k-NN
  Distance knn_distance = Distance::Euclidean;
  bool kmeans = true;
  int kmeans_restarts = 10;
  std::uint64_t seed = 0;     // k-means restarts and probe mini-batches
  index_t embed_batch = 256;  // rows per call of the embedding function
};

struct EvalResult {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  std::string dataset;
  index_t n_train = 0, n_test = 0, length = 0, num_classes = 0, dim = 0;
  double probe_accuracy = nan, probe_train_accuracy = nan;
  index_t knn_k = 0;
  double knn_accuracy = nan;
  double kmeans_ri = nan, kmeans_nmi = nan, kmeans_ari = nan, kmeans_inertia = nan;
  double seconds = 0;

  /// The metrics as a record (fields of skipped metrics left out), after the fields of `tags`.
  io::Record record(const io::Record& tags = {}) const {
    io::Record r = tags;
    if (!dataset.empty()) r.set("dataset", dataset);
    r.set("n_train", n_train).set("n_test", n_test);
    if (length) r.set("length", length);
    r.set("classes", num_classes).set("dim", dim);
    if (!std::isnan(probe_accuracy)) r.set("probe_acc", probe_accuracy).set("probe_train_acc", probe_train_accuracy);
    if (knn_k > 0) r.set("knn_k", knn_k).set("knn_acc", knn_accuracy);
    if (!std::isnan(kmeans_ri))
      r.set("kmeans_ri", kmeans_ri).set("kmeans_nmi", kmeans_nmi).set("kmeans_ari", kmeans_ari);
    r.set("eval_seconds", seconds);
    return r;
  }
};

/// All metrics for given embeddings. Labels are class ids in [0, num_classes).
inline EvalResult evaluate_embeddings(Context<Cpu>& ctx, const Tensor<float, 2, Cpu>& train_z,
                                      std::span<const index_t> train_y, const Tensor<float, 2, Cpu>& test_z,
                                      std::span<const index_t> test_y, index_t num_classes,
                                      const EvalOptions& opt = {}) {
  const auto t0 = std::chrono::steady_clock::now();
  DISTILL_CHECK(train_z.extent(1) == test_z.extent(1), "evaluate_embeddings: train embeddings ",
                to_string(train_z.shape()), " and test embeddings ", to_string(test_z.shape()), " differ in dimension");
  EvalResult r;
  r.n_train = train_z.extent(0);
  r.n_test = test_z.extent(0);
  r.num_classes = num_classes;
  r.dim = train_z.extent(1);
  if (opt.probe) {
    ProbeOptions po = opt.probe_options;
    po.seed = opt.seed;
    const ProbeResult p = linear_probe(ctx, train_z, train_y, test_z, test_y, num_classes, po);
    r.probe_accuracy = p.test_accuracy;
    r.probe_train_accuracy = p.train_accuracy;
  }
  if (opt.knn_k > 0) {
    r.knn_k = std::min(opt.knn_k, r.n_train);
    r.knn_accuracy = knn_accuracy(train_z, train_y, test_z, test_y, r.knn_k, opt.knn_distance, ctx.threads());
  }
  if (opt.kmeans && r.n_test >= num_classes) {
    KMeansOptions ko;
    ko.k = num_classes;
    ko.n_init = opt.kmeans_restarts;
    ko.seed = opt.seed;
    ko.threads = ctx.threads();
    const KMeansResult km = kmeans(test_z, ko);
    r.kmeans_ri = rand_index(test_y, km.labels);
    r.kmeans_nmi = nmi(test_y, km.labels);
    r.kmeans_ari = adjusted_rand_index(test_y, km.labels);
    r.kmeans_inertia = km.inertia;
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

/// The raw series [N, C, L] as [N, C*L] embeddings.
inline Tensor<float, 2, Cpu> flatten_series(const Tensor<float, 3, Cpu>& x) {
  return x.clone().reshape(Shape<2>{x.extent(0), x.extent(1) * x.extent(2)});
}

/// An embedding function together with the modules it runs; made by embedding().
template <class F, class... Ms>
struct ModelEmbedding {
  F fn;
  std::tuple<Ms&...> modules;
};

/// `embedding(fn, modules...)`: embed_dataset / evaluate_splits call `fn` with `modules` in eval mode and give each
/// module its previous mode back afterwards (nn::EvalModeGuard). `fn` is kept by value (capture modules by
/// reference).
template <class F, nn::HasTrainingMode... Ms>
ModelEmbedding<std::decay_t<F>, Ms...> embedding(F&& fn, Ms&... modules) {
  return {std::forward<F>(fn), std::tuple<Ms&...>(modules...)};
}

/// `on_device(device_ctx, fn, modules...)`: an embedding that runs on the device of `device_ctx` (Cpu or Cuda) while
/// the evaluation stays on the host: each chunk of host series is copied to the device, `fn(Var<float, 3, D>)` runs
/// under NoGradGuard with `modules` in eval mode, and its [b, D] result comes back to the host in one copy per
/// chunk. On the Cpu device the copies are plain clones.
template <class D, class F, nn::HasTrainingMode... Ms>
auto on_device(Context<D>& device_ctx, F&& fn, Ms&... modules) {
  return embedding(
      [&device_ctx, f = std::forward<F>(fn)](const Tensor<float, 3, Cpu>& x) mutable {
        NoGradGuard no_grad(device_ctx);
        auto z = f(constant(device_ctx, to_device(device_ctx, x)));
        return to_host(device_ctx, z.value());
      },
      modules...);
}

namespace detail {
template <class E>
inline constexpr bool is_model_embedding = false;
template <class F, class... Ms>
inline constexpr bool is_model_embedding<ModelEmbedding<F, Ms...>> = true;

/// The chunked loop of embed_dataset, for a function with nothing to switch to eval mode.
template <class Embed>
Tensor<float, 2, Cpu> embed_chunks(Context<Cpu>& ctx, const data::Dataset& ds, Embed& embed, index_t batch) {
  DISTILL_CHECK(batch >= 1, "embed_dataset: batch must be >= 1, got ", batch);
  NoGradGuard no_grad(ctx);
  const index_t n = ds.size();
  Tensor<float, 2, Cpu> out;
  for (index_t s = 0; s < n; s += batch) {
    const index_t b = std::min(batch, n - s);
    auto res = [&] {
      if constexpr (std::is_invocable_v<Embed&, const Var<float, 3, Cpu>&>)
        return embed(constant(ctx, ds.x.slice0(s, b).clone()));
      else
        return embed(ds.x.slice0(s, b));
    }();
    Tensor<float, 2, Cpu> z;
    if constexpr (requires { res.value(); }) z = res.value();
    else z = res;
    DISTILL_CHECK(z.extent(0) == b, "embed_dataset: the embedding function returned ", to_string(z.shape()),
                  " for a batch of ", b, " series");
    if (s == 0) out = Tensor<float, 2, Cpu>({n, z.extent(1)});
    DISTILL_CHECK(z.extent(1) == out.extent(1), "embed_dataset: embedding width changed from ", out.extent(1),
                  " to ", z.extent(1));
    std::copy(z.begin(), z.end(), out.data() + s * out.extent(1));
  }
  return out;
}
}  // namespace detail

/// Embeds a dataset in chunks of `batch` series, under NoGradGuard, into a Tensor<float, 2, Cpu> [N, D].
/// `embed` is one of
///   * a module (train / is_training, forward of a Var<float, 3, Cpu> [b, C, L] to a [b, D] Var): run in eval mode;
///   * embedding(fn, modules...): fn run with the modules in eval mode;
///   * a function: called as it is.
/// Modules get their previous mode back afterwards (also on an exception). A function receives the chunk as a
/// Var<float, 3, Cpu> (no gradient) when it accepts one, else as a Tensor<float, 3, Cpu>; it returns a
/// Tensor<float, 2, Cpu> [b, D] or a Var<float, 2, Cpu>.
template <class Embed>
Tensor<float, 2, Cpu> embed_dataset(Context<Cpu>& ctx, const data::Dataset& ds, Embed&& embed, index_t batch = 256) {
  using E = std::remove_cvref_t<Embed>;
  if constexpr (detail::is_model_embedding<E>) {
    return std::apply(
        [&](auto&... modules) {
          nn::EvalModeGuard guard(modules...);
          return detail::embed_chunks(ctx, ds, embed.fn, batch);
        },
        embed.modules);
  } else if constexpr (nn::HasTrainingMode<E>) {
    nn::EvalModeGuard guard(embed);
    return detail::embed_chunks(ctx, ds, embed, batch);
  } else {
    return detail::embed_chunks(ctx, ds, embed, batch);
  }
}

/// Where evaluate_splits writes (empty: not written).
struct OutputPaths {
  std::string metrics_json;       // the record as a JSON object (overwritten)
  std::string metrics_csv;        // the record appended as a row (header written when the file is new)
  std::string embeddings_prefix;  // <prefix>train_z.npy, train_y.npy, test_z.npy, test_y.npy
  std::string embedding_svg;      // the test embeddings on their first two principal components, coloured by class
};

namespace detail {
inline void make_parent(const std::string& path) {
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
}
}  // namespace detail

/// Embeds both splits (embed: a module, embedding(fn, modules...) or a function, as for embed_dataset; modules run
/// in eval mode and get their mode back), evaluates, and writes the requested outputs.
template <class Embed>
EvalResult evaluate_splits(Context<Cpu>& ctx, const data::UcrSplits& s, Embed&& embed, const EvalOptions& opt = {},
                           const OutputPaths& out = {}, const io::Record& tags = {}) {
  const Tensor<float, 2, Cpu> ztr = embed_dataset(ctx, s.train, embed, opt.embed_batch);
  const Tensor<float, 2, Cpu> zte = embed_dataset(ctx, s.test, embed, opt.embed_batch);
  DISTILL_CHECK(s.train.num_classes == s.test.num_classes, "evaluate_splits: train has ", s.train.num_classes,
                " classes, test ", s.test.num_classes);
  EvalResult r = evaluate_embeddings(ctx, ztr, s.train.labels, zte, s.test.labels, s.train.num_classes, opt);
  r.dataset = s.train.name;
  r.length = s.train.length();
  const io::Record rec = r.record(tags);
  if (!out.metrics_json.empty()) {
    detail::make_parent(out.metrics_json);
    io::write_json(out.metrics_json, rec);
  }
  if (!out.metrics_csv.empty()) {
    detail::make_parent(out.metrics_csv);
    io::append_csv(out.metrics_csv, rec);
  }
  if (!out.embeddings_prefix.empty()) {
    detail::make_parent(out.embeddings_prefix + "x");
    io::write_npy(out.embeddings_prefix + "train_z.npy", ztr);
    io::write_npy(out.embeddings_prefix + "train_y.npy", s.train.labels);
    io::write_npy(out.embeddings_prefix + "test_z.npy", zte);
    io::write_npy(out.embeddings_prefix + "test_y.npy", s.test.labels);
  }
  if (!out.embedding_svg.empty()) {
    detail::make_parent(out.embedding_svg);
    io::write_embedding_svg(out.embedding_svg, zte, s.test.labels,
                            {.title = s.test.name + " test embeddings (first two principal components)"});
  }
  return r;
}

/// load_ucr + evaluate_splits: from a UCR name or directory to a metrics file.
template <class Embed>
EvalResult evaluate_ucr(Context<Cpu>& ctx, const std::string& name_or_dir, Embed&& embed, const EvalOptions& opt = {},
                        const OutputPaths& out = {}, const io::Record& tags = {}, const data::UcrOptions& ucr = {}) {
  return evaluate_splits(ctx, data::load_ucr(name_or_dir, ucr), std::forward<Embed>(embed), opt, out, tags);
}

}  // namespace distill::eval
