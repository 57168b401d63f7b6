import TensorIO

/// The settings of a `Sampler`. The defaults are llama.cpp's (`common_params_sampling`).
public struct SamplingParameters: Sendable, Equatable {
    /// Logits are divided by this before the final draw; 0 or less means greedy (the most likely
    /// token after penalties, the lowest id among equal logits).
    public var temperature: Float
    /// Keep the `topK` most likely tokens; 0 or less disables the filter.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability (at temperature 1) reaches
    /// `topP`; 1 or more disables the filter.
    public var topP: Float
    /// Keep the tokens whose probability (at temperature 1) is at least `minP` times the largest;
    /// 0 or less disables the filter.
    public var minP: Float
    /// Top-p and min-p never keep fewer tokens than this (at least 1).
    public var minKeep: Int
    /// llama.cpp's `penalty_repeat`: a logit of a token among the last `penaltyWindow` tokens is
    /// divided by this when positive and multiplied by it otherwise; 1 disables the penalty.
    public var repeatPenalty: Float
    /// Subtracted from such a token's logit once per occurrence in the window.
    public var frequencyPenalty: Float
    /// Subtracted once from the logit of every token present in the window.
    public var presencePenalty: Float
    /// How many of the most recent tokens the penalties look at: 0 disables them, a negative value
    /// means every token accepted so far.
    public var penaltyWindow: Int
    /// Seed of the random source; nil draws one from the system (see `Sampler.seed`).
    public var seed: UInt64?

    /// - Parameters: see the properties; the defaults are llama.cpp's.
    public init(temperature: Float = 0.8, topK: Int = 40, topP: Float = 0.95, minP: Float = 0.05, minKeep: Int = 1,
                repeatPenalty: Float = 1, frequencyPenalty: Float = 0, presencePenalty: Float = 0,
                penaltyWindow: Int = 64, seed: UInt64? = nil) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.minKeep = minKeep
        self.repeatPenalty = repeatPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.penaltyWindow = penaltyWindow
        self.seed = seed
    }

    /// Always the most likely token, no penalties.
    public static let greedy = SamplingParameters(temperature: 0, topK: 0, topP: 1, minP: 0, penaltyWindow: 0, seed: 0)
}

/// A token and its probability under a sampler's final distribution.
public struct TokenProbability: Sendable, Equatable {
    public var token: Int32
    public var probability: Double
}

