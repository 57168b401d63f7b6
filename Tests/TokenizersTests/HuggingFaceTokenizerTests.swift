import GGUF
import TensorIO
import Testing
import TestSupport
@testable import Tokenizers

/// tokenizer.json / tokenizer_config.json read into and written from `TokenizerVocabulary`.
///
/// Oracles: the Hugging Face `tokenizers` library. (1) For tokenizers it trained itself
/// (Tests/Fixtures/hf/tiny-*/tokenizer.json), its ids on a corpus subset
/// (`tiny-tokenizers.ids.zst`, from Tools/scripts/gen_hf_fixtures.py). (2) For the tokenizer.json we
/// write from a GGUF vocabulary, `tokenizers` gives exactly llama.cpp's ids (with parse_special) on the
/// whole corpus — checked by `gen_hf_fixtures.py check-tokenizers` for the default model and the
/// gpt-2, llama-bpe, qwen2 and starcoder variants of bpe.gguf — so the llama.cpp fixtures of
/// Tests/Fixtures/tokenizers are reused as the expected ids here.
@Suite struct HuggingFaceTokenizerTests {
    static let modelPresent = TestSupport.defaultModelPath != nil

    /// GGUF vocabulary → tokenizer.json + tokenizer_config.json (serialized and parsed again) → vocabulary.
    static func roundTrip(_ vocabulary: TokenizerVocabulary) throws -> TokenizerVocabulary {
        let json = try JSON.parse(JSON.serialize(vocabulary.huggingFaceTokenizerJSON(), pretty: true))
        let config = try JSON.parse(JSON.serialize(vocabulary.huggingFaceTokenizerConfig()))
        return try TokenizerVocabulary(tokenizerJSON: json, config: config)
    }

    /// Writes the exported tokenizer.json for `gen_hf_fixtures.py check-tokenizers` when asked to.
    static func dumpForOracle(_ vocabulary: TokenizerVocabulary, name: String) throws {
        guard let directory = environmentValue("SOFTPROMPT_HF_TOKENIZER_DUMP") else { return }
        let text = try JSON.serialize(vocabulary.huggingFaceTokenizerJSON(), pretty: true)
        try AtomicFile.write(to: directory + "/" + name + ".tokenizer.json", bytes: Array(text.utf8))
    }

    /// Corpus entries (every `stride`-th), with and without BOS/EOS and special-token parsing, against
    /// llama.cpp's ids.
    func expectLlamaCppIDs(_ tokenizer: Tokenizer, _ expected: TokenizerFixtures.Expectations, _ name: String,
                           stride: Int = 1) {
        var mismatches: [Int] = []
        for (index, entry) in TokenizerFixtures.corpus.enumerated() where index % stride == 0 || entry.contains("<|") {
            let plain = expected.plain[index]
            if tokenizer.encode(entry, addSpecial: false) != plain
                || tokenizer.encode(entry, addSpecial: true) != expected.prefix + plain + expected.suffix
                || tokenizer.encode(entry, addSpecial: false, parseSpecial: true) != (expected.special[index] ?? plain) {
                mismatches.append(index)
            }
        }
        #expect(mismatches.isEmpty, "\(name): \(mismatches.count) entries differ, first \(mismatches.prefix(5))")
    }

    @Test(.enabled(if: modelPresent)) func defaultModelVocabularyRoundTripsAndEncodesLikeBefore() throws {
        let original = try TokenizerFixtures.Case(name: "smollm").vocabulary()
        try Self.dumpForOracle(original, name: "smollm")
        let back = try Self.roundTrip(original)
        #expect(back.tokens == original.tokens)
        #expect(back.tokenTypes == original.tokenTypes)
        #expect(back.merges == original.merges)
        #expect(back.preTokenizer == "smollm")
        #expect(back.bosTokenID == 1 && back.eosTokenID == 2 && back.unknownTokenID == 0 && back.paddingTokenID == 2)
        #expect(back.addBOS == false && back.addEOS == false)
        let (_, expected) = try TokenizerFixtures.defaultModel.get()
        expectLlamaCppIDs(try Tokenizer(back), expected, "smollm via tokenizer.json")
    }

