import NIOCore
import NIOPosix
@_spi(Benchmarks) import RoostServer
import XCTest

/// The options every accepted socket ends up with, read back from the kernel: the per-accept
/// setsockopt for TCP_NODELAY is skipped on Linux because the listening socket's value is
/// inherited, so this holds the assumption.
final class SocketOptionsTests: XCTestCase {
    func testAcceptedSocketsHaveNoDelayAndSmallReceiveBuffers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let accepted = group.next().makePromise(of: (noDelay: Int, maxMessagesPerRead: UInt, listenerReads: UInt).self)
        let listener = try await Server.listenerBootstrap(group: group)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try Server.configureSocket(channel)
                    let options = channel.syncOptions!
                    let noDelay = try options.getOption(.tcpOption(.tcp_nodelay))
                    let reads = try options.getOption(.maxMessagesPerRead)
                    let parentReads = try channel.parent!.syncOptions!.getOption(.maxMessagesPerRead)
                    accepted.succeed((noDelay, reads, parentReads))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let client = try await ClientBootstrap(group: group).connect(to: listener.localAddress!).get()
        let seen = try await accepted.futureResult.get()
        XCTAssertNotEqual(seen.noDelay, 0, "TCP_NODELAY must be on for accepted sockets")
        XCTAssertEqual(seen.maxMessagesPerRead, 16)
        XCTAssertEqual(seen.listenerReads, 16, "accepts per wake-up")
        try await client.close()
        try await listener.close()
        try await group.shutdownGracefully()
    }
}
