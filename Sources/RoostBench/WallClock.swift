#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Nanoseconds since the Unix epoch from `CLOCK_REALTIME` (a vDSO call, no allocation): the
/// clock of the send times in ``BenchPayloadHeader``, shared by processes on one host.
///
/// Concurrency: stateless.
public enum WallClock {
    @inline(__always)
    public static func nanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }
}