    @Test(arguments: ["bpe-gpt-2", "bpe-llama-bpe", "bpe-qwen2", "bpe-starcoder"])
    func smallVocabularyVariantsRoundTrip(_ name: String) throws {
        let original = try TokenizerFixtures.Case(name: name).vocabulary()
        try Self.dumpForOracle(original, name: name)
        let back = try Self.roundTrip(original)
        #expect(back.tokens == original.tokens)
        #expect(back.merges == original.merges)
        let reference = try Tokenizer(original), tokenizer = try Tokenizer(back)
        #expect(tokenizer.preTokenizer.flatMap(PreTokenizer.named)?.rules == reference.preTokenizer.flatMap(PreTokenizer.named)?.rules)
        #expect(tokenizer.addsBOS == reference.addsBOS && tokenizer.addsEOS == reference.addsEOS)
        // Equal tokens, merges and pre-tokenizer rules decide the ids; a sample of the corpus keeps this quick.
        expectLlamaCppIDs(tokenizer, try TokenizerFixtures.expectations(name), name + " via tokenizer.json", stride: 8)
    }

    @Test(arguments: ["tiny-llama", "tiny-qwen2"])
    func tokenizersTrainedByHuggingFaceEncodeLikeIt(_ name: String) throws {
        let vocabulary = try TokenizerVocabulary(huggingFaceDirectory: TestSupport.fixture("hf/" + name))
        let tokenizer = try Tokenizer(vocabulary)
        let text = try TokenizerFixtures.zstdDecompress(try readFile(TestSupport.fixture("hf/tiny-tokenizers.ids.zst")))
        var checked = 0, mismatches: [Int] = []
        for line in text.split(separator: 0x0A) {
            let fields = String(decoding: line, as: UTF8.self).split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3, fields[0] == name else { continue }
            let index = Int(fields[1])!
            let expected = fields[2].split(separator: " ").map { Int32($0)! }
            // `tokenizers` always splits out added tokens: llama.cpp's parse_special.
            if tokenizer.encode(TokenizerFixtures.corpus[index], addSpecial: true, parseSpecial: true) != expected {
                mismatches.append(index)
            }
            checked += 1
        }
        #expect(checked > 500)
        #expect(mismatches.isEmpty, "\(name): \(mismatches.count) of \(checked) entries differ, first \(mismatches.prefix(5))")
    }

    @Test func tinyLlamaTokenizerSettings() throws {
        let v = try TokenizerVocabulary(huggingFaceDirectory: TestSupport.fixture("hf/tiny-llama"))
        #expect(v.model == "gpt2")
        #expect(v.preTokenizer == "llama-bpe")  // Llama 3 expression + ignore_merges + clean_up_tokenization_spaces
        #expect(v.tokens.count == 601)
        #expect(v.bosTokenID == 0 && v.tokens[0] == "<|begin_of_text|>")
        #expect(v.eosTokenID == 2 && v.addBOS == true && v.addEOS == false)
        #expect(v.tokenTypes?[0] == TokenType.control.rawValue)
        #expect(v.tokenTypes?[600] == TokenType.userDefined.rawValue && v.tokens[600] == "<|user|>")
        #expect(v.tokenTypes?[300] == TokenType.normal.rawValue)
        let q = try TokenizerVocabulary(huggingFaceDirectory: TestSupport.fixture("hf/tiny-qwen2"))
        #expect(q.preTokenizer == "qwen2")
        #expect(q.addBOS == false && q.addEOS == false)
        #expect(q.eosTokenID == 2 && q.paddingTokenID == 0)
    }

    // MARK: - Reading rules

