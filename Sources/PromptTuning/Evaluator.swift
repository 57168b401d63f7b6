import Llama
import Tokenizers

/// The score of one example.
public struct ExampleScore: Sendable, Equatable {
    /// Sum of log-probabilities of each choice's tokens after the context (rank classification).
    public var choiceLogProbs: [Double]
    /// Index of the best-scoring choice.
    public var predicted: Int?
    /// Whether the prediction is the answer (examples with choices).
    public var correct: Bool?
    /// Greedy continuation (examples without choices).
    public var generated: String?
    /// Whether the greedy continuation equals the output, surrounding whitespace ignored.
    public var exactMatch: Bool?
    /// Negative log-likelihood of the output tokens (sum, natural log) and their count.
    public var outputNLL: Double
    public var outputTokens: Int
}

/// The metrics of one evaluation run.
public struct EvaluationResult: Sendable {
    public var examples: Int
    /// Rank-classification accuracy over examples with choices (nil when none have).
    public var accuracy: Double?
    /// Exact-match rate of greedy generation over examples without choices (nil when all have choices).
    public var exactMatch: Double?
    /// Token-level mean negative log-likelihood of the outputs, and its exponential.
    public var meanLoss: Double
    public var perplexity: Double
    /// Positions the model ran (soft-prompt positions counted once, as they are cached), and wall time.
    public var positions: Int
    public var seconds: Double
    public var scores: [ExampleScore]

    /// The number to maximise when selecting a prompt: accuracy, else exact match, else -loss.
    public var selectionMetric: Double { accuracy ?? exactMatch ?? -meanLoss }
}

/// Scores examples with a frozen model, optionally after a soft prompt: rank classification over the
/// choices (the sum of the choice tokens' log-probabilities after the context, as lm-evaluation-harness
/// scores multiple choice with `acc`), exact match of greedy generation for free-form examples, and the
/// loss of the expected outputs.
///
/// The soft prompt's keys and values are computed once and shared by every example.
public final class Evaluator {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public var threads: Int
    /// Extra greedy tokens allowed beyond the expected output's length for exact match.
    public var generationSlack = 8
    /// Score rows with choices in batches sharing the soft prompt, forward only (`PromptGradient.lossesBatch`),
    /// rather than one row at a time through an `InferenceSession`. Both give the same metrics up to float
    /// rounding; the batch decodes each weight matrix once per batch instead of once per row, which is
    /// several times less work for short rows. Rows without choices (greedy exact match) and rows with an
    /// empty context always go one at a time.
    public var batching = true
    /// Token rows per batch (bounds the memory of a batch: about 70 KB per row for a 135M model).
    public var batchRows = 512
    private var session: InferenceSession?
    private var batchPass: (pass: PromptGradient, rows: Int)?

    public init(model: LlamaModel, tokenizer: Tokenizer, threads: Int = 1) {
        self.model = model
        self.tokenizer = tokenizer
        self.threads = max(1, threads)
    }

