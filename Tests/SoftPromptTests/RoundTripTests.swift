@testable import SoftPrompt
import TensorIO
import Testing
import TestSupport

/// Swift writes, Swift reads: values, rounding, filters, the bank API and the writer's refusals.
struct RoundTripTests {
    static func bank() -> PromptFile {
        var values = randomVectors(3 * 64, seed: 1)
        values[0] = 1 + 0x1p-11     // f16 tie: rounds to even (1.0)
        values[1] = 1 + 3 * 0x1p-11 // f16 tie: rounds up
        return PromptFile(model: sampleFingerprint(), prompts: [
            SoftPrompt(name: "a", vectors: randomVectors(4 * 64, seed: 2), width: 64, template: "Q: {input}\nA:",
                       provenance: ["model": "m.gguf", "steps": 200, "lr": 0.3], metrics: ["loss": 0.75]),
            SoftPrompt(name: "b", vectors: values, width: 64, dtype: .f16),
            SoftPrompt(name: "c ünïcode", vectors: randomVectors(5 * 64, seed: 3, scale: 3), width: 64, dtype: .bf16),
        ], metadata: ["note": "bank", "nested": ["x": [1, 2.5, nil, true]]])
    }

    @Test(arguments: PayloadFilter.allCases) func bankRoundTrips(filter: PayloadFilter) throws {
        let file = Self.bank()
        let read = try PromptFile.decode(try file.encode(filter: filter))
        #expect(read.model == file.model)
        #expect(read.metadata == file.metadata)
        #expect(read.prompts.count == 3)
        #expect(read.prompts[0] == file.prompts[0])   // f32: exact, every field
        let f16 = file.prompts[1].vectors.map { HalfFloat.f16ToFloat(HalfFloat.floatToF16($0)) }
        #expect(read.prompts[1].vectors == f16)
        #expect(read.prompts[1].vectors[0] == 1 && read.prompts[1].vectors[1] == 1 + 4 * 0x1p-11)
        let bf16 = file.prompts[2].vectors.map { HalfFloat.bf16ToFloat(HalfFloat.floatToBF16($0)) }
        #expect(read.prompts[2].vectors == bf16)
        #expect(read.prompts[2].name == "c ünïcode" && read.prompts[2].dtype == .bf16)
        #expect(read.prompts[1].template == nil && read.prompts[1].provenance.isEmpty)
    }

    @Test func writingIsDeterministicAndAtomic() throws {
        let file = Self.bank()
        let path = TestSupport.temporaryDirectory("sprompt") + "/bank.sprompt"
        try file.write(to: path)
        let bytes = try readFile(path)
        #expect(bytes == (try file.encode()))
        #expect(try PromptFile.read(path: path).prompts.map(\.name) == ["a", "b", "c ünïcode"])
    }

    @Test func byteShuffleIsReversible() {
        var bytes = (0 ..< 48).map { UInt8($0) }
        let original = bytes
        PayloadCodec.shuffle(&bytes, offset: 8, length: 32, size: 4)
        #expect(Array(bytes[8 ..< 16]) == [8, 12, 16, 20, 24, 28, 32, 36])   // byte 0 of each value
        PayloadCodec.unshuffle(&bytes, offset: 8, length: 32, size: 4)
        #expect(bytes == original)
    }

    @Test func promptSelection() throws {
        let file = Self.bank()
        #expect(try file.prompt(named: "b").dtype == .f16)
        #expect(throws: SpromptError.self) { try file.prompt(named: nil) }
        let error = #expect(throws: SpromptError.self) { try file.prompt(named: "zzz") }
        #expect(error?.kind == .promptNotFound)
        #expect(error?.message.contains("'a', 'b', 'c ünïcode'") == true)
        let single = PromptFile(model: nil, prompts: [SoftPrompt(name: "only", vectors: [1, 2], width: 2)])
        #expect(try single.prompt(named: nil).name == "only")
    }

    static let refusals: [(String, SpromptError.Kind)] = [
        ("empty", .noPrompts), ("duplicate", .duplicatePromptName), ("nan", .nonFiniteValue),
        ("infinity", .nonFiniteValue), ("f16 overflow", .nonFiniteValue), ("count", .vectorCountMismatch),
        ("template", .invalidTemplate), ("width", .widthMismatch), ("name", .invalidPromptName),
        ("mixed widths", .widthMismatch), ("bad hash", .invalidValue),
    ]

    @Test(arguments: 0 ..< 11) func writerRefuses(index: Int) {
        let (what, kind) = Self.refusals[index]
        let p = SoftPrompt(name: "p", vectors: randomVectors(128, seed: 9), width: 64)
        var file = PromptFile(model: sampleFingerprint(), prompts: [p])
        switch what {
        case "empty": file.prompts = []
        case "duplicate": file.prompts = [p, p]
        case "nan": file.prompts[0].vectors[5] = .nan
        case "infinity": file.prompts[0].vectors[5] = .infinity
        case "f16 overflow": file.prompts[0].dtype = .f16; file.prompts[0].vectors[5] = 70000
        case "count": file.prompts[0].vectors.removeLast()
        case "template": file.prompts[0].template = "no placeholder"
        case "width": file.model = sampleFingerprint(width: 32)
        case "name": file.prompts[0].name = ""
        case "mixed widths":
            file.model = nil
            file.prompts.append(SoftPrompt(name: "q", vectors: randomVectors(64, seed: 1), width: 32))
        case "bad hash": file.model?.tokenizerHash = "XYZ"
        default: Issue.record("unknown case")
        }
        do {
            _ = try file.encode()
            Issue.record("\(what) was written")
        } catch {
            #expect(error.kind == kind, "\(what): \(error)")
        }
    }

    @Test func rowNorms() {
        let p = SoftPrompt(name: "p", vectors: [3, 4, 0, 0, 1, 0], width: 2)
        #expect(p.tokens == 3)
        #expect(p.rowNorms == [5, 0, 1])
    }
}
