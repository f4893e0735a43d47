// distill/nn/heads.hpp -- the projection head of SimCLR / MoCo v2 / DCRLS: Linear -> ReLU -> Linear -> L2.
//
// snippet: fragment; given: Context<Cpu> ctx;
//   nn::ProjectionHead<128, 128, 128> head{ctx};   // [B, 128] -> L2-normalised [B, 128]
//
// Parameter names "0.weight", "0.bias", "2.weight", "2.bias" (a Sequential).
#pragma once

#include "distill/nn/layers.hpp"
#include "distill/nn/linear.hpp"
#include "distill/nn/sequential.hpp"

namespace distill::nn {

template <index_t In, index_t Hidden, index_t Out, class T = float, class D = Cpu>
using ProjectionHead =
    Sequential<Linear<In, Hidden, LinearConfig{}, T, D>, ReLU, Linear<Hidden, Out, LinearConfig{}, T, D>, L2Normalize>;

/// The same head without the final normalisation (for losses that normalise themselves).
template <index_t In, index_t Hidden, index_t Out, class T = float, class D = Cpu>
using MLPHead = Sequential<Linear<In, Hidden, LinearConfig{}, T, D>, ReLU, Linear<Hidden, Out, LinearConfig{}, T, D>>;

}  // namespace distill::nn
