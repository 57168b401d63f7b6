import GGUF
@testable import Llama
import TensorIO
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The sampler's filtered distributions against numpy computed from the definitions
/// (Tools/scripts/gen_sampling_fixtures.py), hand-computed distributions, the PRNG against reference
/// outputs, and frequency tests of the draws.
struct SamplingTests {
    static func fixture() throws -> JSONValue {
        try JSON.parse(try readFile(TestSupport.fixture("sampling/distributions.json")))
    }

    static func parameters(_ p: JSONValue, seed: UInt64 = 1) -> SamplingParameters {
        SamplingParameters(temperature: Float(p["temperature"]!.doubleValue!), topK: Int(p["top_k"]!.intValue!),
                           topP: Float(p["top_p"]!.doubleValue!), minP: Float(p["min_p"]!.doubleValue!),
                           minKeep: Int(p["min_keep"]!.intValue!), repeatPenalty: Float(p["repeat"]!.doubleValue!),
                           frequencyPenalty: Float(p["frequency"]!.doubleValue!),
                           presencePenalty: Float(p["presence"]!.doubleValue!),
                           penaltyWindow: Int(p["window"]!.intValue!), seed: seed)
    }

    @Test func filteredDistributionsMatchNumpy() throws {
        let document = try Self.fixture()
        let vectors = try #require(document["logits"]?.objectValue)
        let cases = try #require(document["cases"]?.arrayValue)
        #expect(cases.count >= 15)
        for entry in cases {
            let name = entry["name"]!.stringValue!
            let logits = try #require(vectors[entry["logits"]!.stringValue!]?.arrayValue).map { Float($0.doubleValue!) }
            var sampler = Sampler(Self.parameters(entry["params"]!))
            for token in entry["params"]!["history"]!.arrayValue! { sampler.accept(Int32(token.intValue!)) }
            let ids = entry["ids"]!.arrayValue!.map { Int32($0.intValue!) }
            let probabilities = entry["probabilities"]!.arrayValue!.map { $0.doubleValue! }
            let distribution = sampler.distribution(logits)
            #expect(distribution.map(\.token) == ids, "\(name): surviving tokens")
            guard distribution.count == ids.count else { continue }
            var worst = 0.0
            for (got, expected) in zip(distribution, probabilities) {
                worst = max(worst, abs(got.probability - expected) / max(expected, 1e-3))
            }
            #expect(worst < 2e-5, "\(name): worst relative probability error \(worst)")
            let total = distribution.reduce(0) { $0 + $1.probability }
            #expect(abs(total - 1) < 1e-9, "\(name)")
        }
    }