    /// A small byte-level tokenizer.json: the 256 byte tokens, two merges, two added tokens.
    static func sample(preTokenizer: JSONValue? = nil, postProcessor: JSONValue = .null,
                       merges: JSONValue = ["Ġ t", "Ġt h"], model extra: JSONObject = [:]) -> JSONValue {
        var vocab = JSONObject()
        for (id, scalar) in ByteLevel.scalarForByte.enumerated() {
            vocab[String(Character(Unicode.Scalar(scalar)!))] = .int(Int64(id))
        }
        vocab["Ġt"] = 256
        vocab["Ġth"] = 257
        var model: JSONObject = ["type": "BPE", "vocab": .object(vocab), "merges": merges]
        for (key, value) in extra { model[key] = value }
        return .object([
            "added_tokens": [
                ["id": 300, "content": "<s>", "special": true],
                ["id": 301, "content": "<tool>", "special": false],
            ],
            "normalizer": nil,
            "pre_tokenizer": preTokenizer ?? ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "post_processor": postProcessor,
            "model": .object(model),
        ])
    }

    @Test func readsBothMergeSpellingsAndFillsGaps() throws {
        let strings = try TokenizerVocabulary(tokenizerJSON: Self.sample())
        let pairs = try TokenizerVocabulary(tokenizerJSON: Self.sample(merges: [["Ġ", "t"], ["Ġt", "h"]]))
        #expect(strings.merges == ["Ġ t", "Ġt h"])
        #expect(pairs.merges == strings.merges)
        #expect(strings.preTokenizer == "gpt-2")
        #expect(strings.tokens.count == 302)
        #expect(strings.tokens[258] == "[PAD258]" && strings.tokenTypes?[258] == TokenType.unused.rawValue)
        #expect(strings.tokenTypes?[300] == TokenType.control.rawValue)
        #expect(strings.tokenTypes?[301] == TokenType.userDefined.rawValue)
        #expect(strings.addBOS == false && strings.addEOS == false)
        let tokenizer = try Tokenizer(strings)
        #expect(tokenizer.encode(" the<tool>", addSpecial: false) == [257, 101, 301])
    }

