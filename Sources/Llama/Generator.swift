#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a `Generator` needs from a tokenizer. `Tokenizers.Tokenizer` has exactly these methods, so
/// `extension Tokenizer: GenerationTokenizer {}` makes it one wherever both modules are imported.
public protocol GenerationTokenizer {
    /// Token ids of `text`.
    func encode(_ text: String, addSpecial: Bool, parseSpecial: Bool) -> [Int32]
    /// The bytes token `id` stands for (possibly part of a UTF-8 character).
    func piece(_ id: Int32, renderSpecial: Bool) -> [UInt8]
    /// Whether generation ends at `id` (EOS, EOT, `<|im_end|>`, …).
    func isEndOfGeneration(_ id: Int32) -> Bool
}

/// The input a generation starts from: optional leading embedding rows (a soft prompt), then text or
/// token ids.
public struct GenerationPrompt: Sendable {
    public enum Content: Sendable {
        /// Text to tokenize; `addSpecial` adds the BOS/EOS the vocabulary asks for, `parseSpecial`
        /// turns the text of control tokens into those tokens (on for chat-template output).
        case text(String, addSpecial: Bool, parseSpecial: Bool)
        case tokens([Int32])
    }

    /// Rows of `hiddenSize` floats fed before the content (may be empty).
    public var embeddings: [Float]
    public var content: Content

    public init(embeddings: [Float] = [], content: Content) {
        self.embeddings = embeddings
        self.content = content
    }

    /// A text prompt. For the output of a chat template use `addSpecial: false, parseSpecial: true`.
    public static func text(_ text: String, embeddings: [Float] = [], addSpecial: Bool = true,
                            parseSpecial: Bool = false) -> GenerationPrompt {
        GenerationPrompt(embeddings: embeddings, content: .text(text, addSpecial: addSpecial, parseSpecial: parseSpecial))
    }

    /// A prompt of token ids.
    public static func tokens(_ ids: [Int32], embeddings: [Float] = []) -> GenerationPrompt {
        GenerationPrompt(embeddings: embeddings, content: .tokens(ids))
    }
}

/// Limits and stop conditions of one generation.
public struct GenerationOptions: Sendable {
    /// Most tokens to sample (an end-of-generation token counts).
    public var maxTokens: Int
    /// Generation stops when the text contains one of these; the stop string and anything after it
    /// are not streamed. Text that might be the start of a stop string is held back until it is
    /// known not to be (compared as UTF-8 bytes, no Unicode normalisation).
    public var stopStrings: [String]
    /// Stream the text of control tokens (normally they render as nothing).
    public var renderSpecialTokens: Bool
    /// Count the prompt's tokens for the repetition penalties, as llama.cpp does.
    public var penalizePrompt: Bool

    public init(maxTokens: Int = 256, stopStrings: [String] = [], renderSpecialTokens: Bool = false,
                penalizePrompt: Bool = true) {
        self.maxTokens = maxTokens
        self.stopStrings = stopStrings
        self.renderSpecialTokens = renderSpecialTokens
        self.penalizePrompt = penalizePrompt
    }
}

/// Why a generation ended.
public enum StopReason: Sendable, Equatable {
    /// The model sampled an end-of-generation token.
    case eos
    /// The text reached this stop string.
    case stopString(String)
    /// `maxTokens` tokens were sampled.
    case maxTokens
    /// The text callback returned false.
    case cancelled
    /// The session's KV cache is full.
    case contextFull
}

/// The outcome of a generation.
public struct GenerationSummary: Sendable {
    /// Every sampled token, in order, including a final end-of-generation token and the tokens that
    /// spelled a stop string. The last one was not fed back to the session.
    public var tokens: [Int32]
    /// The streamed text (the concatenation of every chunk passed to the callback).
    public var text: String
    public var stopReason: StopReason
    /// Positions the prompt filled (embedding rows plus tokens).
    public var promptPositions: Int
    /// Wall time of the prompt's forward pass (monotonic clock).
    public var prefillSeconds: Double
    /// Wall time from the first sample to the end.
    public var generationSeconds: Double

