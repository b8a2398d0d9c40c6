import Histogram

/// Percentiles of a latency histogram recorded in nanoseconds, reported in microseconds.
///
/// Concurrency: a plain value, `Sendable`.
public struct LatencySummary: Sendable, Equatable, Codable {
    public var count: UInt64
    public var minUs: Double
    public var meanUs: Double
    public var p50Us: Double
    public var p90Us: Double
    public var p99Us: Double
    public var p999Us: Double
    public var maxUs: Double

    public init(count: UInt64, minUs: Double, meanUs: Double, p50Us: Double, p90Us: Double, p99Us: Double, p999Us: Double, maxUs: Double) {
        self.count = count
        self.minUs = minUs
        self.meanUs = meanUs
        self.p50Us = p50Us
        self.p90Us = p90Us
        self.p99Us = p99Us
        self.p999Us = p999Us
        self.maxUs = maxUs
    }

    /// The summary of `histogram` (all zero when it is empty).
    public init(nanoseconds histogram: Histogram<UInt64>) {
        guard histogram.totalCount > 0 else {
            self.init(count: 0, minUs: 0, meanUs: 0, p50Us: 0, p90Us: 0, p99Us: 0, p999Us: 0, maxUs: 0)
            return
        }
        func us(_ nanoseconds: UInt64) -> Double { Self.rounded(Double(nanoseconds) / 1000) }
        self.init(
            count: histogram.totalCount, minUs: us(histogram.min), meanUs: Self.rounded(histogram.mean / 1000),
            p50Us: us(histogram.valueAtPercentile(50)), p90Us: us(histogram.valueAtPercentile(90)),
            p99Us: us(histogram.valueAtPercentile(99)), p999Us: us(histogram.valueAtPercentile(99.9)),
            maxUs: us(histogram.max))
    }

    /// A histogram for latencies in nanoseconds: 3 significant digits up to one hour.
    public static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000_000, numberOfSignificantValueDigits: .three)
    }

    static func rounded(_ microseconds: Double) -> Double {
        (microseconds * 10).rounded() / 10
    }

    /// `min 0.12 ms  p50 0.41 ms  p90 ...`, for the text summary.
    public var text: String {
        guard count > 0 else { return "no samples" }
        return "min \(Self.format(minUs))  p50 \(Self.format(p50Us))  p90 \(Self.format(p90Us))  "
            + "p99 \(Self.format(p99Us))  p99.9 \(Self.format(p999Us))  max \(Self.format(maxUs))  "
            + "mean \(Self.format(meanUs))  (\(count) sample\(count == 1 ? "" : "s"))"
    }

    /// A duration in the unit that suits it: `850 us`, `1.25 ms`, `3.20 s`.
    public static func format(_ microseconds: Double) -> String {
        if microseconds < 1000 { return "\(Int(microseconds.rounded())) us" }
        if microseconds < 1_000_000 { return fixed(microseconds / 1000, digits: 2) + " ms" }
        return fixed(microseconds / 1_000_000, digits: 2) + " s"
    }

    /// `value` with exactly `digits` decimals, without Foundation.
    static func fixed(_ value: Double, digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = Int64((abs(value) * scale).rounded())
        let whole = scaled / Int64(scale)
        var fraction = String(scaled % Int64(scale))
        while fraction.count < digits { fraction = "0" + fraction }
        return (value < 0 && scaled != 0 ? "-" : "") + "\(whole)" + (digits > 0 ? "." + fraction : "")
    }
}
