import GGUF
import TensorIO
import Testing
import TestSupport
import Tokenizers

/// Prompt text split at special tokens, against Tests/Fixtures/tokenizers/special-tokens.json.
///
/// Oracles: transformers' fast tokenizer (`tokenizer(text, add_special_tokens=False)`, and with
/// `split_special_tokens=True` for special tokens kept as text), on the tokenizer.json fixtures as
/// transformers loads them and on the GGUF vocabularies as transformers' own GGUF builder converts
/// them; and llama.cpp's `llama_tokenize` (parse_special true / false) for the GGUF vocabularies when
/// the fixture holds its ids. The SentencePiece vocabulary is compared with llama.cpp only:
/// transformers rebuilds its merges from the scores and does not prefix the text after a special token
/// with a space, so it splits differently from llama.cpp there (as the fixture shows). The fixture's
/// "oracle" member names the versions. Regenerate with `python3 Tools/scripts/gen_special_token_fixtures.py`.
@Suite struct SpecialTokenParsingTests {
    static let chatML = "<|im_start|>user\nTranslate to French: cheese<|im_end|>\n<|im_start|>assistant\n"

    struct Case: Sendable {
        var special: [Int32]
        var plain: [Int32]
        /// llama.cpp's ids, for GGUF vocabularies when llama-cpp-python was installed.
        var llamaSpecial: [Int32]?
        var llamaPlain: [Int32]?
    }

    struct Fixture: Sendable {
        var oracle: String
        var texts: [String]
        var tokenizers: [String: [Case]]
    }