    /// Tokens sampled.
    public var generatedTokens: Int { tokens.count }
}

/// Generates text: prefills a prompt into an `InferenceSession`, then samples, streams and feeds back
/// one token at a time until a stop condition.
///
/// The session is not reset: a generation continues after the positions already cached (so a chat
/// can append turns); call `session.reset()` to start over.
public struct Generator<Tokenizer: GenerationTokenizer> {
    public let session: InferenceSession
    public let tokenizer: Tokenizer
    public var sampler: Sampler

    public init(session: InferenceSession, tokenizer: Tokenizer, sampler: Sampler) {
        self.session = session
        self.tokenizer = tokenizer
        self.sampler = sampler
    }

    /// Runs one generation.
    /// - Parameters:
    ///   - prompt: the input; it must hold at least one position.
    ///   - options: limits and stop strings.
    ///   - onText: receives the text as it becomes final, in chunks of whole characters; return false
    ///     to stop (the reason is then `.cancelled`).
    /// - Returns: the tokens, text, stop reason and timings.
    /// - Throws: `ModelError.invalidInput` for an empty prompt, malformed embeddings or a prompt
    ///   longer than the session's free capacity.
    public mutating func generate(_ prompt: GenerationPrompt, options: GenerationOptions = GenerationOptions(),
                                  onText: (String) -> Bool = { _ in true }) throws(ModelError) -> GenerationSummary {
        let width = session.model.config.hiddenSize
        let ids: [Int32]
        switch prompt.content {
        case let .text(text, addSpecial, parseSpecial):
            ids = tokenizer.encode(text, addSpecial: addSpecial, parseSpecial: parseSpecial)
        case let .tokens(tokens):
            ids = tokens
        }
        var inputs: [ModelInput] = []
        if !prompt.embeddings.isEmpty { inputs.append(.embeddings(prompt.embeddings)) }
        if !ids.isEmpty { inputs.append(.tokens(ids)) }
        let positions = prompt.embeddings.count / max(1, width) + ids.count
        guard positions > 0 else { throw ModelError(.invalidInput, "the prompt is empty") }

        let prefillStart = monotonicSeconds()
        var logits = try session.forward(inputs, logits: .last)
        let prefillSeconds = monotonicSeconds() - prefillStart
        if options.penalizePrompt {
            for id in ids { sampler.accept(id) }
        }

        let start = monotonicSeconds()
        var tokens: [Int32] = []
        var text = ""
        var stream = TextStream(stopStrings: options.stopStrings)
        var reason = StopReason.maxTokens
        var flush = true
        while true {
            if tokens.count >= options.maxTokens {
                reason = .maxTokens
                break
            }
            let token = sampler.sample(logits)
            tokens.append(token)
            if tokenizer.isEndOfGeneration(token) {
                reason = .eos
                break
            }
            let (chunk, stop) = stream.append(tokenizer.piece(token, renderSpecial: options.renderSpecialTokens))
            var proceed = true
            if !chunk.isEmpty {
                text += chunk
                proceed = onText(chunk)
            }
            if let stop {
                reason = .stopString(stop)
                flush = false
                break
            }
            if !proceed {
                reason = .cancelled
                flush = false
                break
            }
            if tokens.count >= options.maxTokens {
                reason = .maxTokens
                break
            }
            if session.position >= session.capacity {
                reason = .contextFull
                break
            }
            logits = try session.forward([.tokens([token])], logits: .last)
        }
        if flush {
            let rest = stream.finish()
            if !rest.isEmpty {
                text += rest
                _ = onText(rest)
            }
        }
        return GenerationSummary(tokens: tokens, text: text, stopReason: reason, promptPositions: positions,
                                 prefillSeconds: prefillSeconds, generationSeconds: monotonicSeconds() - start)
    }
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
}

