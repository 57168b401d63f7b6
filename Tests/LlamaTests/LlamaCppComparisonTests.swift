import GGUF
import Llama
import TensorIO
import Testing
import TestSupport

// The llama.cpp yardstick.
//
// llama.cpp quantizes activations (Q8 for quantized weights, F16 for F16 weights, an F16 KV cache), so its
// logits sit a measurable distance from the exact float64 reference. That distance is the bar for our own
// approximate (int8) path: on the same prompts its KL from the exact reference must be no larger than
// llama.cpp's, and its top-1 must agree with llama.cpp's wherever llama.cpp's top-2 margin exceeds 0.5.
// `YardstickCase.judge` (or `LlamaCppYardstick.judge`) checks both in one call; the fixtures come from
// Tools/scripts/gen_tiny_models.py (tiny models) and Tools/scripts/llamacpp_compare.py --fixture (the
// default model).

/// What llama.cpp produced at one token position, relative to the exact reference.
struct LlamaCppPosition: Sendable {
    /// llama.cpp's arg-max.
    var top1: Int
    /// llama.cpp's top-1 minus top-2 logit.
    var margin: Double
    /// KL(exact ‖ llama.cpp) in nats, measured the same way `ExactLogits.kl` measures a candidate.
    var kl: Double
    /// Largest |exact − llama.cpp| over the vocabulary.
    var maxAbs: Double
}

/// Exact reference logits for a run of token positions, in one of the two stored forms.
enum ExactLogits: Sendable {
    /// Full rows, (R, V) row-major.
    case full([Float], vocab: Int)
    /// Per row: the exact top ids and values and the row's logsumexp (the default model's fixture).
    /// KL is then taken over the partition {each top id, everything else}: a lower bound of the full KL,
    /// and what the llama.cpp fixture records as `kl_coarse` for a like-for-like comparison.
    case summarized([(ids: [Int], values: [Double], logsumexp: Double)], vocab: Int)

    var rows: Int {
        switch self {
        case .full(let v, let V): return v.count / V
        case .summarized(let s, _): return s.count
        }
    }

    var vocab: Int {
        switch self {
        case .full(_, let V), .summarized(_, let V): return V
        }
    }

    /// KL(exact ‖ candidate) at row `r` (nats); `candidate` holds that row's V logits.
    func kl(row r: Int, candidate: ArraySlice<Float>) -> Double {
        let lq = logSoftmax(candidate)
        switch self {
        case .full(let values, let V):
            let lp = logSoftmax(values[r * V ..< (r + 1) * V])
            var sum = 0.0
            for i in 0 ..< V { sum += _exp(lp[i]) * (lp[i] - lq[i]) }
            return max(0, sum)
        case .summarized(let summary, _):
            let (ids, values, lse) = summary[r]
            var sum = 0.0, pTop = 0.0, qTop = 0.0
            for (i, id) in ids.enumerated() {
                let lp = values[i] - lse
                sum += _exp(lp) * (lp - lq[id])
                pTop += _exp(lp)
                qTop += _exp(lq[id])
            }
            let pRest = max(0, 1 - pTop), qRest = max(1e-300, 1 - qTop)
            if pRest > 0 { sum += pRest * _log(pRest / qRest) }
            return max(0, sum)
        }
    }
}

/// log softmax in Double.
func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
    let m = Double(row.max() ?? 0)
    var s = 0.0
    for v in row { s += _exp(Double(v) - m) }
    let lse = m + _log(s)
    return row.map { Double($0) - lse }
}

/// The verdict on candidate logits against the exact reference, with llama.cpp as the bar.
struct YardstickVerdict: CustomStringConvertible {
    /// KL(exact ‖ candidate) per position.
    var kl: [Double]
    /// KL(exact ‖ llama.cpp) per position (from the fixture).
    var llamaCppKL: [Double]
    /// Positions where llama.cpp's top-2 margin exceeds `confidentMargin`.
    var confident: [Int]
    /// The confident positions where the candidate's arg-max differs from llama.cpp's.
    var disagreements: [Int]

