import MQTTCodec
import NIOCore
import RoostClient

extension BenchRun {
    /// Connects `count` clients at the configured connect rate (unpaced: at most
    /// ``BenchConfiguration/maximumConcurrentConnects`` handshakes at once), client `i` on event
    /// loop `(i + loopOffset) % threads`. `configure` adjusts each client's configuration;
    /// `afterConnect` runs once it is connected (a subscription) and counts in its connect time.
    ///
    /// - Returns: the clients that connected, by index; failures are counted and noted.
    func connectAll(
        count: Int, role: String, loopOffset: Int,
        configure: @escaping @Sendable (Int, any EventLoop, inout MQTTClientConfiguration) -> Void = { _, _, _ in },
        afterConnect: @escaping @Sendable (Int, MQTTClient) async throws -> Void = { _, _ in }
    ) async -> [(index: Int, client: MQTTClient)] {
        let start = clock.now
        let rate = configuration.connectRate
        let concurrency = max(1, configuration.maximumConcurrentConnects)
        return await withTaskGroup(of: (Int, MQTTClient?).self) { group in
            var connected: [(index: Int, client: MQTTClient)] = []
            connected.reserveCapacity(count)
            var active = 0
            func collect(_ result: (Int, MQTTClient?)) {
                active -= 1
                if let client = result.1 { connected.append((result.0, client)) }
            }
            for index in 0..<count {
                if runner.isStopping { break }
                if rate > 0 {
                    let due = start + .seconds(Double(index) / rate)
                    if clock.now < due { try? await Task.sleep(until: due, clock: clock) }
                }
                while active >= concurrency, let result = await group.next() { collect(result) }
                active += 1
                let loop = loops[(index + loopOffset) % loops.count]
                var clientConfiguration = clientConfiguration(role: role, index: index)
                configure(index, loop, &clientConfiguration)
                let client = MQTTClient(configuration: clientConfiguration, eventLoopGroup: loop)
                group.addTask { await self.connect(client, index: index, afterConnect: afterConnect) }
            }
            while let result = await group.next() { collect(result) }
            return connected.sorted { $0.index < $1.index }
        }
    }

    private func connect(
        _ client: MQTTClient, index: Int, afterConnect: @Sendable (Int, MQTTClient) async throws -> Void
    ) async -> (Int, MQTTClient?) {
        let began = clock.now
        connects.attempt(at: began)
        do {
            try await client.connect()
            try await afterConnect(index, client)
            let now = clock.now
            connects.succeeded(nanoseconds: Self.nanoseconds(now - began), at: now)
            return (index, client)
        } catch {
            connects.failed(MQTTClient.describe(error))
            await client.close()
            return (index, nil)
        }
    }

    /// The configuration of client `index` of `role`: unique identifier, the run's credentials,
    /// no operation timeout (a timeout per in-flight message costs a timer each).
    func clientConfiguration(role: String, index: Int) -> MQTTClientConfiguration {
        let runHex = String(runner.runID, radix: 16)
        var client = MQTTClientConfiguration(
            host: configuration.host, port: configuration.port, version: configuration.version,
            clientID: "\(configuration.clientIDPrefix)-\(runHex)-\(role)\(index)", cleanStart: true,
            keepAlive: configuration.keepAlive, username: configuration.username,
            connectTimeout: .seconds(10), operationTimeout: nil,
            maximumInflight: configuration.inflight)
        client.setPassword(configuration.password)
        client.tls = configuration.tls
        return client
    }

    /// Disconnects every client, a bounded number at a time; errors (already closed) are ignored.
    func disconnectAll(_ clients: [MQTTClient]) async {
        await withTaskGroup(of: Void.self) { group in
            var active = 0
            for client in clients {
                if active >= 256 {
                    await group.next()
                    active -= 1
                }
                active += 1
                group.addTask {
                    if client.isConnected { try? await client.disconnect() } else { await client.close() }
                }
            }
        }
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) &* 1_000_000_000 &+ UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}
