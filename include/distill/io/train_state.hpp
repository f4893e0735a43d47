// distill/io/train_state.hpp -- the full state of a training run in one checkpoint: save, resume, refuse.
//
// A training loop registers, once, everything its future depends on: modules (parameters and buffers: encoders,
// heads, momentum encoders, EMA targets), optimizers (moment buffers, step counters, learning rate), every
// CounterRng stream it draws from, the data-loader position (epoch, step, and that epoch's permutation), counters
// and accumulators, metric series, extra tensors (queues), and its configuration (key = value). save() writes all
// of it as one io::Checkpoint; restore() puts all of it back, so a resumed run continues exactly where the saved
// one stood: with the same seed and thread count it ends with bitwise the same weights, metrics and embeddings.
//
//   * Atomic: the file is written to a temporary in the same directory, fsynced, renamed over <dir>/state.ckpt,
//     and the directory fsynced (io::Checkpoint::write_atomically). A SIGKILL at any moment leaves the previous
//     complete file or the new one, never a torn one. Before replacing it, the previous file is kept as
//     <dir>/state.prev.ckpt (a hard link, also renamed atomically): if state.ckpt is later found damaged (a bad
//     checksum), restore() falls back to the previous good one and says so in warnings().
//   * Checked: the file carries an FNV-1a checksum; restore() verifies every tensor's dtype and shape against the
//     registered objects and the stored configuration against this run's: a differing key (another dataset,
//     model or variant) is refused with a sentence naming the key and both values. Keys registered with
//     Match::Warn (a thread count) only add a warning.
//   * Loader position: the stored permutation of the epoch in progress is compared with the one the loader
//     computes now, so a changed dataset or batch size cannot silently resume on another order.
//
// snippet: fragment; includes: distill/io/train_state.hpp distill/models/resnet1d.hpp distill/optim/adam.hpp;
// given: Context<Cpu> ctx; models::ResNet1D<64> encoder{ctx}; optim::Adam opt{params(encoder), {}};
// data::DataLoader loader{data::Dataset{}, {}, CounterRng{}};
//   std::int64_t epoch = 0, step = 0;
//   std::vector<double> losses;
//   CounterRng aug = ctx.make_rng(2);
//   io::TrainState state("runs/x");
//   state.config("dataset", "GunPoint").config("seed", 0).config("threads", 2, io::TrainState::Match::Warn);
//   state.add_module("encoder", encoder).add_optimizer("adam", opt).add_rng("aug", aug)
//        .add_loader("loader", loader, epoch, step).add_series("loss", losses);
//   if (state.exists()) state.restore();      // throws naming the differing key on a configuration mismatch
//   // ... train; every N steps or epochs, after the divergence checks passed:
//   state.save();
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "distill/core/error.hpp"
#include "distill/core/rng.hpp"
#include "distill/data/dataset.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/io/file.hpp"
#include "distill/losses/queue.hpp"

namespace distill::io {

/// A file's identity for a configuration entry: "<bytes> bytes, fnv1a64 <hex>" (e.g. a teacher checkpoint
/// that a resumed run must still find unchanged).
inline std::string file_fingerprint(const std::filesystem::path& file) {
  require_regular_file(file, "input");
  std::ifstream in(file, std::ios::binary);
  DISTILL_CHECK(in.good(), "cannot read '", file.string(), "' to fingerprint it");
  std::uint64_t h = 0xcbf29ce484222325ull, n = 0;
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof(buf));
    const auto got = static_cast<std::size_t>(in.gcount());
    h = fnv1a64(reinterpret_cast<const unsigned char*>(buf), got, h);
    n += got;
  }
  std::ostringstream os;
  os << n << " bytes, fnv1a64 " << std::hex << std::setw(16) << std::setfill('0') << h;
  return os.str();
}

class TrainState {
public:
  /// Whether a configuration key must match on resume (Refuse) or only warns (Warn, e.g. the thread count:
  /// a resumed run with other threads continues correctly but is not bitwise identical).
  enum class Match { Refuse, Warn };

  /// The state of the run whose output directory is `dir`: <dir>/state.ckpt (+ state.prev.ckpt).
  explicit TrainState(std::filesystem::path dir) : dir_(std::move(dir)) {}

  std::filesystem::path file() const { return dir_ / "state.ckpt"; }
  std::filesystem::path previous_file() const { return dir_ / "state.prev.ckpt"; }
  /// Whether a saved state (current or previous) exists.
  bool exists() const {
    std::error_code ec;
    return std::filesystem::exists(file(), ec) || std::filesystem::exists(previous_file(), ec);
  }

