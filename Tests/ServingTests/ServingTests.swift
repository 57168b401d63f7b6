import Dispatch
import GGUF
import ChatTemplates
import Llama
@testable import Serving
import SoftPrompt
import Synchronization
import TensorIO
import Testing
import TestSupport
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 client over a loopback socket (Connection: close; reads to EOF; de-chunks).
enum HTTP {
    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: String

        var json: JSONValue? { try? JSON.parse(body) }
    }

    /// Connects to the loopback `port` and sends `text` whole; returns the open socket (the caller closes it).
    static func send(port: Int, _ text: String) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ServeError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw ServeError("connect to port \(port) failed (errno \(errno))") }
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { close(fd); throw ServeError("send failed") }
            sent += n
        }
        return fd
    }

    static func request(port: Int, _ method: String, _ path: String, body: String? = nil,
                        headers: [String: String] = [:]) throws -> Reply {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n"
        for (k, v) in headers { text += "\(k): \(v)\r\n" }
        if let body {
            text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
        } else {
            text += "\r\n"
        }
        let fd = try send(port: port, text)
        defer { close(fd) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[0 ..< n]
        }
        guard let split = firstIndex(of: Array("\r\n\r\n".utf8), in: received) else { throw ServeError("no header end") }
        let head = String(decoding: received[0 ..< split], as: UTF8.self).components("\r\n")
        let statusParts = head[0].split(separator: " ")
        var fields: [String: String] = [:]
        for line in head.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                fields[line[..<colon].lowercased()] = String(line[line.index(after: colon)...].drop { $0 == " " })
            }
        }
        var payload = Array(received[(split + 4)...])
        if fields["transfer-encoding"]?.lowercased() == "chunked" {
            var out: [UInt8] = []
            var i = 0
            while let end = firstIndex(of: [13, 10], in: Array(payload[i...])) {
                let size = Int(String(decoding: payload[i ..< i + end], as: UTF8.self).split(separator: ";")[0], radix: 16) ?? 0
                i += end + 2
                if size == 0 { break }
                out += payload[i ..< i + size]
                i += size + 2
            }
            payload = out
        }
        return Reply(status: Int(statusParts[1]) ?? 0, headers: fields, body: String(decoding: payload, as: UTF8.self))
    }

    static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        outer: for start in 0 ... haystack.count - needle.count {
            for k in 0 ..< needle.count where haystack[start + k] != needle[k] { continue outer }
            return start
        }
        return nil
    }

    /// The `data:` payloads of a server-sent event stream.
    static func events(_ body: String) -> [String] {
        body.components("\n").filter { $0.hasPrefix("data: ") }.map { String($0.dropFirst(6)) }
    }
}

extension String {
    func components(_ separator: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(self)
        while let range = rest.range(of: separator) {
            parts.append(String(rest[..<range.lowerBound]))
            rest = rest[range.upperBound...]
        }
        parts.append(String(rest))
        return parts
    }
}

/// Runs `body` on a plain thread (blocking socket calls stay off the cooperative pool).
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
        DispatchQueue.global().async { c.resume(with: Result { try body() }) }
    }
}

/// A real server on a free loopback port over the default model and a bank of two made-up tasks.
final class ServerFixture: @unchecked Sendable {
    let model: LlamaModel
    let tokenizer: Tokenizer
    let engine: Engine
    let server: Server
    let bankPath: String
    let port: Int
    let task: Task<Void, any Error>
    static let token = "secret-token"

    static func prompt(_ model: LlamaModel, seed: UInt64, rows: Int, name: String) throws -> SoftPrompt {
        var rng = SplitMix64(seed: seed)
        let ids = (0 ..< rows).map { _ in Int32(rng.next() % UInt64(model.config.vocabSize)) }
        return SoftPrompt(name: name, vectors: try model.embed(ids), width: model.config.hiddenSize)
    }

