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
            array per prompt, .safetensors one tensor. --from / --to override it. --prompt FILE:TASK (or \
            --task) picks one prompt of a bank (.sprompt, .npz). --out is a new file; it is replaced when it exists.

            Formats without a model fingerprint (PEFT, .npy, .npz, plain safetensors) read as "model \
            unknown"; -m MODEL fills it in and checks the width. Layouts: Formats/peft.md, \
            Formats/gguf-adapter.md.
            """)

    @OptionGroup var selection: PromptSelection

    @Option(help: "Where to write it (a PEFT adapter is a directory).")
    var out: String?

    @Argument(help: .hidden)
    var legacyInput: String?

    @Argument(help: .hidden)
    var legacyOutput: String?

    @Option(help: "Output format (default: from --out's name).")
    var to: PromptFormat?

    @Option(help: "Input format (default: from --prompt's name).")
    var from: PromptFormat?

    @Option(help: "Name of the written prompt (default: the source's name).")
    var name: String?

    @OptionGroup var modelOption: ModelOption

    @OptionGroup var dtypeOption: PromptDTypeOption

    @Option(help: "Set the prompt's template (text with {input}), e.g. for a PEFT prompt, which has none.")
    var template: String?

    @Option(help: "base_model_name_or_path of a written PEFT adapter (default: the source's, else the model's path).")
    var baseModel: String?

    @OptionGroup var output: JSONOption

    mutating func validate() throws {
        try selection.adopt(legacy: legacyInput, command: "convert")
        out = try Deprecation.merge(legacyOutput, as: "convert IN OUT (OUT as an argument)", into: out, newName: "--out OUT")
        if !selection.isGiven { throw ValidationError("give the prompt to convert: --prompt FILE[:TASK]") }
        if out == nil { throw ValidationError("give where to write it: --out PATH") }
    }

    func run() throws {
        let (inFormat, outFormat, storage, destination) = (from, to, dtypeOption.dtype, out!)
        let model = modelOption.model
        let reference = try selection.reference { try ModelLocator.resolve(model) }!
        let (path, task) = (reference.path, reference.task)
        do {
            var file = try PromptConversion.read(path: path, format: inFormat)
            if let task { file.prompts = [try file.prompt(named: task)] }
            if let name {
                guard file.prompts.count == 1 else { throw CLIError("--name needs one prompt; pick one with --prompt FILE:TASK") }
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
            try PromptConversion.write(file, to: destination, format: outFormat, peft: peft)
            let written = outFormat ?? PromptFormat.detect(path: destination)
            if output.json {
                let o: JSONObject = [
                    "out": .string(destination), "format": written.map { .string($0.rawValue) } ?? .null,
                    "prompts": .array(file.prompts.map { .object(Bank.promptJSON($0)) }),
                    "model": file.model.map { Bank.fingerprintJSON($0) } ?? .null,
                ]
                try JSONOption.print(o)
                return
            }
            for prompt in file.prompts {
                print("wrote \(destination) (\(written?.rawValue ?? "?")): '\(prompt.name)' \(prompt.tokens) × \(prompt.width) "
                      + "\(prompt.dtype.rawValue)" + (prompt.template == nil ? "" : ", template kept"))
            }
            if file.model == nil { print("model: unknown (give -m MODEL to record it)") }
        } catch let error as PromptConversionError {
            throw CLIError(error.description)
        } catch let error as SpromptError {
            throw CLIError(error.description)
        }
    }
}
