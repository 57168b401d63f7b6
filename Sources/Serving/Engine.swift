import Dispatch
import Llama
import Synchronization
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// A bank prompt as the engine serves it: its vectors go before the request's tokens, through the
/// shared prefix cache (keyed by name and vector checksum).
public struct ServedTask: Sendable {
    /// The task (prompt) name.
    public var name: String
    /// Rows of `hiddenSize` floats.
    public var vectors: [Float]
    /// The prompt's stored template (`{input}` placeholder), rendered around completion prompts.
    public var template: String?
    /// The prefix-cache key (name + `SoftPrompt.vectorsSHA256`).
    public var key: PrefixCache.Key
    /// Positions the prompt fills.
    public var positions: Int

    public init(name: String, vectors: [Float], width: Int, template: String?, vectorsSHA256: String) {
        self.name = name
        self.vectors = vectors
        self.template = template
        self.key = PrefixCache.Key(task: name, vectorsSHA256: vectorsSHA256)
        self.positions = vectors.count / max(1, width)
    }
}

/// One generation request for the engine.
public struct GenerationJob: Sendable {
    /// The soft prompt placed first, or nil for the base model.
    public var task: ServedTask?
    /// The prompt's token ids (at least one).
    public var tokens: [Int32]
    public var sampling: SamplingParameters
    /// Most tokens to sample.
    public var maxTokens: Int
    public var stopStrings: [String]

    public init(task: ServedTask?, tokens: [Int32], sampling: SamplingParameters, maxTokens: Int, stopStrings: [String]) {
        self.task = task
        self.tokens = tokens
        self.sampling = sampling
        self.maxTokens = maxTokens
        self.stopStrings = stopStrings
    }
}

/// Why a job ended (OpenAI's `finish_reason` where one applies).
public enum FinishReason: String, Sendable {
    /// An end-of-generation token or a stop string.
    case stop
    /// `maxTokens` tokens, or the context is full.
    case length
    /// The client went away or the server shut down.
    case cancelled
    /// The engine failed on this job (the message is in `JobResult.error`).
    case error
}

/// The outcome of a job.
public struct JobResult: Sendable {
    /// Every sampled token (including a final end-of-generation token).
    public var tokens: [Int32]
    public var text: String
    public var finishReason: FinishReason
    /// Prompt positions: the soft prompt's rows plus the tokens.
    public var promptPositions: Int
    /// Prompt tokens (without the soft prompt's rows).
    public var promptTokens: Int
    /// Seconds from submission to the first sampled token, and to the end.
    public var firstTokenSeconds: Double?
    public var totalSeconds: Double
    public var error: String?
}

/// What a job streams: text as it becomes final, then one `done`.
public enum JobEvent: Sendable {
    case text(String)
    case done(JobResult)
}

/// A submitted job: its event stream, and a way to cancel it.
public final class JobHandle: Sendable {
    /// Text chunks, then exactly one `.done`.
    public let events: AsyncStream<JobEvent>
    let continuation: AsyncStream<JobEvent>.Continuation
    let flag = Flag()

    final class Flag: Sendable {
        let value = Atomic<Bool>(false)
        func set() { value.store(true, ordering: .relaxed) }
        var isSet: Bool { value.load(ordering: .relaxed) }
    }

    init() {
        (events, continuation) = AsyncStream.makeStream(of: JobEvent.self, bufferingPolicy: .unbounded)
        continuation.onTermination = { [flag] _ in flag.set() }
    }

    /// Whether the job was cancelled (by `cancel()` or by dropping the event stream).
    public var isCancelled: Bool { flag.isSet }

    /// Asks the engine to drop the job at its next step (also happens when the event stream is dropped).
    public func cancel() { flag.set() }

    /// Waits for the end, collecting the text.
    public func result() async -> JobResult {
        for await event in events { if case .done(let r) = event { return r } }
        return JobResult(tokens: [], text: "", finishReason: .cancelled, promptPositions: 0, promptTokens: 0,
                         firstTokenSeconds: nil, totalSeconds: 0, error: nil)
    }
}

/// Counters the engine keeps (read with `Engine.statistics`).
public struct EngineStatistics: Sendable {
    public var jobsStarted = 0
    public var jobsFinished = 0
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Batched decoding steps and the rows they decoded (rows / steps = mean batch size).
    public var steps = 0
    public var stepRows = 0
    /// Sequences decoding now, and jobs waiting to be admitted.
    public var active = 0
    public var queued = 0
    public var lastBatchSize = 0
    /// The largest batch decoded so far.
    public var peakBatchSize = 0
}

/// Continuous batching over one model: a single engine thread owns the sessions; jobs arrive through a
/// locked queue; every iteration admits waiting jobs (prefix from the `PrefixCache`, then the prompt's
/// tokens), then decodes one token for every active job in a single `BatchDecode.step`, whatever their
/// tasks, samples per job, streams the text and retires finished or cancelled jobs.
public final class Engine: Sendable {
    public let model: LlamaModel
    public let tokenizer: Tokenizer
    public let prefixCache: PrefixCache
    /// Most sequences decoded together.
    public let maxBatch: Int
    public let threads: Int
    public let precision: MatmulPrecision

