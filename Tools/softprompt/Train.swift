import ArgumentParser
import Llama
import PromptTuning
import SoftPrompt
import TensorIO
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// `softprompt train`: learn a soft prompt for a frozen model from a JSONL dataset.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Learn a soft prompt (prompt tuning) for a frozen model from a JSONL dataset.",
        discussion: """
            Rows are {"input": …, "output": …} with optional "choices". The context is the template rendered with \
            the input; the loss is the next-token cross-entropy of the output tokens only; the soft prompt's \
            vectors come before everything (PEFT's placement). With --eval, the prompt is scored every \
            --eval-every steps and the best one is kept. Checkpoints are atomic; --resume continues a killed run \
            to the same result as an uninterrupted one (same settings and thread count).
            """)

    /// How the prompt starts.
    enum Initialization: String, ExpressibleByArgument, CaseIterable {
        case random, vocab, text, labels
    }

    /// Which prompt is written at the end.
    enum Keep: String, ExpressibleByArgument, CaseIterable {
        case best, last
    }

    @OptionGroup var modelOption: ModelOption

    @Option(help: "Training data (JSONL).")
    var data: String

    @Option(name: .customLong("eval"), help: "Held-out data (JSONL) for model selection and early stopping.")
    var evalData: String?

    @Option(help: "Use only the first N rows of --eval.")
    var evalLimit: Int?

    @Option(help: "Where to write the learned prompt: .sprompt (default format), or .npy, .npz, .gguf (adapter), .safetensors, a PEFT directory.")
    var out: String?

    @Option(help: "Name of the learned prompt, in --out and in --bank (default: --out's task part, model.TASK.sprompt → TASK).")
    var name: String?

    @Option(help: "Add the learned prompt to this prompt bank (.sprompt; created when absent) under --name.")
    var bank: String?

    @Option(name: .customLong("task"), help: .hidden)
    var legacyTask: String?

    @Flag(help: "With --bank: replace a prompt of the same name.")
    var replace = false

    @Flag(help: "Keep special-token text (<|im_start|>, …) as plain text instead of parsing it into special tokens. Applies to --data and --eval.")
    var noSpecial = false

    @Option(help: "Context template; each {input} is replaced by the row's input.")
    var template = "{input}"

    @Option(help: "Virtual tokens (soft-prompt length).")
    var tokens = 20

    @Option(help: "Initialisation: random vectors, random vocabulary embeddings, --init-text's tokens, or the labels' tokens.")
    var `init` = Initialization.vocab

    @Option(help: "Text whose token embeddings start the prompt (--init text).")
    var initText: String?

    @Option(help: "Start from another prompt (.sprompt[:TASK] or .npy), e.g. one trained for a related task.")
    var initFrom: String?

    @Option(help: "Peak learning rate.")
    var lr = 0.1

    @Option(help: "Linear warmup steps.")
    var warmup = 10

    @Option(help: "Decay after warmup.")
    var schedule = LearningRateDecay.cosine

    @Option(help: "Learning rate at the last step.")
    var minLr = 0.0

    @Option(help: "AdamW decoupled weight decay.")
    var weightDecay = 0.0

    @Option(help: "Clip the gradient's global norm to this (0: off).")
    var clip = 1.0

    @Option(help: "Examples per micro-batch.")
    var batch = 8

    @Option(help: "Micro-batches per optimizer step (gradient accumulation).")
    var accumulate = 1

    @Option(help: "Optimizer steps (default 100 unless --epochs is given).")
    var steps: Int?

    @Option(help: "Passes over the training data (instead of --steps).")
    var epochs: Double?

    @Option(help: "Random seed (initialisation and data order).")
    var seed: UInt64 = 0

    @Option(help: "Evaluate on --eval every N steps (default: 10 evaluations per run; 0: only at the end).")
    var evalEvery: Int?

    @Option(help: "Which prompt to write: best (by the --eval metric, ties broken by loss) or last.")
    var keep = Keep.best

    @Option(help: "Stop after N evaluations without improvement (0: never).")
    var patience = 0

    @Option(help: "Checkpoint file (default: OUT.ckpt).")
    var checkpoint: String?

    @Option(help: "Write a checkpoint every N steps (0: never).")
    var checkpointEvery = 25

    @Flag(help: "Continue from the checkpoint (same settings and data required).")
    var resume = false

    @Option(help: "Write the whole training curve here as JSON (updated at every checkpoint and at the end).")
    var logJson: String?

    @Flag(help: "Load everything, compute the first batch's loss and gradient, and stop.")
    var dryRun = false

    @Option(help: "With --dry-run: write the first batch's gradient d(loss)/d(prompt) as .npy [tokens, width].")
    var dumpGradient: String?

    @Option(help: "Storage type of the written prompt.")
    var dtype = PromptDType.f32

    @OptionGroup var threadsOption: ThreadsOption
    @OptionGroup var output: JSONOption

    var threads: Int { threadsOption.threads }
    var json: Bool { output.json }

    mutating func validate() throws {
        name = try Deprecation.merge(legacyTask, as: "train --task NAME (the bank entry's name)", into: name, newName: "--name NAME")
        if !dryRun && out == nil && bank == nil { throw ValidationError("--out or --bank is required (or --dry-run)") }
        if bank != nil && out == nil && name == nil { throw ValidationError("--bank needs --name (the prompt's name in the bank)") }
        if replace && bank == nil { throw ValidationError("--replace goes with --bank") }
        if let bank, PromptFormat.detect(path: bank) != .sprompt { throw ValidationError("--bank \(bank): a bank is a .sprompt file") }
        if let out, PromptFormat.detect(path: out) == nil {
            throw ValidationError("--out \(out): unknown prompt format (use .sprompt, .npy, .npz, .gguf, .safetensors or a directory for PEFT)")
        }
        if dumpGradient != nil && !dryRun { throw ValidationError("--dump-gradient goes with --dry-run") }
        if tokens < 1 || tokens > 4096 { throw ValidationError("--tokens must be in 1...4096") }
        if batch < 1 || accumulate < 1 { throw ValidationError("--batch and --accumulate must be at least 1") }
        if steps != nil && epochs != nil { throw ValidationError("give --steps or --epochs, not both") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if let epochs, !(epochs > 0) { throw ValidationError("--epochs must be positive") }
        if !(lr > 0) || minLr < 0 || weightDecay < 0 || clip < 0 || warmup < 0 || patience < 0 || checkpointEvery < 0 {
            throw ValidationError("--lr must be positive; --min-lr, --weight-decay, --clip, --warmup, --patience, --checkpoint-every at least 0")
        }
        if `init` == .text && initText == nil { throw ValidationError("--init text needs --init-text") }
        if initText != nil && `init` != .text { throw ValidationError("--init-text goes with --init text") }
        if let evalLimit, evalLimit < 1 { throw ValidationError("--eval-limit must be at least 1") }
        if patience > 0 && evalData == nil { throw ValidationError("--patience needs --eval") }
        _ = try PromptTemplate(template)
    }

    func run() throws {
        let loaded = try LoadedModel.load(modelOption.model)
        // The prompt's name in --out and --bank.
        let task = name ?? out.map { PromptReference.taskName(ofFile: $0) }
        let llama = loaded.llama
        let C = llama.config.hiddenSize
        // A bank that cannot take the result refuses before any training (checked again when adding).
        let fingerprint = try (bank ?? out).map { _ in try ModelFingerprint(model: llama, tokenizer: loaded.tokenizer) }
        if let bank, let task, let fingerprint, !dryRun {
            let notes = try Bank.wrap { () throws(SpromptError) in
                let current = fileExists(bank) ? try PromptFile.read(path: bank) : nil
                return try PromptBank.checkAdmission(name: task, width: C, model: fingerprint, into: current, replace: replace)
            }
            for note in notes { Output.error("note: \(note)") }
        }
        let trainSet = try TaskDataset.load(path: data, parseSpecial: !noSpecial)
        let evalSet = try evalData.map { try TaskDataset.load(path: $0, parseSpecial: !noSpecial) }
        let encoder = ExampleEncoder(tokenizer: loaded.tokenizer, template: try PromptTemplate(template))
        let trainEncoded = encoder.encode(trainSet)
        let evalEncoded = evalSet.map { encoder.encode($0, limit: evalLimit ?? Int.max) } ?? []

        var config = TrainingConfig()
        config.promptTokens = tokens
        config.seed = seed
        config.learningRate = lr
        config.warmupSteps = warmup
        config.decay = schedule
        config.minLearningRate = minLr
        config.weightDecay = weightDecay
        config.clipNorm = clip
        config.batchSize = batch
        config.accumulation = accumulate
        config.steps = epochs.map { TrainingConfig.steps(epochs: $0, examples: trainSet.examples.count,
                                                        batchSize: batch, accumulation: accumulate) } ?? steps ?? 100
        config.evalEvery = evalEvery ?? max(1, config.steps / 10)
        config.patience = patience
        config.checkpointEvery = dryRun ? 0 : checkpointEvery
        config.threads = threads
        if let initFrom {
            config.initialization = .vectors(try PromptReference(parsing: initFrom).read(width: C).vectors)
        } else {
            switch `init` {
            case .random: config.initialization = .random
            case .text: config.initialization = .text(initText!)
            case .labels: config.initialization = .labels(trainSet.labels)
            case .vocab: config.initialization = .vocab
            }
        }
        let initial = try config.initialization.vectors(tokens: tokens, model: llama, tokenizer: loaded.tokenizer, seed: seed)
        let trainer = try Trainer(model: llama, tokenizer: loaded.tokenizer, config: config, initialPrompt: initial,
                                  train: trainEncoded, eval: evalEncoded)

        let longest = trainEncoded.map { $0.context.count + $0.output.count }.max()!
        let meanRow = Double(trainEncoded.reduce(0) { $0 + $1.context.count + $1.output.count }) / Double(trainEncoded.count)
        Output.error("train: \(trainSet.examples.count) rows (\(Output.fixed(meanRow, 1)) tokens on average, at most \(longest)) + \(tokens) virtual tokens; "
                     + "eval: \(evalEncoded.count) rows; \(config.steps) steps of \(batch)×\(accumulate); lr \(lr) \(schedule.rawValue); "
                     + "init \(initFrom.map { "from \($0)" } ?? `init`.rawValue); seed \(seed); \(threads) threads")

        if dryRun {
            let r = try trainer.firstBatchGradient()
            if let dumpGradient { try NPY.write(path: dumpGradient, shape: [tokens, C], values: r.gradient) }
            let norm = gradientNorm(r.gradient)
            if json {
                let o: JSONObject = ["loss": .double(r.loss), "gradient_norm": .double(norm),
                                     "positions": .int(Int64(r.positionsProcessed)),
                                     "gradient_file": dumpGradient.map { .string($0) } ?? .null]
                try JSONOption.print(o)
            } else {
                print("first batch: loss \(Output.fixed(r.loss, 6)), gradient norm \(Output.fixed(norm, 6)), \(r.positionsProcessed) positions"
                      + (dumpGradient.map { "; gradient written to \($0)" } ?? ""))
            }
            return
        }

        let destination = out ?? bank! + "." + task!
        let checkpointPath = checkpoint ?? destination + ".ckpt"
        let extra: JSONObject = ["model": .string(basename(loaded.path)), "train_sha256": .string(trainSet.sha256),
                                 "eval_sha256": .string(evalSet?.sha256 ?? ""), "eval_rows": .int(Int64(evalEncoded.count)), "template": .string(template),
                                 "init_from": .string(initFrom ?? ""), "parse_special": .bool(!noSpecial)]
        if resume {
            guard fileExists(checkpointPath) else { throw CLIError("--resume: no checkpoint at \(checkpointPath)") }
            let state = try Checkpoint.read(path: checkpointPath, config: config, extra: extra, promptCount: tokens * C)
            try trainer.restore(state)
            Output.error("resumed from \(checkpointPath) at step \(state.step)")
        }

        var progress = TrainingProgress(totalSteps: config.steps, startStep: trainer.state.step)
        let selected = try trainer.run(checkpointPath: config.checkpointEvery > 0 ? checkpointPath : nil,
                                     checkpointExtra: extra) { event in
            progress.report(event, state: trainer.state)
            if case .checkpoint = event, let logJson {
                try? writeLog(trainer, config: config, extra: extra, to: logJson)
            }
        }
        progress.finish()
        if let logJson { try writeLog(trainer, config: config, extra: extra, to: logJson) }

        let state = trainer.state
        let prompt = keep == .last ? state.prompt : selected
        var metrics: JSONObject = [:]
        let keptEval = keep == .last ? state.evals.last.flatMap { $0.step == state.step ? $0 : nil }
                                      : state.evals.first(where: { $0.step == state.bestStep && $0.improved })
        if let best = keptEval {
            metrics["eval_step"] = .int(Int64(best.step))
            if let a = best.accuracy { metrics["eval_accuracy"] = .double(a) }
            if let e = best.exactMatch { metrics["eval_exact_match"] = .double(e) }
            metrics["eval_loss"] = .double(best.loss)
            metrics["eval_rows"] = .int(Int64(evalEncoded.count))
        }
        if let last = state.history.last { metrics["final_train_loss"] = .double(last.loss) }
        var provenance: JSONObject = [
            "tool": "softpromptkit 0.1.0",
            "model_file": .string(basename(loaded.path)),
            "train_data": .string(data), "train_sha256": .string(trainSet.sha256),
            "train_rows": .int(Int64(trainSet.examples.count)),
            "steps": .int(Int64(state.step)), "best_step": .int(Int64(state.bestStep)), "kept": .string(keep.rawValue),
            "stopped_early": .bool(state.stoppedEarly),
            "positions": .int(Int64(state.positions)), "train_seconds": .double(state.seconds),
            "threads": .int(Int64(threads)),
            "created_unix": .int(Int64(time(nil))),
            "settings": .object(config.identity),
        ]
        if let evalSet { provenance["eval_data"] = .string(evalSet.path); provenance["eval_sha256"] = .string(evalSet.sha256) }
        if let initFrom { provenance["init_from"] = .string(initFrom) }
        if let out {
            // The format follows the name: .sprompt, .npy, .npz, .gguf (adapter), .safetensors, or a PEFT directory.
            let learned = SoftPrompt(name: task!, vectors: prompt, width: C, dtype: dtype,
                                     template: template, provenance: provenance, metrics: metrics)
            try PromptConversion.write(PromptFile(model: fingerprint, prompts: [learned]), to: out)
        }
        if let bank, let task {
            let learned = SoftPrompt(name: task, vectors: prompt, width: C, dtype: dtype,
                                     template: template, provenance: provenance, metrics: metrics)
            let (notes, replaced) = try Bank.wrap { () throws(SpromptError) in
                try PromptBank.update(path: bank) { (file: inout PromptFile?) throws(SpromptError) in
                    try PromptBank.add(learned, model: fingerprint, to: &file, replace: replace)
                }
            }
            for note in notes { Output.error("note: \(note)") }
            Output.error("\(replaced ? "replaced" : "added") '\(task)' in \(bank) (vectors \(learned.vectorsSHA256.prefix(16))…)")
        }
        let tokensPerSecond = Double(state.positions) / max(state.seconds, 1e-9)
        if json {
            var o: JSONObject = ["out": out.map { .string($0) } ?? .null, "steps": .int(Int64(state.step)),
                                 "best_step": .int(Int64(state.bestStep)), "stopped_early": .bool(state.stoppedEarly),
                                 "tokens_per_second": .double(tokensPerSecond), "train_seconds": .double(state.seconds)]
            for (k, v) in metrics { o[k] = v }
            try JSONOption.print(o)
        } else {
            let at = metrics["eval_step"]?.intValue ?? Int64(state.step)
            let summary = metrics["eval_accuracy"].map { "\(keep.rawValue) prompt (step \(at)): eval accuracy \(Output.fixed($0.doubleValue ?? 0, 4)); " } ?? "\(keep.rawValue) prompt; "
            print("wrote \([out, bank.map { "\($0):\(task!)" }].compactMap { $0 }.joined(separator: " and ")): \(summary)\(state.step) steps, \(Output.fixed(tokensPerSecond, 1)) tokens/s")
        }
    }

    private func writeLog(_ trainer: Trainer, config: TrainingConfig, extra: JSONObject, to path: String) throws {
        let s = trainer.state
        let positions = s.positions
        let o: JSONObject = [
            "settings": .object(Checkpoint.identity(config, extra: extra)),
            "steps": .array(s.history.map(Checkpoint.json)),
            "evals": .array(s.evals.map(Checkpoint.json)),
            "best_step": .int(Int64(s.bestStep)),
            "stopped_early": .bool(s.stoppedEarly),
            "positions": .int(Int64(positions)),
            "train_seconds": .double(s.seconds),
            "tokens_per_second": .double(Double(positions) / max(s.seconds, 1e-9)),
        ]
        try AtomicFile.write(to: path, bytes: Array(try JSON.serialize(.object(o), pretty: true, sortedKeys: true).utf8))
    }
}