    /// Hand-computed: logits ln 4, ln 2, 0, 0 give probabilities 1/2, 1/4, 1/8, 1/8.
    @Test func handComputedDistributions() {
        let logits: [Float] = [logf(4), logf(2), 0, 0]
        func dist(_ p: SamplingParameters) -> [Int32: Double] {
            Dictionary(uniqueKeysWithValues: Sampler(p).distribution(logits).map { ($0.token, $0.probability) })
        }
        func near(_ a: [Int32: Double], _ b: [Int32: Double]) -> Bool {
            a.keys.sorted() == b.keys.sorted() && a.allSatisfy { abs($0.value - b[$0.key]!) < 1e-6 }
        }
        let plain = SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0)
        #expect(near(dist(plain), [0: 0.5, 1: 0.25, 2: 0.125, 3: 0.125]))
        var p = plain
        p.topK = 2
        #expect(near(dist(p), [0: 2.0 / 3, 1: 1.0 / 3]))
        p = plain
        p.topP = 0.7  // cumulative 0.5, 0.75: two tokens
        #expect(near(dist(p), [0: 2.0 / 3, 1: 1.0 / 3]))
        p.topP = 0.51  // just beyond the first token's 0.5
        #expect(near(dist(p), [0: 2.0 / 3, 1: 1.0 / 3]))
        p.topP = 0.49  // reached by the first token
        #expect(near(dist(p), [0: 1]))
        p.minKeep = 3  // ... but three must stay
        #expect(near(dist(p), [0: 4.0 / 7, 1: 2.0 / 7, 2: 1.0 / 7]))
        p = plain
        p.minP = 0.3  // keep p >= 0.15
        #expect(near(dist(p), [0: 2.0 / 3, 1: 1.0 / 3]))
        p.minP = 0.25  // keep p >= 0.125: all four
        #expect(dist(p).count == 4)
        p = plain
        p.temperature = 2  // weights 2, √2, 1, 1
        let r2: Double = 2.0.squareRoot()
        let s: Double = 4 + r2
        let hot: [Int32: Double] = [0: 2 / s, 1: r2 / s, 2: 1 / s, 3: 1 / s]
        #expect(near(dist(p), hot))
        p.temperature = 0.5  // weights 16, 4, 1, 1
        let cold: [Int32: Double] = [0: 16.0 / 22, 1: 4.0 / 22, 2: 1.0 / 22, 3: 1.0 / 22]
        #expect(near(dist(p), cold))
    }

    @Test func repetitionPenaltiesFollowLlamaCpp() {
        // Window of 2 over the accepted tokens [1, 0, 2, 2]: tokens 2 (twice). Token 0 dropped out.
        var p = SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0, repeatPenalty: 2,
                                   frequencyPenalty: 0.5, presencePenalty: 0.25, penaltyWindow: 2)
        var sampler = Sampler(p)
        for t: Int32 in [1, 0, 2, 2] { sampler.accept(t) }
        #expect(sampler.window.counts == [2: 2])
        // Token 2: logit 3 → 3/2 − 2·0.5 − 0.25 = 0.25. Token 1: −1 untouched. Token 0: 1 untouched.
        let d = sampler.distribution([1, -1, 3])
        let w: [Double] = [expD(1), expD(-1), expD(0.25)]
        let s = w.reduce(0, +)
        for entry in d { #expect(abs(entry.probability - w[Int(entry.token)] / s) < 1e-6) }
        // A negative logit is multiplied by the penalty.
        p.frequencyPenalty = 0
        p.presencePenalty = 0
        p.penaltyWindow = -1
        sampler = Sampler(p)
        sampler.accept(1)
        let d2 = sampler.distribution([0, -1, 0])
        let w2: [Double] = [1, expD(-2), 1]
        for entry in d2 { #expect(abs(entry.probability - w2[Int(entry.token)] / w2.reduce(0, +)) < 1e-6) }
        // Greedy honours the penalty too: [5, 4] with token 0 penalised by 2 → 2.5 < 4.
        var greedy = SamplingParameters.greedy
        greedy.repeatPenalty = 2
        greedy.penaltyWindow = 8
        var g = Sampler(greedy)
        g.accept(0)
        #expect(g.sample([5, 4]) == 1)
    }

    @Test func greedyIsTheArgmaxWithTheLowestIdOnTies() {
        var sampler = Sampler(.greedy)
        #expect(sampler.sample([0.5, 2, -1, 2, 1.5]) == 1)
        #expect(sampler.sample([.nan, -3, -2]) == 2)
        var zeroTemperature = Sampler(SamplingParameters(temperature: 0, seed: 9))
        #expect(zeroTemperature.sample([0, 0, 7, 6.9]) == 2)
        #expect(Sampler(.greedy).distribution([1, 3, 2]) == [TokenProbability(token: 1, probability: 1)])
    }

    @Test func randomSourceMatchesReferenceOutputs() throws {
        // splitmix64's published sequence for seed 1234567.
        var splitMix = SplitMix64(seed: 1_234_567)
        let expected: [UInt64] = [6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
                                  4_593_380_528_125_082_431, 16_408_922_859_458_223_821]
        for value in expected { #expect(splitMix.next() == value) }
        for entry in try #require(try Self.fixture()["xoshiro256starstar"]?.arrayValue) {
            var random = RandomSource(seed: UInt64(entry["seed"]!.stringValue!)!)
            let outputs = entry["outputs"]!.arrayValue!.map { UInt64($0.stringValue!)! }
            #expect(outputs.map { _ in random.next() } == outputs)
        }
        var unit = RandomSource(seed: 3)
        for _ in 0 ..< 1000 {
            let u = unit.nextUnit()
            #expect(u >= 0 && u < 1)
        }
    }

    /// 20 000 draws from a fixed distribution with a fixed seed: Pearson's chi-square against the
    /// exact probabilities stays under the 0.1 % critical value (deterministic, so never flaky).
    @Test func drawFrequenciesPassChiSquare() {
        let logits: [Float] = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -3.0]
        let weights = logits.map { expD(Double($0)) }
        let total = weights.reduce(0, +)
        for seed: UInt64 in [42, 7, 123_456_789] {
            var sampler = Sampler(SamplingParameters(temperature: 1, topK: 0, topP: 1, minP: 0, seed: seed))
            var counts = [Int](repeating: 0, count: logits.count)
            let n = 20_000
            for _ in 0 ..< n { counts[Int(sampler.sample(logits))] += 1 }
            var chi2 = 0.0
            for i in logits.indices {
                let e = Double(n) * weights[i] / total
                chi2 += (Double(counts[i]) - e) * (Double(counts[i]) - e) / e
            }
            #expect(chi2 < 24.32, "seed \(seed): chi-square \(chi2) with 7 degrees of freedom")  // p = 0.001
        }
        // Filtered: top-k 3 at temperature 0.5. Excluded tokens never appear.
        var sampler = Sampler(SamplingParameters(temperature: 0.5, topK: 3, topP: 1, minP: 0, seed: 5))
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0 ..< 20_000 { counts[Int(sampler.sample(logits))] += 1 }
        #expect(counts[3...].allSatisfy { $0 == 0 })
        let w = logits[..<3].map { expD(Double($0) / 0.5) }
        var chi2 = 0.0
        for i in 0 ..< 3 {
            let e = 20_000 * w[i] / w.reduce(0, +)
            chi2 += (Double(counts[i]) - e) * (Double(counts[i]) - e) / e
        }
        #expect(chi2 < 13.82, "top-k chi-square \(chi2)")  // 2 degrees of freedom, p = 0.001
    }

    @Test func aSeedReproducesARunAndResetRestartsIt() {
        let logits: [Float] = (0 ..< 50).map { Float(($0 * 37) % 11) / 3 }
        let p = SamplingParameters(temperature: 1.1, topK: 30, topP: 0.97, minP: 0.01, repeatPenalty: 1.1, seed: 77)
        var a = Sampler(p), b = Sampler(p)
        let first = (0 ..< 500).map { _ in a.sample(logits) }
        #expect(first == (0 ..< 500).map { _ in b.sample(logits) })
        a.reset()
        #expect(first == (0 ..< 500).map { _ in a.sample(logits) })
        var other = Sampler(SamplingParameters(temperature: 1.1, topK: 30, topP: 0.97, minP: 0.01, repeatPenalty: 1.1, seed: 78))
        #expect(first != (0 ..< 500).map { _ in other.sample(logits) })
        #expect(Sampler(SamplingParameters(seed: nil)).seed != Sampler(SamplingParameters(seed: nil)).seed)
    }

    /// A 151 936-entry vocabulary (Qwen2's): the selected sets equal those of a full sort.
    @Test func largeVocabularySelectionMatchesAFullSort() {
        var random = RandomSource(seed: 11)
        let logits: [Float] = (0 ..< 151_936).map { _ in Float(random.nextUnit() * 8 - 4) }
        let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        let topK = Sampler(SamplingParameters(temperature: 1, topK: 40, topP: 1, minP: 0)).distribution(logits)
        #expect(Set(topK.map { Int($0.token) }) == Set(order.prefix(40)))
        // Top-p with a nucleus of thousands of tokens (beyond the first sorted prefix of 256).
        let m = Double(logits[order[0]])
        let weights = logits.map { expD(Double($0) - m) }
        let total = weights.reduce(0, +)
        var cumulative = 0.0, cut = 0
        while cumulative < 0.5 {
            cumulative += weights[order[cut]] / total
            cut += 1
        }
        let topP = Sampler(SamplingParameters(temperature: 1, topK: 0, topP: 0.5, minP: 0)).distribution(logits)
        #expect(topP.count == cut && cut > 1000)
        #expect(Set(topP.map { Int($0.token) }) == Set(order.prefix(cut)))
    }
}

