import Llama
import Safetensors
import TensorIO
import Tokenizers

/// Every setting of a training run.
public struct TrainingConfig: Sendable, Equatable {
    public var promptTokens = 20
    public var initialization: PromptInitialization = .vocab
    public var seed: UInt64 = 0
    public var learningRate: Double = 0.1
    public var warmupSteps = 10
    public var decay: LearningRateDecay = .cosine
    public var minLearningRate: Double = 0
    public var weightDecay: Double = 0
    /// Global-norm clipping threshold (0: off).
    public var clipNorm: Double = 1
    /// Examples per micro-batch, and micro-batches per optimizer step.
    public var batchSize = 8
    public var accumulation = 1
    /// Optimizer steps.
    public var steps = 100
    /// Evaluate every N steps (0: only at the end).
    public var evalEvery = 0
    /// Stop after this many evaluations without improvement (0: never).
    public var patience = 0
    /// Write a checkpoint every N steps (0: never; needs `checkpointPath`).
    public var checkpointEvery = 0
    public var threads = 1

    public init() {}

    /// Optimizer steps for `epochs` passes over `examples` rows.
    public static func steps(epochs: Double, examples: Int, batchSize: Int, accumulation: Int) -> Int {
        let perStep = batchSize * accumulation
        return max(1, Int((epochs * Double(examples) / Double(perStep)).rounded(.up)))
    }

    /// The settings that determine the result (not the thread count, the checkpoint cadence, or the
    /// evaluation cadence's effect on nothing but selection), as a canonical JSON object: a checkpoint
    /// refuses to resume a run with different ones.
    public var identity: JSONObject {
        [
            "prompt_tokens": .int(Int64(promptTokens)), "init": .string(initializationName),
            "seed": .string(String(seed)), "lr": .double(learningRate), "warmup": .int(Int64(warmupSteps)),
            "decay": .string(decay.rawValue), "min_lr": .double(minLearningRate),
            "weight_decay": .double(weightDecay), "clip": .double(clipNorm), "batch": .int(Int64(batchSize)),
            "accumulation": .int(Int64(accumulation)), "steps": .int(Int64(steps)),
            "eval_every": .int(Int64(evalEvery)), "patience": .int(Int64(patience)),
        ]
    }

    public var initializationName: String {
        switch initialization {
        case .random: "random"
        case .vocab: "vocab"
        case .text: "text"
        case .labels: "labels"
        case .vectors: "from-prompt"
        }
    }
}

/// One optimizer step of the training curve.
public struct StepRecord: Sendable, Equatable {
    public var step: Int           // 1-based
    public var loss: Double        // mean over the step's micro-batches
    public var learningRate: Double
    public var gradientNorm: Double  // before clipping
    public var positions: Int      // processed by this step (soft-prompt rows counted per example)
    public var seconds: Double     // wall time of this step
}

/// One evaluation on the held-out set.
public struct EvalRecord: Sendable, Equatable {
    public var step: Int
    public var metric: Double      // accuracy, else exact match, else -loss
    public var accuracy: Double?
    public var exactMatch: Double?
    public var loss: Double
    public var improved: Bool
    public var seconds: Double
}

/// What the trainer reports while it runs.
public enum TrainingEvent: Sendable {
    case step(StepRecord)
    case eval(EvalRecord)
    case checkpoint(path: String, step: Int)
    case earlyStop(step: Int)
}

public struct TrainingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Everything a run has learned so far: the state a checkpoint holds.
public struct TrainingState: Sendable, Equatable {
    public var step = 0
    public var prompt: [Float]
    public var optimizer: AdamW
    /// The best prompt by the held-out metric, with its metric and step (nil before any evaluation).
    public var best: [Float]?
    public var bestMetric: Double?
    /// The held-out loss of the best prompt (breaks ties of the metric).
    public var bestLoss: Double?
    public var bestStep = 0
    public var evalsSinceBest = 0
    public var history: [StepRecord] = []
    public var evals: [EvalRecord] = []
    public var stoppedEarly = false

    public var positions: Int { history.reduce(0) { $0 + $1.positions } }
    public var seconds: Double { history.reduce(0) { $0 + $1.seconds } }
}

