import GGUF
import Llama
import PromptTuning
import TensorIO
import TestSupport
import Testing
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// Tests/Fixtures/tiny/q4_1.gguf and its tokenizer, the model the trainer, evaluator and explainer tests share.
enum TinyQ41 {
    static func load() throws -> (LlamaModel, Tokenizer) {
        let gguf = try GGUFFile(path: TestSupport.fixture("tiny/q4_1.gguf"))
        return (try LlamaModel(gguf: gguf), try Tokenizer(try TokenizerVocabulary(gguf: gguf)))
    }
}

/// The trainer and evaluator on a tiny random-weight model (Tests/Fixtures/tiny/q4_1.gguf: width 64,
/// 2 layers, 320 tokens, every matrix Q4_1).
@Suite struct TrainerTests {
    let model: LlamaModel
    let tokenizer: Tokenizer

    init() throws {
        (model, tokenizer) = try TinyQ41.load()
    }

    /// Examples of random context tokens whose answer depends on the first token's parity: two one-token
    /// choices.
    func examples(_ count: Int, seed: UInt64) -> [EncodedExample] {
        var rng = SplitMix64(seed: seed)
        return (0 ..< count).map { _ in
            let n = 3 + Int(rng.next() % 4)
            let context = (0 ..< n).map { _ in Int32(10 + rng.next() % 300) }
            let answer = Int(context[0] % 2)
            let choices: [[Int32]] = [[7], [9, 11]]
            return EncodedExample(context: context, output: choices[answer], choices: choices, answer: answer)
        }
    }

    func config(steps: Int) -> TrainingConfig {
        var c = TrainingConfig()
        c.promptTokens = 4
        c.seed = 3
        c.learningRate = 0.05
        c.warmupSteps = 2
        c.batchSize = 3
        c.accumulation = 2
        c.steps = steps
        c.evalEvery = 2
        c.checkpointEvery = 3
        c.threads = 2
        return c
    }

    func trainer(_ config: TrainingConfig) throws -> Trainer {
        let initial = try config.initialization.vectors(tokens: config.promptTokens, model: model, tokenizer: tokenizer, seed: config.seed)
        return try Trainer(model: model, tokenizer: tokenizer, config: config, initialPrompt: initial,
                           train: examples(10, seed: 1), eval: examples(5, seed: 2))
    }

    @Test func runsAreBitReproducibleAndResumeToTheSameResult() throws {
        let dir = TestSupport.temporaryDirectory("resume")
        let cfg = config(steps: 8)
        let straight = try trainer(cfg)
        let path = dir + "/run.ckpt"
        var saved: [Int: [UInt8]] = [:]
        let finalA = try straight.run(checkpointPath: path) { event in
            if case .checkpoint(_, let step) = event { saved[step] = try? readFile(path) }
        }
        #expect(saved.keys.sorted() == [3, 6, 8])

        // The same run again: identical bits.
        let again = try trainer(cfg)
        let finalB = try again.run(checkpointPath: nil) { _ in }
        #expect(finalA == finalB)
        #expect(again.state.history.map(\.loss) == straight.state.history.map(\.loss))

        // Killed after step 3 (its checkpoint is what is on disk), resumed: the same prompt, best prompt and curve.
        let resumedPath = dir + "/resumed.ckpt"
        try AtomicFile.write(to: resumedPath, bytes: saved[3]!)
        let resumed = try trainer(cfg)
        try resumed.restore(try Checkpoint.read(path: resumedPath, config: cfg, promptCount: cfg.promptTokens * model.config.hiddenSize))
        #expect(resumed.state.step == 3)
        let finalC = try resumed.run(checkpointPath: resumedPath) { _ in }
        #expect(finalC == finalA)
        #expect(resumed.state.prompt == straight.state.prompt)
        #expect(resumed.state.optimizer == straight.state.optimizer)
        #expect(resumed.state.history.map(\.loss) == straight.state.history.map(\.loss))
        #expect(resumed.state.evals.map(\.metric) == straight.state.evals.map(\.metric))
        #expect(resumed.state.bestStep == straight.state.bestStep)
    }

