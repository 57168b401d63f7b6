#if canImport(Glibc)
import Glibc
#endif
import SoftPrompt
import TensorIO
import Testing
import TestSupport

/// The command-line grammar as a user meets it: the built `softprompt` binary run in a child process.
///
/// Oracles: the exit statuses are the ones README.md documents (0, 1/2 for `validate` only, 3 runtime,
/// 64 usage = `EX_USAGE` of sysexits.h); a deprecated spelling must give the same bytes as the new one;
/// the values `--help` lists are the library's own `CaseIterable` lists.
@Suite(.enabled(if: Binary.path != nil, "the softprompt binary is not built beside the tests"))
struct CLIGrammarTests {
    /// `EX_USAGE` (sysexits.h), ArgumentParser's `validationFailure`.
    static let usage: Int32 = 64
    /// README.md, "Exit status": the command could not do its work.
    static let runtime: Int32 = 3

    @Test func oldSpellingStillWorksWithADeprecationNote() throws {
        let input = TestSupport.fixture("convert/gguf_adapter.gguf")
        let dir = TestSupport.temporaryDirectory("cli")
        let old = try Binary.run(["convert", input, dir + "/old.npy"])
        #expect(old.status == 0, "\(old.stderr)")
        #expect(old.stderr.contains("softprompt: convert PROMPT (a positional argument) is deprecated; use convert --prompt PROMPT"),
                "\(old.stderr)")
        #expect(old.stderr.contains("is deprecated; use --out OUT"), "\(old.stderr)")
        let new = try Binary.run(["convert", "--prompt", input, "--out", dir + "/new.npy"])
        #expect(new.status == 0, "\(new.stderr)")
        #expect(!new.stderr.contains("deprecated"), "\(new.stderr)")
        let oldBytes = try readFile(dir + "/old.npy"), newBytes = try readFile(dir + "/new.npy")
        #expect(!newBytes.isEmpty)
        #expect(oldBytes == newBytes)
    }

    @Test func validateOnAMissingFileIsARuntimeErrorNotAWarningOrFailure() throws {
        let missing = TestSupport.temporaryDirectory("cli") + "/absent.sprompt"
        for arguments in [["validate", "--prompt", missing], ["validate", missing], ["validate", "--prompt", missing + ":task"]] {
            let run = try Binary.run(arguments)
            #expect(run.status == Self.runtime, "\(arguments): exit \(run.status), \(run.stderr)")
            #expect(run.stderr.contains(missing), "\(run.stderr)")
        }
    }

    @Test func otherRuntimeErrorsExitThree() throws {
        let missing = TestSupport.temporaryDirectory("cli") + "/absent"
        for arguments in [["inspect", missing + ".gguf"], ["bank", "list", missing + ".sprompt"],
                          ["convert", "--prompt", missing + ".sprompt", "--out", missing + ".npy"]] {
            let run = try Binary.run(arguments)
            #expect(run.status == Self.runtime, "\(arguments): exit \(run.status), \(run.stderr)")
        }
    }

    @Test func usageErrorsExit64() throws {
        let input = TestSupport.fixture("convert/gguf_adapter.gguf")
        let out = TestSupport.temporaryDirectory("cli") + "/x.npy"
        let cases: [[String]] = [
            ["convert", "--prompt", input, "--out", out, "--dtype", "f64"],  // not a PromptDType
            ["convert", "--prompt", input, "--out", out, "--no-such-option"],
            ["convert", "--prompt", input],  // no --out
            ["generate", "--threads", "0", "text"],
            ["bench", "--threads", "two"],
            ["eval", "--data", "rows.jsonl", "--prompt", "bank.sprompt:a", "--task", "b"],  // the task twice
        ]
        for arguments in cases {
            let run = try Binary.run(arguments)
            #expect(run.status == Self.usage, "\(arguments): exit \(run.status), \(run.stderr)")
        }
        #expect(!fileExists(out))
    }

    /// An option shared by several commands (one `@OptionGroup`) is checked the same way in each.
    @Test func aSharedOptionIsCheckedAlikeInEveryCommand() throws {
        let cases: [[String]] = [
            ["eval", "--data", "rows.jsonl", "--limit", "0"],
            ["explain", "--prompt", "p.sprompt", "--limit", "0"],
            ["validate", "--prompt", "p.sprompt", "--limit", "0"],
        ]
        for arguments in cases {
            let run = try Binary.run(arguments)
            #expect(run.status == Self.usage, "\(arguments): exit \(run.status), \(run.stderr)")
            #expect(run.stderr.contains("--limit must be at least 1"), "\(arguments): \(run.stderr)")
        }
    }

    @Test func helpListsAnEnumsValues() throws {
        let convert = try Binary.run(["convert", "--help"])
        #expect(convert.status == 0)
        #expect(convert.stdout.contains("(values: " + PromptFormat.allCases.map(\.rawValue).joined(separator: ", ") + ")"),
                "\(convert.stdout)")
        let extract = try Binary.run(["bank", "extract", "--help"])
        #expect(extract.status == 0)
        #expect(extract.stdout.contains("(values: " + PromptDType.allCases.map(\.rawValue).joined(separator: ", ") + ")"),
                "\(extract.stdout)")
    }
}

/// The `softprompt` binary in the directory of this test executable (where SwiftPM builds both), run with
/// its output captured.
enum Binary {
    static let path: String? = TestSupport.builtExecutable("softprompt")

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct Failure: Error { var reason: String }

    /// Runs the binary with `arguments` (stdin from /dev/null) and waits for it.
    static func run(_ arguments: [String]) throws -> Run {
        guard let path else { throw Failure(reason: "no binary") }
        let dir = TestSupport.temporaryDirectory("cli-run")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, dir + "/stdout", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, dir + "/stderr", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure(reason: "posix_spawn: \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw Failure(reason: "waitpid: \(errno)") }
        }
        guard status & 0x7F == 0 else { throw Failure(reason: "killed by signal \(status & 0x7F)") }
        return Run(status: (status >> 8) & 0xFF,
                   stdout: String(decoding: try readFile(dir + "/stdout"), as: UTF8.self),
                   stderr: String(decoding: try readFile(dir + "/stderr"), as: UTF8.self))
    }
}
