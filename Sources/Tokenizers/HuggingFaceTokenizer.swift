import TensorIO

// Hugging Face `tokenizers` files (tokenizer.json, tokenizer_config.json) for byte-level BPE, read
// into and written from a `TokenizerVocabulary`, so the llama.cpp-compatible `Tokenizer` does the
// work in both cases.
//
// What is read (everything else in tokenizer.json is refused when it would change the ids):
//   model            type "BPE" (byte_fallback false): vocab {text: id}, merges ("a b" strings or
//                    [a, b] pairs), unk_token, ignore_merges
//   added_tokens     id, content, special (special → control token, otherwise user-defined), lstrip,
//                    rstrip (single_word: true is refused). Like `tokenizers`, which always cuts out
//                    non-special added tokens and cuts out special ones unless split_special_tokens is
//                    set, user-defined tokens are always recognised and control tokens with parseSpecial.
//   normalizer       null, or NFC (accepted; NFC is not applied, as llama.cpp does not apply it)
//   pre_tokenizer    ByteLevel / Split / Digits / Sequence, matched as a whole against the
//                    pre-tokenizers llama.cpp implements (GPT-2, StarCoder/SmolLM, Llama 3, Qwen 2)
//   post_processor   null, ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing,
//                    Sequence: which token is added before / after the text
// From tokenizer_config.json: add_bos_token, add_eos_token (override the post-processor),
// bos/eos/unk/pad/sep/mask tokens, clean_up_tokenization_spaces.

/// Why a Hugging Face tokenizer description cannot be read or written.
public struct HuggingFaceTokenizerError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The file cannot be read or is not valid JSON.
        case unreadable
        /// A required member is missing or has the wrong type or value.
        case malformed
        /// The description is well formed but uses a feature this module does not implement.
        case unsupported
    }

    public var kind: Kind
    public var message: String
    /// The file concerned, when known.
    public var path: String?

    public init(_ kind: Kind, _ message: String, path: String? = nil) {
        self.kind = kind
        self.message = message
        self.path = path
    }

    public var description: String { (path.map { "\($0): " } ?? "") + message }
}

extension TokenizerVocabulary {
    /// Reads `tokenizer.json` and, when present, `tokenizer_config.json` from a Hugging Face model
    /// directory.
    /// - Parameter path: The directory.
    /// - Throws: `HuggingFaceTokenizerError` naming the file and the member at fault.
    public init(huggingFaceDirectory path: String) throws(HuggingFaceTokenizerError) {
        let tokenizerPath = path + "/tokenizer.json"
        let configPath = path + "/tokenizer_config.json"
        let tokenizer = try HuggingFaceFiles.readJSON(tokenizerPath)
        let config = fileExists(configPath) ? try HuggingFaceFiles.readJSON(configPath) : nil
        do {
            try self.init(tokenizerJSON: tokenizer, config: config)
        } catch {
            throw HuggingFaceTokenizerError(error.kind, error.message, path: tokenizerPath)
        }
    }

