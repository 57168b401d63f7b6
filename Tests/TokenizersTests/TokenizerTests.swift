import Testing
import TestSupport
@testable import Tokenizers

/// Hand-made vocabularies with hand-computed results, following llama.cpp's rules step by step.
@Suite struct TokenizerTests {
    /// A byte-level BPE vocabulary: the 256 byte symbols, then `extra` tokens.
    static func bpe(_ extra: [String], merges: [String], pre: String? = "gpt-2", types: [Int32: TokenType] = [:])
        -> TokenizerVocabulary {
        let bytes = ByteLevel.scalarForByte.map { String(Unicode.Scalar($0)!) }
        var v = TokenizerVocabulary(model: "gpt2", preTokenizer: pre, tokens: bytes + extra, merges: merges)
        var typeArray = [Int32](repeating: TokenType.normal.rawValue, count: v.tokens.count)
        for (id, type) in types { typeArray[Int(id)] = type.rawValue }
        v.tokenTypes = typeArray
        return v
    }

    static func id(_ v: TokenizerVocabulary, _ text: String) -> Int32 {
        Int32(v.tokens.firstIndex { Array($0.utf8) == Array(text.utf8) }!)
    }

    // MARK: errors

    @Test func rejectsUnknownModelAndPreTokenizer() throws {
        #expect(throws: TokenizerError.unsupportedModel("bert", supported: ["gpt2", "llama"])) {
            try Tokenizer(TokenizerVocabulary(model: "bert", tokens: ["a"]))
        }
        let error = #expect(throws: TokenizerError.self) {
            try Tokenizer(TokenizerVocabulary(model: "gpt2", preTokenizer: "gpt2", tokens: ["a"]))
        }
        guard case let .unsupportedPreTokenizer(name, supported)? = error else {
            Issue.record("wrong error \(String(describing: error))")
            return
        }
        #expect(name == "gpt2")
        for known in ["gpt-2", "smollm", "llama-bpe", "llama3", "qwen2", "default"] { #expect(supported.contains(known)) }
        #expect(error!.description.contains("supported: default, llama3"))
    }

    @Test func rejectsMalformedVocabularies() {
        #expect(throws: TokenizerError.invalidTokenCount(0)) { try Tokenizer(TokenizerVocabulary(model: "gpt2", tokens: [])) }
        #expect(throws: TokenizerError.duplicateToken("a", firstID: 0, secondID: 2)) {
            try Tokenizer(TokenizerVocabulary(model: "llama", tokens: ["a", "b", "a"]))
        }
        var short = TokenizerVocabulary(model: "llama", tokens: ["a", "b"])
        short.scores = [0]
        #expect(throws: TokenizerError.arrayTooShort(field: "tokenizer.ggml.scores", count: 1, tokens: 2)) {
            try Tokenizer(short)
        }
        short.scores = nil
        short.tokenTypes = [1]
        #expect(throws: TokenizerError.arrayTooShort(field: "tokenizer.ggml.token_type", count: 1, tokens: 2)) {
            try Tokenizer(short)
        }
        #expect(throws: TokenizerError.malformedMerge(index: 0, merge: "ab")) {
            try Tokenizer(TokenizerVocabulary(model: "gpt2", tokens: ["a", "b", "ab"], merges: ["ab"]))
        }
        #expect(throws: TokenizerError.malformedMerge(index: 1, merge: " ab")) {
            try Tokenizer(TokenizerVocabulary(model: "gpt2", tokens: ["a", "b", "ab"], merges: ["a b", " ab"]))
        }
        #expect(throws: TokenizerError.mergeOutsideVocabulary(index: 0, merge: "a c", missing: "c")) {
            try Tokenizer(TokenizerVocabulary(model: "gpt2", tokens: ["a", "b", "ab"], merges: ["a c"]))
        }
        #expect(throws: TokenizerError.mergeOutsideVocabulary(index: 0, merge: "b a", missing: "ba")) {
            try Tokenizer(TokenizerVocabulary(model: "gpt2", tokens: ["a", "b", "ab"], merges: ["b a"]))
        }
        // The default BPE BOS id (11) does not exist in a 3-token vocabulary.
        var noBOS = TokenizerVocabulary(model: "gpt2", tokens: ["a", "b", "ab"])
        noBOS.addBOS = true
        #expect(throws: TokenizerError.missingSpecialToken("BOS")) { try Tokenizer(noBOS) }
    }

    @Test func tokenTextsAreComparedByBytes() throws {
        // "é" and "e\u{301}" are equal Swift strings but distinct token texts for llama.cpp.
        var v = TokenizerVocabulary(model: "llama", tokens: ["<unk>", "<s>", "</s>", "é", "e\u{301}"])
        v.addSpacePrefix = false
        let t = try Tokenizer(v)
        #expect(t.id(of: "é") == 3)
        #expect(t.id(of: "e\u{301}") == 4)
        #expect(t.encode("é", addSpecial: false) == [3])
    }

    // MARK: byte-level BPE

    @Test func byteAlphabet() {
        let scalars = ByteLevel.scalarForByte
        #expect(Set(scalars).count == 256)
        #expect(scalars[0x20] == 0x120)  // space is "Ġ"
        #expect(scalars[0x0A] == 0x10A)  // newline is "Ċ"
        #expect(scalars[0x00] == 0x100)
        #expect(scalars[0x7F] == 0x121)
        #expect(scalars[0xAD] == 0x143)
        #expect(scalars[0x41] == 0x41)
        for byte in 0 ..< 256 { #expect(ByteLevel.byte(for: scalars[byte]) == UInt8(byte)) }
        #expect(ByteLevel.byte(for: 0x144) == nil)
        #expect(ByteLevel.byte(for: 0x20) == nil)
    }

    @Test func mergesApplyByRankThenLeftmost() throws {
        // "abc": (a,b) has rank 0, so a+b first, then ab+c.
        var v = Self.bpe(["ab", "bc", "abc", "aa"], merges: ["a b", "b c", "ab c", "a a"])
        var t = try Tokenizer(v)
        #expect(t.encode("abc") == [Self.id(v, "abc")])
        // With (b,c) ranked first, "abc" ends as a + bc (no merge "a bc").
        v.merges = ["b c", "a b", "ab c", "a a"]
        t = try Tokenizer(v)
        #expect(t.encode("abc") == [Self.id(v, "a"), Self.id(v, "bc")])
        // Equal ranks: the leftmost pair merges first.
        #expect(t.encode("aaa") == [Self.id(v, "aa"), Self.id(v, "a")])
        #expect(t.encode("aaaa") == [Self.id(v, "aa"), Self.id(v, "aa")])
    }

    @Test func wordsDoNotMergeAcrossPreTokenizerBoundaries() throws {
        let v = Self.bpe(["Ġa", "aĠ"], merges: ["Ġ a", "a Ġ"])
        let t = try Tokenizer(v)
        // gpt-2 splits "a a" into "a", " a": "aĠ" can never form.
        #expect(t.encode("a a") == [Self.id(v, "a"), Self.id(v, "Ġa")])
    }

    @Test func ignoreMergesEmitsWholeWordTokens() throws {
        // "abc" is a token but no merge reaches it: llama-bpe (ignore_merges) emits it whole.
        var v = Self.bpe(["abc", "<|begin_of_text|>"], merges: [])
        v.bosTokenID = Self.id(v, "<|begin_of_text|>")
        v.preTokenizer = "gpt-2"
        #expect(try Tokenizer(v).encode("abc") == [Self.id(v, "a"), Self.id(v, "b"), Self.id(v, "c")])
        v.preTokenizer = "llama-bpe"
        let t = try Tokenizer(v)
        #expect(t.addsBOS)
        #expect(t.encode("abc") == [v.bosTokenID!, Self.id(v, "abc")])
        #expect(t.encode("abc", addSpecial: false) == [Self.id(v, "abc")])
    }

    // MARK: pre-tokenizers

    static func words(_ pre: String, _ text: String) -> [String] {
        let codepoints = CodepointText(utf8: Array(text.utf8))
        var start = 0
        return PreTokenizer.named(pre)!.split(codepoints).map { length in
            defer { start += length }
            return String(String.UnicodeScalarView(codepoints.values[start ..< start + length].map { Unicode.Scalar($0)! }))
        }
    }

    @Test func gpt2Splitting() {
        #expect(Self.words("gpt-2", "Hello world's  test  ") == ["Hello", " world", "'s", " ", " test", "  "])
        #expect(Self.words("gpt-2", "I'M 12ab!? \tx") == ["I", "'", "M", " 12", "ab", "!?", " ", "\t", "x"])
        #expect(Self.words("gpt-2", "a\n\nb") == ["a", "\n", "\n", "b"])
        // Contractions are case-sensitive and only recognised at the apostrophe itself.
        #expect(Self.words("gpt-2", "'Sam 'sam x'Sx") == ["'", "Sam", " '", "sam", " x", "'", "Sx"])
    }

    @Test func llama3Splitting() {
        #expect(Self.words("llama-bpe", "I'M 12345 ok\n\n  x") == ["I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x"])
        #expect(Self.words("llama-bpe", "a...\n\nb") == ["a", "...\n\n", "b"])
        #expect(Self.words("llama-bpe", "\tword") == ["\tword"])
        // Case-insensitive contractions; after a space the apostrophe joins the space instead.
        #expect(Self.words("llama-bpe", "'Sam 'sam x'Sx") == ["'S", "am", " '", "sam", " x", "'S", "x"])
    }

    @Test func qwenSplitting() {
        #expect(Self.words("qwen2", "x12345") == ["x", "1", "2", "3", "4", "5"])
        // Qwen 3.5 keeps combining marks inside words; Qwen 2 does not.
        #expect(Self.words("qwen2", "e\u{301}a") == ["e", "\u{301}a"])
        #expect(Self.words("qwen35", "e\u{301}a") == ["e\u{301}a"])
    }

    @Test func starcoderAndDefaultSplitting() {
        #expect(Self.words("smollm", "abc123 def") == ["abc", "1", "2", "3", " def"])
        // A digit ends a segment, so the spaces before it stay together.
        #expect(Self.words("smollm", "a  1") == ["a", "  ", "1"])
        #expect(Self.words("default", "a+=b; 1234567") == ["a", "+=", "b", ";", " ", "123", "456", "7"])
        #expect(Self.words("falcon", "x`y 1234") == ["x", "`", "y", " ", "123", "4"])
    }

    // MARK: special tokens

    @Test func specialTokensArePartitionedLongestFirst() throws {
        var v = Self.bpe(["<a>", "<a><b>", "<u>", "<|endoftext|>"], merges: [],
                         types: [256: .control, 257: .control, 258: .userDefined, 259: .control])
        v.bosTokenID = 259
        let t = try Tokenizer(v)
        let a: Int32 = 256, ab: Int32 = 257, u: Int32 = 258
        let lt = Self.id(v, "<"), gt = Self.id(v, ">")
        // Control tokens only with parseSpecial; the longer one wins over its prefix.
        #expect(t.encode("<a><b>", parseSpecial: true) == [ab])
        #expect(t.encode("<a><a>", parseSpecial: true) == [a, a])
        #expect(t.encode("<a>", parseSpecial: false) == [lt, Self.id(v, "a"), gt])
        // User-defined tokens are always recognised.
        #expect(t.encode("x<u>y", parseSpecial: false) == [Self.id(v, "x"), u, Self.id(v, "y")])
        // Rendering: control tokens only when asked, user-defined always.
        #expect(t.decode([a, u]) == "<u>")
        #expect(t.decode([a, u], renderSpecial: true) == "<a><u>")
        // "<|endoftext|>" is recognised as end of generation (and end of turn).
        #expect(t.isEndOfGeneration(259))
        #expect(t.specialTokens.eot == 259)
    }

    @Test func detectedEndTokensBecomeControl() throws {
        // "<|im_end|>" stored as a normal token is turned into a control token, as llama.cpp does.
        let v = Self.bpe(["<|im_end|>"], merges: [])
        let t = try Tokenizer(v)
        #expect(t.tokenType(of: 256) == .normal)
        #expect(t.attributes[256] == [.normal, .control])
        #expect(t.decode([256]) == "")
        #expect(t.decode([256], renderSpecial: true) == "<|im_end|>")
        #expect(t.encode("<|im_end|>", parseSpecial: true) == [256])
    }

    // MARK: SentencePiece

    static func spm() -> TokenizerVocabulary {
        var tokens = ["<unk>", "<s>", "</s>"]
        var types: [Int32] = [2, 3, 3]
        for byte in 0 ..< 256 {
            tokens.append("<0x" + String(byte, radix: 16, uppercase: true).leftPadded(2) + ">")
            types.append(6)
        }
        let pieces = ["▁", "a", "b", "c", "▁a", "ab", "bc", "▁ab", "abc"]
        let scores: [Float] = [-1, -2, -3, -4, -5, -6, -7, -8, -9]
        tokens += pieces
        types += pieces.map { _ in 1 }
        var v = TokenizerVocabulary(model: "llama", tokens: tokens, tokenTypes: types,
                                    scores: [0, 0, 0] + [Float](repeating: 0, count: 256) + scores)
        v.addBOS = nil
        return v
    }

    @Test func sentencePieceMergesByScoreWithByteFallback() throws {
        let v = Self.spm()
        let t = try Tokenizer(v)
        let id = { Self.id(v, $0) }
        #expect(t.addsBOS && !t.addsEOS && t.addsSpacePrefix)
        // "▁abc": candidates ▁a (-5), ab (-6), bc (-7). ▁a merges first, which makes ab stale and
        // offers ▁ab (-8); bc (-7) beats it, and then ▁a + bc is not a token.
        #expect(t.encode("abc") == [1, id("▁a"), id("bc")])
        #expect(t.encode("abc", addSpecial: false) == [id("▁a"), id("bc")])
        // "▁ab": ▁a, then ▁ab.
        #expect(t.encode("ab", addSpecial: false) == [id("▁ab")])
        // Unknown characters fall back to their UTF-8 bytes; a space becomes "▁".
        #expect(t.encode("a é", addSpecial: false) == [id("▁a"), id("▁"), id("<0xC3>"), id("<0xA9>")])
        // Decoding drops the leading space and joins byte tokens.
        #expect(t.decode([id("▁a"), id("▁"), id("<0xC3>"), id("<0xA9>")]) == "a é")
        #expect(t.piece(id("<0xC3>")) == [0xC3])
    }

    @Test func sentencePieceBOSAndEOS() throws {
        var v = Self.spm()
        v.addEOS = true
        let t = try Tokenizer(v)
        let ids = t.encode("ab")
        #expect(ids.first == 1 && ids.last == 2)
        // After a removed BOS llama.cpp keeps the leading space; without removal the (empty) BOS
        // piece consumes the space stripping.
        #expect(t.decode(ids, removeSpecial: true) == " ab")
        #expect(t.decode(ids) == " ab")
        #expect(t.decode(Array(ids.dropFirst().dropLast())) == "ab")
        #expect(t.decode(ids, renderSpecial: true) == "<s> ab</s>")
        #expect(t.encode("", addSpecial: true) == [1, 2])
        #expect(t.encode("", addSpecial: false) == [])
        // A special token makes the next text fragment start with a space again.
        #expect(t.encode("</s>ab", addSpecial: false, parseSpecial: true) == [2, Self.id(v, "▁ab")])
    }

    // MARK: decoding

    @Test func pieces() throws {
        let v = Self.bpe(["x€", "<0x41>"], merges: [], types: [257: .byte])
        let t = try Tokenizer(v)
        // A character outside the GPT-2 alphabet yields llama.cpp's marker with the whole token text.
        #expect(t.piece(256) == Array("x[UNK_BYTE_0xe282acx€]".utf8))
        #expect(t.piece(257) == [0x41])
        #expect(t.piece(-1) == [])
        #expect(t.piece(Int32(v.tokens.count)) == [])
        #expect(t.decode([Self.id(v, "Ġ"), Self.id(v, "h"), Self.id(v, "Ã"), Self.id(v, "©")]) == " hé")
    }

    @Test func cleanUpTokenizationSpaces() {
        func clean(_ s: String) -> String { String(decoding: Tokenizer.cleanedSpaces(Array(s.utf8)), as: UTF8.self) }
        #expect(clean("a , b . c ! d ?") == "a, b. c! d?")
        #expect(clean(" ,x") == ",x")
        #expect(clean("it 's") == "it's")
        #expect(clean("I 'm") == "I'm")
        #expect(clean("we 're") == "we're")
        #expect(clean("you 've") == "you've")
        #expect(clean("don 't") == "don 't")
        #expect(clean("he 'd") == "he 'd")
        #expect(clean("she 'll") == "she 'll")
        #expect(clean("a ' b") == "a'b")
        // The second quote sees the NUL llama.cpp writes over the skipped space.
        #expect(clean("a ' ' b") == "a'' b")
        #expect(clean("") == "")
        #expect(clean(" ") == " ")
    }

    @Test func cleanSpacesFollowsThePreTokenizer() throws {
        let v = Self.bpe([], merges: [])
        let ids = try Tokenizer(v).encode("a , b")
        #expect(try Tokenizer(v).decode(ids) == "a, b")  // gpt-2 cleans
        var smollm = v
        smollm.preTokenizer = "smollm"
        #expect(try Tokenizer(smollm).decode(ids) == "a , b")  // smollm does not
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
