// The fuzzer's main: libFuzzer's driver parses the command line (corpus folders, -max_total_time,
// -dict, ...) and calls the entry point of FuzzDecoder.swift on every input.

import CLibFuzzerDriver

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzDecoderTestOneInput(data, size) })
