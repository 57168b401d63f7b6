import Llama
import TensorIO
import Tokenizers

/// The outcome of one validation check, from best to worst.
public enum CheckStatus: String, Sendable, CaseIterable {
    /// The check ran and found nothing wrong.
    case pass
    /// The check could not run (a check it depends on failed, or its input is absent).
    case skip
    /// The prompt probably works, but something deserves a look.
    case warn
    /// The prompt should not be used with this model.
    case fail

    /// 0 for pass and skip, 1 for warn, 2 for fail: the exit status of `softprompt validate`.
    public var severity: Int {
        switch self {
        case .pass, .skip: return 0
        case .warn: return 1
        case .fail: return 2
        }
    }
}

/// One check of a soft prompt against a model: its status, why, and the numbers behind it.
public struct ValidationCheck: Sendable, Equatable {
    /// A short identifier: `integrity`, `dtype`, `width`, `fingerprint`, `tokenizer`, `context`,
    /// `finite`, `norms`, `behaviour`.
    public var name: String
    /// The outcome.
    public var status: CheckStatus
    /// A one-line explanation.
    public var message: String
    /// The measured values (for `--json`).
    public var values: JSONObject

    /// Creates a check result.
    /// - Parameters:
    ///   - name: The check's identifier.
    ///   - status: Its outcome.
    ///   - message: Why.
    ///   - values: The numbers behind it.
    public init(_ name: String, _ status: CheckStatus, _ message: String, values: JSONObject = [:]) {
        self.name = name
        self.status = status
        self.message = message
        self.values = values
    }
}

/// The checks of one prompt against one model.
public struct ValidationReport: Sendable {
    /// The prompt checked (nil when the file could not be read).
    public var promptName: String?
    /// The checks, in the order they ran.
    public var checks: [ValidationCheck]

    /// Creates a report from checks.
    public init(promptName: String?, checks: [ValidationCheck]) {
        self.promptName = promptName
        self.checks = checks
    }

    /// The worst status of all checks (pass when there are none).
    public var status: CheckStatus {
        checks.map(\.status).max { $0.severity < $1.severity } ?? .pass
    }

    /// 0 (pass), 1 (warn) or 2 (fail).
    public var exitCode: Int32 { Int32(status.severity) }

    /// The check named `name`, if it ran.
    public subscript(name: String) -> ValidationCheck? { checks.first { $0.name == name } }

    /// The report as a JSON object: `{"prompt", "status", "checks": [{"name","status","message","values"}]}`.
    public var json: JSONObject {
        ["prompt": promptName.map { .string($0) } ?? .null, "status": .string(status.rawValue),
         "checks": .array(checks.map {
             .object(["name": .string($0.name), "status": .string($0.status.rawValue),
                      "message": .string($0.message), "values": .object($0.values)])
         })]
    }
}

/// The distribution of the L2 norms of a model's token-embedding rows.
public struct EmbeddingNormStatistics: Sendable, Equatable {
    /// The number of rows.
    public var rows: Int
    /// The smallest norm.
    public var minimum: Double
    /// The 0.1th percentile.
    public var p001: Double
    /// The median.
    public var median: Double
    /// The 99.9th percentile.
    public var p999: Double
    /// The largest norm.
    public var maximum: Double

    /// Computes the statistics of all rows of `matrix` (each row dequantized once).
    public init(_ matrix: WeightMatrix) {
        var norms = [Double](repeating: 0, count: matrix.rows)
        for r in 0 ..< matrix.rows {
            var sum = 0.0
            for v in matrix.dequantizedRow(r) { sum += Double(v) * Double(v) }
            norms[r] = sum.squareRoot()
        }
        self.init(norms: norms)
    }

    /// Computes the statistics of given norms (at least one).
    public init(norms: [Double]) {
        precondition(!norms.isEmpty, "no norms")
        let sorted = norms.sorted()
        func quantile(_ q: Double) -> Double {
            let x = q * Double(sorted.count - 1)
            let i = Int(x.rounded(.down)), f = x - Double(i)
            return i + 1 < sorted.count ? sorted[i] * (1 - f) + sorted[i + 1] * f : sorted[i]
        }
        rows = sorted.count
        minimum = sorted[0]
        p001 = quantile(0.001)
        median = quantile(0.5)
        p999 = quantile(0.999)
        maximum = sorted[sorted.count - 1]
    }
}

