import Dispatch
import Llama
import Tokenizers

// What a soft prompt looks like from the model's side:
//   - each virtual token's norm against the vocabulary's embedding norms, and its nearest vocabulary
//     tokens by cosine (the analysis of Lester et al. 2021, §7);
//   - the hard-prompt projection (each virtual token replaced by its nearest token) scored beside the soft
//     prompt and no prompt (Khashabi et al. 2022, "Prompt Waywardness": the projection often loses the
//     behaviour);
//   - ablations (each virtual token removed, or replaced by the prompt's mean row), ranked by metric drop;
//   - similarity between the prompts of a bank (SPoT, Vu et al. 2022, picks a source task this way).
// Every metric is an `Evaluator` run, so the numbers are those `softprompt eval` prints for the same prompt.

/// A vocabulary token close to a virtual token.
public struct VocabularyNeighbour: Sendable, Equatable {
    public var id: Int32
    /// The token decoded on its own (control and partial UTF-8 bytes rendered as the tokenizer does).
    public var text: String
    /// Cosine similarity between the virtual token and the token's embedding.
    public var cosine: Double
}

/// The distribution of the candidate tokens' embedding norms.
public struct NormDistribution: Sendable, Equatable {
    /// Tokens whose rows were candidates (and make up the distribution).
    public var candidates: Int
    /// Token ids left out: control, unknown and unused tokens (they never appear in text; the rows of
    /// unused tokens are often untrained).
    public var excluded: [Int32]
    public var minimum: Double
    public var median: Double
    public var p99: Double
    public var p999: Double
    public var maximum: Double
    public var mean: Double

    /// Nearest-rank percentile of sorted values: the smallest value with at least `q` of them at or below it.
    static func percentile(_ sorted: [Double], _ q: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(sorted.count, max(1, rank)) - 1]
    }
}

/// The nearest-token (hard) version of a prompt.
public struct PromptProjection: Sendable, Equatable {
    /// For each virtual token, its nearest candidate token.
    public var ids: [Int32]
    /// Cosine between each virtual token and its projection.
    public var cosines: [Double]
    /// The projected tokens decoded as one text.
    public var text: String
}

/// How a virtual token is taken out of the prompt.
public enum AblationKind: String, Sendable, CaseIterable {
    /// The prompt without the row (one token shorter).
    case remove
    /// The row replaced by the mean of the prompt's rows.
    case mean
}

/// The prompt scored with one virtual token ablated.
public struct Ablation: Sendable {
    public var token: Int
    public var kind: AblationKind
    public var result: EvaluationResult
    /// The soft prompt's selection metric minus the ablated one's (positive: the token helps).
    public var metricDrop: Double
    /// The ablated mean loss minus the soft prompt's (positive: the token helps).
    public var lossIncrease: Double
}

/// The metrics of the soft prompt, its projection, no prompt and every ablation, on the same rows.
public struct PromptEvaluation: Sendable {
    public var soft: EvaluationResult
    public var projected: EvaluationResult
    public var noPrompt: EvaluationResult
    /// Every token under every kind, token-major (token 0 remove, token 0 mean, token 1 remove, ...).
    public var ablations: [Ablation]

    /// The share of the soft prompt's gain over no prompt that the projection keeps, on the selection
    /// metric; nil when the soft prompt gains nothing.
    public var retainedByProjection: Double? {
        let gain = soft.selectionMetric - noPrompt.selectionMetric
        guard gain > 0 else { return nil }
        return (projected.selectionMetric - noPrompt.selectionMetric) / gain
    }

    /// The kind the reports rank by: `remove` when it was run, else `mean`.
    public var primaryAblation: AblationKind { ablations.contains { $0.kind == .remove } ? .remove : .mean }

    /// The ablations of one kind, most important token first: larger metric drop, then larger loss
    /// increase, then lower index.
    public func ranking(_ kind: AblationKind) -> [Ablation] {
        ablations.filter { $0.kind == kind }.sorted {
            if $0.metricDrop != $1.metricDrop { return $0.metricDrop > $1.metricDrop }
            if $0.lossIncrease != $1.lossIncrease { return $0.lossIncrease > $1.lossIncrease }
            return $0.token < $1.token
        }
    }
}

/// A prompt of a bank, for similarity between prompts.
public struct BankPrompt: Sendable, Equatable {
    public var name: String
    public var vectors: [Float]
    public var width: Int
    public var tokens: Int { width > 0 ? vectors.count / width : 0 }

    public init(name: String, vectors: [Float], width: Int) {
        self.name = name
        self.vectors = vectors
        self.width = width
    }
}

/// Pairwise similarity of a bank's prompts.
public struct BankSimilarity: Sendable, Equatable {
    public var names: [String]
    /// Cosine of the flattened prompts; nil where the shapes differ.
    public var flattened: [[Double?]]
    /// Cosine of the prompts' mean rows; nil where the widths differ.
    public var mean: [[Double?]]
}

