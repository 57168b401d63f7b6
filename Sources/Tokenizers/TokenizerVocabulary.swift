/// The raw tokenizer description stored in a model file, before any interpretation.
///
/// Every field mirrors one `tokenizer.ggml.*` key of a GGUF file; an optional field is `nil` when the
/// key is absent, and the tokenizer then applies the same default llama.cpp applies for the model
/// kind and pre-tokenizer (for example `addBOS` defaults to `true` for SentencePiece vocabularies).
///
/// | Field | GGUF key |
/// |---|---|
/// | `model` | `tokenizer.ggml.model` |
/// | `preTokenizer` | `tokenizer.ggml.pre` |
/// | `tokens` | `tokenizer.ggml.tokens` |
/// | `tokenTypes` | `tokenizer.ggml.token_type` |
/// | `scores` | `tokenizer.ggml.scores` |
/// | `merges` | `tokenizer.ggml.merges` (absent: empty) |
/// | `bosTokenID`, `eosTokenID`, `eotTokenID`, `eomTokenID` | `.bos_token_id`, `.eos_token_id`, `.eot_token_id`, `.eom_token_id` |
/// | `unknownTokenID`, `separatorTokenID`, `paddingTokenID`, `maskTokenID` | `.unknown_token_id`, `.seperator_token_id` (sic), `.padding_token_id`, `.mask_token_id` |
/// | `fimPrefixTokenID` … `fimSeparatorTokenID` | `.fim_pre_token_id`, `.fim_suf_token_id`, `.fim_mid_token_id`, `.fim_pad_token_id`, `.fim_rep_token_id`, `.fim_sep_token_id` |
/// | `addBOS`, `addEOS`, `addSpacePrefix` | `.add_bos_token`, `.add_eos_token`, `.add_space_prefix` |
/// | `modelName` | `general.name` (llama.cpp adjusts Phi-3's special tokens by name) |
public struct TokenizerVocabulary: Sendable, Equatable {
    /// The tokenizer model kind: `"gpt2"` (byte-level BPE) or `"llama"` (SentencePiece-style).
    public var model: String
    /// The pre-tokenizer name for byte-level BPE (`"smollm"`, `"gpt-2"`, `"llama-bpe"`, `"qwen2"`, …);
    /// `nil` selects llama.cpp's `"default"` pre-tokenizer. Ignored for SentencePiece vocabularies.
    public var preTokenizer: String?
    /// The token texts, indexed by token id.
    public var tokens: [String]
    /// Token types (`TokenType` raw values) parallel to `tokens`; `nil` makes every token normal.
    public var tokenTypes: [Int32]?
    /// Token scores parallel to `tokens` (SentencePiece merge priorities); `nil` means all zero.
    public var scores: [Float]?
    /// Byte-level BPE merges, highest priority first, each `"left right"`.
    public var merges: [String]

    // Special token ids. `nil` (key absent) or an id outside `tokens` leaves llama.cpp's default for
    // the model kind: BOS 1, EOS 2, unknown 0 for "llama"; BOS and EOS 11 for "gpt2"; none otherwise.
    // End of turn, end of message and the fill-in-the-middle ids are also found by token text when
    // absent (see `SpecialTokens`).

    /// Beginning of sequence (`tokenizer.ggml.bos_token_id`).
    public var bosTokenID: Int32?
    /// End of sequence (`tokenizer.ggml.eos_token_id`).
    public var eosTokenID: Int32?
    /// End of turn (`tokenizer.ggml.eot_token_id`).
    public var eotTokenID: Int32?
    /// End of message (`tokenizer.ggml.eom_token_id`).
    public var eomTokenID: Int32?
    /// Unknown (`tokenizer.ggml.unknown_token_id`).
    public var unknownTokenID: Int32?
    /// Separator (`tokenizer.ggml.seperator_token_id`, spelled so in GGUF).
    public var separatorTokenID: Int32?
    /// Padding (`tokenizer.ggml.padding_token_id`).
    public var paddingTokenID: Int32?
    /// Mask (`tokenizer.ggml.mask_token_id`).
    public var maskTokenID: Int32?
    /// Fill-in-the-middle prefix (`tokenizer.ggml.fim_pre_token_id`, formerly `.prefix_token_id`).
    public var fimPrefixTokenID: Int32?
    /// Fill-in-the-middle suffix (`tokenizer.ggml.fim_suf_token_id`, formerly `.suffix_token_id`).
    public var fimSuffixTokenID: Int32?
    /// Fill-in-the-middle middle (`tokenizer.ggml.fim_mid_token_id`, formerly `.middle_token_id`).
    public var fimMiddleTokenID: Int32?
    /// Fill-in-the-middle padding (`tokenizer.ggml.fim_pad_token_id`).
    public var fimPadTokenID: Int32?
    /// Repository name marker (`tokenizer.ggml.fim_rep_token_id`).
    public var fimRepoTokenID: Int32?
    /// File separator (`tokenizer.ggml.fim_sep_token_id`).
    public var fimSeparatorTokenID: Int32?

    /// Whether `encode(_:addSpecial:parseSpecial:)` prepends the BOS token; `nil`: model default.
    public var addBOS: Bool?
    /// Whether `encode(_:addSpecial:parseSpecial:)` appends the EOS token; `nil`: model default.
    public var addEOS: Bool?
    /// Whether a space is prepended to text (SentencePiece) and stripped again when decoding;
    /// `nil`: model default (`true` for `"llama"`, `false` for `"gpt2"`).
    public var addSpacePrefix: Bool?
    /// The model's name (`general.name`). llama.cpp recognises Phi-3 by it: there, whitespace after
    /// a special token is dropped when the text is split at special tokens.
    public var modelName: String?
    /// Added tokens that take the whitespace before them along when they are cut out of the text
    /// (`lstrip: true` in tokenizer.json's `added_tokens`). GGUF has no key for this; llama.cpp sets
    /// the flag itself only for a few model families (see `Tokenizer`).
    public var leftStripTokenIDs: Set<Int32> = []
    /// Added tokens that take the whitespace after them along (`rstrip: true` in tokenizer.json).
    public var rightStripTokenIDs: Set<Int32> = []

    /// Creates a vocabulary; every special id and flag starts absent.
    /// - Parameters:
    ///   - model: `tokenizer.ggml.model`.
    ///   - preTokenizer: `tokenizer.ggml.pre`, or `nil` when absent.
    ///   - tokens: `tokenizer.ggml.tokens`.
    ///   - tokenTypes: `tokenizer.ggml.token_type`, or `nil` when absent.
    ///   - scores: `tokenizer.ggml.scores`, or `nil` when absent.
    ///   - merges: `tokenizer.ggml.merges` (empty when absent).
    public init(model: String, preTokenizer: String? = nil, tokens: [String], tokenTypes: [Int32]? = nil,
                scores: [Float]? = nil, merges: [String] = []) {
        self.model = model
        self.preTokenizer = preTokenizer
        self.tokens = tokens
        self.tokenTypes = tokenTypes
        self.scores = scores
        self.merges = merges
    }
}

/// The type llama.cpp stores for each token (`tokenizer.ggml.token_type`).
public enum TokenType: Int32, Sendable, CaseIterable {
    case undefined = 0
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}
