import TensorIO

/// The one error type of the GGUF module: a malformed file, a refused writer input, or an OS
/// failure while opening or writing a file.
///
/// `description` is a complete message for a user, for example
/// `model.gguf: byte 1234: tensor 'blk.0.attn_q.weight': offset 96 is not a multiple of the alignment 32`.
public struct GGUFError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The part of the file being read when a read ran past the end of the file.
    public enum Section: String, Sendable, Equatable {
        case header = "header"
        case key = "metadata key"
        case value = "metadata value"
        case tensorInfo = "tensor info"
        case tensorData = "tensor data"
    }

    /// What is wrong.
    public enum Kind: Sendable, Equatable {
        /// The operating system failed to open, map or write a file.
        case file(FileError)
        /// The first four bytes are not `GGUF`.
        case badMagic([UInt8])
        /// The version field reads as a byte-swapped small number: the file is big-endian.
        case bigEndian(version: UInt32)
        /// Version 0, 1 (the retired 32-bit-count layout) or a future version.
        case unsupportedVersion(UInt32)
        /// A read needed `needed` bytes but only `remaining` were left in the file.
        case truncated(Section, needed: Int, remaining: Int)
        /// The header declares more metadata entries than `GGUFLimits.maxKeyCount`.
        case tooManyKeys(UInt64)
        /// The header declares more tensors than `GGUFLimits.maxTensorCount`.
        case tooManyTensors(UInt64)
        /// A key, string value or tensor name is longer than its limit.
        case stringTooLong(length: UInt64, limit: Int)
        /// A metadata key of zero bytes.
        case emptyKey
        /// A key or tensor name that is not valid UTF-8.
        case invalidUTF8
        /// A key or tensor name containing a NUL byte (C readers would see it truncated).
        case embeddedNUL
        /// An array declaring more elements than `GGUFLimits.maxArrayCount`.
        case arrayTooLong(UInt64)
        /// An array whose elements are arrays.
        case nestedArray
        /// A value type id outside 0...12.
        case unknownValueType(UInt32)
        /// A boolean byte other than 0 or 1.
        case invalidBool(UInt8)
        /// A metadata key that appeared before.
        case duplicateKey
        /// `general.alignment` is not a UINT32.
        case badAlignmentType(GGUFValueType)
        /// `general.alignment` is zero or not a power of two.
        case alignmentNotPowerOfTwo(UInt64)
        /// A tensor with more than `GGUFLimits.maxDimensions` dimensions.
        case tooManyDimensions(UInt64)
        /// A negative dimension (dimensions are signed 64-bit in ggml).
        case negativeDimension(index: Int, value: Int64)
        /// The product of the dimensions does not fit in a signed 64-bit integer.
        case elementCountOverflow
        /// A tensor type id that ggml does not define (or has retired).
        case unknownTensorType(UInt32)
        /// The row length (first dimension) is not a multiple of the type's block size.
        case rowNotMultipleOfBlock(rowLength: Int, blockSize: Int)
        /// The tensor's size in bytes does not fit in an `Int`.
        case byteSizeOverflow
        /// A tensor offset that is not a multiple of the alignment.
        case misalignedOffset(offset: UInt64, alignment: Int)
        /// A tensor whose data does not lie inside the file.
        case offsetOutOfBounds(offset: UInt64, byteCount: Int, available: Int)
        /// Two tensors whose data ranges share bytes.
        case overlappingTensors(other: String)
        /// A tensor name that appeared before.
        case duplicateTensorName
        /// Writer only: the bytes supplied for a tensor are not as many as its type and shape need.
        case dataSizeMismatch(expected: Int, actual: Int)
    }

    /// What is wrong.
    public var kind: Kind
    /// The byte offset in the file of the offending field, or nil for writer errors and OS errors.
    public var offset: Int?
    /// The metadata key concerned, if any.
    public var key: String?
    /// The tensor concerned, if any.
    public var tensor: String?
    /// The file concerned, if any (nil for in-memory input).
    public var path: String?

    /// An error of `kind`, located by whichever of `offset`, `key`, `tensor` and `path` are known.
    public init(_ kind: Kind, offset: Int? = nil, key: String? = nil, tensor: String? = nil, path: String? = nil) {
        self.kind = kind
        self.offset = offset
        self.key = key
        self.tensor = tensor
        self.path = path
    }

    public var description: String {
        var text = ""
        if let path { text += "\(path): " }
        if let offset { text += "byte \(offset): " }
        if let key { text += "key '\(key)': " }
        if let tensor { text += "tensor '\(tensor)': " }
        return text + kind.message
    }
}

