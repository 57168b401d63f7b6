#if canImport(Glibc)
import Glibc
#endif
import GGUF
import PromptTuning
import Safetensors
import SoftPrompt
import TensorIO
import TestSupport
import Testing
import Tokenizers

// The malformed-file corpus (Tests/Fixtures/malformed, written by Tools/scripts/gen_malformed_corpus.py):
// every entry of its manifest is opened with the real reader and must be refused, quickly, with the
// typed error and kind the manifest names. Files declaring huge sizes are also opened by the release
// CLI in a child process whose peak memory is measured.

/// One entry of `manifest.json`.
struct CorpusEntry: Sendable, CustomTestStringConvertible {
    /// Relative to the corpus root: a file, or a directory (PEFT adapters, sharded checkpoints, tokenizers).
    var path: String
    var format: String
    var reader: String
    var rule: String
    /// The error type expected.
    var error: String
    /// The expected kind (the case name of the error's kind), nil for error types without kinds.
    var kind: String?
    /// A substring the error's description must contain.
    var message: String?
    /// The file declares sizes far beyond its own: also checked for peak memory.
    var huge: Bool

    var testDescription: String { path }
}

enum Corpus {
    static let root = TestSupport.fixture("malformed")

    /// The manifest's entries (empty when it cannot be read, which `manifestCoversCorpus` reports).
    static let entries: [CorpusEntry] = (try? load()) ?? []

    static func load() throws -> [CorpusEntry] {
        let json = try JSON.parse(try readFile(root + "/manifest.json"))
        return (json["entries"]?.arrayValue ?? []).map { entry in
            CorpusEntry(path: entry["path"]?.stringValue ?? "", format: entry["format"]?.stringValue ?? "",
                        reader: entry["reader"]?.stringValue ?? "", rule: entry["rule"]?.stringValue ?? "",
                        error: entry["error"]?.stringValue ?? "", kind: entry["kind"]?.stringValue,
                        message: entry["message"]?.stringValue, huge: entry["huge"]?.boolValue ?? false)
        }
    }

    /// Every regular file under `directory`, relative to `root`.
    static func files(under directory: String = "") throws -> [String] {
        var out: [String] = []
        for name in try listDirectory(directory.isEmpty ? root : root + "/" + directory) {
            let relative = directory.isEmpty ? name : directory + "/" + name
            if isDirectory(root + "/" + relative) { out += try files(under: relative) } else { out.append(relative) }
        }
        return out
    }
}

/// How a reader refused an input: the error's type, its kind's case name (when it has kinds) and its
/// description.
struct Refusal {
    var type: String
    var kind: String?
    var description: String
}

/// The case name of an enum value (`truncated(...)` → `truncated`).
func caseName(_ value: some Any) -> String {
    let text = String(describing: value)
    return String(text.prefix { $0 != "(" })
}

/// Opens `entry` with its reader; nil when the input is accepted.
func open(_ entry: CorpusEntry) -> Refusal? {
    let path = Corpus.root + "/" + entry.path
    switch entry.reader {
    case "GGUFFile":
        do { _ = try GGUFFile(path: path) } catch {
            return Refusal(type: "GGUFError", kind: caseName(error.kind), description: error.description)
        }
    case "SafetensorsFile":
        do { _ = try SafetensorsFile(path: path) } catch {
            return Refusal(type: "SafetensorsError", kind: error.kind.rawValue, description: error.description)
        }
    case "SafetensorsCheckpoint":
        do { _ = try SafetensorsCheckpoint(path: path) } catch {
            return Refusal(type: "SafetensorsError", kind: error.kind.rawValue, description: error.description)
        }
    case "PromptFile.read":
        do { _ = try PromptFile.read(path: path) } catch {
            return Refusal(type: "SpromptError", kind: error.kind.rawValue, description: error.description)
        }
    case "PromptConversion.read":
        do { _ = try PromptConversion.read(path: path) } catch {
            return Refusal(type: "PromptConversionError", kind: nil, description: error.description)
        }
    case "TaskDataset.load":
        do { _ = try TaskDataset.load(path: path) } catch {
            return Refusal(type: "DatasetError", kind: nil, description: error.description)
        }
    case "TokenizerVocabulary(huggingFaceDirectory:)":
        do {
            let vocabulary = try TokenizerVocabulary(huggingFaceDirectory: path)
            do { _ = try Tokenizer(vocabulary) } catch {
                return Refusal(type: "TokenizerError", kind: caseName(error), description: error.description)
            }
        } catch {
            return Refusal(type: "HuggingFaceTokenizerError", kind: caseName(error.kind), description: error.description)
        }
    default:
        return Refusal(type: "unknown reader '\(entry.reader)' in the manifest", kind: nil, description: "")
    }
    return nil
}

@Suite struct MalformedCorpusTests {
    @Test func manifestCoversCorpus() throws {
        let entries = try Corpus.load()
        #expect(entries.count >= 60)
        let paths = entries.map(\.path)
        #expect(Set(paths).count == paths.count, "a path is listed twice")
        for entry in entries {
            #expect(fileExists(Corpus.root + "/" + entry.path), "\(entry.path) is in the manifest but not on disk")
            #expect(!entry.rule.isEmpty && !entry.error.isEmpty, "\(entry.path): rule and error are required")
        }
        // Every file on disk belongs to an entry: no orphans.
        for file in try Corpus.files() where file != "manifest.json" {
            let owned = paths.contains { file == $0 || file.hasPrefix($0 + "/") }
            #expect(owned, "\(file) is not in the manifest")
        }
        // Every format we read has entries.
        let formats = Set(entries.map(\.format))
        for format in ["gguf", "gguf-adapter", "safetensors", "safetensors-index", "sprompt", "peft", "training", "tokenizer"] {
            #expect(formats.contains(format), "no entry for \(format)")
        }
    }

