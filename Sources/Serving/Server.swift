import Hummingbird
import HummingbirdCore
import NIOCore
import ChatTemplates
import Llama
import Logging
import ServiceLifecycle
import SoftPrompt
import UnixSignals
import Synchronization
import TensorIO
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// Settings of `softprompt serve`.
public struct ServeConfiguration: Sendable {
    /// The model id (the model file's base name without `.gguf`).
    public var modelID: String
    /// Another accepted id for the base model (e.g. `smollm2`).
    public var alias: String?
    public var host: String = "127.0.0.1"
    /// 0 picks a free port (reported through `onRunning`).
    public var port: Int = 8080
    /// Bearer token for `POST /admin/reload` (the endpoint answers 404 without one).
    public var adminToken: String?
    /// Seconds between checks of the bank file's modification time and size (0: no polling).
    public var watchInterval: Double = 1
    /// Seconds in-flight requests get to finish after SIGTERM before they are cancelled.
    public var grace: Double = 10
    /// Positions a request may use (soft prompt + prompt + max_tokens).
    public var contextLength: Int
    /// Largest request body accepted.
    public var maxBodyBytes: Int = 4 << 20

    public init(modelID: String, alias: String? = nil, contextLength: Int) {
        self.modelID = modelID
        self.alias = alias
        self.contextLength = contextLength
    }
}

/// An OpenAI-compatible HTTP front end over an `Engine` and a `TaskRegistry`.
public final class Server: Sendable {
    public let engine: Engine
    public let registry: TaskRegistry
    public let configuration: ServeConfiguration
    /// The chat template used by `/v1/chat/completions` (nil: that endpoint answers 400).
    public let chatTemplate: ChatTemplate?
    public let metrics = Metrics()
    private let counter = Atomic<Int>(0)
    private let group = Mutex<ServiceGroup?>(nil)

    public init(engine: Engine, registry: TaskRegistry, chatTemplate: ChatTemplate?, configuration: ServeConfiguration) {
        self.engine = engine
        self.registry = registry
        self.chatTemplate = chatTemplate
        self.configuration = configuration
    }

