import ArgumentParser

/// The `roost` executable: one binary, several tools.
@main
struct Roost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roost",
        abstract: "Roost, an MQTT 3.1 / 3.1.1 / 5.0 broker, and its tools.",
        subcommands: [ServeCommand.self, PubCommand.self, SubCommand.self, BenchCommand.self, DbCommand.self, PasswdCommand.self],
        defaultSubcommand: nil
    )
}
