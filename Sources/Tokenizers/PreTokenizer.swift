/// Splitting of text into words before byte-level BPE, as llama.cpp does it for each named
/// pre-tokenizer.
///
/// llama.cpp describes each pre-tokenizer as a list of regular expressions applied in turn, each one
/// refining the segments the previous ones produced (a match never crosses a segment boundary).
/// The common expressions are executed by hand-written scanners there (GPT-2, Llama 3, Qwen 2);
/// the remaining simple ones (`\p{N}`, `\p{N}+`, `[0-9][0-9][0-9]`, punctuation runs) go through
/// `std::regex` over a text in which every non-ASCII code point is collapsed to one byte standing
/// for its category. Each rule below reproduces one of those steps, including the behaviour at
/// segment ends, so the words come out byte-for-byte the same.
enum SplitRule: Sendable, Equatable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)` (GPT-2).
    case gpt2
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,digits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    /// (Llama 3 with `digits` 3, Qwen 2 with 1); `marks` also counts `\p{M}` as letters (Qwen 3.5).
    case llama3(digits: Int, marks: Bool)
    /// `\p{N}`: every number code point becomes a word of its own.
    case isolatedNumbers
    /// `\p{N}+`: every run of number code points becomes a word.
    case numberRuns
    /// `[\p{P}<extra>]+`: every run of punctuation (plus the given ASCII characters) becomes a word.
    case punctuationRuns(extraASCII: String)
    /// `[0-9][0-9][0-9]`: every group of three ASCII digits, found left to right, becomes a word.
    case asciiDigitTriples
    /// `[^\n]+|[\n]+`: runs of newlines and runs of anything else.
    case newlineRuns
}

/// A named pre-tokenizer with the llama.cpp vocabulary settings that come with its name.
struct PreTokenizer: Sendable {
    /// The name as found in `tokenizer.ggml.pre` (`"default"` when absent).
    let name: String
    let rules: [SplitRule]
    /// Detokenization removes spaces before `?!.,` and around some apostrophes.
    let cleanSpaces: Bool
    /// A word that is itself a token is emitted whole, without applying merges.
    let ignoreMerges: Bool
    /// The default of `add_bos` when the file does not set it.
    let defaultAddBOS: Bool
    /// Whether the name disables llama.cpp's fallback BOS id.
    let noDefaultBOS: Bool

    private static let gpt2Rules: [SplitRule] = [.gpt2]
    private static let starcoderRules: [SplitRule] = [.isolatedNumbers, .gpt2]
    private static let llama3Rules: [SplitRule] = [.llama3(digits: 3, marks: false)]
    private static let qwen2Rules: [SplitRule] = [.llama3(digits: 1, marks: false)]

    /// Names accepted, in llama.cpp's spelling (aliases included).
    static let supportedNames: [String] = table.map(\.name)

    /// The pre-tokenizer called `name`, or nil when it is not implemented here.
    static func named(_ name: String) -> PreTokenizer? {
        table.first { $0.name == name }
    }

    private static func entry(_ name: String, _ rules: [SplitRule], clean: Bool, ignoreMerges: Bool = false,
                              addBOS: Bool = false, noBOS: Bool = false) -> PreTokenizer {
        PreTokenizer(name: name, rules: rules, cleanSpaces: clean, ignoreMerges: ignoreMerges,
                     defaultAddBOS: addBOS, noDefaultBOS: noBOS)
    }

    // Settings transcribed from llama.cpp's `llama_vocab::impl::load` and `llm_tokenizer_bpe`.
    private static let table: [PreTokenizer] = {
        var t: [PreTokenizer] = []
        t.append(entry("default", [.punctuationRuns(extraASCII: "$+<=>^~|"), .gpt2, .numberRuns, .asciiDigitTriples],
                       clean: true))
        for name in ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                     "jina-v5-nano"] {
            t.append(entry(name, llama3Rules, clean: true, ignoreMerges: true, addBOS: true))
        }
        for name in ["dbrx", "smaug-bpe"] { t.append(entry(name, llama3Rules, clean: true)) }
        t.append(entry("chatglm-bpe", llama3Rules, clean: true, noBOS: true))
        for name in ["glm4", "glm5"] { t.append(entry(name, llama3Rules, clean: true, ignoreMerges: true, noBOS: true)) }
        t.append(entry("falcon", [.punctuationRuns(extraASCII: "$+<=>^~|`"), .gpt2, .asciiDigitTriples], clean: true))
        for name in ["gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "a.x-4.0", "mellum", "jina-v1-en",
                     "roberta-bpe", "mpt", "olmo", "jais", "exaone4"] {
            t.append(entry(name, gpt2Rules, clean: true))
        }
        for name in ["trillion", "granite-docling"] { t.append(entry(name, gpt2Rules, clean: false)) }
        for name in ["starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"] {
            t.append(entry(name, starcoderRules, clean: true))
        }
        for name in ["smollm", "command-r"] { t.append(entry(name, starcoderRules, clean: false)) }
        for name in ["qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2"] {
            t.append(entry(name, qwen2Rules, clean: false))
        }
        for name in ["stablelm2", "megrez"] { t.append(entry(name, qwen2Rules, clean: true)) }
        t.append(entry("qwen35", [.llama3(digits: 1, marks: true)], clean: false))
        t.append(entry("laguna", [.newlineRuns, .llama3(digits: 1, marks: false)], clean: false))
        return t
    }()

    /// Splits `text` (code points with their flags) into words, returned as code point counts.
    func split(_ text: CodepointText) -> [Int] {
        var segments = text.count == 0 ? [] : [text.count]
        for rule in rules {
            segments = Self.apply(rule, text, segments)
        }
        return segments
    }

    static func apply(_ rule: SplitRule, _ text: CodepointText, _ segments: [Int]) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(segments.count * 2)
        var extra: Set<UInt32> = []
        if case let .punctuationRuns(characters) = rule { extra = Set(characters.unicodeScalars.map(\.value)) }
        var start = 0
        for length in segments {
            var scanner = SegmentScanner(text: text, start: start, end: start + length)
            switch rule {
            case .gpt2: scanner.gpt2(into: &out)
            case let .llama3(digits, marks): scanner.llama3(digits: digits, marks: marks, into: &out)
            case .isolatedNumbers: scanner.classMatches(run: false, into: &out) { isCollapsedNumber($0) }
            case .numberRuns: scanner.classMatches(run: true, into: &out) { isCollapsedNumber($0) }
            case .punctuationRuns:
                scanner.classMatches(run: true, into: &out) { isCollapsedPunctuation($0, extra: extra) }
            case .asciiDigitTriples: scanner.asciiDigitTriples(into: &out)
            case .newlineRuns: scanner.newlineRuns(into: &out)
            }
            start += length
        }
        return out
    }

    /// `\p{N}` as llama.cpp's collapsed `std::regex` sees it: ASCII digits, or a non-ASCII
    /// non-space code point of the number category.
    private static func isCollapsedNumber(_ c: (value: UInt32, flags: CodepointFlags)) -> Bool {
        if c.value < 128 { return c.value >= 0x30 && c.value <= 0x39 }
        return !c.flags.contains(.whitespace) && c.flags.category == .number
    }

    /// `[\p{P}...]` over the collapsed text: the ASCII punctuation llama.cpp lists for `\p{P}`, the
    /// extra ASCII characters of the expression, or a non-ASCII non-space punctuation code point.
    private static func isCollapsedPunctuation(_ c: (value: UInt32, flags: CodepointFlags), extra: Set<UInt32>) -> Bool {
        if c.value < 128 {
            switch c.value {
            case 0x21 ... 0x23, 0x25 ... 0x2A, 0x2C ... 0x2F, 0x3A ... 0x3B, 0x3F ... 0x40, 0x5B ... 0x5D, 0x5F, 0x7B, 0x7D:
                return true
            default:
                return extra.contains(c.value)
            }
        }
        return !c.flags.contains(.whitespace) && c.flags.category == .punctuation
    }
}

