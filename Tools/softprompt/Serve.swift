import ArgumentParser
import Dispatch
import GGUF
import ChatTemplates
import Llama
import Serving
import UnixSignals
import Synchronization
import Tokenizers

/// `softprompt serve`: an OpenAI-compatible HTTP server over a model and a prompt bank.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model and a prompt bank over an OpenAI-compatible HTTP API with continuous batching.",
        discussion: """
            Routes: POST /v1/completions, POST /v1/chat/completions (both with "stream": true for server-sent \
            events), GET /v1/models, GET /health, GET /metrics (Prometheus), POST /admin/reload (with \
            --admin-token). The request's "model" selects the task: BASE for the base model, BASE:TASK for a \
            bank prompt (BASE is the model file's name without .gguf, or --served-model-name). Requests in flight are decoded \
            together, one token each per step, whatever their tasks. The bank file is re-read when it changes \
            (checked every --watch seconds). SIGTERM stops accepting, lets requests finish for --grace seconds, \
            then cancels the rest. Binds to 127.0.0.1 unless --host says otherwise.
            """)

    @OptionGroup var modelOption: ModelOption

    @Option(help: "The prompt bank (.sprompt) whose prompts are served as tasks.")
    var bank: String?

    @Option(help: "Another id for the base model (e.g. smollm2), also accepted as NAME:TASK (vLLM's --served-model-name).")
    var servedModelName: String?

    @Option(name: .customLong("name"), help: .hidden)
    var legacyName: String?

    @Option(help: "Address to bind (default: loopback only).")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port, printed on stderr).")
    var port = 8080

    @Option(help: "Most sequences decoded together.")
    var maxBatch = 16

    @OptionGroup var threadsOption: ThreadsOption

    @Option(help: "Positions one request may use: soft prompt + prompt + max_tokens (default: the model's context, at most 4096).")
    var context: Int?

    @Option(help: "Bearer token that enables POST /admin/reload.")
    var adminToken: String?

    @Option(help: "Seconds between checks of the bank file for changes (0: never).")
    var watch: Double = 1

    @Option(help: "Seconds in-flight requests get to finish after SIGTERM.")
    var grace: Double = 10

    @Option(help: "Bytes of soft-prompt keys and values kept in the prefix cache.")
    var cacheBytes = 256 << 20

    @OptionGroup var chatTemplateOption: ChatTemplateOption
    @OptionGroup var int8Option: Int8Option

    mutating func validate() throws {
        servedModelName = try Deprecation.merge(legacyName, as: "serve --name", into: servedModelName, newName: "--served-model-name")
        if maxBatch < 1 { throw ValidationError("--max-batch must be at least 1") }
        if port < 0 || port > 65535 { throw ValidationError("--port must be in 0...65535") }
        if grace < 0 || watch < 0 { throw ValidationError("--grace and --watch must be at least 0") }
        if let context, context < 2 { throw ValidationError("--context must be at least 2") }
        if let adminToken, adminToken.isEmpty { throw ValidationError("--admin-token must not be empty") }
    }

    func run() throws {
        let loaded = try LoadedModel.load(modelOption.model)
        let llama = loaded.llama
        let maxContext = llama.config.maxPositionEmbeddings
        let contextLength = min(context ?? min(maxContext, 4096), maxContext)
        var config = ServeConfiguration(modelID: ModelLocator.name(loaded.path), alias: servedModelName, contextLength: contextLength)
        config.host = host
        config.port = port
        config.adminToken = adminToken
        config.watchInterval = watch
        config.grace = grace
        let chat: ChatTemplate? = try? loaded.gguf.map { try ChatTemplate(gguf: $0, named: chatTemplateOption.chatTemplate?.name) }
        let engine = Engine(model: llama, tokenizer: loaded.tokenizer, maxBatch: maxBatch, threads: threadsOption.threads,
                            precision: int8Option.precision, cacheBudget: cacheBytes)
        let registry: TaskRegistry
        do { registry = try TaskRegistry(bankPath: bank, width: llama.config.hiddenSize, cache: engine.prefixCache) } catch {
            let text = "\(error)"
            throw CLIError(bank.map { text.hasPrefix($0) ? text : "\($0): \(text)" } ?? text)
        }
        let server = Server(engine: engine, registry: registry, chatTemplate: chat, configuration: config)
        if !["127.0.0.1", "localhost", "::1"].contains(host) {
            Output.error("warning: listening on \(host), not only loopback: the API has no authentication (only /admin/reload has a token)")
        }
        if chat == nil { Output.error("note: no chat template recognised; /v1/chat/completions answers 400") }
        let failure = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        let host = self.host
        Task {
            do {
                try await server.run { port in
                    Output.error("serving \(server.modelIDs.joined(separator: ", ")) on http://\(host):\(port) "
                                 + "(batch ≤ \(engine.maxBatch), context \(contextLength), \(engine.threads) threads)")
                }
            } catch {
                failure.withLock { $0 = "\(error)" }
            }
            done.signal()
        }
        done.wait()
        if let message = failure.withLock({ $0 }) { throw CLIError("serve: \(message)") }
        Output.error("stopped")
    }
}
