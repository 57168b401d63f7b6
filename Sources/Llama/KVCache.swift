/// The keys (after RoPE) and values of a sequence's positions at every layer: what an `InferenceSession`
/// keeps between calls. Grows on demand (the session checks the memory budget first); positions are
/// written by the block forward (`SegmentContext.cache`) and never read past what was written.
final class KVCache {
    /// Floats per position and layer, for keys and for values (`numKeyValueHeads × headDim`).
    let rowWidth: Int
    /// Positions allocated.
    private(set) var capacity = 0
    /// Per layer, (capacity, Hkv, D).
    private(set) var keys: [UnsafeMutablePointer<Float>]
    private(set) var values: [UnsafeMutablePointer<Float>]

    init(layers: Int, rowWidth: Int) {
        self.rowWidth = rowWidth
        keys = (0 ..< layers).map { _ in .allocate(capacity: 1) }
        values = (0 ..< layers).map { _ in .allocate(capacity: 1) }
    }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }

    var layers: Int { keys.count }

    /// Reallocates every layer to hold `positions`, keeping the first `keeping` positions.
    func resize(to positions: Int, keeping: Int) {
        precondition(keeping <= min(capacity, positions))
        let count = max(1, positions * rowWidth), kept = keeping * rowWidth
        func moved(_ old: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
            let new = UnsafeMutablePointer<Float>.allocate(capacity: count)
            new.update(from: old, count: kept)
            old.deallocate()
            return new
        }
        keys = keys.map(moved)
        values = values.map(moved)
        capacity = positions
    }

    /// Positions `0 ..< count` of layer `l`, keys then values, as arrays.
    func copy(layer l: Int, positions count: Int) -> (keys: [Float], values: [Float]) {
        (Array(UnsafeBufferPointer(start: keys[l], count: count * rowWidth)),
         Array(UnsafeBufferPointer(start: values[l], count: count * rowWidth)))
    }

    /// Overwrites positions `0 ..< keys.count / rowWidth` of layer `l`.
    func fill(layer l: Int, keys k: [Float], values v: [Float]) {
        precondition(k.count == v.count && k.count <= capacity * rowWidth)
        k.withUnsafeBufferPointer { keys[l].update(from: $0.baseAddress!, count: $0.count) }
        v.withUnsafeBufferPointer { values[l].update(from: $0.baseAddress!, count: $0.count) }
    }
}
