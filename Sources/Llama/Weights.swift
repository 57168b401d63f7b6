import Dispatch
import Kernels
import Quants

/// A frozen weight matrix of `rows` × `cols` elements (ggml order: each of the `rows` rows holds `cols`
/// contiguous elements, in `type`), viewed in place in a read-only mapping or an owned buffer.
///
/// For a linear layer, `rows` is the output width N and `cols` the input width K: y = W x.
public struct WeightMatrix: @unchecked Sendable {
    // @unchecked: `bytes` points into storage the model keeps alive and never mutates.
    public let name: String
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    public let rowBytes: Int
    let bytes: UnsafeRawBufferPointer
    let format: any QuantFormat.Type

    init(name: String, type: GGMLType, rows: Int, cols: Int, bytes: UnsafeRawBufferPointer) throws(ModelError) {
        guard let format = Quantization.format(for: type) else {
            throw ModelError(.unsupportedTensorType(name, type),
                             "tensor '\(name)' is \(type.name), which cannot be computed with (supported: "
                                 + Quantization.dequantizableTypes.map(\.name).joined(separator: ", ") + ")")
        }
        guard let rowBytes = type.byteCount(elements: cols), rowBytes * rows == bytes.count else {
            throw ModelError(.badShape(name, expected: [cols, rows], found: []),
                             "tensor '\(name)' has \(bytes.count) bytes, not \(rows) rows of \(cols) \(type.name) elements")
        }
        self.name = name
        self.type = type
        self.rows = rows
        self.cols = cols
        self.rowBytes = rowBytes
        self.bytes = bytes
        self.format = format
    }

    /// The encoded bytes of row `r`.
    @inline(__always) func row(_ r: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[r * rowBytes ..< (r + 1) * rowBytes])
    }

    /// Decodes row `r` into `out` (`cols` floats), exactly as gguf-py / ggml dequantize it.
    @inline(__always) func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        // Cannot throw: the row size was checked at init against `type` and `cols`.
        try! format.dequantizeRow(row(r), into: UnsafeMutableBufferPointer(start: out, count: cols))
    }
}

/// A linear layer: y = W x (+ b).
public struct Linear: Sendable {
    public let weight: WeightMatrix
    public let bias: [Float]?

    public var inFeatures: Int { weight.cols }
    public var outFeatures: Int { weight.rows }
}

/// How the matrix products treat activations.
public enum MatmulPrecision: Sendable, Equatable {
    /// Float32 activations against exactly dequantized weights (the training path; closest to exact).
    case exact
    /// Activations quantized to 8 bits per block before integer dot products, as llama.cpp does (faster).
    case int8
}

/// Weight types the C kernels compute with; others take the portable Swift path.
let kernelTypes: Set<GGMLType> = [.f32, .f16, .bf16, .q4_0, .q4_1, .q8_0, .q4_K, .q6_K]

/// Y (M, N) = X (M, K) · Wᵀ (+ b), with W (N, K) in its stored type.
///
/// `.exact`: every weight row is decoded exactly as ggml dequantizes it and dotted with the float32
/// activations. `.int8`: activations are quantized per block (Q8_0 / Q8_1 / Q8_K, ggml's reference
/// quantizers) and multiplied with integer dot products, like llama.cpp.
/// - Parameters:
///   - out: (M, N) output.
///   - x: (M, K) input.
func linearForward(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, M: Int, layer: Linear, threads: Int,
                   precision: MatmulPrecision = .exact) {
    let W = layer.weight
    let N = W.rows, K = W.cols
    // Row chunks in multiples of 32 (the kernels' row groups), a few per thread for balance.
    let chunks = max(1, min(N / 32, threads * 4))
    let per = ((N + chunks - 1) / chunks + 31) / 32 * 32
    let outAddress = Int(bitPattern: out), xAddress = Int(bitPattern: x)
    if kernelTypes.contains(W.type) {
        if precision == .int8, let act = Kernels.activationType(for: W.type), let xqRow = Kernels.rowBytes(act, K) {
            // Quantize the activations once, then every thread reads them.
            let xq = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, M * xqRow), alignment: 64)
            defer { xq.deallocate() }
            try! Kernels.quantizeActivations(act, x: UnsafeBufferPointer(start: x, count: M * K), m: M, k: K, into: xq, rowBytes: xqRow)
            let xqAddress = Int(bitPattern: xq.baseAddress)
            parallelFor(chunks, threads: threads) { chunk in
                let n0 = chunk * per, n1 = min(N, n0 + per)
                if n0 >= n1 { return }
                let y = UnsafeMutableBufferPointer(start: UnsafeMutablePointer<Float>(bitPattern: outAddress), count: M * N)
                let xq = UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: xqAddress), count: M * xqRow)
                // Cannot throw: shapes were validated when the model was loaded.
                try! Kernels.matmulInt8(W.type, weights: W.bytes, rowBytes: W.rowBytes, rows: n0 ..< n1, k: K,
                                        xq: xq, xqRowBytes: xqRow, m: M, y: y, ldy: N)
            }
        } else {
            parallelFor(chunks, threads: threads) { chunk in
                let n0 = chunk * per, n1 = min(N, n0 + per)
                if n0 >= n1 { return }
                let y = UnsafeMutableBufferPointer(start: UnsafeMutablePointer<Float>(bitPattern: outAddress), count: M * N)
                let x = UnsafeBufferPointer(start: UnsafePointer<Float>(bitPattern: xAddress), count: M * K)
                try! Kernels.matmul(W.type, weights: W.bytes, rowBytes: W.rowBytes, rows: n0 ..< n1, k: K, x: x, m: M,
                                    y: y, ldy: N)
            }
        }
        if let bias = layer.bias {
            for m in 0 ..< M { for n in 0 ..< N { out[m * N + n] += bias[n] } }
        }
        return
    }
    parallelFor(chunks, threads: threads) { chunk in
        let out = UnsafeMutablePointer<Float>(bitPattern: outAddress)!
        let x = UnsafePointer<Float>(bitPattern: xAddress)!
        let n0 = chunk * per, n1 = min(N, n0 + per)
        if n0 >= n1 { return }
        let row = UnsafeMutablePointer<Float>.allocate(capacity: K)
        defer { row.deallocate() }
        for n in n0 ..< n1 {
            W.dequantizeRow(n, into: row)
            let b = layer.bias?[n] ?? 0
            for m in 0 ..< M { out[m * N + n] = dotF32(x + m * K, row, K) + b }
        }
    }
}

