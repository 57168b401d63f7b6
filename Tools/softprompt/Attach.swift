import ArgumentParser
import GGUF
import Llama
import Quants
import SoftPrompt
import TensorIO

/// `softprompt attach`: bake a soft prompt into a copy of a GGUF checkpoint as new vocabulary tokens.
struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Bake a soft prompt into a copy of a GGUF model as new tokens <|sp_TASK_0|>….",
        discussion: """
            The copy's vocabulary gains one CONTROL token per prompt vector, whose token-embedding row is that \
            vector; starting the input with those tokens (in order) applies the prompt in any GGUF runtime. \
            The output head gains one row per new token that drives its logit far below the others (a tied \
            model gets an explicit output.weight holding the original embedding bytes plus those rows), so \
            the new tokens are never generated. The token embedding keeps its type unless --embedding-type \
            says otherwise; the prompt rows are then rounded to that type (the rounding is reported).
            """)

    @Option(name: [.short, .customLong("model")], help: "The GGUF model (default: $SOFTPROMPT_MODEL or the default model).")
    var model: String?

    @Argument(help: "The prompt: FILE.sprompt, or FILE.sprompt:TASK for one prompt of a bank.")
    var prompt: String

    @Option(help: "The new GGUF file, or Hugging Face directory.")
    var out: String

    @Option(help: "Output format: gguf or hf (default: hf for a Hugging Face model or an --out not ending in .gguf).")
    var to: String?

    @Option(help: "Name used in the token texts (default: the prompt's name).")
    var task: String?

    @Option(help: "Storage type of the extended token embedding: f32 (exact prompt rows), f16, q8_0, … or keep (the original type).")
    var embeddingType = "f32"

    @Option(help: "Type of the new tokens: control or user_defined.")
    var tokenType = "control"

    @Option(help: "Output-head suppression: the new tokens' largest logit on a calibration text is put at -SCALE; 0 gives zero rows.")
    var suppression: Float = 30

    @Flag(help: "Bake even when the prompt's model fingerprint names another model.")
    var force = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func run() throws {
        let loaded = try LoadedModel.load(model)
        let format = to ?? (loaded.gguf == nil || !out.hasSuffix(".gguf") ? "hf" : "gguf")
        guard format == "gguf" || format == "hf" else { throw ValidationError("--to must be gguf or hf") }
        if format == "gguf" && loaded.gguf == nil {
            throw ValidationError("a Hugging Face model bakes into a Hugging Face directory (--to hf)")
        }
        let reference = PromptReference(parsing: prompt)
        let path = reference.path
        let file = try reference.readFile(width: loaded.llama.config.hiddenSize)
        let soft = try reference.prompt(in: file)
        if let stored = file.model, !force,
           case .different(let why) = stored.compare(to: try ModelFingerprint(model: loaded.llama, tokenizer: loaded.tokenizer)) {
            throw CLIError("\(path) was trained for another model (\(why)); --force bakes it anyway")
        }
        var options = PromptBaker.Options()
        switch tokenType {
        case "control": options.tokenType = .control
        case "user_defined": options.tokenType = .userDefined
        default: throw ValidationError("--token-type must be control or user_defined")
        }
        if embeddingType != "keep" {
            guard let type = GGMLType.allCases.first(where: { $0.name.lowercased() == embeddingType.lowercased() }),
                  Quantization.encoder(for: type) != nil else {
                throw ValidationError("--embedding-type: unknown or unsupported type \(embeddingType)")
            }
            options.embeddingType = type
        }
        if suppression != 0 {
            options.outputRow = try PromptBaker.suppressionRow(model: loaded.llama, tokenizer: loaded.tokenizer,
                                                               scale: suppression).row
        }
        let names = PromptBaker.tokenNames(task: task ?? soft.name, count: soft.tokens)
        let summary: PromptBaker.Summary
        if let gguf = loaded.gguf {
            summary = format == "gguf"
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
        if json {
            print(try JSON.serialize(.object(o), pretty: true, sortedKeys: true))
        } else {
            print("wrote \(out): tokens \(summary.firstTokenID)…\(summary.firstTokenID + names.count - 1) "
                  + "(\(names.first ?? "")…\(names.last ?? "")), token_embd \(summary.embeddingType.name), "
                  + "prompt rounding ≤ \(summary.maxRoundingError)")
            print("use: prefix the input with \(names.joined()) (special-token parsing on)"
                  + (soft.template.map { ", then the template \($0.debugDescription)" } ?? ""))
        }
    }
}