    /// Interprets a byte-level BPE `tokenizer.json` (and optionally its `tokenizer_config.json`).
    ///
    /// Token ids without a text (gaps between the vocabulary and the added tokens) become unused
    /// tokens named `[PAD<id>]`, as llama.cpp's converter names them. The pre-tokenizer is matched
    /// against the known ones and mapped to llama.cpp's name (see `preTokenizer`); BOS/EOS adding
    /// comes from the post-processor, overridden by `add_bos_token` / `add_eos_token` of the config.
    /// - Parameters:
    ///   - tokenizerJSON: The parsed `tokenizer.json`.
    ///   - config: The parsed `tokenizer_config.json`, if any.
    /// - Throws: `HuggingFaceTokenizerError` `.malformed` or `.unsupported` naming the member.
    public init(tokenizerJSON json: JSONValue, config: JSONValue? = nil) throws(HuggingFaceTokenizerError) {
        func malformed(_ message: String) -> HuggingFaceTokenizerError { .init(.malformed, message) }
        func unsupported(_ message: String) -> HuggingFaceTokenizerError { .init(.unsupported, message) }
        guard let model = json["model"]?.objectValue else { throw malformed("tokenizer.json has no 'model' object") }
        let type = model["type"]?.stringValue ?? "BPE"
        guard type == "BPE" else {
            throw unsupported("tokenizer model '\(type)' is not supported (supported: BPE with a ByteLevel pre-tokenizer)")
        }
        if model["byte_fallback"]?.boolValue == true {
            throw unsupported("BPE with byte_fallback (SentencePiece-style tokenizer.json) is not supported; only byte-level BPE is")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = model[key], !value.isNull, value.stringValue != "" {
                throw unsupported("model.\(key) is not supported for byte-level BPE")
            }
        }
        if let dropout = model["dropout"], !dropout.isNull, dropout.doubleValue != 0 {
            throw unsupported("model.dropout (BPE dropout) is not supported")
        }

        // Token texts by id: the vocabulary, then the added tokens (which may extend or override it).
        guard let vocab = model["vocab"]?.objectValue else { throw malformed("model.vocab is not an object") }
        var textByID: [Int: String] = [:]
        var types: [Int: TokenType] = [:]
        textByID.reserveCapacity(vocab.count + 512)
        for (text, value) in vocab.entries {
            guard let id = value.intValue, id >= 0, id < Int64(Int32.max) else {
                throw malformed("model.vocab['\(text)'] is not a valid token id")
            }
            if let other = textByID[Int(id)], other != text {
                throw malformed("model.vocab gives id \(id) to both '\(other)' and '\(text)'")
            }
            textByID[Int(id)] = text
            types[Int(id)] = .normal
        }
        var addedIDs: [String: Int32] = [:]
        var leftStrip: Set<Int32> = [], rightStrip: Set<Int32> = []
        for (index, entry) in (json["added_tokens"]?.arrayValue ?? []).enumerated() {
            guard let id = entry["id"]?.intValue, id >= 0, id < Int64(Int32.max),
                  let content = entry["content"]?.stringValue else {
                throw malformed("added_tokens[\(index)] needs an integer 'id' and a string 'content'")
            }
            if entry["single_word"]?.boolValue == true {
                throw unsupported("added_tokens[\(index)] '\(content)': single_word: true is not supported")
            }
            textByID[Int(id)] = content
            types[Int(id)] = entry["special"]?.boolValue == true ? .control : .userDefined
            addedIDs[content] = Int32(id)
            if entry["lstrip"]?.boolValue == true { leftStrip.insert(Int32(id)) }
            if entry["rstrip"]?.boolValue == true { rightStrip.insert(Int32(id)) }
        }
        guard let maxID = textByID.keys.max() else { throw malformed("the tokenizer has no tokens") }
        // The token table is sized by the largest id, so a tiny file naming id 2^31-2 would ask for
        // billions of entries. Real files leave few ids without a text; allow as many gaps as there
        // are tokens (at least 65,536) and refuse sparser tables before allocating.
        let gaps = maxID + 1 - textByID.count
        guard gaps <= max(textByID.count, 1 << 16) else {
            throw malformed("token ids reach \(maxID) but only \(textByID.count) are defined: \(gaps) gaps between ids")
        }
        var tokens = [String](repeating: "", count: maxID + 1)
        var tokenTypes = [Int32](repeating: TokenType.unused.rawValue, count: maxID + 1)
        for id in 0 ... maxID {
            if let text = textByID[id] {
                tokens[id] = text
                tokenTypes[id] = types[id]!.rawValue
            } else {
                tokens[id] = "[PAD\(id)]"
            }
        }

        // Merges, in either spelling, as GGUF's "left right".
        var merges: [String] = []
        let rawMerges = model["merges"]?.arrayValue ?? []
        merges.reserveCapacity(rawMerges.count)
        for (index, merge) in rawMerges.enumerated() {
            switch merge {
            case .string(let text):
                guard text.utf8.dropFirst().contains(0x20) else {
                    throw malformed("model.merges[\(index)] '\(text)' is not of the form 'left right'")
                }
                merges.append(text)
            case .array(let pair):
                guard pair.count == 2, let left = pair[0].stringValue, let right = pair[1].stringValue,
                      !left.isEmpty, !right.isEmpty else {
                    throw malformed("model.merges[\(index)] is not a pair of non-empty strings")
                }
                // GGUF splits "left right" at the first space after the first byte.
                guard !left.utf8.dropFirst().contains(0x20) else {
                    throw unsupported("model.merges[\(index)]: the left part '\(left)' contains a space, which GGUF merges cannot express")
                }
                merges.append(left + " " + right)
            default:
                throw malformed("model.merges[\(index)] is neither a string nor a pair")
            }
        }

        if let normalizer = json["normalizer"], !normalizer.isNull {
            let kind = normalizer["type"]?.stringValue ?? "?"
            guard kind == "NFC" else {
                throw unsupported("normalizer '\(kind)' is not supported (supported: none, NFC)")
            }
        }

        self.init(model: "gpt2", tokens: tokens, tokenTypes: tokenTypes, merges: merges)
        leftStripTokenIDs = leftStrip
        rightStripTokenIDs = rightStrip
        func id(of text: String) -> Int32? {
            addedIDs[text] ?? vocab[text]?.intValue.flatMap { Int32(exactly: $0) }
        }
        func configToken(_ key: String) -> Int32? {
            guard let value = config?[key] else { return nil }
            let text = value.stringValue ?? value["content"]?.stringValue
            return text.flatMap(id(of:))
        }

        // Pre-tokenizer.
        let ignoreMerges = model["ignore_merges"]?.boolValue ?? false
        let clean = config?["clean_up_tokenization_spaces"]?.boolValue
        preTokenizer = try HuggingFacePreTokenizer.name(for: json["pre_tokenizer"] ?? .null,
                                                       ignoreMerges: ignoreMerges, cleanSpaces: clean)

        // Special tokens and BOS/EOS adding.
        let added = try HuggingFacePostProcessor.addedTokens(json["post_processor"] ?? .null)
        bosTokenID = try added.bos.map { (text: String) throws(HuggingFaceTokenizerError) -> Int32 in
            guard let found = id(of: text) else { throw malformed("post_processor adds '\(text)', which is not a token") }
            return found
        } ?? configToken("bos_token")
        eosTokenID = try added.eos.map { (text: String) throws(HuggingFaceTokenizerError) -> Int32 in
            guard let found = id(of: text) else { throw malformed("post_processor adds '\(text)', which is not a token") }
            return found
        } ?? configToken("eos_token")
        addBOS = config?["add_bos_token"]?.boolValue ?? (added.bos != nil)
        addEOS = config?["add_eos_token"]?.boolValue ?? (added.eos != nil)
        addSpacePrefix = false
        unknownTokenID = configToken("unk_token") ?? model["unk_token"]?.stringValue.flatMap(id(of:))
        paddingTokenID = configToken("pad_token")
        separatorTokenID = configToken("sep_token")
        maskTokenID = configToken("mask_token")
    }

