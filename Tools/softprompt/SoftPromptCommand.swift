import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

@main
struct SoftPromptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "softprompt",
        abstract: "Prompt tuning for local models: inspect model files, learn and run soft prompts.",
        discussion: """
            Exit status: 0 success; 1 validate found a warning; 2 validate found a failure; 3 a runtime error \
            (a missing or unreadable file, a model that does not fit, …); 64 a usage error (an unknown or \
            invalid option). The grammar and its table: README.md, "Command-line grammar".
            """,
        version: "0.1.0",
        subcommands: [Inspect.self, Generate.self, Train.self, Eval.self, Convert.self, Validate.self, Attach.self,
                      Bench.self, ConvertModel.self, Bank.self, Explain.self, Serve.self])

    /// Parses (usage errors exit 64, as ArgumentParser's `validationFailure`), then runs: an error thrown
    /// while running exits `ExitStatus.runtimeError`, unless it is an explicit `ExitCode` (`validate`'s 1 and 2).
    static func main() {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        // ArgumentParser's own commands (`help`, `--help` given to a command) print and exit as it decides.
        if !(command is any SoftPromptSubcommand) {
            do { try command.run() } catch { exit(withError: error) }
            exit()
        }
        do {
            try command.run()
        } catch let error as ExitCode {
            exit(withError: error)
        } catch let error as CleanExit {
            exit(withError: error)
        } catch {
            Output.error("Error: " + message(for: error))
            Glibc.exit(ExitStatus.runtimeError)
        }
    }
}

/// The commands of this tool, whose errors while running exit with `ExitStatus.runtimeError`.
protocol SoftPromptSubcommand: ParsableCommand {}

extension Inspect: SoftPromptSubcommand {}
extension Generate: SoftPromptSubcommand {}
extension Train: SoftPromptSubcommand {}
extension Eval: SoftPromptSubcommand {}
extension Convert: SoftPromptSubcommand {}
extension Validate: SoftPromptSubcommand {}
extension Attach: SoftPromptSubcommand {}
extension Bench: SoftPromptSubcommand {}
extension ConvertModel: SoftPromptSubcommand {}
extension Bank.List: SoftPromptSubcommand {}
extension Bank.Add: SoftPromptSubcommand {}
extension Bank.Remove: SoftPromptSubcommand {}
extension Bank.Extract: SoftPromptSubcommand {}
extension Bank.Rename: SoftPromptSubcommand {}
extension Explain: SoftPromptSubcommand {}
extension Serve: SoftPromptSubcommand {}

/// The exit statuses a script can branch on (README, "Exit status").
enum ExitStatus {
    /// `validate`: a check warned and none failed.
    static let warning: Int32 = 1
    /// `validate`: a check failed.
    static let failure: Int32 = 2
    /// The command could not do its work: a missing or unreadable file, a model that does not fit, ….
    static let runtimeError: Int32 = 3
    /// The command line itself is wrong (ArgumentParser's `ExitCode.validationFailure`, EX_USAGE).
    static let usage: Int32 = ExitCode.validationFailure.rawValue
}
