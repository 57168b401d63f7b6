import TensorIO

/// Why a `.sprompt` file was refused, or could not be written.
///
/// Every rule of `Formats/sprompt.md` has exactly one `Kind`; the table at the end of the spec maps
/// rules to kinds.
public struct SpromptError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The rule that was broken.
    public enum Kind: String, Sendable, CaseIterable {
        /// The file does not start with the 8-byte magic.
        case badMagic
        /// The version field is not 1.
        case unsupportedVersion
        /// The reserved flags field is not 0.
        case reservedFlags
        /// The file ends inside a section (the message names it).
        case truncated
        /// Bytes follow the payload.
        case trailingBytes
        /// The declared metadata size exceeds 16 MiB.
        case metadataTooLarge
        /// The declared payload size (uncompressed or stored) exceeds the cap.
        case payloadTooLarge
        /// The SHA-256 of the fixed header and metadata does not match the stored one.
        case headerChecksumMismatch
        /// The metadata is not JSON (RFC 8259, UTF-8) or not an object.
        case invalidJSON
        /// A JSON object in the metadata repeats a key.
        case duplicateKey
        /// A required key is absent.
        case missingKey
        /// A key the format does not define is present.
        case unknownKey
        /// A value has the wrong JSON type (string for number, float for integer, …).
        case wrongType
        /// A value has the right type but is not allowed (unknown dtype, malformed hash, …).
        case invalidValue
        /// The bank holds no prompt.
        case noPrompts
        /// Two prompts share a name.
        case duplicatePromptName
        /// A prompt name is empty, too long, or contains a control character.
        case invalidPromptName
        /// A shape is not two positive integers within the caps, or its byte size overflows.
        case invalidShape
        /// A prompt's width differs from the model fingerprint's embedding length.
        case widthMismatch
        /// A prompt's `offset`/`length` do not tile the payload in order.
        case promptLayout
        /// The uncompressed payload size differs from the sum of the prompts' lengths.
        case payloadSizeMismatch
        /// The uncompressed payload size exceeds 32768 × the stored payload size (a decompression bomb).
        case decompressionBomb
        /// The stored payload is not one zstd frame declaring its content size.
        case invalidFrame
        /// The zstd frame's content size differs from the declared uncompressed size.
        case frameSizeMismatch
        /// The zstd frame does not span exactly the stored payload.
        case frameLengthMismatch
        /// zstd reported an error while decompressing (corrupt frame).
        case decompressionFailed
        /// The SHA-256 of the uncompressed payload does not match `payload_sha256`.
        case payloadChecksumMismatch
        /// A template does not contain `{input}`.
        case invalidTemplate
        /// Writing: a value is NaN or infinite, or overflows the storage dtype.
        case nonFiniteValue
        /// Writing: a prompt's `vectors` do not hold `tokens × width` floats.
        case vectorCountMismatch
        /// `prompt(named:)`: no such prompt, or a name is needed to choose among several.
        case promptNotFound
        /// Bank API: a prompt's model fingerprint compares as another model than the bank's.
        case modelMismatch
        /// The operating system failed to read or write the file.
        case io
    }

    /// The rule broken.
    public var kind: Kind
    /// The byte offset in the file where the problem was found, when it has one.
    public var offset: Int?
    /// A human-readable explanation.
    public var message: String
    /// The file concerned, when known.
    public var path: String?

    public init(_ kind: Kind, _ message: String, offset: Int? = nil, path: String? = nil) {
        self.kind = kind
        self.message = message
        self.offset = offset
        self.path = path
    }

    public var description: String {
        var text = path.map { "\($0): " } ?? ""
        if let offset { text += "at byte \(offset): " }
        return text + message
    }
}
