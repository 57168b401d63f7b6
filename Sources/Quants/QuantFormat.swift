import TensorIO

/// One ggml tensor type that can be decoded to `Float` (candle's "one trait for every quant type").
///
/// The block structs (`BlockQ4_0`, `BlockQ4_K`, ...) conform for the block-quantized types and the
/// `ScalarFormat` enums for the plain float types. `Quantization` dispatches on a runtime
/// `GGMLType` to these conformances; call them directly when the type is known statically.
///
/// Results are bit-exact with ggml's `dequantize_row_*` as computed without fused multiply-add
/// (which is what gguf-py's `gguf.quants.dequantize` computes; the tests compare against it).
/// The host must be little-endian, as for ggml.
public protocol QuantFormat: Sendable {
    /// The ggml type this format decodes.
    static var type: GGMLType { get }

    /// Decodes `dst.count` elements (a whole number of blocks) from `src`.
    ///
    /// Usable on a single row of a matrix: pass that row's bytes and a row-sized output.
    ///
    /// - Parameters:
    ///   - src: Exactly `type.byteCount(elements: dst.count)` bytes of encoded blocks. Any byte
    ///     pattern is accepted (a NaN or infinite scale decodes to NaN or infinite values, as in
    ///     ggml).
    ///   - dst: Receives the decoded values.
    /// - Throws: `QuantError.partialBlock` when `dst.count` is not a multiple of the block size,
    ///   `QuantError.byteCountMismatch` when `src` has the wrong size.
    static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
        throws(QuantError)
}

/// A format that can also encode `Float` values, following ggml's reference quantizers
/// (`quantize_row_*_ref`).
public protocol QuantEncoder: QuantFormat {
    /// Encodes `src` (a whole number of blocks) into `dst`.
    ///
    /// - Parameters:
    ///   - src: The values to encode. Block types refuse NaN and infinities; the float types
    ///     (F32, F16, BF16) encode them like ggml does.
    ///   - dst: Exactly `type.byteCount(elements: src.count)` bytes.
    /// - Throws: `QuantError.partialBlock`, `QuantError.byteCountMismatch`, or
    ///   `QuantError.nonFiniteInput` (block types only).
    static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
        throws(QuantError)
}

extension QuantFormat {
    /// Reference dot product of one encoded row with a float vector: `sum(dequantize(row)[i] *
    /// vector[i])`.
    ///
    /// Each block is decoded exactly as by `dequantizeRow`; products are rounded to `Float` and
    /// summed in `Float` in element order (0, 1, 2, ...), so the result is deterministic and its
    /// error versus the exact sum is at most about `count * Float.ulpOfOne / 2 * sum(|a[i] * b[i]|)`.
    /// This is a scalar reference, not a fast kernel.
    ///
    /// - Parameters:
    ///   - row: Exactly `type.byteCount(elements: vector.count)` bytes.
    ///   - vector: The float operand; its length is the row's element count.
    /// - Throws: Like `dequantizeRow`.
    public static func dot(_ row: UnsafeRawBufferPointer, _ vector: UnsafeBufferPointer<Float>) throws(QuantError)
        -> Float
    {
        let blocks = try checkedBlockCount(type, bytes: row.count, elements: vector.count)
        guard blocks > 0, let rowBase = row.baseAddress, let vecBase = vector.baseAddress else { return 0 }
        let blockSize = type.blockSize, typeSize = type.typeSize
        // Decode up to 256 elements at a time into a stack buffer (every block size divides 256).
        let chunkBlocks = max(1, 256 / blockSize)
        var sum: Float = 0
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunkBlocks * blockSize) { tmp in
            var b = 0
            while b < blocks {
                let n = min(chunkBlocks, blocks - b)
                let src = UnsafeRawBufferPointer(start: rowBase + b * typeSize, count: n * typeSize)
                let out = UnsafeMutableBufferPointer(rebasing: tmp[0 ..< n * blockSize])
                // Cannot throw: the sizes were validated above.
                try? dequantizeRow(src, into: out)
                let v = vecBase + b * blockSize
                for i in 0 ..< n * blockSize { sum += out[i] * v[i] }
                b += n
            }
        }
        return sum
    }
}