/// Picks the next token from a row of logits, in llama.cpp's sampler-chain order and semantics:
/// penalties → top-k → top-p → min-p → temperature → draw.
///
/// Top-p and min-p see the logits before temperature scaling, as in llama.cpp. Candidates are ordered
/// by logit, then by token id, so equal logits never make a run depend on the sorting algorithm. The
/// vocabulary is not sorted: top-k finds its `k`-th best token in one pass with a bounded heap (or
/// by quickselect when `k` is a large share of the vocabulary), moves the `k` best to the front and
/// sorts only those; top-p sorts a growing prefix (256, then ×4) until the mass is reached; min-p is a
/// linear filter. On a 151 936-token vocabulary the default chain takes about 1.4 ms per token.
///
/// Reproducibility: the random source is xoshiro256** 1.0 (Blackman & Vigna), its state filled from
/// the seed by four steps of splitmix64; a draw takes one 64-bit output `x` and uses `(x >> 11) · 2⁻⁵³`
/// as a uniform number `u` in [0, 1), then picks the first candidate (in the order above) at which
/// the running sum of `expf(logit − max)` (summed in double precision) reaches `u` times their
/// total. The same seed, logits and accepted tokens give the same tokens on every platform (up to
/// the last bit of the platform's `expf`, which moves a draw only when `u` lands within an ulp of a
/// boundary).
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    /// The seed in use (drawn from the system when the parameters give none), for reproducing a run.
    public let seed: UInt64
    var random: RandomSource
    var window: PenaltyWindow
    var scratch: [Candidate] = []
    var weightScratch: [Double] = []

    public init(_ parameters: SamplingParameters = SamplingParameters()) {
        self.parameters = parameters
        var system = SystemRandomNumberGenerator()
        seed = parameters.seed ?? system.next()
        random = RandomSource(seed: seed)
        window = PenaltyWindow(capacity: parameters.penaltyWindow)
    }

    /// Picks a token from `logits` (one per vocabulary entry) and accepts it (see `accept`).
    /// - Parameter logits: a row of logits; NaN counts as −∞.
    /// - Returns: the token id.
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        precondition(!logits.isEmpty, "no logits to sample from")
        var candidates = scratch
        scratch = []
        defer { scratch = candidates }
        let token: Int32
        if parameters.temperature <= 0 {
            token = greedyToken(logits)
        } else {
            let count = filter(logits, into: &candidates)
            token = draw(candidates, count: count)
        }
        accept(token)
        return token
    }

    /// Picks a token from `logits` and accepts it.
    public mutating func sample(_ logits: [Float]) -> Int32 {
        logits.withUnsafeBufferPointer { sample($0) }
    }

    /// Records `token` as generated (or as part of the prompt) for the penalties.
    public mutating func accept(_ token: Int32) {
        window.push(token)
    }

    /// Forgets the accepted tokens and restarts the random source from the seed.
    public mutating func reset() {
        window = PenaltyWindow(capacity: parameters.penaltyWindow)
        random = RandomSource(seed: seed)
    }

    /// The distribution the next draw would use: the tokens that survive the penalties and filters,
    /// with their probabilities after temperature scaling, most likely first (a single token with
    /// probability 1 when greedy). Nothing is accepted and no random number is used.
    public func distribution(_ logits: [Float]) -> [TokenProbability] {
        logits.withUnsafeBufferPointer { row in
            if parameters.temperature <= 0 { return [TokenProbability(token: greedyToken(row), probability: 1)] }
            var candidates: [Candidate] = []
            let count = filter(row, into: &candidates)
            let (weights, total) = Self.weights(candidates, count: count)
            return (0 ..< count).map { TokenProbability(token: candidates[$0].id, probability: weights[$0] / total) }
                .sorted { $0.probability > $1.probability || ($0.probability == $1.probability && $0.token < $1.token) }
        }
    }

    // MARK: - The chain

    private func greedyToken(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        var best = 0
        var bestLogit = -Float.infinity
        let penalties = penaltiesActive
        for i in 0 ..< logits.count {
            let l = penalties ? penalized(logits[i], token: Int32(i)) : logits[i]
            if l > bestLogit {  // NaN never wins; ties keep the lowest id
                best = i
                bestLogit = l
            }
        }
        return Int32(best)
    }

    @inline(__always) private func penalized(_ logit: Float, token: Int32) -> Float {
        guard let count = window.counts[token] else { return logit }
        return Self.applyPenalties(logit, count: count, parameters)
    }

    /// Whether the penalties can change any logit.
    private var penaltiesActive: Bool {
        let p = parameters
        return p.penaltyWindow != 0 && !window.isEmpty
            && (p.repeatPenalty != 1 || p.frequencyPenalty != 0 || p.presencePenalty != 0)
    }

    static func applyPenalties(_ logit: Float, count: Int, _ p: SamplingParameters) -> Float {
        var l = logit <= 0 ? logit * p.repeatPenalty : logit / p.repeatPenalty
        l -= Float(count) * p.frequencyPenalty + p.presencePenalty
        return l
    }

    /// Runs penalties, top-k, top-p, min-p and temperature; the survivors are `candidates[0 ..< count]`.
    private func filter(_ logits: UnsafeBufferPointer<Float>, into candidates: inout [Candidate]) -> Int {
        let p = parameters
        let vocabulary = logits.count
        if candidates.count != vocabulary {
            candidates = [Candidate](repeating: Candidate(id: 0, logit: 0), count: vocabulary)
        }
        candidates.withUnsafeMutableBufferPointer { b in
            for i in 0 ..< vocabulary {
                let l = logits[i]
                b[i] = Candidate(id: Int32(i), logit: l.isNaN ? -.infinity : l)
            }
        }
        if penaltiesActive {
            for (token, count) in window.counts where Int(token) >= 0 && Int(token) < vocabulary {
                candidates[Int(token)].logit = Self.applyPenalties(candidates[Int(token)].logit, count: count, p)
            }
        }
        var count = vocabulary
        var sorted = 0  // candidates[0 ..< sorted] are the best `sorted` of the first `count`, in order
        let minKeep = max(1, p.minKeep)

        if p.topK > 0 && p.topK < count {
            Self.sortPrefix(&candidates, count: count, sorted: &sorted, upTo: p.topK)
            count = p.topK
        }

        if p.topP < 1 {
            let maxLogit = sorted > 0 ? candidates[0].logit : Self.maxLogit(candidates, count: count)
            var total = 0.0
            for i in 0 ..< count { total += Double(expFloat(candidates[i].logit - maxLogit)) }
            var cumulative = 0.0
            var keep = count
            var i = 0
            while i < count {
                if i == sorted { Self.sortPrefix(&candidates, count: count, sorted: &sorted, upTo: max(256, sorted * 4)) }
                cumulative += Double(expFloat(candidates[i].logit - maxLogit)) / total
                if cumulative >= Double(p.topP) && i + 1 >= minKeep {
                    keep = i + 1
                    break
                }
                i += 1
            }
            count = keep
            sorted = min(sorted, count)
        }

        if p.minP > 0 {
            let maxLogit = sorted > 0 ? candidates[0].logit : Self.maxLogit(candidates, count: count)
            let threshold = maxLogit + logFloat(p.minP)
            var survivors = 0
            for i in 0 ..< count where candidates[i].logit >= threshold { survivors += 1 }
            if survivors >= minKeep {
                var kept = 0, keptSorted = 0
                for i in 0 ..< count where candidates[i].logit >= threshold {
                    candidates[kept] = candidates[i]
                    kept += 1
                    if i < sorted { keptSorted += 1 }
                }
                count = kept
                sorted = keptSorted
            } else {
                Self.sortPrefix(&candidates, count: count, sorted: &sorted, upTo: minKeep)
                count = min(count, minKeep)
            }
        }

        let temperature = p.temperature
        if temperature != 1 {
            for i in 0 ..< count { candidates[i].logit /= temperature }
        }
        return count
    }

    /// Unnormalised probabilities `expf(logit − max)` of the survivors, and their sum.
    static func weights(_ candidates: [Candidate], count: Int) -> ([Double], Double) {
        let maxLogit = maxLogit(candidates, count: count)
        var weights = [Double](repeating: 0, count: count)
        var total = 0.0
        for i in 0 ..< count {
            let w = maxLogit == -.infinity ? 1 : Double(expFloat(candidates[i].logit - maxLogit))
            weights[i] = w
            total += w
        }
        return (weights, total)
    }

    private mutating func draw(_ candidates: [Candidate], count: Int) -> Int32 {
        if count == 1 { return candidates[0].id }
        let maxLogit = Self.maxLogit(candidates, count: count)
        if maxLogit == -.infinity { return candidates[0].id }
        var weights = weightScratch
        weightScratch = []
        defer { weightScratch = weights }
        weights.removeAll(keepingCapacity: true)
        var total = 0.0
        for i in 0 ..< count {
            let w = Double(expFloat(candidates[i].logit - maxLogit))
            weights.append(w)
            total += w
        }
        let target = random.nextUnit() * total
        var running = 0.0
        for i in 0 ..< count {
            running += weights[i]
            if running >= target { return candidates[i].id }
        }
        return candidates[count - 1].id
    }

    static func maxLogit(_ candidates: [Candidate], count: Int) -> Float {
        var m = -Float.infinity
        for i in 0 ..< count where candidates[i].logit > m { m = candidates[i].logit }
        return m
    }

    // MARK: - Partial sorting

    /// Extends the sorted prefix of `candidates[0 ..< count]` to `min(count, target)` elements: the
    /// best remaining ones are moved to the front (the others stay behind them, in some order), then
    /// only they are sorted.
    static func sortPrefix(_ candidates: inout [Candidate], count: Int, sorted: inout Int, upTo target: Int) {
        let end = min(count, target)
        guard end > sorted else { return }
        candidates.withUnsafeMutableBufferPointer { buffer in
            // Raw buffer access: every index used lies in 0 ..< count ≤ buffer.count.
            let need = end - sorted, available = count - sorted
            if need < available && need <= 4096 && need * 8 <= available {
                // Few of many: find the need-th best with a bounded heap (one mostly-predictable pass),
                // then move everything at least as good to the front (a second such pass).
                let threshold = worstOfBest(buffer, from: sorted, to: count, keep: need)
                var store = sorted
                for i in sorted ..< count where !precedes(threshold, buffer[i]) {
                    buffer.swapAt(i, store)
                    store += 1
                }
            } else {
                select(buffer, from: sorted, to: count, nth: end)
            }
            buffer[sorted ..< end].sort(by: precedes)
        }
        sorted = end
    }

    /// The `keep`-th best element of `b[lo ..< hi]` (`keep` ≤ `hi − lo`), found with a heap whose root
    /// is the worst of the best `keep` seen so far.
    static func worstOfBest(_ b: UnsafeMutableBufferPointer<Candidate>, from lo: Int, to hi: Int, keep: Int) -> Candidate {
        var heap = Array(b[lo ..< lo + keep])
        heap.withUnsafeMutableBufferPointer { h in
            // Raw buffer access: heap indices stay below `keep`.
            func siftDown(_ start: Int) {
                var i = start
                while true {
                    let l = 2 * i + 1, r = l + 1
                    var worst = i
                    if l < keep && precedes(h[worst], h[l]) { worst = l }
                    if r < keep && precedes(h[worst], h[r]) { worst = r }
                    if worst == i { return }
                    h.swapAt(i, worst)
                    i = worst
                }
            }
            for i in stride(from: keep / 2 - 1, through: 0, by: -1) { siftDown(i) }
            for i in lo + keep ..< hi where precedes(b[i], h[0]) {
                h[0] = b[i]
                siftDown(0)
            }
        }
        return heap[0]
    }

    /// Rearranges `b[lo ..< hi]` so that `b[lo ..< nth]` holds its best `nth − lo` elements (any order).
    static func select(_ b: UnsafeMutableBufferPointer<Candidate>, from lo: Int, to hi: Int, nth: Int) {
        var lo = lo, hi = hi
        while hi - lo > 16 {
            // Median of three as pivot, moved to the end.
            let mid = lo + (hi - lo) / 2
            if precedes(b[mid], b[lo]) { b.swapAt(mid, lo) }
            if precedes(b[hi - 1], b[lo]) { b.swapAt(hi - 1, lo) }
            if precedes(b[hi - 1], b[mid]) { b.swapAt(hi - 1, mid) }
            b.swapAt(mid, hi - 1)
            let pivot = b[hi - 1]
            var store = lo
            for i in lo ..< hi - 1 where precedes(b[i], pivot) {
                b.swapAt(i, store)
                store += 1
            }
            b.swapAt(store, hi - 1)
            if store == nth || store + 1 == nth { return }
            if store > nth { hi = store } else { lo = store + 1 }
        }
        // Small range: order it completely.
        b[lo ..< hi].sort(by: precedes)
    }

    /// The candidate order: larger logit first, then smaller token id.
    @inline(__always) static func precedes(_ a: Candidate, _ b: Candidate) -> Bool {
        a.logit > b.logit || (a.logit == b.logit && a.id < b.id)
    }
}

