import ArgumentParser
import SoftPrompt
import TensorIO

/// Reads and writes soft prompts by file type: `.sprompt` (the sidecar format, `FILE:TASK` picks a prompt
/// of a bank) or `.npy` (raw float32 [tokens, width]); reading also takes what `softprompt convert` reads.
enum PromptStore {
    struct Loaded {
        var vectors: [Float]
        var tokens: Int
        var template: String?
        var name: String?
        /// The prompt's vector checksum (`SoftPrompt.vectorsSHA256`; a .npy counts as f32).
        var vectorsSHA256: String
    }

    static func read(_ spec: String, width: Int) throws -> Loaded {
        let (path, _) = split(spec)
        if path.hasSuffix(".npy") {
            let array = try NPY.read(path: path)
            guard array.shape.count == 2, array.shape[1] == width, let values = array.floats() else {
                throw CLIError("\(path): expected a float [tokens, \(width)] array, found \(array.dtype.rawValue) \(array.shape)")
            }
            return Loaded(vectors: values, tokens: array.shape[0], template: nil, name: nil,
                          vectorsSHA256: SoftPrompt(name: "npy", vectors: values, width: width).vectorsSHA256)
        }
        if path.hasSuffix(".sprompt") {
            let file = try PromptFile.read(path: path)
            let prompt = try file.prompt(named: split(spec).task)
            guard prompt.width == width else {
                throw CLIError("\(spec): prompt '\(prompt.name)' is \(prompt.tokens) × \(prompt.width); the model's embedding width is \(width)")
            }
            return Loaded(vectors: prompt.vectors, tokens: prompt.tokens, template: prompt.template, name: prompt.name,
                          vectorsSHA256: prompt.vectorsSHA256)
        }
        // Other formats (PEFT directory, GGUF adapter, .npz, safetensors) go through the converters.
        guard PromptFormat.detect(path: path) != nil else {
            throw CLIError("\(path): unknown prompt file type (expected .sprompt, .npy, .npz, .gguf, .safetensors or a PEFT directory)")
        }
        let file: PromptFile
        do { file = try PromptConversion.read(path: path) } catch { throw CLIError(error.description) }
        let prompt = try file.prompt(named: split(spec).task)
        guard prompt.width == width else {
            throw CLIError("\(spec): prompt '\(prompt.name)' is \(prompt.tokens) × \(prompt.width); the model's embedding width is \(width)")
        }
        return Loaded(vectors: prompt.vectors, tokens: prompt.tokens, template: prompt.template, name: prompt.name,
                          vectorsSHA256: prompt.vectorsSHA256)
    }

    static func write(_ vectors: [Float], width: Int, to path: String, name: String, dtype: String, template: String,
                      provenance: JSONObject, metrics: JSONObject, model: LoadedModel) throws {
        guard let storage = PromptDType(rawValue: dtype) else { throw CLIError("unknown dtype \(dtype)") }
        let fingerprint = try ModelFingerprint(model: model.llama, tokenizer: model.tokenizer)
        let prompt = SoftPrompt(name: name, vectors: vectors, width: width, dtype: storage, template: template,
                                provenance: provenance, metrics: metrics)
        // The format follows the name: .sprompt, .npy, .npz, .gguf (adapter), .safetensors, or a PEFT directory.
        do { try PromptConversion.write(PromptFile(model: fingerprint, prompts: [prompt]), to: path) } catch {
            throw CLIError(error.description)
        }
    }

    /// The prompt for `task` stored beside the model: `DIR/MODEL_BASENAME.TASK.sprompt`, where the base
    /// name drops a `.gguf` extension (a Hugging Face directory uses its own name, beside it).
    static func besideModel(_ modelPath: String, task: String) throws -> String {
        var base = modelPath
        while base.hasSuffix("/") && base.count > 1 { base.removeLast() }
        if base.hasSuffix(".gguf") { base.removeLast(5) }
        let path = base + "." + task + ".sprompt"
        guard fileExists(path) else { throw CLIError("--task \(task): no prompt at \(path)") }
        return path
    }

    /// `bank.sprompt:task` (or `bank.npz:task`) → (`bank.sprompt`, `task`); a plain path has no task.
    static func split(_ spec: String) -> (path: String, task: String?) {
        if let colon = spec.lastIndex(of: ":"), spec[..<colon].hasSuffix(".sprompt") || spec[..<colon].hasSuffix(".npz") {
            return (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
        }
        return (spec, nil)
    }
}