/// Validates an (encoded bytes, element count) pair and returns the number of blocks.
@inline(__always)
func checkedBlockCount(_ type: GGMLType, bytes: Int, elements: Int) throws(QuantError) -> Int {
    guard elements >= 0, elements % type.blockSize == 0 else {
        throw .partialBlock(type: type, count: elements)
    }
    let expected = type.byteCount(elements: elements)
    guard expected == bytes else {
        throw .byteCountMismatch(type: type, count: elements, expected: expected, actual: bytes)
    }
    return elements / type.blockSize
}

/// Runs `body(src, dst, blocks)` on validated, non-empty buffers.
@inline(__always)
func withValidatedRow(
    _ type: GGMLType, _ src: UnsafeRawBufferPointer, _ dst: UnsafeMutableBufferPointer<Float>,
    _ body: (UnsafeRawPointer, UnsafeMutablePointer<Float>, Int) -> Void
) throws(QuantError) {
    let blocks = try checkedBlockCount(type, bytes: src.count, elements: dst.count)
    guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
    body(s, d, blocks)
}

/// Runs `body(block, out)` for each block of validated, non-empty buffers: `block` points at the
/// block's `type.typeSize` bytes in `src`, `out` at its `type.blockSize` floats in `dst`.
@inline(__always)
func decodeEachBlock(
    _ type: GGMLType, _ src: UnsafeRawBufferPointer, _ dst: UnsafeMutableBufferPointer<Float>,
    _ body: (UnsafeRawPointer, UnsafeMutablePointer<Float>) -> Void
) throws(QuantError) {
    let typeSize = type.typeSize, blockSize = type.blockSize
    try withValidatedRow(type, src, dst) { s, y, blocks in
        for b in 0 ..< blocks { body(s + b * typeSize, y + b * blockSize) }
    }
}

/// Runs `body(src, dst, blocks)` on validated, non-empty buffers, refusing non-finite input when
/// `finiteOnly`.
@inline(__always)
func withValidatedEncode(
    _ type: GGMLType, _ src: UnsafeBufferPointer<Float>, _ dst: UnsafeMutableRawBufferPointer, finiteOnly: Bool = true,
    _ body: (UnsafePointer<Float>, UnsafeMutableRawPointer, Int) -> Void
) throws(QuantError) {
    let blocks = try checkedBlockCount(type, bytes: dst.count, elements: src.count)
    guard blocks > 0, let s = src.baseAddress, let d = dst.baseAddress else { return }
    if finiteOnly, let bad = src.firstIndex(where: { !$0.isFinite }) {
        throw .nonFiniteInput(index: bad)
    }
    body(s, d, blocks)
}

/// Runs `body(x, block)` for each block of validated, non-empty, finite input: `x` points at the
/// block's `type.blockSize` floats in `src`, `block` at its `type.typeSize` bytes in `dst`.
@inline(__always)
func encodeEachBlock(
    _ type: GGMLType, _ src: UnsafeBufferPointer<Float>, _ dst: UnsafeMutableRawBufferPointer,
    _ body: (UnsafePointer<Float>, UnsafeMutableRawPointer) -> Void
) throws(QuantError) {
    let typeSize = type.typeSize, blockSize = type.blockSize
    try withValidatedEncode(type, src, dst) { xs, ys, blocks in
        for b in 0 ..< blocks { body(xs + b * blockSize, ys + b * typeSize) }
    }
}

// MARK: - Little-endian field access (raw pointer code, bounds guaranteed by the callers' block loops)

