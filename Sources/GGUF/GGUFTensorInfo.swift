import Quants
import TensorIO

/// Where one tensor lives in a GGUF file and what it holds.
public struct GGUFTensorInfo: Sendable, Equatable, CustomStringConvertible {
    /// The tensor's name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// The element type.
    public let type: GGMLType
    /// The dimensions in ggml order: `shape[0]` (ne0) is the row length, the fastest-varying
    /// dimension. This is the reverse of the NumPy/PyTorch order.
    public let shape: [Int]
    /// The number of elements (the product of `shape`; 1 for zero dimensions).
    public let elementCount: Int
    /// The size of the tensor's data in bytes.
    public let byteCount: Int
    /// The offset of the data relative to the start of the data section (`GGUFFile.dataOffset`).
    public let offset: Int
    /// The offset of the data from the start of the file.
    public let absoluteOffset: Int

    public var description: String {
        "\(name) \(type) \(shape) @\(absoluteOffset) (\(byteCount) bytes)"
    }
}

/// A problem found in a key or tensor name: its kind and the byte index within the name.
struct NameProblem: Error {
    var kind: GGUFError.Kind
    var index: Int
}

/// A problem found in a tensor's shape or type.
struct ShapeProblem: Error {
    var kind: GGUFError.Kind
}

/// Rules shared by the reader and the writer, so that everything written can be read back.
enum GGUFRules {
    /// Decodes a key or tensor name, refusing NUL bytes and ill-formed UTF-8.
    static func decodeName(_ bytes: UnsafeRawBufferPointer) throws(NameProblem) -> String {
        if let nul = bytes.firstIndex(of: 0) { throw NameProblem(kind: .embeddedNUL, index: nul) }
        guard let name = String(validating: bytes, as: UTF8.self) else {
            throw NameProblem(kind: .invalidUTF8, index: 0)
        }
        return name
    }

    /// Checks a shape (ggml order, at most `maxDimensions` non-negative dimensions) against a type
    /// and returns the element and byte counts.
    static func layout(type: GGMLType, shape: [Int]) throws(ShapeProblem) -> (elements: Int, bytes: Int) {
        if shape.count > GGUFLimits.maxDimensions {
            throw ShapeProblem(kind: .tooManyDimensions(UInt64(shape.count)))
        }
        for (index, dim) in shape.enumerated() where dim < 0 {
            throw ShapeProblem(kind: .negativeDimension(index: index, value: Int64(dim)))
        }
        // A zero dimension makes an empty tensor whatever the others are (ggml accepts those).
        let elements: Int
        if shape.contains(0) {
            elements = 0
        } else {
            guard let product = Checked.product(shape) else { throw ShapeProblem(kind: .elementCountOverflow) }
            elements = product
        }
        let rowLength = shape.first ?? 1
        if rowLength % type.blockSize != 0 {
            throw ShapeProblem(kind: .rowNotMultipleOfBlock(rowLength: rowLength, blockSize: type.blockSize))
        }
        guard let bytes = type.byteCount(elements: elements) else { throw ShapeProblem(kind: .byteSizeOverflow) }
        return (elements, bytes)
    }

    /// Whether `value` is a non-zero power of two.
    static func isPowerOfTwo(_ value: UInt64) -> Bool { value != 0 && value & (value - 1) == 0 }
}
