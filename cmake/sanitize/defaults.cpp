// Linked into every executable of a PHALANX_SANITIZE=ON build (cmake/sanitize/Sanitize.cmake). The
// sanitizer runtimes call these hooks at start-up for their default options, so `ctest`, a hand run of
// `build-asan/bin/phalanx` and every process the tests spawn behave the same without anyone setting
// ASAN_OPTIONS by hand. Options in the environment still win over these (they are parsed after).
//
// abort_on_error=1 everywhere: a finding ends the process with SIGABRT, never with exit code 1. Several
// tests expect `phalanx` to exit 1 (a run that failed) or 2 (bad config); a sanitizer exit code 1 would
// pass them silently, a signal fails them (the hostile suite checks for death by signal).

#ifndef PHALANX_SANITIZE_DIR
#error "PHALANX_SANITIZE_DIR must name cmake/sanitize (set by Sanitize.cmake)"
#endif

extern "C" {

const char* __asan_default_options() {
  return "abort_on_error=1:check_initialization_order=1:detect_leaks=1";
}

const char* __lsan_default_options() {
  return "suppressions=" PHALANX_SANITIZE_DIR "/lsan.supp:print_suppressions=0";
}

const char* __ubsan_default_options() {
  return "print_stacktrace=1:halt_on_error=1:abort_on_error=1:suppressions=" PHALANX_SANITIZE_DIR "/ubsan.supp";
}

}  // extern "C"
