import ArgumentParser
import GGUF
import Llama
import TensorIO

/// `softprompt generate`: run a model on a prompt and stream its continuation.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a model, optionally after raw input embeddings (a soft prompt).")

    @Option(name: [.short, .customLong("model")], help: "The model (default: $SOFTPROMPT_MODEL or the default model).")
    var model: String?

    @Option(name: .customLong("ids"), help: "Token ids instead of text (comma-separated).")
    var ids: String?

    @Option(name: .customShort("n"), help: "Tokens to generate.")
    var count = 32

    @Option(name: [.short, .customLong("threads")], help: "Threads.")
    var threads = 1

    @Flag(help: "Compute with float32 activations (the exact path) instead of llama.cpp-style int8 activations.")
    var exact = false

    @Option(help: "Write the logits of every prompt position to this .npy (float32, [positions, vocab]).")
    var logitsOut: String?

    @Option(help: "Prepend raw input embeddings from this .npy (float32, [n, width]) before the text.")
    var embeddings: String?

    func run() throws {
        let path = try ModelLocator.resolve(model)
        do {
            let gguf = try GGUFFile(path: path)
            let llama = try LlamaModel(gguf: gguf)
            let session = try InferenceSession(model: llama, threads: threads, precision: exact ? .exact : .int8)
            let prompt = (ids ?? "").split(separator: ",").compactMap { Int32($0.trimmingPrefix(" ")) }
            var inputs: [ModelInput] = []
            var virtual = 0
            if let embeddings {
                let array = try NPY.read(path: embeddings)
                guard array.shape.count == 2, array.shape[1] == llama.config.hiddenSize, let values = array.floats() else {
                    throw CLIError("\(embeddings): expected a float [n, \(llama.config.hiddenSize)] array, found \(array.dtype.rawValue) \(array.shape)")
                }
                virtual = array.shape[0]
                inputs.append(.embeddings(values))
            }
            inputs.append(.tokens(prompt))
            let rows = virtual + prompt.count
            let start = Output.now()
            var logits = try session.forward(inputs, logits: logitsOut != nil ? .all : .last)
            let prefill = Output.now() - start
            let V = llama.config.vocabSize
            if let logitsOut {
                try NPY.write(path: logitsOut, shape: [rows, V], values: logits)
                logits = Array(logits[(rows - 1) * V ..< rows * V])
            }
            var generated: [Int32] = []
            let genStart = Output.now()
            for i in 0 ..< count {
                var best = 0
                for v in 1 ..< V where logits[v] > logits[best] { best = v }
                generated.append(Int32(best))
                print(best, terminator: i == count - 1 ? "\n" : " ")
                if i + 1 < count { logits = try session.forward([.tokens([Int32(best)])], logits: .last) }
            }
            let gen = Output.now() - genStart
            Output.error("prefill: \(rows) tokens in \(Output.fixed(prefill, 3)) s (\(Output.fixed(Double(rows) / prefill, 1)) tok/s); "
                         + "generation: \(count) tokens in \(Output.fixed(gen, 3)) s (\(Output.fixed(Double(max(0, count - 1)) / max(gen, 1e-9), 1)) tok/s)")
        } catch let error as ModelError {
            throw CLIError(error.description)
        } catch let error as GGUFError {
            throw CLIError(error.description)
        }
    }
}
