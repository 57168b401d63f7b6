import CZstd
@testable import SoftPrompt
import TensorIO
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Each prompt's stored bytes, recovered from a file's bytes without the library's reader: the header's
/// metadata size, the metadata JSON's names/offsets/lengths/filter, the zstd frame decompressed with
/// libzstd, and the byte shuffle undone here (spec section 3.2).
func storedRanges(_ file: [UInt8]) throws -> [(name: String, dtype: String, bytes: [UInt8])] {
    func u64(_ at: Int) -> Int { (0 ..< 8).reduce(0) { $0 | Int(file[at + $1]) << (8 * $1) } }
    let m = u64(16), u = u64(24)
    let meta = try JSON.parse(Array(file[72 ..< 72 + m]))
    let frame = Array(file[(72 + m)...])
    var payload = [UInt8](repeating: 0, count: u)
    let written = payload.withUnsafeMutableBytes { out in
        frame.withUnsafeBytes { ZSTD_decompress(out.baseAddress, out.count, $0.baseAddress, $0.count) }
    }
    #expect(written == u)
    let shuffled = meta["filter"]?.stringValue == "byte_shuffle"
    return try #require(meta["prompts"]?.arrayValue).map { p in
        let offset = Int(p["offset"]!.intValue!), length = Int(p["length"]!.intValue!)
        let dtype = p["dtype"]!.stringValue!
        let size = dtype == "f32" ? 4 : 2
        var bytes = Array(payload[offset ..< offset + length])
        if shuffled {
            let n = length / size
            for i in 0 ..< n { for b in 0 ..< size { bytes[i * size + b] = payload[offset + b * n + i] } }
        }
        return (p["name"]!.stringValue!, dtype, bytes)
    }
}

/// name → SHA-256 of the stored bytes, computed from the file bytes (`storedRanges`).
func storedChecksums(_ path: String) throws -> [String: String] {
    var result: [String: String] = [:]
    for r in try storedRanges(try readFile(path)) { result[r.name] = SHA256.hex(SHA256.hash(r.bytes)) }
    return result
}

struct BankTests {
    static let width = 64

    /// A bank of three prompts, one per dtype, with file metadata and a fingerprint.
    static func makeBank(_ dir: String) throws -> String {
        let path = dir + "/bank.sprompt"
        let prompts = [
            SoftPrompt(name: "sentiment", vectors: randomVectors(3 * width, seed: 1), width: width, dtype: .f32,
                       template: "Review: {input}\nSentiment:", metrics: ["eval_accuracy": 0.875]),
            SoftPrompt(name: "topic", vectors: randomVectors(5 * width, seed: 2, scale: 3), width: width, dtype: .f16),
            SoftPrompt(name: "langue é", vectors: randomVectors(2 * width, seed: 3, scale: 0.01), width: width, dtype: .bf16),
        ]
        try PromptFile(model: sampleFingerprint(width: width), prompts: prompts, metadata: ["owner": "tests"]).write(to: path)
        return path
    }

    static func newPrompt(_ name: String, width: Int = width, dtype: PromptDType = .f16, seed: UInt64 = 9) -> SoftPrompt {
        SoftPrompt(name: name, vectors: randomVectors(4 * width, seed: seed), width: width, dtype: dtype)
    }