/// Streaming text: stop strings across tokens, held-back prefixes, partial UTF-8.
struct TextStreamTests {
    /// Feeds pieces; returns the released chunks and the stop string, if any.
    static func run(_ pieces: [[UInt8]], stops: [String]) -> (chunks: [String], stop: String?, rest: String) {
        var stream = TextStream(stopStrings: stops)
        var chunks: [String] = []
        for piece in pieces {
            let (text, stop) = stream.append(piece)
            chunks.append(text)
            if let stop { return (chunks, stop, "") }
        }
        return (chunks, nil, stream.finish())
    }

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    @Test func aStopStringSpanningTokensIsNeverReleased() {
        let r = Self.run(["Hello", " wor", "ld", "<|", "end", "|>", "after"].map(Self.bytes), stops: ["<|end|>"])
        #expect(r.chunks == ["Hello", " wor", "ld", "", "", ""])
        #expect(r.stop == "<|end|>")
        #expect(!r.chunks.joined().contains("<"))
    }

    @Test func aFalseStartIsReleasedOnceItCannotMatch() {
        let r = Self.run(["a <", "|e", "nd", "!"].map(Self.bytes), stops: ["<|end|>"])
        #expect(r.chunks == ["a ", "", "", "<|end!"])
        #expect(r.stop == nil && r.rest == "")
        // Held-back text is flushed when the generation ends another way.
        let held = Self.run(["x <|e"].map(Self.bytes), stops: ["<|end|>"])
        #expect(held.chunks == ["x "] && held.rest == "<|e")
    }

