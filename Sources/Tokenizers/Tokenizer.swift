/// A tokenizer that produces the same token ids as llama.cpp for a GGUF vocabulary.
///
/// Two model kinds are implemented: byte-level BPE (`tokenizer.ggml.model == "gpt2"`, with the
/// pre-tokenizer named by `tokenizer.ggml.pre`) and SentencePiece-style BPE with byte fallback
/// (`"llama"`). Special tokens (control, user-defined, unknown) are cut out of the text before the
/// model runs, and text is decoded back with llama.cpp's `token_to_piece` / `detokenize` rules.
///
/// A `Tokenizer` is immutable and can be shared between tasks.
public final class Tokenizer: Sendable {
    /// The tokenizer algorithm.
    public enum Model: String, Sendable {
        /// Byte-level BPE (`"gpt2"`).
        case bytePairEncoding = "gpt2"
        /// SentencePiece-style BPE over characters with `<0xXX>` byte fallback (`"llama"`).
        case sentencePiece = "llama"
    }

    /// The model kinds `init(_:)` accepts, by their `tokenizer.ggml.model` name.
    public static let supportedModels: [String] = ["gpt2", "llama"]
    /// The pre-tokenizer names `init(_:)` accepts for byte-level BPE, in llama.cpp's spelling.
    public static var supportedPreTokenizers: [String] { PreTokenizer.supportedNames }

    /// The algorithm.
    public let model: Model
    /// The pre-tokenizer name for byte-level BPE (nil for SentencePiece).
    public let preTokenizer: String?
    /// The number of tokens; valid ids are `0 ..< vocabularySize`.
    public let vocabularySize: Int
    /// The resolved special token ids.
    public let specialTokens: SpecialTokens
    /// Whether `encode` with `addSpecial` prepends `specialTokens.bos`.
    public let addsBOS: Bool
    /// Whether `encode` with `addSpecial` appends `specialTokens.eos`.
    public let addsEOS: Bool
    /// Whether a space is prepended to SentencePiece text and one leading space dropped on decoding.
    public let addsSpacePrefix: Bool
    /// Tokens that end generation (EOS, EOT, EOM and the end markers llama.cpp recognises by text).
    public let endOfGenerationTokens: Set<Int32>
    /// The vocabulary the tokenizer was built from, unchanged (identifies the tokenizer, e.g. in the
    /// soft-prompt model fingerprint).
    public let vocabulary: TokenizerVocabulary

    private let texts: [String]
    private let table: TokenTable
    private let types: [TokenType]
    /// llama.cpp's attributes after its fix-ups (internal for the tests).
    let attributes: [TokenAttributes]
    private let cleanSpaces: Bool
    private let splitter: PreTokenizer?
    private let bpe: BytePairEncoder?
    private let spm: SentencePieceEncoder?
    /// Special tokens in matching order: longest text first.
    private let specialMatchOrder: [(bytes: [UInt8], id: Int32, attributes: TokenAttributes)]
    /// `piece(id, renderSpecial: true)` for every token, concatenated.
    private let pieceBytes: [UInt8]
    private let pieceOffsets: [Int]

