import PromptTuning
import SoftPrompt
import TensorIO
import TestSupport
import Testing

/// `ProvenanceEvalData`: the eval file a prompt's provenance names, found, missing or changed.
@Suite struct ProvenanceDataTests {
    func prompt(_ provenance: JSONObject) -> SoftPrompt {
        SoftPrompt(name: "p", vectors: [1, 2], width: 2, provenance: provenance)
    }

    @Test func findsTheRecordedFileOnlyWhileItIsUnchanged() throws {
        let rows = Array("{\"input\":\"a\",\"output\":\"b\"}\n".utf8)
        let path = try TestSupport.temporaryFile(rows, name: "eval.jsonl")
        let sha = SHA256.hex(SHA256.hash(rows))  // the checksum the trainer records: SHA-256 of the bytes
        #expect(try ProvenanceEvalData(of: prompt([:])) == .none)
        #expect(try ProvenanceEvalData(of: prompt(["eval_data": .string(path), "eval_sha256": .string(sha)])) == .usable(path: path))
        #expect(try ProvenanceEvalData(of: prompt(["eval_data": .string(path)])) == .usable(path: path))
        #expect(try ProvenanceEvalData(of: prompt(["eval_data": .string(path), "eval_sha256": .string(String(repeating: "0", count: 64))]))
                == .changed(path: path))
        let missing = path + ".gone"
        #expect(try ProvenanceEvalData(of: prompt(["eval_data": .string(missing), "eval_sha256": .string(sha)])) == .missing(path: missing))
    }
}