    var meanKL: Double { kl.reduce(0, +) / Double(max(1, kl.count)) }
    var maxKL: Double { kl.max() ?? 0 }
    var llamaCppMeanKL: Double { llamaCppKL.reduce(0, +) / Double(max(1, llamaCppKL.count)) }
    var llamaCppMaxKL: Double { llamaCppKL.max() ?? 0 }
    /// The mean KL over the prompt is no larger than llama.cpp's.
    var klWithinLlamaCpp: Bool { meanKL <= llamaCppMeanKL }
    /// The top-1 agrees with llama.cpp's at every confident position.
    var top1AgreesWhereConfident: Bool { disagreements.isEmpty }
    var passes: Bool { klWithinLlamaCpp && top1AgreesWhereConfident }

    var description: String {
        "KL mean \(sci(meanKL)) max \(sci(maxKL)) (llama.cpp: mean \(sci(llamaCppMeanKL)) max \(sci(llamaCppMaxKL))); "
            + "top-1 agrees with llama.cpp at \(confident.count - disagreements.count)/\(confident.count) confident positions"
            + (disagreements.isEmpty ? "" : " (differs at \(disagreements))")
    }
}

enum LlamaCppYardstick {
    /// llama.cpp's top-2 margin above which its top-1 is taken as settled.
    static let confidentMargin = 0.5

    /// Judges `candidate` logits, (R, V) row-major for the same R token positions as `exact` and
    /// `llamaCpp`: KL from the exact reference against llama.cpp's, and top-1 agreement with llama.cpp
    /// wherever llama.cpp's top-2 margin exceeds 0.5.
    static func judge(_ candidate: [Float], exact: ExactLogits, llamaCpp: [LlamaCppPosition]) -> YardstickVerdict {
        let V = exact.vocab, R = exact.rows
        precondition(candidate.count == R * V && llamaCpp.count == R, "rows of candidate, exact and llama.cpp differ")
        var verdict = YardstickVerdict(kl: [], llamaCppKL: llamaCpp.map(\.kl), confident: [], disagreements: [])
        for r in 0 ..< R {
            let row = candidate[r * V ..< (r + 1) * V]
            verdict.kl.append(exact.kl(row: r, candidate: row))
            if llamaCpp[r].margin > confidentMargin {
                verdict.confident.append(r)
                if argmax(row) != llamaCpp[r].top1 { verdict.disagreements.append(r) }
            }
        }
        return verdict
    }

    /// Reads one `{top1, margin, kl, max_abs}` block of a llama.cpp fixture (parallel arrays).
    static func positions(_ block: JSONValue?, klKey: String = "kl") throws -> [LlamaCppPosition] {
        let top1 = try #require(block?["top1"]?.arrayValue).map { Int($0.intValue!) }
        let margin = try #require(block?["margin"]?.arrayValue).map { $0.doubleValue! }
        let kl = try #require(block?[klKey]?.arrayValue).map { $0.doubleValue! }
        let maxAbs = try #require(block?["max_abs"]?.arrayValue).map { $0.doubleValue! }
        return top1.indices.map { LlamaCppPosition(top1: top1[$0], margin: margin[$0], kl: kl[$0], maxAbs: maxAbs[$0]) }
    }

