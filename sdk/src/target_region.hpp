// Marks a region of a source file whose functions are compiled for one more instruction set ("avx2",
// "avx2,fma", "avx512f") whatever the build's -march; callers check the CPU at run time (cpu::has_*, below)
// before calling them. Clang ignores GCC's target pragma, hence its own form (the fuzz build and any clang
// build). One header for all the SDK's kernel files, which the fuzz build compiles in one unity batch.
//
//   PHALANX_TARGET_BEGIN("avx512f")
//   namespace avx512 { ... }
//   PHALANX_TARGET_END
#pragma once

#define PHALANX_PRAGMA_TEXT(x) #x
#define PHALANX_PRAGMA(x) _Pragma(PHALANX_PRAGMA_TEXT(x))

#if defined(__clang__)
#define PHALANX_TARGET_BEGIN(isa) PHALANX_PRAGMA(clang attribute push(__attribute__((target(isa))), apply_to = function))
#define PHALANX_TARGET_END _Pragma("clang attribute pop")
#else
#define PHALANX_TARGET_BEGIN(isa) _Pragma("GCC push_options") PHALANX_PRAGMA(GCC target(isa))
#define PHALANX_TARGET_END _Pragma("GCC pop_options")
#endif

// The run-time checks; false on other architectures (interfaces.cpp builds there too).
namespace phalanx::cpu {

#if defined(__x86_64__)
inline bool has_avx2() {
  static const bool yes = (__builtin_cpu_init(), __builtin_cpu_supports("avx2"));
  return yes;
}

inline bool has_fma() {
  static const bool yes = (__builtin_cpu_init(), __builtin_cpu_supports("fma"));
  return yes;
}

inline bool has_avx512f() {
  static const bool yes = (__builtin_cpu_init(), __builtin_cpu_supports("avx512f"));
  return yes;
}
#else
inline bool has_avx2() { return false; }
inline bool has_fma() { return false; }
inline bool has_avx512f() { return false; }
#endif

}  // namespace phalanx::cpu