    init(watch: Double = 0) async throws {
        let gguf = try GGUFFile(path: TestSupport.defaultModelPath!)
        model = try LlamaModel(gguf: gguf)
        tokenizer = try Tokenizer(TokenizerVocabulary(gguf: gguf))
        let dir = TestSupport.temporaryDirectory("serve")
        bankPath = dir + "/bank.sprompt"
        try PromptFile(model: nil, prompts: [try Self.prompt(model, seed: 1, rows: 6, name: "alpha"),
                                             try Self.prompt(model, seed: 2, rows: 3, name: "beta")]).write(to: bankPath)
        engine = Engine(model: model, tokenizer: tokenizer, maxBatch: 8, threads: 2)
        let registry = try TaskRegistry(bankPath: bankPath, width: model.config.hiddenSize, cache: engine.prefixCache)
        var config = ServeConfiguration(modelID: "SmolLM2-135M-Instruct.Q4_1", alias: "smollm2", contextLength: 256)
        config.port = 0
        config.adminToken = Self.token
        config.watchInterval = watch
        config.grace = 2
        server = Server(engine: engine, registry: registry, chatTemplate: try? ChatTemplate(gguf: gguf), configuration: config)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = self.server
        task = Task { try await server.run(gracefulShutdownSignals: []) { continuation.yield($0) } }
        var bound = 0
        for await p in ports { bound = p; break }
        port = bound
    }

    func stop() async {
        await server.stop()
        _ = try? await task.value
    }

    /// Greedy tokens of `Generator` alone for a task (or the base model), the oracle.
    func alone(_ task: String?, prompt text: String, maxTokens: Int) throws -> [Int32] {
        let session = try InferenceSession(model: model, threads: 2)
        if let task, let t = server.registry.task(task) {
            try session.load(prefix: try PrefixKV.compute(model: model, embeddings: t.vectors, threads: 2))
        }
        var generator = Generator(session: session, tokenizer: tokenizer, sampler: Sampler(.greedy))
        return try generator.generate(.text(text), options: GenerationOptions(maxTokens: maxTokens)).tokens
    }

    func complete(_ model: String, _ prompt: String, maxTokens: Int, stream: Bool = false, extra: String = "") throws -> HTTP.Reply {
        let body = "{\"model\": \"\(model)\", \"prompt\": \"\(prompt)\", \"max_tokens\": \(maxTokens), \"temperature\": 0, "
            + "\"return_token_ids\": true, \"stream\": \(stream)\(extra)}"
        return try HTTP.request(port: port, "POST", "/v1/completions", body: body)
    }

    static func tokenIDs(_ reply: HTTP.Reply) -> [Int32]? {
        reply.json?["choices"]?[0]?["token_ids"]?.arrayValue?.map { Int32($0.intValue!) }
    }
}

@Suite(.enabled(if: TestSupport.defaultModelPath != nil), .serialized)
struct ServingTests {
    @Test func healthModelsAndMetrics() async throws {
        let f = try await ServerFixture()
        let port = f.port
        let health = try await onThread { try HTTP.request(port: port, "GET", "/health") }
        #expect(health.status == 200)
        #expect(health.json?["status"]?.stringValue == "ok")
        let models = try await onThread { try HTTP.request(port: port, "GET", "/v1/models") }
        let ids = models.json?["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
        #expect(ids == ["SmolLM2-135M-Instruct.Q4_1", "SmolLM2-135M-Instruct.Q4_1:alpha", "SmolLM2-135M-Instruct.Q4_1:beta"])
        _ = try await onThread { try f.complete("smollm2:alpha", "Hello", maxTokens: 2) }
        _ = try await onThread { try f.complete("smollm2:alpha", "Hi", maxTokens: 2) }
        let metrics = try await onThread { try HTTP.request(port: port, "GET", "/metrics") }
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("softprompt_requests_total{endpoint=\"/v1/completions\",status=\"200\"} 2"))
        #expect(metrics.body.contains("softprompt_prefix_cache_hits_total 1"))
        #expect(metrics.body.contains("softprompt_prefix_cache_misses_total 1"))
        #expect(metrics.body.contains("softprompt_request_duration_seconds_count 2"))
        await f.stop()
    }