/// The code points of a text fragment with their UTF-8 lengths and character flags.
struct CodepointText {
    var values: [UInt32] = []
    var flags: [CodepointFlags] = []
    var utf8Lengths: [UInt8] = []
    var count: Int { values.count }

    /// Decodes valid UTF-8 `bytes` (a fragment of a Swift string).
    init<C: Collection>(utf8 bytes: C) where C.Element == UInt8 {
        values.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var lengths: [UInt8] = []
        lengths.reserveCapacity(bytes.count)
        loop: while true {
            switch decoder.decode(&iterator) {
            case let .scalarValue(scalar):
                values.append(scalar.value)
                lengths.append(UInt8(truncatingIfNeeded: UTF8.width(scalar)))
            case .emptyInput:
                break loop
            case .error:
                // Not reachable for Swift strings; llama.cpp maps a bad byte to U+FFFD likewise.
                values.append(0xFFFD)
                lengths.append(3)
            }
        }
        utf8Lengths = lengths
        flags = values.map { CodepointFlags.of($0) }
    }
}

private let outOfRange: UInt32 = 0xFFFF_FFFF

/// Scans one segment `[start, end)` of a `CodepointText`, appending word lengths.
private struct SegmentScanner {
    let text: CodepointText
    let start: Int
    let end: Int
    var previousEnd: Int

