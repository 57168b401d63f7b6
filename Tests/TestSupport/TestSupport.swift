#if canImport(Glibc)
import Glibc
#endif
import TensorIO

/// Shared helpers for the test targets: fixture paths, temporary files, approximate comparison.
public enum TestSupport {
    /// The repository root, derived from this source file's location (no Foundation, no bundles).
    public static var repositoryRoot: String {
        var path = "\(#filePath)"
        for _ in 0 ..< 3 {  // .../Tests/TestSupport/TestSupport.swift -> repo root
            if let slash = path.lastIndex(of: "/") { path = String(path[..<slash]) }
        }
        return path
    }

    /// Path of a committed fixture under `Tests/Fixtures/`.
    public static func fixture(_ relative: String) -> String {
        repositoryRoot + "/Tests/Fixtures/" + relative
    }

    /// Path of a file under `Formats/` (golden vectors).
    public static func formats(_ relative: String) -> String {
        repositoryRoot + "/Formats/" + relative
    }

    /// A fresh temporary directory (removed by the OS; tests may leave files in it).
    public static func temporaryDirectory(_ tag: String = "test") -> String {
        var template = Array("/tmp/softpromptkit-\(tag)-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> String? in
            mkdtemp(buffer.baseAddress!).map { String(cString: $0) }
        }
        guard let made else { preconditionFailure("mkdtemp failed") }
        return made
    }

    /// Writes `bytes` to a new temporary file and returns its path.
    public static func temporaryFile(_ bytes: [UInt8], name: String = "file.bin") throws -> String {
        let path = temporaryDirectory() + "/" + name
        try AtomicFile.write(to: path, bytes: bytes)
        return path
    }

    /// An executable product built beside the running test executable (SwiftPM puts both in one folder),
    /// nil when it was not built.
    public static func builtExecutable(_ name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let exe = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = exe.lastIndex(of: "/") else { return nil }
        let candidate = String(exe[..<slash]) + "/" + name
        return access(candidate, X_OK) == 0 ? candidate : nil
    }

    /// The default real model, when the bootstrap script has fetched it (nil otherwise).
    public static var defaultModelPath: String? {
        if let path = environmentValue("SOFTPROMPT_MODEL"), fileExists(path) { return path }
        let cache = environmentValue("SOFTPROMPT_CACHE")
            ?? ((environmentValue("XDG_CACHE_HOME") ?? ((environmentValue("HOME") ?? "/root") + "/.cache")) + "/softpromptkit")
        let path = cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
        return fileExists(path) ? path : nil
    }

    /// Largest absolute difference between two equally long float arrays (infinity if lengths differ).
    public static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return .infinity }
        var worst: Float = 0
        for i in a.indices {
            let d = abs(a[i] - b[i])
            if d.isNaN { return .infinity }
            worst = max(worst, d)
        }
        return worst
    }
}

/// Test data from the package's SplitMix64 (TensorIO).
extension SplitMix64 {
    /// Uniform in [-1, 1).
    public mutating func nextFloat() -> Float { Float(next() >> 40) / Float(1 << 23) - 1 }
}