    /// The default model's cases (Tests/Fixtures/llama/smollm2-exact.json with
    /// Tests/Fixtures/llamacpp/smollm2-llamacpp.json): 5 token prompts and one behind 8 input embeddings.
    static func defaultModelCases(vocab V: Int) throws -> [YardstickCase] {
        let exact = try JSON.parse(try readFile(TestSupport.fixture("llama/smollm2-exact.json")))
        let llamaCpp = try JSON.parse(try readFile(TestSupport.fixture("llamacpp/smollm2-llamacpp.json")))
        var out: [YardstickCase] = []
        for c in try #require(llamaCpp["cases"]?.arrayValue) {
            let name = try #require(c["name"]?.stringValue)
            let e = try #require(exact["cases"]?.arrayValue?.first { $0["name"]?.stringValue == name })
            let ids = try #require(e["ids"]?.arrayValue).map { Int32($0.intValue!) }
            var inputs: [ModelInput] = []
            if let file = e["embeddings"]?.stringValue {
                inputs.append(.embeddings(try #require(try NPY.read(path: TestSupport.fixture("llama/" + file)).floats())))
            }
            inputs.append(.tokens(ids))
            let virtual = Int(try #require(c["virtual"]?.intValue))
            let rows = try #require(e["positions"]?.arrayValue).dropFirst(virtual).map { p in
                (ids: p["top_ids"]!.arrayValue!.map { Int($0.intValue!) },
                 values: p["top_values"]!.arrayValue!.map { $0.doubleValue! },
                 logsumexp: p["logsumexp"]!.doubleValue!)
            }
            let positions = try #require(c["positions"]?.arrayValue).map { p in
                LlamaCppPosition(top1: Int(p["top_ids"]!.arrayValue![0].intValue!), margin: p["margin"]!.doubleValue!,
                                 kl: p["kl_coarse"]!.doubleValue!, maxAbs: p["max_abs"]!.doubleValue!)
            }
            out.append(YardstickCase(name: name, inputs: inputs, virtual: virtual,
                                     exact: .summarized(Array(rows), vocab: V), llamaCpp: positions))
        }
        return out
    }

    /// A tiny model's two cases (Tests/Fixtures/tiny/tiny.json with
    /// Tests/Fixtures/llamacpp/tiny-llamacpp.json): its 12 prompt ids, then the same behind 8 embeddings.
    static func tinyCases(_ name: String) throws -> [YardstickCase] {
        let manifest = try JSON.parse(try readFile(TestSupport.fixture("tiny/tiny.json")))
        let yard = try JSON.parse(try readFile(TestSupport.fixture("llamacpp/tiny-llamacpp.json")))
        let entry = try #require(manifest["models"]?.arrayValue?.first { $0["name"]?.stringValue == name })
        let llamaCpp = try #require(yard["models"]?.arrayValue?.first { $0["name"]?.stringValue == name })
        let V = Int(try #require(entry["vocab"]?.intValue))
        func floats(_ key: String) throws -> [Float] {
            try #require(try NPY.read(path: TestSupport.fixture("tiny/" + entry[key]!.stringValue!)).floats())
        }
        let ids = try #require(entry["ids"]?.arrayValue).map { Int32($0.intValue!) }
        return [
            YardstickCase(name: name, inputs: [.tokens(ids)], virtual: 0, exact: .full(try floats("exact"), vocab: V),
                          llamaCpp: try positions(llamaCpp["tokens"])),
            YardstickCase(name: name + "+emb8", inputs: [.embeddings(try floats("embeddings")), .tokens(ids)], virtual: 8,
                          exact: .full(Array(try floats("exact_emb8")[(8 * V)...]), vocab: V),
                          llamaCpp: try positions(llamaCpp["emb8"])),
        ]
    }
}

/// One prompt with its exact reference and llama.cpp's record, ready to judge a forward pass.
///
/// The int8 path's check is one call per case:
/// `#expect(c.judge(try session.forward(c.inputs, logits: .all)).passes)`.
struct YardstickCase: Sendable {
    var name: String
    /// What to feed the model (embeddings first, if any, then the token ids).
    var inputs: [ModelInput]
    /// Leading embedding rows; the exact and llama.cpp records cover the token rows after them.
    var virtual: Int
    var exact: ExactLogits
    var llamaCpp: [LlamaCppPosition]

