import TensorIO
import Llama

// Renderings of a `PromptExplanation`: JSON (TensorIO's JSONValue) and a self-contained HTML page (inline
// CSS and SVG, no script, no external reference).

extension PromptExplanation {
    /// Why a projection's metric says little about the prompt; printed with every projection result.
    public static let waywardnessCaveat = """
        Nearest-token projections are a weak explanation: Khashabi et al. (2022, "Prompt Waywardness") \
        found that a soft prompt can solve a task while its nearest tokens read as arbitrary or even \
        contradictory text, and that the projection often loses much of the prompt's behaviour. Read the \
        projected text as a hint, not as what the prompt means.
        """

    /// The explanation as a JSON object (numbers as computed; token texts as decoded).
    public func json() -> JSONObject {
        func result(_ r: EvaluationResult) -> JSONValue {
            var o: JSONObject = ["rows": .int(Int64(r.examples)), "loss": .double(r.meanLoss),
                                 "perplexity": .double(r.perplexity), "seconds": .double(r.seconds)]
            if let a = r.accuracy { o["accuracy"] = .double(a) }
            if let e = r.exactMatch { o["exact_match"] = .double(e) }
            return .object(o)
        }
        let vn = vocabularyNorms
        var o: JSONObject = [
            "tokens": .int(Int64(tokens)), "width": .int(Int64(width)),
            "vocabulary_norms": .object([
                "candidates": .int(Int64(vn.candidates)), "excluded_ids": .array(vn.excluded.map { .int(Int64($0)) }),
                "min": .double(vn.minimum), "p50": .double(vn.median), "p99": .double(vn.p99),
                "p999": .double(vn.p999), "max": .double(vn.maximum), "mean": .double(vn.mean),
            ]),
            "virtual_tokens": .array((0 ..< tokens).map { t in
                .object([
                    "index": .int(Int64(t)), "norm": .double(norms[t]), "norm_percentile": .double(normPercentiles[t]),
                    "neighbours": .array(neighbours[t].map {
                        .object(["id": .int(Int64($0.id)), "text": .string($0.text), "cosine": .double($0.cosine)])
                    }),
                ])
            }),
            "token_similarity": .array(tokenSimilarity.map { .array($0.map { .double($0) }) }),
            "projection": .object([
                "ids": .array(projection.ids.map { .int(Int64($0)) }),
                "cosines": .array(projection.cosines.map { .double($0) }),
                "text": .string(projection.text),
            ]),
        ]
        if let e = evaluation {
            var ev: JSONObject = [
                "soft": result(e.soft), "projection": result(e.projected), "no_prompt": result(e.noPrompt),
                "retained_by_projection": e.retainedByProjection.map { .double($0) } ?? .null,
                "caveat": .string(Self.waywardnessCaveat),
                "ablations": .array(e.ablations.map { a in
                    var r = result(a.result).objectValue ?? [:]
                    r["token"] = .int(Int64(a.token))
                    r["kind"] = .string(a.kind.rawValue)
                    r["metric_drop"] = .double(a.metricDrop)
                    r["loss_increase"] = .double(a.lossIncrease)
                    return .object(r)
                }),
            ]
            var ranking: JSONObject = [:]
            for kind in AblationKind.allCases {
                ranking[kind.rawValue] = .array(e.ranking(kind).map { .int(Int64($0.token)) })
            }
            ev["ranking"] = .object(ranking)
            o["evaluation"] = .object(ev)
        } else {
            o["evaluation"] = .null
        }
        if let b = bank {
            func matrix(_ m: [[Double?]]) -> JSONValue { .array(m.map { .array($0.map { $0.map { .double($0) } ?? .null }) }) }
            o["bank"] = .object(["names": .array(b.names.map { .string($0) }),
                                 "flattened_cosine": matrix(b.flattened), "mean_cosine": matrix(b.mean)])
        } else {
            o["bank"] = .null
        }
        return o
    }