    @Test func stopInsideOnePieceAndTheEarliestOfSeveral() {
        #expect(Self.run([Self.bytes("abcSTOPdef")], stops: ["STOP"]).chunks == ["abc"])
        // "two" starts at 4, "o t" at 6, "three" at 8: the earliest wins whatever the list order.
        let r = Self.run([Self.bytes("one two three")], stops: ["three", "o t", "two"])
        #expect(r.chunks == ["one "] && r.stop == "two")
        // Overlapping prefixes: "aab" after "aaa…" — the hold-back keeps the longest candidate.
        let o = Self.run(["xaa", "a", "ab"].map(Self.bytes), stops: ["aab"])
        #expect(o.chunks.joined() == "xaa" && o.stop == "aab")
    }

    @Test func partialUTF8IsBufferedUntilComplete() {
        let emoji = Self.bytes("👋🏽")  // two 4-byte scalars
        let r = Self.run([[0x63, 0x61, 0x66, 0xC3], [0xA9], Array(emoji[0 ..< 1]), Array(emoji[1 ..< 3]),
                          Array(emoji[3 ..< 6]), Array(emoji[6...])], stops: [])
        #expect(r.chunks == ["caf", "é", "", "", "👋", "🏽"])
        // Every chunk is whole characters: re-encoding gives back exactly the input bytes.
        #expect(Array(r.chunks.joined().utf8) == Self.bytes("café") + emoji)
    }

    @Test func invalidBytesBecomeReplacementCharactersWithoutStalling() {
        let r = Self.run([[0x61, 0xFF], [0x62, 0xE0, 0x80], [0x63], [0xE2, 0x82]], stops: [])
        #expect(r.chunks == ["a\u{FFFD}", "b\u{FFFD}\u{FFFD}", "c", ""])
        #expect(r.rest == "\u{FFFD}")  // an unfinished character at the end
        #expect(TextStream.completePrefixLength([0xF0, 0x9F, 0x91]) == 0)
        #expect(TextStream.completePrefixLength([0xF4, 0x90, 0x80]) == 3)  // beyond U+10FFFF: not held
        #expect(TextStream.completePrefixLength([0xED, 0xA0]) == 2)  // a surrogate: not held
        #expect(TextStream.completePrefixLength([0x41, 0xED, 0x9F]) == 1)
    }

