/// `parallelFor` (Weights.swift) for the package's other modules (ModelConversion's quantizing writer).
/// - Parameters:
///   - count: The number of chunks; `body` runs once for each of `0 ..< count`.
///   - threads: 1 runs the chunks in order on the calling thread; more runs them concurrently.
@inline(__always)
package func parallelChunks(_ count: Int, threads: Int, _ body: @Sendable (Int) -> Void) {
    parallelFor(count, threads: threads, body)
}
