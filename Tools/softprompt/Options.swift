import ArgumentParser
import GGUF
import ChatTemplates
import Llama
import ModelConversion
import PromptTuning
import Quants
import SoftPrompt
import TensorIO

// The option groups and value types every subcommand shares: one name, one meaning (README, "CLI grammar").

/// `-m/--model`: the model a command runs or reads.
struct ModelOption: ParsableArguments {
    @Option(name: [.short, .customLong("model")],
            help: "The model: a .gguf file or a Hugging Face directory (default: $SOFTPROMPT_MODEL, else the default model).")
    var model: String?
}

/// `-t/--threads`: one thread count, an integer in every command (`bench --threads-list` sweeps several).
struct ThreadsOption: ParsableArguments {
    @Option(name: [.short, .customLong("threads")], help: "Threads for the matrix products.")
    var threads = 2

    mutating func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }
}

/// `--prompt FILE[:TASK]` and `--task NAME`: which soft prompt a command reads.
///
/// `--task` has one meaning everywhere: it *selects* a prompt by its task name — prompt NAME of the
/// `--prompt` file (as `FILE:NAME` does), or, without `--prompt`, the prompt stored beside the model as
/// `MODEL_BASENAME.NAME.sprompt`. The name a written prompt gets is `--name`.
struct PromptSelection: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The soft prompt: a .sprompt, .npy, .npz, .gguf adapter, .safetensors file or PEFT directory; FILE:TASK picks one prompt of a bank (.sprompt, .npz).",
        valueName: "file[:task]"))
    var prompt: String?

    @Option(help: ArgumentHelp(
        "The task: picks prompt TASK of the --prompt bank; without --prompt, the prompt stored beside the model as MODEL_BASENAME.TASK.sprompt.",
        valueName: "task"))
    var task: String?

    mutating func validate() throws {
        if let prompt, task != nil {
            let reference = PromptReference(parsing: prompt)
            if reference.task != nil { throw ValidationError("give the task once: --prompt FILE:TASK or --prompt FILE --task TASK") }
            if !PromptReference.bankExtensions.contains(where: reference.path.hasSuffix) {
                throw ValidationError("--task picks a prompt of a bank (.sprompt, .npz); \(reference.path) holds one prompt")
            }
        }
    }

    /// Whether a prompt was chosen at all.
    var isGiven: Bool { prompt != nil || task != nil }

    /// The prompt to read: `--prompt` (its task given inline or by `--task`), else the prompt beside
    /// `modelPath()` for `--task`, else nil.
    /// - Throws: `PromptReferenceError` when `--task` names no prompt beside the model.
    func reference(modelPath: () throws -> String) throws -> PromptReference? {
        if let prompt {
            var reference = PromptReference(parsing: prompt)
            if let task { reference.task = task }
            return reference
        }
        guard let task else { return nil }
        return try PromptReference.besideModel(try modelPath(), task: task)
    }

    /// Takes a prompt given the old way (a positional argument) and notes the deprecation.
    mutating func adopt(legacy: String?, command: String) throws {
        guard let legacy else { return }
        Deprecation.note("\(command) PROMPT (a positional argument)", use: "\(command) --prompt PROMPT")
        if prompt != nil { throw ValidationError("give the prompt once: --prompt FILE (the positional form is deprecated)") }
        prompt = legacy
        try validate()
    }

    /// Throws unless a prompt was chosen (`--prompt` or `--task`).
    func require() throws {
        if !isGiven { throw ValidationError("give the prompt: --prompt FILE[:TASK] (or --task TASK for the one beside the model)") }
    }
}

/// `--json`: the result as one JSON document on stdout (for scripts).
struct JSONOption: ParsableArguments {
    @Flag(help: "Print the result as JSON on stdout.")
    var json = false

    /// Prints `object` as one indented JSON document on stdout.
    static func print(_ object: JSONObject, sortedKeys: Bool = true) throws {
        Swift.print(try JSON.serialize(.object(object), pretty: true, sortedKeys: sortedKeys))
    }
}