extension GGUFError.Kind {
    /// A sentence describing the problem, without location.
    var message: String {
        switch self {
        case .file(let error):
            return error.description
        case .badMagic(let bytes):
            let shown = bytes.map { $0 >= 0x20 && $0 < 0x7F ? String(UnicodeScalar($0)) : "?" }.joined()
            return "not a GGUF file (magic is '\(shown)', expected 'GGUF')"
        case .bigEndian(let version):
            return "the file is big-endian (its version field reads 0x\(hex(version)), a byte-swapped \(version.byteSwapped)); only little-endian GGUF files are supported"
        case .unsupportedVersion(let version):
            if version == 1 {
                return "GGUF version 1 is no longer supported (re-convert the model with a current converter)"
            }
            return "unsupported GGUF version \(version) (supported: 2 and 3)"
        case .truncated(let section, let needed, let remaining):
            return "truncated file: reading the \(section.rawValue) needs \(needed) bytes but only \(remaining) remain"
        case .tooManyKeys(let count):
            return "the header declares \(count) metadata entries, more than the limit of \(GGUFLimits.maxKeyCount)"
        case .tooManyTensors(let count):
            return "the header declares \(count) tensors, more than the limit of \(GGUFLimits.maxTensorCount)"
        case .stringTooLong(let length, let limit):
            return "string of \(length) bytes is longer than the limit of \(limit) bytes"
        case .emptyKey:
            return "metadata key is empty"
        case .invalidUTF8:
            return "name is not valid UTF-8"
        case .embeddedNUL:
            return "name contains a NUL byte"
        case .arrayTooLong(let count):
            return "array of \(count) elements is longer than the limit of \(GGUFLimits.maxArrayCount)"
        case .nestedArray:
            return "arrays of arrays are not supported"
        case .unknownValueType(let id):
            return "unknown metadata value type \(id) (valid: 0...12)"
        case .invalidBool(let byte):
            return "boolean byte is \(byte), must be 0 or 1"
        case .duplicateKey:
            return "duplicate metadata key"
        case .badAlignmentType(let type):
            return "general.alignment must be a UINT32, not \(type)"
        case .alignmentNotPowerOfTwo(let value):
            return "alignment \(value) is not a non-zero power of two"
        case .tooManyDimensions(let count):
            return "\(count) dimensions, more than the limit of \(GGUFLimits.maxDimensions)"
        case .negativeDimension(let index, let value):
            return "dimension \(index) is negative (\(value))"
        case .elementCountOverflow:
            return "the element count (product of the dimensions) overflows a signed 64-bit integer"
        case .unknownTensorType(let id):
            return "unknown or retired ggml tensor type \(id)"
        case .rowNotMultipleOfBlock(let rowLength, let blockSize):
            return "row length \(rowLength) is not a multiple of the type's block size \(blockSize)"
        case .byteSizeOverflow:
            return "the size in bytes overflows"
        case .misalignedOffset(let offset, let alignment):
            return "offset \(offset) is not a multiple of the alignment \(alignment)"
        case .offsetOutOfBounds(let offset, let byteCount, let available):
            return "data at offset \(offset) of \(byteCount) bytes lies outside the data section of \(available) bytes"
        case .overlappingTensors(let other):
            return "data overlaps the data of tensor '\(other)'"
        case .duplicateTensorName:
            return "duplicate tensor name"
        case .dataSizeMismatch(let expected, let actual):
            return "\(actual) bytes of data supplied, the type and shape need \(expected)"
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, 8 - digits.count)) + digits
}

/// Sanity limits of the reader and writer. Every count and length is also checked against the
/// bytes remaining in the file before anything is allocated for it, so these caps are a second
/// line of defence, not the only one.
public enum GGUFLimits {
    /// Most metadata entries in one file.
    public static let maxKeyCount = 1 << 20
    /// Most tensors in one file.
    public static let maxTensorCount = 1 << 20
    /// Longest metadata key in bytes (the GGUF specification's 2^16 - 1).
    public static let maxKeyLength = 65_535
    /// Longest string value in bytes (1 GiB, as ggml).
    public static let maxStringLength = 1 << 30
    /// Most elements in one array (2^30, as ggml).
    public static let maxArrayCount = 1 << 30
    /// Longest tensor name in bytes (ggml's `GGML_MAX_NAME` of 64 including the C terminator).
    public static let maxTensorNameLength = 63
    /// Most tensor dimensions (ggml's `GGML_MAX_DIMS`).
    public static let maxDimensions = 4
    /// The alignment used when `general.alignment` is absent.
    public static let defaultAlignment = 32
}