    /// A self-contained HTML page: the virtual-token table, the token-similarity heat map, the neighbour
    /// heat map, the metric comparison with the waywardness caveat, the ablation bar charts and the bank
    /// similarity. Every text is escaped; the page references nothing outside itself.
    /// - Parameters:
    ///   - title: Shown as the page title and heading.
    ///   - facts: Label/value pairs shown under the heading (model, prompt, data...).
    ///   - notes: Sentences shown as notes (skipped sections and why).
    public func html(title: String, facts: [(String, String)] = [], notes: [String] = []) -> String {
        var h = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escapeHTML(title))</title>
            <style>
            body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
            h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #ddd}
            table{border-collapse:collapse;margin:8px 0}td,th{padding:2px 8px;border:1px solid #ddd;text-align:left;vertical-align:top}
            th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
            code{white-space:pre;background:#f6f6f6;padding:0 2px}
            .caveat{background:#fff8e0;border-left:4px solid #e0b000;padding:8px 12px}
            .note{color:#555}svg text{font:11px system-ui,sans-serif}
            </style></head><body>
            <h1>\(escapeHTML(title))</h1>

            """
        if !facts.isEmpty {
            h += "<table>" + facts.map { "<tr><th>\(escapeHTML($0.0))</th><td>\(escapeHTML($0.1))</td></tr>" }.joined() + "</table>\n"
        }
        for note in notes { h += "<p class=\"note\">\(escapeHTML(note))</p>\n" }

        // Virtual tokens.
        let vn = vocabularyNorms
        h += "<h2>Virtual tokens</h2>\n<p>\(tokens) virtual tokens of width \(width). Vocabulary embedding norms over "
            + "\(vn.candidates) candidate tokens (\(vn.excluded.count) control, unknown or unused tokens left out): "
            + "p50 \(fixed(vn.median, 3)), p99 \(fixed(vn.p99, 3)), p99.9 \(fixed(vn.p999, 3)), max \(fixed(vn.maximum, 3)).</p>\n"
        h += "<table><tr><th>#</th><th>norm</th><th>percentile</th><th>nearest tokens (cosine)</th></tr>\n"
        for t in 0 ..< tokens {
            let list = neighbours[t].map { "<code>\(escapeHTML(quotedToken($0.text)))</code> \(fixed($0.cosine, 3))" }
            h += "<tr><td class=\"n\">\(t)</td><td class=\"n\">\(fixed(norms[t], 3))</td><td class=\"n\">\(fixed(normPercentiles[t], 1))</td><td>"
                + list.joined(separator: ", ") + "</td></tr>\n"
        }
        h += "</table>\n"

        h += "<h2>Similarity between virtual tokens</h2>\n<p>Cosine similarity of each pair of virtual tokens "
            + "(red positive, blue negative).</p>\n" + heatMap(tokenSimilarity.map { $0.map { Optional($0) } },
                                                          labels: (0 ..< tokens).map { "\($0)" })
        h += "<h2>Nearest vocabulary tokens</h2>\n<p>Each virtual token's top \(neighbours.first?.count ?? 0) "
            + "neighbours, coloured by cosine.</p>\n<table><tr><th>#</th>"
            + (0 ..< (neighbours.first?.count ?? 0)).map { "<th>\($0 + 1)</th>" }.joined() + "</tr>\n"
        for t in 0 ..< tokens {
            h += "<tr><td class=\"n\">\(t)</td>" + neighbours[t].map {
                "<td style=\"background:\(color($0.cosine))\"><code>\(escapeHTML(quotedToken($0.text)))</code><br>\(fixed($0.cosine, 3))</td>"
            }.joined() + "</tr>\n"
        }
        h += "</table>\n"

        // Projection and metrics.
        h += "<h2>Hard-prompt projection</h2>\n<p>Each virtual token replaced by its nearest token: <code>"
            + escapeHTML(quotedToken(projection.text)) + "</code></p>\n"
        h += "<p class=\"caveat\">\(escapeHTML(Self.waywardnessCaveat))</p>\n"
        if let e = evaluation {
            func pct(_ x: Double?) -> String { x.map { fixed($0 * 100, 1) + "%" } ?? "–" }
            h += "<table><tr><th>condition</th><th>accuracy</th><th>exact match</th><th>loss</th><th>rows</th></tr>\n"
            for (name, r) in [("soft prompt", e.soft), ("projection", e.projected), ("no prompt", e.noPrompt)] {
                h += "<tr><td>\(name)</td><td class=\"n\">\(pct(r.accuracy))</td><td class=\"n\">\(pct(r.exactMatch))</td>"
                    + "<td class=\"n\">\(fixed(r.meanLoss, 4))</td><td class=\"n\">\(r.examples)</td></tr>\n"
            }
            h += "</table>\n"
            if let kept = e.retainedByProjection {
                h += "<p>The projection keeps \(fixed(kept * 100, 1))% of the soft prompt's gain over no prompt.</p>\n"
            }
            h += "<h2>Ablation</h2>\n<p>Each virtual token removed (<b>remove</b>) or replaced by the mean of the "
                + "prompt's rows (<b>mean</b>): the drop of the metric (left; \(metricName(e.soft))) and the rise of the "
                + "loss (right) against the full soft prompt. Longer bars to the right: the token matters more.</p>\n"
            h += ablationChart(e)
            let primary = e.primaryAblation, other: AblationKind = primary == .remove ? .mean : .remove
            h += "<table><tr><th>rank</th><th>token</th><th>\(primary.rawValue): drop</th><th>\(primary.rawValue): loss +</th>"
                + "<th>\(other.rawValue): drop</th><th>\(other.rawValue): loss +</th></tr>\n"
            let byToken = Dictionary(grouping: e.ablations, by: { $0.token })
            for (rank, a) in e.ranking(primary).enumerated() {
                let m = byToken[a.token]?.first { $0.kind == other }
                h += "<tr><td class=\"n\">\(rank + 1)</td><td class=\"n\">\(a.token)</td><td class=\"n\">\(fixed(a.metricDrop, 4))</td>"
                    + "<td class=\"n\">\(fixed(a.lossIncrease, 4))</td><td class=\"n\">\(m.map { fixed($0.metricDrop, 4) } ?? "–")</td>"
                    + "<td class=\"n\">\(m.map { fixed($0.lossIncrease, 4) } ?? "–")</td></tr>\n"
            }
            h += "</table>\n"
        } else {
            h += "<p class=\"note\">No data: the projection's metric and the ablations were not computed.</p>\n"
        }

        h += "<h2>Prompt bank similarity</h2>\n"
        if let b = bank {
            h += "<p>Cosine of the flattened prompts (n/a where shapes differ) and of their mean rows: the most "
                + "similar source prompt is a candidate to initialise a new task from (SPoT, Vu et al. 2022).</p>\n"
            h += "<h3>Flattened</h3>\n" + heatMap(b.flattened, labels: b.names)
            h += "<h3>Mean vectors</h3>\n" + heatMap(b.mean, labels: b.names)
        } else {
            h += "<p class=\"note\">The file holds one prompt: there is nothing to compare it with.</p>\n"
        }
        h += "<p class=\"note\">References: Lester, Al-Rfou and Constant 2021, The Power of Scale for "
            + "Parameter-Efficient Prompt Tuning (§7); Khashabi et al. 2022, Prompt Waywardness; Vu et al. 2022, "
            + "SPoT: Better Frozen Model Adaptation through Soft Prompt Transfer.</p>\n</body></html>\n"
        return h
    }

    private func metricName(_ r: EvaluationResult) -> String {
        r.accuracy != nil ? "accuracy" : r.exactMatch != nil ? "exact match" : "−loss"
    }

    /// A square heat map as an SVG of cells with hover titles; nil cells are grey and marked n/a.
    private func heatMap(_ m: [[Double?]], labels: [String]) -> String {
        let n = m.count
        guard n > 0 else { return "" }
        let cell = max(10, min(36, 640 / n))
        let labelWidth = min(160, 12 + 7 * (labels.map(\.count).max() ?? 1))
        let size = labelWidth + n * cell
        var s = "<svg width=\"\(size + 8)\" height=\"\(size + 8)\" role=\"img\">\n"
        // Column labels run along the top as numbers; row labels name the items.
        for i in 0 ..< n {
            let y = labelWidth + i * cell + cell / 2 + 4
            s += "<text x=\"\(labelWidth - 4)\" y=\"\(y)\" text-anchor=\"end\">\(escapeHTML(clip(labels[i], 20)))</text>\n"
            let x = labelWidth + i * cell + cell / 2
            s += "<text x=\"\(x)\" y=\"\(labelWidth - 4)\" text-anchor=\"middle\">\(n <= 40 || i % 5 == 0 ? "\(i)" : "")</text>\n"
        }
        for i in 0 ..< n {
            for j in 0 ..< n {
                let v = m[i][j]
                let fill = v.map(color) ?? "#ccc"
                let tip = "\(escapeHTML(clip(labels[i], 40))) × \(escapeHTML(clip(labels[j], 40))): " + (v.map { fixed($0, 4) } ?? "n/a")
                s += "<rect x=\"\(labelWidth + j * cell)\" y=\"\(labelWidth + i * cell)\" width=\"\(cell)\" height=\"\(cell)\" "
                    + "fill=\"\(fill)\"><title>\(tip)</title></rect>\n"
            }
        }
        return s + "</svg>\n"
    }

    /// Two horizontal bar charts side by side (metric drop, loss increase), one group of two bars per token.
    private func ablationChart(_ e: PromptEvaluation) -> String {
        let P = tokens
        let bar = 7, group = 2 * bar + 4, top = 24, panel = 380, gap = 60, label = 40
        let height = top + P * group + 10
        func panelSVG(x0: Int, title: String, value: (Ablation) -> Double) -> String {
            let values = e.ablations.map(value)
            let scale = max(values.map(abs).max() ?? 0, 1e-12)
            let zero = x0 + label + panel / 2
            var s = "<text x=\"\(x0 + label + panel / 2)\" y=\"14\" text-anchor=\"middle\">\(title)</text>\n"
            s += "<line x1=\"\(zero)\" y1=\"\(top - 4)\" x2=\"\(zero)\" y2=\"\(height - 6)\" stroke=\"#888\"/>\n"
            for a in e.ablations {
                let v = value(a)
                let w = Int((abs(v) / scale * Double(panel / 2 - 4)).rounded())
                let y = top + a.token * group + (a.kind == .remove ? 0 : bar)
                let x = v >= 0 ? zero : zero - w
                let fill = a.kind == .remove ? "#c0392b" : "#2e86c1"
                s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(max(w, v == 0 ? 0 : 1))\" height=\"\(bar - 1)\" fill=\"\(fill)\">"
                    + "<title>token \(a.token) \(a.kind.rawValue): \(fixed(v, 4))</title></rect>\n"
            }
            for t in 0 ..< P {
                s += "<text x=\"\(x0 + label - 4)\" y=\"\(top + t * group + bar + 3)\" text-anchor=\"end\">\(t)</text>\n"
            }
            return s
        }
        var s = "<svg width=\"\(2 * (label + panel) + gap)\" height=\"\(height + 20)\" role=\"img\">\n"
        s += panelSVG(x0: 0, title: "metric drop (\(metricName(e.soft)))", value: { $0.metricDrop })
        s += panelSVG(x0: label + panel + gap, title: "loss increase", value: { $0.lossIncrease })
        s += "<rect x=\"\(label)\" y=\"\(height + 6)\" width=\"10\" height=\"8\" fill=\"#c0392b\"/><text x=\"\(label + 14)\" y=\"\(height + 14)\">remove</text>\n"
        s += "<rect x=\"\(label + 80)\" y=\"\(height + 6)\" width=\"10\" height=\"8\" fill=\"#2e86c1\"/><text x=\"\(label + 94)\" y=\"\(height + 14)\">mean</text>\n"
        return s + "</svg>\n"
    }
}

/// A diverging colour for a cosine in [-1, 1]: white at 0, red towards 1, blue towards -1.
func color(_ v: Double) -> String {
    let x = max(-1, min(1, v.isFinite ? v : 0))
    let fade = Int((255 * (1 - abs(x))).rounded())
    return x >= 0 ? "rgb(255,\(fade),\(fade))" : "rgb(\(fade),\(fade),255)"
}

/// `s` cut to `n` characters with an ellipsis.
func clip(_ s: String, _ n: Int) -> String { s.count <= n ? s : String(s.prefix(n - 1)) + "…" }

/// Text made safe inside HTML elements and double- or single-quoted attributes.
public func escapeHTML(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for ch in s.unicodeScalars {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default:
            let v = ch.value
            // Controls (other than tab and newline) and noncharacters are not allowed in HTML text.
            if (v < 0x20 && v != 0x09 && v != 0x0A) || (0x7F ... 0x9F).contains(v) || (0xFDD0 ... 0xFDEF).contains(v)
                || v & 0xFFFE == 0xFFFE {
                out += "\u{FFFD}"
            } else {
                out.unicodeScalars.append(ch)
            }
        }
    }
    return out
}

/// A token's text in double quotes with invisible characters spelled out (`\n`, `\t`, `\u{1B}`, bidi
/// controls) so that leading spaces and control bytes show in reports.
public func quotedToken(_ s: String) -> String {
    var out = "\""
    for ch in s.unicodeScalars {
        let v = ch.value
        switch ch {
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        default:
            if v < 0x20 || (0x7F ... 0x9F).contains(v) || (0x200B ... 0x200F).contains(v) || (0x202A ... 0x202E).contains(v)
                || (0x2066 ... 0x2069).contains(v) || v == 0xFEFF {
                out += "\\u{" + String(v, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(ch)
            }
        }
    }
    return out + "\""
}

/// `value` with `digits` decimals.
func fixed(_ value: Double, _ digits: Int) -> String { decimalText(value, digits: digits) }