struct Candidate: Sendable {
    var id: Int32
    var logit: Float
}

/// The most recent accepted tokens and how often each occurs among them.
struct PenaltyWindow: Sendable {
    /// 0: nothing is kept; negative: no limit.
    let capacity: Int
    var ring: [Int32] = []
    var head = 0
    var counts: [Int32: Int] = [:]

    init(capacity: Int) { self.capacity = capacity }

    var isEmpty: Bool { counts.isEmpty }

    mutating func push(_ token: Int32) {
        if capacity == 0 { return }
        if capacity > 0 && ring.count == capacity {
            let old = ring[head]
            if let c = counts[old], c > 1 { counts[old] = c - 1 } else { counts[old] = nil }
            ring[head] = token
            head = (head + 1) % capacity
        } else {
            ring.append(token)
        }
        counts[token, default: 0] += 1
    }
}

/// xoshiro256** 1.0 seeded by splitmix64 (see `Sampler`).
struct RandomSource: Sendable, Equatable {
    var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init(seed: UInt64) {
        var x = SplitMix64(seed: seed)
        s0 = x.next()
        s1 = x.next()
        s2 = x.next()
        s3 = x.next()
    }

    mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    /// A uniform number in [0, 1) with 53 random bits.
    mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    @inline(__always) private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}


