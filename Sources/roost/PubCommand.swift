import ArgumentParser

struct PubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pub", abstract: "Publish messages.")
    func run() async throws {}
}
