import ArgumentParser
import TensorIO

/// Reads and writes soft prompts by file type: `.sprompt` (the sidecar format, `FILE:TASK` picks a prompt
/// of a bank) or `.npy` (raw float32 [tokens, width]).
enum PromptStore {
    struct Loaded {
        var vectors: [Float]
        var tokens: Int
        var template: String?
        var name: String?
    }

    static func read(_ spec: String, width: Int) throws -> Loaded {
        let (path, _) = split(spec)
        if path.hasSuffix(".npy") {
            let array = try NPY.read(path: path)
            guard array.shape.count == 2, array.shape[1] == width, let values = array.floats() else {
                throw CLIError("\(path): expected a float [tokens, \(width)] array, found \(array.dtype.rawValue) \(array.shape)")
            }
            return Loaded(vectors: values, tokens: array.shape[0], template: nil, name: nil)
        }
        throw CLIError("\(path): unknown prompt file type (expected .sprompt or .npy)")
    }

    static func write(_ vectors: [Float], width: Int, to path: String, name: String, dtype: String, template: String,
                      provenance: JSONObject, metrics: JSONObject, model: LoadedModel) throws {
        if path.hasSuffix(".npy") {
            try NPY.write(path: path, shape: [vectors.count / width, width], values: vectors)
            return
        }
        throw CLIError("\(path): unknown prompt file type (expected .sprompt or .npy)")
    }

    /// `bank.sprompt:task` → (`bank.sprompt`, `task`); a plain path has no task.
    static func split(_ spec: String) -> (path: String, task: String?) {
        if let colon = spec.lastIndex(of: ":"), spec[..<colon].hasSuffix(".sprompt") {
            return (String(spec[..<colon]), String(spec[spec.index(after: colon)...]))
        }
        return (spec, nil)
    }
}