  // --- configuration ---------------------------------------------------------------------------------------
  TrainState& config(const std::string& key, std::string value, Match m = Match::Refuse) {
    DISTILL_CHECK(!key.empty() && key.find_first_of("=\n") == std::string::npos && value.find('\n') == std::string::npos,
                  "TrainState::config: key '", key, "' or its value contains '=' or a newline");
    for (auto& c : config_)
      if (c.key == key) {
        c = {key, std::move(value), m};
        return *this;
      }
    config_.push_back({key, std::move(value), m});
    return *this;
  }
  TrainState& config(const std::string& key, const char* value, Match m = Match::Refuse) {
    return config(key, std::string(value), m);
  }
  template <class X>
    requires std::is_arithmetic_v<X>
  TrainState& config(const std::string& key, X value, Match m = Match::Refuse) {
    std::ostringstream os;
    if constexpr (std::is_floating_point_v<X>) os << std::setprecision(17);
    os << value;
    return config(key, os.str(), m);
  }

  // --- registration (references are kept: they must outlive this object) ----------------------------------
  template <class Module>
  TrainState& add_module(const std::string& name, Module& m) {
    return add(
        name, [&m, name](Checkpoint& ck) { ck.put_module(m, name); },
        [&m, name](const Checkpoint& ck) { ck.load_module(m, name); });
  }
  template <class Optimizer>
  TrainState& add_optimizer(const std::string& name, Optimizer& opt) {
    return add(
        name, [&opt, name](Checkpoint& ck) { ck.put_optimizer(opt, name); },
        [&opt, name](const Checkpoint& ck) { ck.load_optimizer(opt, name); });
  }
  /// A host tensor of fixed shape (a queue, an EMA buffer that is not a module).
  template <class T, std::size_t R>
  TrainState& add_tensor(const std::string& name, Tensor<T, R, Cpu>& t) {
    return add(
        name, [&t, name](Checkpoint& ck) { ck.put(name, t); }, [&t, name](const Checkpoint& ck) { ck.read_into(name, t); });
  }
  /// Anything else with its own checkpoint entries (e.g. a cohort's put / load): `save` writes them, `load` reads
  /// them back; every entry's name must be `name` or start with "<name>." (restore refuses unknown entries).
  TrainState& add_part(const std::string& name, std::function<void(Checkpoint&)> save,
                       std::function<void(const Checkpoint&)> load) {
    return add(name, std::move(save), std::move(load));
  }
  /// A queue of keys (MoCo): its storage and its position (size, head).
  template <class T>
  TrainState& add_queue(const std::string& name, losses::Queue<T, Cpu>& q) {
    add_tensor(name + ".keys", q.storage());
    return add_queue_position(name, q);
  }
  /// A device queue: its storage travels through a host copy on the queue's context.
  template <class T>
  TrainState& add_queue(const std::string& name, losses::Queue<T, Cuda>& q) {
    add(
        name + ".keys", [&q, name](Checkpoint& ck) { ck.put(q.context(), name + ".keys", q.storage()); },
        [&q, name](const Checkpoint& ck) {
          Tensor<T, 2, Cpu> host(q.storage().shape());
          ck.read_into(name + ".keys", host);
          copy_to_device(q.context(), q.storage(), host);
        });
    return add_queue_position(name, q);
  }
  /// A random stream: its seed and stream must match on restore (they come from the run's seed), the counter
  /// is restored.
  TrainState& add_rng(const std::string& name, CounterRng& rng) {
    return add(
        name,
        [&rng, name](Checkpoint& ck) {
          Tensor<std::int64_t, 1, Cpu> t({3});
          t[0] = static_cast<std::int64_t>(rng.seed());
          t[1] = static_cast<std::int64_t>(rng.stream());
          t[2] = static_cast<std::int64_t>(rng.counter());
          ck.put(name, t);
        },
        [&rng, name](const Checkpoint& ck) {
          const auto t = ck.get<std::int64_t, 1>(name);
          DISTILL_CHECK(t.numel() == 3 && static_cast<std::uint64_t>(t[0]) == rng.seed() &&
                            static_cast<std::uint64_t>(t[1]) == rng.stream(),
                        "training state '", ck.path().string(), "': random stream '", name,
                        "' was saved with another seed or stream than this run uses (was the seed changed?)");
          rng.set_counter(static_cast<std::uint64_t>(t[2]));
        });
  }
  /// A counter or an accumulator.
  TrainState& add_value(const std::string& name, std::int64_t& v) { return add_scalar(name, v); }
  TrainState& add_value(const std::string& name, double& v) { return add_scalar(name, v); }
  /// A growing series (a loss curve, per-epoch metrics so far).
  TrainState& add_series(const std::string& name, std::vector<double>& v) {
    return add(
        name,
        [&v, name](Checkpoint& ck) {
          Tensor<double, 1, Cpu> t({static_cast<index_t>(v.size())});
          for (std::size_t i = 0; i < v.size(); ++i) t[static_cast<index_t>(i)] = v[i];
          ck.put(name, t);
        },
        [&v, name](const Checkpoint& ck) {
          const auto t = ck.get<double, 1>(name);
          v.assign(t.data(), t.data() + t.numel());
        });
  }
  /// The loader position: `epoch` (0-based epoch in progress) and `step` (next batch within it), plus the
  /// epoch's permutation, compared on restore with the one `loader` computes for that epoch.
  TrainState& add_loader(const std::string& name, const data::DataLoader& loader, std::int64_t& epoch,
                         std::int64_t& step) {
    add_scalar(name + ".epoch", epoch);
    add_scalar(name + ".step", step);
    auto order = [&loader](std::int64_t e) {
      std::vector<std::int64_t> o;
      for (const auto& b : loader.epoch_plan(e)) o.insert(o.end(), b.begin(), b.end());
      return o;
    };
    return add(
        name + ".order",
        [order, &epoch, name](Checkpoint& ck) {
          const auto o = order(epoch);
          Tensor<std::int64_t, 1, Cpu> t({static_cast<index_t>(o.size())});
          for (std::size_t i = 0; i < o.size(); ++i) t[static_cast<index_t>(i)] = o[i];
          ck.put(name + ".order", t);
        },
        [order, &epoch, name](const Checkpoint& ck) {  // runs after .epoch was restored (registration order)
          const auto t = ck.get<std::int64_t, 1>(name + ".order");
          const auto o = order(epoch);
          DISTILL_CHECK(std::vector<std::int64_t>(t.data(), t.data() + t.numel()) == o, "training state '",
                        ck.path().string(), "': the data order of epoch ", epoch + 1,
                        " differs from the saved one (was the dataset, batch size or seed changed?)");
        });
  }

