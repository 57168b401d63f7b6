import GGUF
import TensorIO
import Tokenizers

/// Where the default model lives, how a caller finds the model it should use, and the names derived
/// from a model's path.
///
/// The order is the command line's: an explicit path (`--model`), then `$SOFTPROMPT_MODEL`, then the
/// default model in the cache folder (which `Tools/scripts/bootstrap.sh` fills).
public enum ModelLocator {
    /// The file name of the default model in the cache folder.
    public static let defaultModelFile = "SmolLM2-135M-Instruct.Q4_1.gguf"

    /// The cache folder: `$SOFTPROMPT_CACHE`, else `$XDG_CACHE_HOME/softpromptkit`, else `~/.cache/softpromptkit`.
    public static var cacheDirectory: String {
        if let dir = environmentValue("SOFTPROMPT_CACHE") { return dir }
        let base = environmentValue("XDG_CACHE_HOME") ?? ((environmentValue("HOME") ?? "/root") + "/.cache")
        return base + "/softpromptkit"
    }

    /// Where the default model is expected.
    public static var defaultModelPath: String { cacheDirectory + "/models/" + defaultModelFile }

    /// Resolves the model: an explicit path, then `$SOFTPROMPT_MODEL`, then the default model in the cache.
    /// - Parameter explicit: The path the caller was given, if any.
    /// - Returns: A path that exists (a GGUF file or a Hugging Face directory).
    /// - Throws: `ModelLoadError` (`notFound`, `environmentNotFound`, `defaultMissing`) naming the path tried.
    public static func resolve(_ explicit: String?) throws(ModelLoadError) -> String {
        if let explicit {
            guard fileExists(explicit) else { throw .notFound(path: explicit) }
            return explicit
        }
        if let fromEnvironment = environmentValue("SOFTPROMPT_MODEL") {
            guard fileExists(fromEnvironment) else { throw .environmentNotFound(path: fromEnvironment) }
            return fromEnvironment
        }
        let path = defaultModelPath
        guard fileExists(path) else { throw .defaultMissing(path: path) }
        return path
    }

    /// The model's path without trailing slashes and without a `.gguf` extension: the stem that files
    /// kept beside the model share (`DIR/MODEL.gguf` → `DIR/MODEL`; a directory `DIR/MODEL/` → `DIR/MODEL`).
    public static func stem(_ modelPath: String) -> String {
        var base = modelPath
        while base.hasSuffix("/") && base.count > 1 { base.removeLast() }
        if base.hasSuffix(".gguf") { base.removeLast(5) }
        return base
    }

    /// The model's name: the last component of its `stem` (`/models/SmolLM2.Q4_1.gguf` → `SmolLM2.Q4_1`).
    public static func name(_ modelPath: String) -> String {
        let stem = stem(modelPath)
        return String(stem.split(separator: "/").last ?? Substring(stem))
    }
}

/// Why a model could not be found or loaded; every case names the file or directory concerned.
public enum ModelLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The path given explicitly does not exist.
    case notFound(path: String)
    /// `$SOFTPROMPT_MODEL` names a path that does not exist.
    case environmentNotFound(path: String)
    /// No model was given and the default model is not in the cache at `path`.
    case defaultMissing(path: String)
    /// The path exists but does not load (GGUF, weights, configuration, tokenizer or memory); `reason` is
    /// the underlying reader's message, which may already start with the path.
    case unreadable(path: String, reason: String)

    /// The model file or directory concerned.
    public var path: String {
        switch self {
        case .notFound(let path), .environmentNotFound(let path), .defaultMissing(let path), .unreadable(let path, _): path
        }
    }

    public var description: String {
        switch self {
        case .notFound(let path): "\(path): model not found"
        case .environmentNotFound(let path): "\(path): SOFTPROMPT_MODEL names this path, which does not exist"
        case .defaultMissing(let path):
            """
            no model given and the default model is not at \(path).
            Run Tools/scripts/bootstrap.sh to fetch it, or pass --model PATH / set SOFTPROMPT_MODEL.
            """
        case .unreadable(let path, let reason): reason.hasPrefix(path) ? reason : "\(path): \(reason)"
        }
    }
}

/// A model ready to run: the network, its tokenizer and (for GGUF files) the file.
public struct LoadedModel: Sendable {
    /// The path it was loaded from.
    public let path: String
    /// The GGUF file, or nil for a Hugging Face directory.
    public let gguf: GGUFFile?
    public let llama: LlamaModel
    public let tokenizer: Tokenizer

    /// Finds (`ModelLocator.resolve`) and loads a model.
    /// - Parameter explicit: The path the caller was given, if any.
    /// - Throws: `ModelLoadError` naming the path.
    public static func load(_ explicit: String?) throws(ModelLoadError) -> LoadedModel {
        try LoadedModel(path: try ModelLocator.resolve(explicit))
    }

    /// Loads a GGUF file or a Hugging Face directory (config.json, safetensors, tokenizer.json), and checks
    /// that one position's working memory fits.
    /// - Throws: `ModelLoadError.unreadable` with the underlying reader's message.
    public init(path: String) throws(ModelLoadError) {
        do {
            let gguf = isDirectory(path) ? nil : try GGUFFile(path: path)
            let llama = try gguf.map { try LlamaModel(gguf: $0) } ?? LlamaModel(huggingFaceDirectory: path)
            try llama.checkMemory(positions: 1)
            let tokenizer = try Tokenizer(gguf.map { try TokenizerVocabulary(gguf: $0) }
                                          ?? TokenizerVocabulary(huggingFaceDirectory: path))
            self.path = path
            self.gguf = gguf
            self.llama = llama
            self.tokenizer = tokenizer
        } catch {
            throw .unreadable(path: path, reason: "\(error)")
        }
    }
}