/// Everything `softprompt explain` reports about one soft prompt.
public struct PromptExplanation: Sendable {
    /// Virtual tokens and embedding width.
    public var tokens: Int
    public var width: Int
    /// L2 norm of each virtual token.
    public var norms: [Double]
    /// Percent of candidate vocabulary tokens whose embedding norm is strictly below each virtual token's.
    public var normPercentiles: [Double]
    public var vocabularyNorms: NormDistribution
    /// Nearest candidate tokens of each virtual token by cosine, best first (ties: lower id first).
    public var neighbours: [[VocabularyNeighbour]]
    /// Cosine between virtual tokens, (tokens × tokens).
    public var tokenSimilarity: [[Double]]
    public var projection: PromptProjection
    /// Metrics on the data, when data was given.
    public var evaluation: PromptEvaluation?
    /// Similarity between the prompts of the bank the prompt came from, when it has more than one.
    public var bank: BankSimilarity?
}

/// Explains a soft prompt against a frozen model (see `PromptExplanation`).
public final class PromptExplainer {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    /// Nearest vocabulary tokens listed per virtual token.
    public var topK: Int
    public var threads: Int
    /// Which ablations are run for every virtual token (each kind costs one evaluation per token).
    public var ablationKinds: [AblationKind] = AblationKind.allCases
    /// Token types never offered as neighbours.
    public static let excludedTypes: Set<TokenType> = [.control, .unknown, .unused]

    private let evaluator: Evaluator

    public init(model: LlamaModel, tokenizer: Tokenizer, topK: Int = 5, threads: Int = 1) {
        self.model = model
        self.tokenizer = tokenizer
        self.topK = max(1, topK)
        self.threads = max(1, threads)
        evaluator = Evaluator(model: model, tokenizer: tokenizer, threads: threads)
    }

    /// What is being run, for progress reports.
    public enum Stage: Sendable, Equatable {
        case vocabulary
        case evaluation(name: String, done: Int, of: Int)
    }

    /// - Parameters:
    ///   - prompt: The soft prompt's rows (P, C), P ≥ 1, C the model's embedding width.
    ///   - examples: Rows to score, or nil to skip the projection's and the ablations' metrics.
    ///   - bank: The prompts of the bank `prompt` came from (similarity is reported when it has two or more).
    ///   - progress: Called when a stage starts (evaluations: one call per evaluation).
    /// - Throws: `ModelError.invalidInput` for an empty prompt or rows of another width, and what the
    ///   `Evaluator` throws.
    public func explain(prompt: [Float], examples: [EncodedExample]? = nil, bank: [BankPrompt] = [],
                        progress: ((Stage) -> Void)? = nil) throws(ModelError) -> PromptExplanation {
        let C = model.config.hiddenSize
        guard !prompt.isEmpty, prompt.count % C == 0 else {
            throw ModelError(.invalidInput, "a prompt of \(prompt.count) floats is not rows of width \(C)")
        }
        let P = prompt.count / C
        progress?(.vocabulary)
        let scan = try scanVocabulary(prompt)
        let sortedNorms = scan.norms.sorted()
        let norms = (0 ..< P).map { norm(prompt[$0 * C ..< ($0 + 1) * C]) }
        let percentiles = norms.map { x in
            100 * Double(countBelow(sortedNorms, x)) / Double(max(1, sortedNorms.count))
        }
        let distribution = NormDistribution(
            candidates: sortedNorms.count, excluded: scan.excluded,
            minimum: sortedNorms.first ?? 0,
            median: NormDistribution.percentile(sortedNorms, 0.5),
            p99: NormDistribution.percentile(sortedNorms, 0.99),
            p999: NormDistribution.percentile(sortedNorms, 0.999),
            maximum: sortedNorms.last ?? 0,
            mean: sortedNorms.reduce(0, +) / Double(max(1, sortedNorms.count)))
        var similarity = [[Double]](repeating: [Double](repeating: 0, count: P), count: P)
        for i in 0 ..< P {
            for j in 0 ..< P {
                similarity[i][j] = cosine(prompt[i * C ..< (i + 1) * C], prompt[j * C ..< (j + 1) * C])
            }
        }
        let ids = scan.neighbours.map { $0.first?.id ?? 0 }
        let projection = PromptProjection(ids: ids, cosines: scan.neighbours.map { $0.first?.cosine ?? 0 },
                                          text: tokenizer.decode(ids))
        var explanation = PromptExplanation(
            tokens: P, width: C, norms: norms, normPercentiles: percentiles, vocabularyNorms: distribution,
            neighbours: scan.neighbours, tokenSimilarity: similarity, projection: projection,
            evaluation: nil, bank: bank.count >= 2 ? Self.bankSimilarity(bank) : nil)
        if let examples {
            explanation.evaluation = try evaluate(prompt: prompt, projection: ids, examples: examples, progress: progress)
        }
        return explanation
    }