    /// f16 → float32 → f16 and bf16 → float32 → bf16 give back every finite bit pattern: re-encoding a
    /// prompt read from a file reproduces its stored bytes.
    @Test func halfPrecisionRoundTripsExactly() {
        for bits in 0 ... UInt16.max {
            let f = HalfFloat.f16ToFloat(bits)
            if f.isFinite { #expect(HalfFloat.floatToF16(f) == bits, "f16 \(bits)") }
            let b = HalfFloat.bf16ToFloat(bits)
            if b.isFinite { #expect(HalfFloat.floatToBF16(b) == bits, "bf16 \(bits)") }
        }
    }

    /// `vectorsSHA256` is the SHA-256 of the bytes the file stores, recovered from the file independently.
    @Test func vectorChecksumIsTheStoredBytesHash() throws {
        let dir = TestSupport.temporaryDirectory("bank")
        let path = try Self.makeBank(dir)
        let stored = try storedChecksums(path)
        let file = try PromptFile.read(path: path)
        #expect(stored.count == 3)
        for p in file.prompts { #expect(p.vectorsSHA256 == stored[p.name], "\(p.name)") }
        // Hand-computed: one f32 value 1.0 is the bytes 00 00 80 3F.
        let one = SoftPrompt(name: "x", vectors: [1], width: 1)
        #expect(one.storedBytes == [0x00, 0x00, 0x80, 0x3F])
        #expect(one.vectorsSHA256 == SHA256.hex(SHA256.hash([0x00, 0x00, 0x80, 0x3F])))
        // In memory, before writing, the checksum is already that of the rounded bytes.
        let fresh = Self.newPrompt("fresh", dtype: .bf16)
        var bank: PromptFile? = nil
        try PromptBank.add(fresh, model: nil, to: &bank, replace: false)
        try bank!.write(to: dir + "/fresh.sprompt")
        #expect(try storedChecksums(dir + "/fresh.sprompt")["fresh"] == fresh.vectorsSHA256)
    }

    @Test func addKeepsEveryOtherPromptBitIdentical() throws {
        let dir = TestSupport.temporaryDirectory("bank")
        let path = try Self.makeBank(dir)
        let before = try storedChecksums(path)
        let added = Self.newPrompt("summary", dtype: .bf16)
        let (notes, replaced) = try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in
            try PromptBank.add(added, model: sampleFingerprint(width: Self.width), to: &file, replace: false)
        }
        #expect(notes.isEmpty && !replaced)
        let after = try storedChecksums(path)
        for (name, hash) in before { #expect(after[name] == hash, "\(name) changed") }
        #expect(after["summary"] == added.vectorsSHA256)
        let file = try PromptFile.read(path: path)
        #expect(file.prompts.map(\.name) == ["sentiment", "topic", "langue é", "summary"])
        #expect(file.prompts.map(\.dtype) == [.f32, .f16, .bf16, .bf16])
        #expect(file.metadata == ["owner": "tests"])
        #expect(file.model == sampleFingerprint(width: Self.width))
        #expect(file.prompts[0].metrics == ["eval_accuracy": 0.875])
        #expect(!fileExists(path + ".lock"))
    }

    @Test func replaceKeepsThePlaceAndTheOthers() throws {
        let dir = TestSupport.temporaryDirectory("bank")
        let path = try Self.makeBank(dir)
        let before = try storedChecksums(path)
        let new = Self.newPrompt("topic", dtype: .f32, seed: 42)
        let (_, replaced) = try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in
            try PromptBank.add(new, model: sampleFingerprint(width: Self.width), to: &file, replace: true)
        }
        #expect(replaced)
        let after = try storedChecksums(path)
        #expect(after["sentiment"] == before["sentiment"] && after["langue é"] == before["langue é"])
        #expect(after["topic"] == new.vectorsSHA256 && after["topic"] != before["topic"])
        #expect(try PromptFile.read(path: path).prompts.map(\.name) == ["sentiment", "topic", "langue é"])
    }

    @Test func removeAndRenameKeepTheOthers() throws {
        let dir = TestSupport.temporaryDirectory("bank")
        let path = try Self.makeBank(dir)
        let before = try storedChecksums(path)
        let removed = try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in
            try PromptBank.remove("topic", from: &file!)
        }
        #expect(removed.name == "topic")
        var after = try storedChecksums(path)
        #expect(after == ["sentiment": before["sentiment"]!, "langue é": before["langue é"]!])
        try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in
            try PromptBank.rename("sentiment", to: "polarity", in: &file!)
        }
        after = try storedChecksums(path)
        #expect(after == ["polarity": before["sentiment"]!, "langue é": before["langue é"]!])
        #expect(try PromptFile.read(path: path).prompts[0].template == "Review: {input}\nSentiment:")
    }

    /// An extracted prompt, in .sprompt or .npy, has the bank's stored values.
    @Test func extractKeepsTheVectors() throws {
        let dir = TestSupport.temporaryDirectory("bank")
        let path = try Self.makeBank(dir)
        let bank = try PromptFile.read(path: path)
        for name in ["sentiment", "topic", "langue é"] {
            let prompt = try bank.prompt(named: name)
            let out = dir + "/one.sprompt"
            try PromptConversion.write(PromptFile(model: bank.model, prompts: [prompt]), to: out)
            #expect(try storedChecksums(out) == [name: try storedChecksums(path)[name]!])
            let npy = dir + "/one.npy"
            var widened = prompt
            if widened.dtype == .bf16 { widened.dtype = .f32 }  // NumPy has no bfloat16; widening is exact
            try PromptConversion.write(PromptFile(model: bank.model, prompts: [widened]), to: npy)
            #expect(try PromptConversion.read(path: npy).prompts[0].vectors == prompt.vectors)
        }
    }

    /// Refusals leave the file byte-identical.
    @Test func refusals() throws {
        let dir = TestSupport.temporaryDirectory("bank")
        let path = try Self.makeBank(dir)
        let original = try readFile(path)
        let model = sampleFingerprint(width: Self.width)
        func attempt(_ prompt: SoftPrompt, _ fingerprint: ModelFingerprint?, replace: Bool = false) -> SpromptError.Kind? {
            do {
                try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in
                    try PromptBank.add(prompt, model: fingerprint, to: &file, replace: replace)
                }
                return nil
            } catch {
                return error.kind
            }
        }
        #expect(attempt(Self.newPrompt("topic"), model) == .duplicatePromptName)
        #expect(attempt(Self.newPrompt("wide", width: 32), nil) == .widthMismatch)
        #expect(attempt(Self.newPrompt("", width: 64), model) == .invalidPromptName)
        var other = model
        other.sketch = model.sketch!.map { -$0 }
        other.weightsHash = String(repeating: "11", count: 32)
        #expect(attempt(Self.newPrompt("other"), other) == .modelMismatch)
        var otherTokenizer = model
        otherTokenizer.tokenizerHash = String(repeating: "cd", count: 32)
        #expect(attempt(Self.newPrompt("other"), otherTokenizer) == .modelMismatch)
        var otherShape = sampleFingerprint(width: Self.width)
        otherShape.layerCount = 3
        #expect(attempt(Self.newPrompt("other"), otherShape) == .modelMismatch)
        #expect(try readFile(path) == original)
        #expect(!fileExists(path + ".lock"))