func basename(_ path: String) -> String {
    var p = Substring(path)
    while p.hasSuffix("/") && p.count > 1 { p.removeLast() }
    return String(p.split(separator: "/").last ?? p)
}

/// Progress on standard error: one rewritten line on a terminal, plain lines when piped.
struct TrainingProgress {
    let totalSteps: Int
    let startStep: Int
    let isTerminal = isatty(2) != 0
    var lastPlain = 0.0
    var lastEval = ""
    var recent: [StepRecord] = []

    init(totalSteps: Int, startStep: Int) {
        self.totalSteps = totalSteps
        self.startStep = startStep
    }

    mutating func report(_ event: TrainingEvent, state: TrainingState) {
        switch event {
        case .step(let r):
            recent.append(r)
            if recent.count > 20 { recent.removeFirst() }
            let pos = recent.reduce(0) { $0 + $1.positions }
            let sec = recent.reduce(0) { $0 + $1.seconds }
            let rate = Double(pos) / max(sec, 1e-9)
            let eta = sec / Double(recent.count) * Double(totalSteps - r.step)
            let line = "step \(r.step)/\(totalSteps)  loss \(Output.fixed(r.loss, 4))  lr \(Output.fixed(r.learningRate, 5))  "
                + "|g| \(Output.fixed(r.gradientNorm, 3))  \(Output.fixed(rate, 0)) tok/s  ETA \(clock(eta))" + lastEval
            if isTerminal {
                Output.errorInline("\r\u{1B}[K" + line)
            } else {
                let now = Output.now()
                if now - lastPlain >= 5 || r.step == totalSteps || r.step == startStep + 1 {
                    Output.error(line)
                    lastPlain = now
                }
            }
        case .eval(let e):
            let what = e.accuracy.map { "acc \(Output.fixed($0, 4))" } ?? e.exactMatch.map { "em \(Output.fixed($0, 4))" } ?? "loss \(Output.fixed(e.loss, 4))"
            let best = state.bestMetric.map { Output.fixed(abs($0), 4) } ?? "-"
            lastEval = "  eval \(what) (best \(best) @ \(state.bestStep))"
            let line = "eval at step \(e.step): \(what), loss \(Output.fixed(e.loss, 4))\(e.improved ? " (best so far)" : "")"
            if isTerminal { Output.errorInline("\r\u{1B}[K"); Output.error(line) } else { Output.error(line) }
        case .checkpoint:
            break
        case .earlyStop(let step):
            if isTerminal { Output.errorInline("\r\u{1B}[K") }
            Output.error("early stop at step \(step): \(state.evalsSinceBest) evaluations without improvement")
        }
    }

    func finish() {
        if isTerminal { Output.errorInline("\n") }
    }

    private func clock(_ seconds: Double) -> String {
        let s = Int(max(0, seconds).rounded())
        let m = s / 60, r = s % 60
        return "\(m):" + (r < 10 ? "0" : "") + "\(r)"
    }
}