    private struct Pending: @unchecked Sendable {
        // @unchecked: the job and handle are Sendable; the start time is a plain Double.
        var job: GenerationJob
        var handle: JobHandle
        var submitted: Double
    }

    private struct Queue {
        var pending: [Pending] = []
        var stopping = false
        var cancelAll = false
        var stopped = false
        var statistics = EngineStatistics()
    }

    private let queue = Mutex(Queue())
    private let wake = DispatchSemaphore(value: 0)

    /// Starts the engine thread.
    /// - Parameters:
    ///   - maxBatch: Most sequences decoded together (default 16).
    ///   - threads: Worker threads for the matrix products.
    ///   - cacheBudget: Bytes of prompt prefixes kept.
    public init(model: LlamaModel, tokenizer: Tokenizer, maxBatch: Int = 16, threads: Int = 2,
                precision: MatmulPrecision = .exact, cacheBudget: Int = 256 << 20) {
        self.model = model
        self.tokenizer = tokenizer
        self.maxBatch = max(1, maxBatch)
        self.threads = max(1, threads)
        self.precision = precision
        self.prefixCache = PrefixCache(budget: cacheBudget)
        let thread = DispatchQueue(label: "softprompt.engine", qos: .userInitiated)
        thread.async { [self] in self.run() }
    }

    /// Queues a job; its events arrive on the returned handle. After `shutdown` the job ends at once
    /// as cancelled.
    public func submit(_ job: GenerationJob) -> JobHandle {
        let handle = JobHandle()
        let accepted = queue.withLock { q -> Bool in
            guard !q.stopping else { return false }
            q.pending.append(Pending(job: job, handle: handle, submitted: now()))
            q.statistics.queued = q.pending.count
            return true
        }
        if accepted {
            wake.signal()
        } else {
            finish(handle, JobResult(tokens: [], text: "", finishReason: .cancelled, promptPositions: 0, promptTokens: job.tokens.count,
                                     firstTokenSeconds: nil, totalSeconds: 0, error: "the server is shutting down"))
        }
        return handle
    }

    /// Whether the engine still accepts jobs.
    public var isAccepting: Bool { queue.withLock { !$0.stopping } }

    public var statistics: EngineStatistics { queue.withLock { $0.statistics } }

