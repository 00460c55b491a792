// A shared library that is not a phalanx plugin: no handshake symbol.
extern "C" __attribute__((visibility("default"))) int not_a_plugin() { return 42; }