    @Test func postProcessorsAndConfigDecideBOSAndEOS() throws {
        let template: JSONValue = [
            "type": "TemplateProcessing",
            "single": [["SpecialToken": ["id": "<s>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                       ["SpecialToken": ["id": "<tool>", "type_id": 0]]],
            "special_tokens": ["<s>": ["id": "<s>", "ids": [300], "tokens": ["<s>"]],
                               "<tool>": ["id": "<tool>", "ids": [301], "tokens": ["<tool>"]]],
        ]
        let v = try TokenizerVocabulary(tokenizerJSON: Self.sample(postProcessor: template))
        #expect(v.addBOS == true && v.bosTokenID == 300 && v.addEOS == true && v.eosTokenID == 301)
        let sequence: JSONValue = ["type": "Sequence", "processors": [["type": "ByteLevel"], template]]
        #expect(try TokenizerVocabulary(tokenizerJSON: Self.sample(postProcessor: sequence)).bosTokenID == 300)
        // tokenizer_config.json overrides the post-processor and names special tokens (string or object).
        let config: JSONValue = ["add_bos_token": false, "eos_token": ["content": "<tool>", "__type": "AddedToken"],
                                 "pad_token": "<s>"]
        let overridden = try TokenizerVocabulary(tokenizerJSON: Self.sample(postProcessor: template), config: config)
        #expect(overridden.addBOS == false && overridden.addEOS == true && overridden.paddingTokenID == 300)
        let roberta: JSONValue = ["type": "RobertaProcessing", "cls": ["<s>", 300], "sep": ["<tool>", 301]]
        let r = try TokenizerVocabulary(tokenizerJSON: Self.sample(postProcessor: roberta))
        #expect(r.bosTokenID == 300 && r.eosTokenID == 301 && r.addBOS == true && r.addEOS == true)
    }

    @Test func recognisesTheKnownPreTokenizers() throws {
        func split(_ regex: String) -> JSONValue {
            ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": .string(regex)], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false]]]
        }
        func name(_ pre: JSONValue, ignoreMerges: Bool = false, clean: Bool? = nil) throws -> String? {
            let config: JSONValue? = clean.map { ["clean_up_tokenization_spaces": .bool($0)] }
            return try TokenizerVocabulary(tokenizerJSON: Self.sample(preTokenizer: pre, model: ["ignore_merges": .bool(ignoreMerges)]),
                                           config: config).preTokenizer
        }
        let digits: JSONValue = ["type": "Sequence", "pretokenizers": [
            ["type": "Digits", "individual_digits": true], ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true]]]
        #expect(try name(split(HuggingFacePreTokenizer.gpt2Regex)) == "gpt-2")
        #expect(try name(split(HuggingFacePreTokenizer.gpt2Regex), clean: false) == "trillion")
        #expect(try name(split(HuggingFacePreTokenizer.llama3Regex), ignoreMerges: true) == "llama-bpe")
        #expect(try name(split(HuggingFacePreTokenizer.llama3RegexClasses), ignoreMerges: true) == "llama-bpe")
        #expect(try name(split(HuggingFacePreTokenizer.llama3Regex)) == "dbrx")
        #expect(try name(split(HuggingFacePreTokenizer.qwen2Regex)) == "qwen2")
        #expect(try name(split(HuggingFacePreTokenizer.qwen2Regex), clean: true) == "stablelm2")
        #expect(try name(digits) == "starcoder")
        #expect(try name(digits, clean: false) == "smollm")
    }

    @Test func refusesWhatItCannotReproduce() throws {
        func kind(_ json: JSONValue) -> HuggingFaceTokenizerError.Kind? {
            do {
                _ = try TokenizerVocabulary(tokenizerJSON: json)
                return nil
            } catch { return error.kind }
        }
        let oddSplit: JSONValue = ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": "\\p{L}+|\\s+"], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false]]]
        #expect(kind(Self.sample(preTokenizer: oddSplit)) == .unsupported)
        #expect(kind(Self.sample(preTokenizer: ["type": "ByteLevel", "add_prefix_space": true])) == .unsupported)
        #expect(kind(Self.sample(preTokenizer: ["type": "Whitespace"])) == .unsupported)
        #expect(kind(Self.sample(preTokenizer: .null)) == .unsupported)  // no ByteLevel: not byte-level BPE
        #expect(kind(Self.sample(model: ["type": "WordPiece"])) == .unsupported)
        #expect(kind(Self.sample(model: ["byte_fallback": true])) == .unsupported)
        #expect(kind(Self.sample(postProcessor: ["type": "Mystery"])) == .unsupported)
        // Llama 3's expression without ignore_merges exists (dbrx); Qwen 2's with it does not.
        let qwen: JSONValue = ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": .string(HuggingFacePreTokenizer.qwen2Regex)], "behavior": "Isolated"],
            ["type": "ByteLevel", "use_regex": false]]]
        #expect(kind(Self.sample(preTokenizer: qwen, model: ["ignore_merges": true])) == .unsupported)
        #expect(kind(Self.sample(merges: ["Ġt"])) == .malformed)
        #expect(kind(["added_tokens": []]) == .malformed)
        do {
            _ = try TokenizerVocabulary(tokenizerJSON: Self.sample(preTokenizer: oddSplit))
        } catch {
            #expect(error.message.contains("\\p{L}+|\\s+"), "the message names the expression: \(error.message)")
        }
        #expect(throws: HuggingFaceTokenizerError.self) {
            _ = try TokenizerVocabulary(huggingFaceDirectory: TestSupport.temporaryDirectory("no-tokenizer"))
        }
    }

    @Test func exportRefusesVocabulariesWithoutATokenizerJSONSpelling() throws {
        let spm = try TokenizerFixtures.Case(name: "spm").vocabulary()
        #expect(throws: HuggingFaceTokenizerError.self) { _ = try spm.huggingFaceTokenizerJSON() }
        let fallback = try TokenizerFixtures.Case(name: "bpe-default").vocabulary()  // llama.cpp's "default" regexes
        #expect(throws: HuggingFaceTokenizerError.self) { _ = try fallback.huggingFaceTokenizerJSON() }
    }
}
