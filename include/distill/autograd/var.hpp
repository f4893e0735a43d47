// distill/autograd/var.hpp -- reverse-mode autograd over tensors.
//
// A Var<T, Rank, Device> is a shared handle to a graph node holding a value tensor, a gradient tensor
// (allocated on first use) and, for op results, the closure that propagates its gradient to its inputs.
//
// Gradient convention (the same for every op, CPU and CUDA):
//   * gradients ACCUMULATE (+=) into inputs: a Var used twice (two augmented views through one shared
//     encoder) receives the sum; leaves keep accumulating across backward() calls until zero_grad().
//   * an op's backward only computes the gradients of inputs with requires_grad(); frozen parameters (a
//     teacher) and detached Vars cost nothing.
//   * backward() runs the graph once in reverse topological order and then releases it (closures and saved
//     tensors freed, intermediate gradients dropped), unless retain_graph is asked for.
//   * under NoGradGuard(ctx) no graph is recorded at all.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "distill/core/context.hpp"
#include "distill/backend/device_ops.hpp"
#include "distill/core/tensor.hpp"

namespace distill {

/// Type-erased graph node (values of any dtype/rank/device can feed one loss).
class Node {
public:
  virtual ~Node() = default;
  std::vector<std::shared_ptr<Node>> parents;  // inputs of the op that made this node
  std::function<void()> backward_fn;            // empty for leaves and released nodes
  const char* op = "leaf";
  bool requires_grad = false;
  bool is_leaf = true;
  virtual bool has_grad() const = 0;
  virtual void drop_grad() = 0;
  void release() {
    parents.clear();
    backward_fn = nullptr;
  }
};

template <class T, std::size_t R, class D>
class VarNode final : public Node {
public:
  VarNode(Context<D>& c, Tensor<T, R, D> v) : ctx(&c), value(std::move(v)) {}
  Context<D>* ctx;
  Tensor<T, R, D> value;
  Tensor<T, R, D> grad;
  bool has_grad() const override { return grad.defined(); }
  void drop_grad() override { grad = Tensor<T, R, D>(); }
  Tensor<T, R, D>& grad_buffer() {
    if (!grad.defined()) grad = DeviceOps<D>::template zeros<T, R>(*ctx, value.shape());
    return grad;
  }
};

template <class T, std::size_t R, class D = Cpu>
class Var {
public:
  using value_type = T;
  using device_type = D;
  using tensor_type = Tensor<T, R, D>;
  static constexpr std::size_t rank = R;

  Var() = default;
  /// A leaf. Parameters pass requires_grad = true; inputs and targets leave it false.
  Var(Context<D>& ctx, tensor_type value, bool requires_grad = false)
      : node_(std::make_shared<VarNode<T, R, D>>(ctx, std::move(value))) {
    node_->requires_grad = requires_grad;
  }

  bool defined() const noexcept { return node_ != nullptr; }
  const tensor_type& value() const { return checked()->value; }
  tensor_type& value() { return checked()->value; }
  const Shape<R>& shape() const { return checked()->value.shape(); }
  index_t extent(std::size_t i) const { return shape()[i]; }
  index_t numel() const { return value().numel(); }
  Context<D>& ctx() const { return *checked()->ctx; }

  bool requires_grad() const { return checked()->requires_grad; }
  /// Only for leaves: turn gradient tracking on or off (freeze a teacher, unfreeze for fine-tuning).
  void set_requires_grad(bool on) {
    DISTILL_CHECK(checked()->is_leaf, "set_requires_grad: only leaves (parameters, inputs) can be (un)frozen; ",
                  "use detach() on the result of op '", node_->op, "'");
    node_->requires_grad = on;
  }
  bool is_leaf() const { return checked()->is_leaf; }
  const char* op() const { return checked()->op; }

  bool has_grad() const { return checked()->has_grad(); }
  /// The accumulated gradient. Throws if none was computed.
  const tensor_type& grad() const {
    DISTILL_CHECK(has_grad(), "grad(): this Var (op '", node_->op, "', shape ", to_string(shape()),
                  ") has no gradient; was backward() called and does it require grad?");
    return node_->grad;
  }
  tensor_type& grad() {
    DISTILL_CHECK(has_grad(), "grad(): this Var (op '", node_->op, "', shape ", to_string(shape()),
                  ") has no gradient; was backward() called and does it require grad?");
    return node_->grad;
  }
  /// For op backward closures: the gradient buffer, zero-initialised on first use.
  tensor_type& grad_buffer() const { return checked()->grad_buffer(); }
  void zero_grad() {
    if (checked()->has_grad()) DeviceOps<D>::fill(*node_->ctx, node_->grad, T(0));
  }
  void drop_grad() { checked()->drop_grad(); }

  /// A new leaf sharing this value, cut from the graph (stop-gradient).
  Var detach() const { return Var(ctx(), value(), false); }

