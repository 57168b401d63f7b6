import ArgumentParser
import GGUF
import Llama
import TensorIO
import Tokenizers

/// Where the default model lives and how a command finds the model it should use.
enum ModelLocator {
    static let defaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// The cache folder: `$SOFTPROMPT_CACHE`, else `$XDG_CACHE_HOME/softpromptkit`, else `~/.cache/softpromptkit`.
    static var cacheDirectory: String {
        if let dir = environmentValue("SOFTPROMPT_CACHE") { return dir }
        let base = environmentValue("XDG_CACHE_HOME") ?? ((environmentValue("HOME") ?? "/root") + "/.cache")
        return base + "/softpromptkit"
    }

    static var defaultModelPath: String { cacheDirectory + "/models/" + defaultModelFile }

    /// Resolves the model: an explicit path, then `$SOFTPROMPT_MODEL`, then the default model in the cache.
    /// - Throws: `ValidationError` naming what was tried when nothing is found.
    static func resolve(_ explicit: String?) throws -> String {
        if let explicit {
            guard fileExists(explicit) else { throw ValidationError("model not found: \(explicit)") }
            return explicit
        }
        if let fromEnvironment = environmentValue("SOFTPROMPT_MODEL") {
            guard fileExists(fromEnvironment) else {
                throw ValidationError("SOFTPROMPT_MODEL names \(fromEnvironment), which does not exist")
            }
            return fromEnvironment
        }
        let path = defaultModelPath
        guard fileExists(path) else {
            throw ValidationError("""
                no model given and the default model is not at \(path).
                Run Tools/scripts/bootstrap.sh to fetch it, or pass --model PATH / set SOFTPROMPT_MODEL.
                """)
        }
        return path
    }
}

/// A model ready to run: the network, its tokenizer and (for GGUF files) the file.
struct LoadedModel {
    let path: String
    let gguf: GGUFFile?
    let llama: LlamaModel
    let tokenizer: Tokenizer

    /// Loads a GGUF file or a Hugging Face directory (config.json, safetensors, tokenizer.json).
    static func load(_ explicit: String?) throws -> LoadedModel {
        let path = try ModelLocator.resolve(explicit)
        do {
            let gguf = isDirectory(path) ? nil : try GGUFFile(path: path)
            let llama = try gguf.map { try LlamaModel(gguf: $0) } ?? LlamaModel(huggingFaceDirectory: path)
            try llama.checkMemory(positions: 1)
            let tokenizer = try Tokenizer(gguf.map { try TokenizerVocabulary(gguf: $0) }
                                          ?? TokenizerVocabulary(huggingFaceDirectory: path))
            return LoadedModel(path: path, gguf: gguf, llama: llama, tokenizer: tokenizer)
        } catch let error as ModelError {
            throw CLIError(error.description)
        } catch let error as GGUFError {
            throw CLIError(error.description)
        } catch let error as TokenizerError {
            throw CLIError("\(path): \(error.description)")
        }
    }
}
