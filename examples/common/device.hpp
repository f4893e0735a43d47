// examples/common/device.hpp -- `--device cpu|cuda[:N]` for the example binaries.
//
// A program writes its run once, as `template <class D> int run(...)`, and main() picks the device once:
//   return examples::with_device(args.device, [&]<class D>() { return run<D>(args); });
// The Cuda instantiation exists only where the build linked a CUDA library (DISTILL_EXAMPLES_CUDA: the nvcc
// backend distill::cuda, or the SIMT emulator distill::cuda_emu); elsewhere --device cuda is refused with a
// sentence saying how to get one. RunContexts<D> holds the device context (model, optimizer, losses) and the host
// context (evaluation, which runs on the CPU on embeddings copied back from the device).
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>

#include "distill/core/context.hpp"
#include "distill/backend/device_ops.hpp"
#include "distill/core/error.hpp"
#include "distill/core/isa.hpp"
#include "distill/dist/world.hpp"

#ifndef DISTILL_EXAMPLES_CUDA
#define DISTILL_EXAMPLES_CUDA 0
#endif

namespace distill::examples {

/// What `--device` asked for.
struct DeviceChoice {
  bool cuda = false;
  int index = 0;  // N of cuda:N
  std::string spelled = "cpu";
};

/// Parses "cpu", "cuda" or "cuda:N" (N a device index); empty optional otherwise.
inline std::optional<DeviceChoice> parse_device(const std::string& s) {
  if (s == "cpu") return DeviceChoice{false, 0, s};
  if (s == "cuda") return DeviceChoice{true, 0, s};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    int n = -1;
    const auto r = std::from_chars(s.data() + 5, s.data() + s.size(), n);
    if (r.ec == std::errc() && r.ptr == s.data() + s.size() && n >= 0 && n < 1024) return DeviceChoice{true, n, s};
  }
  return std::nullopt;
}

/// Adds `--device` to `app`, stored in `out`.
inline void add_device_option(CLI::App& app, std::string& out) {
  const char* help = DISTILL_EXAMPLES_CUDA
                         ? "cpu, or cuda / cuda:N (a GPU in the nvcc build, the SIMT emulator in the emulation build)"
                         : "cpu (this build has no CUDA backend: configure with -DDISTILL_CUDA=ON for cuda / cuda:N)";
  app.add_option("--device", out, help)
      ->check(CLI::Validator(
          [](std::string& s) -> std::string {
            return parse_device(s) ? std::string() : "'" + s + "' is not a device; expected cpu, cuda or cuda:N";
          },
          "cpu|cuda[:N]"));
}

/// Runs `body.template operator()<D>()` for the chosen device.
template <class F>
int with_device(const std::string& device, F&& body) {
  const auto d = parse_device(device);
  DISTILL_CHECK(d.has_value(), "--device '", device, "' is not a device; expected cpu, cuda or cuda:N");
  if (!d->cuda) return body.template operator()<Cpu>();
#if DISTILL_EXAMPLES_CUDA
  return body.template operator()<Cuda>();
#else
  DISTILL_FAIL("--device ", device, ": this build has no CUDA backend. Configure with -DDISTILL_CUDA=ON (nvcc, and a "
               "GPU to run on), or keep DISTILL_CUDA_EMULATION=ON (the default with tests) to run the Cuda path on the "
               "CPU's SIMT emulator");
#endif
}

/// One line naming where the kernels run: "cpu (avx512 kernels, 2 threads)", or the GPU's name, memory and compute
/// capability, or "... emulated on the CPU".
inline std::string describe_device(const Context<Cpu>& c) {
  return fmt::format("cpu ({} kernels, {} threads)", isa_name(c.isa()), c.threads());
}
inline std::string describe_device(const Context<Cuda>& c) { return cuda::describe(c.device_info()); }
/// "cpu", "cuda" or "cuda-emulated" (metrics.json's device_kind).
inline std::string device_kind(const Context<Cpu>&) { return "cpu"; }
inline std::string device_kind(const Context<Cuda>& c) { return c.emulated() ? "cuda-emulated" : "cuda"; }

/// The contexts of one run: `device` for the model (Context<Cpu> or Context<Cuda> on device N), `host()` for the
/// CPU work around it (evaluation); on the Cpu device both are the same context. A missing driver, GPU or device N
/// fails here, before any data is read.
template <class D>
class RunContexts {
public:
  RunContexts(int threads, std::uint64_t seed, const std::string& device_spec)
      : device(make(threads, seed, device_spec)) {
    if constexpr (!std::is_same_v<D, Cpu>) host_.emplace(threads, seed);
  }
  Context<D> device;
  Context<Cpu>& host() {
    if constexpr (std::is_same_v<D, Cpu>)
      return device;
    else
      return *host_;
  }

private:
  static Context<D> make(int threads, std::uint64_t seed, const std::string& spec) {
    if constexpr (std::is_same_v<D, Cpu>)
      return Context<Cpu>(threads, seed);
    else
      return Context<D>(threads, seed, parse_device(spec).value().index);
  }
  std::optional<Context<Cpu>> host_;
};

/// Puts a run's device context on the world's ranks (docs/distributed.md): on the Cpu device the MPI
/// communicator, with batch norm over the global batch if `sync_bn`; on the Cuda device one process only (the NCCL
/// engine exists in the library, dist/nccl.hpp, but the examples do not give each rank its own GPU yet). Returns
/// ", N ranks (mpi[, sync BN])" for the header line, or "" on one process.
template <class D>
std::string join_ranks(Context<D>& ctx, const dist::World& world, bool sync_bn, const char* program) {
  if constexpr (std::is_same_v<D, Cpu>) {
    ctx.set_communicator(world.comm());
    ctx.set_sync_batch_norm(sync_bn);
  } else {
    DISTILL_CHECK(world.size() == 1, program, ": data-parallel ranks run on the Cpu device in the examples (",
                  world.size(), " ranks were launched with --device cuda); drop --device or launch one process");
  }
  if (world.size() == 1) return {};
  return fmt::format(", {} ranks ({}{})", world.size(), ctx.comm().engine(), sync_bn ? ", sync BN" : "");
}

/// The global batch, min(--batch, N_train), checked to split evenly over the ranks before any work.
inline index_t global_batch(std::int64_t batch_option, index_t n_train, const Communicator& comm) {
  const index_t b = std::min<index_t>(batch_option, n_train);
  DISTILL_CHECK(b % comm.size() == 0, "--batch ", batch_option, " (used as min(B, N_train) = ", b,
                ") does not split evenly over ", comm.size(), " ranks; choose a multiple of the world size");
  return b;
}

}  // namespace distill::examples
