import ArgumentParser
import PromptTuning
import SoftPrompt
import TensorIO

/// `softprompt validate`: check a soft prompt against a model before using it.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a soft prompt against a model: integrity, shape, fingerprint, tokenizer, context, values.",
        discussion: """
            Each check passes, warns or fails, with its reason. The exit status is 0 when all pass, 1 when one \
            warns and none fails, 2 when one fails. --data FILE adds a behavioural check: the task metric \
            (accuracy for rows with choices, else exact match) with the prompt and with no prompt on FILE, \
            compared with the eval metric stored in the prompt: fail below no prompt, warn when it drops more \
            than --tolerance plus twice the binomial noise below the stored value.
            """)

    @Option(name: [.short, .customLong("model")], help: "The model (default: $SOFTPROMPT_MODEL or the default model).")
    var model: String?

    @Argument(help: "The prompt: FILE.sprompt, or FILE.sprompt:TASK for one prompt of a bank.")
    var prompt: String

    @Option(help: "Task rows (JSONL) for the behavioural check.")
    var data: String?

    @Option(help: "Score only the first N rows of --data.")
    var limit: Int?

    @Option(help: "Accepted drop of the metric below the stored one, beyond noise (fraction).")
    var tolerance = 0.05

    @Option(name: [.short, .customLong("threads")], help: "Threads.")
    var threads = 2

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if !(tolerance >= 0 && tolerance <= 1) { throw ValidationError("--tolerance must be in [0, 1]") }
    }

    func run() throws {
        let loaded = try LoadedModel.load(model)
        let (path, task) = PromptStore.split(prompt)
        var validator = PromptValidator(model: loaded.llama, tokenizer: loaded.tokenizer)
        validator.tolerance = tolerance
        var report = validator.validate(path: path, prompt: task)
        if let data {
            report.checks.append(try behaviour(validator, report: report, path: path, task: task, data: data, loaded: loaded))
        }
        if json {
            var o = report.json
            o["model"] = .string(loaded.path)
            o["file"] = .string(path)
            print(try JSON.serialize(.object(o), pretty: true, sortedKeys: true))
        } else {
            print("\(prompt) on \(loaded.path): \(report.status.rawValue.uppercased())")
            print(Output.table(["check", "status", "reason"],
                               report.checks.map { [$0.name, $0.status.rawValue, $0.message] }))
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }

    /// The behavioural check: the task metric with and without the prompt (skipped when an earlier check
    /// makes the prompt unusable).
    private func behaviour(_ validator: PromptValidator, report: ValidationReport, path: String, task: String?,
                           data: String, loaded: LoadedModel) throws -> ValidationCheck {
        let blocking = ["integrity", "width", "finite"]
        if let failed = report.checks.first(where: { blocking.contains($0.name) && $0.status == .fail }) {
            return ValidationCheck("behaviour", .skip, "not run: the \(failed.name) check failed")
        }
        let soft = try PromptFile.read(path: path).prompt(named: task)
        var dataset = try TaskDataset.load(path: data)
        if let limit { dataset.examples = Array(dataset.examples.prefix(limit)) }
        let encoder = ExampleEncoder(tokenizer: loaded.tokenizer, template: try PromptTemplate(soft.template ?? "{input}"))
        let encoded = encoder.encode(dataset)
        let evaluator = Evaluator(model: loaded.llama, tokenizer: loaded.tokenizer, threads: threads)
        let with = try evaluator.evaluate(encoded, prompt: soft.vectors)
        let without = try evaluator.evaluate(encoded, prompt: [])
        let metric: String, observed: Double, baseline: Double
        if let a = with.accuracy, let b = without.accuracy {
            (metric, observed, baseline) = ("accuracy", a, b)
        } else if let a = with.exactMatch, let b = without.exactMatch {
            (metric, observed, baseline) = ("exact_match", a, b)
        } else {
            return ValidationCheck("behaviour", .skip, "\(data): rows mix choices and free answers; no single metric")
        }
        return validator.behaviourCheck(
            BehaviourMeasurement(metric: metric, observed: observed, baseline: baseline, examples: encoded.count),
            prompt: soft)
    }
}
