// distill/optim/param_list.hpp -- type-erased references to trainable parameters of any rank.
//
// An optimizer updates Vars of mixed ranks (a conv weight [Cout, Cin, K], a bias [Cout], a BN scale [C]). A
// ParamRef<T, D> wraps one Var<T, R, D> of any rank R: it keeps the Var's graph node alive and reaches its
// value and gradient storage through a small per-rank table of function pointers (no std::function, no
// per-element indirection: an optimizer asks once per parameter for a data pointer and an element count).
//
// A ParamList<T, D> is an ordered list of ParamRefs without duplicates (a Var shared by two modules, or a
// module passed twice, is stepped once, like torch.nn.Module.parameters()). `params(...)` builds one from any
// mix of Vars and modules (anything with `for_each_parameter(f)`, f(std::string_view name, auto& var)).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "distill/autograd/var.hpp"

namespace distill {

namespace param_detail {
template <class T, class D>
struct ParamOps {
  T* (*value)(Node*);
  T* (*grad)(Node*);  // nullptr when the node has no gradient yet
  index_t (*numel)(Node*);
  std::vector<index_t> (*shape)(Node*);
  void (*zero_grad)(Node*);
  Context<D>& (*ctx)(Node*);
};

template <class T, std::size_t R, class D>
inline constexpr ParamOps<T, D> param_ops_for{
    [](Node* n) -> T* { return static_cast<VarNode<T, R, D>*>(n)->value.data(); },
    [](Node* n) -> T* {
      auto* v = static_cast<VarNode<T, R, D>*>(n);
      return v->grad.defined() ? v->grad.data() : nullptr;
    },
    [](Node* n) -> index_t { return static_cast<VarNode<T, R, D>*>(n)->value.numel(); },
    [](Node* n) -> std::vector<index_t> {
      const auto& s = static_cast<VarNode<T, R, D>*>(n)->value.shape();
      return std::vector<index_t>(s.begin(), s.end());
    },
    [](Node* n) {
      auto* v = static_cast<VarNode<T, R, D>*>(n);
      if (v->grad.defined()) DeviceOps<D>::fill(*v->ctx, v->grad, T(0));
    },
    [](Node* n) -> Context<D>& { return *static_cast<VarNode<T, R, D>*>(n)->ctx; },
};
}  // namespace param_detail

/// One trainable parameter of any rank, type-erased over the rank. Cheap to copy (shares the Var's node).
template <class T, class D = Cpu>
class ParamRef {
public:
  using value_type = T;
  using device_type = D;

  template <std::size_t R>
  ParamRef(const Var<T, R, D>& v, std::string name = {})  // NOLINT(google-explicit-constructor)
      : node_(v.node()), ops_(&param_detail::param_ops_for<T, R, D>), rank_(R), name_(std::move(name)) {
    DISTILL_CHECK(node_ != nullptr, "ParamRef: parameter '", name_, "' is an undefined (default-constructed) Var");
  }

  const std::string& name() const noexcept { return name_; }
  std::size_t rank() const noexcept { return rank_; }
  index_t numel() const { return ops_->numel(node_.get()); }
  std::vector<index_t> shape() const { return ops_->shape(node_.get()); }
  std::string shape_string() const {
    std::string s = "[";
    const auto sh = shape();
    for (std::size_t i = 0; i < sh.size(); ++i) s += (i ? ", " : "") + std::to_string(sh[i]);
    return s + "]";
  }

  /// Value storage (contiguous, numel() elements).
  T* data() const { return ops_->value(node_.get()); }
  bool has_grad() const { return node_->has_grad(); }
  /// Gradient storage, or nullptr when no gradient was computed (frozen, or unused in the last backward).
  T* grad() const { return ops_->grad(node_.get()); }
  bool requires_grad() const noexcept { return node_->requires_grad; }
  void set_requires_grad(bool on) {
    DISTILL_CHECK(node_->is_leaf, "set_requires_grad: parameter '", name_, "' is not a leaf Var");
    node_->requires_grad = on;
  }
  /// Fill the gradient with zeros (keeps the buffer), or drop it (PyTorch's set_to_none).
  void zero_grad() const { ops_->zero_grad(node_.get()); }
  void drop_grad() const { node_->drop_grad(); }
  /// The context the parameter was created with (threads for the update, device allocation of state).
  Context<D>& ctx() const { return ops_->ctx(node_.get()); }

