import CKernels
import Quants
import TensorIO

/// One set of CPU kernels at a fixed instruction-set level (see `CKernels/include/ckernels.h`).
///
/// The kernels give the same bits on every set (their results are defined by the scalar reference);
/// only speed differs. Every call takes its set (`using:`, default `.active`), so one process can run
/// several levels side by side; nothing changes the level of a running process.
public struct KernelSet: @unchecked Sendable, Equatable, CustomStringConvertible {
    // The C kernel tables are immutable static data, so the pointer can be shared freely.
    let raw: OpaquePointer

    /// Instruction-set levels, lowest first.
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case scalar = 0, avx2 = 1, avx512 = 2
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    init(_ raw: OpaquePointer) { self.raw = raw }

    /// "scalar", "avx2", "avx2-vnni" or "avx512".
    public var name: String { String(cString: spk_kernels_name(raw)) }

    /// The level this set runs at.
    public var level: Level { Level(rawValue: Int(spk_kernels_isa(raw).rawValue)) ?? .scalar }

    public var description: String { name }

    /// The set in use: the best the machine supports, or `SOFTPROMPT_ISA=scalar|avx2|avx512` (read once,
    /// clamped to what the machine supports).
    public static var active: KernelSet { KernelSet(spk_kernels_active()) }

    /// The best level the CPU and operating system support.
    public static var detectedLevel: Level { Level(rawValue: Int(spk_detect_isa().rawValue)) ?? .scalar }

    /// The set for `level`, clamped to what the machine supports.
    public static func level(_ level: Level) -> KernelSet {
        KernelSet(spk_kernels_get(spk_isa(rawValue: UInt32(level.rawValue))))
    }

    /// Every set this machine can run, scalar first (tests and benchmarks).
    public static var all: [KernelSet] {
        var count: Int32 = 0
        let list = spk_kernels_all(&count)!
        return (0 ..< Int(count)).map { KernelSet(list[$0]!) }
    }
}

/// A kernel call refused its arguments.
public struct KernelError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A dimension, stride, range or buffer size does not fit the operation.
        case invalidArgument
        /// The tensor type has no kernel for this operation.
        case unsupportedType
        /// A scratch buffer could not be allocated.
        case outOfMemory
    }

    public var kind: Kind
    /// The operation and what was wrong, for the message.
    public var detail: String

    public var description: String { "\(detail) (\(kind))" }

    static func check(_ code: Int32, _ what: String) throws(KernelError) {
        switch code {
        case 0: return
        case Int32(SPK_ETYPE): throw KernelError(kind: .unsupportedType, detail: what)
        case Int32(SPK_ENOMEM): throw KernelError(kind: .outOfMemory, detail: what)
        default: throw KernelError(kind: .invalidArgument, detail: what)
        }
    }
}

/// Safe entry points to the C kernels: every buffer is checked against the extent the call touches
/// (with overflow-checked arithmetic) before any pointer crosses into C.
public enum Kernels {
    /// Bytes of one row of `k` elements of `type`, or nil for a partial block or an unknown type.
    public static func rowBytes(_ type: GGMLType, _ k: Int) -> Int? {
        let n = spk_row_bytes(Int32(type.rawValue), Int64(k))
        return n > 0 ? n : nil
    }

    /// The activation type of the int8 path for a weight type (Q8_0 or Q8_K), or nil if it has none.
    public static func activationType(for weight: GGMLType) -> GGMLType? {
        let t = spk_vec_dot_type(Int32(weight.rawValue))
        return t >= 0 ? GGMLType(rawValue: UInt32(t)) : nil
    }

    /// Elements a strided matrix of `rows` rows of `cols` used elements spans (nil on overflow).
    static func extent(rows: Int, cols: Int, stride: Int) -> Int? {
        guard rows >= 0, cols >= 0, stride >= cols else { return nil }
        if rows == 0 { return 0 }
        guard let r = Checked.mul(rows - 1, stride) else { return nil }
        return Checked.add(r, cols)
    }

    static func require(_ ok: Bool, _ what: @autoclosure () -> String) throws(KernelError) {
        if !ok { throw KernelError(kind: .invalidArgument, detail: what()) }
    }