    /// Builds a tokenizer from a vocabulary.
    /// - Parameter vocabulary: the `tokenizer.ggml.*` values of a model file.
    /// - Throws: `TokenizerError` when the model kind or pre-tokenizer is not supported, when the
    ///   vocabulary is inconsistent (duplicate tokens, short arrays, merges outside the vocabulary),
    ///   or when it asks for a BOS / EOS token it does not have.
    public init(_ vocabulary: TokenizerVocabulary) throws(TokenizerError) {
        self.vocabulary = vocabulary
        let count = vocabulary.tokens.count
        guard count > 0, count <= Int(Int32.max) else { throw .invalidTokenCount(count) }
        switch vocabulary.model {
        case "gpt2": model = .bytePairEncoding
        case "llama": model = .sentencePiece
        default: throw .unsupportedModel(vocabulary.model, supported: Self.supportedModels)
        }
        if let types = vocabulary.tokenTypes, types.count < count {
            throw .arrayTooShort(field: "tokenizer.ggml.token_type", count: types.count, tokens: count)
        }
        if let scores = vocabulary.scores, scores.count < count {
            throw .arrayTooShort(field: "tokenizer.ggml.scores", count: scores.count, tokens: count)
        }

        var splitter: PreTokenizer? = nil
        if model == .bytePairEncoding {
            let name = vocabulary.preTokenizer.flatMap { $0.isEmpty ? nil : $0 } ?? "default"
            guard let found = PreTokenizer.named(name) else {
                throw .unsupportedPreTokenizer(name, supported: PreTokenizer.supportedNames)
            }
            splitter = found
        }
        self.splitter = splitter
        preTokenizer = splitter?.name

        // Token texts (llama.cpp renames empty ones) and the reverse map.
        var texts = vocabulary.tokens
        for index in 0 ..< count where texts[index].isEmpty { texts[index] = "[EMPTY_\(index)]" }
        let table = try TokenTable(texts)
        let rawTypes = vocabulary.tokenTypes.map { Array($0.prefix(count)) }
        types = rawTypes?.map { TokenType(rawValue: $0) ?? .undefined } ?? Array(repeating: .normal, count: count)
        var attributes = rawTypes?.map { TokenAttributes(type: $0) } ?? Array(repeating: .normal, count: count)

        // Defaults per model kind, then the values from the file.
        var special = SpecialTokens()
        var addBOS: Bool, addEOS = false, addSpacePrefix: Bool
        switch model {
        case .sentencePiece:
            special.bos = 1; special.eos = 2; special.unknown = 0
            addBOS = true; addSpacePrefix = true
            cleanSpaces = false
        case .bytePairEncoding:
            special.bos = splitter!.noDefaultBOS ? nil : 11
            special.eos = 11
            addBOS = splitter!.defaultAddBOS; addSpacePrefix = false
            cleanSpaces = splitter!.cleanSpaces
        }
        addSpacePrefix = vocabulary.addSpacePrefix ?? addSpacePrefix
        func pick(_ slot: WritableKeyPath<SpecialTokens, Int32?>, _ fromFile: Int32?) {
            if let id = special[keyPath: slot], id >= count { special[keyPath: slot] = nil }
            if let id = fromFile, id >= 0, Int(id) < count { special[keyPath: slot] = id }
        }
        pick(\.bos, vocabulary.bosTokenID)
        pick(\.eos, vocabulary.eosTokenID)
        pick(\.eot, vocabulary.eotTokenID)
        pick(\.eom, vocabulary.eomTokenID)
        pick(\.unknown, vocabulary.unknownTokenID)
        pick(\.separator, vocabulary.separatorTokenID)
        pick(\.padding, vocabulary.paddingTokenID)
        pick(\.mask, vocabulary.maskTokenID)
        pick(\.fimPrefix, vocabulary.fimPrefixTokenID)
        pick(\.fimSuffix, vocabulary.fimSuffixTokenID)
        pick(\.fimMiddle, vocabulary.fimMiddleTokenID)
        pick(\.fimPad, vocabulary.fimPadTokenID)
        pick(\.fimRepo, vocabulary.fimRepoTokenID)
        pick(\.fimSeparator, vocabulary.fimSeparatorTokenID)
        addBOS = vocabulary.addBOS ?? addBOS
        addEOS = vocabulary.addEOS ?? addEOS
        if addBOS && special.bos == nil { throw .missingSpecialToken("BOS") }
        if addEOS && special.eos == nil { throw .missingSpecialToken("EOS") }

        var resolution = SpecialTokenResolution(ids: special, attributes: attributes)
        resolution.resolve(table)
        resolution.adjustForModel(named: vocabulary.modelName, table)
        special = resolution.ids
        attributes = resolution.attributes
        // tokenizer.json's lstrip / rstrip, with Hugging Face's notion of whitespace.
        for id in vocabulary.leftStripTokenIDs where id >= 0 && Int(id) < count {
            attributes[Int(id)].formUnion([.leftStrip, .unicodeStrip])
        }
        for id in vocabulary.rightStripTokenIDs where id >= 0 && Int(id) < count {
            attributes[Int(id)].formUnion([.rightStrip, .unicodeStrip])
        }

        self.texts = texts
        self.table = table
        self.attributes = attributes
        vocabularySize = count
        specialTokens = special
        addsBOS = addBOS
        addsEOS = addEOS
        addsSpacePrefix = addSpacePrefix
        endOfGenerationTokens = resolution.endOfGeneration

        let matchable: TokenAttributes = [.control, .userDefined, .unknown]
        specialMatchOrder = (0 ..< count)
            .filter { !attributes[$0].isDisjoint(with: matchable) }
            .map { (bytes: Array(texts[$0].utf8), id: Int32($0), attributes: attributes[$0]) }
            .sorted { $0.bytes.count != $1.bytes.count ? $0.bytes.count > $1.bytes.count : $0.id < $1.id }

        switch model {
        case .bytePairEncoding:
            bpe = try BytePairEncoder(merges: vocabulary.merges, ids: table, ignoreMerges: splitter!.ignoreMerges)
            spm = nil
        case .sentencePiece:
            bpe = nil
            spm = SentencePieceEncoder(ids: table, scores: vocabulary.scores.map { Array($0.prefix(count)) }
                                                    ?? Array(repeating: 0, count: count))
        }

        var bytes: [UInt8] = []
        var offsets: [Int] = [0]
        offsets.reserveCapacity(count + 1)
        for index in 0 ..< count {
            Self.renderPiece(text: texts[index], attributes: attributes[index], model: model, into: &bytes)
            offsets.append(bytes.count)
        }
        pieceBytes = bytes
        pieceOffsets = offsets
    }

