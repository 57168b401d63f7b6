import SoftPrompt
import TensorIO

/// The evaluation file a trained prompt's provenance names (`provenance["eval_data"]`, with its
/// `eval_sha256`), and whether it can still be used from here.
public enum ProvenanceEvalData: Sendable, Equatable {
    /// The provenance names no eval file.
    case none
    /// The named file is not found (from the current directory).
    case missing(path: String)
    /// The file's bytes differ from those the prompt was evaluated on.
    case changed(path: String)
    /// The file is there and unchanged (or the provenance records no checksum to compare).
    case usable(path: String)

    /// Looks up the eval file of `prompt`'s provenance and compares its SHA-256 with the recorded one.
    /// - Throws: `DatasetError` when the file exists but is not a valid dataset.
    public init(of prompt: SoftPrompt) throws(DatasetError) {
        guard let named = prompt.provenance["eval_data"]?.stringValue else { self = .none; return }
        guard fileExists(named) else { self = .missing(path: named); return }
        if let sha = prompt.provenance["eval_sha256"]?.stringValue, !sha.isEmpty,
           try TaskDataset.load(path: named).sha256 != sha {
            self = .changed(path: named)
        } else {
            self = .usable(path: named)
        }
    }
}
