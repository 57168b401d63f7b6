import Llama
import Synchronization

/// Request counters and latency histograms, rendered in the Prometheus text format with the engine's
/// and the prefix cache's counters.
public final class Metrics: Sendable {
    /// Histogram bucket upper bounds, seconds.
    static let buckets: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

    struct Histogram {
        var counts = [Int](repeating: 0, count: Metrics.buckets.count)
        var sum = 0.0
        var count = 0

        mutating func observe(_ value: Double) {
            for (i, bound) in Metrics.buckets.enumerated() where value <= bound { counts[i] += 1 }
            sum += value
            count += 1
        }
    }

    struct State {
        var requests: [String: Int] = [:]  // "endpoint\u{0}status"
        var latency = Histogram()
        var firstToken = Histogram()
        var finishReasons: [String: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    func request(_ endpoint: String, status: Int) {
        state.withLock { $0.requests[endpoint + "\u{0}" + String(status), default: 0] += 1 }
    }

    func finished(_ result: JobResult, seconds: Double) {
        state.withLock { s in
            s.latency.observe(seconds)
            if let t = result.firstTokenSeconds { s.firstToken.observe(t) }
            s.finishReasons[result.finishReason.rawValue, default: 0] += 1
        }
    }

    /// The Prometheus exposition text.
    func render(engine: EngineStatistics, cache: PrefixCache.Statistics, tasks: Int, reloads: Int) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += name + (labels.isEmpty ? "" : "{\(labels)}") + " " + value + "\n" }
        }
        func histogram(_ name: String, _ help: String, _ h: Histogram) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            for (i, bound) in Metrics.buckets.enumerated() { out += "\(name)_bucket{le=\"\(bound)\"} \(h.counts[i])\n" }
            out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n\(name)_sum \(h.sum)\n\(name)_count \(h.count)\n"
        }
        metric("softprompt_requests_total", "counter", "HTTP requests by endpoint and status.",
               s.requests.sorted { $0.key < $1.key }.map { key, value in
                   let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
                   return ("endpoint=\"\(parts[0])\",status=\"\(parts[1])\"", String(value))
               })
        metric("softprompt_generations_total", "counter", "Generations ended, by finish reason.",
               s.finishReasons.sorted { $0.key < $1.key }.map { ("reason=\"\($0.key)\"", String($0.value)) })
        metric("softprompt_prompt_tokens_total", "counter", "Prompt tokens prefilled.", [("", String(engine.promptTokens))])
        metric("softprompt_generated_tokens_total", "counter", "Tokens sampled.", [("", String(engine.generatedTokens))])
        histogram("softprompt_request_duration_seconds", "Time from request to the last token.", s.latency)
        histogram("softprompt_time_to_first_token_seconds", "Time from request to the first sampled token.", s.firstToken)
        metric("softprompt_decode_steps_total", "counter", "Batched decoding steps.", [("", String(engine.steps))])
        metric("softprompt_decode_rows_total", "counter", "Sequences decoded, summed over steps.", [("", String(engine.stepRows))])
        metric("softprompt_batch_size", "gauge", "Sequences in the last decoding step.", [("", String(engine.lastBatchSize))])
        metric("softprompt_batch_size_peak", "gauge", "The largest batch decoded so far.", [("", String(engine.peakBatchSize))])
        metric("softprompt_active_sequences", "gauge", "Sequences being decoded.", [("", String(engine.active))])
        metric("softprompt_queued_requests", "gauge", "Requests waiting for a batch slot.", [("", String(engine.queued))])
        metric("softprompt_prefix_cache_hits_total", "counter", "Prefix cache lookups that hit.", [("", String(cache.hits))])
        metric("softprompt_prefix_cache_misses_total", "counter", "Prefix cache lookups that missed.", [("", String(cache.misses))])
        metric("softprompt_prefix_cache_evictions_total", "counter", "Prefixes evicted for the budget.", [("", String(cache.evictions))])
        metric("softprompt_prefix_cache_entries", "gauge", "Prefixes held.", [("", String(cache.entries))])
        metric("softprompt_prefix_cache_bytes", "gauge", "Bytes of keys and values held.", [("", String(cache.bytes))])
        metric("softprompt_tasks", "gauge", "Tasks in the bank.", [("", String(tasks))])
        metric("softprompt_bank_reloads_total", "counter", "Bank reads (the first one counts).", [("", String(reloads))])
        return out
    }
}
