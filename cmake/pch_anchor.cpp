// The one source of the object library that compiles the built-in plugins' precompiled header
// (cmake/Precompiled.cmake); it has no code of its own.
