import PromptTuning
import SoftPrompt
import TensorIO
import Testing
import TestSupport
import Tokenizers

/// Training rows parse special-token text per dataset. Oracle: transformers' ids for the same texts
/// with the tiny-qwen2 tokenizer (Tests/Fixtures/tokenizers/special-tokens.json, from
/// Tools/scripts/gen_special_token_fixtures.py); that tokenizer adds no BOS, so a row's context is
/// exactly the ids of its rendered text.
@Suite struct ExampleEncoderTests {
    /// (text, ids with specials parsed, ids with specials as text) for tiny-qwen2.
    static func expected() throws -> [(text: String, special: [Int32], plain: [Int32])] {
        let json = try JSON.parse(try readFile(TestSupport.fixture("tokenizers/special-tokens.json")))
        let texts = try #require(json["texts"]?.arrayValue).map { $0.stringValue! }
        let entry = try #require(json["tokenizers"]?.arrayValue?.first { $0["name"]?.stringValue == "tiny-qwen2" })
        func ids(_ value: JSONValue?) -> [Int32] { (value?.arrayValue ?? []).map { Int32($0.intValue!) } }
        return zip(texts, try #require(entry["cases"]?.arrayValue)).map { ($0, ids($1["special"]), ids($1["plain"])) }
    }

    @Test func rowsParseSpecialTokensUnlessTheDatasetSaysNot() throws {
        let tokenizer = try Tokenizer(TokenizerVocabulary(huggingFaceDirectory: TestSupport.fixture("hf/tiny-qwen2")))
        #expect(!tokenizer.addsBOS)
        let cases = try Self.expected().filter { $0.special != $0.plain }
        #expect(cases.count >= 10)
        let encoder = ExampleEncoder(tokenizer: tokenizer, template: try PromptTemplate("{input}"))
        // Every text is used as input, output and choice of one row.
        var jsonl = ""
        for c in cases {
            let text = try JSON.serialize(.string(c.text))
            jsonl += "{\"input\": \(text), \"output\": \(text), \"choices\": [\(text), \"x\"]}\n"
        }
        var dataset = try TaskDataset.parse(Array(jsonl.utf8), path: "rows.jsonl")
        #expect(dataset.parseSpecial)
        for (row, c) in zip(encoder.encode(dataset), cases) {
            #expect(row.context == c.special && row.output == c.special && row.choices.first == c.special, "\(c.text.debugDescription)")
        }
        dataset.parseSpecial = false
        for (row, c) in zip(encoder.encode(dataset, limit: 3), cases) {
            #expect(row.context == c.plain && row.output == c.plain && row.choices.first == c.plain, "\(c.text.debugDescription)")
        }
        #expect(encoder.encode(dataset, limit: 3).count == 3)
    }
}
