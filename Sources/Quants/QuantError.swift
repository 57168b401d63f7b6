/// Why a dequantization, quantization or dot product was refused.
///
/// Every public entry point of this module validates its arguments and throws one of these
/// instead of trapping.
public enum QuantError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `type` is a known ggml type, but `operation` ("dequantize", "quantize", "dot") is not
    /// implemented for it.
    case unsupported(type: GGMLType, operation: String)
    /// `count` elements is negative or not a whole number of `type`'s blocks.
    case partialBlock(type: GGMLType, count: Int)
    /// The encoded buffer holds `actual` bytes, but `count` elements of `type` need `expected`
    /// (nil when that byte count overflows `Int`).
    case byteCountMismatch(type: GGMLType, count: Int, expected: Int?, actual: Int)
    /// The float buffer holds `actual` elements where `expected` were needed.
    case elementCountMismatch(expected: Int, actual: Int)
    /// Quantization input element `index` is NaN or infinite.
    case nonFiniteInput(index: Int)

    public var description: String {
        switch self {
        case let .unsupported(type, operation):
            let supported: [GGMLType] =
                switch operation {
                case "quantize": Quantization.quantizableTypes
                default: Quantization.dequantizableTypes
                }
            return "\(operation) is not supported for ggml type \(type) (id \(type.rawValue)); supported types: "
                + supported.map(\.name).joined(separator: ", ")
        case let .partialBlock(type, count):
            return "\(count) elements is not a whole number of \(type) blocks of \(type.blockSize)"
        case let .byteCountMismatch(type, count, expected, actual):
            let need = expected.map { "\($0) bytes" } ?? "more bytes than fit in Int"
            return "\(count) elements of \(type) need \(need), got \(actual)"
        case let .elementCountMismatch(expected, actual):
            return "float buffer has \(actual) elements, expected \(expected)"
        case let .nonFiniteInput(index):
            return "cannot quantize a non-finite value (element \(index))"
        }
    }
}
