import PromptTuning
import TensorIO
import Testing

@Suite struct DatasetTests {
    func parse(_ text: String) throws(DatasetError) -> TaskDataset { try TaskDataset.parse(Array(text.utf8), path: "t.jsonl") }

    @Test func readsRowsAndSkipsBlankLines() throws {
        let d = try parse("{\"input\":\"a\",\"output\":\" yes\",\"choices\":[\" yes\",\" no\"]}\n\n{\"input\":\"b\",\"output\":\"x\",\"extra\":1}\r\n")
        #expect(d.examples == [TaskExample(input: "a", output: " yes", choices: [" yes", " no"]),
                               TaskExample(input: "b", output: "x")])
        #expect(d.labels == [" yes", " no"])
        // The dataset's identity is the SHA-256 of its bytes (FIPS 180-4 vector for "abc" checks the hasher).
        #expect(SHA256.hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test(arguments: [
        ("{\"input\":1,\"output\":\"x\"}", 1, "\"input\" must be a string"),
        ("{\"input\":\"a\"}", 1, "\"output\" must be a string"),
        ("{\"input\":\"a\",\"output\":\"x\"}\n[1]", 2, "expected a JSON object"),
        ("{\"input\":\"a\",\"output\":\"x\",\"choices\":[\"y\"]}", 1, "is not one of the choices"),
        ("{\"input\":\"a\",\"output\":\"x\",\"choices\":[\"x\",\"x\"]}", 1, "repeats"),
        ("{\"input\":\"a\",\"output\":\"x\",\"choices\":[]}", 1, "non-empty array"),
        ("{\"input\":\"a\",\"output\":\"\"}", 1, "is empty"),
        ("\n{\"input\":\"a\",\"input\":\"b\",\"output\":\"x\"}", 2, "duplicate"),
        ("{\"input\":\"a\",\"output\":\"x\"", 1, "invalid JSON"),
        ("\n \n", 0, "no examples"),
    ] as [(String, Int, String)])
    func refusesBadRows(text: String, line: Int, message: String) {
        do {
            _ = try parse(text)
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.line == line)
            #expect(error.description.contains(message), "\(error.description)")
        }
    }
}
