import GGUF
import PromptTuning
import Safetensors
import SoftPrompt
import TensorIO
import TestSupport
import Testing
import Tokenizers

/// Every input a fuzz target found (Tests/Fixtures/fuzz/manifest.json) goes through the reader of its
/// target again: accepted or refused as the manifest says, never a trap.
struct FuzzRegressionTests {
    struct Finding: Sendable, CustomTestStringConvertible {
        var path: String, target: String, expect: String
        var testDescription: String { path }
    }

    static let root = TestSupport.fixture("fuzz")
    static let findings: [Finding] = {
        guard let json = try? JSON.parse(try readFile(root + "/manifest.json")) else { return [] }
        return (json["entries"]?.arrayValue ?? []).map {
            Finding(path: $0["path"]?.stringValue ?? "", target: $0["target"]?.stringValue ?? "", expect: $0["expect"]?.stringValue ?? "")
        }
    }()

    /// Opens `path` as `target` does; returns nil when accepted, else the error.
    static func replay(_ target: String, _ path: String) throws -> (any Error)? {
        do {
            switch target {
            case "gguf":
                let file = try GGUFFile(path: path)
                for tensor in file.tensors { _ = file.data(for: tensor).last }
                if file.string("tokenizer.ggml.model") != nil {
                    let tokenizer = try Tokenizer(TokenizerVocabulary(gguf: file))
                    _ = tokenizer.decode(tokenizer.encode("Hello, wörld! 日本語 😀 123"))
                }
            case "safetensors":
                let file = try SafetensorsFile(path: path)
                for info in file.tensors { _ = try? file.floats(for: info) }
            case "sprompt":
                _ = try PromptFile.read(path: path)
            case "tokenizer-json":
                let tokenizer = try Tokenizer(TokenizerVocabulary(tokenizerJSON: try JSON.parse(try readFile(path))))
                _ = tokenizer.decode(tokenizer.encode("Hello, wörld! 日本語 😀 123"))
            case "jsonl":
                _ = try TaskDataset.load(path: path)
            default:
                Issue.record("no replay for target \(target)")
            }
            return nil
        } catch {
            return error
        }
    }

    @Test func everyFindingIsListedAndPresent() throws {
        var onDisk: [String] = []
        for folder in try listDirectory(Self.root) where isDirectory(Self.root + "/" + folder) {
            onDisk += try listDirectory(Self.root + "/" + folder).map { folder + "/" + $0 }
        }
        #expect(onDisk.sorted() == Self.findings.map(\.path).sorted())
    }

    @Test(arguments: findings) func findingIsHandled(_ finding: Finding) throws {
        let error = try Self.replay(finding.target, Self.root + "/" + finding.path)
        if finding.expect == "accepted" {
            #expect(error == nil, "\(String(describing: error))")
        } else {
            #expect(error != nil)
        }
    }

    /// The first finding: a short text typed BYTE decodes to 0x00 instead of trapping.
    @Test func shortByteTokensDecodeToZero() throws {
        let file = try GGUFFile(path: Self.root + "/gguf/short-byte-token.gguf")
        let tokenizer = try Tokenizer(TokenizerVocabulary(gguf: file))
        let types = try #require(file.array("tokenizer.ggml.token_type")?.values(as: Int32.self))
        let texts = try #require(file.stringArray("tokenizer.ggml.tokens"))
        let short = try #require(types.indices.first { types[$0] == 6 && texts[$0].utf8.count < 3 })
        #expect(tokenizer.decodeBytes([Int32(short)]) == [0])
    }
}