    @Test func aCheckpointRefusesOtherSettings() throws {
        let dir = TestSupport.temporaryDirectory("ckpt-settings")
        let cfg = config(steps: 3)
        let t = try trainer(cfg)
        _ = try t.run(checkpointPath: dir + "/a.ckpt", checkpointExtra: ["train_sha256": "abc"]) { _ in }
        var other = cfg
        other.learningRate = 0.06
        let n = cfg.promptTokens * model.config.hiddenSize
        #expect(throws: TrainingError.self) { try Checkpoint.read(path: dir + "/a.ckpt", config: other, extra: ["train_sha256": "abc"], promptCount: n) }
        #expect(throws: TrainingError.self) { try Checkpoint.read(path: dir + "/a.ckpt", config: cfg, extra: ["train_sha256": "abd"], promptCount: n) }
        let state = try Checkpoint.read(path: dir + "/a.ckpt", config: cfg, extra: ["train_sha256": "abc"], promptCount: n)
        #expect(state == t.state)
    }

    @Test func trainingLowersTheLossAndRaisesAccuracy() throws {
        var cfg = config(steps: 40)
        cfg.learningRate = 0.1
        cfg.evalEvery = 0
        cfg.checkpointEvery = 0
        let t = try trainer(cfg)
        let evaluator = Evaluator(model: model, tokenizer: tokenizer, threads: 2)
        let before = try evaluator.evaluate(t.eval, prompt: t.state.prompt)
        _ = try t.run(checkpointPath: nil) { _ in }
        let after = try evaluator.evaluate(t.eval, prompt: t.state.prompt)
        let first = t.state.history.prefix(5).map(\.loss).reduce(0, +) / 5
        let last = t.state.history.suffix(5).map(\.loss).reduce(0, +) / 5
        #expect(last < 0.5 * first, "training loss \(first) → \(last)")
        #expect(after.meanLoss < before.meanLoss, "held-out loss \(before.meanLoss) → \(after.meanLoss)")
    }

    @Test func earlyStoppingAfterPatienceEvaluationsWithoutImprovement() throws {
        var cfg = config(steps: 20)
        cfg.learningRate = 1e-30  // the prompt does not move: every evaluation ties the first
        cfg.warmupSteps = 0
        cfg.patience = 2
        cfg.checkpointEvery = 0
        let t = try trainer(cfg)
        var stopped: Int?
        _ = try t.run(checkpointPath: nil) { if case .earlyStop(let s) = $0 { stopped = s } }
        #expect(stopped == 6)  // evaluations at 2 (best), 4, 6
        #expect(t.state.step == 6 && t.state.stoppedEarly && t.state.bestStep == 2)
    }

