import Dispatch

// Work splitting and working memory shared by every pass over the model.
//
// Determinism: each parallel task owns the rows or columns it writes and every sum has a fixed order, so a
// pass gives the same bits whatever the thread count (the matrix kernels guarantee the same for their splits).

/// Runs `body(chunk)` for chunks `0 ..< count` on up to `threads` threads.
@inline(__always)
package func parallelFor(_ count: Int, threads: Int, _ body: @Sendable (Int) -> Void) {
    if threads <= 1 || count <= 1 {
        for i in 0 ..< count { body(i) }
    } else {
        DispatchQueue.concurrentPerform(iterations: count, execute: body)
    }
}

/// A pointer that may be captured by `parallelFor` bodies. Every use states which part of the buffer each
/// task writes; tasks never write the same element.
struct SharedPointer<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    init(_ base: UnsafeMutablePointer<Element>) { self.base = base }
}
typealias SharedFloats = SharedPointer<Float>

/// Runs `body(first, count)` on consecutive runs of `rows` rows, one run per thread (at least 4 rows a run).
/// Each run writes only its own rows, so the split does not change the result.
func parallelRows(_ rows: Int, threads: Int, _ body: @Sendable (_ first: Int, _ count: Int) -> Void) {
    let n = max(1, min(threads, rows / 4))
    let per = (rows + n - 1) / n
    parallelFor(n, threads: threads) { c in
        let r0 = c * per, r1 = min(rows, r0 + per)
        if r0 < r1 { body(r0, r1 - r0) }
    }
}

/// One float allocation carved into named views; grows when a pass needs more, never shrinks.
final class FloatArena {
    private(set) var base: UnsafeMutablePointer<Float>
    private(set) var capacity: Int
    init() {
        base = .allocate(capacity: 16)
        capacity = 16
    }
    /// Makes room for `count` floats; previous contents are lost when it grows.
    func reserve(_ count: Int) {
        if count <= capacity { return }
        base.deallocate()
        base = .allocate(capacity: count)
        capacity = count
    }
    deinit { base.deallocate() }
}

/// Hands out 64-byte-aligned offsets (in floats) for the views of an arena.
struct ArenaCarver {
    private(set) var total = 0
    mutating func take(_ count: Int) -> Int {
        let offset = total
        total += (count + 15) & ~15
        return offset
    }
}

/// a[i] += b[i].
@inline(__always)
func addInPlace(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    axpyF32(a, b, 1, n)
}
