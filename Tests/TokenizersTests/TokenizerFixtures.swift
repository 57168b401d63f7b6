import GGUF
import CZstd
import TensorIO
import TestSupport
import Tokenizers

/// Access to the fixtures written by `Tools/scripts/gen_tokenizer_fixtures.py`.
enum TokenizerFixtures {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func path(_ name: String) -> String { TestSupport.fixture("tokenizers/" + name) }

    /// The corpus entries (escapes resolved).
    static let corpus: [String] = {
        guard let bytes = try? readFile(path("corpus.txt")) else { return [] }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() }
        return lines.map { unescape(Array($0)) }
    }()

    /// Resolves the corpus escapes: `\n`, `\r`, `\\`, `\xHH`.
    static func unescape(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x5C, i + 1 < bytes.count {
                switch bytes[i + 1] {
                case 0x6E: out.append(0x0A); i += 2; continue
                case 0x72: out.append(0x0D); i += 2; continue
                case 0x5C: out.append(0x5C); i += 2; continue
                case 0x78 where i + 3 < bytes.count:
                    if let value = UInt8(String(decoding: bytes[(i + 2) ... (i + 3)], as: UTF8.self), radix: 16) {
                        out.append(value)
                        i += 4
                        continue
                    }
                default: break
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decompresses a single zstd frame that records its decompressed size.
    static func zstdDecompress(_ data: [UInt8]) throws -> [UInt8] {
        let size = data.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) }
        // ZSTD_CONTENTSIZE_UNKNOWN is UInt64.max, ZSTD_CONTENTSIZE_ERROR is UInt64.max - 1.
        guard size < UInt64.max - 1, size <= 64 << 20 else { throw Failure(description: "zstd frame size unknown") }
        var out = [UInt8](repeating: 0, count: Int(size))
        let written = out.withUnsafeMutableBytes { destination in
            data.withUnsafeBytes { source in
                ZSTD_decompress(destination.baseAddress, destination.count, source.baseAddress, source.count)
            }
        }
        guard ZSTD_isError(written) == 0, written == Int(size) else { throw Failure(description: "zstd error") }
        return out
    }

    /// The real model's tokenizer and expectations, built once for all the tests that use them.
    static let defaultModel: Result<(Tokenizer, Expectations), Failure> = {
        do {
            return .success((try Tokenizer(Case(name: "smollm").vocabulary()), try expectations("smollm")))
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }()

    /// The tokenizer and llama.cpp's results for one vocabulary.
    static func load(_ vocabulary: Case) throws -> (Tokenizer, Expectations) {
        if vocabulary.name == "smollm" { return try defaultModel.get() }
        return (try Tokenizer(vocabulary.vocabulary()), try expectations(vocabulary.name))
    }

    /// The llama.cpp results for one vocabulary.
    struct Expectations: Sendable {
        /// What `add_special` adds around the body of every entry.
        var prefix: [Int32] = []
        var suffix: [Int32] = []
        /// `llama_tokenize(add_special: false, parse_special: false)` per entry.
        var plain: [[Int32]] = []
        /// The same with `parse_special`, where it differs.
        var special: [Int: [Int32]] = [:]
        /// `llama_detokenize(plain, false, false)` where it differs from the entry.
        var decode: [Int: String] = [:]
        /// `llama_detokenize(special, false, true)` where it differs from the entry.
        var specialDecode: [Int: String] = [:]
        /// `llama_detokenize(ids with add_special, remove_special, unparse_special)` for some entries.
        var bosDecode: [(index: Int, removeSpecial: Bool, renderSpecial: Bool, text: String)] = []
        /// `llama_token_to_piece(id, special: true)`.
        var pieces: [(id: Int32, bytes: [UInt8])] = []
        /// `llama_vocab_get_attr(id)` for the same tokens.
        var attributes: [(id: Int32, value: UInt16)] = []
        /// Special ids (-1: none), `add_bos`, `add_eos`, `n_tokens` by llama.cpp's name.
        var info: [String: Int32] = [:]
        /// The end-of-generation ids.
        var endOfGeneration: Set<Int32> = []
    }

    /// Parses `<name>.tokens.zst`, resolving the entries a variant shares with its base.
    static func expectations(_ name: String) throws -> Expectations {
        let text = try zstdDecompress(try readFile(path(name + ".tokens.zst")))
        var result = Expectations()
        var section = ""
        var plain: [Int: [Int32]] = [:]
        var base: String? = nil
        func ids(_ field: Substring) -> [Int32] {
            field.split(separator: " ").map { Int32($0)! }
        }
        for rawLine in text.split(separator: 0x0A, omittingEmptySubsequences: false) {
            let line = String(decoding: rawLine, as: UTF8.self)
            if line.isEmpty { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast())
                continue
            }
            if section.isEmpty {
                if line.hasPrefix("prefix: ") { result.prefix = ids(line.dropFirst(8)) }
                if line.hasPrefix("suffix: ") { result.suffix = ids(line.dropFirst(8)) }
                if line.hasPrefix("base: "), line != "base: -" { base = String(line.dropFirst(6)) }
                continue
            }
            let fields = line.split(separator: "\t", maxSplits: section == "bos-decode" ? 3 : 1,
                                    omittingEmptySubsequences: false)
            switch section {
            case "plain": plain[Int(fields[0])!] = ids(fields[1])
            case "special": result.special[Int(fields[0])!] = ids(fields[1])
            case "decode": result.decode[Int(fields[0])!] = unescape(Array(fields[1].utf8))
            case "special-decode": result.specialDecode[Int(fields[0])!] = unescape(Array(fields[1].utf8))
            case "bos-decode":
                result.bosDecode.append((Int(fields[0])!, fields[1] == "1", fields[2] == "1",
                                         unescape(Array(fields[3].utf8))))
            case "pieces": result.pieces.append((Int32(fields[0])!, hexBytes(fields[1])))
            case "attributes": result.attributes.append((Int32(fields[0])!, UInt16(fields[1])!))
            case "info":
                if fields[0] == "eog" {
                    result.endOfGeneration = Set(ids(fields[1]))
                } else {
                    result.info[String(fields[0])] = Int32(fields[1])!
                }
            default: throw Failure(description: "unknown section \(section)")
            }
        }
        let basePlain = try base.map { try expectations($0).plain }
        result.plain = try corpus.indices.map { index in
            if let ids = plain[index] { return ids }
            guard let basePlain, index < basePlain.count else { throw Failure(description: "entry \(index) missing") }
            return basePlain[index]
        }
        return result
    }

    static func hexBytes(_ text: Substring) -> [UInt8] {
        let chars = Array(text.utf8)
        return stride(from: 0, to: chars.count - 1, by: 2).map {
            UInt8(String(decoding: chars[$0 ... $0 + 1], as: UTF8.self), radix: 16)!
        }
    }

    /// The vocabularies under test, with the overrides the generator applied to `bpe.gguf`.
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var description: String { name }

        static let small: [Case] = ["spm", "spm-phi3", "bpe-gpt-2", "bpe-llama-bpe", "bpe-qwen2", "bpe-default", "bpe-falcon",
                                    "bpe-qwen35", "bpe-starcoder", "bpe-laguna"].map { Case(name: $0) }

        func vocabulary() throws -> TokenizerVocabulary {
            if name == "smollm" {
                return try TokenizerVocabulary(gguf: GGUFFile(path: TestSupport.defaultModelPath!))
            }
            if name == "spm" { return try TokenizerVocabulary(gguf: GGUFFile(path: path("spm.gguf"))) }
            if name == "spm-phi3" {
                var v = try TokenizerVocabulary(gguf: GGUFFile(path: path("spm.gguf")))
                v.modelName = "Phi-3 Mini (test)"
                return v
            }
            var v = try TokenizerVocabulary(gguf: GGUFFile(path: path("bpe.gguf")))
            let id = { (text: String) -> Int32 in Int32(v.tokens.firstIndex(of: text)!) }
            switch name {
            case "bpe-gpt-2": break
            case "bpe-llama-bpe":
                v.preTokenizer = "llama-bpe"
                v.bosTokenID = id("<|begin_of_text|>")
                v.eosTokenID = id("<|eot_id|>")
                v.addBOS = nil
            case "bpe-qwen2":
                v.preTokenizer = "qwen2"
                v.addBOS = false
                v.tokenTypes![Int(id("<|im_end|>"))] = TokenType.normal.rawValue
            case "bpe-default": v.preTokenizer = nil
            case "bpe-falcon": v.preTokenizer = "falcon"
            case "bpe-qwen35": v.preTokenizer = "qwen35"
            case "bpe-laguna": v.preTokenizer = "laguna"
            case "bpe-starcoder":
                v.preTokenizer = "starcoder"
                v.addEOS = true
            default: throw Failure(description: "unknown case \(name)")
            }
            return v
        }
    }
}