    // MARK: - Vocabulary queries

    /// The text of token `id` as stored in the vocabulary (byte-level BPE spells it in the GPT-2
    /// alphabet, SentencePiece with `▁`), or nil when `id` is out of range.
    public func text(of id: Int32) -> String? {
        isValid(id) ? texts[Int(id)] : nil
    }

    /// The id of the token whose vocabulary text has exactly the UTF-8 bytes of `text` (no Unicode
    /// equivalence: `"é"` and `"e\u{301}"` are different texts).
    public func id(of text: String) -> Int32? { table.id(text) }

    /// The type the vocabulary gives token `id`, or nil when `id` is out of range.
    public func tokenType(of id: Int32) -> TokenType? {
        isValid(id) ? types[Int(id)] : nil
    }

    /// Whether `id` names a token.
    public func isValid(_ id: Int32) -> Bool { id >= 0 && Int(id) < vocabularySize }

    /// Whether generation should stop at `id`.
    public func isEndOfGeneration(_ id: Int32) -> Bool { endOfGenerationTokens.contains(id) }

    // MARK: - Encoding

    /// Splits `text` into token ids exactly as llama.cpp's `llama_tokenize` does.
    /// - Parameters:
    ///   - text: the text to tokenize.
    ///   - addSpecial: add the BOS / EOS tokens the vocabulary asks for (`addsBOS`, `addsEOS`).
    ///   - parseSpecial: recognise the text of control and unknown tokens (such as `<|im_start|>`) and
    ///     emit them as single tokens, as llama.cpp's `parse_special` and a transformers tokenizer call
    ///     (without `split_special_tokens`) do. User-defined tokens (tokenizer.json's non-special added
    ///     tokens) are always recognised. Longer token texts are matched first; `lstrip` / `rstrip`
    ///     tokens take the whitespace beside them along.
    ///     Prompt text is encoded with `true` (generate, eval, training rows, the server); `false`
    ///     keeps special-token text as characters (`--no-special`).
    /// - Returns: the token ids.
    public func encode(_ text: String, addSpecial: Bool = true, parseSpecial: Bool = false) -> [Int32] {
        let bytes = Array(text.utf8)
        var output: [Int32] = []
        output.reserveCapacity(bytes.count / 3 + 2)
        let fragments = partition(bytes, parseSpecial: parseSpecial)
        if addSpecial && addsBOS, let bos = specialTokens.bos { output.append(bos) }
        switch model {
        case .sentencePiece:
            var previousIsSpecial = true
            for fragment in fragments {
                switch fragment {
                case let .token(id):
                    output.append(id)
                    previousIsSpecial = true
                case let .text(range):
                    var escaped: [UInt8] = []
                    escaped.reserveCapacity(range.count + 3)
                    if addsSpacePrefix && previousIsSpecial { escaped += [0xE2, 0x96, 0x81] }
                    for byte in bytes[range] {
                        if byte == 0x20 { escaped += [0xE2, 0x96, 0x81] } else { escaped.append(byte) }
                    }
                    spm!.encode(text: escaped, ids: table, unknown: specialTokens.unknown, into: &output)
                    previousIsSpecial = false
                }
            }
        case .bytePairEncoding:
            var scratch = BytePairEncoder.Scratch()
            for fragment in fragments {
                switch fragment {
                case let .token(id):
                    output.append(id)
                case let .text(range):
                    let codepoints = CodepointText(utf8: bytes[range])
                    var byteStart = range.lowerBound
                    var index = 0
                    for length in splitter!.split(codepoints) {
                        var byteCount = 0
                        for i in index ..< index + length { byteCount += Int(codepoints.utf8Lengths[i]) }
                        bpe!.encode(word: bytes[byteStart ..< byteStart + byteCount], ids: table, scratch: &scratch,
                                    into: &output)
                        byteStart += byteCount
                        index += length
                    }
                }
            }
        }
        if addSpecial && addsEOS, let eos = specialTokens.eos { output.append(eos) }
        return output
    }