    /// Stops accepting jobs, lets the queued and active ones finish for up to `grace` seconds, then
    /// cancels the rest and stops the engine thread.
    public func shutdown(grace: Double) async {
        queue.withLock { $0.stopping = true }
        wake.signal()
        let deadline = now() + grace
        while now() < deadline {
            let busy = queue.withLock { $0.statistics.active + $0.pending.count > 0 }
            if !busy { break }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        queue.withLock { $0.cancelAll = true }
        wake.signal()
        while !queue.withLock({ $0.stopped }) {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
    }

    // MARK: The engine thread

    private final class Active {
        let handle: JobHandle
        let session: InferenceSession
        var sampler: Sampler
        var stream: TextStream
        let maxTokens: Int
        let submitted: Double
        let promptPositions: Int
        let promptTokens: Int
        var tokens: [Int32] = []
        var text = ""
        var next: Int32 = 0
        var firstToken: Double?
        var reason: FinishReason?

        init(handle: JobHandle, session: InferenceSession, job: GenerationJob, submitted: Double, promptPositions: Int) {
            self.handle = handle
            self.session = session
            self.sampler = Sampler(job.sampling)
            self.stream = TextStream(stopStrings: job.stopStrings)
            self.maxTokens = job.maxTokens
            self.submitted = submitted
            self.promptPositions = promptPositions
            self.promptTokens = job.tokens.count
        }
    }

    private func run() {
        var active: [Active] = []
        while true {
            let (incoming, cancelAll) = queue.withLock { q -> ([Pending], Bool) in
                let room = max(0, maxBatch - active.count)
                let taken = Array(q.pending.prefix(q.cancelAll ? q.pending.count : room))
                q.pending.removeFirst(taken.count)
                q.statistics.queued = q.pending.count
                return (taken, q.cancelAll)
            }
            if cancelAll {
                for p in incoming { finish(p.handle, cancelledResult(p)) }
                for a in active { a.reason = .cancelled; retire(a) }
                queue.withLock { $0.statistics.active = 0; $0.stopped = true }
                return
            }
            if active.isEmpty && incoming.isEmpty {
                _ = wake.wait(timeout: .now() + .milliseconds(100))
                continue
            }
            for p in incoming {
                if let a = admit(p) { active.append(a) }
            }
            // Drop cancelled jobs (client gone) and finished ones.
            active.removeAll { a in
                if a.handle.isCancelled && a.reason == nil { a.reason = .cancelled }
                if a.reason != nil { retire(a); return true }
                return false
            }
            queue.withLock { $0.statistics.active = active.count }
            guard !active.isEmpty else { continue }
            let logits: [Float]
            do {
                logits = try BatchDecode.step(active.map(\.session), tokens: active.map(\.next), threads: threads)
            } catch {
                for a in active { a.reason = .error; retire(a, error: "\(error)") }
                active.removeAll()
                continue
            }
            let V = model.config.vocabSize
            logits.withUnsafeBufferPointer { all in
                for (b, a) in active.enumerated() {
                    consume(a, UnsafeBufferPointer(rebasing: all[b * V ..< (b + 1) * V]))
                }
            }
            queue.withLock {
                $0.statistics.steps += 1
                $0.statistics.stepRows += active.count
                $0.statistics.lastBatchSize = active.count
                $0.statistics.peakBatchSize = max($0.statistics.peakBatchSize, active.count)
            }
            active.removeAll { a in
                if a.reason != nil { retire(a); return true }
                return false
            }
            queue.withLock { $0.statistics.active = active.count }
        }
    }

    /// Prefills a job: its task's prefix from the cache, then its tokens; samples the first token.
    private func admit(_ p: Pending) -> Active? {
        let job = p.job
        if p.handle.isCancelled {
            finish(p.handle, cancelledResult(p))
            return nil
        }
        let promptPositions = (job.task?.positions ?? 0) + job.tokens.count
        do {
            guard !job.tokens.isEmpty else { throw ModelError(.invalidInput, "the prompt is empty") }
            let capacity = min(model.config.maxPositionEmbeddings, promptPositions + max(1, job.maxTokens))
            let session = try InferenceSession(model: model, capacity: capacity, threads: threads, precision: precision)
            if let task = job.task {
                let prefix = try prefixCache.prefix(for: task.key) { () throws(ModelError) in
                    try PrefixKV.compute(model: model, embeddings: task.vectors, threads: threads, precision: precision)
                }
                try session.load(prefix: prefix)
            }
            let logits = try session.forward([.tokens(job.tokens)], logits: .last)
            let a = Active(handle: p.handle, session: session, job: job, submitted: p.submitted, promptPositions: promptPositions)
            // As `Generator` does: the prompt's tokens count for the repetition penalties.
            for id in job.tokens { a.sampler.accept(id) }
            queue.withLock {
                $0.statistics.jobsStarted += 1
                $0.statistics.promptTokens += job.tokens.count
            }
            logits.withUnsafeBufferPointer { consume(a, $0) }
            return a
        } catch {
            finish(p.handle, JobResult(tokens: [], text: "", finishReason: .error, promptPositions: promptPositions,
                                       promptTokens: job.tokens.count, firstTokenSeconds: nil,
                                       totalSeconds: now() - p.submitted, error: "\(error)"))
            return nil
        }
    }

    /// Samples the next token of `a` from `logits` and streams its text; sets `a.reason` when the job
    /// ends (the same order of checks as `Generator.generate`).
    private func consume(_ a: Active, _ logits: UnsafeBufferPointer<Float>) {
        if a.handle.isCancelled {
            a.reason = .cancelled
            return
        }
        if a.tokens.count >= a.maxTokens {
            a.reason = .length
            return
        }
        let token = a.sampler.sample(logits)
        a.tokens.append(token)
        if a.firstToken == nil { a.firstToken = now() - a.submitted }
        queue.withLock { $0.statistics.generatedTokens += 1 }
        if tokenizer.isEndOfGeneration(token) {
            a.reason = .stop
            return
        }
        let (chunk, stop) = a.stream.append(tokenizer.piece(token, renderSpecial: false))
        if !chunk.isEmpty {
            a.text += chunk
            a.handle.continuation.yield(.text(chunk))
        }
        if stop != nil {
            a.reason = .stop
            a.stream = TextStream(stopStrings: [])  // nothing held back to flush
            return
        }
        if a.tokens.count >= a.maxTokens {
            a.reason = .length
            return
        }
        if a.session.position >= a.session.capacity {
            a.reason = .length
            return
        }
        a.next = token
    }

    private func retire(_ a: Active, error: String? = nil) {
        if a.reason != .cancelled {
            let rest = a.stream.finish()
            if !rest.isEmpty {
                a.text += rest
                a.handle.continuation.yield(.text(rest))
            }
        }
        finish(a.handle, JobResult(tokens: a.tokens, text: a.text, finishReason: a.reason ?? .error,
                                   promptPositions: a.promptPositions, promptTokens: a.promptTokens,
                                   firstTokenSeconds: a.firstToken, totalSeconds: now() - a.submitted, error: error))
    }

    private func cancelledResult(_ p: Pending) -> JobResult {
        JobResult(tokens: [], text: "", finishReason: .cancelled, promptPositions: 0, promptTokens: p.job.tokens.count,
                  firstTokenSeconds: nil, totalSeconds: now() - p.submitted, error: nil)
    }

    private func finish(_ handle: JobHandle, _ result: JobResult) {
        handle.continuation.yield(.done(result))
        handle.continuation.finish()
        queue.withLock { $0.statistics.jobsFinished += 1 }
    }
}

/// Seconds on the monotonic clock.
func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
