// distill/core/tensor.hpp -- Tensor<T, Rank, Device>: dtype, rank and device are types; extents are runtime.
//
// * Contiguous, row-major. Sequences are [batch, channels, length]; embeddings [batch, dim].
// * Copying a Tensor shares its storage (like a shared_ptr); clone() makes a deep copy.
// * Owning tensors hold 64-byte-aligned storage; view(ptr, shape) wraps memory the caller owns.
// * Cpu tensors allocate themselves. Cuda tensors are allocated through a Context<Cuda> (kernels/), so the
//   type exists from day one and no global allocator is needed.
// This header is plain C++: no Eigen (see cpu/gemm.hpp for the Eigen maps), so nvcc-compiled code may use it.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>

#include "distill/core/device.hpp"
#include "distill/core/error.hpp"
#include "distill/core/shape.hpp"

namespace distill {

inline constexpr std::size_t kAlignment = 64;

namespace detail {
inline std::shared_ptr<void> host_allocate(std::size_t bytes) {
  const std::size_t rounded = ((bytes + kAlignment - 1) / kAlignment) * kAlignment;
  void* p = rounded ? std::aligned_alloc(kAlignment, rounded) : nullptr;
  if (rounded && !p) throw std::bad_alloc();
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}
}  // namespace detail

template <class T, std::size_t Rank, class D = Cpu>
class Tensor {
  static_assert(std::is_arithmetic_v<T>, "Tensor<T, Rank, Device>: T must be an arithmetic type such as float or double.");
  static_assert(is_device_v<D>, "Tensor<T, Rank, Device>: Device must be distill::Cpu or distill::Cuda.");

public:
  using value_type = T;
  using device_type = D;
  static constexpr std::size_t rank = Rank;

  Tensor() = default;

  /// Owning host tensor, uninitialised.
  explicit Tensor(const Shape<Rank>& shape)
    requires std::is_same_v<D, Cpu>
      : shape_(shape) {
    for (std::size_t i = 0; i < Rank; ++i)
      DISTILL_CHECK(shape[i] >= 0, "negative extent in shape ", to_string(shape));
    holder_ = detail::host_allocate(sizeof(T) * static_cast<std::size_t>(numel()));
    data_ = static_cast<T*>(holder_.get());
  }

  /// Tensor over storage `holder` (kept alive by this tensor) starting at `data`. Used by device allocators.
  Tensor(std::shared_ptr<void> holder, T* data, const Shape<Rank>& shape)
      : holder_(std::move(holder)), data_(data), shape_(shape) {}

  static Tensor zeros(const Shape<Rank>& shape)
    requires std::is_same_v<D, Cpu>
  {
    Tensor t(shape);
    t.fill(T(0));
    return t;
  }
  static Tensor full(const Shape<Rank>& shape, T v)
    requires std::is_same_v<D, Cpu>
  {
    Tensor t(shape);
    t.fill(v);
    return t;
  }
  /// Non-owning view over caller memory; the caller keeps it alive.
  static Tensor view(T* data, const Shape<Rank>& shape) { return Tensor(nullptr, data, shape); }

  // --- extents --------------------------------------------------------------------------------------------
  const Shape<Rank>& shape() const noexcept { return shape_; }
  index_t extent(std::size_t i) const noexcept { return shape_[i]; }
  index_t numel() const noexcept { return ::distill::numel(shape_); }
  bool empty() const noexcept { return data_ == nullptr && numel() == 0; }
  bool defined() const noexcept { return data_ != nullptr || (numel() == 0 && holder_ != nullptr); }
  bool owns_storage() const noexcept { return holder_ != nullptr; }
  Shape<Rank> strides() const noexcept { return contiguous_strides(shape_); }

