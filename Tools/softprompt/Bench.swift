import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import GGUF
import Llama
import TensorIO

/// `softprompt bench`: speed measurements (never timed unit tests).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed on a model.",
        discussion: """
            Suites:
              inference  (default) in the manner of llama.cpp's llama-bench: prompt processing of \
            --prompt tokens in one batch (pp512), generation of --gen tokens one at a time (tg128), and time to \
            first token (prefill of the prompt plus one decode step), for each thread count in --threads.
              open       time to open and index a GGUF file (mmap, header, metadata, tensor table; \
            no tensor data read). Warm the page cache first for a fair figure.
              train      the soft-prompt training pass (PromptGradient.computeBatch): --batch examples of \
            --prompt-tokens soft-prompt rows then --row-tokens token rows (targets on the last one or two rows), \
            --steps timed steps per thread count, for the shared-prompt pass and the naive per-example loop. \
            Reports positions/s (every processed position, soft-prompt rows included), ms/step, process CPU ms/step, peak RSS \
            (getrusage; the fast path runs first, so its figure is its own) and the agreement of the two.
            """)

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case inference, open, train
    }

    @Option(name: [.short, .customLong("model")], help: "The model (default: $SOFTPROMPT_MODEL or the default model).")
    var model: String?

    @Option(help: "Which measurement: \(Suite.allCases.map(\.rawValue).joined(separator: ", ")).")
    var suite: Suite = .inference

    @Option(help: "Repetitions (inference: mean and standard deviation; open: median).")
    var runs: Int?

    @Option(name: [.short, .customLong("threads")], help: "Comma-separated thread counts (inference).")
    var threads = "1,2"

    @Flag(help: "Benchmark the int8 path (llama.cpp-style 8-bit activations) instead of the exact float32 path.")
    var int8 = false

    @Option(name: [.short, .customLong("prompt")], help: "Prompt-processing batch length (inference).")
    var promptTokens = 512

    @Option(name: [.short, .customLong("gen")], help: "Tokens generated one at a time (inference).")
    var genTokens = 128

    @Option(help: "Examples per training batch (train).")
    var batch = 8

    @Option(name: .customLong("prompt-tokens"), help: "Soft-prompt rows (train).")
    var softPromptTokens = 20

    @Option(help: "Token rows per example after the soft prompt (train).")
    var rowTokens = 10

    @Option(help: "Timed training steps per path and thread count (train).")
    var steps = 5

    @Flag(help: "Time only the shared-prompt pass, not the naive loop (train; for profiling).")
    var sharedOnly = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
        if threadCounts.isEmpty || threadCounts.contains(where: { $0 < 1 }) {
            throw ValidationError("--threads takes positive integers separated by commas, e.g. 1,2")
        }
        if promptTokens < 1 || genTokens < 1 { throw ValidationError("--prompt and --gen must be positive") }
        if batch < 1 || softPromptTokens < 0 || rowTokens < 2 || steps < 1 {
            throw ValidationError("--batch and --steps must be positive, --prompt-tokens non-negative, --row-tokens at least 2")
        }
    }

    private var threadCounts: [Int] { threads.split(separator: ",").compactMap { Int($0) } }

    func run() throws {
        let path = try ModelLocator.resolve(model)
        switch suite {
        case .open: try benchOpen(path, runs: runs ?? 21)
        case .inference: try benchInference(path, runs: runs ?? 3)
        case .train: try benchTrain(path)
        }
    }

    private func benchInference(_ path: String, runs: Int) throws {
        let model: LlamaModel
        do { model = try LlamaModel(gguf: try GGUFFile(path: path)) } catch { throw CLIError("\(error)") }
        let V = model.config.vocabSize
        // Deterministic pseudo-random token ids (llama-bench also feeds arbitrary tokens).
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func nextToken() -> Int32 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32(truncatingIfNeeded: (state >> 33) % UInt64(V))
        }
        let prompt = (0 ..< promptTokens).map { _ in nextToken() }
        var rows: [[String: Double]] = []
        for t in threadCounts {
            let session = try InferenceSession(model: model, capacity: max(promptTokens, genTokens) + 1, threads: t,
                                               precision: int8 ? .int8 : .exact)
            // Warm-up (page cache, lazy allocations), as llama-bench does.
            _ = try session.forward([.tokens(Array(prompt.prefix(16)))], logits: .last)
            session.reset()
            var pp: [Double] = [], tg: [Double] = [], ttft: [Double] = []
            for _ in 0 ..< runs {
                session.reset()
                let start = Output.now()
                let logits = try session.forward([.tokens(prompt)], logits: .last)
                let prefill = Output.now() - start
                pp.append(Double(promptTokens) / prefill)
                var best = 0
                for v in 1 ..< V where logits[v] > logits[best] { best = v }
                _ = try session.forward([.tokens([Int32(best)])], logits: .last)
                ttft.append(Output.now() - start)
                session.reset()
                let genStart = Output.now()
                var token = nextToken()
                for _ in 0 ..< genTokens {
                    let out = try session.forward([.tokens([token])], logits: .last)
                    var b = 0
                    for v in 1 ..< V where out[v] > out[b] { b = v }
                    token = Int32(b)
                }
                tg.append(Double(genTokens) / (Output.now() - genStart))
            }
            rows.append(["threads": Double(t), "pp": mean(pp), "pp_sd": sd(pp), "tg": mean(tg), "tg_sd": sd(tg),
                         "ttft_ms": mean(ttft) * 1000, "ttft_sd": sd(ttft) * 1000])
        }
        if json {
            let report: JSONValue = [
                "suite": "inference", "model": .string(path), "precision": int8 ? "int8" : "exact", "runs": .int(Int64(runs)),
                "prompt_tokens": .int(Int64(promptTokens)), "gen_tokens": .int(Int64(genTokens)),
                "results": .array(rows.map { r in
                    .object(JSONObject(r.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.double($0.value)) }))
                }),
            ]
            print(try JSON.serialize(report, pretty: true))
        } else {
            print("model: \(path) (\(int8 ? "int8" : "exact float32") activations)")
            let table = rows.map { r in
                [String(Int(r["threads"]!)),
                 "pp\(promptTokens)", Output.fixed(r["pp"]!, 2) + " ± " + Output.fixed(r["pp_sd"]!, 2),
                 "tg\(genTokens)", Output.fixed(r["tg"]!, 2) + " ± " + Output.fixed(r["tg_sd"]!, 2),
                 Output.fixed(r["ttft_ms"]!, 1) + " ± " + Output.fixed(r["ttft_sd"]!, 1)]
            }
            print(Output.table(["threads", "test", "t/s", "test", "t/s", "ttft (ms)"], table, rightAligned: [2, 4, 5]))
        }
    }

    private func benchTrain(_ path: String) throws {
        let model: LlamaModel
        do { model = try LlamaModel(gguf: try GGUFFile(path: path)) } catch { throw CLIError("\(error)") }
        let V = model.config.vocabSize, P = softPromptTokens
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func nextToken() -> Int32 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32(truncatingIfNeeded: (state >> 33) % UInt64(V))
        }
        // The soft prompt starts as the embeddings of random tokens (their usual initialisation); each
        // example has one or two targets on its last rows, so every example processes P + rowTokens rows.
        let prompt = try model.embed((0 ..< P).map { _ in nextToken() })
        let examples = (0 ..< batch).map { i -> PromptExample in
            let tokens = (0 ..< rowTokens).map { _ in nextToken() }
            var targets = [TokenTarget(row: P + rowTokens - 1, token: nextToken())]
            if i % 2 == 1 { targets.insert(TokenTarget(row: P + rowTokens - 2, token: tokens[rowTokens - 1]), at: 0) }
            return PromptExample(tokens: tokens, targets: targets)
        }
        struct Row { var path: String; var threads: Int; var positionsPerSecond: Double; var msPerStep: Double; var cpuMsPerStep: Double; var rssMiB: Double }
        var rows: [Row] = []
        var reference: [Int: BatchLossGradient] = [:]
        var agreement: [(threads: Int, lossRel: Double, cosine: Double, maxRel: Double)] = []
        for naive in sharedOnly ? [false] : [false, true] {
            for t in threadCounts {
                let pass = PromptGradient(model: model, maxRows: P + rowTokens, threads: t)
                func step() throws -> BatchLossGradient {
                    naive ? try pass.computeBatchNaive(prompt: prompt, examples: examples)
                          : try pass.computeBatch(prompt: prompt, examples: examples)
                }
                let first = try step()  // warm-up (page cache, arena)
                let start = Output.now(), cpuStart = Self.cpuSeconds()
                var positions = 0
                for _ in 0 ..< steps { positions += try step().positionsProcessed }
                let elapsed = Output.now() - start, cpu = Self.cpuSeconds() - cpuStart
                rows.append(Row(path: naive ? "naive" : "shared", threads: t, positionsPerSecond: Double(positions) / elapsed,
                                msPerStep: elapsed / Double(steps) * 1000, cpuMsPerStep: cpu / Double(steps) * 1000,
                                rssMiB: Self.peakRSSMiB()))
                if !naive {
                    reference[t] = first
                } else if let fast = reference[t] {
                    var dot = 0.0, na = 0.0, nb = 0.0, worst = 0.0, scale = 0.0
                    for i in fast.gradient.indices {
                        let a = Double(fast.gradient[i]), b = Double(first.gradient[i])
                        dot += a * b; na += a * a; nb += b * b
                        worst = max(worst, abs(a - b)); scale = max(scale, abs(b))
                    }
                    agreement.append((t, abs(fast.loss - first.loss) / abs(first.loss), dot / (na * nb).squareRoot(),
                                      worst / max(scale, .leastNormalMagnitude)))
                }
            }
        }
        if json {
            let report: JSONValue = [
                "suite": "train", "model": .string(path), "batch": .int(Int64(batch)), "prompt_tokens": .int(Int64(P)),
                "row_tokens": .int(Int64(rowTokens)), "steps": .int(Int64(steps)),
                "results": .array(rows.map { r in
                    ["path": .string(r.path), "threads": .int(Int64(r.threads)), "positions_per_s": .double(r.positionsPerSecond),
                     "ms_per_step": .double(r.msPerStep), "cpu_ms_per_step": .double(r.cpuMsPerStep),
                     "peak_rss_mib": .double(r.rssMiB)]
                }),
                "agreement": .array(agreement.map { a in
                    ["threads": .int(Int64(a.threads)), "loss_rel_diff": .double(a.lossRel), "gradient_cosine": .double(a.cosine),
                     "gradient_max_rel_diff": .double(a.maxRel)]
                }),
            ]
            print(try JSON.serialize(report, pretty: true))
        } else {
            print("model: \(path); batch \(batch) × (\(P) soft-prompt + \(rowTokens) token rows), \(steps) steps")
            print(Output.table(["path", "threads", "positions/s", "ms/step", "CPU ms/step", "peak RSS (MiB)"], rows.map { r in
                [r.path, String(r.threads), Output.fixed(r.positionsPerSecond, 1), Output.fixed(r.msPerStep, 1),
                 Output.fixed(r.cpuMsPerStep, 1), Output.fixed(r.rssMiB, 1)]
            }, rightAligned: [1, 2, 3, 4, 5]))
            for a in agreement {
                print("shared vs naive (\(a.threads) threads): loss rel diff \(a.lossRel), gradient cosine \(a.cosine), "
                      + "max |diff| / max |naive| \(a.maxRel)")
            }
        }
    }

    /// User + system CPU time of the process so far (all threads), in seconds.
    private static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
    }

    /// Peak resident set size of the process so far (getrusage; Linux reports KiB).
    private static func peakRSSMiB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    private func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(1, xs.count)) }

    private func sd(_ xs: [Double]) -> Double {
        guard xs.count > 1 else { return 0 }
        let m = mean(xs)
        return (xs.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(xs.count - 1)).squareRoot()
    }

    private func benchOpen(_ path: String, runs: Int) throws {
        var times: [Double] = []
        var tensors = 0
        var keys = 0
        for _ in 0 ..< runs {
            let start = Output.now()
            let file: GGUFFile
            do { file = try GGUFFile(path: path) } catch { throw CLIError(error.description) }
            times.append(Output.now() - start)
            tensors = file.tensors.count
            keys = file.metadata.count
        }
        times.sort()
        let median = times[times.count / 2] * 1000
        if json {
            let report: JSONValue = [
                "suite": "open", "model": .string(path), "runs": .int(Int64(runs)),
                "median_ms": .double(median), "min_ms": .double(times[0] * 1000),
                "max_ms": .double(times[times.count - 1] * 1000),
                "tensors": .int(Int64(tensors)), "metadata_keys": .int(Int64(keys)),
            ]
            print(try JSON.serialize(report, pretty: true))
        } else {
            print("open+index \(path): median \(Output.fixed(median, 3)) ms over \(runs) runs "
                  + "(min \(Output.fixed(times[0] * 1000, 3)), max \(Output.fixed(times[times.count - 1] * 1000, 3))); "
                  + "\(tensors) tensors, \(keys) metadata keys")
        }
    }
}
