@testable import SoftPrompt
import TensorIO
import TestSupport

/// Deterministic prompt values.
func randomVectors(_ count: Int, seed: UInt64, scale: Float = 0.1) -> [Float] {
    var generator = SplitMix64(seed: seed)
    return (0 ..< count).map { _ in generator.nextFloat() * scale }
}

/// A fingerprint with made-up values (no model needed).
func sampleFingerprint(width: Int = 64) -> ModelFingerprint {
    ModelFingerprint(architecture: "llama", embeddingLength: width, layerCount: 2, vocabSize: 320,
                     tokenizerHash: String(repeating: "ab", count: 32), sketch: [1.5, -2.25, 0.125, 3.0],
                     sketchNorms: [2.0, 2.5, 1.0, 3.5], weightsHash: String(repeating: "0f", count: 32))
}

/// Splits a file into its sections (for tests that rebuild files).
struct FileSections {
    var header: [UInt8]
    var metadata: [UInt8]
    var frame: [UInt8]

    init(_ bytes: [UInt8]) {
        let m = Int(bytes[16 ..< 24].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        header = Array(bytes[0 ..< 72])
        metadata = Array(bytes[72 ..< 72 + m])
        frame = Array(bytes[(72 + m)...])
    }
}

/// Builds a file from parts, by default consistent (checksum and sizes computed), so that a test can
/// break exactly one rule.
struct FileBuilder {
    var magic: [UInt8] = PromptFile.magic
    var version: UInt32 = 1
    var flags: UInt32 = 0
    var top: JSONObject
    var metadataOverride: [UInt8]?
    /// The logical (unfiltered) payload.
    var payload: [UInt8]
    var payloadSizeOverride: UInt64?
    var storedSizeOverride: UInt64?
    var frameOverride: [UInt8]?
    var fixChecksum = true
    var trailing: [UInt8] = []

    /// One f32 prompt "a" of 2 × 64 values, filter none, with a model fingerprint of width 64.
    init() {
        let values = randomVectors(128, seed: 7)
        var bytes: [UInt8] = []
        PayloadCodec.encode(values, as: .f32, into: &bytes)
        payload = bytes
        top = [
            "compression": "zstd", "filter": "none", "payload_sha256": .string(SHA256.hex(SHA256.hash(bytes))),
            "model": [
                "architecture": "llama", "embedding_length": 64, "layer_count": 2, "vocab_size": 320,
            ],
            "prompts": [[
                "name": "a", "dtype": "f32", "shape": [2, 64], "offset": 0, "length": 512, "placement": "prefix",
                "template": "Q: {input}\nA:",
            ]],
        ]
    }

    /// Edits the first prompt entry.
    mutating func editPrompt(_ index: Int = 0, _ body: (inout JSONObject) -> Void) {
        var prompts = top["prompts"]!.arrayValue!
        var entry = prompts[index].objectValue!
        body(&entry)
        prompts[index] = .object(entry)
        top["prompts"] = .array(prompts)
    }

    /// Replaces the payload and its checksum.
    mutating func setPayload(_ bytes: [UInt8]) {
        payload = bytes
        top["payload_sha256"] = .string(SHA256.hex(SHA256.hash(bytes)))
    }

    func metadataBytes() -> [UInt8] {
        metadataOverride ?? Array(try! JSON.serialize(.object(top)).utf8)
    }

    func bytes() -> [UInt8] {
        let metadata = metadataBytes()
        let frame = frameOverride ?? payload.withUnsafeBytes { Zstd.compress($0, level: 3)! }
        var out = magic
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        append(version)
        append(flags)
        append(UInt64(metadata.count))
        append(payloadSizeOverride ?? UInt64(payload.count))
        append(storedSizeOverride ?? UInt64(frame.count))
        if fixChecksum {
            var hash = SHA256()
            hash.update(out)
            hash.update(metadata)
            out += hash.finalize()
        } else {
            out += [UInt8](repeating: 0x55, count: 32)
        }
        return out + metadata + frame + trailing
    }
}
