import GGUF
import Quants

/// Why a model could not be loaded or run.
public struct ModelError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// `general.architecture` names an architecture we do not implement.
        case unsupportedArchitecture(String)
        /// A required metadata key is absent or has the wrong type.
        case missingMetadata(String)
        /// A metadata value is out of range or inconsistent with another.
        case invalidMetadata(String)
        /// A tensor the architecture needs is absent.
        case missingTensor(String)
        /// A tensor the architecture does not use is present (a different model, or a bad conversion).
        case unexpectedTensor(String)
        /// A tensor's shape differs from what the configuration implies.
        case badShape(String, expected: [Int], found: [Int])
        /// A tensor's type cannot be computed with.
        case unsupportedTensorType(String, GGMLType)
        /// The input does not fit the context or the request is inconsistent.
        case invalidInput
        /// The work needs more memory than the machine (or its limit) has; refused before allocating.
        case insufficientMemory
    }

    public var kind: Kind
    public var message: String
    public var path: String?

    public init(_ kind: Kind, _ message: String, path: String? = nil) {
        self.kind = kind
        self.message = message
        self.path = path
    }

    public var description: String { (path.map { "\($0): " } ?? "") + message }
}