    private enum Fragment {
        case text(Range<Int>)
        case token(Int32)
    }

    /// Cuts the text of special tokens out of `bytes`: each special token in turn (longest first)
    /// splits every remaining text fragment at all of its non-overlapping occurrences.
    private func partition(_ bytes: [UInt8], parseSpecial: Bool) -> [Fragment] {
        if bytes.isEmpty { return [] }
        var fragments: [Fragment] = [.text(0 ..< bytes.count)]
        var present = [Bool](repeating: false, count: 256)
        for byte in bytes { present[Int(byte)] = true }
        var next: [Fragment] = []
        for special in specialMatchOrder {
            if !parseSpecial && !special.attributes.isDisjoint(with: [.control, .unknown]) { continue }
            let needle = special.bytes
            guard let first = needle.first, present[Int(first)], needle.count <= bytes.count else { continue }
            next.removeAll(keepingCapacity: true)
            var changed = false
            for fragment in fragments {
                guard case let .text(range) = fragment else {
                    next.append(fragment)
                    continue
                }
                var cursor = range.lowerBound
                var position = range.lowerBound
                while position + needle.count <= range.upperBound {
                    if bytes[position] == first && matches(bytes, at: position, needle) {
                        let unicode = special.attributes.contains(.unicodeStrip)
                        var leftEnd = position
                        if special.attributes.contains(.leftStrip) {
                            while leftEnd > cursor, let width = whitespaceWidth(bytes, endingAt: leftEnd, from: cursor,
                                                                                 unicode: unicode) {
                                leftEnd -= width
                            }
                        }
                        if leftEnd > cursor { next.append(.text(cursor ..< leftEnd)) }
                        next.append(.token(special.id))
                        position += needle.count
                        if special.attributes.contains(.rightStrip) {
                            while position < range.upperBound, let width = whitespaceWidth(bytes, at: position,
                                                                                            before: range.upperBound,
                                                                                            unicode: unicode) {
                                position += width
                            }
                        }
                        cursor = position
                        changed = true
                    } else {
                        position += 1
                    }
                }
                if cursor < range.upperBound { next.append(.text(cursor ..< range.upperBound)) }
            }
            if changed { swap(&fragments, &next) }
        }
        return fragments
    }

