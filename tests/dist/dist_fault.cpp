// A rank that dies or stalls must end the job with an error naming it, not hang the others (tests/dist/
// fault_check.sh runs this under mpirun and checks the exit status, the time and the messages).
//   dist_fault exit    rank 1 exits (status 7) before the collective; rank 0 waits in an all_reduce
//   dist_fault stall   rank 1 sleeps instead of joining; rank 0's all_reduce times out ($DISTILL_COMM_TIMEOUT)
//   dist_fault ok      both ranks all-reduce and exit 0 (the control)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/dist/world.hpp"

int main(int argc, char** argv) {
  distill::dist::World world(&argc, &argv);
  const std::string mode = argc > 1 ? argv[1] : "ok";
  try {
    distill::Context<distill::Cpu> ctx(1, 0);
    ctx.set_communicator(world.comm());
    std::vector<double> v(1024, 1.0);
    ctx.comm().all_reduce(std::span<double>(v));  // everybody alive: the first collective completes
    if (world.rank() == 1 && mode == "exit") std::_Exit(7);
    if (world.rank() == 1 && mode == "stall") std::this_thread::sleep_for(std::chrono::seconds(600));
    ctx.comm().all_reduce(std::span<double>(v));
    std::printf("%s: sum %g\n", ctx.comm().describe().c_str(), v[0]);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_fault (%s): %s\n", world.comm()->describe().c_str(), e.what());
    world.abort(1);
  }
}