    /// The Hugging Face `tokenizer.json` describing this byte-level BPE vocabulary: the tokens as
    /// `model.vocab` (in id order), merges as `"left right"` strings, control and user-defined tokens
    /// as `added_tokens`, the pre-tokenizer as the equivalent ByteLevel / Split / Digits sequence, and a
    /// TemplateProcessing post-processor when BOS or EOS is added (ByteLevel otherwise).
    /// - Throws: `HuggingFaceTokenizerError.unsupported` for a SentencePiece vocabulary or a
    ///   pre-tokenizer without a Hugging Face equivalent here; `.malformed` when `Tokenizer` refuses
    ///   the vocabulary.
    public func huggingFaceTokenizerJSON() throws(HuggingFaceTokenizerError) -> JSONValue {
        let (tokenizer, splitter) = try checkedForExport()
        let count = tokens.count
        var added: [JSONValue] = []
        var vocab = JSONObject()
        for id in 0 ..< count {
            vocab[tokens[id]] = .int(Int64(id))
            if let special = Self.addedTokenKind(tokenizer, id) {
                added.append(.object([
                    "id": .int(Int64(id)), "content": .string(tokens[id]), "single_word": false,
                    "lstrip": .bool(leftStripTokenIDs.contains(Int32(id))),
                    "rstrip": .bool(rightStripTokenIDs.contains(Int32(id))), "normalized": false, "special": .bool(special),
                ]))
            }
        }
        let unknown = unknownTokenID.flatMap { $0 >= 0 && Int($0) < count ? JSONValue.string(tokens[Int($0)]) : nil }
        let model: JSONObject = [
            "type": "BPE", "dropout": nil, "unk_token": unknown ?? .null, "continuing_subword_prefix": nil,
            "end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": .bool(splitter.ignoreMerges),
            "vocab": .object(vocab), "merges": .array(merges.map { .string($0) }),
        ]
        let bos = tokenizer.addsBOS ? tokenizer.specialTokens.bos.map { tokens[Int($0)] } : nil
        let eos = tokenizer.addsEOS ? tokenizer.specialTokens.eos.map { tokens[Int($0)] } : nil
        let post = HuggingFacePostProcessor.json(bos: bos.map { ($0, tokenizer.id(of: $0)!) },
                                                 eos: eos.map { ($0, tokenizer.id(of: $0)!) })
        return .object([
            "version": "1.0", "truncation": nil, "padding": nil, "added_tokens": .array(added), "normalizer": nil,
            "pre_tokenizer": try HuggingFacePreTokenizer.json(for: splitter),
            "post_processor": post,
            "decoder": ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true],
            "model": .object(model),
        ])
    }

    /// The `tokenizer_config.json` that goes with `huggingFaceTokenizerJSON()`, for transformers'
    /// `PreTrainedTokenizerFast`: BOS/EOS adding, the special token texts, the added tokens,
    /// `clean_up_tokenization_spaces` of the pre-tokenizer, and optionally the chat template and
    /// context length.
    /// - Parameters:
    ///   - chatTemplate: The Jinja chat template (GGUF `tokenizer.chat_template`), if any.
    ///   - modelMaxLength: `model_max_length` (the model's context length), if known.
    /// - Throws: As `huggingFaceTokenizerJSON()`.
    public func huggingFaceTokenizerConfig(chatTemplate: String? = nil, modelMaxLength: Int? = nil)
        throws(HuggingFaceTokenizerError) -> JSONValue
    {
        let (tokenizer, splitter) = try checkedForExport()
        var config = JSONObject()
        config["add_bos_token"] = .bool(tokenizer.addsBOS)
        config["add_eos_token"] = .bool(tokenizer.addsEOS)
        var decoder = JSONObject()
        for id in tokens.indices {
            guard let special = Self.addedTokenKind(tokenizer, id) else { continue }
            decoder[String(id)] = .object([
                "content": .string(tokens[id]), "lstrip": .bool(leftStripTokenIDs.contains(Int32(id))), "normalized": false,
                "rstrip": .bool(rightStripTokenIDs.contains(Int32(id))),
                "single_word": false, "special": .bool(special),
            ])
        }
        config["added_tokens_decoder"] = .object(decoder)
        func text(_ id: Int32?) -> JSONValue? {
            guard let id, id >= 0, Int(id) < tokens.count else { return nil }
            return .string(tokens[Int(id)])
        }
        config["bos_token"] = text(tokenizer.addsBOS ? tokenizer.specialTokens.bos : bosTokenID)
        config["eos_token"] = text(tokenizer.addsEOS ? tokenizer.specialTokens.eos : eosTokenID)
        config["unk_token"] = text(unknownTokenID)
        config["pad_token"] = text(paddingTokenID)
        config["sep_token"] = text(separatorTokenID)
        config["mask_token"] = text(maskTokenID)
        config["clean_up_tokenization_spaces"] = .bool(splitter.cleanSpaces)
        if let chatTemplate { config["chat_template"] = .string(chatTemplate) }
        if let modelMaxLength { config["model_max_length"] = .int(Int64(modelMaxLength)) }
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        return .object(config)
    }

    /// Whether token `id` is written as an added token, and if so whether it is special: control and
    /// unknown tokens are special, user-defined ones are not. The attributes are the tokenizer's, after
    /// llama.cpp's fix-ups (which make end-of-generation tokens such as `<|im_end|>` control tokens even
    /// when the file types them normal), so that `tokenizers` cuts out the same texts llama.cpp does.
    private static func addedTokenKind(_ tokenizer: Tokenizer, _ id: Int) -> Bool? {
        let attributes = tokenizer.attributes[id]
        if !attributes.isDisjoint(with: [.control, .unknown]) { return true }
        if attributes.contains(.userDefined) { return false }
        return nil
    }

    /// Builds the tokenizer (validating the vocabulary) and finds the pre-tokenizer to export.
    private func checkedForExport() throws(HuggingFaceTokenizerError) -> (Tokenizer, PreTokenizer) {
        guard model == "gpt2" else {
            throw HuggingFaceTokenizerError(.unsupported,
                                            "only byte-level BPE vocabularies (tokenizer.ggml.model 'gpt2') can be written as tokenizer.json; this one is '\(model)'")
        }
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer(self) } catch {
            throw HuggingFaceTokenizerError(.malformed, "the vocabulary is not usable: \(error)")
        }
        guard let name = tokenizer.preTokenizer, let splitter = PreTokenizer.named(name) else {
            throw HuggingFaceTokenizerError(.malformed, "the vocabulary has no pre-tokenizer")
        }
        return (tokenizer, splitter)
    }
}