/// `--limit N`: score only the first N rows of the task data.
struct LimitOption: ParsableArguments {
    @Option(help: "Score only the first N rows.")
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    /// The task rows in `path`, cut to the first `--limit`.
    func rows(_ path: String, parseSpecial: Bool = true) throws -> TaskDataset {
        var dataset = try TaskDataset.load(path: path, parseSpecial: parseSpecial)
        if let limit { dataset.examples = Array(dataset.examples.prefix(limit)) }
        return dataset
    }
}

/// `--template` of a scoring command: overrides the template stored with the soft prompt.
struct ScoringTemplateOption: ParsableArguments {
    @Option(help: "Context template; each {input} is replaced by the row's input (default: the one stored with the soft prompt, else {input}).")
    var template: String?

    func validate() throws {
        if let template { _ = try PromptTemplate(template) }
    }

    /// `--template`, else `stored` (the soft prompt's), else `{input}`.
    func resolve(stored: String?) throws -> PromptTemplate { try PromptTemplate(stored: template ?? stored) }
}

/// `--chat-template`: a chat template family instead of the one recognised from the model.
struct ChatTemplateOption: ParsableArguments {
    @Option(help: "Chat template family to use instead of the one recognised from the model.")
    var chatTemplate: ChatTemplateName?
}

/// `--int8`: the llama.cpp-style 8-bit activation path of inference.
struct Int8Option: ParsableArguments {
    @Flag(help: "Quantize activations to 8 bits before the quantized matrix products, as llama.cpp does (faster; departs from the exact answer at near-ties).")
    var int8 = false

    /// The inference precision `--int8` selects.
    var precision: MatmulPrecision { int8 ? .int8 : .exact }
}

/// `--dtype` of a command that rewrites a stored prompt: its storage type, else the source's.
struct PromptDTypeOption: ParsableArguments {
    @Option(help: "Storage type of the written prompt (default: the source prompt's).")
    var dtype: PromptDType?
}

/// Notes on stderr for spellings kept for one version.
enum Deprecation {
    /// Prints `softprompt: OLD is deprecated; use NEW`.
    static func note(_ old: String, use new: String) {
        Output.error("softprompt: \(old) is deprecated; use \(new)")
    }

    /// Moves a value given under an old name into the new option (nil when neither was given).
    /// - Throws: `ValidationError` when both names were given.
    static func merge<T>(_ old: T?, as oldName: String, into new: T?, newName: String) throws -> T? {
        guard let old else { return new }
        note(oldName, use: newName)
        if new != nil { throw ValidationError("give \(newName) once (\(oldName) is its deprecated spelling)") }
        return old
    }
}

// MARK: - Closed sets as ArgumentParser values (their values are listed in --help)

extension PromptDType: ExpressibleByArgument {}
extension PromptFormat: ExpressibleByArgument {}
extension LearningRateDecay: ExpressibleByArgument {}
extension ModelConversion.WeightType: ExpressibleByArgument {}

/// A chat template family (`--chat-template`), one of the presets the library knows.
struct ChatTemplateName: ExpressibleByArgument {
    var name: String
    init?(argument: String) {
        guard ChatTemplate.presetNames.contains(argument) else { return nil }
        name = argument
    }
    static var allValueStrings: [String] { ChatTemplate.presetNames }
}

/// A ggml tensor type that can be written (`attach --dtype`), or `keep`.
struct EmbeddingDType: ExpressibleByArgument {
    /// nil: keep the model's type.
    var type: GGMLType?
    init(type: GGMLType?) { self.type = type }
    init?(argument: String) {
        if argument == "keep" { type = nil; return }
        guard let type = GGMLType.allCases.first(where: { $0.name.lowercased() == argument.lowercased() }),
              Quantization.encoder(for: type) != nil else { return nil }
        self.type = type
    }
    static var allValueStrings: [String] {
        ["keep"] + GGMLType.allCases.filter { Quantization.encoder(for: $0) != nil }.map { $0.name.lowercased() }
    }
    var defaultValueDescription: String { type?.name.lowercased() ?? "keep" }
}
