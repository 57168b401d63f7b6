/// A vocabulary the tokenizer cannot use.
public enum TokenizerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `tokenizer.ggml.model` names a kind this module does not implement.
    case unsupportedModel(String, supported: [String])
    /// `tokenizer.ggml.pre` names a pre-tokenizer this module does not implement.
    case unsupportedPreTokenizer(String, supported: [String])
    /// The vocabulary has no tokens, or more than `Int32.max`.
    case invalidTokenCount(Int)
    /// A per-token array (`tokenTypes`, `scores`) is shorter than `tokens`.
    case arrayTooShort(field: String, count: Int, tokens: Int)
    /// Two tokens have the same text (llama.cpp rejects such vocabularies too).
    case duplicateToken(String, firstID: Int32, secondID: Int32)
    /// A merge is not of the form `"left right"`.
    case malformedMerge(index: Int, merge: String)
    /// A merge names a token (or produces a concatenation) that is not in the vocabulary.
    case mergeOutsideVocabulary(index: Int, merge: String, missing: String)
    /// The vocabulary asks for a BOS or EOS token to be added but has no such token.
    case missingSpecialToken(String)
    /// A GGUF file lacks a tokenizer key that is required (`tokenizer.ggml.model`, `tokenizer.ggml.tokens`).
    case missingMetadata(String)

    public var description: String {
        switch self {
        case let .missingMetadata(key):
            return "the model file has no \(key) (it carries no tokenizer)"
        case let .unsupportedModel(name, supported):
            return "unsupported tokenizer model '\(name)'; supported: \(supported.joined(separator: ", "))"
        case let .unsupportedPreTokenizer(name, supported):
            return "unsupported pre-tokenizer '\(name)'; supported: \(supported.joined(separator: ", "))"
        case let .invalidTokenCount(count):
            return "invalid vocabulary size \(count)"
        case let .arrayTooShort(field, count, tokens):
            return "\(field) has \(count) entries for \(tokens) tokens"
        case let .duplicateToken(text, first, second):
            return "token text '\(text)' appears twice (ids \(first) and \(second))"
        case let .malformedMerge(index, merge):
            return "merge \(index) '\(merge)' is not of the form 'left right'"
        case let .mergeOutsideVocabulary(index, merge, missing):
            return "merge \(index) '\(merge)' refers to '\(missing)', which is not a token"
        case let .missingSpecialToken(which):
            return "the vocabulary asks to add a \(which) token but defines none"
        }
    }
}