  // --- data -----------------------------------------------------------------------------------------------
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + numel(); }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + numel(); }

  /// Element access (host tensors only), e.g. x(b, c, t). Not bounds-checked; use at() for checked access.
  template <class... I>
  T& operator()(I... idx) noexcept
    requires(sizeof...(I) == Rank && std::is_same_v<D, Cpu>)
  {
    return data_[offset(static_cast<index_t>(idx)...)];
  }
  template <class... I>
  const T& operator()(I... idx) const noexcept
    requires(sizeof...(I) == Rank && std::is_same_v<D, Cpu>)
  {
    return data_[offset(static_cast<index_t>(idx)...)];
  }
  template <class... I>
  T& at(I... idx)
    requires(sizeof...(I) == Rank && std::is_same_v<D, Cpu>)
  {
    const index_t ix[] = {static_cast<index_t>(idx)...};
    for (std::size_t i = 0; i < Rank; ++i)
      DISTILL_CHECK(ix[i] >= 0 && ix[i] < shape_[i], "index ", ix[i], " out of range for axis ", i,
                    " of a tensor of shape ", to_string(shape_));
    return data_[offset(static_cast<index_t>(idx)...)];
  }
  T& operator[](index_t i) noexcept
    requires std::is_same_v<D, Cpu>
  {
    return data_[i];
  }
  const T& operator[](index_t i) const noexcept
    requires std::is_same_v<D, Cpu>
  {
    return data_[i];
  }

  void fill(T v)
    requires std::is_same_v<D, Cpu>
  {
    std::fill(data_, data_ + numel(), v);
  }

  /// Deep copy (host).
  Tensor clone() const
    requires std::is_same_v<D, Cpu>
  {
    Tensor t(shape_);
    if (numel()) std::memcpy(t.data_, data_, sizeof(T) * static_cast<std::size_t>(numel()));
    return t;
  }
  /// Copy values from `src` of the same shape (host).
  void copy_from(const Tensor& src)
    requires std::is_same_v<D, Cpu>
  {
    DISTILL_CHECK(src.shape_ == shape_, "copy_from: source shape ", to_string(src.shape_),
                  " differs from destination shape ", to_string(shape_));
    if (numel()) std::memmove(data_, src.data_, sizeof(T) * static_cast<std::size_t>(numel()));
  }

  /// Same storage, new extents with the same number of elements.
  template <std::size_t R2>
  Tensor<T, R2, D> reshape(const Shape<R2>& s) const {
    DISTILL_CHECK(::distill::numel(s) == numel(), "reshape: cannot view a tensor of shape ", to_string(shape_),
                  " (", numel(), " elements) as ", to_string(s), " (", ::distill::numel(s), " elements)");
    return Tensor<T, R2, D>(holder_, data_, s);
  }

  /// Rows [begin, begin+count) along axis 0, sharing storage.
  Tensor slice0(index_t begin, index_t count) const
    requires(Rank >= 1)
  {
    DISTILL_CHECK(begin >= 0 && count >= 0 && begin + count <= shape_[0], "slice0: rows [", begin, ", ",
                  begin + count, ") out of range for a tensor of shape ", to_string(shape_));
    Shape<Rank> s = shape_;
    s[0] = count;
    const index_t inner = shape_[0] ? numel() / shape_[0] : 0;
    return Tensor(holder_, data_ + begin * inner, s);
  }

  const std::shared_ptr<void>& holder() const noexcept { return holder_; }

private:
  template <class... I>
  index_t offset(I... idx) const noexcept {
    const index_t ix[] = {idx...};
    index_t off = 0;
    for (std::size_t i = 0; i < Rank; ++i) off = off * shape_[i] + ix[i];
    return off;
  }

  std::shared_ptr<void> holder_;
  T* data_ = nullptr;
  Shape<Rank> shape_{};
};

template <class T, std::size_t Rank>
using HostTensor = Tensor<T, Rank, Cpu>;

/// Throws naming both shapes when they differ.
template <std::size_t R>
inline void check_same_shape(const Shape<R>& a, const Shape<R>& b, const char* what) {
  DISTILL_CHECK(a == b, what, ": shapes ", to_string(a), " and ", to_string(b), " differ");
}

}  // namespace distill