    @Test func greedyCompletionsEqualGeneratorAloneAndInABatch() async throws {
        let f = try await ServerFixture()
        let cases: [(model: String, task: String?, prompt: String)] = [
            ("smollm2:alpha", "alpha", "The capital of France is"),
            ("SmolLM2-135M-Instruct.Q4_1:beta", "beta", "Once upon a time"),
            ("smollm2", nil, "1, 2, 3,"),
        ]
        let n = 12
        var expected: [[Int32]] = []
        for c in cases { expected.append(try f.alone(c.task, prompt: c.prompt, maxTokens: n)) }
        // Alone, non-streaming.
        for (i, c) in cases.enumerated() {
            let reply = try await onThread { try f.complete(c.model, c.prompt, maxTokens: n) }
            #expect(reply.status == 200, "\(reply.body)")
            #expect(ServerFixture.tokenIDs(reply) == expected[i], "\(c.model) alone")
            #expect(reply.json?["usage"]?["completion_tokens"]?.intValue == Int64(expected[i].count))
        }
        // Streaming: the chunks' text concatenates to the non-streaming text; ends with [DONE].
        let plain = try await onThread { try f.complete(cases[0].model, cases[0].prompt, maxTokens: n) }
        let streamed = try await onThread { try f.complete(cases[0].model, cases[0].prompt, maxTokens: n, stream: true) }
        #expect(streamed.headers["content-type"]?.hasPrefix("text/event-stream") == true)
        let events = HTTP.events(streamed.body)
        #expect(events.last == "[DONE]")
        let chunks = events.dropLast().compactMap { try? JSON.parse($0) }
        #expect(chunks.compactMap { $0["choices"]?[0]?["text"]?.stringValue }.joined()
                == plain.json?["choices"]?[0]?["text"]?.stringValue)
        #expect(chunks.last?["choices"]?[0]?["finish_reason"]?.stringValue == "length")
        let withUsage = try await onThread {
            try f.complete(cases[0].model, cases[0].prompt, maxTokens: n, stream: true, extra: ", \"stream_options\": {\"include_usage\": true}")
        }
        let usage = HTTP.events(withUsage.body).dropLast().compactMap { try? JSON.parse($0) }.last
        #expect(usage?["usage"]?["completion_tokens"]?.intValue == Int64(n))
        #expect(usage?["choices"]?.arrayValue?.isEmpty == true)
        #expect(chunks.last?["choices"]?[0]?["token_ids"]?.arrayValue?.map { Int32($0.intValue!) } == expected[0])
        // All three at once: decoded together in one batch, same tokens as alone.
        let before = f.engine.statistics.peakBatchSize
        #expect(before <= 1)
        let replies = try await withThrowingTaskGroup(of: (Int, HTTP.Reply).self) { group in
            for (i, c) in cases.enumerated() {
                group.addTask { (i, try await onThread { try f.complete(c.model, c.prompt, maxTokens: n) }) }
            }
            var out = [HTTP.Reply?](repeating: nil, count: cases.count)
            for try await (i, r) in group { out[i] = r }
            return out.map { $0! }
        }
        for (i, reply) in replies.enumerated() {
            #expect(ServerFixture.tokenIDs(reply) == expected[i], "\(cases[i].model) in a batch")
        }
        #expect(f.engine.statistics.peakBatchSize >= 2, "the requests were not batched together")
        await f.stop()
    }

    @Test func errorsNameTheProblem() async throws {
        let f = try await ServerFixture()
        let port = f.port
        let unknownTask = try await onThread { try f.complete("smollm2:gamma", "x", maxTokens: 2) }
        #expect(unknownTask.status == 404)
        #expect(unknownTask.json?["error"]?["code"]?.stringValue == "model_not_found")
        #expect(unknownTask.json?["error"]?["message"]?.stringValue?.contains("gamma") == true)
        let unknownModel = try await onThread { try f.complete("gpt-4", "x", maxTokens: 2) }
        #expect(unknownModel.status == 404)
        let badTopP = try await onThread { try f.complete("smollm2", "x", maxTokens: 2, extra: ", \"top_p\": 5") }
        #expect(badTopP.status == 400)
        #expect(badTopP.json?["error"]?["param"]?.stringValue == "top_p")
        let duplicate = try await onThread { try f.complete("smollm2", "x", maxTokens: 2, extra: ", \"temperature\": 7") }
        #expect(duplicate.status == 400)
        let badMax = try await onThread { try f.complete("smollm2", "x", maxTokens: -1) }
        #expect(badMax.status == 400)
        #expect(badMax.json?["error"]?["param"]?.stringValue == "max_tokens")
        let tooLong = try await onThread { try f.complete("smollm2:alpha", "x", maxTokens: 1000) }
        #expect(tooLong.status == 400)
        #expect(tooLong.json?["error"]?["code"]?.stringValue == "context_length_exceeded")
        let longPrompt = String(repeating: "word ", count: 400)
        let tooLongPrompt = try await onThread { try f.complete("smollm2", longPrompt, maxTokens: 1) }
        #expect(tooLongPrompt.json?["error"]?["code"]?.stringValue == "context_length_exceeded")
        #expect(tooLongPrompt.json?["error"]?["param"]?.stringValue == "prompt")
        let badJSON = try await onThread { try HTTP.request(port: port, "POST", "/v1/completions", body: "{\"model\": ") }
        #expect(badJSON.status == 400)
        #expect(badJSON.json?["error"]?["type"]?.stringValue == "invalid_request_error")
        let noMessages = try await onThread {
            try HTTP.request(port: port, "POST", "/v1/chat/completions", body: "{\"model\": \"smollm2\"}")
        }
        #expect(noMessages.status == 400)
        #expect(noMessages.json?["error"]?["param"]?.stringValue == "messages")
        await f.stop()
    }

    /// Plain completions parse special-token text, as llama-server does: the ChatML prompt of issue 13 is
    /// 15 tokens for transformers and llama.cpp (Tests/Fixtures/tokenizers/special-tokens.json), 33 as text.
    @Test func plainCompletionsParseSpecialTokens() async throws {
        let f = try await ServerFixture()
        let prompt = "<|im_start|>user\\nTranslate to French: cheese<|im_end|>\\n<|im_start|>assistant\\n"  // JSON escapes
        let reply = try await onThread { try f.complete("smollm2", prompt, maxTokens: 1) }
        #expect(reply.status == 200, "\(reply.body)")
        #expect(reply.json?["usage"]?["prompt_tokens"]?.intValue == 15)
        await f.stop()
    }

    @Test func chatCompletionStreamsAndAnswers() async throws {
        let f = try await ServerFixture()
        let port = f.port
        let body = "{\"model\": \"smollm2:beta\", \"messages\": [{\"role\": \"user\", \"content\": \"Say hi\"}], \"max_tokens\": 6, \"temperature\": 0"
        let plain = try await onThread { try HTTP.request(port: port, "POST", "/v1/chat/completions", body: body + "}") }
        #expect(plain.status == 200, "\(plain.body)")
        #expect(plain.json?["object"]?.stringValue == "chat.completion")
        let content = plain.json?["choices"]?[0]?["message"]?["content"]?.stringValue
        #expect(content != nil)
        let streamed = try await onThread { try HTTP.request(port: port, "POST", "/v1/chat/completions", body: body + ", \"stream\": true}") }
        let chunks = HTTP.events(streamed.body).dropLast().compactMap { try? JSON.parse($0) }
        #expect(chunks.first?["choices"]?[0]?["delta"]?["role"]?.stringValue == "assistant")
        #expect(chunks.compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined() == content)
        await f.stop()
    }

    @Test func reloadPicksUpANewTask() async throws {
        let f = try await ServerFixture(watch: 0.2)
        let port = f.port
        let unauthorized = try await onThread { try HTTP.request(port: port, "POST", "/admin/reload") }
        #expect(unauthorized.status == 401)
        // Add a task on disk: the watcher sees it without a reload request.
        var file = try PromptFile.read(path: f.bankPath)
        file.prompts.append(try ServerFixture.prompt(f.model, seed: 3, rows: 4, name: "gamma"))
        try file.write(to: f.bankPath)
        var found = false
        for _ in 0 ..< 50 where !found {
            try await Task.sleep(nanoseconds: 100_000_000)
            found = f.server.registry.task("gamma") != nil
        }
        #expect(found)
        let reply = try await onThread { try f.complete("smollm2:gamma", "Hello", maxTokens: 4) }
        #expect(reply.status == 200)
        #expect(ServerFixture.tokenIDs(reply) == (try f.alone("gamma", prompt: "Hello", maxTokens: 4)))
        // Change alpha's vectors and reload over HTTP: its cached prefix goes.
        _ = try await onThread { try f.complete("smollm2:alpha", "Hello", maxTokens: 1) }
        #expect(f.engine.prefixCache.keys.contains { $0.task == "alpha" })
        file.prompts[0] = try ServerFixture.prompt(f.model, seed: 4, rows: 6, name: "alpha")
        try file.write(to: f.bankPath)
        let reload = try await onThread {
            try HTTP.request(port: port, "POST", "/admin/reload", headers: ["Authorization": "Bearer " + ServerFixture.token])
        }
        #expect(reload.status == 200)
        #expect(!f.engine.prefixCache.keys.contains { $0.task == "alpha" })
        await f.stop()
    }

    @Test func aDisconnectedStreamFreesItsSlot() async throws {
        let f = try await ServerFixture()
        let port = f.port
        // Open a streaming request and close the socket after the headers.
        try await onThread {
            let body = "{\"model\": \"smollm2\", \"prompt\": \"Count:\", \"max_tokens\": 200, \"temperature\": 0, \"stream\": true}"
            let text = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
            let fd = try HTTP.send(port: port, text)
            var buffer = [UInt8](repeating: 0, count: 512)
            _ = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            close(fd)
        }
        var stats = f.engine.statistics
        for _ in 0 ..< 100 where stats.active > 0 || stats.jobsFinished < 1 {
            try await Task.sleep(nanoseconds: 50_000_000)
            stats = f.engine.statistics
        }
        #expect(stats.active == 0)
        #expect(stats.generatedTokens < 200, "the cancelled request ran to the end")
        await f.stop()
    }

    @Test func aDisconnectedNonStreamingClientFreesItsSlot() async throws {
        let f = try await ServerFixture()
        let port = f.port
        try await onThread {
            let body = "{\"model\": \"smollm2\", \"prompt\": \"Count:\", \"max_tokens\": 200, \"temperature\": 0}"
            let text = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
            let fd = try HTTP.send(port: port, text)
            usleep(300_000)
            close(fd)
        }
        var stats = f.engine.statistics
        for _ in 0 ..< 100 where stats.active > 0 || stats.jobsFinished < 1 {
            try await Task.sleep(nanoseconds: 50_000_000)
            stats = f.engine.statistics
        }
        #expect(stats.active == 0)
        #expect(stats.jobsFinished == 1)
        #expect(stats.generatedTokens < 200, "the abandoned request ran to the end")
        await f.stop()
    }

    /// What SIGTERM triggers (the engine's drain): new requests get 503, the one in flight finishes
    /// within the grace period; with no grace it is cancelled.
    @Test func shutdownDrainsThenCancels() async throws {
        for grace in [30.0, 0] {
            let f = try await ServerFixture()
            let port = f.port
            let long = Task { try await onThread { try f.complete("smollm2:alpha", "Hello", maxTokens: 40) } }
            for _ in 0 ..< 200 where f.engine.statistics.active == 0 { try await Task.sleep(nanoseconds: 10_000_000) }
            #expect(f.engine.statistics.active == 1)
            let drain = Task { await f.engine.shutdown(grace: grace) }
            for _ in 0 ..< 200 where f.engine.isAccepting { try await Task.sleep(nanoseconds: 5_000_000) }
            let refused = try await onThread { try f.complete("smollm2", "x", maxTokens: 2) }
            #expect(refused.status == 503)
            #expect(try await onThread { try HTTP.request(port: port, "GET", "/health") }.status == 503)
            let reply = try await long.value
            #expect(reply.status == 200)
            let generated = ServerFixture.tokenIDs(reply)?.count ?? 0
            if grace > 0 {
                #expect(generated == 40)
                #expect(reply.json?["choices"]?[0]?["finish_reason"]?.stringValue == "length")
            } else {
                #expect(generated < 40)
            }
            await drain.value
            #expect(f.engine.statistics.active == 0)
            await f.stop()
        }
    }
}
