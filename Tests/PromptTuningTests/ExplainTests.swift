import GGUF
import Llama
import PromptTuning
import TensorIO
import TestSupport
import Testing
import Tokenizers

/// `PromptExplainer` on the tiny random-weight model (Tests/Fixtures/tiny/q4_1.gguf: width 64, 320 tokens
/// of which 5 control and 1 unknown), every number checked against a direct computation in this file.
@Suite struct ExplainTests {
    let model: LlamaModel
    let tokenizer: Tokenizer
    let C: Int

    init() throws {
        (model, tokenizer) = try TinyQ41.load()
        C = model.config.hiddenSize
    }

    /// Rows: token 100's embedding × 3, a control token's embedding, and noise rows.
    func prompt(tokens: Int, seed: UInt64) throws -> [Float] {
        var rng = SplitMix64(seed: seed)
        var p = (0 ..< tokens * C).map { _ in rng.nextFloat() * 0.05 }
        let e100 = model.tokenEmbedding.dequantizedRow(100)
        for c in 0 ..< C { p[c] = 3 * e100[c] }
        if tokens > 1 {
            let control = try #require((0 ..< Int32(320)).first { tokenizer.tokenType(of: $0) == .control })
            let e = model.tokenEmbedding.dequantizedRow(Int(control))
            for c in 0 ..< C { p[C + c] = e[c] }
        }
        return p
    }

    /// Rows with two choices (one of them two tokens long) and rows without choices (exact match).
    func examples(seed: UInt64) -> [EncodedExample] {
        var rng = SplitMix64(seed: seed)
        var out: [EncodedExample] = []
        for i in 0 ..< 8 {
            let n = 2 + Int(rng.next() % 4)
            let context = (0 ..< n).map { _ in Int32(10 + rng.next() % 300) }
            if i < 6 {
                let choices: [[Int32]] = [[7], [9, 11]]
                let answer = Int(context[0] % 2)
                out.append(EncodedExample(context: context, output: choices[answer], choices: choices, answer: answer))
            } else {
                out.append(EncodedExample(context: context, output: [Int32(20 + rng.next() % 200), 33]))
            }
        }
        return out
    }

