import TensorIO
import Tokenizers

/// A deliberately small GGUF metadata reader for the tests: it reads the header and the key/value
/// section, keeps the `tokenizer.*` values and skips everything else. Every count is checked
/// against the bytes that remain before anything is allocated. (The real GGUF reader lives in the
/// GGUF module; this one only exists so the tokenizer tests do not depend on it.)
enum GGUFVocabularyScanner {
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    enum Value {
        case unsigned(UInt64)
        case signed(Int64)
        case float(Double)
        case bool(Bool)
        case string(String)
        case strings([String])
        case integers([Int64])
        case floats([Float])
        case skipped
    }

    /// The `tokenizer.*` and `general.*` metadata of the GGUF file at `path`.
    static func metadata(path: String) throws -> [String: Value] {
        let file = try MappedFile(path: path)
        var cursor = ByteCursor(file.bytes)
        guard try cursor.u32() == 0x4655_4747 else { throw Malformed(description: "not a GGUF file") }
        let version = try cursor.u32()
        guard version == 2 || version == 3 else { throw Malformed(description: "GGUF version \(version)") }
        _ = try cursor.u64()  // tensor count
        let kvCount = try cursor.u64()
        guard kvCount <= UInt64(cursor.remaining / 12) else { throw Malformed(description: "kv count \(kvCount)") }
        var result: [String: Value] = [:]
        for _ in 0 ..< kvCount {
            let key = try string(&cursor)
            let type = try cursor.u32()
            let keep = key.hasPrefix("tokenizer.") || key.hasPrefix("general.")
            result[key] = try value(&cursor, type: type, keep: keep)
        }
        return result
    }

    /// The tokenizer vocabulary of the GGUF file at `path` (the mapping the GGUF module will use).
    static func vocabulary(path: String) throws -> TokenizerVocabulary {
        let m = try metadata(path: path)
        guard case let .string(model)? = m["tokenizer.ggml.model"] else {
            throw Malformed(description: "no tokenizer.ggml.model")
        }
        guard case let .strings(tokens)? = m["tokenizer.ggml.tokens"] else {
            throw Malformed(description: "no tokenizer.ggml.tokens")
        }
        var vocabulary = TokenizerVocabulary(model: model, tokens: tokens)
        if case let .string(pre)? = m["tokenizer.ggml.pre"] { vocabulary.preTokenizer = pre }
        if case let .string(name)? = m["general.name"] { vocabulary.modelName = name }
        if case let .integers(types)? = m["tokenizer.ggml.token_type"] {
            vocabulary.tokenTypes = types.map { Int32(truncatingIfNeeded: $0) }
        }
        switch m["tokenizer.ggml.scores"] {
        case let .floats(scores)?: vocabulary.scores = scores
        case let .integers(scores)?: vocabulary.scores = scores.map { Float($0) }
        default: break
        }
        if case let .strings(merges)? = m["tokenizer.ggml.merges"] { vocabulary.merges = merges }
        func id(_ key: String) -> Int32? {
            switch m["tokenizer.ggml." + key] {
            case let .unsigned(v)?: return v <= UInt64(Int32.max) ? Int32(v) : -1
            case let .signed(v)?: return Int32(exactly: v) ?? -1
            default: return nil
            }
        }
        func flag(_ key: String) -> Bool? {
            if case let .bool(v)? = m["tokenizer.ggml." + key] { return v }
            return nil
        }
        vocabulary.bosTokenID = id("bos_token_id")
        vocabulary.eosTokenID = id("eos_token_id")
        vocabulary.eotTokenID = id("eot_token_id")
        vocabulary.eomTokenID = id("eom_token_id")
        vocabulary.unknownTokenID = id("unknown_token_id")
        vocabulary.separatorTokenID = id("seperator_token_id")
        vocabulary.paddingTokenID = id("padding_token_id")
        vocabulary.maskTokenID = id("mask_token_id")
        vocabulary.fimPrefixTokenID = id("fim_pre_token_id") ?? id("prefix_token_id")
        vocabulary.fimSuffixTokenID = id("fim_suf_token_id") ?? id("suffix_token_id")
        vocabulary.fimMiddleTokenID = id("fim_mid_token_id") ?? id("middle_token_id")
        vocabulary.fimPadTokenID = id("fim_pad_token_id")
        vocabulary.fimRepoTokenID = id("fim_rep_token_id")
        vocabulary.fimSeparatorTokenID = id("fim_sep_token_id")
        vocabulary.addBOS = flag("add_bos_token")
        vocabulary.addEOS = flag("add_eos_token")
        vocabulary.addSpacePrefix = flag("add_space_prefix")
        return vocabulary
    }

    private static func string(_ cursor: inout ByteCursor) throws -> String {
        let length = try cursor.u64()
        guard length <= UInt64(cursor.remaining) else { throw Malformed(description: "string length \(length)") }
        let bytes = try cursor.slice(Int(length))
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Size in bytes of a fixed-size scalar type, or nil for strings and arrays.
    private static func scalarSize(_ type: UInt32) -> Int? {
        switch type {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12: return 8
        default: return nil
        }
    }

    private static func scalar(_ cursor: inout ByteCursor, type: UInt32) throws -> Value {
        switch type {
        case 0: return .unsigned(UInt64(try cursor.u8()))
        case 1: return .signed(Int64(try cursor.i8()))
        case 2: return .unsigned(UInt64(try cursor.u16()))
        case 3: return .signed(Int64(try cursor.i16()))
        case 4: return .unsigned(UInt64(try cursor.u32()))
        case 5: return .signed(Int64(try cursor.i32()))
        case 6: return .float(Double(try cursor.f32()))
        case 7: return .bool(try cursor.u8() != 0)
        case 10: return .unsigned(try cursor.u64())
        case 11: return .signed(try cursor.i64())
        case 12: return .float(try cursor.f64())
        default: throw Malformed(description: "value type \(type)")
        }
    }

    private static func value(_ cursor: inout ByteCursor, type: UInt32, keep: Bool) throws -> Value {
        if type == 8 { return .string(try string(&cursor)) }
        if type != 9 { return try scalar(&cursor, type: type) }
        let elementType = try cursor.u32()
        let count = try cursor.u64()
        if let size = scalarSize(elementType) {
            guard count <= UInt64(cursor.remaining / size) else { throw Malformed(description: "array count \(count)") }
            if !keep {
                try cursor.skip(Int(count) * size)
                return .skipped
            }
            if elementType == 6 {
                var floats: [Float] = []
                floats.reserveCapacity(Int(count))
                for _ in 0 ..< count { floats.append(try cursor.f32()) }
                return .floats(floats)
            }
            var integers: [Int64] = []
            integers.reserveCapacity(Int(count))
            for _ in 0 ..< count {
                switch try scalar(&cursor, type: elementType) {
                case let .unsigned(v): integers.append(Int64(bitPattern: v))
                case let .signed(v): integers.append(v)
                case let .bool(v): integers.append(v ? 1 : 0)
                case let .float(v): integers.append(Int64(v))
                default: break
                }
            }
            return .integers(integers)
        }
        guard elementType == 8 else { throw Malformed(description: "array of type \(elementType)") }
        guard count <= UInt64(cursor.remaining / 8) else { throw Malformed(description: "array count \(count)") }
        var strings: [String] = []
        if keep { strings.reserveCapacity(Int(count)) }
        for _ in 0 ..< count {
            let s = try string(&cursor)
            if keep { strings.append(s) }
        }
        return keep ? .strings(strings) : .skipped
    }
}