  /// The graph node: identity of the parameter (two ParamRefs to one Var compare equal).
  Node* node() const noexcept { return node_.get(); }
  friend bool operator==(const ParamRef& a, const ParamRef& b) noexcept { return a.node_ == b.node_; }

private:
  std::shared_ptr<Node> node_;
  const param_detail::ParamOps<T, D>* ops_;
  std::size_t rank_;
  std::string name_;
};

/// An ordered, duplicate-free list of parameters.
template <class T, class D = Cpu>
class ParamList {
public:
  using value_type = T;
  using device_type = D;

  ParamList() = default;

  /// Append one Var (ignored if this Var is already in the list). Returns true if it was added.
  template <std::size_t R>
  bool add(const Var<T, R, D>& v, std::string name = {}) {
    return add(ParamRef<T, D>(v, std::move(name)));
  }
  bool add(ParamRef<T, D> p) {
    if (!seen_.insert(p.node()).second) return false;
    refs_.push_back(std::move(p));
    return true;
  }
  /// Append every parameter of a module (anything with for_each_parameter), names prefixed by `prefix`.
  template <class Module>
  void add_module(Module& m, std::string_view prefix = {}) {
    m.for_each_parameter([&](std::string_view name, auto& var) {
      using V = std::remove_cvref_t<decltype(var)>;
      static_assert(std::is_same_v<typename V::value_type, T> && std::is_same_v<typename V::device_type, D>,
                    "ParamList: a module's parameter has a different dtype or device than the list; collect "
                    "float and double (or Cpu and Cuda) parameters into separate lists.");
      std::string full(prefix);
      if (!full.empty() && !name.empty()) full += '.';
      full += name;
      add(var, std::move(full));
    });
  }
  void append(const ParamList& other) {
    for (const auto& p : other) add(p);
  }

  std::size_t size() const noexcept { return refs_.size(); }
  bool empty() const noexcept { return refs_.empty(); }
  const ParamRef<T, D>& operator[](std::size_t i) const { return refs_[i]; }
  auto begin() const noexcept { return refs_.begin(); }
  auto end() const noexcept { return refs_.end(); }

  /// Total number of scalar parameters.
  index_t numel() const {
    index_t n = 0;
    for (const auto& p : refs_) n += p.numel();
    return n;
  }
  void zero_grad(bool set_to_none = false) const {
    for (const auto& p : refs_) set_to_none ? p.drop_grad() : p.zero_grad();
  }
  void set_requires_grad(bool on) const {
    for (auto p : refs_) p.set_requires_grad(on);
  }

private:
  std::vector<ParamRef<T, D>> refs_;
  std::unordered_set<Node*> seen_;
};

// ------------------------------------------------------------------------------------------------------------
// params(...): collect Vars and modules into one ParamList.
// ------------------------------------------------------------------------------------------------------------
namespace param_detail {
template <class X>
struct is_var : std::false_type {};
template <class T, std::size_t R, class D>
struct is_var<Var<T, R, D>> : std::true_type {};

template <class X, class = void>
struct value_of {
  using type = void;
  using device = void;
};
template <class X>
struct value_of<X, std::void_t<typename X::value_type, typename X::device_type>> {
  using type = typename X::value_type;
  using device = typename X::device_type;
};

template <class... Xs>
struct first_typed;
template <>
struct first_typed<> {
  using type = float;  // nothing typed: an empty list of float parameters
  using device = Cpu;
};
template <class X, class... Xs>
struct first_typed<X, Xs...> {
  using V = value_of<std::remove_cvref_t<X>>;
  using type = std::conditional_t<std::is_void_v<typename V::type>, typename first_typed<Xs...>::type,
                                  typename V::type>;
  using device = std::conditional_t<std::is_void_v<typename V::device>, typename first_typed<Xs...>::device,
                                    typename V::device>;
};

template <class T, class D, class X>
void add_any(ParamList<T, D>& list, X& x) {
  using U = std::remove_cvref_t<X>;
  if constexpr (is_var<U>::value) {
    list.add(x);
  } else if constexpr (std::is_same_v<U, ParamList<T, D>>) {
    list.append(x);
  } else {
    list.add_module(x);
  }
}
}  // namespace param_detail

/// All parameters of the given modules and Vars, in order, each once. dtype and device come from the first
/// argument that has them (modules expose value_type/device_type); stateless modules contribute nothing.
///   optim::Adam opt{params(encoder, head), {.lr = 1e-3}};
template <class... Xs>
auto params(Xs&... xs) {
  using First = param_detail::first_typed<Xs...>;
  ParamList<typename First::type, typename First::device> list;
  (param_detail::add_any(list, xs), ...);
  return list;
}

}  // namespace distill