    /// C `isspace` in the C locale: space, \t, \n, \v, \f, \r.
    @inline(__always) private func isCSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || (byte >= 0x09 && byte <= 0x0D)
    }

    /// Rust's `char::is_whitespace` (Unicode `White_Space`), which Hugging Face `tokenizers` strips.
    private static func isUnicodeWhitespace(_ scalar: UInt32) -> Bool {
        switch scalar {
        case 0x09 ... 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000 ... 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// The byte length of the whitespace character that starts at `position` (before `end`), or nil.
    private func whitespaceWidth(_ bytes: [UInt8], at position: Int, before end: Int, unicode: Bool) -> Int? {
        if isCSpace(bytes[position]) { return 1 }
        guard unicode else { return nil }
        let width = bytes[position] >= 0xF0 ? 4 : bytes[position] >= 0xE0 ? 3 : bytes[position] >= 0xC0 ? 2 : 1
        guard width > 1, position + width <= end,
              let scalar = Self.scalar(bytes[position ..< position + width]) else { return nil }
        return Self.isUnicodeWhitespace(scalar) ? width : nil
    }

    /// The byte length of the whitespace character that ends at `end` (after `start`), or nil.
    private func whitespaceWidth(_ bytes: [UInt8], endingAt end: Int, from start: Int, unicode: Bool) -> Int? {
        if isCSpace(bytes[end - 1]) { return 1 }
        guard unicode else { return nil }
        var begin = end - 1
        while begin > start && end - begin < 4 && bytes[begin] & 0xC0 == 0x80 { begin -= 1 }
        guard begin < end - 1, let scalar = Self.scalar(bytes[begin ..< end]) else { return nil }
        return Self.isUnicodeWhitespace(scalar) ? end - begin : nil
    }

    /// The code point of one complete multi-byte UTF-8 sequence, or nil when `sequence` is not one.
    private static func scalar(_ sequence: ArraySlice<UInt8>) -> UInt32? {
        guard let text = String(validating: sequence, as: UTF8.self), text.unicodeScalars.count == 1 else { return nil }
        return text.unicodeScalars.first!.value
    }

    @inline(__always) private func matches(_ bytes: [UInt8], at position: Int, _ needle: [UInt8]) -> Bool {
        for i in 1 ..< needle.count where bytes[position + i] != needle[i] { return false }
        return true
    }

    // MARK: - Decoding

    /// The bytes token `id` stands for, as llama.cpp's `llama_token_to_piece` renders it.
    /// - Parameters:
    ///   - id: a token id; an id outside the vocabulary renders as nothing.
    ///   - renderSpecial: render control and unknown tokens as their text (otherwise as nothing).
    ///     User-defined tokens are always rendered.
    /// - Returns: the bytes, possibly an incomplete UTF-8 sequence (byte tokens, split characters).
    public func piece(_ id: Int32, renderSpecial: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        appendPiece(id, renderSpecial: renderSpecial, stripLeadingSpace: false, into: &out)
        return out
    }

    /// Concatenates the pieces of `ids` as llama.cpp's `llama_detokenize` does.
    /// - Parameters:
    ///   - ids: token ids; ids outside the vocabulary render as nothing.
    ///   - removeSpecial: drop a leading BOS and a trailing EOS when the vocabulary adds them.
    ///   - renderSpecial: render control and unknown tokens as their text.
    /// - Returns: the raw bytes.
    public func decodeBytes(_ ids: [Int32], removeSpecial: Bool = false, renderSpecial: Bool = false) -> [UInt8] {
        var tokens = ids[...]
        var removeSpace = addsSpacePrefix
        if removeSpecial && addsBOS, let first = tokens.first, first == specialTokens.bos {
            removeSpace = false
            tokens = tokens.dropFirst()
        }
        if removeSpecial && addsEOS, let last = tokens.last, last == specialTokens.eos {
            tokens = tokens.dropLast()
        }
        var out: [UInt8] = []
        for id in tokens {
            appendPiece(id, renderSpecial: renderSpecial, stripLeadingSpace: removeSpace, into: &out)
            removeSpace = false
        }
        return cleanSpaces ? Self.cleanedSpaces(out) : out
    }

    /// The text of `ids` (see `decodeBytes`); invalid UTF-8 is replaced by U+FFFD.
    /// - Parameters:
    ///   - ids: token ids; ids outside the vocabulary render as nothing.
    ///   - removeSpecial: drop a leading BOS and a trailing EOS when the vocabulary adds them.
    ///   - renderSpecial: render control and unknown tokens as their text.
    /// - Returns: the decoded text.
    public func decode(_ ids: [Int32], removeSpecial: Bool = false, renderSpecial: Bool = false) -> String {
        String(decoding: decodeBytes(ids, removeSpecial: removeSpecial, renderSpecial: renderSpecial), as: UTF8.self)
    }

    private func appendPiece(_ id: Int32, renderSpecial: Bool, stripLeadingSpace: Bool, into out: inout [UInt8]) {
        guard isValid(id) else { return }
        if !renderSpecial && !attributes[Int(id)].isDisjoint(with: [.unknown, .control]) { return }
        var start = pieceOffsets[Int(id)]
        let end = pieceOffsets[Int(id) + 1]
        if stripLeadingSpace && start < end && pieceBytes[start] == 0x20 { start += 1 }
        out.append(contentsOf: pieceBytes[start ..< end])
    }

    /// llama.cpp's `token_to_piece` with special tokens rendered.
    private static func renderPiece(text: String, attributes: TokenAttributes, model: Model, into out: inout [UInt8]) {
        if !attributes.isDisjoint(with: [.unknown, .control, .userDefined]) {
            out += text.utf8
        } else if attributes.contains(.normal) {
            switch model {
            case .sentencePiece:
                // "▁" stands for a space.
                var scalars = text.unicodeScalars.makeIterator()
                while let scalar = scalars.next() {
                    if scalar == "\u{2581}" { out.append(0x20) } else { out += String(scalar).utf8 }
                }
            case .bytePairEncoding:
                for scalar in text.unicodeScalars {
                    if let byte = ByteLevel.byte(for: scalar.value) {
                        out.append(byte)
                    } else {
                        // Outside the GPT-2 alphabet: llama.cpp writes a marker with the whole text.
                        out += "[UNK_BYTE_0x".utf8
                        for byte in String(scalar).utf8 { out += hex2(byte) }
                        out += text.utf8
                        out += "]".utf8
                    }
                }
            }
        } else if attributes.contains(.byte) {
            out.append(byteValue(ofByteToken: text))
        }
        // Unused and undefined tokens render as nothing.
    }

    /// The byte of a `<0xXX>` token, parsed like llama.cpp (`strtol` of the two characters at
    /// offset 3, stopping at the first non-hex character).
    private static func byteValue(ofByteToken text: String) -> UInt8 {
        let bytes = Array(text.utf8)
        var value = 0
        // A hostile vocabulary may mark a text shorter than `<0x` as a byte token: its value is 0.
        for index in min(3, bytes.count) ..< min(5, bytes.count) {
            guard let digit = hexDigit(bytes[index]) else { break }
            value = value * 16 + digit
        }
        return UInt8(truncatingIfNeeded: value)
    }

    private static func hexDigit(_ c: UInt8) -> Int? {
        switch c {
        case 0x30 ... 0x39: return Int(c - 0x30)
        case 0x41 ... 0x46: return Int(c - 0x41 + 10)
        case 0x61 ... 0x66: return Int(c - 0x61 + 10)
        default: return nil
        }
    }

    private static func hex2(_ byte: UInt8) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        return [digits[Int(byte >> 4)], digits[Int(byte & 15)]]
    }

    /// llama.cpp's `clean_up_tokenization_spaces`: three passes over the decoded bytes that remove the
    /// space before `?!.,`, the spaces around a lone apostrophe, and the space before `'s 'm 're 've`.
    static func cleanedSpaces(_ text: [UInt8]) -> [UInt8] {
        let space: UInt8 = 0x20, quote: UInt8 = 0x27
        if text.count < 2 { return text }
        // Pass 1: " ?", " !", " .", " ,"
        var source = text
        var out: [UInt8] = [source[0]]
        for i in 1 ..< source.count {
            let x = source[i]
            if source[i - 1] == space && (x == 0x3F || x == 0x21 || x == 0x2E || x == 0x2C) { out.removeLast() }
            out.append(x)
        }
        // Pass 2: " ' " loses both spaces; llama.cpp overwrites the skipped space with a NUL, which
        // the next comparisons then see.
        source = out
        out = source.isEmpty ? [] : [source[0]]
        var i = 1
        while i < source.count {
            let x = source[i]
            if x == quote && i + 1 < source.count && source[i - 1] == space && source[i + 1] == space {
                out.removeLast()
                i += 1
                source[i] = 0
            }
            out.append(x)
            i += 1
        }
        // Pass 3: " 's", " 'm", " 're", " 've" lose the space (" 't", " 'd", " 'll" keep it).
        source = out
        out = source.isEmpty ? [] : [source[0]]
        for i in 1 ..< max(1, source.count) {
            let x = source[i]
            if source[i - 1] == space && x == quote && i + 1 < source.count {
                let x1 = source[i + 1]
                if x1 == 0x73 || x1 == 0x6D {  // s m
                    out.removeLast()
                } else if x1 != 0x74 && x1 != 0x64 && i + 2 < source.count {  // not t d
                    let x2 = source[i + 2]
                    if (x1 == 0x72 && x2 == 0x65) || (x1 == 0x76 && x2 == 0x65) { out.removeLast() }  // re ve
                }
            }
            out.append(x)
        }
        return out
    }
}
