#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Quants
import TensorIO
import TestSupport

/// Fixture loading and bit-level comparison shared by the Quants tests.
enum Fixtures {
    static func bytes(_ name: String) throws -> [UInt8] {
        try readFile(TestSupport.fixture("quants/" + name))
    }

    static func floats(_ name: String) throws -> [Float] {
        let raw = try bytes(name)
        return raw.withUnsafeBytes { buf in
            (0 ..< raw.count / 4).map {
                Float(bitPattern: UInt32(littleEndian: buf.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
            }
        }
    }

    /// The fixture file stem of a type ("q4_k").
    static func stem(_ type: GGMLType) -> String { type.name.lowercased() }
}

/// The index of the first element whose bit pattern differs (nil when all equal and the counts
/// match). Bit patterns, so -0.0 vs 0.0 and NaN payloads count as differences.
func firstBitMismatch(_ a: [Float], _ b: [Float]) -> Int? {
    if a.count != b.count { return min(a.count, b.count) }
    return a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
}

/// Dequantizes through the array-returning entry point.
func dequantize(_ type: GGMLType, _ bytes: [UInt8], count: Int) throws -> [Float] {
    try bytes.withUnsafeBytes { try Quantization.dequantize(type, bytes: $0, count: count) }
}

func quantize(_ type: GGMLType, _ values: [Float]) throws -> [UInt8] {
    try values.withUnsafeBufferPointer { try Quantization.quantize(type, $0) }
}

/// ggml's test-quantize-fns synthetic data: `0.1 + 2 * cosf(i + offset)` (computed as in the C:
/// float cosine, double sum, stored as float).
func ggmlSyntheticData(count: Int, offset: Float) -> [Float] {
    (0 ..< count).map { i in Float(0.1 + Double(2 * cosf(Float(i) + offset))) }
}

/// ggml's `array_rmse` as test-quantize-fns defines it: `sqrtf(sum of squared differences) / n`
/// (note: divided by n, not sqrt(n)).
func ggmlArrayRMSE(_ a: [Float], _ b: [Float]) -> Float {
    var sum = 0.0
    for i in a.indices {
        let diff = Double(a[i] - b[i])
        sum += diff * diff
    }
    return Float(sum).squareRoot() / Float(a.count)
}

/// Deterministic, libm-free test data: `superBlocks` runs of 256 values cycling through four
/// shapes (near-gaussian, offset uniform, heavy-tailed, sparse spikes) at scales from 1e-4 to 300.
/// Only IEEE arithmetic is used, so every platform produces the same bits.
func variedTestData(superBlocks: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    let scales: [Float] = [1e-4, 3e-3, 0.05, 1, 7, 300]
    var out: [Float] = []
    out.reserveCapacity(256 * superBlocks)
    for b in 0 ..< superBlocks {
        let s = scales[b % scales.count]
        let offset = rng.nextFloat() * 2 * s
        for _ in 0 ..< 256 {
            var v: Float
            switch b % 4 {
            case 0:  // Irwin–Hall approximation of a standard normal
                v = 0
                for _ in 0 ..< 12 { v += (rng.nextFloat() + 1) / 2 }
                v = (v - 6) * s
            case 1:
                v = rng.nextFloat() * s + offset
            case 2:
                let u = rng.nextFloat()
                v = rng.nextFloat() * s / (abs(u) + 0.05)
            default:
                v = rng.next() % 16 == 0 ? rng.nextFloat() * 10 * s : 0
            }
            out.append(v)
        }
    }
    return out
}

/// FNV-1a, 64-bit: a compact fingerprint for pinning encoder output.
func fnv1a(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}