/// A behavioural measurement for `PromptValidator.behaviourCheck`: the task metric of the prompt and
/// of no prompt on the same examples.
public struct BehaviourMeasurement: Sendable, Equatable {
    /// `accuracy` or `exact_match`; the stored metric compared is `eval_<metric>`.
    public var metric: String
    /// The metric with the prompt, in [0, 1].
    public var observed: Double
    /// The metric without a prompt on the same examples, in [0, 1].
    public var baseline: Double
    /// The number of examples scored.
    public var examples: Int

    /// Creates a measurement.
    public init(metric: String, observed: Double, baseline: Double, examples: Int) {
        self.metric = metric
        self.observed = observed
        self.baseline = baseline
        self.examples = examples
    }
}

/// Checks a soft prompt against a model before it is used: file integrity, dtype, width, model
/// fingerprint, tokenizer, context budget, finiteness, vector norms and (with data) behaviour.
public struct PromptValidator: Sendable {
    /// The model the prompt is meant for.
    public let model: LlamaModel
    /// Its tokenizer.
    public let tokenizer: Tokenizer
    /// A row is an outlier when its norm exceeds `p999 × outlierFactor` or is below `p001 / outlierFactor`.
    /// Trained prompts legitimately leave the vocabulary's range (the example task's prompts, 200 steps at
    /// lr 0.3, reach 43–51, about 9× the default model's 99.9th percentile of 5.9), so the default flags only
    /// rows 16× outside it: prompts scaled for another model, or damaged.
    public var outlierFactor = 16.0
    /// Warn when prompt and template use more than this fraction of the context.
    public var contextWarningFraction = 0.5
    /// The accepted drop of the behavioural metric below the stored one, beyond sampling noise.
    public var tolerance = 0.05