    /// - Parameters:
    ///   - examples: Encoded examples (see `ExampleEncoder`).
    ///   - prompt: Soft-prompt rows (P, C) placed before everything, or empty for none.
    ///   - progress: Called after each example with the number done.
    /// - Throws: `ModelError` when a sequence exceeds the model's context.
    public func evaluate(_ examples: [EncodedExample], prompt: [Float] = [],
                         progress: ((Int) -> Void)? = nil) throws(ModelError) -> EvaluationResult {
        let start = monotonicSeconds()
        let C = model.config.hiddenSize
        let P = prompt.count / C
        var longest = 0
        for e in examples {
            let cont = max(e.output.count + generationSlack, e.choices.map(\.count).max() ?? 0)
            longest = max(longest, e.context.count + cont)
        }
        let needed = P + longest + 1
        if session == nil || session!.capacity < needed {
            guard needed <= model.config.maxPositionEmbeddings else {
                throw ModelError(.invalidInput, "an example needs \(needed) positions; the model's context is \(model.config.maxPositionEmbeddings)")
            }
            session = try InferenceSession(model: model, capacity: needed, threads: threads, precision: .exact)
        }
        let session = session!
        session.threads = threads
        session.reset()
        var positions = 0
        var promptLogits: [Float] = []  // the last prompt row's logits: the context of an empty input
        if P > 0 {
            promptLogits = try session.forward([.embeddings(prompt)], logits: .last)
            positions += P
        }
        let batched = batching ? try scoreChoicesInBatches(examples, prompt: prompt, rows: needed) : [:]
        var scores: [ExampleScore] = []
        var correct = 0, withChoices = 0, matched = 0, free = 0
        /// The highest-scoring choice (the first on ties) as the prediction, counted.
        func predict(_ s: inout ExampleScore, answer: Int?) {
            var best = 0
            for i in 1 ..< s.choiceLogProbs.count where s.choiceLogProbs[i] > s.choiceLogProbs[best] { best = i }
            s.predicted = best
            s.correct = best == answer
            withChoices += 1
            if s.correct == true { correct += 1 }
        }
        var nll: Double = 0, nllTokens = 0
        for (index, e) in examples.enumerated() {
            if let lp = batched[index] {
                // Scored in a batch: the choices (then the output when it is not one of them).
                var s = ExampleScore(choiceLogProbs: Array(lp.prefix(e.choices.count)), predicted: nil, correct: nil,
                                     generated: nil, exactMatch: nil, outputNLL: 0, outputTokens: e.output.count)
                predict(&s, answer: e.answer)
                s.outputNLL = -(e.answer.map { lp[$0] } ?? lp[e.choices.count])
                positions += e.context.count + e.choices.reduce(0) { $0 + max(0, $1.count - 1) }
                    + (e.answer == nil ? max(0, e.output.count - 1) : 0)
                nll += s.outputNLL
                nllTokens += e.output.count
                scores.append(s)
                progress?(index + 1)
                continue
            }
            session.truncate(to: P)
            if e.context.isEmpty && P == 0 {
                throw ModelError(.invalidInput, "example \(index + 1) has no context tokens and there is no prompt: nothing to predict from")
            }
            let ctxLogits = e.context.isEmpty ? promptLogits : try session.forward([.tokens(e.context)], logits: .last)
            positions += e.context.count
            let ctxEnd = session.position
            let lse0 = logSumExp(ctxLogits, row: 0)
            /// Sum of log-probabilities of `tokens` after the context.
            func score(_ tokens: [Int32]) throws(ModelError) -> Double {
                guard let first = tokens.first else { return 0 }
                var lp = Double(ctxLogits[Int(first)]) - lse0
                if tokens.count > 1 {
                    session.truncate(to: ctxEnd)
                    let logits = try session.forward([.tokens(Array(tokens.dropLast()))], logits: .all)
                    positions += tokens.count - 1
                    let V = model.config.vocabSize
                    for i in 1 ..< tokens.count {
                        lp += Double(logits[(i - 1) * V + Int(tokens[i])]) - logSumExp(logits, row: i - 1)
                    }
                }
                return lp
            }
            var s = ExampleScore(choiceLogProbs: [], predicted: nil, correct: nil, generated: nil, exactMatch: nil,
                                 outputNLL: 0, outputTokens: e.output.count)
            if !e.choices.isEmpty {
                for c in e.choices { s.choiceLogProbs.append(try score(c)) }
                predict(&s, answer: e.answer)
                if let answer = e.answer {
                    s.outputNLL = -s.choiceLogProbs[answer]
                } else {
                    s.outputNLL = -(try score(e.output))
                }
            } else {
                s.outputNLL = -(try score(e.output))
                let text = try greedy(after: ctxLogits, from: ctxEnd, maxTokens: e.output.count + generationSlack,
                                      positions: &positions)
                s.generated = text
                let want = tokenizer.decode(e.output)
                s.exactMatch = trimmed(text) == trimmed(want)
                free += 1
                if s.exactMatch == true { matched += 1 }
            }
            nll += s.outputNLL
            nllTokens += e.output.count
            scores.append(s)
            progress?(index + 1)
        }
        let meanLoss = nllTokens > 0 ? nll / Double(nllTokens) : 0
        return EvaluationResult(
            examples: examples.count,
            accuracy: withChoices > 0 ? Double(correct) / Double(withChoices) : nil,
            exactMatch: free > 0 ? Double(matched) / Double(free) : nil,
            meanLoss: meanLoss, perplexity: _exp(meanLoss), positions: positions,
            seconds: monotonicSeconds() - start, scores: scores)
    }

