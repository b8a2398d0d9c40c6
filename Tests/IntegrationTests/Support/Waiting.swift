import Synchronization

/// Runs `body` and returns its result, or throws ``TimeoutError`` after `seconds`.
///
/// Unlike a task group, this returns at the deadline even when `body` is stuck in a wait that
/// ignores cancellation (an `EventLoopFuture.get()`, say): `body` is cancelled and left behind.
func withTimeout<Value: Sendable>(
    seconds: Double,
    _ body: @escaping @Sendable () async throws -> Value
) async throws -> Value {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
        let gate = ResumeOnce(continuation)
        let timer = Task {
            try? await Task.sleep(for: .seconds(seconds))
            guard !Task.isCancelled else { return }
            gate.resume(with: .failure(TimeoutError(seconds: seconds)))
        }
        let work = Task {
            let result: Result<Value, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            timer.cancel()
            gate.resume(with: result)
        }
        gate.onTimeout = { work.cancel() }
    }
}

/// A deadline passed.
struct TimeoutError: Error, CustomStringConvertible {
    var seconds: Double
    var description: String { "timed out after \(seconds) s" }
}

/// Resumes a continuation exactly once, whichever of the work and the timer finishes first.
///
/// Concurrency: `Sendable`; a `Mutex` guards the continuation.
private final class ResumeOnce<Value: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Value, any Error>?
        var onTimeout: (@Sendable () -> Void)?
        var timedOut = false
    }

    private let state: Mutex<State>

    init(_ continuation: CheckedContinuation<Value, any Error>) {
        state = Mutex(State(continuation: continuation))
    }

    /// Called when the work task exists; runs at once if the timer already fired.
    var onTimeout: (@Sendable () -> Void)? {
        get { state.withLock { $0.onTimeout } }
        set {
            let fireNow = state.withLock { state -> Bool in
                state.onTimeout = newValue
                return state.timedOut
            }
            if fireNow { newValue?() }
        }
    }

    func resume(with result: Result<Value, any Error>) {
        let (continuation, cancelWork) = state.withLock { state -> (CheckedContinuation<Value, any Error>?, (@Sendable () -> Void)?) in
            guard let continuation = state.continuation else { return (nil, nil) }
            state.continuation = nil
            if case .failure(let error) = result, error is TimeoutError {
                state.timedOut = true
                return (continuation, state.onTimeout)
            }
            return (continuation, nil)
        }
        continuation?.resume(with: result)
        cancelWork?()
    }
}

/// Collects the elements of an `AsyncStream` as they arrive, so a test can wait for them with a
/// deadline, read them in order, and check that nothing more came.
///
/// Concurrency: `Sendable`; a `Mutex` guards the collected elements. Reading (``next(timeout:)``
/// and friends) keeps one cursor, so use one reader per inbox.
final class Inbox<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var cursor = 0
        var finished = false
    }

    private let state = Mutex(State())

    init(_ stream: AsyncStream<Element>) {
        Task { [weak self] in
            for await element in stream {
                guard let self else { return }
                self.state.withLock { $0.items.append(element) }
            }
            self?.state.withLock { $0.finished = true }
        }
    }

    /// Everything received so far, read or not.
    var all: [Element] { state.withLock { $0.items } }

    /// True once the stream has finished (for a client: its connection closed).
    var isFinished: Bool { state.withLock { $0.finished } }

    /// The next unread element; throws when none arrives within `timeout` seconds or the stream ends.
    func next(timeout: Double = 5) async throws -> Element {
        let arrived = await waitUntil(timeout: timeout) { $0.items.count > $0.cursor || $0.finished }
        return try state.withLock { state -> Element in
            guard state.items.count > state.cursor else {
                let why = arrived ? "the stream finished" : "nothing arrived within \(timeout) s"
                throw IntegrationError("waiting for element #\(state.cursor + 1): \(why)")
            }
            state.cursor += 1
            return state.items[state.cursor - 1]
        }
    }

    /// The next `count` unread elements.
    func take(_ count: Int, timeout: Double = 10) async throws -> [Element] {
        let arrived = await waitUntil(timeout: timeout) { $0.items.count >= $0.cursor + count || $0.finished }
        return try state.withLock { state -> [Element] in
            let available = state.items.count - state.cursor
            guard available >= count else {
                let why = arrived ? "the stream finished" : "timed out after \(timeout) s"
                throw IntegrationError("waiting for \(count) elements, got \(available): \(why)")
            }
            defer { state.cursor += count }
            return Array(state.items[state.cursor..<state.cursor + count])
        }
    }

    /// The unread elements before the first one matching `isFence`; the fence is consumed too.
    func takeUntil(timeout: Double = 10, _ isFence: @escaping @Sendable (Element) -> Bool) async throws -> [Element] {
        let arrived = await waitUntil(timeout: timeout) { state in
            state.finished || state.items[state.cursor...].contains(where: isFence)
        }
        return try state.withLock { state -> [Element] in
            guard let index = state.items[state.cursor...].firstIndex(where: isFence) else {
                let why = arrived ? "the stream finished" : "timed out after \(timeout) s"
                throw IntegrationError("waiting for the fence after \(state.items.count - state.cursor) elements: \(why)")
            }
            defer { state.cursor = index + 1 }
            return Array(state.items[state.cursor..<index])
        }
    }

    /// Waits `seconds`, then returns the elements that arrived unread (normally none).
    func unexpected(within seconds: Double) async -> [Element] {
        try? await Task.sleep(for: .seconds(seconds))
        return state.withLock { Array($0.items[$0.cursor...]) }
    }

    /// Waits until the stream finishes; false if it is still open after `timeout` seconds.
    func waitFinished(timeout: Double = 5) async -> Bool {
        await waitUntil(timeout: timeout) { $0.finished }
    }

    private func waitUntil(timeout: Double, _ condition: (State) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while true {
            if state.withLock({ condition($0) }) { return true }
            if ContinuousClock.now >= deadline || Task.isCancelled { return false }
            try? await Task.sleep(for: .milliseconds(2))
        }
    }
}
