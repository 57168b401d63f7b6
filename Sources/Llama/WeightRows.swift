/// Read access to single rows of a frozen weight matrix, for code outside this module that needs a
/// few rows without decoding whole tensors (the soft-prompt model fingerprint).
extension WeightMatrix {
    /// Calls `body` with the stored bytes of row `r` (in `type`: `rowBytes` bytes). The view is valid
    /// only inside `body`.
    /// - Precondition: `0 <= r < rows`.
    public func withStoredRow<R>(_ r: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        precondition(r >= 0 && r < rows, "row \(r) outside 0..<\(rows) of \(name)")
        return try body(row(r))
    }

    /// Row `r` decoded to `cols` floats, exactly as gguf-py / ggml dequantize it.
    /// - Precondition: `0 <= r < rows`.
    public func dequantizedRow(_ r: Int) -> [Float] {
        precondition(r >= 0 && r < rows, "row \(r) outside 0..<\(rows) of \(name)")
        return [Float](unsafeUninitializedCapacity: cols) { buffer, initialized in
            dequantizeRow(r, into: buffer.baseAddress!)
            initialized = cols
        }
    }
}
