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

/// A model, its tokenizer and a validator over it.
struct ValidationFixture {
    let model: LlamaModel
    let tokenizer: Tokenizer
    var validator: PromptValidator { PromptValidator(model: model, tokenizer: tokenizer) }

    init(_ path: String) throws {
        let gguf = try GGUFFile(path: path)
        model = try LlamaModel(gguf: gguf)
        tokenizer = try Tokenizer(try TokenizerVocabulary(gguf: gguf))
    }

    /// A prompt made of token-embedding rows (so its norms sit inside the embedding distribution).
    func embeddingPrompt(rows: [Int], name: String = "task") -> SoftPrompt {
        let vectors = rows.flatMap { model.tokenEmbedding.dequantizedRow($0) }
        return SoftPrompt(name: name, vectors: vectors, width: model.config.hiddenSize,
                          template: "Q: {input}\nA:", metrics: ["eval_accuracy": .double(0.8), "eval_rows": .int(100)])
    }

    /// Writes a one-prompt file fingerprinted with this model.
    func write(_ prompt: SoftPrompt, to path: String) throws {
        try PromptFile(model: try ModelFingerprint(model: model, tokenizer: tokenizer), prompts: [prompt]).write(to: path)
    }
}

struct ValidationTests {
    static let tiny = TestSupport.fixture("tiny/q8_0.gguf")

    func statuses(_ report: ValidationReport) -> [String: CheckStatus] {
        Dictionary(uniqueKeysWithValues: report.checks.map { ($0.name, $0.status) })
    }

