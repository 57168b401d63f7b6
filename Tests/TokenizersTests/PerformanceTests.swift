import GGUF
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport
import Tokenizers

/// The corpus through the default model's vocabulary, both ways. The times are printed as a record,
/// not asserted: speed belongs to benchmarks (`softprompt bench`), not to tests.
@Suite struct PerformanceTests {
    static func seconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9
    }

    @Test(.enabled(if: TestSupport.defaultModelPath != nil)) func encodesAndDecodes2000Lines() throws {
        let start = Self.seconds()
        let tokenizer = try Tokenizer(TokenizerVocabulary(gguf: GGUFFile(path: TestSupport.defaultModelPath!)))
        let loaded = Self.seconds()
        let lines = Array(TokenizerFixtures.corpus.prefix(2000))
        var tokens = 0
        for line in lines { tokens += tokenizer.encode(line, parseSpecial: true).count }
        let encoded = Self.seconds()
        var bytes = 0
        for line in lines { bytes += tokenizer.decodeBytes(tokenizer.encode(line)).count }
        let total = Self.seconds()
        print("""
            tokenizer: vocabulary loaded and indexed in \(Int((loaded - start) * 1000)) ms; \
            \(lines.count) lines (\(tokens) tokens) encoded in \(Int((encoded - loaded) * 1000)) ms; \
            encode + decode in \(Int((total - encoded) * 1000)) ms
            """)
        #expect(tokens > 40_000)
        #expect(bytes > 100_000)
    }
}
