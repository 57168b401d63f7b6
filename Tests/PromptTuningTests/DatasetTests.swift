import PromptTuning
import TensorIO
import Testing

@Suite struct SHA256Tests {
    // FIPS 180-4 / NIST example vectors.
    @Test func knownVectors() {
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}

@Suite struct DatasetTests {
    func parse(_ text: String) throws(DatasetError) -> TaskDataset { try TaskDataset.parse(Array(text.utf8), path: "t.jsonl") }

    @Test func readsRowsAndSkipsBlankLines() throws {
        let d = try parse("{\"input\":\"a\",\"output\":\" yes\",\"choices\":[\" yes\",\" no\"]}\n\n{\"input\":\"b\",\"output\":\"x\",\"extra\":1}\r\n")
        #expect(d.examples == [TaskExample(input: "a", output: " yes", choices: [" yes", " no"]),
                               TaskExample(input: "b", output: "x")])
        #expect(d.labels == [" yes", " no"])
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

    @Test func templateNeedsOnePlaceholder() throws {
        #expect(try PromptTemplate("Q: {input}\nA:").render("hi") == "Q: hi\nA:")
        #expect(throws: TemplateError.self) { try PromptTemplate("no placeholder") }
        #expect(throws: TemplateError.self) { try PromptTemplate("{input} {input}") }
    }
}