/// The `ggml_half` at `offset`, as a float.
@inline(__always)
func loadHalf(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    HalfFloat.f16ToFloat(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
}

@inline(__always)
func loadU8(_ p: UnsafeRawPointer, _ offset: Int) -> UInt8 {
    p.load(fromByteOffset: offset, as: UInt8.self)
}

@inline(__always)
func loadI8(_ p: UnsafeRawPointer, _ offset: Int) -> Int8 {
    p.load(fromByteOffset: offset, as: Int8.self)
}

@inline(__always)
func loadU16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
    UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}

@inline(__always)
func loadU32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

@inline(__always)
func storeHalf(_ p: UnsafeMutableRawPointer, _ offset: Int, _ value: Float) {
    p.storeBytes(of: HalfFloat.floatToF16(value).littleEndian, toByteOffset: offset, as: UInt16.self)
}

@inline(__always)
func storeU8(_ p: UnsafeMutableRawPointer, _ offset: Int, _ value: UInt8) {
    p.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
}

// MARK: - Plain float types

/// The unquantized ggml types as `QuantFormat`s.
public enum ScalarFormat {
    /// `GGML_TYPE_F32`: little-endian IEEE binary32, copied bit for bit (NaN payloads kept).
    public enum F32: QuantEncoder {
        public static var type: GGMLType { .f32 }

        public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
            throws(QuantError)
        {
            try withValidatedRow(type, src, dst) { s, d, n in
                #if _endian(little)
                UnsafeMutableRawPointer(d).copyMemory(from: s, byteCount: n * 4)
                #else
                for i in 0 ..< n { d[i] = Float(bitPattern: loadU32(s, 4 * i)) }
                #endif
            }
        }

        public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
            throws(QuantError)
        {
            try withValidatedEncode(type, src, dst, finiteOnly: false) { s, d, n in
                for i in 0 ..< n {
                    d.storeBytes(of: s[i].bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
                }
            }
        }
    }

    /// `GGML_TYPE_F16`: IEEE binary16. Encoding rounds to nearest, ties to even (overflow gives
    /// infinity), like ggml and numpy. Decoding is exact; a signaling NaN comes out quieted, as
    /// with ggml's F16C path (numpy keeps it signaling).
    public enum F16: QuantEncoder {
        public static var type: GGMLType { .f16 }

        public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
            throws(QuantError)
        {
            try withValidatedRow(type, src, dst) { s, d, n in
                for i in 0 ..< n { d[i] = loadHalf(s, 2 * i) }
            }
        }

        public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
            throws(QuantError)
        {
            try withValidatedEncode(type, src, dst, finiteOnly: false) { s, d, n in
                for i in 0 ..< n { storeHalf(d, 2 * i, s[i]) }
            }
        }
    }

    /// `GGML_TYPE_BF16`: the top half of a binary32. Decoding is exact; encoding rounds to
    /// nearest even and turns NaN into a quiet NaN, like ggml's `ggml_compute_fp32_to_bf16`.
    public enum BF16: QuantEncoder {
        public static var type: GGMLType { .bf16 }

        public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
            throws(QuantError)
        {
            try withValidatedRow(type, src, dst) { s, d, n in
                for i in 0 ..< n { d[i] = HalfFloat.bf16ToFloat(loadU16(s, 2 * i)) }
            }
        }

        public static func quantizeRow(_ src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableRawBufferPointer)
            throws(QuantError)
        {
            try withValidatedEncode(type, src, dst, finiteOnly: false) { s, d, n in
                for i in 0 ..< n {
                    d.storeBytes(of: HalfFloat.floatToBF16(s[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
                }
            }
        }
    }

    /// `GGML_TYPE_F64`: little-endian binary64, rounded to the nearest `Float` (decode only).
    public enum F64: QuantFormat {
        public static var type: GGMLType { .f64 }

        public static func dequantizeRow(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableBufferPointer<Float>)
            throws(QuantError)
        {
            try withValidatedRow(type, src, dst) { s, d, n in
                for i in 0 ..< n {
                    let bits = UInt64(littleEndian: s.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                    d[i] = Float(Double(bitPattern: bits))
                }
            }
        }
    }
}
