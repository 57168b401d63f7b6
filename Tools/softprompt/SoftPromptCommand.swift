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
        if !isSubcommand(command) {
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

    /// Whether `command` is one of this tool's subcommands, at any depth (not ArgumentParser's `help`).
    private static func isSubcommand(_ command: ParsableCommand) -> Bool {
        let wanted = ObjectIdentifier(type(of: command))
        func search(_ types: [ParsableCommand.Type]) -> Bool {
            types.contains { ObjectIdentifier($0) == wanted || search($0.configuration.subcommands) }
        }
        return search(configuration.subcommands)
    }
}

/// The exit statuses a script can branch on (README, "Exit status"): 0 success; 1 and 2 only from `validate`
/// (a check warned / failed: `ValidationReport.exitCode`); `runtimeError`; 64 for a usage error
/// (ArgumentParser's `ExitCode.validationFailure`, EX_USAGE), thrown while parsing and validating options.
enum ExitStatus {
    /// The command could not do its work: a missing or unreadable file, a model that does not fit, ….
    static let runtimeError: Int32 = 3
}