    @Test func ownPromptPasses() throws {
        let f = try ValidationFixture(Self.tiny)
        let path = TestSupport.temporaryDirectory("validate") + "/own.sprompt"
        try f.write(f.embeddingPrompt(rows: [10, 20, 30, 40]), to: path)
        let report = f.validator.validate(path: path, prompt: nil)
        #expect(report.status == .pass, "\(report.checks)")
        #expect(report.exitCode == 0)
        #expect(report.checks.map(\.name) == ["integrity", "dtype", "width", "fingerprint", "tokenizer", "context",
                                              "finite", "norms"])
        let json = report.json
        #expect(json["status"]?.stringValue == "pass")
        #expect(report["context"]?.values["prompt_tokens"]?.intValue == 4)
        #expect(report["context"]?.values["context_length"]?.intValue == 512)
    }

    @Test(arguments: [GGMLType.q4_0, .f16]) func requantizedModelWarns(type: GGMLType) throws {
        let dir = TestSupport.temporaryDirectory("validate")
        let own = try ValidationFixture(Self.tiny)
        try own.write(own.embeddingPrompt(rows: [3, 4]), to: dir + "/p.sprompt")
        try writeVariant(of: try GGUFFile(path: Self.tiny), to: dir + "/requantized.gguf", type: type)
        let report = try ValidationFixture(dir + "/requantized.gguf").validator.validate(path: dir + "/p.sprompt", prompt: "task")
        #expect(statuses(report)["fingerprint"] == .warn)
        #expect(statuses(report)["tokenizer"] == .pass)
        #expect(report.status == .warn && report.exitCode == 1, "\(report.checks)")
    }

    @Test func anotherModelOfTheSameWidthFails() throws {
        let dir = TestSupport.temporaryDirectory("validate")
        let own = try ValidationFixture(Self.tiny)
        try own.write(own.embeddingPrompt(rows: [3, 4]), to: dir + "/p.sprompt")
        try writeVariant(of: try GGUFFile(path: Self.tiny), to: dir + "/rotated.gguf", rotateTokenRows: true)
        let report = try ValidationFixture(dir + "/rotated.gguf").validator.validate(path: dir + "/p.sprompt", prompt: nil)
        #expect(statuses(report)["fingerprint"] == .fail)
        #expect(statuses(report)["width"] == .pass)
        #expect(report.exitCode == 2)
    }

    @Test func unreadableFileFailsWithTheReadersError() throws {
        let f = try ValidationFixture(Self.tiny)
        let dir = TestSupport.temporaryDirectory("validate")
        let good = PromptFile(model: try ModelFingerprint(model: f.model, tokenizer: f.tokenizer),
                              prompts: [f.embeddingPrompt(rows: [1, 2])])
        var bytes = try good.encode()
        bytes[bytes.count - 3] ^= 0x40          // inside the zstd frame
        try AtomicFile.write(to: dir + "/bad.sprompt", bytes: bytes)
        let report = f.validator.validate(path: dir + "/bad.sprompt", prompt: nil)
        #expect(report.checks.count == 1 && report.checks[0].name == "integrity")
        #expect(report.status == .fail && report.exitCode == 2)
        #expect(report.checks[0].values["error"]?.stringValue != nil)
        let missing = f.validator.validate(path: dir + "/absent.sprompt", prompt: nil)
        #expect(missing["integrity"]?.values["error"]?.stringValue == "io")
        let wrongName = f.validator.validate(path: dir + "/bad.sprompt", prompt: "other")
        #expect(wrongName.status == .fail)
    }

    @Test func nonFiniteValuesFail() throws {
        let f = try ValidationFixture(Self.tiny)
        var prompt = f.embeddingPrompt(rows: [5, 6, 7])
        prompt.vectors[64 + 3] = .nan
        prompt.vectors[2 * 64] = .infinity
        let checks = f.validator.check(prompt, fingerprint: nil)
        let finite = try #require(checks.first { $0.name == "finite" })
        #expect(finite.status == .fail)
        #expect(finite.values["non_finite"]?.intValue == 2 && finite.values["first_row"]?.intValue == 1)
        #expect(checks.first { $0.name == "norms" }?.status == .skip)
        #expect(checks.first { $0.name == "fingerprint" }?.status == .warn)   // no stored fingerprint
    }

    @Test func wrongWidthFails() throws {
        let f = try ValidationFixture(Self.tiny)
        let prompt = SoftPrompt(name: "w", vectors: randomVectors(2 * 32, seed: 1), width: 32)
        let checks = f.validator.check(prompt, fingerprint: nil)
        #expect(checks.first { $0.name == "width" }?.status == .fail)
        #expect(checks.first { $0.name == "norms" }?.status == .skip)
    }

    @Test func normOutliersWarnWithTheirNumbers() throws {
        let f = try ValidationFixture(Self.tiny)
        let stats = EmbeddingNormStatistics(f.model.tokenEmbedding)
        #expect(stats.rows == 320 && stats.minimum <= stats.p001 && stats.p001 <= stats.median)
        #expect(stats.median <= stats.p999 && stats.p999 <= stats.maximum)
        var prompt = f.embeddingPrompt(rows: [5, 6, 7, 8])
        for i in 0 ..< 64 { prompt.vectors[64 + i] *= Float(40 * stats.maximum / stats.minimum) }  // row 1 far too long
        for i in 0 ..< 64 { prompt.vectors[3 * 64 + i] *= 1e-3 }                                   // row 3 far too short
        let check = f.validator.normCheck(prompt.rowNorms.map(Double.init), stats)
        #expect(check.status == .warn)
        #expect(check.values["outlier_rows"] == .array([.int(1), .int(3)]))
        #expect(check.message.contains("2 row(s)"))
        let clean = f.validator.normCheck(f.embeddingPrompt(rows: [5, 6]).rowNorms.map(Double.init), stats)
        #expect(clean.status == .pass)
    }

    @Test func percentilesInterpolate() {
        let stats = EmbeddingNormStatistics(norms: (0 ... 1000).map(Double.init).reversed())
        #expect(stats.minimum == 0 && stats.maximum == 1000 && stats.median == 500)
        #expect(abs(stats.p001 - 1) < 1e-9 && abs(stats.p999 - 999) < 1e-9)
    }

    @Test func contextBudget() throws {
        let f = try ValidationFixture(Self.tiny)
        let full = SoftPrompt(name: "long", vectors: [Float](repeating: 0.01, count: 512 * 64), width: 64, template: "{input}")
        #expect(f.validator.check(full, fingerprint: nil).first { $0.name == "context" }?.status == .fail)
        let half = SoftPrompt(name: "half", vectors: [Float](repeating: 0.01, count: 300 * 64), width: 64, template: "{input}")
        #expect(f.validator.check(half, fingerprint: nil).first { $0.name == "context" }?.status == .warn)
    }

    @Test func tokenizerMismatchFailsWithATemplate() throws {
        let f = try ValidationFixture(Self.tiny)
        var stored = try ModelFingerprint(model: f.model, tokenizer: f.tokenizer)
        stored.tokenizerHash = String(repeating: "0", count: 64)
        let checks = f.validator.check(f.embeddingPrompt(rows: [1]), fingerprint: stored)
        #expect(checks.first { $0.name == "tokenizer" }?.status == .fail)
        #expect(checks.first { $0.name == "fingerprint" }?.status == .fail)
    }

    @Test func behaviourRules() throws {
        let f = try ValidationFixture(Self.tiny)
        let prompt = f.embeddingPrompt(rows: [1])     // stored eval_accuracy 0.8 on 100 rows
        let v = f.validator
        // Noise for n = 200: 2·sqrt(0.16/200 + 0.16/100) = 0.098; allowed drop 0.148.
        let ok = v.behaviourCheck(BehaviourMeasurement(metric: "accuracy", observed: 0.70, baseline: 0.4, examples: 200), prompt: prompt)
        #expect(ok.status == .pass)
        #expect(abs((ok.values["allowed_drop"]?.doubleValue ?? 0) - (0.05 + 2 * (0.16 / 200 + 0.16 / 100).squareRoot())) < 1e-12)
        let drop = v.behaviourCheck(BehaviourMeasurement(metric: "accuracy", observed: 0.62, baseline: 0.4, examples: 200), prompt: prompt)
        #expect(drop.status == .warn)
        let worse = v.behaviourCheck(BehaviourMeasurement(metric: "accuracy", observed: 0.35, baseline: 0.4, examples: 200), prompt: prompt)
        #expect(worse.status == .fail)
        let unstored = v.behaviourCheck(BehaviourMeasurement(metric: "exact_match", observed: 0.5, baseline: 0.4, examples: 20), prompt: prompt)
        #expect(unstored.status == .pass && unstored.values["stored"] == nil)
    }

    @Test func reportStatusIsTheWorst() {
        var report = ValidationReport(promptName: "p", checks: [ValidationCheck("a", .pass, ""), ValidationCheck("b", .skip, "")])
        #expect(report.status == .pass && report.exitCode == 0)
        report.checks.append(ValidationCheck("c", .warn, ""))
        #expect(report.exitCode == 1)
        report.checks.append(ValidationCheck("d", .fail, ""))
        report.checks.append(ValidationCheck("e", .warn, ""))
        #expect(report.status == .fail && report.exitCode == 2)
    }

    // MARK: The default model (release builds)

    static let modelPresent = TestSupport.defaultModelPath != nil

    @Test(.enabled(if: modelPresent)) func defaultModelOwnPromptPassesAndQ8CopyWarns() throws {
        let source = try #require(TestSupport.defaultModelPath)
        let dir = TestSupport.temporaryDirectory("validate")
        let own = try ValidationFixture(source)
        try own.write(own.embeddingPrompt(rows: [100, 2000, 30000]), to: dir + "/p.sprompt")
        let report = own.validator.validate(path: dir + "/p.sprompt", prompt: nil)
        #expect(report.status == .pass, "\(report.checks)")
        let q8 = dir + "/default-q8_0.gguf"
        defer { unlink(q8) }
        try writeVariant(of: try GGUFFile(path: source), to: q8, type: .q8_0)
        let other = try ValidationFixture(q8).validator.validate(path: dir + "/p.sprompt", prompt: nil)
        #expect(other.exitCode == 1 && other["fingerprint"]?.status == .warn, "\(other.checks)")
    }
}