    init(text: CodepointText, start: Int, end: Int) {
        self.text = text
        self.start = start
        self.end = end
        self.previousEnd = start
    }

    @inline(__always) func value(_ position: Int) -> UInt32 {
        position >= start && position < end ? text.values[position] : outOfRange
    }

    @inline(__always) func flags(_ position: Int) -> CodepointFlags {
        position >= start && position < end ? text.flags[position] : .outside
    }

    /// Ends the current word at `position` (empty words are dropped); returns its length.
    @discardableResult @inline(__always)
    mutating func cut(at position: Int, into out: inout [Int]) -> Int {
        let length = position - previousEnd
        if length > 0 { out.append(length) }
        previousEnd = position
        return length
    }

    @inline(__always) static func isLetterOrNumberOrSpace(_ f: CodepointFlags) -> Bool {
        !f.isDisjoint(with: [.whitespace, .letter, .number])
    }

    /// The alternatives that end both GPT-2-style patterns, tried in order at `pos`, where a run of
    /// `spaces` whitespace codepoints starts: `\s+(?!\S)` (the run but its last codepoint, when
    /// more text follows), `\s+`, then any single codepoint. Cuts the match; returns its end.
    @inline(__always)
    mutating func cutSpacesOrOne(at pos: Int, spaces: Int, into out: inout [Int]) -> Int {
        let matchEnd: Int
        if spaces > 1 && value(pos + spaces) != outOfRange {
            matchEnd = pos + spaces - 1
        } else if spaces > 0 {
            matchEnd = pos + spaces
        } else {
            matchEnd = pos + 1
        }
        cut(at: matchEnd, into: &out)
        return matchEnd
    }

    mutating func gpt2(into out: inout [Int]) {
        let space: UInt32 = 0x20
        var pos = start
        while pos < end {
            let c = value(pos)
            let f = flags(pos)
            // 's|'t|'re|'ve|'m|'ll|'d
            if c == 0x27, pos + 1 < end {
                let next = value(pos + 1)
                if next == 0x73 || next == 0x74 || next == 0x6D || next == 0x64 {  // s t m d
                    pos += cut(at: pos + 2, into: &out)
                    continue
                }
                if pos + 2 < end {
                    let nextNext = value(pos + 2)
                    if (next == 0x72 && nextNext == 0x65) || (next == 0x76 && nextNext == 0x65)
                        || (next == 0x6C && nextNext == 0x6C) {  // re ve ll
                        pos += cut(at: pos + 3, into: &out)
                        continue
                    }
                }
            }
            var f2 = c == space ? flags(pos + 1) : f
            //  ?\p{L}+
            if f2.contains(.letter) {
                if c == space { pos += 1 }
                while f2.contains(.letter) { pos += 1; f2 = flags(pos) }
                cut(at: pos, into: &out)
                continue
            }
            //  ?\p{N}+
            if f2.contains(.number) {
                if c == space { pos += 1 }
                while f2.contains(.number) { pos += 1; f2 = flags(pos) }
                cut(at: pos, into: &out)
                continue
            }
            //  ?[^\s\p{L}\p{N}]+
            if !Self.isLetterOrNumberOrSpace(f2) && f2.rawValue != 0 {
                if c == space { pos += 1 }
                while !Self.isLetterOrNumberOrSpace(f2) && f2.rawValue != 0 { pos += 1; f2 = flags(pos) }
                cut(at: pos, into: &out)
                continue
            }
            var spaces = 0
            while flags(pos + spaces).contains(.whitespace) { spaces += 1 }
            pos = cutSpacesOrOne(at: pos, spaces: spaces, into: &out)
        }
    }

