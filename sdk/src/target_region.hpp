// Marks a region of a source file whose functions are compiled for one more instruction set ("avx2",
// "avx2,fma", "avx512f") whatever the build's -march; callers check the CPU at run time before calling them.
// Clang ignores GCC's target pragma, hence its own form (the fuzz build and any clang build).
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