  /// Backpropagate from this Var. A scalar (numel 1) is seeded with 1; any other shape needs `seed`.
  void backward(bool retain_graph = false) {
    DISTILL_CHECK(numel() == 1, "backward(): the output has shape ", to_string(shape()),
                  "; only a single-element loss can be seeded implicitly (pass a seed gradient)");
    tensor_type seed = DeviceOps<D>::template zeros<T, R>(ctx(), shape());
    DeviceOps<D>::fill(ctx(), seed, T(1));
    backward(seed, retain_graph);
  }
  void backward(const tensor_type& seed, bool retain_graph = false) {
    check_same_shape(seed.shape(), shape(), "backward(seed)");
    DISTILL_CHECK(requires_grad(), "backward(): the output does not require grad (no parameter or input with ",
                  "requires_grad reaches it, or it was computed under NoGradGuard)");
    DeviceOps<D>::accumulate(ctx(), grad_buffer(), seed);
    run_backward(node_, retain_graph);
  }

  /// Internal: the node (for ops and the engine).
  const std::shared_ptr<VarNode<T, R, D>>& node() const { return node_; }
  explicit Var(std::shared_ptr<VarNode<T, R, D>> n) : node_(std::move(n)) {}

private:
  VarNode<T, R, D>* checked() const {
    DISTILL_CHECK(node_ != nullptr, "use of an undefined (default-constructed) Var");
    return node_.get();
  }

  static void run_backward(const std::shared_ptr<Node>& root, bool retain_graph) {
    // Iterative post-order DFS -> topological order (inputs before outputs). `order` holds owning pointers:
    // releasing a node's closure below may drop the last other reference to one of its inputs.
    std::vector<std::shared_ptr<Node>> order;
    std::unordered_set<Node*> seen;
    std::vector<std::pair<std::shared_ptr<Node>, std::size_t>> stack{{root, 0}};
    seen.insert(root.get());
    while (!stack.empty()) {
      auto& [n, i] = stack.back();
      if (i < n->parents.size()) {
        std::shared_ptr<Node> p = n->parents[i++];
        if (p->requires_grad && !seen.count(p.get())) {
          seen.insert(p.get());
          stack.emplace_back(std::move(p), 0);
        }
      } else {
        order.push_back(std::move(n));
        stack.pop_back();
      }
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* n = it->get();
      if (n->backward_fn && n->has_grad()) n->backward_fn();
      if (!n->is_leaf) {
        n->drop_grad();  // consumed: intermediate gradients are not kept (as in PyTorch)
        if (!retain_graph) n->release();
      }
    }
  }

  std::shared_ptr<VarNode<T, R, D>> node_;
};

/// The value of a scalar Var on the host, as a double (like PyTorch's `.item()`): a read of one element on the Cpu
/// device; on the Cuda device a copy that waits for the context's stream.
template <class T>
double item(const Var<T, 0, Cpu>& v) {
  return double(v.value()[0]);
}
template <class T, class D>
double item(const Var<T, 0, D>& v) {
  return double(to_host(v.ctx(), v.value())[0]);
}

namespace autograd {

/// True if any of the Vars requires grad and the context records.
template <class Ctx, class... Vs>
bool should_record(const Ctx& ctx, const Vs&... inputs) {
  return ctx.grad_enabled() && (false || ... || inputs.requires_grad());
}

/// Make the result of an op. `backward(const Tensor& grad_out)` accumulates into the inputs' grad_buffer()s;
/// it is kept only when recording (grad enabled and some input requires grad), so inference builds no graph.
template <class T, std::size_t R, class D, class Backward, class... Inputs>
Var<T, R, D> make_result(const char* op, Context<D>& ctx, Tensor<T, R, D> value, Backward&& backward,
                         const Inputs&... inputs) {
  auto node = std::make_shared<VarNode<T, R, D>>(ctx, std::move(value));
  node->op = op;
  if (should_record(ctx, inputs...)) {
    node->is_leaf = false;
    node->requires_grad = true;
    (node->parents.push_back(inputs.node()), ...);
    node->backward_fn = [raw = node.get(), bw = std::forward<Backward>(backward)]() mutable { bw(raw->grad); };
  }
  return Var<T, R, D>(std::move(node));
}

}  // namespace autograd

/// A trainable parameter: a leaf with requires_grad.
template <class T, std::size_t R, class D>
Var<T, R, D> parameter(Context<D>& ctx, Tensor<T, R, D> value) {
  return Var<T, R, D>(ctx, std::move(value), true);
}
/// A constant input (no gradient).
template <class T, std::size_t R, class D>
Var<T, R, D> constant(Context<D>& ctx, Tensor<T, R, D> value) {
  return Var<T, R, D>(ctx, std::move(value), false);
}

}  // namespace distill