/// The pre-tokenizers that have a Hugging Face spelling, and the mapping both ways.
///
/// llama.cpp identifies a pre-tokenizer by name; a `tokenizer.json` spells it out as a sequence of
/// steps. A step list is recognised only as a whole and only with the exact regular expressions the
/// original tokenizers use, so that nothing that would split differently is accepted.
enum HuggingFacePreTokenizer {
    /// GPT-2's expression (also what ByteLevel applies with `use_regex: true`).
    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    /// Llama 3's expression (numbers in groups of up to three digits).
    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen 2's expression (single digits).
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// The same two with the contractions spelled with character classes (as some converters write them).
    static let llama3RegexClasses = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2RegexClasses = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    static let llama3Rules: [SplitRule] = [.llama3(digits: 3, marks: false)]
    static let qwen2Rules: [SplitRule] = [.llama3(digits: 1, marks: false)]
    static let gpt2Rules: [SplitRule] = [.gpt2]
    static let starcoderRules: [SplitRule] = [.isolatedNumbers, .gpt2]

    /// llama.cpp names tried in order for a step list; the first whose `ignoreMerges` matches the
    /// model's and whose `cleanSpaces` matches `clean_up_tokenization_spaces` wins.
    static let preferredNames = ["gpt-2", "trillion", "starcoder", "smollm", "llama-bpe", "dbrx", "qwen2", "stablelm2"]

