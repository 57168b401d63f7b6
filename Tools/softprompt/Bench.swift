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
            --n-prompt tokens in one batch (pp512), generation of --n-gen tokens one at a time (tg128), and time to \
            first token (prefill of the prompt plus one decode step), for each thread count (-t N, or the sweep \
            --threads-list; default 1,2).
              open       time to open and index a GGUF file (mmap, header, metadata, tensor table; \
            no tensor data read). Warm the page cache first for a fair figure.
              train      the soft-prompt training pass (PromptGradient.computeBatch): --batch examples of \
            --tokens soft-prompt rows then --row-tokens token rows (targets on the last one or two rows), \
            --steps timed steps per thread count, for the shared-prompt pass and the naive per-example loop. \
            Reports positions/s (every processed position, soft-prompt rows included), ms/step, process CPU ms/step, peak RSS \
            (getrusage; the fast path runs first, so its figure is its own) and the agreement of the two.
              prefix     the soft-prompt prefix cache: time to first token (prefill + argmax of the first token) \
            of --input-tokens random tokens after a soft prompt of each --prefix-lengths length (embeddings of random \
            tokens), without the cache (prompt rows + tokens in one prefill) and with it (load the prompt's cached \
            keys and values, prefill the tokens), --runs repetitions interleaved (alternating order); medians, their \
            ratio, the prompt's share of the prefill positions, the time saved beside the prompt rows' own prefill (what \
            the cache removes), the copy of the cached keys and values, and the cache's counters.
            """)

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case inference, open, train, prefix
    }

    @OptionGroup var modelOption: ModelOption

    @Option(help: "Which measurement (described above).")
    var suite: Suite = .inference

    @Option(help: "Repetitions (inference: mean and standard deviation; open: median).")
    var runs: Int?

    @Option(name: [.short, .customLong("threads")], help: ArgumentHelp("Threads: one count (default: the --threads-list sweep).", valueName: "threads"))
    var threads: String?

    @Option(help: ArgumentHelp("Thread counts to sweep, comma-separated.", valueName: "n,n,…"))
    var threadsList = "1,2"

    @Flag(help: "Benchmark the int8 path (llama.cpp-style 8-bit activations) instead of the exact float32 path.")
    var int8 = false

    @Option(name: .customLong("n-prompt"), help: "Prompt-processing batch length, in tokens (inference; llama-bench's -p).")
    var promptTokens = 512

    @Option(name: .customLong("n-gen"), help: "Tokens generated one at a time (inference; llama-bench's -n).")
    var genTokens = 128

    @Option(name: [.customShort("p"), .customLong("prompt")], help: .hidden)
    var legacyPromptTokens: Int?

    @Option(name: [.customShort("g"), .customLong("gen")], help: .hidden)
    var legacyGenTokens: Int?

    @Option(help: "Examples per training batch (train).")
    var batch = 8

    @Option(name: .customLong("tokens"), help: "Soft-prompt rows, as train's --tokens (train).")
    var softPromptTokens = 20

    @Option(name: .customLong("prompt-tokens"), help: .hidden)
    var legacySoftPromptTokens: Int?

    @Option(help: "Token rows per example after the soft prompt (train).")
    var rowTokens = 10

    @Option(help: "Timed training steps per path and thread count (train).")
    var steps = 5

    @Flag(help: "Time only the shared-prompt pass, not the naive loop (train; for profiling).")
    var sharedOnly = false

    @Option(help: "Soft-prompt lengths, comma-separated (prefix).")
    var prefixLengths = "20,100"

    @Option(help: "Input tokens after the soft prompt (prefix).")
    var inputTokens = 12

    @OptionGroup var output: JSONOption

    var json: Bool { output.json }

    mutating func validate() throws {
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
        if let legacy = legacyPromptTokens { Deprecation.note("bench -p/--prompt N", use: "--n-prompt N"); promptTokens = legacy }
        if let legacy = legacyGenTokens { Deprecation.note("bench -g/--gen N", use: "--n-gen N"); genTokens = legacy }
        if let legacy = legacySoftPromptTokens { Deprecation.note("bench --prompt-tokens N", use: "--tokens N"); softPromptTokens = legacy }
        if let threads {
            if threads.contains(",") {
                Deprecation.note("bench -t/--threads N,N (a list)", use: "--threads-list N,N")
                threadsList = threads
            } else {
                guard let count = Int(threads), count >= 1 else { throw ValidationError("--threads takes one positive integer (--threads-list sweeps several)") }
                threadsList = String(count)
            }
        }
        let counts = threadsList.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        if counts.isEmpty || counts.contains(where: { ($0 ?? 0) < 1 }) {
            throw ValidationError("--threads-list takes positive integers separated by commas, e.g. 1,2")
        }
        if promptTokens < 1 || genTokens < 1 { throw ValidationError("--n-prompt and --n-gen must be positive") }
        if batch < 1 || softPromptTokens < 0 || rowTokens < 2 || steps < 1 {
            throw ValidationError("--batch and --steps must be positive, --tokens non-negative, --row-tokens at least 2")
        }
    }

    private var threadCounts: [Int] { threadsList.split(separator: ",").compactMap { Int($0) } }

    func run() throws {
        let path = try ModelLocator.resolve(modelOption.model)
        switch suite {
        case .open: try benchOpen(path, runs: runs ?? 21)
        case .inference: try benchInference(path, runs: runs ?? 3)
        case .train: try benchTrain(path)
        case .prefix: try benchPrefix(path, runs: runs ?? 21)
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

    private func benchPrefix(_ path: String, runs: Int) throws {
        let model: LlamaModel
        do { model = try LlamaModel(gguf: try GGUFFile(path: path)) } catch { throw CLIError("\(error)") }
        let V = model.config.vocabSize
        let lengths = prefixLengths.split(separator: ",").compactMap { Int($0) }
        guard !lengths.isEmpty, lengths.allSatisfy({ $0 > 0 }), inputTokens > 0 else {
            throw CLIError("--prefix-lengths takes positive integers separated by commas; --input-tokens must be positive")
        }
        var state: UInt64 = 0x5DEE_CE66_D1CE_4E5B
        func nextToken() -> Int32 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int32(truncatingIfNeeded: (state >> 33) % UInt64(V))
        }
        func argmax(_ logits: [Float]) -> Int {
            var best = 0
            for v in 1 ..< V where logits[v] > logits[best] { best = v }
            return best
        }
        func median(_ xs: [Double]) -> Double {
            let s = xs.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        let input = (0 ..< inputTokens).map { _ in nextToken() }
        let precision: MatmulPrecision = int8 ? .int8 : .exact
        let cache = PrefixCache(budget: 1 << 30)
        var rows: [JSONObject] = []
        for t in threadCounts {
            for P in lengths {
                // A soft prompt at the embedding scale: the embeddings of random tokens (the usual initialisation).
                let prompt = try model.embed((0 ..< P).map { _ in nextToken() })
                var digest = SHA256()
                for v in prompt { digest.update(littleEndian: v.bitPattern) }
                let key = PrefixCache.Key(task: "bench-\(P)-t\(t)", vectorsSHA256: SHA256.hex(digest.finalize()))
                let session = try InferenceSession(model: model, capacity: P + inputTokens, threads: t, precision: precision)
                // The miss: the prompt's keys and values computed once (what the first request of a task pays).
                let computeStart = Output.now()
                let prefixBytes = try cache.prefix(for: key) { () throws(ModelError) in
                    try PrefixKV.compute(model: model, embeddings: prompt, threads: t, precision: precision)
                }.byteCount
                let computeSeconds = Output.now() - computeStart
                var without: [Double] = [], with: [Double] = [], load: [Double] = [], promptOnly: [Double] = []
                var maxDiff: Float = 0
                var agree = true
                func uncached() throws -> [Float] {
                    session.reset()
                    let start = Output.now()
                    let logits = try session.forward([.embeddings(prompt), .tokens(input)], logits: .last)
                    _ = argmax(logits)
                    without.append(Output.now() - start)
                    return logits
                }
                // What the cache saves: the prompt rows' own prefill (no logits).
                func promptPrefill() throws {
                    session.reset()
                    let start = Output.now()
                    _ = try session.forward([.embeddings(prompt)], logits: .none)
                    promptOnly.append(Output.now() - start)
                }
                func cached() throws -> [Float] {
                    let start = Output.now()
                    guard let prefix = cache.lookup(key) else { throw CLIError("the prefix was evicted") }
                    try session.load(prefix: prefix)
                    load.append(Output.now() - start)
                    let logits = try session.forward([.tokens(input)], logits: .last)
                    _ = argmax(logits)
                    with.append(Output.now() - start)
                    return logits
                }
                // One warm-up pair (not kept), then `runs` pairs in alternating order.
                _ = try uncached(); _ = try cached(); try promptPrefill()
                without.removeAll(); with.removeAll(); load.removeAll(); promptOnly.removeAll()
                for r in 0 ..< runs {
                    let a: [Float], b: [Float]
                    if r % 2 == 0 {
                        a = try uncached(); b = try cached()
                    } else {
                        b = try cached(); a = try uncached()
                    }
                    try promptPrefill()
                    maxDiff = max(maxDiff, a.indices.reduce(Float(0)) { max($0, abs(a[$1] - b[$1])) })
                    if argmax(a) != argmax(b) { agree = false }
                }
                let w = median(without), c = median(with)
                rows.append([
                    "threads": .int(Int64(t)), "prompt_tokens": .int(Int64(P)), "input_tokens": .int(Int64(inputTokens)),
                    "ttft_without_ms": .double(w * 1000), "ttft_with_ms": .double(c * 1000),
                    "ratio": .double(c / w), "saving": .double(1 - c / w),
                    "prompt_share": .double(Double(P) / Double(P + inputTokens)),
                    "saved_ms": .double((w - c) * 1000), "prompt_prefill_ms": .double(median(promptOnly) * 1000),
                    "load_ms": .double(median(load) * 1000), "prefix_compute_ms": .double(computeSeconds * 1000),
                    "prefix_bytes": .int(Int64(prefixBytes)),
                    "logits_max_abs_diff": .double(Double(maxDiff)), "same_argmax": .bool(agree),
                ])
            }
        }
        let stats = cache.statistics
        let counters: JSONObject = ["hits": .int(Int64(stats.hits)), "misses": .int(Int64(stats.misses)),
                                    "evictions": .int(Int64(stats.evictions)), "entries": .int(Int64(stats.entries)),
                                    "bytes": .int(Int64(stats.bytes))]
        if json {
            let report: JSONValue = [
                "suite": "prefix", "model": .string(path), "precision": int8 ? "int8" : "exact", "runs": .int(Int64(runs)),
                "results": .array(rows.map { .object($0) }), "cache": .object(counters),
            ]
            print(try JSON.serialize(report, pretty: true))
        } else {
            print("model: \(path) (\(int8 ? "int8" : "exact float32") activations); \(inputTokens) input tokens; "
                  + "medians of \(runs) interleaved runs")
            print(Output.table(["threads", "prompt", "without (ms)", "with (ms)", "with/without", "saving", "prompt share",
                                "saved (ms)", "prompt prefill (ms)", "load (ms)", "max |dlogit|"], rows.map { r in
                [String(r["threads"]!.intValue!), String(r["prompt_tokens"]!.intValue!),
                 Output.fixed(r["ttft_without_ms"]!.doubleValue!, 2), Output.fixed(r["ttft_with_ms"]!.doubleValue!, 2),
                 Output.fixed(r["ratio"]!.doubleValue!, 3), Output.fixed(r["saving"]!.doubleValue! * 100, 1) + " %",
                 Output.fixed(r["prompt_share"]!.doubleValue! * 100, 1) + " %", Output.fixed(r["saved_ms"]!.doubleValue!, 2),
                 Output.fixed(r["prompt_prefill_ms"]!.doubleValue!, 2), Output.fixed(r["load_ms"]!.doubleValue!, 3),
                 "\(r["logits_max_abs_diff"]!.doubleValue!)"]
            }, rightAligned: Set(0 ..< 11)))
            print("cache: \(stats.hits) hits, \(stats.misses) misses, \(stats.evictions) evictions, \(stats.entries) entries, "
                  + Output.bytes(stats.bytes))
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
