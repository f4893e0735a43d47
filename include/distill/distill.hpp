// distill/distill.hpp -- umbrella header. Finer headers (distill/core/..., distill/ops/...) build faster.
#pragma once

#include "distill/core/context.hpp"
#include "distill/core/error.hpp"
#include "distill/core/rng.hpp"
#include "distill/core/tensor.hpp"
#include "distill/autograd/var.hpp"
#include "distill/autograd/grad_check.hpp"
#include "distill/ops/elementwise.hpp"
#include "distill/ops/reduce.hpp"