/// dX (M, K) += dY (M, N) · W (N, K): the input gradient of `linearForward` (no weight gradient).
func linearBackward(dx: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>, M: Int, layer: Linear, threads: Int) {
    let W = layer.weight
    let N = W.rows, K = W.cols
    let dxAddress = Int(bitPattern: dx), dyAddress = Int(bitPattern: dy)
    if kernelTypes.contains(W.type) {
        // Parallel over block columns of dX: each thread dequantizes only its columns of W (a split over
        // the rows of dX would have every thread dequantize all of W). The kernel gives the same bits for
        // any split.
        let unit = max(32, W.type.blockSize)
        let units = K / unit
        let chunks = max(1, min(units, threads))
        let per = (units + chunks - 1) / chunks * unit
        parallelFor(chunks, threads: threads) { chunk in
            let c0 = chunk * per, c1 = chunk == chunks - 1 ? K : min(K, c0 + per)
            if c0 >= c1 { return }
            try! Kernels.matmulTransposed(W.type, weights: W.bytes, rowBytes: W.rowBytes, n: N, k: K,
                                          dy: UnsafeBufferPointer(start: UnsafePointer<Float>(bitPattern: dyAddress), count: M * N),
                                          m: M, dx: UnsafeMutableBufferPointer(start: UnsafeMutablePointer<Float>(bitPattern: dxAddress),
                                                                               count: M * K),
                                          columns: c0 ..< c1)
        }
        return
    }
    // Parallel over activation rows m: each thread owns its dX rows.
    let chunks = max(1, min(M, threads))
    let per = (M + chunks - 1) / chunks
    parallelFor(chunks, threads: threads) { chunk in
        let dx = UnsafeMutablePointer<Float>(bitPattern: dxAddress)!
        let dy = UnsafePointer<Float>(bitPattern: dyAddress)!
        let m0 = chunk * per, m1 = min(M, m0 + per)
        if m0 >= m1 { return }
        let row = UnsafeMutablePointer<Float>.allocate(capacity: K)
        defer { row.deallocate() }
        for n in 0 ..< N {
            W.dequantizeRow(n, into: row)
            for m in m0 ..< m1 {
                let g = dy[m * N + n]
                if g == 0 { continue }
                axpyF32(dx + m * K, row, g, K)
            }
        }
    }
}

/// sum(a[i] * b[i]) in float32 with 16 independent lanes.
@inline(__always)
func dotF32(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 16 <= n {
        let va = ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        let vb = rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        acc += va * vb
        i += 16
    }
    var sum = acc.sum()
    while i < n { sum += a[i] * b[i]; i += 1 }
    return sum
}

/// y[i] += alpha * x[i].
@inline(__always)
func axpyF32(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ alpha: Float, _ n: Int) {
    var i = 0
    let va = SIMD16<Float>(repeating: alpha)
    let ry = UnsafeMutableRawPointer(y), rx = UnsafeRawPointer(x)
    while i + 16 <= n {
        var vy = ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        vy += va * rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
        ry.storeBytes(of: vy, toByteOffset: i * 4, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}
