import ArgumentParser
import Llama
import SoftPrompt
import TensorIO

/// `softprompt convert`: soft prompts between .sprompt, PEFT, GGUF, .npy/.npz and safetensors.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a soft prompt between .sprompt, PEFT, GGUF, .npy, .npz and safetensors.",
        discussion: """
            The format follows from the name: a directory (or a name without extension) is a PEFT adapter (adapter_config.json + \
            adapter_model.safetensors; PROMPT_TUNING and P_TUNING are read, PROMPT_TUNING is written), \
            .gguf a GGUF soft-prompt adapter, .npy a [tokens, width] array, .npz an archive with one \
            array per prompt, .safetensors one tensor. --from / --to override it. IN may be FILE:TASK to \
            pick one prompt of a bank (.sprompt, .npz). OUT is a new file; it is replaced when it exists.

            Formats without a model fingerprint (PEFT, .npy, .npz, plain safetensors) read as "model \
            unknown"; -m MODEL fills it in and checks the width. Layouts: Formats/peft.md, \
            Formats/gguf-adapter.md.
            """)

    @Argument(help: "The prompt to convert: a file, FILE:TASK, or a PEFT adapter directory.")
    var input: String

    @Argument(help: "Where to write it (a PEFT adapter is a directory).")
    var output: String

    @Option(help: "Output format: sprompt, peft, gguf, npy, npz, safetensors (default: from OUT's name).")
    var to: String?

    @Option(help: "Input format (default: from IN's name).")
    var from: String?

    @Option(help: "Name of the written prompt (default: the source's name).")
    var name: String?

    @Option(name: [.short, .customLong("model")], help: "The model the prompt belongs to: fills in a missing fingerprint, checks the width.")
    var model: String?

    @Option(help: "Storage type: f32, f16 or bf16 (default: the source's).")
    var dtype: String?

    @Option(help: "Set the prompt's template (text with {input}), e.g. for a PEFT prompt, which has none.")
    var template: String?

    @Option(help: "base_model_name_or_path of a written PEFT adapter (default: the source's, else the model's path).")
    var baseModel: String?

    func run() throws {
        let inFormat = try from.map(Self.format)
        let outFormat = try to.map(Self.format)
        let storage = try dtype.map { text throws -> PromptDType in
            guard let value = PromptDType(rawValue: text.lowercased()) else { throw ValidationError("unknown --dtype '\(text)' (f32, f16, bf16)") }
            return value
        }
        let reference = PromptReference(parsing: input)
        let (path, task) = (reference.path, reference.task)
        do {
            var file = try PromptConversion.read(path: path, format: inFormat)
            if let task { file.prompts = [try file.prompt(named: task)] }
            if let name {
                guard file.prompts.count == 1 else { throw CLIError("--name needs one prompt; pick one with IN:TASK") }
                file.prompts[0].name = name
            }
            if let template {
                guard PromptTemplate.isValid(template) else { throw ValidationError("--template must contain {input}") }
                for i in file.prompts.indices { file.prompts[i].template = template }
            }
            if let storage { for i in file.prompts.indices { file.prompts[i].dtype = storage } }
            var peft = PromptConversion.PEFTOptions(baseModel: baseModel)
            if model != nil {
                let loaded = try LoadedModel.load(model)
                let fingerprint = try ModelFingerprint(model: loaded.llama, tokenizer: loaded.tokenizer)
                if let bad = file.prompts.first(where: { $0.width != fingerprint.embeddingLength }) {
                    throw CLIError("prompt '\(bad.name)' is \(bad.width) wide; \(loaded.path) has width \(fingerprint.embeddingLength)")
                }
                if let known = file.model, case .different(let why) = known.compare(to: fingerprint) {
                    throw CLIError("the prompt was made for another model than \(loaded.path): \(why)")
                }
                if file.model == nil { file.model = fingerprint }
                peft.baseModel = peft.baseModel ?? loaded.path
                peft.attentionHeads = loaded.llama.config.numAttentionHeads
            }
            try PromptConversion.write(file, to: output, format: outFormat, peft: peft)
            let written = outFormat ?? PromptFormat.detect(path: output)
            for prompt in file.prompts {
                print("wrote \(output) (\(written?.rawValue ?? "?")): '\(prompt.name)' \(prompt.tokens) × \(prompt.width) "
                      + "\(prompt.dtype.rawValue)" + (prompt.template == nil ? "" : ", template kept"))
            }
            if file.model == nil { print("model: unknown (give -m MODEL to record it)") }
        } catch let error as PromptConversionError {
            throw CLIError(error.description)
        } catch let error as SpromptError {
            throw CLIError(error.description)
        }
    }

    static func format(_ text: String) throws -> PromptFormat {
        guard let format = PromptFormat(rawValue: text.lowercased()) else {
            throw ValidationError("unknown format '\(text)' (\(PromptFormat.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        return format
    }
}