    /// The prompt with token `token` ablated: removed (P − 1 rows) or replaced by the mean of all P rows.
    public static func ablated(_ prompt: [Float], width C: Int, token: Int, kind: AblationKind) -> [Float] {
        let P = prompt.count / C
        precondition(C > 0 && token >= 0 && token < P, "token \(token) outside 0..<\(P)")
        switch kind {
        case .remove:
            return Array(prompt[0 ..< token * C]) + Array(prompt[(token + 1) * C ..< P * C])
        case .mean:
            var mean = [Double](repeating: 0, count: C)
            for t in 0 ..< P { for c in 0 ..< C { mean[c] += Double(prompt[t * C + c]) } }
            var out = prompt
            for c in 0 ..< C { out[token * C + c] = Float(mean[c] / Double(P)) }
            return out
        }
    }

    /// Pairwise cosines of flattened prompts (same shape only) and of their mean rows (same width only),
    /// computed in Double.
    public static func bankSimilarity(_ prompts: [BankPrompt]) -> BankSimilarity {
        let n = prompts.count
        let means: [[Float]] = prompts.map { p in
            guard p.width > 0, p.tokens > 0 else { return [] }
            var m = [Double](repeating: 0, count: p.width)
            for t in 0 ..< p.tokens { for c in 0 ..< p.width { m[c] += Double(p.vectors[t * p.width + c]) } }
            return m.map { Float($0 / Double(p.tokens)) }
        }
        var flat = [[Double?]](repeating: [Double?](repeating: nil, count: n), count: n)
        var mean = flat
        for i in 0 ..< n {
            for j in 0 ..< n {
                let a = prompts[i], b = prompts[j]
                if a.width == b.width && a.vectors.count == b.vectors.count && !a.vectors.isEmpty {
                    flat[i][j] = cosine(a.vectors[...], b.vectors[...])
                }
                if a.width == b.width && !means[i].isEmpty && !means[j].isEmpty {
                    mean[i][j] = cosine(means[i][...], means[j][...])
                }
            }
        }
        return BankSimilarity(names: prompts.map(\.name), flattened: flat, mean: mean)
    }

    // MARK: - Evaluation

    private func evaluate(prompt: [Float], projection: [Int32], examples: [EncodedExample],
                          progress: ((Stage) -> Void)?) throws(ModelError) -> PromptEvaluation {
        let C = model.config.hiddenSize
        let P = prompt.count / C
        let total = 3 + ablationKinds.count * P
        var done = 0
        evaluator.threads = threads
        func run(_ name: String, _ rows: [Float]) throws(ModelError) -> EvaluationResult {
            progress?(.evaluation(name: name, done: done, of: total))
            let r = try evaluator.evaluate(examples, prompt: rows)
            done += 1
            return r
        }
        let soft = try run("soft prompt", prompt)
        let projected = try run("projection", try model.embed(projection))
        let none = try run("no prompt", [])
        var ablations: [Ablation] = []
        for t in 0 ..< P {
            for kind in ablationKinds {
                let r = try run("token \(t) \(kind.rawValue)", Self.ablated(prompt, width: C, token: t, kind: kind))
                ablations.append(Ablation(token: t, kind: kind, result: r,
                                          metricDrop: soft.selectionMetric - r.selectionMetric,
                                          lossIncrease: r.meanLoss - soft.meanLoss))
            }
        }
        return PromptEvaluation(soft: soft, projected: projected, noPrompt: none, ablations: ablations)
    }

    // MARK: - Vocabulary scan

    private struct Scan {
        var norms: [Double]
        var excluded: [Int32]
        var neighbours: [[VocabularyNeighbour]]
    }

