/// Why a safetensors file, a sharded checkpoint, or a write was refused.
///
/// One error type for the whole module: `kind` says which rule was broken, `offset` (when
/// relevant) is the absolute byte offset in the file, `tensor` names the tensor concerned, and
/// `message` explains it in plain words.
public struct SafetensorsError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The rule that was broken. Formats/safetensors.md maps each rule to its case.
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        // Opening files.
        /// A file could not be opened, mapped, read or written.
        case io
        // Framing.
        /// The file is shorter than the 8-byte header length.
        case fileTooSmall
        /// The header length exceeds the 100,000,000-byte cap.
        case headerTooLarge
        /// The header length runs past the end of the file.
        case headerExceedsFile
        /// The header does not start with `{`.
        case headerNotObject
        /// The header is not well-formed UTF-8.
        case headerNotUTF8
        /// The header is not valid JSON (syntax, nesting, numbers, escapes, trailing bytes).
        case headerNotJSON
        /// The header repeats a key.
        case duplicateKey
        // Header content.
        /// `__metadata__` is not an object of strings.
        case invalidMetadata
        /// A tensor entry is not an object with exactly `dtype`, `shape`, `data_offsets`.
        case invalidTensorEntry
        /// A dtype we do not support (named in the message).
        case unsupportedDType
        /// A shape that is not an array of non-negative integers.
        case invalidShape
        /// The element count or byte size of a shape overflows.
        case sizeOverflow
        /// `data_offsets` is not `[begin, end]` of non-negative integers with begin ≤ end.
        case invalidDataOffsets
        /// `end - begin` differs from the byte size implied by dtype and shape.
        case tensorSizeMismatch
        // Data section layout.
        /// Two tensors share bytes.
        case overlappingTensors
        /// Bytes between tensors (or before the first) belong to no tensor.
        case gapBetweenTensors
        /// A tensor ends past the end of the file.
        case truncatedData
        /// Bytes after the last tensor belong to no tensor.
        case trailingData
        // Access.
        /// No tensor has that name.
        case tensorNotFound
        /// A float conversion was asked of a non-float tensor.
        case notFloatingPoint
        // Sharded checkpoints.
        /// A directory holds neither `model.safetensors.index.json` nor `model.safetensors`.
        case noCheckpoint
        /// The index is not `{"weight_map": {name: file, ...}, "metadata": {...}}`.
        case invalidIndex
        /// A shard name is not a plain file name in the index's directory.
        case unsafeShardName
        /// A shard named by the index does not exist.
        case missingShard
        /// The index maps a tensor to a shard that does not contain it.
        case tensorMissingFromShard
        /// A shard holds a tensor the index does not list.
        case tensorNotInIndex
        /// A tensor is stored in two shards.
        case tensorInTwoShards
        // Writing.
        /// Two tensors added under one name.
        case duplicateTensorName
        /// A tensor name that cannot be written (`__metadata__`, or containing U+0000).
        case invalidTensorName
        /// The bytes supplied for a tensor differ from its dtype and shape.
        case dataLengthMismatch
    }

    /// The rule that was broken.
    public var kind: Kind
    /// A human-readable explanation.
    public var message: String
    /// The file concerned (`"<memory>"` for in-memory data; nil for writer argument errors).
    public var path: String?
    /// Absolute byte offset in the file where the problem lies, when there is one.
    public var offset: Int?
    /// The tensor concerned, when there is one.
    public var tensor: String?

    public init(_ kind: Kind, _ message: String, path: String? = nil, offset: Int? = nil, tensor: String? = nil) {
        self.kind = kind
        self.message = message
        self.path = path
        self.offset = offset
        self.tensor = tensor
    }

    public var description: String {
        var text = path.map { "\($0): " } ?? ""
        text += message
        if let offset { text += " (at byte \(offset))" }
        return text
    }
}
