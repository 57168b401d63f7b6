#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TensorIO

/// How much memory a run may use, and the check that refuses work that cannot fit *before* anything
/// large is allocated (a model bigger than the machine, a KV cache or training arena past the limit).
///
/// The limit is, in order: `$SOFTPROMPT_MEMORY_LIMIT` (bytes, or with a K/M/G/T suffix, powers of 1024);
/// else the smaller of the physical memory (`MemTotal` of /proc/meminfo) and the cgroup v2 limit
/// (`memory.max` of the process's cgroup) when there is one. It is the machine's capacity, not what is
/// free at the moment: a busy machine slows a run down, it does not make it impossible.
public struct MemoryBudget: Sendable, Equatable {
    /// Bytes a run may use.
    public var limit: Int
    /// Where the limit comes from (for messages).
    public var source: String

    public init(limit: Int, source: String) {
        self.limit = limit
        self.source = source
    }

    /// The budget of this process (see the type's description), or nil when no limit can be found.
    public static func system() -> MemoryBudget? {
        if let text = environmentValue("SOFTPROMPT_MEMORY_LIMIT") {
            if let bytes = parseSize(text) { return MemoryBudget(limit: bytes, source: "SOFTPROMPT_MEMORY_LIMIT") }
            return nil
        }
        var best: MemoryBudget?
        if let total = meminfoTotal() { best = MemoryBudget(limit: total, source: "physical memory") }
        if let cgroup = cgroupLimit(), cgroup < (best?.limit ?? Int.max) {
            best = MemoryBudget(limit: cgroup, source: "the cgroup memory limit")
        }
        return best
    }

    /// Refuses `parts` (what needs memory, in bytes) when their sum exceeds the limit.
    /// - Parameter what: the work, for the message (e.g. "running the model with 4096 positions").
    /// - Throws: `ModelError` `.insufficientMemory` listing each part, the sum and the limit.
    public func check(_ parts: [(String, Int)], for what: String) throws(ModelError) {
        var total = 0
        for (_, bytes) in parts { total = total.addingReportingOverflow(max(0, bytes)).overflow ? Int.max : total + max(0, bytes) }
        guard total > limit else { return }
        let list = parts.map { "\($0.0) \(Self.format($0.1))" }.joined(separator: " + ")
        throw ModelError(.insufficientMemory,
                         "\(what) needs \(Self.format(total)) (\(list)), more than the \(Self.format(limit)) of \(source)")
    }

    /// `n` bytes in binary units with one decimal ("1.5 GiB").
    public static func format(_ n: Int) -> String {
        if n == Int.max { return "more than 8 EiB" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        if unit == 0 { return "\(n) B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }

    /// "123", "64M", "1.5G", "2T" (powers of 1024) → bytes.
    static func parseSize(_ text: String) -> Int? {
        var digits = text.trimmingSpaces()
        var scale = 1.0
        if let last = digits.last?.uppercased(), let i = ["K", "M", "G", "T"].firstIndex(of: last) {
            scale = Double(1 << (10 * (i + 1)))
            digits.removeLast()
        }
        guard let value = Double(digits), value.isFinite, value > 0, value * scale < 9e18 else { return nil }
        return Int(value * scale)
    }

    private static func meminfoTotal() -> Int? {
        guard let bytes = try? readFile("/proc/meminfo", limit: 1 << 20) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, let kib = Int(fields[1]) else { return nil }
            return kib * 1024
        }
        return nil
    }

    private static func cgroupLimit() -> Int? {
        // cgroup v2: "0::/path" in /proc/self/cgroup; the limit in /sys/fs/cgroup/path/memory.max.
        guard let bytes = try? readFile("/proc/self/cgroup", limit: 1 << 16) else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("0::") {
            let path = String(line.dropFirst(3))
            let file = "/sys/fs/cgroup" + (path == "/" ? "" : path) + "/memory.max"
            guard let text = try? readFile(file, limit: 4096) else { return nil }
            return Int(String(decoding: text, as: UTF8.self).trimmingSpaces())  // "max" → nil
        }
        return nil
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        let scalars = unicodeScalars.drop { $0 == " " || $0 == "\n" || $0 == "\t" }
        return String(String.UnicodeScalarView(scalars.reversed().drop { $0 == " " || $0 == "\n" || $0 == "\t" }.reversed()))
    }
}

extension LlamaModel {
    /// Bytes of every weight the model reads per token (mapped from the file, or held in memory).
    public var weightBytes: Int {
        var total = tokenEmbedding.rows * tokenEmbedding.rowBytes + outputNorm.count * 4
        if output.weight.bytes.baseAddress != tokenEmbedding.bytes.baseAddress { total += output.weight.rows * output.weight.rowBytes }
        for layer in layers {
            for linear in [layer.q, layer.k, layer.v, layer.o, layer.gate, layer.up, layer.down] {
                total += linear.weight.rows * linear.weight.rowBytes + (linear.bias?.count ?? 0) * 4
            }
            total += (layer.attnNorm.count + layer.ffnNorm.count) * 4
        }
        return total
    }

    /// Bytes of a KV cache for `positions` (float32 keys and values at every layer).
    public func kvCacheBytes(positions: Int) -> Int {
        let perPosition = 2 * config.numHiddenLayers * config.numKeyValueHeads * config.headDim * MemoryLayout<Float>.size
        let (bytes, overflow) = perPosition.multipliedReportingOverflow(by: max(0, positions))
        return overflow ? Int.max : bytes
    }

    /// Refuses a model whose weights plus a KV cache for `positions` do not fit `budget`.
    /// - Throws: `ModelError` `.insufficientMemory`.
    public func checkMemory(positions: Int, budget: MemoryBudget? = .system()) throws(ModelError) {
        try budget?.check([("weights", weightBytes), ("KV cache for \(positions) position\(positions == 1 ? "" : "s")", kvCacheBytes(positions: positions))],
                          for: "running this \(config.architecture) model (\(layers.count) layers, width \(config.hiddenSize))")
    }
}