/// Learns a soft prompt for a frozen model from encoded examples.
///
/// Deterministic: the example order is a function of the seed and the step, the initialisation of the
/// seed, and every kernel reduces in a fixed order, so a run (and a run resumed from any checkpoint) gives
/// the same bits at a given thread count.
public final class Trainer {
    public let model: LlamaModel
    public let config: TrainingConfig
    public let train: [EncodedExample]
    public let eval: [EncodedExample]
    public private(set) var state: TrainingState
    private let pass: PromptGradient
    private let evaluator: Evaluator
    private var permutations: [Int: [Int]] = [:]

    /// - Throws: `TrainingError` for an empty training set, or examples without output tokens.
    public init(model: LlamaModel, tokenizer: Tokenizer, config: TrainingConfig, initialPrompt: [Float],
                train: [EncodedExample], eval: [EncodedExample]) throws(TrainingError) {
        guard !train.isEmpty else { throw TrainingError("no training examples") }
        if let i = train.firstIndex(where: { $0.output.isEmpty }) {
            throw TrainingError("training example \(i + 1) has an output with no tokens")
        }
        let C = model.config.hiddenSize
        guard initialPrompt.count == config.promptTokens * C else {
            throw TrainingError("initial prompt holds \(initialPrompt.count) floats, expected \(config.promptTokens) × \(C)")
        }
        // Every example must fit the context with the prompt: refused here, before any batch memory exists.
        let context = model.config.maxPositionEmbeddings
        for (set, name) in [(train, "training"), (eval, "evaluation")] {
            for (i, example) in set.enumerated() {
                let answer = max(example.output.count, example.choices.map(\.count).max() ?? 0)
                let needed = config.promptTokens + example.context.count + max(0, answer - 1)
                if needed > context {
                    throw TrainingError("\(name) example \(i + 1) needs \(needed) positions (\(config.promptTokens) soft-prompt rows + "
                                        + "\(example.context.count) context tokens + \(answer) answer token\(answer == 1 ? "" : "s"), the last not fed), more "
                                        + "than the model's context length of \(context)")
                }
            }
        }
        self.model = model
        self.config = config
        self.train = train
        self.eval = eval
        let longest = train.map { $0.context.count + $0.output.count }.max()!
        pass = PromptGradient(model: model, maxRows: config.promptTokens + longest + 1, threads: config.threads)
        evaluator = Evaluator(model: model, tokenizer: tokenizer, threads: config.threads)
        state = TrainingState(prompt: initialPrompt, optimizer: AdamW(parameterCount: initialPrompt.count,
                                                                       weightDecay: Float(config.weightDecay)))
    }

    /// Continues from a saved state (see `Checkpoint`).
    public func restore(_ saved: TrainingState) throws(TrainingError) {
        guard saved.prompt.count == state.prompt.count, saved.optimizer.m.count == state.prompt.count else {
            throw TrainingError("the checkpoint's prompt has \(saved.prompt.count) floats; this run has \(state.prompt.count)")
        }
        state = saved
    }

    public var isFinished: Bool { state.step >= config.steps || state.stoppedEarly }

    /// The examples of micro-batch `k` (0-based, counted over the whole run): consecutive slices of an
    /// endless stream made of one seeded permutation of the training set per epoch.
    func microBatch(_ k: Int) -> [Int] {
        let n = train.count
        return (0 ..< config.batchSize).map { j in
            let i = k * config.batchSize + j
            let epoch = i / n
            if permutations[epoch] == nil {
                if permutations.count > 4 { permutations.removeAll() }
                var rng = SplitMix64(seed: config.seed &+ 0x9E37_79B9 &* UInt64(epoch + 1))
                permutations[epoch] = rng.permutation(n)
            }
            return permutations[epoch]![i % n]
        }
    }

    /// The training examples as the gradient pass takes them: tokens after the prompt, targets on the output.
    func promptExample(_ e: EncodedExample) -> PromptExample {
        let P = config.promptTokens
        let tokens = e.context + e.output
        // Row r predicts token r + 1; output token j sits at row P + context + j.
        let targets = e.output.indices.map { j in TokenTarget(row: P + e.context.count + j - 1, token: e.output[j]) }
        return PromptExample(tokens: tokens, targets: targets)
    }