/// Turns a stream of token pieces (raw bytes) into text chunks that are safe to show: never a partial
/// UTF-8 character, never any part of a stop string.
///
/// Incomplete UTF-8 sequences at the end are held until they complete (invalid bytes become U+FFFD).
/// Of the complete text, the longest suffix that is a proper prefix of some stop string is held back;
/// the rest is released. When a stop string occurs, the text before its first occurrence is released
/// and the stream reports it. As in llama.cpp's server, the earliest occurrence wins.
public struct TextStream: Sendable {
    let stops: [[UInt8]]
    /// Complete, valid UTF-8 not yet released (it may begin a stop string).
    var pending: [UInt8] = []
    /// Bytes of a UTF-8 character still missing continuation bytes.
    var partial: [UInt8] = []

    /// - Parameter stopStrings: Texts that end the stream (empty ones are ignored).
    public init(stopStrings: [String]) {
        stops = stopStrings.map { Array($0.utf8) }.filter { !$0.isEmpty }
    }

    /// Adds a piece; returns the text to release and the stop string found, if any.
    public mutating func append(_ bytes: [UInt8]) -> (text: String, stop: String?) {
        partial += bytes
        let complete = Self.completePrefixLength(partial)
        if complete > 0 {
            // Decoding replaces invalid bytes, so `pending` is always valid UTF-8.
            pending += String(decoding: partial[..<complete], as: UTF8.self).utf8
            partial.removeFirst(complete)
        }
        var earliest: (start: Int, stop: [UInt8])? = nil
        for stop in stops {
            if let start = Self.firstIndex(of: stop, in: pending), earliest == nil || start < earliest!.start {
                earliest = (start, stop)
            }
        }
        if let (start, stop) = earliest {
            let text = String(decoding: pending[..<start], as: UTF8.self)
            pending.removeAll()
            partial.removeAll()
            return (text, String(decoding: stop, as: UTF8.self))
        }
        var hold = 0
        for stop in stops {
            var length = min(stop.count - 1, pending.count)
            while length > hold {
                if pending.suffix(length).elementsEqual(stop.prefix(length)) {
                    hold = length
                    break
                }
                length -= 1
            }
        }
        let release = pending.count - hold
        let text = String(decoding: pending[..<release], as: UTF8.self)
        pending.removeFirst(release)
        return (text, nil)
    }

    /// Everything held back (an unfinished character becomes U+FFFD).
    public mutating func finish() -> String {
        let text = String(decoding: pending + partial, as: UTF8.self)
        pending.removeAll()
        partial.removeAll()
        return text
    }

    /// The length of `bytes` without a trailing incomplete (but so far valid) UTF-8 sequence.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var lead = n - 1
        while lead >= 0 && lead > n - 4 && bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
        guard lead >= 0 else { return n }
        let first = bytes[lead]
        let needed: Int
        switch first {
        case 0xC2 ... 0xDF: needed = 2
        case 0xE0 ... 0xEF: needed = 3
        case 0xF0 ... 0xF4: needed = 4
        default: return n  // ASCII, or a byte that can never start a character
        }
        let have = n - lead
        guard have < needed else { return n }
        if have >= 2 {
            // The second byte's narrower ranges (no overlongs, no surrogates, nothing past U+10FFFF).
            let second = bytes[lead + 1]
            let valid: Bool
            switch first {
            case 0xE0: valid = second >= 0xA0
            case 0xED: valid = second <= 0x9F
            case 0xF0: valid = second >= 0x90
            case 0xF4: valid = second <= 0x8F
            default: valid = true
            }
            if !valid { return n }
        }
        return lead
    }

    static func firstIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        outer: for start in 0 ... haystack.count - needle.count {
            for k in 0 ..< needle.count where haystack[start + k] != needle[k] { continue outer }
            return start
        }
        return nil
    }
}
