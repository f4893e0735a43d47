// distill/nn/frozen.hpp -- nn::FrozenTeacher<M>: a pre-trained module used only for its outputs (DisCo's teacher,
// any knowledge-distillation teacher).
//
// snippet: fragment; includes: distill/models/disco.hpp; given: Context<Cpu> ctx; Var<float, 3> x;
//   nn::FrozenTeacher<models::DiscoNet<128, 256>> teacher{ctx, "runs/teacher/net.ckpt"};   // load + freeze
//   auto t = teacher(x);            // [B, 128]: no graph, never a gradient, BN running statistics
//
// The module is built as M(ctx, args...) (without consuming ctx's random stream), its parameters and buffers are
// loaded from a checkpoint (io/checkpoint.hpp, strict: the file must hold exactly this module's tensors) or copied
// from a module in memory, and every parameter is frozen (requires_grad false). Each call runs under NoGradGuard,
// so no graph is recorded and the outputs are constants.
//
// BatchNorm behaviour (TeacherBN):
//   RunningStats (default): inference mode, the running statistics saved with the teacher. The output of a series
//                 does not depend on the rest of its batch.
//   BatchStats:   training-mode normalisation with the statistics of the current batch (what DisCo's reference code
//                 does, since it leaves the whole model in train() mode). The running statistics are restored after
//                 each call, so they never move either way.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/io/checkpoint.hpp"
#include "distill/nn/module.hpp"
#include "distill/nn/momentum.hpp"

namespace distill::nn {

enum class TeacherBN { RunningStats, BatchStats };

inline const char* teacher_bn_name(TeacherBN m) { return m == TeacherBN::RunningStats ? "running" : "batch"; }

inline TeacherBN parse_teacher_bn(const std::string& s) {
  if (s == "running" || s == "eval") return TeacherBN::RunningStats;
  if (s == "batch" || s == "train") return TeacherBN::BatchStats;
  DISTILL_FAIL("unknown teacher BN mode '", s, "': expected running (inference statistics) or batch");
}

template <class M>
class FrozenTeacher {
public:
  using module_type = M;
  using value_type = typename M::value_type;
  using device_type = typename M::device_type;
  using T = value_type;
  using D = device_type;

  /// Loads the teacher from a checkpoint written by save_checkpoint(file, module) for a module of type M.
  template <class... Args>
  FrozenTeacher(Context<D>& ctx, const std::filesystem::path& checkpoint, TeacherBN bn = TeacherBN::RunningStats,
                Args&&... args)
      : ctx_(&ctx), bn_(bn), m_(detail::construct_quietly<M>(ctx, std::forward<Args>(args)...)) {
    DISTILL_CHECK(std::filesystem::exists(checkpoint), "FrozenTeacher: checkpoint '", checkpoint.string(),
                  "' does not exist");
    load_checkpoint(checkpoint, m_);
    freeze();
  }

  /// A frozen copy of a module held in memory (e.g. a teacher just trained in the same program).
  template <class... Args>
  FrozenTeacher(Context<D>& ctx, const M& trained, TeacherBN bn = TeacherBN::RunningStats, Args&&... args)
      : ctx_(&ctx), bn_(bn), m_(detail::construct_quietly<M>(ctx, std::forward<Args>(args)...)) {
    m_.copy_from(trained);
    freeze();
  }

  FrozenTeacher(const FrozenTeacher&) = delete;
  FrozenTeacher& operator=(const FrozenTeacher&) = delete;

  TeacherBN bn_mode() const noexcept { return bn_; }
  const M& module() const noexcept { return m_; }

  /// The teacher's output for x: a constant (no graph).
  template <class X>
  auto operator()(const X& x) {
    return run([&](M& m) { return m(x); });
  }

  /// Any other forward of the module (e.g. a method returning an intermediate representation), with the same
  /// guarantees: `f(M&)` runs under NoGradGuard and the BN running statistics do not move.
  template <class F>
  auto run(F&& f) {
    NoGradGuard no_grad(*ctx_);
    if (bn_ == TeacherBN::RunningStats) return f(m_);
    m_.train(true);
    auto out = f(m_);
    restore_buffers();
    m_.train(false);
    return out;
  }

private:
  void freeze() {
    set_requires_grad(m_, false);
    m_.train(false);
    if (bn_ == TeacherBN::BatchStats) {  // host snapshot of the running statistics, restored after each call
      m_.for_each_buffer([&](std::string_view, auto& t) {
        auto h = to_host(*ctx_, t);
        saved_.emplace_back(reinterpret_cast<const unsigned char*>(h.data()),
                            reinterpret_cast<const unsigned char*>(h.data() + h.numel()));
      });
    }
  }

  void restore_buffers() {
    std::size_t i = 0;
    m_.for_each_buffer([&](std::string_view, auto& t) {
      const auto& bytes = saved_[i++];
      DeviceOps<D>::write_bytes(ctx_, t.data(), bytes.data(), bytes.size());
    });
  }

  Context<D>* ctx_;
  TeacherBN bn_;
  M m_;
  std::vector<std::vector<unsigned char>> saved_;
};

}  // namespace distill::nn