    /// Runs until SIGTERM/SIGINT (or cancellation): then stops accepting, gives in-flight requests
    /// `grace` seconds, cancels the rest and returns.
    /// - Parameter onRunning: Called with the bound port once the server listens.
    public func run(gracefulShutdownSignals: [UnixSignal] = [.sigterm, .sigint],
                    onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var logger = Logger(label: "softprompt.serve")
        logger.logLevel = .warning
        let app = Application(
            router: makeRouter(),
            server: .http1(configuration: HTTP1Channel.Configuration(additionalChannelHandlers: [DisconnectWatcher()])),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port),
                                                    serverName: "softprompt"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
        let drain = EngineService(engine: engine, grace: configuration.grace)
        let watcher = WatchService(registry: registry, interval: configuration.watchInterval)
        // Graceful shutdown runs in reverse order: the engine stops accepting (new requests get 503) and
        // finishes or cancels its jobs within the grace period, the watcher stops, the HTTP server closes.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [ServiceGroupConfiguration.ServiceConfiguration(service: app),
                       ServiceGroupConfiguration.ServiceConfiguration(service: watcher, successTerminationBehavior: .ignore),
                       ServiceGroupConfiguration.ServiceConfiguration(service: drain, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: gracefulShutdownSignals,
            logger: logger))
        self.group.withLock { $0 = group }
        try await group.run()
    }

    /// Starts the graceful shutdown SIGTERM starts (drain within the grace period, then close); `run`
    /// returns when it is done.
    public func stop() async {
        await group.withLock({ $0 })?.triggerGracefulShutdown()
    }

    /// Model ids: the base model (and its alias), then `BASE:TASK` for every bank prompt.
    public var modelIDs: [String] {
        [configuration.modelID] + registry.names.map { configuration.modelID + ":" + $0 }
    }

    /// The task a model id selects: nil for the base model; throws 404 for an unknown id or task.
    func resolve(_ id: String) throws(APIError) -> ServedTask? {
        let bases = [configuration.modelID] + (configuration.alias.map { [$0] } ?? [])
        if bases.contains(id) { return nil }
        for base in bases where id.hasPrefix(base + ":") {
            let name = String(id.dropFirst(base.count + 1))
            guard let task = registry.task(name) else {
                throw APIError(.notFound, "unknown task '\(name)' (tasks: \(registry.names.joined(separator: ", ")))",
                               type: "invalid_request_error", param: "model", code: "model_not_found")
            }
            return task
        }
        throw APIError(.notFound, "unknown model '\(id)' (models: \(modelIDs.joined(separator: ", ")))",
                       type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    func nextID() -> Int { counter.add(1, ordering: .relaxed).newValue }

    // MARK: Routes

    func makeRouter() -> Router<ServeContext> {
        let router = Router(context: ServeContext.self)
        router.get("/health") { [self] _, _ -> Response in
            let ok = engine.isAccepting
            metrics.request("/health", status: ok ? 200 : 503)
            return json(.object(["status": .string(ok ? "ok" : "shutting down"), "tasks": .int(Int64(registry.names.count))]),
                        status: ok ? .ok : .serviceUnavailable)
        }
        router.get("/v1/models") { [self] _, _ -> Response in
            metrics.request("/v1/models", status: 200)
            let models = modelIDs.map { id -> JSONValue in
                .object(["id": .string(id), "object": "model", "created": .int(Int64(time(nil))), "owned_by": "softprompt"])
            }
            return json(.object(["object": "list", "data": .array(models)]))
        }
        router.get("/metrics") { [self] _, _ -> Response in
            metrics.request("/metrics", status: 200)
            let text = metrics.render(engine: engine.statistics, cache: engine.prefixCache.statistics, tasks: registry.names.count,
                                      reloads: registry.reloadCount)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        }
        router.post("/v1/completions") { [self] request, context -> Response in
            await handle(request, context: context, endpoint: "/v1/completions", chat: false)
        }
        router.post("/v1/chat/completions") { [self] request, context -> Response in
            await handle(request, context: context, endpoint: "/v1/chat/completions", chat: true)
        }
        router.post("/admin/reload") { [self] request, _ -> Response in
            let endpoint = "/admin/reload"
            guard let token = configuration.adminToken else {
                metrics.request(endpoint, status: 404)
                return APIError(.notFound, "reloading over HTTP is disabled (start the server with --admin-token)",
                                type: "invalid_request_error", param: nil, code: "not_found").response
            }
            guard request.headers[.authorization] == "Bearer " + token else {
                metrics.request(endpoint, status: 401)
                return APIError(.unauthorized, "a valid 'Authorization: Bearer TOKEN' header is required",
                                type: "authentication_error", param: nil, code: "invalid_token").response
            }
            do {
                let c = try registry.reload()
                metrics.request(endpoint, status: 200)
                let list = { (names: [String]) in JSONValue.array(names.sorted().map { .string($0) }) }
                return json(.object(["tasks": list(registry.names), "added": list(c.added), "removed": list(c.removed),
                                     "changed": list(c.changed)]))
            } catch {
                metrics.request(endpoint, status: 500)
                return APIError(.internalServerError, "reload failed: \(error)", type: "server_error", param: nil,
                                code: "reload_failed").response
            }
        }
        return router
    }

    /// A completion or chat completion: parse, validate, submit, answer (JSON or server-sent events).
    func handle(_ request: Request, context: ServeContext, endpoint: String, chat: Bool) async -> Response {
        let start = now()
        var request = request
        let parsed: ParsedRequest
        do {
            guard engine.isAccepting else {
                throw APIError(.serviceUnavailable, "the server is shutting down", type: "server_error", param: nil, code: "shutting_down")
            }
            let body = try await request.collectBody(upTo: configuration.maxBodyBytes)
            parsed = try parse(Array(buffer: body), chat: chat)
        } catch let error as APIError {
            metrics.request(endpoint, status: Int(error.status.code))
            return error.response
        } catch {
            let e = APIError(.contentTooLarge, "the request body is larger than \(configuration.maxBodyBytes) bytes",
                             type: "invalid_request_error", param: nil, code: "body_too_large")
            metrics.request(endpoint, status: Int(e.status.code))
            return e.response
        }
        let handle = engine.submit(parsed.job)
        // A client that goes away frees its slot at the engine's next step (a finished job ignores this).
        await context.onDisconnect { [handle] in handle.cancel() }
        let id = (chat ? "chatcmpl-" : "cmpl-") + String(nextID())
        let created = Int64(time(nil))
        let object = chat ? "chat.completion" : "text_completion"
        let metrics = self.metrics
        if parsed.stream {
            metrics.request(endpoint, status: 200)
            let body = ResponseBody { writer in
                func send(_ value: JSONValue) async throws {
                    try await writer.write(ByteBuffer(string: "data: " + (try JSON.serialize(value)) + "\n\n"))
                }
                func chunk(_ delta: JSONValue?, text: String?, finish: FinishReason?, tokens: [Int32]? = nil) -> JSONValue {
                    var choice: JSONObject = ["index": 0]
                    if let tokens { choice["token_ids"] = .array(tokens.map { .int(Int64($0)) }) }
                    if chat {
                        choice["delta"] = delta ?? .object([:])
                    } else {
                        choice["text"] = .string(text ?? "")
                        choice["logprobs"] = .null
                    }
                    choice["finish_reason"] = finish.map { .string($0.rawValue) } ?? .null
                    return .object(["id": .string(id), "object": .string(object + (chat ? ".chunk" : "")), "created": .int(created),
                                    "model": .string(parsed.model), "choices": .array([.object(choice)])])
                }
                do {
                    if chat { try await send(chunk(.object(["role": "assistant", "content": ""]), text: nil, finish: nil)) }
                    for await event in handle.events {
                        switch event {
                        case .text(let t):
                            try await send(chunk(.object(["content": .string(t)]), text: t, finish: nil))
                        case .done(let r):
                            metrics.finished(r, seconds: now() - start)
                            if let error = r.error {
                                try await send(.object(["error": .object(["message": .string(error), "type": "server_error",
                                                                          "param": .null, "code": .null])]))
                            } else {
                                try await send(chunk(.object([:]), text: "", finish: r.finishReason == .cancelled ? .stop : r.finishReason,
                                                     tokens: parsed.returnTokenIDs ? r.tokens : nil))
                                if parsed.includeUsage {
                                    try await send(.object(["id": .string(id), "object": .string(object + (chat ? ".chunk" : "")),
                                                            "created": .int(created), "model": .string(parsed.model), "choices": .array([]),
                                                            "usage": usage(r)]))
                                }
                            }
                        }
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                } catch {
                    handle.cancel()  // the client went away: free the slot
                    throw error
                }
            }
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
        }
        let result = await withTaskCancellationHandler {
            await handle.result()
        } onCancel: {
            handle.cancel()
        }
        metrics.finished(result, seconds: now() - start)
        if let error = result.error {
            metrics.request(endpoint, status: 500)
            return APIError(.internalServerError, error, type: "server_error", param: nil, code: "generation_failed").response
        }
        metrics.request(endpoint, status: 200)
        var choice: JSONObject = ["index": 0]
        if chat {
            choice["message"] = .object(["role": "assistant", "content": .string(result.text)])
        } else {
            choice["text"] = .string(result.text)
            choice["logprobs"] = .null
        }
        choice["finish_reason"] = .string((result.finishReason == .cancelled ? FinishReason.stop : result.finishReason).rawValue)
        if parsed.returnTokenIDs { choice["token_ids"] = .array(result.tokens.map { .int(Int64($0)) }) }
        return json(.object(["id": .string(id), "object": .string(object), "created": .int(created), "model": .string(parsed.model),
                             "choices": .array([.object(choice)]), "usage": usage(result)]))
    }

    struct ParsedRequest: Sendable {
        var job: GenerationJob
        var model: String
        var stream: Bool
        var returnTokenIDs: Bool
        /// `stream_options.include_usage`: a last chunk with the usage counts and no choices.
        var includeUsage: Bool
    }

    /// Validates an OpenAI request body and turns it into a job.
    func parse(_ bytes: [UInt8], chat: Bool) throws(APIError) -> ParsedRequest {
        let root: JSONValue
        do { root = try JSON.parse(bytes) } catch {
            throw APIError.bad("the body is not valid JSON: \(error.description)", param: nil)
        }
        guard case .object(let o) = root else { throw APIError.bad("the body must be a JSON object", param: nil) }
        guard let model = o["model"]?.stringValue else { throw APIError.bad("'model' (a string) is required", param: "model") }
        let task = try resolve(model)

        func number(_ key: String, default value: Double, _ range: ClosedRange<Double>) throws(APIError) -> Double {
            guard let v = o[key], !v.isNull else { return value }
            guard let d = v.doubleValue, range.contains(d) else {
                throw APIError.bad("'\(key)' must be a number in \(range.lowerBound)...\(range.upperBound)", param: key)
            }
            return d
        }
        func integer(_ key: String) throws(APIError) -> Int64? {
            guard let v = o[key], !v.isNull else { return nil }
            guard case .int(let i) = v else { throw APIError.bad("'\(key)' must be an integer", param: key) }
            return i
        }
        func flag(_ key: String) throws(APIError) -> Bool {
            guard let v = o[key], !v.isNull else { return false }
            guard let b = v.boolValue else { throw APIError.bad("'\(key)' must be true or false", param: key) }
            return b
        }
        let temperature = try number("temperature", default: 1, 0 ... 2)
        let topP = try number("top_p", default: 1, 0 ... 1)
        guard topP > 0 else { throw APIError.bad("'top_p' must be greater than 0", param: "top_p") }
        let frequency = try number("frequency_penalty", default: 0, -2 ... 2)
        let presence = try number("presence_penalty", default: 0, -2 ... 2)
        let seed = try integer("seed")
        if let n = try integer("n"), n != 1 { throw APIError.bad("only n = 1 is supported", param: "n") }
        let stream = try flag("stream")
        let returnTokenIDs = try flag("return_token_ids")
        var includeUsage = false
        if let options = o["stream_options"], !options.isNull {
            guard case .object(let so) = options, so["include_usage"]?.isNull ?? true || so["include_usage"]?.boolValue != nil else {
                throw APIError.bad("'stream_options' must be an object like {\"include_usage\": true}", param: "stream_options")
            }
            includeUsage = so["include_usage"]?.boolValue ?? false
        }
        var stops: [String] = []
        if let s = o["stop"], !s.isNull {
            if let one = s.stringValue {
                stops = [one]
            } else if let many = s.arrayValue, many.count <= 4, many.allSatisfy({ $0.stringValue != nil }) {
                stops = many.map { $0.stringValue! }
            } else {
                throw APIError.bad("'stop' must be a string or an array of at most 4 strings", param: "stop")
            }
        }
        let maxKey = chat && o["max_completion_tokens"] != nil ? "max_completion_tokens" : "max_tokens"
        let requestedMax = try integer(maxKey)
        if let m = requestedMax, m < 0 { throw APIError.bad("'\(maxKey)' must be at least 0", param: maxKey) }

        let tokens: [Int32]
        if chat {
            guard let template = chatTemplate else {
                throw APIError.bad("this model has no chat template; use /v1/completions", param: "messages")
            }
            guard let list = o["messages"]?.arrayValue, !list.isEmpty else {
                throw APIError.bad("'messages' (a non-empty array) is required", param: "messages")
            }
            var messages: [ChatMessage] = []
            for (i, m) in list.enumerated() {
                guard let roleText = m["role"]?.stringValue, let role = ChatMessage.Role(rawValue: roleText) else {
                    throw APIError.bad("messages[\(i)].role must be system, user or assistant", param: "messages")
                }
                guard let content = m["content"]?.stringValue else {
                    throw APIError.bad("messages[\(i)].content must be a string", param: "messages")
                }
                messages.append(ChatMessage(role, content))
            }
            // As `generate --chat --task`: the task's template renders the (last) user message.
            if let stored = task?.template, let last = messages.lastIndex(where: { $0.role == .user }) {
                messages[last] = ChatMessage(.user, try renderTemplate(stored, messages[last].content))
            }
            let text: String
            do { text = try template.render(messages) } catch {
                throw APIError.bad("the messages cannot be rendered with the chat template: \(error)", param: "messages")
            }
            tokens = engine.tokenizer.encode(text, addSpecial: false, parseSpecial: true)
        } else {
            let prompt: String
            if let s = o["prompt"]?.stringValue {
                prompt = s
            } else if let a = o["prompt"]?.arrayValue, a.count == 1, let s = a[0].stringValue {
                prompt = s
            } else {
                throw APIError.bad("'prompt' must be a string (or an array of one string)", param: "prompt")
            }
            // As `generate --task`: the task's template renders the prompt text.
            let text = try task?.template.map { stored throws(APIError) in try renderTemplate(stored, prompt) } ?? prompt
            // Special-token text in the prompt is parsed, as llama-server's /completion and vLLM do.
            tokens = engine.tokenizer.encode(text, addSpecial: true, parseSpecial: true)
        }
        guard !tokens.isEmpty else { throw APIError.bad("the prompt is empty", param: chat ? "messages" : "prompt") }
        let promptPositions = (task?.positions ?? 0) + tokens.count
        let context = configuration.contextLength
        guard promptPositions < context else {
            throw APIError(.badRequest, "the prompt needs \(promptPositions) positions (\(task?.positions ?? 0) of soft prompt, \(tokens.count) tokens); "
                           + "the context holds \(context)", type: "invalid_request_error", param: chat ? "messages" : "prompt",
                           code: "context_length_exceeded")
        }
        let room = context - promptPositions
        let maxTokens: Int
        if let m = requestedMax {
            guard m <= room else {
                throw APIError(.badRequest, "\(maxKey) = \(m) with a prompt of \(promptPositions) positions exceeds the context of \(context) "
                               + "(at most \(room) tokens fit)", type: "invalid_request_error", param: maxKey,
                               code: "context_length_exceeded")
            }
            maxTokens = Int(m)
        } else {
            maxTokens = min(room, chat ? 512 : 16)
        }
        let sampling = SamplingParameters(temperature: Float(temperature), topK: 0, topP: Float(topP), minP: 0,
                                          repeatPenalty: 1, frequencyPenalty: Float(frequency), presencePenalty: Float(presence),
                                          seed: seed.map { UInt64(bitPattern: $0) })
        return ParsedRequest(job: GenerationJob(task: task, tokens: tokens, sampling: sampling, maxTokens: maxTokens, stopStrings: stops),
                             model: model, stream: stream, returnTokenIDs: returnTokenIDs, includeUsage: includeUsage)
    }

    func renderTemplate(_ stored: String, _ input: String) throws(APIError) -> String {
        do { return try PromptTemplate(stored).render(input) } catch {
            throw APIError(.internalServerError, "the task's stored template is invalid: \(error)", type: "server_error", param: nil, code: nil)
        }
    }
}

/// The request context: Hummingbird's, plus the connection's `DisconnectWatcher`.
struct ServeContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        channel = source.channel
    }

    /// Runs `action` when the client's connection closes (a no-op without a watcher).
    func onDisconnect(_ action: @escaping @Sendable () -> Void) async {
        let watcher = try? await channel.pipeline.handler(type: DisconnectWatcher.self).get()
        watcher?.onClose(action)
    }
}