    /// The supported forms, for error messages.
    static let supportedForms = "ByteLevel(use_regex: true) (GPT-2); Sequence[Digits(individual_digits: true), "
        + "ByteLevel(use_regex: true)] (StarCoder, SmolLM); Split(GPT-2, Llama 3 or Qwen 2 expression, Isolated) "
        + "followed by ByteLevel(use_regex: false)"

    /// The llama.cpp pre-tokenizer name equivalent to a `pre_tokenizer` member.
    /// - Throws: `.unsupported` naming the step that has no equivalent.
    static func name(for json: JSONValue, ignoreMerges: Bool, cleanSpaces: Bool?) throws(HuggingFaceTokenizerError) -> String {
        func unsupported(_ message: String) -> HuggingFaceTokenizerError {
            HuggingFaceTokenizerError(.unsupported, message + " (supported: " + supportedForms + ")")
        }
        var steps: [JSONValue] = []
        func flatten(_ value: JSONValue) {
            if value["type"]?.stringValue == "Sequence" {
                for inner in value["pretokenizers"]?.arrayValue ?? [] { flatten(inner) }
            } else {
                steps.append(value)
            }
        }
        flatten(json)
        var rules: [SplitRule] = []
        var byteLevel = false
        for (index, step) in steps.enumerated() {
            let type = step["type"]?.stringValue ?? "null"
            if byteLevel { throw unsupported("pre_tokenizer step '\(type)' after ByteLevel") }
            switch type {
            case "ByteLevel":
                if step["add_prefix_space"]?.boolValue == true {
                    throw unsupported("ByteLevel with add_prefix_space: true")
                }
                if step["use_regex"]?.boolValue ?? true { rules.append(.gpt2) }
                byteLevel = true
            case "Split":
                guard step["behavior"]?.stringValue == "Isolated", step["invert"]?.boolValue != true else {
                    throw unsupported("Split with behavior '\(step["behavior"]?.stringValue ?? "?")'")
                }
                let regex = step["pattern"]?["Regex"]?.stringValue
                switch regex {
                case gpt2Regex?: rules.append(.gpt2)
                case llama3Regex?, llama3RegexClasses?: rules += llama3Rules
                case qwen2Regex?, qwen2RegexClasses?: rules += qwen2Rules
                default:
                    let shown = regex ?? "String pattern \(step["pattern"]?["String"]?.stringValue ?? "?")"
                    throw unsupported("Split pattern \(shown) is not one of the known expressions")
                }
            case "Digits":
                guard step["individual_digits"]?.boolValue == true else {
                    throw unsupported("Digits with individual_digits: false")
                }
                rules.append(.isolatedNumbers)
            default:
                throw unsupported("pre_tokenizer step \(index) of type '\(type)'")
            }
        }
        guard byteLevel else { throw unsupported("a pre_tokenizer without a ByteLevel step (not byte-level BPE)") }
        let candidates = preferredNames.compactMap(PreTokenizer.named).filter { $0.rules == rules }
        guard !candidates.isEmpty else { throw unsupported("this combination of pre_tokenizer steps") }
        let sameMerges = candidates.filter { $0.ignoreMerges == ignoreMerges }
        guard let first = sameMerges.first else {
            throw unsupported("ignore_merges: \(ignoreMerges) with this pre_tokenizer")
        }
        // clean_up_tokenization_spaces only affects decoding: prefer a match, else take the first.
        return (sameMerges.first { cleanSpaces == nil || $0.cleanSpaces == cleanSpaces } ?? first).name
    }

