import GGUF

extension TokenizerVocabulary {
    /// Reads the `tokenizer.ggml.*` metadata of a GGUF file (and `general.name`, which llama.cpp uses to
    /// recognise Phi-3). Keys that are absent stay nil, so llama.cpp's defaults apply; an id that does
    /// not fit in `Int32` becomes -1 (out of range, so the default is kept).
    /// - Throws: `TokenizerError.missingMetadata` when the model kind or the token list is absent.
    public init(gguf: GGUFFile) throws(TokenizerError) {
        guard let model = gguf.string("tokenizer.ggml.model") else {
            throw .missingMetadata("tokenizer.ggml.model")
        }
        guard let tokens = gguf.array("tokenizer.ggml.tokens")?.strings() else {
            throw .missingMetadata("tokenizer.ggml.tokens")
        }
        self.init(model: model, tokens: tokens)
        preTokenizer = gguf.string("tokenizer.ggml.pre")
        if let types = gguf.array("tokenizer.ggml.token_type") {
            tokenTypes = types.map { Int32(truncatingIfNeeded: $0.intValue ?? 0) }
        }
        if let scores = gguf.array("tokenizer.ggml.scores") {
            self.scores = scores.map { Float($0.doubleValue ?? Double($0.intValue ?? 0)) }
        }
        if let merges = gguf.array("tokenizer.ggml.merges")?.strings() { self.merges = merges }
        func id(_ key: String) -> Int32? {
            guard let value = gguf.value(forKey: "tokenizer.ggml." + key) else { return nil }
            switch value {
            case .uint64(let v): return v <= UInt64(Int32.max) ? Int32(v) : -1
            case .int64(let v): return Int32(exactly: v) ?? -1
            default: return value.intValue.map { Int32(exactly: $0) ?? -1 }
            }
        }
        func flag(_ key: String) -> Bool? { gguf.bool("tokenizer.ggml." + key) }
        bosTokenID = id("bos_token_id")
        eosTokenID = id("eos_token_id")
        eotTokenID = id("eot_token_id")
        eomTokenID = id("eom_token_id")
        unknownTokenID = id("unknown_token_id")
        separatorTokenID = id("seperator_token_id")  // GGUF's spelling
        paddingTokenID = id("padding_token_id")
        maskTokenID = id("mask_token_id")
        fimPrefixTokenID = id("fim_pre_token_id") ?? id("prefix_token_id")
        fimSuffixTokenID = id("fim_suf_token_id") ?? id("suffix_token_id")
        fimMiddleTokenID = id("fim_mid_token_id") ?? id("middle_token_id")
        fimPadTokenID = id("fim_pad_token_id")
        fimRepoTokenID = id("fim_rep_token_id")
        fimSeparatorTokenID = id("fim_sep_token_id")
        addBOS = flag("add_bos_token")
        addEOS = flag("add_eos_token")
        addSpacePrefix = flag("add_space_prefix")
        modelName = gguf.string("general.name")
    }
}
