// distill/nn/nn.hpp -- every nn module: Conv1d, BatchNorm1d, Linear, the stateless layers, Sequential,
// Residual / ResNetBlock1D, ProjectionHead.
#pragma once

#include "distill/nn/batchnorm.hpp"
#include "distill/nn/conv1d.hpp"
#include "distill/nn/heads.hpp"
#include "distill/nn/layers.hpp"
#include "distill/nn/linear.hpp"
#include "distill/nn/module.hpp"
#include "distill/nn/residual.hpp"
#include "distill/nn/sequential.hpp"