    static func fixture() throws -> Fixture {
        let json = try JSON.parse(try readFile(TestSupport.fixture("tokenizers/special-tokens.json")))
        func ids(_ value: JSONValue?) -> [Int32] { (value?.arrayValue ?? []).map { Int32($0.intValue!) } }
        func optionalIDs(_ value: JSONValue?) -> [Int32]? { value.map(ids) }
        var tokenizers: [String: [Case]] = [:]
        for entry in json["tokenizers"]?.arrayValue ?? [] {
            tokenizers[entry["name"]!.stringValue!] = (entry["cases"]?.arrayValue ?? []).map {
                Case(special: ids($0["special"]), plain: ids($0["plain"]),
                     llamaSpecial: optionalIDs($0["llamacpp_special"]), llamaPlain: optionalIDs($0["llamacpp_plain"]))
            }
        }
        return Fixture(oracle: json["oracle"]?.stringValue ?? "", texts: (json["texts"]?.arrayValue ?? []).map { $0.stringValue! },
                       tokenizers: tokenizers)
    }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        switch name {
        case "tiny-llama", "tiny-qwen2", "tiny-strip":
            return try Tokenizer(TokenizerVocabulary(huggingFaceDirectory: TestSupport.fixture("hf/" + name)))
        case "bpe": return try Tokenizer(TokenizerFixtures.Case(name: "bpe-gpt-2").vocabulary())
        case "spm": return try Tokenizer(TokenizerFixtures.Case(name: "spm").vocabulary())
        default: return try TokenizerFixtures.defaultModel.get().0
        }
    }

    /// Compares with transformers (unless `transformers` is false) and with llama.cpp where the fixture has its ids.
    static func check(_ name: String, transformers: Bool = true) throws {
        let fixture = try fixture()
        let cases = try #require(fixture.tokenizers[name], "no \(name) entry in special-tokens.json")
        #expect(cases.count == fixture.texts.count)
        #expect(fixture.oracle.hasPrefix("transformers "))
        let tokenizer = try tokenizer(name)
        for (text, expected) in zip(fixture.texts, cases) {
            let special = tokenizer.encode(text, addSpecial: false, parseSpecial: true)
            let plain = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
            if transformers {
                #expect(special == expected.special, "\(name), specials parsed (transformers): \(text.debugDescription)")
                #expect(plain == expected.plain, "\(name), specials as text (transformers): \(text.debugDescription)")
            }
            if let llamaSpecial = expected.llamaSpecial, let llamaPlain = expected.llamaPlain {
                #expect(special == llamaSpecial, "\(name), specials parsed (llama.cpp): \(text.debugDescription)")
                #expect(plain == llamaPlain, "\(name), specials as text (llama.cpp): \(text.debugDescription)")
            }
        }
    }

    /// tokenizer.json fixtures: transformers; bpe.gguf: transformers and llama.cpp.
    @Test(arguments: ["tiny-llama", "tiny-qwen2", "tiny-strip", "bpe"])
    func matchesTheOracles(_ name: String) throws {
        try Self.check(name)
    }

    @Test(.enabled(if: TestSupport.defaultModelPath != nil)) func defaultModelMatchesTransformersAndLlamaCpp() throws {
        try Self.check("smollm")
    }

    @Test func sentencePieceMatchesLlamaCpp() throws {
        let cases = try #require(try Self.fixture().tokenizers["spm"])
        #expect(cases.allSatisfy { $0.llamaSpecial != nil && $0.llamaPlain != nil }, "the fixture lacks llama.cpp's ids")
        try Self.check("spm", transformers: false)
    }

    /// The ChatML prompt of issue 13: 15 tokens in llama.cpp and transformers, 33 with the specials as text.
    @Test(.enabled(if: TestSupport.defaultModelPath != nil)) func chatMLPromptIsFifteenTokensOnTheDefaultModel() throws {
        let tokenizer = try Self.tokenizer("smollm")
        let ids = tokenizer.encode(Self.chatML, addSpecial: true, parseSpecial: true)
        #expect(ids.count == 15)
        #expect(ids.first == tokenizer.id(of: "<|im_start|>"))
        #expect(tokenizer.encode(Self.chatML, addSpecial: true, parseSpecial: false).count == 33)
    }

    /// tokenizer.json's lstrip / rstrip flags are read, kept through an export, and strip Unicode
    /// whitespace as `tokenizers` does (llama.cpp's own strip flags, for Phi-3, strip C `isspace` only).
    @Test func stripFlagsOfAddedTokens() throws {
        let vocabulary = try TokenizerVocabulary(huggingFaceDirectory: TestSupport.fixture("hf/tiny-strip"))
        let tokenizer = try Tokenizer(vocabulary)
        let end = try #require(tokenizer.id(of: "<|im_end|>")), user = try #require(tokenizer.id(of: "<|user|>"))
        #expect(vocabulary.leftStripTokenIDs == [end] && vocabulary.rightStripTokenIDs == [user])
        let back = try TokenizerVocabulary(tokenizerJSON: vocabulary.huggingFaceTokenizerJSON())
        #expect(back.leftStripTokenIDs == [end] && back.rightStripTokenIDs == [user])
        #expect(tokenizer.encode("\u{3000} \t<|im_end|>", addSpecial: false, parseSpecial: true) == [end])
        #expect(tokenizer.encode("<|user|>\u{3000}\n", addSpecial: false, parseSpecial: false) == [user])
        // Without parsing, the stripping special token stays text and the spaces stay with it.
        #expect(tokenizer.encode(" <|im_end|>", addSpecial: false, parseSpecial: false).count > 1)
    }

    @Test func singleWordAddedTokensAreRefused() throws {
        var json = try JSON.parse(try readFile(TestSupport.fixture("hf/tiny-qwen2/tokenizer.json")))
        var added = json["added_tokens"]!.arrayValue!
        guard case var .object(first) = added[0] else { Issue.record("added_tokens[0] is not an object"); return }
        first["single_word"] = true
        added[0] = .object(first)
        guard case var .object(root) = json else { return }
        root["added_tokens"] = .array(added)
        json = .object(root)
        #expect(throws: HuggingFaceTokenizerError.self) { try TokenizerVocabulary(tokenizerJSON: json) }
    }
}
