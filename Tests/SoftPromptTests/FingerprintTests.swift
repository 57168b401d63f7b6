import GGUF
import Llama
import Quants
@testable import SoftPrompt
import TensorIO
import Testing
import TestSupport
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// Writes a copy of `source` to `path` with every matrix re-encoded as `type` (through float32), or,
/// with `rotateTokenRows`, with the token embedding's rows shifted by one (another model of the same
/// shape and quantization).
func writeVariant(of source: GGUFFile, to path: String, type: GGMLType? = nil, rotateTokenRows: Bool = false) throws {
    var writer = GGUFWriter()
    for entry in source.metadata { try writer.addMetadata(entry.key, entry.value) }
    for info in source.tensors {
        let cols = info.shape[0], rows = info.elementCount / max(1, cols)
        let rowBytes = info.byteCount / max(1, rows)
        let data = source.data(for: info)
        if rotateTokenRows && info.name == "token_embd.weight" {
            let rotated = Array(data[rowBytes...]) + Array(data[..<rowBytes])
            try writer.addTensor(name: info.name, type: info.type, shape: info.shape, bytes: rotated)
        } else if let type, info.shape.count == 2, cols % type.blockSize == 0, info.type != type {
            try writer.addTensor(name: info.name, type: type, shape: info.shape) { emit in
                for r in 0 ..< rows {
                    let row = UnsafeRawBufferPointer(rebasing: data[r * rowBytes ..< (r + 1) * rowBytes])
                    let values = try Quantization.dequantize(info.type, bytes: row, count: cols)
                    let encoded = try values.withUnsafeBufferPointer { try Quantization.quantize(type, $0) }
                    try encoded.withUnsafeBytes { try emit($0) }
                }
            }
        } else {
            try writer.addTensor(copying: info, of: source)
        }
    }
    try writer.write(to: path)
}

func fingerprint(_ path: String) throws -> ModelFingerprint {
    try ModelFingerprint(model: try LlamaModel(gguf: try GGUFFile(path: path)), tokenizer: nil)
}

func isDifferent(_ match: FingerprintMatch) -> Bool {
    if case .different = match { return true }
    return false
}

struct FingerprintTests {
    static let tiny = TestSupport.fixture("tiny/q8_0.gguf")

    @Test func sameFileIsSame() throws {
        let a = try fingerprint(Self.tiny), b = try fingerprint(Self.tiny)
        #expect(a == b)
        #expect(a.compare(to: b) == .same)
        #expect(a.sketch?.count == 16 + 2 * 5 * 2)
        #expect(a.tokenizerHash != nil)
    }

    @Test(arguments: [GGMLType.q4_0, .q4_1, .f16, .f32]) func requantizedTinyModelIsSameBase(type: GGMLType) throws {
        let path = TestSupport.temporaryDirectory("fp") + "/requantized.gguf"
        try writeVariant(of: try GGUFFile(path: Self.tiny), to: path, type: type)
        let original = try fingerprint(Self.tiny), copy = try fingerprint(path)
        #expect(copy.weightsHash != original.weightsHash)
        #expect(copy.tokenizerHash == original.tokenizerHash)
        #expect(original.compare(to: copy) == .sameBaseOtherQuantization, "\(original.compare(to: copy))")
        #expect(copy.compare(to: original) == .sameBaseOtherQuantization)
    }

    @Test func anotherModelOfTheSameShapeIsDifferent() throws {
        let a = try fingerprint(Self.tiny), b = try fingerprint(TestSupport.fixture("tiny/q4_0.gguf"))
        #expect(a.embeddingLength == b.embeddingLength && a.layerCount == b.layerCount && a.vocabSize == b.vocabSize)
        #expect(isDifferent(a.compare(to: b)), "\(a.compare(to: b))")
    }

    @Test func rotatedTokenRowsAreDifferent() throws {
        let path = TestSupport.temporaryDirectory("fp") + "/rotated.gguf"
        try writeVariant(of: try GGUFFile(path: Self.tiny), to: path, rotateTokenRows: true)
        let a = try fingerprint(Self.tiny), b = try fingerprint(path)
        #expect(isDifferent(a.compare(to: b)), "\(a.compare(to: b))")
    }

    @Test func tokenizerHashComesFromTheTokenizerOrTheFile() throws {
        let gguf = try GGUFFile(path: Self.tiny)
        let model = try LlamaModel(gguf: gguf)
        var vocabulary = try TokenizerVocabulary(gguf: gguf)
        let tokenizer = try Tokenizer(vocabulary)
        let withTokenizer = try ModelFingerprint(model: model, tokenizer: tokenizer)
        #expect(withTokenizer == (try ModelFingerprint(model: model, tokenizer: nil)))
        #expect(try ModelFingerprint(model: model, vocabulary: nil).tokenizerHash == nil)
        vocabulary.merges.append("a b")
        let other = try ModelFingerprint(model: model, vocabulary: vocabulary)
        #expect(other.tokenizerHash != withTokenizer.tokenizerHash)
        #expect(isDifferent(withTokenizer.compare(to: other)))
    }

