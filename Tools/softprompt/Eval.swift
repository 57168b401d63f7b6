import ArgumentParser
import Llama
import PromptTuning
import SoftPrompt
import TensorIO
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// `softprompt eval`: score a model on a JSONL task with no prompt, a hand-written prompt and/or a soft prompt.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model on a JSONL task, with or without a hard or soft prompt.",
        discussion: """
            Rows with "choices" are scored by rank classification: each choice's tokens get the sum of their \
            log-probabilities after the context and the best one is the prediction (lm-evaluation-harness's acc). \
            Rows without choices are scored by exact match of the greedy continuation. The mean loss and \
            perplexity of the expected outputs are reported for all rows. --compare runs no prompt, the hard \
            prompt and the soft prompt on the same rows and prints them side by side.
            """)

    @OptionGroup var modelOption: ModelOption

    @Option(help: "Data to score (JSONL).")
    var data: String

    @OptionGroup var selection: PromptSelection

    @Option(help: "Hand-written instruction placed before the templated input.")
    var hardPrompt: String?

    @Option(help: "Read the hand-written instruction from this file (trailing newline kept).")
    var hardPromptFile: String?

    @OptionGroup var templateOption: ScoringTemplateOption

    @Flag(help: "Keep special-token text (<|im_start|>, …) as plain text instead of parsing it into special tokens.")
    var noSpecial = false

    @Flag(help: "Compare no prompt, the hard prompt and the soft prompt side by side.")
    var compare = false

    @OptionGroup var limitOption: LimitOption

    @OptionGroup var threadsOption: ThreadsOption

    @Option(help: "Write one JSON line per row and condition: prediction, correctness, choice log-probabilities, output loss.")
    var predictions: String?

    @OptionGroup var output: JSONOption

    func validate() throws {
        if hardPrompt != nil && hardPromptFile != nil { throw ValidationError("give --hard-prompt or --hard-prompt-file, not both") }
        if compare && !selection.isGiven && hardPrompt == nil && hardPromptFile == nil {
            throw ValidationError("--compare needs --prompt and/or --hard-prompt")
        }
    }

    func run() throws {
        let loaded = try LoadedModel.load(modelOption.model)
        let C = loaded.llama.config.hiddenSize
        let dataset = try limitOption.rows(data, parseSpecial: !noSpecial)
        let reference = try selection.reference { loaded.path }
        let soft = try reference.map { (r) throws(PromptReferenceError) in try r.read(width: C) }
        let tmpl = try templateOption.resolve(stored: soft?.template)
        let templateText = tmpl.text
        var hard = hardPrompt ?? ""
        if let hardPromptFile { hard = String(decoding: try readFile(hardPromptFile, limit: 1 << 20), as: UTF8.self) }

        var conditions: [(name: String, hard: String, soft: [Float])] = []
        if compare {
            conditions.append(("no prompt", "", []))
            if !hard.isEmpty { conditions.append(("hard prompt", hard, [])) }
            if let soft { conditions.append(("soft prompt", "", soft.vectors)) }
        } else {
            let name = soft != nil ? (hard.isEmpty ? "soft prompt" : "soft + hard prompt") : (hard.isEmpty ? "no prompt" : "hard prompt")
            conditions.append((name, hard, soft?.vectors ?? []))
        }
        let evaluator = Evaluator(model: loaded.llama, tokenizer: loaded.tokenizer, threads: threadsOption.threads)
        var results: [(String, EvaluationResult)] = []
        for condition in conditions {
            let encoder = ExampleEncoder(tokenizer: loaded.tokenizer, template: tmpl, hardPrompt: condition.hard)
            let encoded = encoder.encode(dataset)
            let n = encoded.count
            var lastShown = 0.0
            let terminal = isatty(2) != 0
            let result = try evaluator.evaluate(encoded, prompt: condition.soft) { done in
                let now = Output.now()
                if terminal, now - lastShown > 1 || done == n {
                    Output.errorInline("\r\u{1B}[K\(condition.name): \(done)/\(n)")
                    lastShown = now
                }
            }
            if terminal { Output.errorInline("\r\u{1B}[K") }
            results.append((condition.name, result))
        }
        if let predictions {
            var lines = ""
            for (name, r) in results {
                for (example, score) in zip(dataset.examples, r.scores) {
                    var o: JSONObject = ["condition": .string(name), "input": .string(example.input),
                                         "output": .string(example.output), "output_nll": .double(score.outputNLL),
                                         "output_tokens": .int(Int64(score.outputTokens))]
                    if let choices = example.choices, let p = score.predicted {
                        o["predicted"] = .string(choices[p])
                        o["correct"] = .bool(score.correct == true)
                        o["choice_logprobs"] = .array(score.choiceLogProbs.map { .double($0) })
                    }
                    if let g = score.generated { o["generated"] = .string(g); o["exact_match"] = .bool(score.exactMatch == true) }
                    lines += try JSON.serialize(.object(o)) + "\n"
                }
            }
            try AtomicFile.write(to: predictions, bytes: Array(lines.utf8))
        }
        if output.json {
            var rows: [JSONValue] = []
            for (name, r) in results {
                var o: JSONObject = ["condition": .string(name), "rows": .int(Int64(r.examples)),
                                     "loss": .double(r.meanLoss), "perplexity": .double(r.perplexity),
                                     "seconds": .double(r.seconds)]
                if let a = r.accuracy { o["accuracy"] = .double(a) }
                if let e = r.exactMatch { o["exact_match"] = .double(e) }
                rows.append(.object(o))
            }
            let o: JSONObject = ["data": .string(data), "template": .string(templateText),
                                 "hard_prompt": .string(hard), "prompt": reference.map { .string($0.description) } ?? .null,
                                 "results": .array(rows)]
            try JSONOption.print(o)
            return
        }
        let pct = { (x: Double?) in x.map { Output.fixed($0 * 100, 1) + "%" } ?? "-" }
        print(Output.table(["condition", "accuracy", "exact match", "loss", "perplexity", "rows", "seconds"],
                           results.map { name, r in
                               [name, pct(r.accuracy), pct(r.exactMatch), Output.fixed(r.meanLoss, 4),
                                Output.fixed(r.perplexity, 3), "\(r.examples)", Output.fixed(r.seconds, 1)]
                           }, rightAligned: [1, 2, 3, 4, 5, 6]))
    }
}