/// OpenAI's `usage` object.
func usage(_ r: JobResult) -> JSONValue {
    .object(["prompt_tokens": .int(Int64(r.promptTokens)), "completion_tokens": .int(Int64(r.tokens.count)),
             "total_tokens": .int(Int64(r.promptTokens + r.tokens.count))])
}

/// An OpenAI-style error answer: `{"error": {"message", "type", "param", "code"}}`.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    var param: String?
    var code: String?

    init(_ status: HTTPResponse.Status, _ message: String, type: String, param: String?, code: String?) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    static func bad(_ message: String, param: String?) -> APIError {
        APIError(.badRequest, message, type: "invalid_request_error", param: param, code: param == nil ? "invalid_json" : "invalid_value")
    }

    var response: Response {
        json(.object(["error": .object(["message": .string(message), "type": .string(type),
                                        "param": param.map { .string($0) } ?? .null, "code": code.map { .string($0) } ?? .null])]),
             status: status)
    }
}

func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    let text = (try? JSON.serialize(value)) ?? "{}"
    return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(string: text + "\n")))
}

/// Waits for graceful shutdown, then drains the engine within the grace period.
struct EngineService: Service {
    let engine: Engine
    let grace: Double

    func run() async throws {
        try? await gracefulShutdown()
        await engine.shutdown(grace: Task.isCancelled ? 0 : grace)
    }
}

/// Polls the bank file and reloads it when it changes.
struct WatchService: Service {
    let registry: TaskRegistry
    let interval: Double

    func run() async throws {
        guard interval > 0, registry.bankPath != nil else {
            try? await gracefulShutdown()
            return
        }
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(nanoseconds: UInt64(interval * 1e9)) }
            _ = registry.reloadIfChanged()
        }
    }
}