    @Test func comparisonRules() {
        let a = sampleFingerprint()
        var b = a
        b.embeddingLength = 32
        #expect(a.compare(to: b) == .different("embedding length 64 vs 32"))
        b = a
        b.architecture = "qwen2"
        #expect(isDifferent(a.compare(to: b)))
        b = a
        b.sketch = nil
        #expect(a.compare(to: b) == .unknown("no weights sketch on one side"))
        b = a
        b.weightsHash = String(repeating: "1", count: 64)
        #expect(a.compare(to: b) == .sameBaseOtherQuantization)
        b.sketch = [1.5, -2.25, 0.125, -3.0]   // one value changed sign
        #expect(isDifferent(a.compare(to: b)))
    }

    @Test func fingerprintSurvivesTheFile() throws {
        let model = try fingerprint(Self.tiny)
        let file = PromptFile(model: model, prompts: [SoftPrompt(name: "p", vectors: randomVectors(64 * 3, seed: 4), width: 64)])
        let read = try PromptFile.decode(try file.encode())
        #expect(read.model == model)
        #expect(read.model?.compare(to: model) == .same)
    }

    // MARK: The default model (skipped when absent; meant for release builds)

    static let modelPresent = TestSupport.defaultModelPath != nil

    /// Against the independent Python implementation (Tests/Fixtures/sprompt/default-fingerprint.json).
    /// (The sketch touches 46 rows; the time is printed, not asserted: speed belongs to benchmarks.)
    @Test(.enabled(if: modelPresent)) func defaultModelMatchesPython() throws {
        let path = try #require(TestSupport.defaultModelPath)
        let model = try LlamaModel(gguf: try GGUFFile(path: path))
        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        let computed = try ModelFingerprint(model: model, tokenizer: nil)
        clock_gettime(CLOCK_MONOTONIC, &end)
        let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        print("fingerprint of the default model: \(seconds) s")
        let fixture = try JSON.parse(try readFile(TestSupport.fixture("sprompt/default-fingerprint.json")))
        let want = try #require(fixture["fingerprint"])
        #expect(computed.architecture == want["architecture"]?.stringValue)
        #expect(computed.embeddingLength == 576 && computed.layerCount == 30 && computed.vocabSize == 49152)
        #expect(computed.tokenizerHash == want["tokenizer_sha256"]?.stringValue)
        #expect(computed.weightsHash == want["weights"]?["rows_sha256"]?.stringValue)
        let sketch = try #require(want["weights"]?["sketch"]?.arrayValue).map { $0.doubleValue! }
        let norms = try #require(want["weights"]?["norms"]?.arrayValue).map { $0.doubleValue! }
        let mine = try #require(computed.sketch), myNorms = try #require(computed.sketchNorms)
        #expect(mine.count == sketch.count)
        for i in sketch.indices {
            #expect(abs(mine[i] - sketch[i]) <= 1e-9 * max(1, abs(sketch[i])), "sketch[\(i)]")
            #expect(abs(myNorms[i] - norms[i]) <= 1e-9 * max(1, norms[i]), "norms[\(i)]")
        }
    }

    @Test(.enabled(if: modelPresent), arguments: [GGMLType.q8_0, .q4_0])
    func defaultModelRequantizedIsSameBase(type: GGMLType) throws {
        let source = try #require(TestSupport.defaultModelPath)
        let path = TestSupport.temporaryDirectory("fp") + "/default-\(type.name).gguf"
        defer { unlink(path) }
        try writeVariant(of: try GGUFFile(path: source), to: path, type: type)
        let original = try fingerprint(source), copy = try fingerprint(path)
        #expect(original.compare(to: copy) == .sameBaseOtherQuantization, "\(original.compare(to: copy))")
    }

    @Test(.enabled(if: modelPresent)) func defaultModelWithRotatedTokenRowsIsDifferent() throws {
        let source = try #require(TestSupport.defaultModelPath)
        let path = TestSupport.temporaryDirectory("fp") + "/default-rotated.gguf"
        defer { unlink(path) }
        try writeVariant(of: try GGUFFile(path: source), to: path, rotateTokenRows: true)
        let a = try fingerprint(source), b = try fingerprint(path)
        #expect(isDifferent(a.compare(to: b)), "\(a.compare(to: b))")
    }
}