    /// d(loss)/d(prompt) for the first batch at the current prompt (the `--dump-gradient` check).
    public func firstBatchGradient() throws(ModelError) -> BatchLossGradient {
        try pass.computeBatch(prompt: state.prompt, examples: microBatch(0).map { promptExample(train[$0]) })
    }

    /// Runs one optimizer step.
    public func step() throws(ModelError) -> StepRecord {
        let start = monotonicSeconds()
        var gradient = [Float](repeating: 0, count: state.prompt.count)
        var loss: Double = 0
        var positions = 0
        let A = config.accumulation
        for a in 0 ..< A {
            let batch = microBatch(state.step * A + a).map { promptExample(train[$0]) }
            let r = try pass.computeBatch(prompt: state.prompt, examples: batch)
            let w = Float(1) / Float(A)
            for i in 0 ..< gradient.count { gradient[i] += w * r.gradient[i] }
            loss += r.loss / Double(A)
            positions += r.positionsProcessed
        }
        guard loss.isFinite else {
            throw ModelError(.invalidInput, "the loss became \(loss) at step \(state.step + 1): lower the learning rate")
        }
        let norm = clipGradient(&gradient, maxNorm: config.clipNorm)
        let schedule = LearningRateSchedule(peak: config.learningRate, warmupSteps: config.warmupSteps,
                                            totalSteps: config.steps, decay: config.decay, minRate: config.minLearningRate)
        let lr = schedule.rate(at: state.step)
        var prompt = state.prompt
        state.optimizer.update(&prompt, gradient: gradient, lr: Float(lr))
        state.prompt = prompt
        state.step += 1
        let record = StepRecord(step: state.step, loss: loss, learningRate: lr, gradientNorm: norm,
                                positions: positions, seconds: monotonicSeconds() - start)
        state.history.append(record)
        return record
    }

    /// Evaluates the current prompt on the held-out set and keeps it when it is the best so far.
    public func evaluate() throws(ModelError) -> EvalRecord {
        let result = try evaluator.evaluate(eval, prompt: state.prompt)
        let metric = result.selectionMetric
        let loss = result.meanLoss
        let improved = state.bestMetric.map { metric > $0 || (metric == $0 && loss < state.bestLoss!) } ?? true
        if improved {
            state.best = state.prompt
            state.bestMetric = metric
            state.bestLoss = loss
            state.bestStep = state.step
            state.evalsSinceBest = 0
        } else {
            state.evalsSinceBest += 1
        }
        let record = EvalRecord(step: state.step, metric: metric, accuracy: result.accuracy,
                                exactMatch: result.exactMatch, loss: result.meanLoss, improved: improved,
                                seconds: result.seconds)
        state.evals.append(record)
        return record
    }

    /// Trains to the end (or early stop), evaluating and checkpointing on the configured cadence.
    /// - Parameters:
    ///   - checkpointPath: Where checkpoints go (atomically replaced), or nil.
    ///   - events: Receives progress.
    ///   - checkpointExtra: Facts a resume must match besides the settings (model, dataset hashes).
    public func run(checkpointPath: String?, checkpointExtra: JSONObject = [:],
                    events: (TrainingEvent) -> Void) throws -> [Float] {
        while !isFinished {
            events(.step(try step()))
            let last = state.step == config.steps
            if !eval.isEmpty, (config.evalEvery > 0 && state.step % config.evalEvery == 0) || last {
                let record = try evaluate()
                events(.eval(record))
                if config.patience > 0, state.evalsSinceBest >= config.patience, !last {
                    state.stoppedEarly = true
                    events(.earlyStop(step: state.step))
                }
            }
            if let checkpointPath, config.checkpointEvery > 0,
               state.step % config.checkpointEvery == 0 || isFinished {
                try Checkpoint.write(state, config: config, extra: checkpointExtra, to: checkpointPath)
                events(.checkpoint(path: checkpointPath, step: state.step))
            }
        }
        return state.best ?? state.prompt
    }
}