    /// The `pre_tokenizer` member for a llama.cpp pre-tokenizer.
    /// - Throws: `.unsupported` when it has no spelling here.
    static func json(for splitter: PreTokenizer) throws(HuggingFaceTokenizerError) -> JSONValue {
        func byteLevel(_ useRegex: Bool) -> JSONValue {
            ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": .bool(useRegex)]
        }
        func split(_ regex: String) -> JSONValue {
            .object(["type": "Split", "pattern": ["Regex": .string(regex)], "behavior": "Isolated", "invert": false])
        }
        switch splitter.rules {
        case gpt2Rules: return byteLevel(true)
        case starcoderRules:
            return ["type": "Sequence", "pretokenizers": [["type": "Digits", "individual_digits": true], byteLevel(true)]]
        case llama3Rules: return ["type": "Sequence", "pretokenizers": [split(llama3Regex), byteLevel(false)]]
        case qwen2Rules: return ["type": "Sequence", "pretokenizers": [split(qwen2Regex), byteLevel(false)]]
        default:
            throw HuggingFaceTokenizerError(.unsupported,
                                            "the pre-tokenizer '\(splitter.name)' has no tokenizer.json equivalent here (supported: "
                                                + preferredNames.joined(separator: ", ") + " and their aliases)")
        }
    }
}