  // --- files ---------------------------------------------------------------------------------------------
  /// Everything registered, as a checkpoint (tensor "config" holds the configuration text).
  Checkpoint snapshot() const {
    Checkpoint ck;
    const std::string text = config_text();
    Tensor<std::uint8_t, 1, Cpu> cfg({static_cast<index_t>(text.size())});
    if (!text.empty()) std::memcpy(cfg.data(), text.data(), text.size());
    ck.put("config", cfg);
    for (const auto& p : parts_) p.save(ck);
    return ck;
  }

  /// Writes the state atomically to <dir>/state.ckpt, keeping the file it replaces as state.prev.ckpt.
  void save() {
    namespace fs = std::filesystem;
    const auto bytes = snapshot().serialize();
    std::error_code ec;
    if (fs::is_regular_file(file(), ec)) {
      // link(state.ckpt -> tmp), rename(tmp -> state.prev.ckpt): prev is always a complete file.
      const fs::path tmp = dir_ / (".state.prev.ckpt.tmp-" + std::to_string(::getpid()));
      fs::remove(tmp, ec);
      fs::create_hard_link(file(), tmp, ec);
      if (!ec) fs::rename(tmp, previous_file(), ec);
      if (ec) fs::remove(tmp, ec);  // best effort: the new file is still written atomically below
    }
    Checkpoint::write_atomically(file(), bytes);
  }

  /// Restores every registered object from <dir>/state.ckpt (or, if that file is damaged, state.prev.ckpt).
  /// Throws distill::Error when no state exists, both files are damaged, the configuration differs in a
  /// Match::Refuse key, or a tensor does not fit its object. Objects are written in registration order; a
  /// refused restore may leave some of them written, so the caller should stop (the examples exit).
  void restore() {
    warnings_.clear();
    remove_stale_temporaries();
    restore_from(load_good());
  }

  /// restore() from a checkpoint already in memory (a snapshot(), or a parsed file; the fuzz target's entry):
  /// the configuration check, then every registered object. Warnings of a fallback are kept.
  void restore_from(const Checkpoint& ck) {
    check_config(ck);
    for (const auto& e : ck.entries()) {
      bool known = e.name == "config";
      for (const auto& p : parts_) known = known || e.name == p.name || format::under_prefix(e.name, p.name);
      DISTILL_CHECK(known, "cannot resume: the training state '", ck.path().string(), "' holds a tensor '", e.name,
                    "' that this run does not have (was it written by another program or version?)");
    }
    for (const auto& p : parts_) p.load(ck);
  }

  /// Notes from the last restore(): a fallback to the previous file, Match::Warn keys that differ.
  const std::vector<std::string>& warnings() const noexcept { return warnings_; }