    /// Rank classification recomputed from one full forward per (context, choice) with no prompt caching.
    @Test func rankClassificationEqualsDirectLogProbabilities() throws {
        let C = model.config.hiddenSize, V = model.config.vocabSize
        var rng = SplitMix64(seed: 9)
        let prompt = (0 ..< 3 * C).map { _ in rng.nextFloat() * 0.5 }
        let data = examples(6, seed: 4)
        let result = try Evaluator(model: model, tokenizer: tokenizer, threads: 1).evaluate(data, prompt: prompt)
        var correct = 0
        for (e, s) in zip(data, result.scores) {
            var direct: [Double] = []
            for choice in e.choices {
                let session = try InferenceSession(model: model, capacity: 32)
                let logits = try session.forward([.embeddings(prompt), .tokens(e.context + choice)], logits: .all)
                var lp: Double = 0
                for (j, token) in choice.enumerated() {
                    let row = 3 + e.context.count - 1 + j
                    let slice = logits[row * V ..< (row + 1) * V].map(Double.init)
                    let m = slice.max()!
                    let lse = m + log(slice.reduce(0) { $0 + exp($1 - m) })
                    lp += slice[Int(token)] - lse
                }
                direct.append(lp)
            }
            for (a, b) in zip(s.choiceLogProbs, direct) { #expect(abs(a - b) < 1e-4 * max(1, abs(b)), "\(a) vs \(b)") }
            let best = direct.indices.max { direct[$0] < direct[$1] }!
            #expect(s.predicted == best)
            if best == e.answer { correct += 1 }
            #expect(abs(s.outputNLL + direct[e.answer!]) < 1e-4 * max(1, abs(direct[e.answer!])))
        }
        #expect(result.accuracy == Double(correct) / Double(data.count))
    }

    /// Exact match compares the greedy continuation with the output, as `Generator` decodes it.
    @Test func exactMatchUsesTheGreedyContinuation() throws {
        let context: [Int32] = [12, 40, 77]
        let session = try InferenceSession(model: model, capacity: 64)
        var generator = Generator(session: session, tokenizer: tokenizer, sampler: Sampler(.greedy))
        let summary = try generator.generate(.tokens(context, embeddings: []), options: GenerationOptions(maxTokens: 3)) { _ in true }
        let greedyIds = summary.tokens
        let text = tokenizer.decode(greedyIds)
        #expect(greedyIds.count == 3)
        let hit = EncodedExample(context: context, output: greedyIds, choices: [], answer: nil)
        let miss = EncodedExample(context: context, output: [greedyIds[0] == 5 ? 6 : 5], choices: [], answer: nil)
        let evaluator = Evaluator(model: model, tokenizer: tokenizer)
        evaluator.generationSlack = 0
        let r = try evaluator.evaluate([hit, miss])
        #expect(r.scores[0].generated == text)
        #expect(r.scores[0].exactMatch == true)
        #expect(r.scores[1].exactMatch == false)
        #expect(r.exactMatch == 0.5 && r.accuracy == nil)
    }

    @Test func initialisations() throws {
        let C = model.config.hiddenSize
        let vocab = try PromptInitialization.vocab.vectors(tokens: 5, model: model, tokenizer: tokenizer, seed: 1)
        #expect(vocab.count == 5 * C)
        // Each row is some token's embedding row.
        let table = try model.embed((0 ..< Int32(model.config.vocabSize)).map { $0 })
        for r in 0 ..< 5 {
            let row = Array(vocab[r * C ..< (r + 1) * C])
            #expect((0 ..< model.config.vocabSize).contains { Array(table[$0 * C ..< ($0 + 1) * C]) == row })
        }
        #expect(vocab == (try PromptInitialization.vocab.vectors(tokens: 5, model: model, tokenizer: tokenizer, seed: 1)))
        #expect(vocab != (try PromptInitialization.vocab.vectors(tokens: 5, model: model, tokenizer: tokenizer, seed: 2)))
        let text = try PromptInitialization.text("ab").vectors(tokens: 5, model: model, tokenizer: tokenizer, seed: 0)
        let ids = tokenizer.encode("ab", addSpecial: false)
        let want = try model.embed((0 ..< 5).map { ids[$0 % ids.count] })
        #expect(text == want)
        let random = try PromptInitialization.random.vectors(tokens: 50, model: model, tokenizer: tokenizer, seed: 0)
        let std = (random.reduce(0) { $0 + Double($1) * Double($1) } / Double(random.count)).squareRoot()
        let tableStd = (table.reduce(0) { $0 + Double($1) * Double($1) } / Double(table.count)).squareRoot()
        #expect(abs(std / tableStd - 1) < 0.15, "random init scale \(std) vs embeddings \(tableStd)")
        let from = try PromptInitialization.vectors(Array(want[0 ..< 2 * C])).vectors(tokens: 3, model: model, tokenizer: tokenizer, seed: 0)
        #expect(from == Array(want[0 ..< 2 * C]) + Array(want[0 ..< C]))
    }
}

extension TrainerTests {
    /// An empty context is scored from the soft prompt's last row (and refused without a prompt).
    @Test func emptyContextIsScoredAfterThePrompt() throws {
        let C = model.config.hiddenSize, V = model.config.vocabSize
        var rng = SplitMix64(seed: 5)
        let prompt = (0 ..< 2 * C).map { _ in rng.nextFloat() * 0.5 }
        let e = EncodedExample(context: [], output: [7], choices: [[7], [9]], answer: 0)
        let r = try Evaluator(model: model, tokenizer: tokenizer).evaluate([e], prompt: prompt)
        let session = try InferenceSession(model: model, capacity: 8)
        let logits = try session.forward([.embeddings(prompt)], logits: .last).map(Double.init)
        let m = logits.max()!
        let lse = m + log(logits.reduce(0) { $0 + exp($1 - m) })
        #expect(abs(r.scores[0].choiceLogProbs[0] - (logits[7] - lse)) < 1e-4)
        #expect(abs(r.scores[0].choiceLogProbs[1] - (logits[9] - lse)) < 1e-4)
        #expect(logits.count == V)
        #expect(throws: ModelError.self) { try Evaluator(model: model, tokenizer: tokenizer).evaluate([e]) }
    }
}