    /// `y[m, n] = Σ_k x[m, k] · W[n, k]` for `n` in `rows`, overwriting those columns of `y`.
    ///
    /// Bit-identical on every kernel set and for every `m` (see `spk_matmul_f32`).
    /// - Parameters:
    ///   - type: the weight type (F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K).
    ///   - weights: the weight matrix, row `n` at byte `n · rowBytes`.
    ///   - rows: the weight rows (output columns) to compute; disjoint ranges can run on separate threads.
    ///   - k: the inner dimension (a multiple of 32, or of 256 for K-quants).
    ///   - x: `m` rows of `k` floats, row stride `ldx` (default `k`).
    ///   - y: `m` rows, row stride `ldy` (≥ `rows.upperBound`).
    /// - Throws: `KernelError` if a buffer is too small or a dimension does not fit the type.
    public static func matmul(_ type: GGMLType, weights: UnsafeRawBufferPointer, rowBytes: Int, rows: Range<Int>, k: Int,
                              x: UnsafeBufferPointer<Float>, m: Int, ldx: Int? = nil, y: UnsafeMutableBufferPointer<Float>,
                              ldy: Int, using kernels: KernelSet = .active) throws(KernelError) {
        let ldx = ldx ?? k
        guard let need = Kernels.rowBytes(type, k) else { throw KernelError(kind: .invalidArgument, detail: "matmul: k = \(k) is not whole \(type) blocks") }
        try require(rows.lowerBound >= 0 && rowBytes >= need, "matmul: row range or row size")
        if !rows.isEmpty {
            try require(extent(rows: rows.upperBound, cols: need, stride: rowBytes).map { $0 <= weights.count } ?? false, "matmul: weights too small")
        }
        try require(extent(rows: m, cols: k, stride: ldx).map { $0 <= x.count } ?? false, "matmul: x too small")
        try require(extent(rows: m, cols: rows.upperBound, stride: ldy).map { $0 <= y.count } ?? false, "matmul: y too small")
        try require(Int32(exactly: k) != nil && Int32(exactly: m) != nil && Int32(exactly: ldx) != nil && Int32(exactly: ldy) != nil
                    && Int32(exactly: rows.upperBound) != nil, "matmul: dimensions exceed Int32")
        try KernelError.check(spk_matmul_f32(kernels.raw, Int32(type.rawValue), weights.baseAddress, rowBytes,
                                             Int32(rows.lowerBound), Int32(rows.upperBound), Int32(k), x.baseAddress,
                                             Int32(m), Int32(ldx), y.baseAddress, Int32(ldy)), "matmul \(type)")
    }

    /// `dx[m, c] += Σ_n dy[m, n] · W[n, c]` for `c` in `columns`: the backward of `matmul` w.r.t. `x`.
    ///
    /// Bit-identical on every kernel set (see `spk_matmul_t_f32`).
    /// - Parameters:
    ///   - n: the number of weight rows (all are read).
    ///   - columns: the columns of `dx` to update; bounds are multiples of 32 (256 for K-quants) or `k`.
    ///   - dy: `m` rows of `n` floats, stride `ldy` (default `n`).
    ///   - dx: `m` rows, stride `ldx` (default `k`), accumulated into.
    /// - Throws: `KernelError` if a buffer is too small or a range is misaligned.
    public static func matmulTransposed(_ type: GGMLType, weights: UnsafeRawBufferPointer, rowBytes: Int, n: Int, k: Int,
                                        dy: UnsafeBufferPointer<Float>, m: Int, ldy: Int? = nil,
                                        dx: UnsafeMutableBufferPointer<Float>, ldx: Int? = nil, columns: Range<Int>? = nil,
                                        using kernels: KernelSet = .active) throws(KernelError) {
        let ldy = ldy ?? n, ldx = ldx ?? k, columns = columns ?? 0 ..< k
        guard let need = Kernels.rowBytes(type, k) else { throw KernelError(kind: .invalidArgument, detail: "matmulTransposed: k = \(k) is not whole \(type) blocks") }
        try require(rowBytes >= need && columns.lowerBound >= 0 && columns.upperBound <= k, "matmulTransposed: row size or column range")
        try require(extent(rows: n, cols: need, stride: rowBytes).map { $0 <= weights.count } ?? false, "matmulTransposed: weights too small")
        try require(extent(rows: m, cols: n, stride: ldy).map { $0 <= dy.count } ?? false, "matmulTransposed: dy too small")
        try require(extent(rows: m, cols: columns.upperBound, stride: ldx).map { $0 <= dx.count } ?? false, "matmulTransposed: dx too small")
        try require(Int32(exactly: k) != nil && Int32(exactly: m) != nil && Int32(exactly: n) != nil && Int32(exactly: ldx) != nil
                    && Int32(exactly: ldy) != nil, "matmulTransposed: dimensions exceed Int32")
        try KernelError.check(spk_matmul_t_f32(kernels.raw, Int32(type.rawValue), weights.baseAddress, rowBytes, Int32(n),
                                               Int32(k), dy.baseAddress, Int32(m), Int32(ldy), dx.baseAddress, Int32(ldx),
                                               Int32(columns.lowerBound), Int32(columns.upperBound)), "matmulTransposed \(type)")
    }