    mutating func llama3(digits: Int, marks: Bool, into out: inout [Int]) {
        let space: UInt32 = 0x20, cr: UInt32 = 0x0D, lf: UInt32 = 0x0A
        let letterLike: CodepointFlags = marks ? [.letter, .mark] : [.letter]
        let notSymbol: CodepointFlags = marks ? [.whitespace, .letter, .mark, .number] : [.whitespace, .letter, .number]
        var pos = start
        while pos < end {
            let c = value(pos)
            let f = flags(pos)
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if c == 0x27, pos + 1 < end {
                let next = asciiLowercase(value(pos + 1))
                if next == 0x73 || next == 0x74 || next == 0x6D || next == 0x64 {
                    pos += cut(at: pos + 2, into: &out)
                    continue
                }
                if pos + 2 < end {
                    let nextNext = asciiLowercase(value(pos + 2))
                    if (next == 0x72 && nextNext == 0x65) || (next == 0x76 && nextNext == 0x65)
                        || (next == 0x6C && nextNext == 0x6C) {
                        pos += cut(at: pos + 3, into: &out)
                        continue
                    }
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+   (Qwen 3.5: [^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+)
            if !(c == cr || c == lf || f.contains(.number)) {
                if !f.isDisjoint(with: letterLike) || !flags(pos + 1).isDisjoint(with: letterLike) {
                    pos += 1
                    while !flags(pos).isDisjoint(with: letterLike) { pos += 1 }
                    cut(at: pos, into: &out)
                    continue
                }
            }
            // \p{N}{1,digits}
            if f.contains(.number) {
                var first = pos
                while flags(pos).contains(.number) {
                    pos += 1
                    if pos - first >= digits {
                        cut(at: pos, into: &out)
                        first = pos
                    }
                }
                cut(at: pos, into: &out)
                continue
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            var f2 = c == space ? flags(pos + 1) : f
            if f2.isDisjoint(with: notSymbol) && f.rawValue != 0 {
                if c == space { pos += 1 }
                while f2.isDisjoint(with: notSymbol) && f2.rawValue != 0 { pos += 1; f2 = flags(pos) }
                var c2 = value(pos)
                while c2 == cr || c2 == lf { pos += 1; c2 = value(pos) }
                cut(at: pos, into: &out)
                continue
            }
            var spaces = 0
            var lastLineBreakEnd = 0
            while flags(pos + spaces).contains(.whitespace) {
                let c2 = value(pos + spaces)
                if c2 == cr || c2 == lf { lastLineBreakEnd = pos + spaces + 1 }
                spaces += 1
            }
            // \s*[\r\n]+
            if lastLineBreakEnd > 0 {
                pos = lastLineBreakEnd
                cut(at: pos, into: &out)
                continue
            }
            pos = cutSpacesOrOne(at: pos, spaces: spaces, into: &out)
        }
    }

    /// Single-character class matches (`run == false`) or runs of them, as a regex iterator finds
    /// them; the text between matches is kept as words too.
    mutating func classMatches(run: Bool, into out: inout [Int],
                               _ matches: ((value: UInt32, flags: CodepointFlags)) -> Bool) {
        var pos = start
        while pos < end {
            if matches((text.values[pos], text.flags[pos])) {
                cut(at: pos, into: &out)
                pos += 1
                if run {
                    while pos < end && matches((text.values[pos], text.flags[pos])) { pos += 1 }
                }
                cut(at: pos, into: &out)
            } else {
                pos += 1
            }
        }
        cut(at: end, into: &out)
    }

    mutating func asciiDigitTriples(into out: inout [Int]) {
        @inline(__always) func isDigit(_ v: UInt32) -> Bool { v >= 0x30 && v <= 0x39 }
        var pos = start
        while pos + 3 <= end {
            if isDigit(text.values[pos]) && isDigit(text.values[pos + 1]) && isDigit(text.values[pos + 2]) {
                cut(at: pos, into: &out)
                pos += 3
                cut(at: pos, into: &out)
            } else {
                pos += 1
            }
        }
        cut(at: end, into: &out)
    }

    mutating func newlineRuns(into out: inout [Int]) {
        var pos = start
        while pos < end {
            let isNewline = text.values[pos] == 0x0A
            while pos < end && (text.values[pos] == 0x0A) == isNewline { pos += 1 }
            cut(at: pos, into: &out)
        }
    }
}

/// The simple lowercase mapping restricted to what the contraction patterns can match: only ASCII
/// capitals fold onto the letters s, t, r, e, v, m, l, d.
@inline(__always) private func asciiLowercase(_ value: UInt32) -> UInt32 {
    value >= 0x41 && value <= 0x5A ? value + 0x20 : value
}
