// distill/losses/losses.hpp -- the fused loss family (namespace distill::losses):
//   contrastive.hpp   nt_xent, info_nce_cross, moco_info_nce (+ queue.hpp: Queue), supcon, supcon_cross
//   distillation.hpp  soft_contrastive_kl, kd_kl, normalized_mse_sum
//   disco.hpp         disco_loss (MoCo-v2 or in-batch InfoNCE + the balanced embedding distillation), disco_balance
//   naive.hpp         the same losses composed from the core ops (the test oracle and benchmark baseline)
#pragma once

#include "distill/losses/contrastive.hpp"
#include "distill/losses/disco.hpp"
#include "distill/losses/distillation.hpp"
#include "distill/losses/mcl.hpp"
#include "distill/losses/queue.hpp"
