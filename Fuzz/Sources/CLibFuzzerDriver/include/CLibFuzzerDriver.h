#ifndef C_LIBFUZZER_DRIVER_H
#define C_LIBFUZZER_DRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, FuzzerInterface.h). It parses the libFuzzer command line
/// and runs `callback` on every input. The definition comes from the libFuzzer runtime that
/// `-sanitize=fuzzer` links in.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
