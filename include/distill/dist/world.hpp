// distill/dist/world.hpp -- a program's ranks, from how it was launched: `mpirun -np N prog` or just `prog`.
//
// snippet: fragment; includes: distill/core/context.hpp; given: int argc = 1; char** argv = nullptr; Context<Cpu> ctx;
//   dist::World world(&argc, &argv);      // MPI when launched by mpirun/mpiexec (and built with distill::mpi)
//   ctx.set_communicator(world.comm());   // the single process otherwise: everything below runs unchanged
//
// A launcher is recognised by its environment (OMPI_COMM_WORLD_SIZE: Open MPI; PMI_SIZE: MPICH / Hydra / Slurm's
// PMI; MV2_COMM_WORLD_SIZE: MVAPICH). A program launched with more than one rank but built without MPI stops with a
// sentence saying so (rather than N copies training alone). abort(code) ends the whole job: after an error on one
// rank, the others may be waiting in a collective.
#pragma once

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "distill/core/communicator.hpp"
#include "distill/core/error.hpp"
#ifdef DISTILL_WITH_MPI
#include "distill/dist/mpi.hpp"
#endif

namespace distill::dist {

/// The world size a launcher announced in the environment, or 0 when the program was not launched by one.
inline int launcher_world_size() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"}) {
    const char* v = std::getenv(var);
    if (v && *v) return std::atoi(v);
  }
  return 0;
}

/// This process's rank as the launcher announced it (0 when not launched by one): known before MPI starts, e.g. to
/// print a command-line error once.
inline int launcher_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"}) {
    const char* v = std::getenv(var);
    if (v && *v) return std::atoi(v);
  }
  return 0;
}

/// True when this build can run MPI ranks (it links distill::mpi).
constexpr bool built_with_mpi() {
#ifdef DISTILL_WITH_MPI
  return true;
#else
  return false;
#endif
}

class World {
public:
  World(int* argc = nullptr, char*** argv = nullptr) {
    const int announced = launcher_world_size();
#ifdef DISTILL_WITH_MPI
    if (announced > 0) {
      mpi_.emplace(argc, argv);
      comm_ = mpi_->comm();
      return;
    }
#else
    (void)argc;
    (void)argv;
    DISTILL_CHECK(announced <= 1, "this program was launched with ", announced,
                  " ranks (mpirun / mpiexec) but built without MPI: configure with libopenmpi-dev installed so that "
                  "distill::mpi is found (cmake reports 'MPI : found'), or run it without mpirun");
#endif
    comm_ = std::make_shared<SingleProcess>();
  }

  const std::shared_ptr<Communicator>& comm() const noexcept { return comm_; }
  int rank() const noexcept { return comm_->rank(); }
  int size() const noexcept { return comm_->size(); }
  bool is_root() const noexcept { return rank() == 0; }

  /// Ends every rank of the job with `code` (MPI_Abort), or this process (std::exit) when it is alone.
  [[noreturn]] void abort(int code) const {
#ifdef DISTILL_WITH_MPI
    if (mpi_ && size() > 1) mpi_->abort(code);
#endif
    std::exit(code);
  }

private:
#ifdef DISTILL_WITH_MPI
  std::optional<MpiSession> mpi_;
#endif
  std::shared_ptr<Communicator> comm_;
};

}  // namespace distill::dist
