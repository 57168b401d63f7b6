import GGUF
import TensorIO
import Testing
import TestSupport
import Tokenizers

/// Prompt text split at special tokens, against Tests/Fixtures/tokenizers/special-tokens.json.
///
/// Oracle: transformers' fast tokenizer (`tokenizer(text, add_special_tokens=False)`, and with
/// `split_special_tokens=True` for special tokens kept as text), on the tokenizer.json fixtures as
/// transformers loads them and on the GGUF vocabularies as transformers' own GGUF builder converts
/// them; the fixture's "oracle" member names the versions. Regenerate with
/// `python3 Tools/scripts/gen_special_token_fixtures.py`.
@Suite struct SpecialTokenParsingTests {
    static let chatML = "<|im_start|>user\nTranslate to French: cheese<|im_end|>\n<|im_start|>assistant\n"

    struct Case: Sendable {
        var special: [Int32]
        var plain: [Int32]
    }

    struct Fixture: Sendable {
        var oracle: String
        var texts: [String]
        var tokenizers: [String: [Case]]
    }

    static func fixture() throws -> Fixture {
        let json = try JSON.parse(try readFile(TestSupport.fixture("tokenizers/special-tokens.json")))
        func ids(_ value: JSONValue?) -> [Int32] { (value?.arrayValue ?? []).map { Int32($0.intValue!) } }
        var tokenizers: [String: [Case]] = [:]
        for entry in json["tokenizers"]?.arrayValue ?? [] {
            tokenizers[entry["name"]!.stringValue!] = (entry["cases"]?.arrayValue ?? []).map {
                Case(special: ids($0["special"]), plain: ids($0["plain"]))
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

    static func check(_ name: String) throws {
        let fixture = try fixture()
        let cases = try #require(fixture.tokenizers[name], "no \(name) entry in special-tokens.json")
        #expect(cases.count == fixture.texts.count)
        #expect(fixture.oracle.hasPrefix("transformers "))
        let tokenizer = try tokenizer(name)
        for (text, expected) in zip(fixture.texts, cases) {
            #expect(tokenizer.encode(text, addSpecial: false, parseSpecial: true) == expected.special,
                    "\(name), specials parsed: \(text.debugDescription)")
            #expect(tokenizer.encode(text, addSpecial: false, parseSpecial: false) == expected.plain,
                    "\(name), specials as text: \(text.debugDescription)")
        }
    }

    @Test(arguments: ["tiny-llama", "tiny-qwen2", "tiny-strip", "bpe"])
    func matchesTransformers(_ name: String) throws {
        try Self.check(name)
    }

    @Test(.enabled(if: TestSupport.defaultModelPath != nil)) func defaultModelMatchesTransformers() throws {
        try Self.check("smollm")
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