    func dcos(_ a: [Float], _ b: [Float]) -> Double {
        var d = 0.0, na = 0.0, nb = 0.0
        for i in 0 ..< a.count { d += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i]) }
        return na > 0 && nb > 0 ? d / (na.squareRoot() * nb.squareRoot()) : 0
    }

    func row(_ p: [Float], _ t: Int) -> [Float] { Array(p[t * C ..< (t + 1) * C]) }

    @Test func neighboursNormsAndSimilarityMatchBruteForce() throws {
        let P = 4, k = 6
        let p = try prompt(tokens: P, seed: 1)
        let x = try PromptExplainer(model: model, tokenizer: tokenizer, topK: k, threads: 2).explain(prompt: p)

        // Candidates: every token but control, unknown and unused ones.
        let V = model.config.vocabSize
        let excluded = (0 ..< Int32(V)).filter { [.control, .unknown, .unused].contains(tokenizer.tokenType(of: $0)) }
        #expect(excluded.count == 6)
        #expect(x.vocabularyNorms.excluded == excluded)
        let candidates = (0 ..< Int32(V)).filter { !excluded.contains($0) }
        let rows = candidates.map { model.tokenEmbedding.dequantizedRow(Int($0)) }

        for t in 0 ..< P {
            let v = row(p, t)
            var scored = zip(candidates, rows).map { (id: $0, cos: dcos(v, $1)) }
            scored.sort { $0.cos != $1.cos ? $0.cos > $1.cos : $0.id < $1.id }
            let got = x.neighbours[t]
            #expect(got.map(\.id) == scored.prefix(k).map(\.id))
            for (g, s) in zip(got, scored) { #expect(abs(g.cosine - s.cos) < 1e-12) }
            #expect(got.map(\.text) == got.map { tokenizer.decode([$0.id]) })
            #expect(x.projection.ids[t] == scored[0].id)
        }
        // Row 0 is token 100 scaled: its own token at cosine 1. Row 1 is a control token: never proposed.
        #expect(x.neighbours[0][0].id == 100 && abs(x.neighbours[0][0].cosine - 1) < 1e-6)
        #expect(!excluded.contains(x.neighbours[1][0].id))
        #expect(x.projection.text == tokenizer.decode(x.projection.ids))

        // Norms, percentiles by direct count, nearest-rank quantiles.
        let vocabNorms = rows.map { r in r.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }
        let sorted = vocabNorms.sorted()
        #expect(x.vocabularyNorms.candidates == candidates.count)
        for t in 0 ..< P {
            let n = row(p, t).reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(abs(x.norms[t] - n) < 1e-12)
            let below = vocabNorms.filter { $0 < n }.count
            #expect(abs(x.normPercentiles[t] - 100 * Double(below) / Double(vocabNorms.count)) < 1e-12)
        }
        #expect(x.normPercentiles[0] > 90)  // three times a token's norm
        let N = sorted.count
        #expect(x.vocabularyNorms.median == sorted[(N + 1) / 2 - 1])  // ceil(0.5 N)
        #expect(x.vocabularyNorms.p99 == sorted[Int((0.99 * Double(N)).rounded(.up)) - 1])
        #expect(x.vocabularyNorms.p999 == sorted[N - 1])  // N = 314 < 1000
        #expect(x.vocabularyNorms.maximum == sorted[N - 1] && x.vocabularyNorms.minimum == sorted[0])

        for i in 0 ..< P {
            for j in 0 ..< P { #expect(abs(x.tokenSimilarity[i][j] - dcos(row(p, i), row(p, j))) < 1e-12) }
        }
        #expect(x.evaluation == nil && x.bank == nil)

        // The thread count does not change anything.
        let one = try PromptExplainer(model: model, tokenizer: tokenizer, topK: k, threads: 1).explain(prompt: p)
        #expect(one.neighbours == x.neighbours && one.norms == x.norms && one.vocabularyNorms == x.vocabularyNorms)
    }

    /// Every metric equals an `Evaluator` run on the prompt built here.
    @Test func metricsEqualEvaluatorOnExplicitPrompts() throws {
        let P = 3
        let p = try prompt(tokens: P, seed: 2)
        let data = examples(seed: 5)
        let x = try PromptExplainer(model: model, tokenizer: tokenizer, topK: 3, threads: 2).explain(prompt: p, examples: data)
        let e = try #require(x.evaluation)

        func direct(_ rows: [Float]) throws -> EvaluationResult {
            try Evaluator(model: model, tokenizer: tokenizer, threads: 1).evaluate(data, prompt: rows)
        }
        func same(_ a: EvaluationResult, _ b: EvaluationResult) {
            #expect(a.accuracy == b.accuracy && a.exactMatch == b.exactMatch && a.meanLoss == b.meanLoss)
            #expect(a.scores == b.scores)
        }
        same(e.soft, try direct(p))
        same(e.noPrompt, try direct([]))
        let projected = x.projection.ids.flatMap { model.tokenEmbedding.dequantizedRow(Int($0)) }
        same(e.projected, try direct(projected))
        #expect(e.soft.accuracy != nil && e.soft.exactMatch != nil)

        #expect(e.ablations.count == 2 * P)
        for t in 0 ..< P {
            // Removed: the other rows in order.
            var removed: [Float] = []
            for u in 0 ..< P where u != t { removed += row(p, u) }
            // Mean: the row replaced by the mean of all rows (summed in Double, rounded to Float).
            var mean = p
            for c in 0 ..< C {
                var s = 0.0
                for u in 0 ..< P { s += Double(p[u * C + c]) }
                mean[t * C + c] = Float(s / Double(P))
            }
            for (kind, rows) in [(AblationKind.remove, removed), (.mean, mean)] {
                let a = try #require(e.ablations.first { $0.token == t && $0.kind == kind })
                let d = try direct(rows)
                same(a.result, d)
                #expect(a.metricDrop == e.soft.selectionMetric - d.selectionMetric)
                #expect(a.lossIncrease == d.meanLoss - e.soft.meanLoss)
            }
        }
        // Ranking: metric drop, then loss increase, descending.
        for kind in AblationKind.allCases {
            let r = e.ranking(kind)
            #expect(r.count == P && Set(r.map(\.token)) == Set(0 ..< P))
            for (a, b) in zip(r, r.dropFirst()) {
                #expect(a.metricDrop > b.metricDrop || (a.metricDrop == b.metricDrop && a.lossIncrease >= b.lossIncrease))
            }
        }
        let gain = e.soft.selectionMetric - e.noPrompt.selectionMetric
        #expect(e.retainedByProjection == (gain > 0 ? (e.projected.selectionMetric - e.noPrompt.selectionMetric) / gain : nil))
    }

    @Test func bankSimilarityInDouble() throws {
        var rng = SplitMix64(seed: 9)
        func random(_ n: Int) -> [Float] { (0 ..< n).map { _ in rng.nextFloat() } }
        let a = random(3 * 8), b = random(3 * 8), c = random(2 * 8), d = random(3 * 6)
        let bank = [BankPrompt(name: "a", vectors: a, width: 8), BankPrompt(name: "b", vectors: b, width: 8),
                    BankPrompt(name: "c", vectors: c, width: 8), BankPrompt(name: "d", vectors: d, width: 6)]
        let s = PromptExplainer.bankSimilarity(bank)
        func meanRow(_ v: [Float], _ w: Int) -> [Float] {
            let n = v.count / w
            return (0 ..< w).map { col in Float((0 ..< n).reduce(0.0) { $0 + Double(v[$1 * w + col]) } / Double(n)) }
        }
        #expect(s.names == ["a", "b", "c", "d"])
        #expect(abs(s.flattened[0][1]! - dcos(a, b)) < 1e-12 && abs(s.flattened[1][0]! - dcos(a, b)) < 1e-12)
        #expect(abs(s.flattened[0][0]! - 1) < 1e-12)
        #expect(s.flattened[0][2] == nil && s.flattened[2][3] == nil && s.flattened[0][3] == nil)
        #expect(abs(s.mean[0][2]! - dcos(meanRow(a, 8), meanRow(c, 8))) < 1e-12)
        #expect(abs(s.mean[1][2]! - dcos(meanRow(b, 8), meanRow(c, 8))) < 1e-12)
        #expect(s.mean[0][3] == nil && abs(s.mean[3][3]! - 1) < 1e-12)

        // explain reports the bank only when there is something to compare.
        let p = try prompt(tokens: 2, seed: 3)
        let explainer = PromptExplainer(model: model, tokenizer: tokenizer, topK: 2)
        #expect(try explainer.explain(prompt: p, bank: [BankPrompt(name: "x", vectors: p, width: C)]).bank == nil)
        #expect(try explainer.explain(prompt: p, bank: Array(bank.prefix(2))).bank == PromptExplainer.bankSimilarity(Array(bank.prefix(2))))
    }

    @Test func refusesPromptsOfAnotherWidth() throws {
        let explainer = PromptExplainer(model: model, tokenizer: tokenizer)
        #expect(throws: ModelError.self) { try explainer.explain(prompt: []) }
        #expect(throws: ModelError.self) { try explainer.explain(prompt: [Float](repeating: 0, count: C + 1)) }
    }

    @Test func htmlIsSelfContainedAndEscaped() throws {
        let p = try prompt(tokens: 3, seed: 4)
        let explainer = PromptExplainer(model: model, tokenizer: tokenizer, topK: 2)
        let bank = [BankPrompt(name: "<img src=x onerror=alert(1)>", vectors: p, width: C),
                    BankPrompt(name: "b&\"q'", vectors: Array(p.prefix(2 * C)), width: C)]
        var x = try explainer.explain(prompt: p, examples: examples(seed: 6), bank: bank)
        x.neighbours[0][0].text = "<script>alert(\"x\")</script>"
        x.neighbours[1][0].text = " a&b\u{1B}[31m\u{0}\n\u{202E}"
        x.projection.text = "</code><script>"
        let page = x.html(title: "t <script>", facts: [("prompt", "p<script>.sprompt")], notes: ["note </p><script>"])

        #expect(!page.lowercased().contains("<script"))
        #expect(!page.contains("<img"))
        #expect(page.contains("&lt;script&gt;alert(\\&quot;x\\&quot;)&lt;/script&gt;"))
        #expect(page.contains("&quot; a&amp;b\\u{1B}[31m\\u{0}\\n\\u{202E}&quot;"))
        #expect(page.contains("&lt;img src=x onerror=alert(1)&gt;"))
        #expect(page.contains("b&amp;&quot;q&#39;"))
        // Nothing outside the page: no URLs at all, no script, no external resources.
        #expect(!page.contains("http:") && !page.contains("https:") && !page.contains("//"))
        #expect(!page.contains("src=\"") && !page.contains("href="))
        // Only tab and newline among the controls.
        #expect(!page.unicodeScalars.contains { ($0.value < 0x20 && $0.value != 0x0A && $0.value != 0x09) || $0.value == 0x7F })
        // The sections are there: two heat maps of the bank, one of the tokens, the ablation chart.
        #expect(page.ranges(of: "<svg").count == 4)
        #expect(page.ranges(of: "</svg>").count == 4)
        #expect(page.contains("Prompt Waywardness"))
        #expect(page.hasPrefix("<!DOCTYPE html>") && page.hasSuffix("</html>\n"))
    }

    @Test func jsonCarriesTheNumbers() throws {
        let p = try prompt(tokens: 2, seed: 7)
        let x = try PromptExplainer(model: model, tokenizer: tokenizer, topK: 2).explain(prompt: p, examples: examples(seed: 8))
        let parsed = try JSON.parse(Array(try JSON.serialize(.object(x.json())).utf8))
        #expect(parsed["tokens"]?.intValue == 2)
        #expect(parsed["virtual_tokens"]?[1]?["norm"]?.doubleValue == x.norms[1])
        #expect(parsed["virtual_tokens"]?[0]?["neighbours"]?[0]?["id"]?.intValue == Int64(x.neighbours[0][0].id))
        #expect(parsed["projection"]?["text"]?.stringValue == x.projection.text)
        #expect(parsed["evaluation"]?["soft"]?["loss"]?.doubleValue == x.evaluation?.soft.meanLoss)
        #expect(parsed["evaluation"]?["ablations"]?.arrayValue?.count == 4)
        #expect(parsed["evaluation"]?["ranking"]?["remove"]?.arrayValue?.count == 2)
        #expect(parsed["bank"]?.isNull == true)
    }
}

/// The evaluator's shared-prompt batches against its one-row-at-a-time path, and the forward-only batch
/// pass against the training pass it is half of.
@Suite struct BatchedEvaluationTests {
    let model: LlamaModel
    let tokenizer: Tokenizer

    init() throws {
        (model, tokenizer) = try TinyQ41.load()
    }

    /// Every kind of row: one-token and longer choices, an output that is not a choice, no choices
    /// (exact match), an empty context (scored from the prompt's last row); contexts sharing a prefix.
    func rows(seed: UInt64) -> [EncodedExample] {
        var rng = SplitMix64(seed: seed)
        var out: [EncodedExample] = []
        for i in 0 ..< 12 {
            let n = 1 + Int(rng.next() % 5)
            let context: [Int32] = [40, 41] + (0 ..< n).map { _ in Int32(10 + rng.next() % 300) }
            let choices: [[Int32]] = [[7], [9, 11], [12, 13, 14]]
            switch i % 4 {
            case 0, 1: out.append(EncodedExample(context: context, output: choices[i % 3], choices: choices, answer: i % 3))
            case 2: out.append(EncodedExample(context: context, output: [5, 6], choices: choices, answer: nil))
            default: out.append(EncodedExample(context: context, output: [Int32(20 + rng.next() % 200), 33]))
            }
        }
        out.append(EncodedExample(context: [], output: [9, 11], choices: [[7], [9, 11]], answer: 1))
        return out
    }

    @Test(arguments: [0, 3])
    func batchesScoreLikeOneRowAtATime(promptTokens: Int) throws {
        var rng = SplitMix64(seed: 11)
        let prompt = (0 ..< promptTokens * model.config.hiddenSize).map { _ in rng.nextFloat() * 0.1 }
        var data = rows(seed: 4)
        if promptTokens == 0 { data.removeLast() }  // an empty context needs a prompt
        let single = Evaluator(model: model, tokenizer: tokenizer, threads: 2)
        single.batching = false
        let batched = Evaluator(model: model, tokenizer: tokenizer, threads: 2)
        batched.batchRows = 10  // several batches
        let a = try single.evaluate(data, prompt: prompt)
        let b = try batched.evaluate(data, prompt: prompt)
        #expect(a.positions == b.positions)
        #expect(abs(a.meanLoss - b.meanLoss) < 1e-5 * max(1, a.meanLoss))
        for (x, y) in zip(a.scores, b.scores) {
            #expect(x.choiceLogProbs.count == y.choiceLogProbs.count)
            for (p, q) in zip(x.choiceLogProbs, y.choiceLogProbs) { #expect(abs(p - q) < 1e-4 * max(1, abs(p))) }
            #expect(abs(x.outputNLL - y.outputNLL) < 1e-4 * max(1, x.outputNLL))
            #expect(x.generated == y.generated && x.exactMatch == y.exactMatch)
            // The same prediction unless two choices are within rounding of each other.
            if x.predicted != y.predicted, let i = x.predicted, let j = y.predicted {
                #expect(abs(x.choiceLogProbs[i] - x.choiceLogProbs[j]) < 1e-4)
            }
        }
        #expect(a.accuracy == b.accuracy && a.exactMatch == b.exactMatch)
    }

    @Test func forwardOnlyPassGivesTheTrainingPassLosses() throws {
        var rng = SplitMix64(seed: 12)
        let C = model.config.hiddenSize
        let prompt = (0 ..< 4 * C).map { _ in rng.nextFloat() * 0.1 }
        let examples = (0 ..< 5).map { i in
            PromptExample(tokens: (0 ..< 3 + i).map { _ in Int32(10 + rng.next() % 300) },
                          targets: [TokenTarget(row: 5 + i, token: 7), TokenTarget(row: 5 + i, token: 9), TokenTarget(row: 3, token: 2)])
        }
        let pass = PromptGradient(model: model, maxRows: 64, threads: 2)
        let full = try pass.computeBatch(prompt: prompt, examples: examples)
        let forward = try pass.lossesBatch(prompt: prompt, examples: examples)
        #expect(forward.targetLosses == full.targetLosses && forward.loss == full.loss)
        #expect(forward.gradient.isEmpty && forward.positionsProcessed == full.positionsProcessed)
        // And the training pass still gives its gradient after a forward-only call on the same arena.
        #expect(try pass.computeBatch(prompt: prompt, examples: examples).gradient == full.gradient)
    }
}