    /// Creates a validator for a model.
    public init(model: LlamaModel, tokenizer: Tokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Reads a `.sprompt` file and runs every static check on one of its prompts.
    /// - Parameters:
    ///   - path: The file.
    ///   - name: The prompt to check; nil for the only prompt of the file.
    ///   - norms: The model's token-embedding norm statistics, if already computed.
    /// - Returns: The report; a file that cannot be read gives one failed `integrity` check.
    public func validate(path: String, prompt name: String?, norms: EmbeddingNormStatistics? = nil) -> ValidationReport {
        let file: PromptFile, prompt: SoftPrompt
        do {
            file = try PromptFile.read(path: path)
            prompt = try file.prompt(named: name)
        } catch {
            return ValidationReport(promptName: name, checks: [
                ValidationCheck("integrity", .fail, error.description, values: ["error": .string(error.kind.rawValue)]),
            ])
        }
        let integrity = ValidationCheck(
            "integrity", .pass, "header and payload SHA-256 verified; \(file.prompts.count) prompt(s) in the file",
            values: ["prompts": .int(Int64(file.prompts.count))])
        return ValidationReport(promptName: prompt.name,
                                checks: [integrity] + check(prompt, fingerprint: file.model, norms: norms))
    }

    /// Runs the static checks (all but integrity and behaviour) on a prompt.
    /// - Parameters:
    ///   - prompt: The prompt.
    ///   - fingerprint: The fingerprint stored with it (nil: unknown).
    ///   - norms: The model's token-embedding norm statistics; computed when nil.
    public func check(_ prompt: SoftPrompt, fingerprint: ModelFingerprint?,
                      norms: EmbeddingNormStatistics? = nil) -> [ValidationCheck] {
        var checks: [ValidationCheck] = []
        let config = model.config

        // dtype: every stored type is usable; the half types have rounded the trained values.
        let dtypeNote: String
        switch prompt.dtype {
        case .f32: dtypeNote = "stored as f32 (exact)"
        case .f16: dtypeNote = "stored as f16 (11-bit significand, relative rounding ≤ 4.9e-4)"
        case .bf16: dtypeNote = "stored as bf16 (8-bit significand, relative rounding ≤ 3.9e-3)"
        }
        checks.append(ValidationCheck("dtype", .pass, dtypeNote, values: ["dtype": .string(prompt.dtype.rawValue)]))

        // width
        let widthOK = prompt.width == config.hiddenSize
        checks.append(ValidationCheck(
            "width", widthOK ? .pass : .fail,
            widthOK ? "\(prompt.tokens) × \(prompt.width) matches the model's embedding length"
                    : "the prompt's width \(prompt.width) differs from the model's embedding length \(config.hiddenSize)",
            values: ["tokens": .int(Int64(prompt.tokens)), "width": .int(Int64(prompt.width)),
                     "embedding_length": .int(Int64(config.hiddenSize))]))

        // fingerprint
        var current: ModelFingerprint?
        do {
            current = try ModelFingerprint(model: model, tokenizer: tokenizer)
        } catch {
            checks.append(ValidationCheck("fingerprint", .warn, "the model cannot be fingerprinted: \(error.message)"))
        }
        if let current {
            if let stored = fingerprint {
                switch stored.compare(to: current) {
                case .same:
                    checks.append(ValidationCheck("fingerprint", .pass, "same model (identical weight rows)",
                                                  values: ["match": "same"]))
                case .sameBaseOtherQuantization:
                    checks.append(ValidationCheck(
                        "fingerprint", .warn,
                        "same base weights in another quantization: the prompt was trained on other rounding",
                        values: ["match": "same_base_other_quantization"]))
                case .different(let why):
                    checks.append(ValidationCheck("fingerprint", .fail, "another model: \(why)",
                                                  values: ["match": "different", "reason": .string(why)]))
                case .unknown(let why):
                    checks.append(ValidationCheck("fingerprint", .warn, "cannot tell: \(why)",
                                                  values: ["match": "unknown", "reason": .string(why)]))
                }
            } else {
                checks.append(ValidationCheck("fingerprint", .warn, "the file records no model fingerprint",
                                              values: ["match": "unknown"]))
            }
        }

        // tokenizer: the template is text, so its tokens change with the tokenizer.
        let templateNote = prompt.template == nil ? "" : " (the stored template is re-tokenized with it)"
        if let stored = fingerprint?.tokenizerHash, let mine = current?.tokenizerHash {
            let same = stored == mine
            checks.append(ValidationCheck(
                "tokenizer", same ? .pass : (prompt.template == nil ? .warn : .fail),
                same ? "same tokenizer" + templateNote
                     : "another tokenizer (\(stored.prefix(12))… vs \(mine.prefix(12))…)"
                       + (prompt.template == nil ? "" : ": the template tokenizes differently from training"),
                values: ["stored": .string(stored), "model": .string(mine)]))
        } else {
            checks.append(ValidationCheck("tokenizer", .warn, "no tokenizer hash to compare" + templateNote))
        }

        // context budget
        // (a stored template was checked when the file was read; an unchecked one counts as none); special
        // tokens parsed, as generate, eval and training tokenize templates)
        let template = (try? PromptTemplate(stored: prompt.template)) ?? .identity
        let templateTokens = tokenizer.encode(template.render(""), addSpecial: true, parseSpecial: true).count
        let used = prompt.tokens + templateTokens, context = config.maxPositionEmbeddings
        let budget: JSONObject = ["prompt_tokens": .int(Int64(prompt.tokens)),
                                  "template_tokens": .int(Int64(templateTokens)),
                                  "context_length": .int(Int64(context)), "left": .int(Int64(context - used))]
        if used >= context {
            checks.append(ValidationCheck("context", .fail, "\(prompt.tokens) prompt + \(templateTokens) template tokens "
                                          + "fill the context of \(context)", values: budget))
        } else if Double(used) > contextWarningFraction * Double(context) {
            checks.append(ValidationCheck("context", .warn, "\(prompt.tokens) prompt + \(templateTokens) template tokens "
                                          + "leave \(context - used) of \(context) for input and output", values: budget))
        } else {
            checks.append(ValidationCheck("context", .pass, "\(prompt.tokens) prompt + \(templateTokens) template tokens "
                                          + "leave \(context - used) of \(context)", values: budget))
        }

        // finiteness
        let bad = prompt.nonFiniteCount
        if bad > 0 {
            let first = prompt.vectors.firstIndex { !$0.isFinite } ?? 0
            checks.append(ValidationCheck(
                "finite", .fail, "\(bad) NaN or infinite value(s), the first in row \(first / prompt.width)",
                values: ["non_finite": .int(Int64(bad)), "first_row": .int(Int64(first / prompt.width))]))
        } else {
            checks.append(ValidationCheck("finite", .pass, "no NaN or infinite values"))
        }

        // norms against the token-embedding distribution
        if !widthOK || bad > 0 {
            checks.append(ValidationCheck("norms", .skip, widthOK ? "non-finite values" : "wrong width"))
        } else {
            let stats = norms ?? EmbeddingNormStatistics(model.tokenEmbedding)
            checks.append(normCheck(prompt.rowNorms.map(Double.init), stats))
        }
        return checks
    }

    /// Compares prompt row norms with the token-embedding norm distribution.
    public func normCheck(_ rowNorms: [Double], _ stats: EmbeddingNormStatistics) -> ValidationCheck {
        let high = stats.p999 * outlierFactor, low = stats.p001 / outlierFactor
        let outliers = rowNorms.indices.filter { rowNorms[$0] > high || rowNorms[$0] < low }
        let values: JSONObject = [
            "row_norms": .array(rowNorms.map { .double($0) }),
            "embedding_p001": .double(stats.p001), "embedding_median": .double(stats.median),
            "embedding_p999": .double(stats.p999), "embedding_min": .double(stats.minimum),
            "embedding_max": .double(stats.maximum), "low_limit": .double(low), "high_limit": .double(high),
            "outlier_rows": .array(outliers.map { .int(Int64($0)) }),
        ]
        let range = "prompt rows \(Self.format(rowNorms.min() ?? 0))–\(Self.format(rowNorms.max() ?? 0)); token "
            + "embeddings p0.1 \(Self.format(stats.p001)), median \(Self.format(stats.median)), p99.9 \(Self.format(stats.p999))"
        if outliers.isEmpty {
            return ValidationCheck("norms", .pass, "norms within [p0.1/\(Self.format(outlierFactor)), "
                                   + "p99.9×\(Self.format(outlierFactor))]: " + range, values: values)
        }
        let list = outliers.prefix(8).map { "\($0) (\(Self.format(rowNorms[$0])))" }.joined(separator: ", ")
        return ValidationCheck("norms", .warn, "\(outliers.count) row(s) outside [\(Self.format(low)), \(Self.format(high))]: "
                               + list + (outliers.count > 8 ? ", …" : "") + "; " + range, values: values)
    }

    /// Judges a behavioural measurement against the metric stored with the prompt (`metrics["eval_<metric>"]`,
    /// measured on `metrics["eval_rows"]` rows).
    ///
    /// Fail when the prompt scores below no prompt. Warn when it scores more than `tolerance` plus twice
    /// the binomial standard error of the difference below the stored value.
    public func behaviourCheck(_ m: BehaviourMeasurement, prompt: SoftPrompt) -> ValidationCheck {
        var values: JSONObject = ["metric": .string(m.metric), "observed": .double(m.observed),
                                  "baseline": .double(m.baseline), "examples": .int(Int64(m.examples)),
                                  "tolerance": .double(tolerance)]
        let stored = prompt.metrics["eval_" + m.metric]?.doubleValue
        let storedRows = prompt.metrics["eval_rows"]?.intValue.map(Int.init)
        let observed = "\(m.metric) \(Self.format(m.observed)) on \(m.examples) examples (no prompt \(Self.format(m.baseline)))"
        if m.observed < m.baseline {
            if let stored { values["stored"] = .double(stored) }
            return ValidationCheck("behaviour", .fail, observed + ": worse than no prompt", values: values)
        }
        guard let stored else {
            return ValidationCheck("behaviour", .pass, observed + "; no stored eval_\(m.metric) to compare with",
                                   values: values)
        }
        let p = min(max(stored, 0), 1)
        var variance = p * (1 - p) / Double(max(m.examples, 1))
        if let storedRows, storedRows > 0 { variance += p * (1 - p) / Double(storedRows) }
        let noise = 2 * variance.squareRoot()
        let allowed = tolerance + noise
        values["stored"] = .double(stored)
        values["allowed_drop"] = .double(allowed)
        let drop = stored - m.observed
        if drop > allowed {
            return ValidationCheck("behaviour", .warn, observed + ": \(Self.format(drop)) below the stored "
                                   + "\(Self.format(stored)) (allowed \(Self.format(allowed)))", values: values)
        }
        return ValidationCheck("behaviour", .pass, observed + "; stored \(Self.format(stored)), allowed drop "
                               + Self.format(allowed), values: values)
    }

    static func format(_ x: Double) -> String {
        guard x.isFinite else { return "\(x)" }
        return "\((x * 1000).rounded() / 1000)"
    }
}
