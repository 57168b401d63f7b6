import ArgumentParser
import Llama
import PromptTuning
import SoftPrompt
import TensorIO
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// `softprompt explain`: what a soft prompt looks like from the model's side, and which of its tokens matter.
struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Explain a soft prompt: nearest tokens, norms, hard projection, ablations, bank similarity.",
        discussion: """
            1. Each virtual token's norm against the vocabulary's embedding norms, and its nearest vocabulary \
            tokens by cosine (Lester et al. 2021, §7). Control, unknown and unused tokens are not candidates. \
            2. The hard-prompt projection (each virtual token replaced by its nearest token) scored beside the \
            soft prompt and no prompt. 3. Ablations: each virtual token removed, or replaced by the mean of the \
            prompt's rows, ranked by the drop of the metric (then the rise of the loss). 4. Cosine similarity \
            between the prompts of a bank (flattened, and of their mean rows). Metrics are those of \
            `softprompt eval` (rank-classification accuracy for rows with choices, else exact match; mean \
            loss always) with the prompt's stored template. Without --data, sections 2-3 use the eval file \
            named in the prompt's provenance when it exists and its SHA-256 matches; otherwise they are skipped.
            """)

    /// Which ablations run per virtual token.
    enum Ablation: String, ExpressibleByArgument, CaseIterable {
        case remove, mean, both
    }

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var selection: PromptSelection

    @Argument(help: .hidden)
    var legacyPrompt: String?

    @Option(help: "Task rows (JSONL) for the projection's metric and the ablations.")
    var data: String?

    @OptionGroup var limitOption: LimitOption
    @OptionGroup var templateOption: ScoringTemplateOption

    @Option(help: "Nearest vocabulary tokens listed per virtual token.")
    var topK = 5

    @OptionGroup var threadsOption: ThreadsOption

    @Option(help: "Ablations run per virtual token: remove (the token taken out), mean (replaced by the prompt's mean row) or both (twice the time).")
    var ablation = Ablation.remove

    @OptionGroup var output: JSONOption

    @Option(help: "Also write a self-contained HTML report (heat maps, ablation chart) to this file.")
    var html: String?

    mutating func validate() throws {
        try selection.adopt(legacy: legacyPrompt, command: "explain")
        try selection.require()
        if topK < 1 || topK > 100 { throw ValidationError("--top-k must be in 1...100") }
    }

    func run() throws {
        let loaded = try LoadedModel.load(modelOption.model)
        let C = loaded.llama.config.hiddenSize
        let reference = try selection.reference { loaded.path }!
        let file = try reference.readFile(width: C)
        let soft = try reference.prompt(in: file)
        var notes: [String] = []

        // The rows to score: --data, else the provenance's eval file when it is still the same file.
        var dataPath = data
        if dataPath == nil {
            switch try ProvenanceEvalData(of: soft) {
            case .missing(let named):
                notes.append("No --data; the prompt's provenance names \(named), which is not found from here: sections 2 and 3 skipped.")
            case .changed(let named):
                notes.append("No --data; \(named) (named in the prompt's provenance) has changed since training: sections 2 and 3 skipped.")
            case .usable(let named):
                dataPath = named
                notes.append("No --data: using \(named), the eval file named in the prompt's provenance.")
            case .none:
                notes.append("No --data: the projection's metric and the ablations (sections 2 and 3) are skipped.")
            }
        }
        let promptTemplate = try templateOption.resolve(stored: soft.template)
        let templateText = promptTemplate.text
        var encoded: [EncodedExample]?
        if let dataPath {
            let dataset = try limitOption.rows(dataPath)
            let encoder = ExampleEncoder(tokenizer: loaded.tokenizer, template: promptTemplate)
            encoded = encoder.encode(dataset)
        }
        let bank = file.prompts.map { BankPrompt(name: $0.name, vectors: $0.vectors, width: $0.width) }
        if bank.count < 2 { notes.append("The file holds one prompt: no bank similarity to report.") }

        let explainer = PromptExplainer(model: loaded.llama, tokenizer: loaded.tokenizer, topK: topK, threads: threadsOption.threads)
        explainer.ablationKinds = ablation == .both ? AblationKind.allCases : [AblationKind(rawValue: ablation.rawValue)!]
        let terminal = isatty(2) != 0
        let start = Output.now()
        let explanation = try explainer.explain(prompt: soft.vectors, examples: encoded, bank: bank) { stage in
            guard terminal else { return }
            switch stage {
            case .vocabulary: Output.errorInline("\r\u{1B}[Kscanning the vocabulary")
            case .evaluation(let name, let done, let total):
                Output.errorInline("\r\u{1B}[Kevaluation \(done + 1)/\(total): \(name)")
            }
        }
        if terminal { Output.errorInline("\r\u{1B}[K") }
        let seconds = Output.now() - start

        let facts: [(String, String)] = [
            ("model", loaded.path), ("prompt", reference.description), ("name", soft.name),
            ("data", dataPath.map { "\($0) (\(encoded?.count ?? 0) rows)" } ?? "none"), ("template", quotedToken(templateText)),
        ]
        if let html {
            let page = explanation.html(title: "softprompt explain: \(soft.name)", facts: facts, notes: notes)
            try AtomicFile.write(to: html, bytes: Array(page.utf8))
        }
        if output.json {
            var o = explanation.json()
            o["model"] = .string(loaded.path)
            o["prompt"] = .string(reference.description)
            o["name"] = .string(soft.name)
            o["data"] = dataPath.map { .string($0) } ?? .null
            o["template"] = .string(templateText)
            o["notes"] = .array(notes.map { .string($0) })
            o["seconds"] = .double(seconds)
            try JSONOption.print(o)
            return
        }
        print(report(explanation, facts: facts, notes: notes, seconds: seconds))
    }

    // MARK: - Terminal report (fits 100 columns)

    private func report(_ x: PromptExplanation, facts: [(String, String)], notes: [String], seconds: Double) -> String {
        var out: [String] = []
        for (k, v) in facts { out.append(clip("\(k): \(v)")) }
        out += notes.flatMap { wrap($0) }

        let vn = x.vocabularyNorms
        out.append("")
        out.append("1. Virtual tokens: \(x.tokens) × \(x.width)")
        out += wrap("Vocabulary embedding norms over \(vn.candidates) candidate tokens (\(vn.excluded.count) control, "
                    + "unknown or unused left out): p50 \(Output.fixed(vn.median, 3)), p99 \(Output.fixed(vn.p99, 3)), "
                    + "p99.9 \(Output.fixed(vn.p999, 3)), max \(Output.fixed(vn.maximum, 3)). "
                    + "\"pct\" is the percent of vocabulary norms below the token's.")
        out.append("")
        let rows = (0 ..< x.tokens).map { t in
            [String(t), Output.fixed(x.norms[t], 3), Output.fixed(x.normPercentiles[t], 1),
             x.neighbours[t].map { "\(quotedToken($0.text)) \(Output.fixed($0.cosine, 2))" }.joined(separator: ", ")]
        }
        out += Output.table(["#", "norm", "pct", "nearest tokens (cosine)"], rows, rightAligned: [0, 1, 2])
            .split(separator: "\n", omittingEmptySubsequences: false).map { clip(String($0)) }
        if x.tokens > 1 {
            var pairs: [(Int, Int, Double)] = []
            for i in 0 ..< x.tokens { for j in i + 1 ..< x.tokens { pairs.append((i, j, x.tokenSimilarity[i][j])) } }
            let mean = pairs.map(\.2).reduce(0, +) / Double(pairs.count)
            let top = pairs.sorted { $0.2 > $1.2 }.prefix(3).map { "\($0.0)–\($0.1) \(Output.fixed($0.2, 3))" }
            out.append("")
            out += wrap("Between virtual tokens: mean cosine \(Output.fixed(mean, 3)); most similar pairs: "
                        + top.joined(separator: ", ") + " (full matrix in --json / --html).")
        }

        out.append("")
        out.append("2. Hard-prompt projection (each virtual token → its nearest token)")
        out += wrap(quotedToken(x.projection.text))
        if let e = x.evaluation {
            let pct = { (v: Double?) in v.map { Output.fixed($0 * 100, 1) + "%" } ?? "-" }
            out.append("")
            out += Output.table(["condition", "accuracy", "exact match", "loss", "rows"],
                                [("soft prompt", e.soft), ("projection", e.projected), ("no prompt", e.noPrompt)].map {
                                    [$0.0, pct($0.1.accuracy), pct($0.1.exactMatch), Output.fixed($0.1.meanLoss, 4), "\($0.1.examples)"]
                                }, rightAligned: [1, 2, 3, 4]).split(separator: "\n").map(String.init)
            if let kept = e.retainedByProjection {
                out.append("The projection keeps \(Output.fixed(kept * 100, 1))% of the soft prompt's gain over no prompt.")
            } else {
                out.append("The soft prompt does not beat no prompt on these rows.")
            }
        } else {
            out.append("(not scored: no data)")
        }
        out += wrap("Caveat: " + PromptExplanation.waywardnessCaveat)

        if let e = x.evaluation {
            out.append("")
            let metric = e.soft.accuracy != nil ? "accuracy" : e.soft.exactMatch != nil ? "exact match" : "-loss"
            out.append("3. Ablation: drop of \(metric) and rise of loss with each token removed or replaced by the mean row")
            let primary = e.primaryAblation, other: AblationKind = primary == .remove ? .mean : .remove
            let means = Dictionary(uniqueKeysWithValues: e.ablations.filter { $0.kind == other }.map { ($0.token, $0) })
            let signed = { (v: Double, d: Int) in (v > 0 ? "+" : "") + Output.fixed(v, d) }
            let rows = e.ranking(primary).enumerated().map { rank, a in
                [String(rank + 1), String(a.token), signed(a.metricDrop, 3), signed(a.lossIncrease, 4),
                 means[a.token].map { signed($0.metricDrop, 3) } ?? "-", means[a.token].map { signed($0.lossIncrease, 4) } ?? "-"]
            }
            out.append("")
            out += Output.table(["rank", "token", "\(primary.rawValue): drop", "loss +", "\(other.rawValue): drop", "loss +"], rows,
                                rightAligned: [0, 1, 2, 3, 4, 5]).split(separator: "\n").map(String.init)
            let topOther = e.ranking(other).prefix(5).map { String($0.token) }.joined(separator: ", ")
            out.append("Ranked by the \(primary.rawValue) drop (then loss)."
                       + (topOther.isEmpty ? " (--ablation both also runs \(other.rawValue).)" : " By the \(other.rawValue) drop: \(topOther), ..."))
        }

        out.append("")
        if let b = x.bank {
            out.append("4. Bank similarity (\(b.names.count) prompts): cosine of flattened prompts / of mean rows")
            let names = b.names.map { clip($0, 16) }
            let show = min(b.names.count, 6)
            let cells = (0 ..< b.names.count).map { i in
                [names[i]] + (0 ..< show).map { j in
                    (b.flattened[i][j].map { Output.fixed($0, 2) } ?? "n/a") + " / " + (b.mean[i][j].map { Output.fixed($0, 2) } ?? "n/a")
                }
            }
            out += Output.table(["prompt"] + (0 ..< show).map { names[$0] }, cells, rightAligned: Set(1 ... show))
                .split(separator: "\n").map { clip(String($0)) }
            if show < b.names.count { out.append("(first \(show) columns; all in --json / --html)") }
        } else {
            out.append("4. Bank similarity: the file holds one prompt; nothing to compare.")
        }
        out.append("")
        out.append("(\(Output.fixed(seconds, 1)) s)")
        return out.joined(separator: "\n")
    }

    /// `s` cut to `width` characters.
    private func clip(_ s: String, _ width: Int = 100) -> String {
        s.count <= width ? s : String(s.prefix(width - 1)) + "…"
    }

    /// Words of `text` on lines of at most `width` characters.
    private func wrap(_ text: String, _ width: Int = 100) -> [String] {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            if !line.isEmpty && line.count + 1 + word.count > width {
                lines.append(line)
                line = ""
            }
            line += (line.isEmpty ? "" : " ") + word
        }
        if !line.isEmpty { lines.append(line) }
        // A single word longer than the width is cut into pieces.
        var out: [String] = []
        for l in lines {
            var rest = Substring(l)
            while rest.count > width {
                out.append(String(rest.prefix(width)))
                rest = rest.dropFirst(width)
            }
            out.append(String(rest))
        }
        return out
    }
}