    /// Judges the logits of every row of `inputs` (as `forward(inputs, logits: .all)` returns them).
    func judge(_ allRows: [Float]) -> YardstickVerdict {
        LlamaCppYardstick.judge(Array(allRows[(virtual * exact.vocab)...]), exact: exact, llamaCpp: llamaCpp)
    }
}

func argmax(_ row: ArraySlice<Float>) -> Int {
    var best = row.startIndex
    for i in row.indices where row[i] > row[best] { best = i }
    return best - row.startIndex
}

func sci(_ x: Double) -> String {
    guard x.isFinite, x != 0 else { return "\(x)" }
    var e = 0, m = abs(x)
    while m >= 10 { m /= 10; e += 1 }
    while m < 1 { m *= 10; e -= 1 }
    let r = (m * 100).rounded() / 100
    return "\(x < 0 ? "-" : "")\(r)e\(e)"
}

/// The default model: our exact path judged against the exact fixture with llama.cpp as the bar.
@Suite(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched (Tools/scripts/bootstrap.sh)"))
struct LlamaCppComparisonTests {
    let model: LlamaModel

    init() throws {
        model = try LlamaModel(gguf: try GGUFFile(path: TestSupport.defaultModelPath!))
    }

    /// The exact path passes the int8 path's future bar with room to spare; the llama.cpp numbers are
    /// printed as the record of the bar itself.
    @Test func exactPathClearsTheLlamaCppBar() throws {
        let all = try LlamaCppYardstick.defaultModelCases(vocab: model.config.vocabSize)
        #expect(all.count == 6)
        for c in all {
            let session = try InferenceSession(model: model, capacity: 256, threads: 2)
            let verdict = c.judge(try session.forward(c.inputs, logits: .all))
            print("[llama.cpp bar] smollm2 \(c.name): exact path \(verdict); llama.cpp max abs \(c.llamaCpp.map(\.maxAbs).max()!)")
            #expect(verdict.passes, "\(c.name): \(verdict)")
            #expect(verdict.maxKL < 5e-4, "\(c.name): the float32 exact path should sit far inside llama.cpp's distance")
        }
    }

    /// The int8 path (what `generate` uses by default): mean KL from the exact reference no larger than
    /// llama.cpp's own on the same prompts, and the same top-1 as llama.cpp wherever llama.cpp's top-2
    /// margin exceeds 0.5, on every case (token prompts and the prompt behind 8 random embeddings).
    @Test func int8PathClearsTheLlamaCppBar() throws {
        for c in try LlamaCppYardstick.defaultModelCases(vocab: model.config.vocabSize) {
            let session = try InferenceSession(model: model, capacity: 256, threads: 2, precision: .int8)
            let verdict = c.judge(try session.forward(c.inputs, logits: .all))
            print("[llama.cpp bar] smollm2 \(c.name): int8 path \(verdict)")
            #expect(verdict.passes, "\(c.name): \(verdict)")
        }
    }

    /// The bar can be failed: logits that differ from the exact reference by llama.cpp-sized noise in
    /// the wrong places (a runner-up lifted above the top-1 at every confident position) fail both checks.
    @Test func theBarRejectsAWorseCandidate() throws {
        let V = model.config.vocabSize
        let c = try #require(try LlamaCppYardstick.defaultModelCases(vocab: V).first)
        let session = try InferenceSession(model: model, capacity: 256, threads: 2)
        var logits = try session.forward(c.inputs, logits: .all)
        try #require(c.virtual == 0)
        for (r, p) in c.llamaCpp.enumerated() where p.margin > LlamaCppYardstick.confidentMargin {
            let row = r * V
            let top = argmax(logits[row ..< row + V])
            guard case .summarized(let s, _) = c.exact else { continue }
            let second = s[r].ids[1]
            logits[row + second] = logits[row + top] + 1
        }
        let verdict = c.judge(logits)
        #expect(!verdict.top1AgreesWhereConfident)
        #expect(!verdict.klWithinLlamaCpp, "\(verdict)")
    }
}

#if canImport(Glibc)
import Glibc
#endif
