import Llama
import SoftPrompt

/// The behavioural check of `softprompt validate --data`: the task metric with the prompt and with no
/// prompt, on the same rows, judged by `PromptValidator.behaviourCheck(_:prompt:)` against each other
/// and against the metric stored with the prompt.
///
/// It lives here, not in SoftPrompt, because it needs the dataset encoder and the evaluator; SoftPrompt
/// holds the judgement, this file the measurement.
extension PromptValidator {
    /// The static checks whose failure makes the behavioural check pointless (the prompt cannot be read
    /// or run).
    public static let behaviourPrerequisites = ["integrity", "width", "finite"]

    /// Runs the behavioural check for the prompt a report describes, unless one of
    /// `behaviourPrerequisites` failed in it (then the check is `skip`).
    /// - Parameters:
    ///   - path: The prompt file `report` was made from (`.sprompt`).
    ///   - name: The prompt's name in the file; nil for its only prompt.
    ///   - dataset: The labelled rows to score (all of them: trim before calling).
    ///   - report: The static checks of that prompt (`validate(path:prompt:norms:)`).
    ///   - threads: Threads for the evaluator.
    /// - Returns: A check named `behaviour`.
    /// - Throws: `SpromptError` when the file cannot be read, `TemplateError` for a stored template without
    ///   `{input}`, `ModelError` when a row does not fit the context.
    public func behaviourCheck(path: String, prompt name: String?, dataset: TaskDataset, after report: ValidationReport,
                               threads: Int = 1) throws -> ValidationCheck {
        if let failed = report.checks.first(where: { Self.behaviourPrerequisites.contains($0.name) && $0.status == .fail }) {
            return ValidationCheck("behaviour", .skip, "not run: the \(failed.name) check failed")
        }
        let prompt = try PromptFile.read(path: path).prompt(named: name)
        return try behaviourCheck(of: prompt, on: dataset, threads: threads)
    }

    /// Scores `dataset` with `prompt` (rendered through its stored template) and with no prompt, and judges
    /// the two (`behaviourCheck(_:prompt:)`): fail when the prompt scores below no prompt, warn when it falls
    /// short of its stored metric beyond noise, skip when the rows mix choices and free answers.
    /// - Parameters:
    ///   - prompt: The prompt; its width must be the model's.
    ///   - dataset: The labelled rows to score.
    ///   - threads: Threads for the evaluator.
    /// - Throws: `TemplateError` for a stored template without `{input}`, `ModelError` when a row does not
    ///   fit the context.
    public func behaviourCheck(of prompt: SoftPrompt, on dataset: TaskDataset, threads: Int = 1) throws -> ValidationCheck {
        let encoder = ExampleEncoder(tokenizer: tokenizer, template: try PromptTemplate(stored: prompt.template))
        let encoded = encoder.encode(dataset)
        let evaluator = Evaluator(model: model, tokenizer: tokenizer, threads: threads)
        let with = try evaluator.evaluate(encoded, prompt: prompt.vectors)
        let without = try evaluator.evaluate(encoded, prompt: [])
        let metric: String, observed: Double, baseline: Double
        if let a = with.accuracy, let b = without.accuracy {
            (metric, observed, baseline) = ("accuracy", a, b)
        } else if let a = with.exactMatch, let b = without.exactMatch {
            (metric, observed, baseline) = ("exact_match", a, b)
        } else {
            return ValidationCheck("behaviour", .skip, "\(dataset.path): rows mix choices and free answers; no single metric")
        }
        return behaviourCheck(BehaviourMeasurement(metric: metric, observed: observed, baseline: baseline,
                                                   examples: encoded.count), prompt: prompt)
    }
}
