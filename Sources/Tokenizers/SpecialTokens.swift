/// The special token ids a tokenizer resolved from its vocabulary (nil: the vocabulary has none).
public struct SpecialTokens: Sendable, Equatable {
    /// Beginning of sequence.
    public var bos: Int32?
    /// End of sequence.
    public var eos: Int32?
    /// End of turn (`<|im_end|>`, `<|eot_id|>`, …), found by text when the file does not name it.
    public var eot: Int32?
    /// End of message (`<|eom_id|>`).
    public var eom: Int32?
    /// Unknown.
    public var unknown: Int32?
    /// Separator.
    public var separator: Int32?
    /// Padding.
    public var padding: Int32?
    /// Mask.
    public var mask: Int32?
    /// Fill-in-the-middle markers (`<|fim_prefix|>`, `<fim_suffix>`, …, `<|file_sep|>`), found by
    /// text when the file does not name them.
    public var fimPrefix: Int32?
    public var fimSuffix: Int32?
    public var fimMiddle: Int32?
    public var fimPad: Int32?
    public var fimRepo: Int32?
    public var fimSeparator: Int32?

    /// No special tokens.
    public init() {}
}

/// llama.cpp's per-token attribute bits (`llama_token_attr`).
struct TokenAttributes: OptionSet, Sendable {
    let rawValue: UInt16
    static let unknown = TokenAttributes(rawValue: 1 << 0)
    static let unused = TokenAttributes(rawValue: 1 << 1)
    static let normal = TokenAttributes(rawValue: 1 << 2)
    static let control = TokenAttributes(rawValue: 1 << 3)
    static let userDefined = TokenAttributes(rawValue: 1 << 4)
    static let byte = TokenAttributes(rawValue: 1 << 5)
    /// Whitespace before the token is dropped when special tokens are cut out of the text.
    static let leftStrip = TokenAttributes(rawValue: 1 << 7)
    /// Whitespace after the token is dropped when special tokens are cut out of the text.
    static let rightStrip = TokenAttributes(rawValue: 1 << 8)
    /// Not a llama.cpp bit: `leftStrip` / `rightStrip` take Unicode `White_Space` (as Hugging Face
    /// `tokenizers` does for tokenizer.json's `lstrip` / `rstrip`) instead of C `isspace`.
    static let unicodeStrip = TokenAttributes(rawValue: 1 << 12)

    init(rawValue: UInt16) { self.rawValue = rawValue }

    init(type: Int32) {
        switch TokenType(rawValue: type) {
        case .normal: self = .normal
        case .unknown: self = .unknown
        case .control: self = .control
        case .userDefined: self = .userDefined
        case .unused: self = .unused
        case .byte: self = .byte
        case .undefined, nil: self = []
        }
    }
}

/// The fix-ups llama.cpp applies after loading a vocabulary: special tokens recognised by their
/// text, the end-of-generation set, and attribute corrections for known model families.
///
/// llama.cpp walks a hash map here, so when several candidate texts exist for one role the one it
/// picks depends on hashing; this implementation takes the candidate with the lowest id (which is
/// what llama.cpp picks for SmolLM2: `<|endoftext|>` rather than `<|im_end|>`).
struct SpecialTokenResolution {
    var ids: SpecialTokens
    var attributes: [TokenAttributes]
    var endOfGeneration: Set<Int32> = []

    static let eotTexts = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                   "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
                                   "<end_of_utterance>"]
    private static let eomTexts = ["<|eom_id|>"]
    private static let fimPrefixTexts = ["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>",
                                         "▁<PRE>", "<|code_prefix|>", "<|prefix|>"]
    private static let fimSuffixTexts = ["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>",
                                         "▁<SUF>", "<|code_suffix|>", "<|suffix|>"]
    private static let fimMiddleTexts = ["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>",
                                         "▁<MID>", "<|code_middle|>", "<|middle|>"]
    private static let fimPadTexts = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"]
    private static let fimRepoTexts = ["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"]
    private static let fimSeparatorTexts = ["<|file_sep|>"]
    private static let endOfGenerationTexts: Set<String> = [
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
    ]
    private static let alwaysRenderedTexts = ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"]

    mutating func resolve(_ table: TokenTable) {
        func detect(_ slot: WritableKeyPath<SpecialTokens, Int32?>, _ candidates: [String]) {
            if ids[keyPath: slot] != nil { return }
            if let id = candidates.compactMap({ table.id($0) }).min() {
                ids[keyPath: slot] = id
                attributes[Int(id)].insert(.control)
            }
        }
        detect(\.eot, Self.eotTexts)
        detect(\.eom, Self.eomTexts)
        detect(\.fimPrefix, Self.fimPrefixTexts)
        detect(\.fimSuffix, Self.fimSuffixTexts)
        detect(\.fimMiddle, Self.fimMiddleTexts)
        detect(\.fimPad, Self.fimPadTexts)
        detect(\.fimRepo, Self.fimRepoTexts)
        detect(\.fimSeparator, Self.fimSeparatorTexts)

        for id in [ids.fimPad, ids.fimRepo, ids.fimSeparator] { if let id { endOfGeneration.insert(id) } }
        for text in Self.endOfGenerationTexts {
            if let id = table.id(text) {
                endOfGeneration.insert(id)
                attributes[Int(id)].insert(.control)
            }
        }
        for text in Self.alwaysRenderedTexts {
            if let id = table.id(text) { attributes[Int(id)] = .userDefined }
        }
        for id in [ids.eos, ids.eot, ids.eom] { if let id { endOfGeneration.insert(id) } }

        // Harmony / Solar Open: "<|end|>" ends a message, not the generation.
        func eogText(_ text: String) -> Bool { table.id(text).map { endOfGeneration.contains($0) } ?? false }
        if let end = table.id("<|end|>"), endOfGeneration.contains(end),
           (eogText("<|return|>") && (eogText("<|call|>") || eogText("<|calls|>")))
            || ((eogText("<|call|>") || eogText("<|calls|>")) && eogText("<|flush|>")) {
            endOfGeneration.remove(end)
            attributes[Int(end)] = .userDefined
        }
        // Gemma 4 / PLaMo: "</s>" is an ordinary token there.
        if let s = table.id("</s>"), endOfGeneration.contains(s), eogText("<|tool_response>") || eogText("<|plamo:eos|>") {
            endOfGeneration.remove(s)
            attributes[Int(s)] = .normal
        }
    }

    /// llama.cpp's per-model attribute adjustments, keyed by `general.name` (lowercased): Phi-3
    /// strips whitespace after its special tokens and after `</s>`, but not after `<unk>`, `<s>` and
    /// `<|endoftext|>`.
    mutating func adjustForModel(named name: String?, _ table: TokenTable) {
        guard let name = name?.lowercased(), name.contains("phi-3") || name.contains("phi3") else { return }
        let special: TokenAttributes = [.control, .userDefined, .unknown]
        for id in attributes.indices where !attributes[id].isDisjoint(with: special) {
            attributes[id].insert(.rightStrip)
        }
        if let id = table.id("</s>") { attributes[Int(id)].insert(.rightStrip) }
        for text in ["<unk>", "<s>", "<|endoftext|>"] {
            if let id = table.id(text) { attributes[Int(id)].remove(.rightStrip) }
        }
    }
}
