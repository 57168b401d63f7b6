import CZstd
@testable import SoftPrompt
import TensorIO
import Testing
import TestSupport

/// The golden files of Formats/golden, written by the independent Python implementation
/// (Tools/scripts/gen_sprompt_golden.py), read by Swift; Swift's re-encoding compared with them; and the
/// record of the Python reader accepting the Swift writer's output (Formats/golden/swift-written.json).
struct GoldenTests {
    static let names = ["single-f32", "bank-f16-bf16", "no-fingerprint"]

    static func expected() throws -> JSONValue {
        try JSON.parse(try readFile(TestSupport.formats("golden/expected.json")))
    }

    static func f32Hash(_ values: [Float]) -> String {
        var bytes: [UInt8] = []
        PayloadCodec.encode(values, as: .f32, into: &bytes)
        return SHA256.hex(SHA256.hash(bytes))
    }

    @Test(arguments: names) func swiftReadsWhatPythonWrote(name: String) throws {
        let expected = try #require(try Self.expected()["files"]?[name + ".sprompt"])
        let bytes = try readFile(TestSupport.formats("golden/\(name).sprompt"))
        #expect(SHA256.hex(SHA256.hash(bytes)) == expected["file_sha256"]?.stringValue)
        let file = try PromptFile.decode(bytes)
        let metadataJSON = try #require(expected["metadata_json"]?.stringValue)
        let top = try #require(try JSON.parse(metadataJSON).objectValue)
        #expect(file.metadata == (expected["metadata"]?.objectValue ?? [:]))
        if let model = expected["model"]?.objectValue {
            let fingerprint = try #require(file.model)
            #expect(fingerprint.architecture == model["architecture"]?.stringValue)
            #expect(fingerprint.embeddingLength == model["embedding_length"]?.intValue.map(Int.init))
            #expect(fingerprint.tokenizerHash == model["tokenizer_sha256"]?.stringValue)
            #expect(fingerprint.sketch == model["weights"]?["sketch"]?.arrayValue?.map { $0.doubleValue! })
            #expect(fingerprint.weightsHash == model["weights"]?["rows_sha256"]?.stringValue)
        } else {
            #expect(file.model == nil)
        }
        let prompts = try #require(expected["prompts"]?.arrayValue)
        #expect(file.prompts.count == prompts.count)
        for (prompt, want) in zip(file.prompts, prompts) {
            #expect(prompt.name == want["name"]?.stringValue)
            #expect(prompt.dtype.rawValue == want["dtype"]?.stringValue)
            #expect([prompt.tokens, prompt.width] == want["shape"]?.arrayValue?.map { Int($0.intValue!) })
            #expect(prompt.template == want["template"]?.stringValue)
            #expect(prompt.provenance == (want["provenance"]?.objectValue ?? [:]))
            #expect(prompt.metrics == (want["metrics"]?.objectValue ?? [:]))
            #expect(Self.f32Hash(prompt.vectors) == want["values_f32_sha256"]?.stringValue)
            let first = try #require(want["first_values"]?.arrayValue).map { Float($0.doubleValue!) }
            #expect(Array(prompt.vectors.prefix(first.count)) == first)
        }
        // Swift re-encodes it with byte-identical metadata (same keys, order, numbers and escapes),
        // hence the same logical payload (its SHA-256 is in the metadata).
        let filter = PayloadFilter(rawValue: try #require(top["filter"]?.stringValue))!
        let again = try file.encode(filter: filter)
        #expect(FileSections(again).metadata == Array(metadataJSON.utf8))
        #expect(FileSections(again).header[8 ..< 32] == FileSections(bytes).header[8 ..< 32])
        // With the libzstd versions checked (1.5.4 here, 1.5.7 in python-zstandard) the frames agree too,
        // so the whole file is byte-identical. Another libzstd may legitimately compress differently.
        if (10504 ... 10507).contains(ZSTD_versionNumber()) {
            #expect(again == bytes, "Swift's encoding of \(name) differs from Python's")
        }
    }

    /// The files the Python reader accepted (swift-written.json) are what the Swift writer produces today:
    /// same metadata bytes, same payload. Set SPROMPT_GOLDEN_OUT=DIR to write them again for
    /// `gen_sprompt_golden.py --record-swift DIR`.
    @Test func pythonAcceptedTheSwiftWriter() throws {
        let out = environmentValue("SPROMPT_GOLDEN_OUT")
        var files: [(String, PromptFile, PayloadFilter)] = [("swift-bank.sprompt", RoundTripTests.bank(), .byteShuffle)]
        for name in Self.names {
            let bytes = try readFile(TestSupport.formats("golden/\(name).sprompt"))
            let filter: PayloadFilter = name == "no-fingerprint" ? .none : .byteShuffle
            files.append(("swift-\(name).sprompt", try PromptFile.decode(bytes), filter))
        }
        var written: [(String, [UInt8])] = []
        for (name, file, filter) in files {
            let bytes = try file.encode(filter: filter)
            if let out { try AtomicFile.write(to: out + "/" + name, bytes: bytes) }
            written.append((name, bytes))
        }
        let record = try JSON.parse(try readFile(TestSupport.formats("golden/swift-written.json")))
        for (name, bytes) in written {
            let entry = try #require(record["files"]?[name], "\(name) missing from swift-written.json")
            #expect(entry["accepted"]?.boolValue == true)
            #expect(SHA256.hex(SHA256.hash(FileSections(bytes).metadata)) == entry["metadata_sha256"]?.stringValue, "\(name)")
        }
    }
}
