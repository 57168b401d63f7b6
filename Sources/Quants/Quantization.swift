/// Dequantization, quantization and reference dot products selected by a runtime `GGMLType`.
///
/// Supported for dequantization: F32, F16, BF16, F64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K,
/// Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL, IQ4_XS. Supported for quantization: F32, F16, BF16, Q4_0,
/// Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K. Every other type is refused with
/// `QuantError.unsupported`.
public enum Quantization {
    /// The types `dequantize` and `dot` accept, in id order.
    public static let dequantizableTypes: [GGMLType] = GGMLType.allCases.filter { format(for: $0) != nil }

    /// The types `quantize` accepts, in id order.
    public static let quantizableTypes: [GGMLType] = GGMLType.allCases.filter { encoder(for: $0) != nil }

    /// The decoder of `type`: a scalar format, or the block layout of `type` when it decodes; nil
    /// when it is not supported.
    public static func format(for type: GGMLType) -> (any QuantFormat.Type)? {
        switch type {
        case .f32: ScalarFormat.F32.self
        case .f16: ScalarFormat.F16.self
        case .bf16: ScalarFormat.BF16.self
        case .f64: ScalarFormat.F64.self
        default: type.blockLayout as? any QuantFormat.Type
        }
    }

    /// The encoder of `type`, or nil when it is not supported.
    public static func encoder(for type: GGMLType) -> (any QuantEncoder.Type)? {
        format(for: type) as? any QuantEncoder.Type
    }

    /// Decodes `count` elements of `type` into `dst`.
    ///
    /// - Parameters:
    ///   - type: The encoding of `bytes`.
    ///   - bytes: Exactly `type.byteCount(elements: count)` bytes.
    ///   - count: Number of elements, a multiple of `type.blockSize`.
    ///   - dst: Exactly `count` floats.
    /// - Throws: `QuantError.unsupported` for types without a decoder, `.partialBlock`,
    ///   `.byteCountMismatch` or `.elementCountMismatch` for inconsistent sizes.
    public static func dequantize(
        _ type: GGMLType, bytes: UnsafeRawBufferPointer, count: Int, into dst: UnsafeMutableBufferPointer<Float>
    ) throws(QuantError) {
        guard let format = format(for: type) else { throw .unsupported(type: type, operation: "dequantize") }
        _ = try checkedBlockCount(type, bytes: bytes.count, elements: count)
        guard dst.count == count else { throw .elementCountMismatch(expected: count, actual: dst.count) }
        try format.dequantizeRow(bytes, into: dst)
    }

    /// Decodes `count` elements of `type` into a new array.
    ///
    /// - Throws: Like `dequantize(_:bytes:count:into:)`.
    public static func dequantize(_ type: GGMLType, bytes: UnsafeRawBufferPointer, count: Int) throws(QuantError)
        -> [Float]
    {
        guard let format = format(for: type) else { throw .unsupported(type: type, operation: "dequantize") }
        _ = try checkedBlockCount(type, bytes: bytes.count, elements: count)
        var failure: QuantError?
        let result = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            do throws(QuantError) {
                try format.dequantizeRow(bytes, into: buffer)
                initialized = count
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return result
    }

    /// Encodes `values` as `type`, following ggml's reference quantizers.
    ///
    /// - Parameters:
    ///   - type: The target encoding.
    ///   - values: A multiple of `type.blockSize` values; finite for the block types.
    /// - Returns: `type.byteCount(elements: values.count)` bytes.
    /// - Throws: `QuantError.unsupported`, `.partialBlock` or `.nonFiniteInput`.
    public static func quantize(_ type: GGMLType, _ values: UnsafeBufferPointer<Float>) throws(QuantError) -> [UInt8] {
        guard let encoder = encoder(for: type) else { throw .unsupported(type: type, operation: "quantize") }
        guard values.count % type.blockSize == 0 else { throw .partialBlock(type: type, count: values.count) }
        guard let size = type.byteCount(elements: values.count) else {
            throw .byteCountMismatch(type: type, count: values.count, expected: nil, actual: 0)
        }
        var failure: QuantError?
        let result = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            do throws(QuantError) {
                try encoder.quantizeRow(values, into: UnsafeMutableRawBufferPointer(buffer))
                initialized = size
            } catch {
                failure = error
                initialized = 0
            }
        }
        if let failure { throw failure }
        return result
    }

    /// Encodes `values` as `type` into `dst` (exactly `type.byteCount(elements: values.count)`
    /// bytes).
    ///
    /// - Throws: Like `quantize(_:_:)`, plus `.byteCountMismatch` when `dst` has the wrong size.
    public static func quantize(
        _ type: GGMLType, _ values: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer
    ) throws(QuantError) {
        guard let encoder = encoder(for: type) else { throw .unsupported(type: type, operation: "quantize") }
        try encoder.quantizeRow(values, into: dst)
    }

    /// Reference dot product of an encoded row with a float vector (see `QuantFormat.dot`):
    /// products rounded to `Float`, summed in `Float` in element order.
    ///
    /// - Parameters:
    ///   - type: The encoding of `row`.
    ///   - row: Exactly `type.byteCount(elements: vector.count)` bytes.
    ///   - vector: The float operand.
    /// - Throws: `QuantError.unsupported`, `.partialBlock` or `.byteCountMismatch`.
    public static func dot(_ type: GGMLType, row: UnsafeRawBufferPointer, _ vector: UnsafeBufferPointer<Float>)
        throws(QuantError) -> Float
    {
        guard let format = format(for: type) else { throw .unsupported(type: type, operation: "dot") }
        return try format.dot(row, vector)
    }
}