    /// One pass over the token embeddings, dequantized a block of rows at a time: each candidate row's
    /// norm and its cosine with every virtual token (top-k kept per token).
    private func scanVocabulary(_ prompt: [Float]) throws(ModelError) -> Scan {
        let C = model.config.hiddenSize
        let P = prompt.count / C
        let V = model.config.vocabSize
        let k = topK
        // Unit virtual tokens in Double: cosine = dot(row, unit) / |row|.
        var units = [Double](repeating: 0, count: P * C)
        for t in 0 ..< P {
            let n = norm(prompt[t * C ..< (t + 1) * C])
            for c in 0 ..< C { units[t * C + c] = n > 0 ? Double(prompt[t * C + c]) / n : 0 }
        }
        var candidate = [Bool](repeating: true, count: V)
        var excluded: [Int32] = []
        for id in 0 ..< V {
            if let type = tokenizer.tokenType(of: Int32(id)), Self.excludedTypes.contains(type) {
                candidate[id] = false
                excluded.append(Int32(id))
            }
        }
        if excluded.count == V {  // nothing left: every row is a candidate
            candidate = [Bool](repeating: true, count: V)
            excluded = []
        }
        let block = 512
        let blocks = (V + block - 1) / block
        let workers = min(threads, blocks)
        // Each worker owns its own results; they are merged in a fixed order below.
        let results = WorkerResults(count: workers)
        let model = self.model
        let work: @Sendable (Int) -> Void = { [units, candidate] w in
            var norms = [(Int32, Double)]()
            var best = [[(id: Int32, cosine: Double)]](repeating: [], count: P)
            var b = w
            while b < blocks {
                let start = b * block, end = min(V, start + block)
                let rows = (try? model.embed((start ..< end).map { Int32($0) })) ?? []
                for r in 0 ..< (end - start) where candidate[start + r] {
                    let id = Int32(start + r)
                    var n2: Double = 0
                    for c in 0 ..< C { let x = Double(rows[r * C + c]); n2 += x * x }
                    let n = n2.squareRoot()
                    norms.append((id, n))
                    for t in 0 ..< P {
                        var dot: Double = 0
                        for c in 0 ..< C { dot += Double(rows[r * C + c]) * units[t * C + c] }
                        let cos = n > 0 ? dot / n : 0
                        Self.insert((id, cos), into: &best[t], k: k)
                    }
                }
                b += workers
            }
            results.store(w, norms: norms, best: best)
        }
        if workers <= 1 {
            work(0)
        } else {
            DispatchQueue.concurrentPerform(iterations: workers, execute: work)
        }
        var norms = [(Int32, Double)]()
        var best = [[(id: Int32, cosine: Double)]](repeating: [], count: P)
        for w in 0 ..< workers {
            let (n, b) = results.load(w)
            norms += n
            for t in 0 ..< P { for e in b[t] { Self.insert(e, into: &best[t], k: k) } }
        }
        let neighbours = best.map { list in
            list.map { VocabularyNeighbour(id: $0.id, text: tokenizer.decode([$0.id]), cosine: $0.cosine) }
        }
        return Scan(norms: norms.map(\.1), excluded: excluded, neighbours: neighbours)
    }

    /// Keeps `list` the best `k` entries, highest cosine first, lower id first among equal cosines.
    private static func insert(_ e: (id: Int32, cosine: Double), into list: inout [(id: Int32, cosine: Double)], k: Int) {
        func better(_ a: (id: Int32, cosine: Double), _ b: (id: Int32, cosine: Double)) -> Bool {
            a.cosine != b.cosine ? a.cosine > b.cosine : a.id < b.id
        }
        if list.count == k, let last = list.last, !better(e, last) { return }
        var i = list.count
        while i > 0 && better(e, list[i - 1]) { i -= 1 }
        list.insert(e, at: i)
        if list.count > k { list.removeLast() }
    }
}

/// Per-worker results of the vocabulary scan; each worker writes only its own slot.
private final class WorkerResults: @unchecked Sendable {
    // @unchecked: slot w is written by worker w alone, and read after `concurrentPerform` returns.
    private var norms: [[(Int32, Double)]]
    private var best: [[[(id: Int32, cosine: Double)]]]
    private let lock = DispatchQueue(label: "explain.results")
    init(count: Int) {
        norms = Array(repeating: [], count: count)
        best = Array(repeating: [], count: count)
    }
    func store(_ w: Int, norms n: [(Int32, Double)], best b: [[(id: Int32, cosine: Double)]]) {
        lock.sync { norms[w] = n; best[w] = b }
    }
    func load(_ w: Int) -> ([(Int32, Double)], [[(id: Int32, cosine: Double)]]) {
        lock.sync { (norms[w], best[w]) }
    }
}

/// Number of values in `sorted` strictly below `x`.
func countBelow(_ sorted: [Double], _ x: Double) -> Int {
    var lo = 0, hi = sorted.count
    while lo < hi {
        let mid = (lo + hi) / 2
        if sorted[mid] < x { lo = mid + 1 } else { hi = mid }
    }
    return lo
}

func norm(_ v: ArraySlice<Float>) -> Double {
    var s: Double = 0
    for x in v { s += Double(x) * Double(x) }
    return s.squareRoot()
}

/// Cosine in Double; 0 when either vector is zero.
func cosine(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
    var dot: Double = 0, na: Double = 0, nb: Double = 0
    for (x, y) in zip(a, b) {
        let dx = Double(x), dy = Double(y)
        dot += dx * dy
        na += dx * dx
        nb += dy * dy
    }
    return na > 0 && nb > 0 ? dot / (na.squareRoot() * nb.squareRoot()) : 0
}