    /// Log-probabilities of each choice (then of the output when it is not a choice) of the examples with
    /// choices and a context, by example index, from shared-prompt batches: one batch example for the
    /// one-token continuations (targets on the last context row), one per longer continuation.
    private func scoreChoicesInBatches(_ examples: [EncodedExample], prompt: [Float],
                                       rows needed: Int) throws(ModelError) -> [Int: [Double]] {
        let C = model.config.hiddenSize
        let promptRows = prompt.count / C
        if batchPass == nil || batchPass!.rows < needed {
            batchPass = (PromptGradient(model: model, maxRows: needed, threads: threads), needed)
        }
        let pass = batchPass!.pass
        pass.threads = threads
        var out: [Int: [Double]] = [:]
        // The context tokens every batched row starts with (the template's opening, BOS) join the shared
        // prompt segment, as embedding rows: computed once per batch. Every row keeps one context token.
        let eligible = examples.filter { !$0.choices.isEmpty && !$0.context.isEmpty }
        var shared = eligible.first.map { Array($0.context.dropLast()) } ?? []
        for e in eligible.dropFirst() {
            var n = 0
            while n < shared.count && n < e.context.count - 1 && shared[n] == e.context[n] { n += 1 }
            shared.removeLast(shared.count - n)
        }
        let sharedRows = shared.isEmpty ? prompt : prompt + (try model.embed(shared))
        let P = promptRows + shared.count
        // Each batch example: (example index, the continuation of each target run).
        var pending: [PromptExample] = [], owners: [(example: Int, runs: [Int])] = [], pendingRows = 0
        func flush() throws(ModelError) {
            guard !pending.isEmpty else { return }
            let losses = try pass.lossesBatch(prompt: sharedRows, examples: pending).targetLosses
            for (b, owner) in owners.enumerated() {
                var t = 0
                for run in owner.runs {
                    let n = run < 0 ? 1 : examples[owner.example].continuation(run).count
                    if run < 0 {  // one-token continuations: -run - 1 is the continuation's index
                        out[owner.example]![-run - 1] = -losses[b][t]
                    } else {
                        var lp: Double = 0
                        for i in 0 ..< n { lp += -losses[b][t + i] }
                        out[owner.example]![run] = lp
                    }
                    t += n
                }
            }
            pending = []
            owners = []
            pendingRows = 0
        }
        for (index, e) in examples.enumerated() where !e.choices.isEmpty && !e.context.isEmpty {
            let context = Array(e.context.dropFirst(shared.count))
            let last = P + context.count - 1
            let count = e.choices.count + (e.answer == nil ? 1 : 0)
            out[index] = [Double](repeating: 0, count: count)  // empty continuations score 0
            var single = PromptExample(tokens: context, targets: [])
            var singleRuns: [Int] = []
            var longer: [(PromptExample, Int)] = []
            for j in 0 ..< count {
                let c = e.continuation(j)
                if c.count == 1 {
                    single.targets.append(TokenTarget(row: last, token: c[0]))
                    singleRuns.append(-j - 1)
                } else if c.count > 1 {
                    let targets = c.enumerated().map { TokenTarget(row: last + $0.offset, token: $0.element) }
                    longer.append((PromptExample(tokens: context + c.dropLast(), targets: targets), j))
                }
            }
            if !single.targets.isEmpty {
                pending.append(single)
                owners.append((index, singleRuns))
                pendingRows += single.tokens.count
            }
            for (example, j) in longer {
                pending.append(example)
                owners.append((index, [j]))
                pendingRows += example.tokens.count
            }
            if pendingRows >= batchRows { try flush() }
        }
        try flush()
        return out
    }

    /// Greedy decoding after the context; stops at an end-of-generation token or after `maxTokens`.
    private func greedy(after logits: [Float], from position: Int, maxTokens: Int,
                        positions: inout Int) throws(ModelError) -> String {
        guard let session else { return "" }
        session.truncate(to: position)
        var current = logits
        var ids: [Int32] = []
        while ids.count < maxTokens {
            var best = 0
            for v in 1 ..< current.count where current[v] > current[best] { best = v }
            let id = Int32(best)
            if tokenizer.isEndOfGeneration(id) { break }
            ids.append(id)
            if ids.count == maxTokens || session.position >= session.capacity { break }
            current = try session.forward([.tokens([id])], logits: .last)
            positions += 1
        }
        return tokenizer.decode(ids)
    }

    /// log Σ exp of row `row` of `logits` (R, V), as the training loss computes it.
    private func logSumExp(_ logits: [Float], row: Int) -> Double {
        let V = model.config.vocabSize
        return logits.withUnsafeBufferPointer { Llama.logSumExp(UnsafeBufferPointer(rebasing: $0[row * V ..< (row + 1) * V])) }
    }
}

extension EncodedExample {
    /// Choice `j`, or the output for `j == choices.count`.
    fileprivate func continuation(_ j: Int) -> [Int32] { j < choices.count ? choices[j] : output }
}

func trimmed(_ s: String) -> Substring {
    var sub = Substring(s)
    while let f = sub.first, f.isWhitespace { sub.removeFirst() }
    while let l = sub.last, l.isWhitespace { sub.removeLast() }
    return sub
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

#if canImport(Glibc)
import Glibc
#endif
