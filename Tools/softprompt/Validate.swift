import ArgumentParser
import Llama
import PromptTuning
import SoftPrompt
import TensorIO

/// `softprompt validate`: check a soft prompt against a model before using it.
struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a soft prompt against a model: integrity, shape, fingerprint, tokenizer, context, values.",
        discussion: """
            Each check passes, warns or fails, with its reason. The exit status is 0 when all pass, 1 when one \
            warns and none fails, 2 when one fails, 3 when the check cannot run (a missing file, an unreadable \
            model), 64 for a usage error. --data FILE adds a behavioural check: the task metric \
            (accuracy for rows with choices, else exact match) with the prompt and with no prompt on FILE, \
            compared with the eval metric stored in the prompt: fail below no prompt, warn when it drops more \
            than --tolerance plus twice the binomial noise below the stored value.
            """)

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var selection: PromptSelection

    @Argument(help: .hidden)
    var legacyPrompt: String?

    @Option(help: "Task rows (JSONL) for the behavioural check.")
    var data: String?

    @OptionGroup var limitOption: LimitOption

    @Option(help: "Accepted drop of the metric below the stored one, beyond noise (fraction).")
    var tolerance = 0.05

    @OptionGroup var threadsOption: ThreadsOption
    @OptionGroup var output: JSONOption

    var threads: Int { threadsOption.threads }

    mutating func validate() throws {
        try selection.adopt(legacy: legacyPrompt, command: "validate")
        try selection.require()
        if !(tolerance >= 0 && tolerance <= 1) { throw ValidationError("--tolerance must be in [0, 1]") }
    }

    func run() throws {
        // A missing file is a runtime error (exit 3), not a failed check (exit 2): a script can tell them apart.
        if let given = selection.prompt, !fileExists(PromptReference(parsing: given).path) {
            throw CLIError("\(PromptReference(parsing: given).path): no such file")
        }
        let loaded = try LoadedModel.load(modelOption.model)
        let reference = try selection.reference { loaded.path }!
        let (path, task) = (reference.path, reference.task)
        var validator = PromptValidator(model: loaded.llama, tokenizer: loaded.tokenizer)
        validator.tolerance = tolerance
        var report = validator.validate(path: path, prompt: task)
        if let data {
            let dataset = try limitOption.rows(data)
            report.checks.append(try validator.behaviourCheck(path: path, prompt: task, dataset: dataset, after: report,
                                                              threads: threads))
        }
        if output.json {
            var o = report.json
            o["model"] = .string(loaded.path)
            o["file"] = .string(path)
            try JSONOption.print(o)
        } else {
            print("\(reference) on \(loaded.path): \(report.status.rawValue.uppercased())")
            print(Output.table(["check", "status", "reason"],
                               report.checks.map { [$0.name, $0.status.rawValue, $0.message] }))
        }
        if report.exitCode != 0 { throw ExitCode(report.exitCode) }
    }
}
