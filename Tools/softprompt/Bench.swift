import ArgumentParser
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
            """)

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case inference, open
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

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if let runs, runs < 1 { throw ValidationError("--runs must be at least 1") }
        if threadCounts.isEmpty || threadCounts.contains(where: { $0 < 1 }) {
            throw ValidationError("--threads takes positive integers separated by commas, e.g. 1,2")
        }
        if promptTokens < 1 || genTokens < 1 { throw ValidationError("--prompt and --gen must be positive") }
    }

    private var threadCounts: [Int] { threads.split(separator: ",").compactMap { Int($0) } }

    func run() throws {
        let path = try ModelLocator.resolve(model)
        switch suite {
        case .open: try benchOpen(path, runs: runs ?? 21)
        case .inference: try benchInference(path, runs: runs ?? 3)
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
