// Symbol visibility for the SDK. Plugins are built with hidden visibility, so the SDK marks what must be
// shared across library boundaries (its classes, their vtables and type_info, the error type) as default.
#pragma once

#define PHALANX_EXPORT __attribute__((visibility("default")))