        var bank = try PromptFile.read(path: path)
        #expect(throws: SpromptError.self) { try PromptBank.remove("absent", from: &bank) }
        var single = PromptFile(model: nil, prompts: [Self.newPrompt("only")])
        do { try PromptBank.remove("only", from: &single); Issue.record("removed the last prompt") } catch {
            #expect(error.kind == .noPrompts)
        }
        do { try PromptBank.rename("sentiment", to: "topic", in: &bank); Issue.record("renamed onto a name") } catch {
            #expect(error.kind == .duplicatePromptName)
        }
    }

    /// Another quantization of the same base (sketch within noise, other row hash) and a side without
    /// fingerprint or sketch are accepted, with a note.
    @Test func acceptedDifferencesComeWithNotes() throws {
        let dir = TestSupport.temporaryDirectory("bank")
        let path = try Self.makeBank(dir)
        var requantized = sampleFingerprint(width: Self.width)
        requantized.sketch = requantized.sketch!.map { $0 * 1.001 }
        requantized.weightsHash = String(repeating: "22", count: 32)
        var noSketch = sampleFingerprint(width: Self.width)
        noSketch.sketch = nil
        noSketch.sketchNorms = nil
        let cases: [(String, ModelFingerprint?, String)] = [
            ("q8", requantized, "another quantization"), ("nosketch", noSketch, "cannot tell"), ("nomodel", nil, "records no model"),
        ]
        for (name, fingerprint, expected) in cases {
            let notes = try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in
                try PromptBank.add(Self.newPrompt(name), model: fingerprint, to: &file, replace: false).notes
            }
            #expect(notes.count == 1 && notes[0].contains(expected), "\(name): \(notes)")
        }
        #expect(try PromptFile.read(path: path).model == sampleFingerprint(width: Self.width))
    }

    @Test func createsABankAndHonoursTheLock() throws {
        let dir = TestSupport.temporaryDirectory("bank")
        let path = dir + "/new.sprompt"
        let prompt = Self.newPrompt("first")
        try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in
            #expect(file == nil)
            try PromptBank.add(prompt, model: sampleFingerprint(width: Self.width), to: &file, replace: false)
        }
        #expect(try PromptFile.read(path: path).model == sampleFingerprint(width: Self.width))
        // A held lock refuses the update and leaves the lock alone.
        let fd = open(path + ".lock", O_WRONLY | O_CREAT | O_EXCL, 0o644)
        #expect(fd >= 0)
        close(fd)
        do {
            try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in file = nil }
            Issue.record("updated under a held lock")
        } catch {
            #expect(error.kind == .io && error.message.contains("in progress"))
        }
        #expect(fileExists(path + ".lock"))
        unlink(path + ".lock")
        // A body that throws writes nothing and releases the lock.
        let before = try readFile(path)
        #expect(throws: SpromptError.self) {
            try PromptBank.update(path: path) { (file: inout PromptFile?) throws(SpromptError) in
                try PromptBank.add(prompt, model: nil, to: &file, replace: false)
            }
        }
        #expect(try readFile(path) == before)
        #expect(!fileExists(path + ".lock"))
    }

    /// The checksum sees any change of a stored value (one ulp of an f32), and only stored values: a change
    /// below bf16's resolution, a rename or new metadata leave it alone.
    @Test func checksumFollowsTheStoredValues() {
        let base = SoftPrompt(name: "a", vectors: randomVectors(2 * Self.width, seed: 4), width: Self.width)
        var ulp = base
        ulp.vectors[17] = ulp.vectors[17].nextUp
        #expect(ulp.vectorsSHA256 != base.vectorsSHA256)
        var renamed = base
        renamed.name = "b"
        renamed.metrics = ["x": 1]
        #expect(renamed.vectorsSHA256 == base.vectorsSHA256)
        var bf = base
        bf.dtype = .bf16
        var tiny = bf
        tiny.vectors[3] = Float(bitPattern: tiny.vectors[3].bitPattern ^ 1)  // below bf16's 16 kept bits
        #expect(tiny.vectorsSHA256 == bf.vectorsSHA256 && bf.vectorsSHA256 != base.vectorsSHA256)
    }
}