    @Test func aStopStringSplitInsideACharacter() {
        let stop = Self.bytes("→END")  // E2 86 92 45 4E 44
        let r = Self.run([[0x6F, 0x6B, 0xE2], [0x86, 0x92, 0x45], [0x4E], [0x44, 0x21]], stops: ["→END"])
        #expect(r.chunks == ["ok", "", "", ""] && r.stop == "→END")
        #expect(stop.count == 6)
        // Compared as bytes: a decomposed spelling does not match a precomposed stop string.
        #expect(Self.run([Self.bytes("cafe\u{301}")], stops: ["café"]).stop == nil)
    }
}

/// The generator on the default model.
@Suite(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched (Tools/scripts/bootstrap.sh)"))
struct GeneratorTests {
    /// The model's GPT-2 byte-level vocabulary, read from the GGUF (enough to render pieces).
    struct Vocabulary: GenerationTokenizer {
        let pieces: [[UInt8]]
        let control: Set<Int32>
        let endOfGeneration: Set<Int32>

        init(_ gguf: GGUFFile) throws {
            let tokens = try #require(gguf.stringArray("tokenizer.ggml.tokens"))
            var byteOf: [UInt32: UInt8] = [:]
            var next: UInt32 = 256
            for b in 0 ..< 256 {
                if (33 ... 126).contains(b) || (161 ... 172).contains(b) || (174 ... 255).contains(b) {
                    byteOf[UInt32(b)] = UInt8(b)
                } else {
                    byteOf[next] = UInt8(b)
                    next += 1
                }
            }
            pieces = tokens.map { text in text.unicodeScalars.compactMap { byteOf[$0.value] } }
            let types = gguf.array("tokenizer.ggml.token_type")?.values(as: Int32.self) ?? []
            control = Set(types.indices.filter { types[$0] == 3 }.map { Int32($0) })
            endOfGeneration = [Int32(try #require(gguf.int("tokenizer.ggml.eos_token_id")))]
        }

        func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32] { [] }
        func piece(_ id: Int32, renderSpecial: Bool) -> [UInt8] {
            !renderSpecial && control.contains(id) ? [] : pieces[Int(id)]
        }
        func isEndOfGeneration(_ id: Int32) -> Bool { endOfGeneration.contains(id) }
    }

    let model: LlamaModel
    let vocabulary: Vocabulary
    let prompt: [Int32] = [504, 3575, 282, 4649, 314]  // "The capital of France is"

    init() throws {
        let gguf = try GGUFFile(path: TestSupport.defaultModelPath!)
        model = try LlamaModel(gguf: gguf)
        vocabulary = try Vocabulary(gguf)
    }

    func generator(_ parameters: SamplingParameters = .greedy) throws -> Generator<Vocabulary> {
        Generator(session: try InferenceSession(model: model, capacity: 64, threads: 2), tokenizer: vocabulary,
                  sampler: Sampler(parameters))
    }

    @Test func greedyGenerationEqualsTokenByTokenArgmax() throws {
        var g = try generator()
        var chunks: [String] = []
        let summary = try g.generate(.tokens(prompt), options: GenerationOptions(maxTokens: 8)) { chunks.append($0); return true }
        // Reference: the session's logits, argmax by hand.
        let session = try InferenceSession(model: model, capacity: 64, threads: 2)
        var logits = try session.forward([.tokens(prompt)], logits: .last)
        var expected: [Int32] = []
        for _ in 0 ..< 8 {
            var best = 0
            for v in 1 ..< logits.count where logits[v] > logits[best] { best = v }
            expected.append(Int32(best))
            logits = try session.forward([.tokens([Int32(best)])], logits: .last)
        }
        #expect(summary.tokens == expected)
        #expect(summary.stopReason == .maxTokens && summary.generatedTokens == 8)
        #expect(summary.promptPositions == prompt.count)
        #expect(summary.prefillSeconds > 0 && summary.generationSeconds > 0)
        #expect(chunks.joined() == summary.text)
        #expect(Array(summary.text.utf8) == expected.flatMap { vocabulary.piece($0, renderSpecial: false) })
        #expect(g.session.position == prompt.count + 7)  // the last token is not fed back
    }

    @Test func leadingEmbeddingsActLikeTheirTokens() throws {
        var viaTokens = try generator()
        var viaEmbeddings = try generator()
        let a = try viaTokens.generate(.tokens(Array(prompt[2...]), embeddings: []), options: GenerationOptions(maxTokens: 4))
        let rows = try model.embed(Array(prompt[2...]))
        let b = try viaEmbeddings.generate(.tokens([], embeddings: rows), options: GenerationOptions(maxTokens: 4))
        #expect(a.tokens == b.tokens)
        #expect(b.promptPositions == 3)
        var empty = try generator()
        #expect(throws: ModelError.self) { try empty.generate(.tokens([])) }
    }

    @Test func aStopStringAcrossTokensEndsTheTextBeforeIt() throws {
        var first = try generator()
        let full = try first.generate(.tokens(prompt), options: GenerationOptions(maxTokens: 8))
        let pieces = full.tokens.map { vocabulary.piece($0, renderSpecial: false) }
        // A stop string from the middle of the 3rd piece to the middle of the 5th.
        var starts: [Int] = [0]
        for p in pieces { starts.append(starts.last! + p.count) }
        let bytes = Array(full.text.utf8)
        let from = starts[2] + max(0, pieces[2].count / 2), to = starts[4] + max(1, pieces[4].count / 2)
        let stop = String(decoding: bytes[from ..< to], as: UTF8.self)
        try #require(stop.utf8.count == to - from && pieces[2].count > 0)
        var second = try generator()
        var chunks: [String] = []
        let summary = try second.generate(.tokens(prompt), options: GenerationOptions(maxTokens: 8, stopStrings: [stop])) {
            chunks.append($0)
            return true
        }
        let expectedText = String(decoding: bytes[..<Array(full.text.utf8).firstRange(of: Array(stop.utf8))!.lowerBound], as: UTF8.self)
        #expect(summary.stopReason == .stopString(stop))
        #expect(summary.text == expectedText && chunks.joined() == expectedText)
        #expect(chunks.allSatisfy { !$0.contains(stop) })
        #expect(summary.tokens == Array(full.tokens.prefix(5)))
    }

    @Test func cancellationAndSeededSampling() throws {
        var g = try generator()
        var calls = 0
        let summary = try g.generate(.tokens(prompt), options: GenerationOptions(maxTokens: 8)) { _ in
            calls += 1
            return false
        }
        #expect(summary.stopReason == .cancelled && calls == 1 && summary.tokens.count <= 2)
        let p = SamplingParameters(temperature: 0.9, seed: 2024)
        var a = try generator(p), b = try generator(p)
        let ra = try a.generate(.tokens(prompt), options: GenerationOptions(maxTokens: 6))
        let rb = try b.generate(.tokens(prompt), options: GenerationOptions(maxTokens: 6))
        #expect(ra.tokens == rb.tokens && ra.text == rb.text)
    }

    @Test func endOfGenerationStopsAndIsNotStreamed() throws {
        // Make the EOS token the only candidate: a vocabulary whose every token ends generation.
        struct AllEnd: GenerationTokenizer {
            func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32] { [] }
            func piece(_ id: Int32, renderSpecial: Bool) -> [UInt8] { Array("x".utf8) }
            func isEndOfGeneration(_ id: Int32) -> Bool { true }
        }
        var g = Generator(session: try InferenceSession(model: model, capacity: 16), tokenizer: AllEnd(), sampler: Sampler(.greedy))
        let summary = try g.generate(.tokens(prompt))
        #expect(summary.stopReason == .eos && summary.tokens.count == 1 && summary.text == "")
        var none = try generator()
        let zero = try none.generate(.tokens(prompt), options: GenerationOptions(maxTokens: 0))
        #expect(zero.stopReason == .maxTokens && zero.tokens.isEmpty)
        // A full context ends the generation instead of throwing.
        var small = Generator(session: try InferenceSession(model: model, capacity: 7), tokenizer: vocabulary, sampler: Sampler(.greedy))
        let full = try small.generate(.tokens(prompt), options: GenerationOptions(maxTokens: 10))
        #expect(full.stopReason == .contextFull && full.tokens.count == 3)
    }
}

private func expD(_ x: Double) -> Double { exp(x) }
