// Internal: the one dispatch mechanism. An area declares its kernel table type and,
// for each level it compiled, a function returning that level's table; `select`
// returns the table the kernels use now.
//
//   const FilterKernels& filter_kernels() {
//     static const keensight::detail::KernelTables<FilterKernels> tables("filters", {
//         {Isa::scalar, filter_kernels_scalar},
//   #ifdef KEENSIGHT_HAVE_AVX2
//         {Isa::avx2, filter_kernels_avx2},
//   #endif
//     });
//     return tables.select();
//   }
//
// select() picks, among the levels the area registered that are enabled now
// (keensight::enabled_isas(): the CPU's and build's levels, restricted by
// KEENSIGHT_ISA / set_isa to one level's fallback chain), the best one. The choice is
// cached per set of enabled levels (one atomic pointer each: lock-free, and two threads
// that race compute the same table), so a set_isa call re-selects without any
// notification. at(level) returns the table `level` falls back to along its chain
// (avx512_vnni -> avx512 -> avx2 -> scalar) whatever is enabled: what the tests use to
// run every level the CPU has.
//
// Tables are filled by member name (`t.l2_sq = l2_sq;`) in a function, and every
// table is checked complete (no null entry) the first time it is looked up.
// Why not C++20 designated initialisers (`.l2_sq = l2_sq_avx2`)? They would still let
// a member be left out silently (value-initialised to null, no diagnostic in gcc 12),
// they cannot express "the AVX2 table with these entries replaced" that the AVX-512
// tables are, and moving the public headers to C++20 would force it on every C++
// consumer of the installed package. Assignment by name reads the same and the
// completeness check catches the omission designated initialisers would not.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>

#include "keensight/core.hpp"

namespace keensight::detail {

// True when no function-pointer-sized word of `table` is zero: every entry of a table
// of function pointers is set. A table may also hold small non-zero integers (a GEMM
// tile's mr / nr), which fill a word together and are non-zero too.
template <class Table>
bool table_is_complete(const Table& table) {
  static_assert(std::is_trivially_copyable<Table>::value, "a kernel table is plain data");
  static_assert(sizeof(Table) % sizeof(void (*)()) == 0, "a kernel table is a list of function pointers");
  using Word = std::uintptr_t;
  static_assert(sizeof(Word) == sizeof(void (*)()), "function pointers are word-sized");
  std::array<Word, sizeof(Table) / sizeof(Word)> words{};
  std::memcpy(words.data(), &table, sizeof(Table));
  for (const Word w : words)
    if (w == 0) return false;
  return true;
}

[[noreturn]] void incomplete_kernel_table(const char* area, Isa level);  // throws std::logic_error

template <class Table>
class KernelTables {
 public:
  using Maker = const Table& (*)();

  // `area` names the tables in errors; `levels` lists (level, table function) pairs,
  // scalar among them.
  KernelTables(const char* area, std::initializer_list<std::pair<Isa, Maker>> levels) : area_(area) {
    for (const auto& entry : levels) makers_[static_cast<int>(entry.first)] = entry.second;
    if (!makers_[0]) incomplete_kernel_table(area_, Isa::scalar);
    for (auto& slot : cache_) slot.store(nullptr, std::memory_order_relaxed);
  }

  // The table of the best registered level that is enabled now.
  const Table& select() const {
    const std::uint32_t key = enabled_isas().bits & ((1u << kIsaCount) - 1);
    const Table* table = cache_[key].load(std::memory_order_acquire);
    if (!table) {
      table = &lookup(best_registered(IsaSet{key}));
      cache_[key].store(table, std::memory_order_release);
    }
    return *table;
  }

  // The table `level` falls back to along its chain (ignores what is enabled).
  const Table& at(Isa level) const { return lookup(level_for(level)); }

  // The level whose table at(level) returns.
  Isa level_for(Isa level) const { return best_registered(isa_chain(level)); }

  // Whether the area compiled a table for exactly `level`.
  bool registered(Isa level) const { return makers_[static_cast<int>(level)] != nullptr; }

 private:
  Isa best_registered(IsaSet allowed) const {
    for (int i = kIsaCount - 1; i > 0; --i)
      if (makers_[i] && allowed.contains(static_cast<Isa>(i))) return static_cast<Isa>(i);
    return Isa::scalar;
  }
  const Table& lookup(Isa level) const {
    const Table& table = makers_[static_cast<int>(level)]();
    if (!table_is_complete(table)) incomplete_kernel_table(area_, level);
    return table;
  }

  const char* area_;
  std::array<Maker, kIsaCount> makers_{};
  // One slot per set of enabled levels (2^kIsaCount of them).
  mutable std::array<std::atomic<const Table*>, (1u << kIsaCount)> cache_;
};

}  // namespace keensight::detail