    /// Quantizes `m` rows of `k` floats to `type` (Q8_0, Q8_1 or Q8_K), bit-identical to ggml's reference
    /// quantizers, into rows of `rowBytes` bytes (at least `rowBytes(type, k)`).
    /// - Throws: `KernelError` if a buffer is too small or `k` is not whole blocks.
    public static func quantizeActivations(_ type: GGMLType, x: UnsafeBufferPointer<Float>, m: Int, k: Int, ldx: Int? = nil,
                                           into out: UnsafeMutableRawBufferPointer, rowBytes: Int,
                                           using kernels: KernelSet = .active) throws(KernelError) {
        let ldx = ldx ?? k
        guard let need = Kernels.rowBytes(type, k) else { throw KernelError(kind: .invalidArgument, detail: "quantizeActivations: k = \(k) is not whole \(type) blocks") }
        try require(rowBytes >= need, "quantizeActivations: row size")
        try require(extent(rows: m, cols: k, stride: ldx).map { $0 <= x.count } ?? false, "quantizeActivations: x too small")
        try require(extent(rows: m, cols: need, stride: rowBytes).map { $0 <= out.count } ?? false, "quantizeActivations: output too small")
        try require(Int32(exactly: k) != nil && Int32(exactly: m) != nil && Int32(exactly: ldx) != nil, "quantizeActivations: dimensions exceed Int32")
        try KernelError.check(spk_quantize_rows(kernels.raw, Int32(type.rawValue), x.baseAddress, Int32(m), Int32(ldx), Int32(k),
                                                out.baseAddress, rowBytes), "quantizeActivations \(type)")
    }

    /// The int8 path: `y[m, n]` for `n` in `rows` from activations quantized to `activationType(for: type)`.
    ///
    /// Bit-identical on every kernel set (see `spk_matmul_q8` for the exact float steps and the error budget).
    /// - Throws: `KernelError` if a buffer is too small or the type has no int8 path.
    public static func matmulInt8(_ type: GGMLType, weights: UnsafeRawBufferPointer, rowBytes: Int, rows: Range<Int>, k: Int,
                                  xq: UnsafeRawBufferPointer, xqRowBytes: Int, m: Int, y: UnsafeMutableBufferPointer<Float>,
                                  ldy: Int, using kernels: KernelSet = .active) throws(KernelError) {
        guard let act = activationType(for: type) else { throw KernelError(kind: .unsupportedType, detail: "matmulInt8: \(type)") }
        guard let need = Kernels.rowBytes(type, k), let xneed = Kernels.rowBytes(act, k) else {
            throw KernelError(kind: .invalidArgument, detail: "matmulInt8: k = \(k) is not whole \(type) blocks")
        }
        try require(rows.lowerBound >= 0 && rowBytes >= need && xqRowBytes >= xneed, "matmulInt8: row range or row sizes")
        if !rows.isEmpty {
            try require(extent(rows: rows.upperBound, cols: need, stride: rowBytes).map { $0 <= weights.count } ?? false, "matmulInt8: weights too small")
        }
        try require(extent(rows: m, cols: xneed, stride: xqRowBytes).map { $0 <= xq.count } ?? false, "matmulInt8: xq too small")
        try require(extent(rows: m, cols: rows.upperBound, stride: ldy).map { $0 <= y.count } ?? false, "matmulInt8: y too small")
        try require(Int32(exactly: k) != nil && Int32(exactly: m) != nil && Int32(exactly: ldy) != nil
                    && Int32(exactly: rows.upperBound) != nil, "matmulInt8: dimensions exceed Int32")
        try KernelError.check(spk_matmul_q8(kernels.raw, Int32(type.rawValue), weights.baseAddress, rowBytes,
                                            Int32(rows.lowerBound), Int32(rows.upperBound), Int32(k), xq.baseAddress,
                                            xqRowBytes, Int32(m), y.baseAddress, Int32(ldy)), "matmulInt8 \(type)")
    }
}