    @Test(arguments: Corpus.entries)
    func refused(_ entry: CorpusEntry) {
        guard let refusal = open(entry) else {
            Issue.record("\(entry.path) was accepted; expected \(entry.error).\(entry.kind ?? "") (\(entry.rule))")
            return
        }
        #expect(refusal.type == entry.error, "\(entry.path): \(refusal.type) \(refusal.description)")
        if let kind = entry.kind {
            #expect(refusal.kind == kind, "\(entry.path): kind \(refusal.kind ?? "-"), expected \(kind): \(refusal.description)")
        }
        if let message = entry.message {
            #expect(refusal.description.contains(message), "\(entry.path): '\(refusal.description)' lacks '\(message)'")
        }
    }

    /// Files declaring huge sizes are refused by the release CLI with a small peak RSS.
    ///
    /// The child's `ru_maxrss` from `wait4` is an upper bound only: glibc's posix_spawn starts the
    /// child in the parent's address space (CLONE_VM), and Linux carries that address space's
    /// high-water mark into the child's `maxrss` at exec, so small children report the test process's
    /// own peak. When `/usr/bin/time` is installed it runs the CLI in a child it forks itself, whose
    /// `maxrss` is the CLI's alone; the bound is checked on that figure, else on the upper bound.
    @Test(.enabled(if: CLI.path != nil))
    func hugeDeclarationsUseLittleMemory() throws {
        let huge = Corpus.entries.filter { $0.huge && ["gguf", "safetensors", "sprompt"].contains($0.format) }
        #expect(huge.count >= 10)
        let baseline = try CLI.ownPeakRSSKiB(["--help"])
        print("malformed corpus: softprompt --help peak RSS \(baseline.map { "\($0) KiB" } ?? "unknown (no /usr/bin/time)"); "
              + "test process high-water mark \(CLI.selfHighWaterKiB() ?? -1) KiB")
        for entry in huge {
            let arguments = ["inspect", Corpus.root + "/" + entry.path]
            let run = try CLI.run(arguments)
            let own = try CLI.ownPeakRSSKiB(arguments)
            print("malformed corpus: softprompt inspect \(entry.path): exit \(run.exitCode.map(String.init) ?? "signal"), "
                  + "peak RSS \(own.map { "\($0) KiB" } ?? "unknown") (wait4 upper bound \(run.peakRSSKiB) KiB)")
            #expect(run.exitCode != nil && run.exitCode != 0, "\(entry.path): exit \(String(describing: run.exitCode))")
            let peak = own ?? run.peakRSSKiB
            #expect(peak < 64 * 1024, "\(entry.path): peak RSS \(peak) KiB")
        }
    }
}

/// The release `softprompt` binary beside the test bundle, run in a child process.
enum CLI {
    /// `softprompt` in the directory of this test executable, if it was built.
    static let path: String? = TestSupport.builtExecutable("softprompt")

    struct Result {
        /// The exit status, nil when the child was killed by a signal.
        var exitCode: Int32?
        /// `ru_maxrss` of the child (KiB on Linux).
        var peakRSSKiB: Int
    }

    /// Runs the CLI (or `executable`) with `arguments`, output discarded, and waits for it with `wait4`,
    /// which reports the child's resource usage (an upper bound of its peak RSS, see
    /// `hugeDeclarationsUseLittleMemory`). posix_spawn, not fork: the test process is threaded.
    static func run(_ arguments: [String], executable: String? = nil) throws -> Result {
        guard let path = executable ?? path else { throw SpawnError(code: ENOENT) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard status == 0 else { throw SpawnError(code: status) }
        var waitStatus: Int32 = 0
        var usage = rusage()
        while wait4(pid, &waitStatus, 0, &usage) < 0 {
            guard errno == EINTR else { throw SpawnError(code: errno) }
        }
        let exited = waitStatus & 0x7F == 0
        return Result(exitCode: exited ? (waitStatus >> 8) & 0xFF : nil, peakRSSKiB: Int(usage.ru_maxrss))
    }

    /// The CLI's own peak RSS running `arguments`, measured by `/usr/bin/time` (nil when it is absent).
    static func ownPeakRSSKiB(_ arguments: [String]) throws -> Int? {
        guard let path, access("/usr/bin/time", X_OK) == 0 else { return nil }
        let report = TestSupport.temporaryDirectory("rss") + "/maxrss"
        _ = try run(["-f", "%M", "-o", report, path] + arguments, executable: "/usr/bin/time")
        let text = String(decoding: try readFile(report), as: UTF8.self)
        return text.split(separator: "\n").last.flatMap { Int($0.trimmingPrefix(while: \.isWhitespace)) }
    }

    /// This process's peak RSS (`VmHWM` of /proc/self/status), in KiB.
    static func selfHighWaterKiB() -> Int? {
        // /proc files report a size of 0, so read until end of file rather than by size.
        let fd = Glibc.open("/proc/self/status", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var status: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count <= 0 { break }
            status += chunk[..<count]
        }
        let line = String(decoding: status, as: UTF8.self).split(separator: "\n").first { $0.hasPrefix("VmHWM:") }
        return line.flatMap { Int($0.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") }
    }

    struct SpawnError: Error { var code: Int32 }
}