/// BOS/EOS adding as Hugging Face post-processors express it.
enum HuggingFacePostProcessor {
    /// The texts of the tokens a `post_processor` adds before and after a single sequence.
    /// - Throws: `.unsupported` for a processor type or template this module cannot express.
    static func addedTokens(_ json: JSONValue) throws(HuggingFaceTokenizerError) -> (bos: String?, eos: String?) {
        func unsupported(_ message: String) -> HuggingFaceTokenizerError {
            HuggingFaceTokenizerError(.unsupported, message
                + " (supported post-processors: ByteLevel, TemplateProcessing adding at most one token before and one after, "
                + "RobertaProcessing, BertProcessing, Sequence of these)")
        }
        if json.isNull { return (nil, nil) }
        switch json["type"]?.stringValue ?? "?" {
        case "ByteLevel":
            return (nil, nil)
        case "Sequence":
            var result: (bos: String?, eos: String?) = (nil, nil)
            for inner in json["processors"]?.arrayValue ?? [] {
                let found = try addedTokens(inner)
                if found.bos != nil || found.eos != nil {
                    if result.bos != nil || result.eos != nil { throw unsupported("several processors adding tokens") }
                    result = found
                }
            }
            return result
        case "RobertaProcessing", "BertProcessing":
            let bos = json["cls"]?[0]?.stringValue, eos = json["sep"]?[0]?.stringValue
            guard bos != nil, eos != nil else {
                throw HuggingFaceTokenizerError(.malformed, "post_processor needs 'cls' and 'sep' as [text, id]")
            }
            return (bos, eos)
        case "TemplateProcessing":
            guard let single = json["single"]?.arrayValue else {
                throw HuggingFaceTokenizerError(.malformed, "TemplateProcessing has no 'single' template")
            }
            var before: [String] = [], after: [String] = []
            var sawSequence = false
            for piece in single {
                if piece["Sequence"] != nil {
                    if sawSequence { throw unsupported("a single template with two sequences") }
                    sawSequence = true
                } else if let name = piece["SpecialToken"]?["id"]?.stringValue {
                    // The template names an entry of special_tokens, which lists the token(s) it stands for.
                    let entry = json["special_tokens"]?[name]
                    let tokens = entry?["tokens"]?.arrayValue?.compactMap(\.stringValue) ?? [name]
                    guard tokens.count == 1 else { throw unsupported("special token '\(name)' standing for \(tokens.count) tokens") }
                    if sawSequence { after.append(tokens[0]) } else { before.append(tokens[0]) }
                } else {
                    throw HuggingFaceTokenizerError(.malformed, "TemplateProcessing piece is neither Sequence nor SpecialToken")
                }
            }
            guard sawSequence else { throw HuggingFaceTokenizerError(.malformed, "the single template has no sequence") }
            guard before.count <= 1, after.count <= 1 else {
                throw unsupported("a template adding \(before.count) tokens before and \(after.count) after")
            }
            return (before.first, after.first)
        case let other:
            throw unsupported("post_processor '\(other)'")
        }
    }

    /// A post-processor adding `bos` before and `eos` after the text (ByteLevel when neither).
    static func json(bos: (text: String, id: Int32)?, eos: (text: String, id: Int32)?) -> JSONValue {
        if bos == nil && eos == nil {
            return ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        }
        func special(_ text: String) -> JSONValue { ["SpecialToken": ["id": .string(text), "type_id": 0]] }
        func sequence(_ name: String, _ typeID: Int64) -> JSONValue { ["Sequence": ["id": .string(name), "type_id": .int(typeID)]] }
        var single: [JSONValue] = [], pair: [JSONValue] = []
        if let bos { single.append(special(bos.text)) }
        single.append(sequence("A", 0))
        if let eos { single.append(special(eos.text)) }
        pair = single
        if let bos { pair.append(special(bos.text)) }
        pair.append(sequence("B", 1))
        if let eos { pair.append(special(eos.text)) }
        var specials = JSONObject()
        for (text, id) in [bos, eos].compactMap({ $0 }) {
            specials[text] = .object(["id": .string(text), "ids": [.int(Int64(id))], "tokens": [.string(text)]])
        }
        return .object(["type": "TemplateProcessing", "single": .array(single), "pair": .array(pair),
                        "special_tokens": .object(specials)])
    }
}

/// Reading the JSON files of a Hugging Face directory.
enum HuggingFaceFiles {
    /// The largest JSON file read (a 256k-token tokenizer.json is about 20 MB).
    static let maximumSize = 512 << 20

    static func readJSON(_ path: String) throws(HuggingFaceTokenizerError) -> JSONValue {
        let bytes: [UInt8]
        do { bytes = try readFile(path, limit: maximumSize) } catch {
            throw HuggingFaceTokenizerError(.unreadable, "cannot read: \(error)", path: path)
        }
        do { return try JSON.parse(bytes, maxDepth: 128) } catch {
            throw HuggingFaceTokenizerError(.unreadable, FileError.reason(error, about: path), path: path)
        }
    }
}
