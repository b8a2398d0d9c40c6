import ArgumentParser

struct SubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sub", abstract: "Subscribe and print messages.")
    func run() async throws {}
}
