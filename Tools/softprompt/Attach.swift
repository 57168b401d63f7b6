import ArgumentParser
import GGUF
import Llama
import Quants
import SoftPrompt
import TensorIO
import Tokenizers

/// `softprompt attach`: bake a soft prompt into a copy of a GGUF checkpoint as new vocabulary tokens.
struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bake a soft prompt into a copy of a GGUF model as new tokens <|sp_NAME_0|>….",
        discussion: """
            The copy's vocabulary gains one CONTROL token per prompt vector, whose token-embedding row is that \
            vector; starting the input with those tokens (in order) applies the prompt in any GGUF runtime. \
            The output head gains one row per new token that drives its logit far below the others (a tied \
            model gets an explicit output.weight holding the original embedding bytes plus those rows), so \
            the new tokens are never generated. The token embedding is stored as --dtype (keep: the model's \
            own type); the prompt rows are then rounded to that type (the rounding is reported). The tokens are \
            named after --name, else the prompt's name.
            """)

    /// What `attach` writes.
    enum Target: String, ExpressibleByArgument, CaseIterable {
        case gguf, hf
    }

    /// The vocabulary type of the new tokens.
    enum NewTokenType: String, ExpressibleByArgument, CaseIterable {
        case control
        case userDefined = "user_defined"

        var tokenType: TokenType { self == .control ? .control : .userDefined }
    }

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var selection: PromptSelection

    @Argument(help: .hidden)
    var legacyPrompt: String?

    @Option(help: "The new GGUF file, or Hugging Face directory.")
    var out: String

    @Option(help: "Output format (default: hf for a Hugging Face model or an --out not ending in .gguf).")
    var to: Target?

    @Option(help: "Name used in the token texts <|sp_NAME_i|> (default: the prompt's name).")
    var name: String?

    @Option(help: "Storage type of the extended token embedding: f32 keeps the prompt rows exact; keep is the model's own type.")
    var dtype = EmbeddingDType(type: .f32)

    @Option(name: .customLong("embedding-type"), help: .hidden)
    var legacyEmbeddingType: EmbeddingDType?

    @Option(help: "Type of the new tokens.")
    var tokenType = NewTokenType.control

    @Option(help: "Output-head suppression: the new tokens' largest logit on a calibration text is put at -SCALE; 0 gives zero rows.")
    var suppression: Float = 30

    @Flag(help: "Bake even when the prompt's model fingerprint names another model.")
    var force = false

    @OptionGroup var output: JSONOption

    mutating func validate() throws {
        if legacyPrompt != nil, selection.task != nil {
            // The old grammar's `attach FILE --task NAME` named the tokens: keep that reading for one version.
            name = try Deprecation.merge(selection.task, as: "attach --task NAME (naming the tokens)", into: name, newName: "--name NAME")
            selection.task = nil
        }
        try selection.adopt(legacy: legacyPrompt, command: "attach")
        try selection.require()
        if let legacy = legacyEmbeddingType {
            Deprecation.note("--embedding-type", use: "--dtype")
            dtype = legacy
        }
    }

    func run() throws {
        let loaded = try LoadedModel.load(modelOption.model)
        let format = to ?? (loaded.gguf == nil || !out.hasSuffix(".gguf") ? .hf : .gguf)
        if format == .gguf && loaded.gguf == nil {
            throw CLIError("a Hugging Face model bakes into a Hugging Face directory (--to hf)")
        }
        let reference = try selection.reference { loaded.path }!
        let path = reference.path
        let file = try reference.readFile(width: loaded.llama.config.hiddenSize)
        let soft = try reference.prompt(in: file)
        if let stored = file.model, !force,
           case .different(let why) = stored.compare(to: try ModelFingerprint(model: loaded.llama, tokenizer: loaded.tokenizer)) {
            throw CLIError("\(path) was trained for another model (\(why)); --force bakes it anyway")
        }
        var options = PromptBaker.Options()
        options.tokenType = tokenType.tokenType
        options.embeddingType = dtype.type
        if suppression != 0 {
            options.outputRow = try PromptBaker.suppressionRow(model: loaded.llama, tokenizer: loaded.tokenizer,
                                                               scale: suppression).row
        }
        let names = PromptBaker.tokenNames(task: name ?? soft.name, count: soft.tokens)
        let summary: PromptBaker.Summary
        if let gguf = loaded.gguf {
            summary = format == .gguf
                ? try PromptBaker.bakeGGUF(source: gguf, prompt: soft, names: names, to: out, options: options)
                : try PromptBaker.bakeHuggingFace(source: gguf, prompt: soft, names: names, directory: out, options: options)
        } else {
            summary = try PromptBaker.bakeHuggingFace(sourceDirectory: loaded.path, prompt: soft, names: names,
                                                      directory: out, options: options)
        }
        let o: JSONObject = [
            "out": .string(out), "first_token_id": .int(Int64(summary.firstTokenID)),
            "tokens": .array(names.map { .string($0) }), "embedding_type": .string(summary.embeddingType.name),
            "max_rounding_error": .double(Double(summary.maxRoundingError)),
            "untied_output": .bool(summary.untiedOutput), "template": soft.template.map { .string($0) } ?? .null,
        ]
        if output.json {
            try JSONOption.print(o)
        } else {
            print("wrote \(out): tokens \(summary.firstTokenID)…\(summary.firstTokenID + names.count - 1) "
                  + "(\(names.first ?? "")…\(names.last ?? "")), token_embd \(summary.embeddingType.name), "
                  + "prompt rounding ≤ \(summary.maxRoundingError)")
            print("use: prefix the input with \(names.joined()) (special-token parsing on)"
                  + (soft.template.map { ", then the template \($0.debugDescription)" } ?? ""))
        }
    }
}