  /// The configuration stored in a state checkpoint, as "key=value" lines.
  static std::string stored_config(const Checkpoint& ck) {
    const auto t = ck.get<std::uint8_t, 1>("config");
    return std::string(reinterpret_cast<const char*>(t.data()), static_cast<std::size_t>(t.numel()));
  }

private:
  template <class T, class D>
  TrainState& add_queue_position(const std::string& name, losses::Queue<T, D>& q) {
    return add(
        name + ".position",
        [&q, name](Checkpoint& ck) {
          Tensor<std::int64_t, 1, Cpu> t({2});
          t[0] = q.size();
          t[1] = q.head();
          ck.put(name + ".position", t);
        },
        [&q, name](const Checkpoint& ck) {
          const auto t = ck.get<std::int64_t, 1>(name + ".position");
          DISTILL_CHECK(t.numel() == 2, "training state '", ck.path().string(), "': queue '", name,
                        "' has a malformed position");
          q.set_position(t[0], t[1]);
        });
  }

  struct Part {
    std::string name;
    std::function<void(Checkpoint&)> save;
    std::function<void(const Checkpoint&)> load;
  };
  struct Entry {
    std::string key, value;
    Match match;
  };

  TrainState& add(const std::string& name, std::function<void(Checkpoint&)> s, std::function<void(const Checkpoint&)> l) {
    DISTILL_CHECK(!name.empty() && name != "config", "TrainState: '", name, "' is not a usable name");
    for (const auto& p : parts_)
      DISTILL_CHECK(p.name != name, "TrainState: '", name, "' is registered twice");
    parts_.push_back({name, std::move(s), std::move(l)});
    return *this;
  }
  template <class X>
  TrainState& add_scalar(const std::string& name, X& v) {
    return add(
        name,
        [&v, name](Checkpoint& ck) {
          Tensor<X, 0, Cpu> t(Shape<0>{});
          t[0] = v;
          ck.put(name, t);
        },
        [&v, name](const Checkpoint& ck) { v = ck.get<X, 0>(name)[0]; });
  }

  /// Temporaries a killed save() left behind (".state.ckpt.tmp-*", ".state.prev.ckpt.tmp-*"): never complete
  /// files, never read; removed when a run resumes.
  void remove_stale_temporaries() const {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<fs::path> stale;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(".state.ckpt.tmp-", 0) == 0 || n.rfind(".state.prev.ckpt.tmp-", 0) == 0) stale.push_back(e.path());
    }
    for (const auto& p : stale) fs::remove(p, ec);
  }

  std::string config_text() const {
    std::string s;
    for (const auto& c : config_) s += c.key + "=" + c.value + "\n";
    return s;
  }

  Checkpoint load_good() {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::string first_error;
    if (fs::exists(file(), ec)) {
      try {
        return Checkpoint::load(file());
      } catch (const Error& e) {
        first_error = e.what();
      }
    }
    DISTILL_CHECK(fs::exists(previous_file(), ec), first_error.empty()
                      ? "no training state to resume in '" + dir_.string() + "': neither state.ckpt nor state.prev.ckpt exists"
                      : "cannot resume from '" + dir_.string() + "': " + first_error + "; and no state.prev.ckpt to fall back to");
    Checkpoint prev = Checkpoint::load(previous_file());
    warnings_.push_back(first_error.empty() ? "state.ckpt is missing; resuming from state.prev.ckpt"
                                            : "state.ckpt is damaged (" + first_error + "); resuming from state.prev.ckpt");
    return prev;
  }

  void check_config(const Checkpoint& ck) {
    std::vector<std::pair<std::string, std::string>> stored;
    std::istringstream in(stored_config(ck));
    for (std::string line; std::getline(in, line);) {
      const auto eq = line.find('=');
      if (eq != std::string::npos) stored.emplace_back(line.substr(0, eq), line.substr(eq + 1));
    }
    const std::string f = "'" + ck.path().string() + "'";
    for (const auto& c : config_) {
      const std::string* have = nullptr;
      for (const auto& [k, v] : stored)
        if (k == c.key) have = &v;
      DISTILL_CHECK(have != nullptr || c.match == Match::Warn, "cannot resume: this run sets ", c.key, " = ", c.value,
                    " but the training state ", f, " was saved without a ", c.key, " setting");
      if (!have || *have == c.value) continue;
      const std::string msg = "this run has " + c.key + " = " + c.value + " but the training state " + f +
                              " was saved with " + c.key + " = " + *have;
      if (c.match == Match::Warn) {
        warnings_.push_back(msg + "; the resumed run is not bitwise identical to an uninterrupted one");
        continue;
      }
      DISTILL_FAIL("cannot resume: ", msg, "; use the same ", c.key, " to resume, or another output directory");
    }
    for (const auto& [k, v] : stored) {
      bool known = false;
      for (const auto& c : config_) known = known || c.key == k;
      DISTILL_CHECK(known, "cannot resume: the training state ", f, " was saved with ", k, " = ", v,
                    ", a setting this run does not have (was it written by another program?)");
    }
  }

  std::filesystem::path dir_;
  std::vector<Entry> config_;
  std::vector<Part> parts_;
  std::vector<std::string> warnings_;
};

}  // namespace distill::io
