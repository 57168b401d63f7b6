import Llama
import TensorIO

/// A soft prompt named on a command line or in a configuration: `FILE` or `FILE:TASK`, where `TASK` picks
/// a prompt of a bank (`.sprompt` or `.npz`); or the prompt kept beside a model for a task
/// (`MODEL_STEM.TASK.sprompt`).
///
/// `FILE` may be any format `PromptConversion` reads (`.sprompt`, `.npy`, `.npz`, `.gguf` adapter,
/// `.safetensors`, a PEFT directory).
public struct PromptReference: Sendable, Equatable, CustomStringConvertible {
    /// The file or directory.
    public var path: String
    /// The prompt's name in a bank; nil when the file holds one prompt.
    public var task: String?

    public init(path: String, task: String? = nil) {
        self.path = path
        self.task = task
    }

    /// Splits `bank.sprompt:task` (or `bank.npz:task`) into the bank and the task; any other text is a
    /// plain path. The split is at the last colon that follows a bank extension, so a path may hold colons
    /// (`/data/a:b/x.sprompt`) and so may a task (`bank.sprompt:ns:task` names the task `ns:task`).
    public init(parsing spec: String) {
        var end = spec.endIndex
        while let colon = spec[..<end].lastIndex(of: ":") {
            let head = spec[..<colon]
            if Self.bankExtensions.contains(where: { head.hasSuffix($0) }) {
                self.init(path: String(head), task: String(spec[spec.index(after: colon)...]))
                return
            }
            end = colon
        }
        self.init(path: spec)
    }

    /// The extensions of files that hold several prompts, after which `:TASK` may follow.
    public static let bankExtensions = [".sprompt", ".npz"]

    /// `PATH` or `PATH:TASK`, as `init(parsing:)` reads it.
    public var description: String { task.map { path + ":" + $0 } ?? path }

    /// The path of the prompt for `task` kept beside a model: `MODEL_STEM.TASK.sprompt`, where the stem drops
    /// a `.gguf` extension and a Hugging Face directory's trailing slash (`ModelLocator.stem`), so the file
    /// sits in the same folder as the model (`DIR/m.gguf` → `DIR/m.TASK.sprompt`; `DIR/m/` → `DIR/m.TASK.sprompt`).
    public static func besideModelPath(_ modelPath: String, task: String) -> String {
        ModelLocator.stem(modelPath) + "." + task + ".sprompt"
    }

    /// The task a prompt file's name implies, the inverse of `besideModelPath`: the last dot-separated
    /// part of the file name before a `.sprompt` or `.npy` extension (`DIR/model.sentiment.sprompt` →
    /// `sentiment`; `DIR/init.npy` → `init`).
    public static func taskName(ofFile path: String) -> String {
        var base = Substring(path)
        while base.hasSuffix("/") && base.count > 1 { base.removeLast() }
        base = base.split(separator: "/").last ?? base
        for ext in [".sprompt", ".npy"] where base.hasSuffix(ext) { base.removeLast(ext.count) }
        return String(base.split(separator: ".").last ?? base)
    }

    /// The prompt kept beside a model for `task`, which must exist.
    /// - Throws: `PromptReferenceError.notFound` naming the path looked at.
    public static func besideModel(_ modelPath: String, task: String) throws(PromptReferenceError) -> PromptReference {
        let path = besideModelPath(modelPath, task: task)
        guard fileExists(path) else {
            throw .notFound(path: path, looking: "no prompt for task '\(task)' beside the model \(modelPath)")
        }
        return PromptReference(path: path)
    }

    /// Reads the prompt (any format `PromptConversion` reads) and checks its width.
    /// - Parameter width: The model's embedding width.
    /// - Returns: The prompt the reference names (the bank's `task`, or the file's only prompt).
    /// - Throws: `PromptReferenceError` naming the file: missing, unreadable, no such prompt, or a width
    ///   other than `width`.
    public func read(width: Int) throws(PromptReferenceError) -> SoftPrompt {
        let prompt = try prompt(in: try readFile())
        try Self.check(prompt, width: width, path: path)
        return prompt
    }

    /// Reads every prompt of the file (the task, if any, is not applied).
    /// - Parameter width: When given, every prompt must be this wide.
    /// - Throws: `PromptReferenceError` naming the file.
    public func readFile(width: Int? = nil) throws(PromptReferenceError) -> PromptFile {
        let file: PromptFile
        do { file = try PromptConversion.read(path: path) } catch {
            throw fileExists(path) ? .unreadable(path: path, reason: error.message) : .notFound(path: path, looking: error.message)
        }
        if let width { for prompt in file.prompts { try Self.check(prompt, width: width, path: path) } }
        return file
    }

    /// The prompt of `file` the reference names: the one called `task`, or the only one.
    /// - Throws: `PromptReferenceError.promptNotFound` (no such task, or several prompts and no task).
    public func prompt(in file: PromptFile) throws(PromptReferenceError) -> SoftPrompt {
        do { return try file.prompt(named: task) } catch {
            throw .promptNotFound(path: path, reason: error.message)
        }
    }

    static func check(_ prompt: SoftPrompt, width: Int, path: String) throws(PromptReferenceError) {
        guard prompt.width == width else {
            throw .widthMismatch(path: path, prompt: prompt.name, tokens: prompt.tokens, width: prompt.width, modelWidth: width)
        }
    }
}

/// Why a referenced prompt could not be used; every case names the file.
public enum PromptReferenceError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No file or directory at `path`; `looking` says what was looked for.
    case notFound(path: String, looking: String)
    /// The file exists but cannot be read as a prompt (format, corruption): the reader's message.
    case unreadable(path: String, reason: String)
    /// The file holds no prompt of the task's name, or several and no task was named.
    case promptNotFound(path: String, reason: String)
    /// A prompt's width differs from the model's embedding width.
    case widthMismatch(path: String, prompt: String, tokens: Int, width: Int, modelWidth: Int)

    /// The file or directory concerned.
    public var path: String {
        switch self {
        case .notFound(let path, _), .unreadable(let path, _), .promptNotFound(let path, _),
             .widthMismatch(let path, _, _, _, _): path
        }
    }

    public var description: String {
        switch self {
        case .notFound(let path, let looking): "\(path): \(looking)"
        case .unreadable(let path, let reason), .promptNotFound(let path, let reason): "\(path): \(reason)"
        case .widthMismatch(let path, let prompt, let tokens, let width, let modelWidth):
            "\(path): prompt '\(prompt)' is \(tokens) × \(width); the model's embedding width is \(modelWidth)"
        }
    }
}
