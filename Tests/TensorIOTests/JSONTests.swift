import TestSupport
import Testing
import TensorIO

/// Parses and returns the error (or nil when the document is accepted).
private func parseError(_ text: String, maxDepth: Int = 64, rejectDuplicateKeys: Bool = true,
                        largeIntegers: JSON.LargeIntegers = .asDouble) -> JSONError? {
    do {
        _ = try JSON.parse(text, maxDepth: maxDepth, rejectDuplicateKeys: rejectDuplicateKeys, largeIntegers: largeIntegers)
        return nil
    } catch {
        return error
    }
}

private func parseError(bytes: [UInt8]) -> JSONError? {
    do {
        _ = try JSON.parse(bytes)
        return nil
    } catch {
        return error
    }
}

@Suite struct JSONParseTests {
    @Test func scalarsAndContainers() throws {
        #expect(try JSON.parse("null") == .null)
        #expect(try JSON.parse(" true ") == .bool(true))
        #expect(try JSON.parse("false") == .bool(false))
        #expect(try JSON.parse("0") == .int(0))
        #expect(try JSON.parse("-0") == .int(0))
        #expect(try JSON.parse("-12") == .int(-12))
        #expect(try JSON.parse("1.5") == .double(1.5))
        #expect(try JSON.parse("-0.0") == .double(-0.0))
        #expect(try JSON.parse("1e3") == .double(1000))
        #expect(try JSON.parse("2E-2") == .double(0.02))
        #expect(try JSON.parse("1e-400") == .double(0))  // underflow to zero is not an error
        #expect(try JSON.parse("\"hi\"") == .string("hi"))
        #expect(try JSON.parse("[]") == .array([]))
        #expect(try JSON.parse("{}") == .object(JSONObject()))
        let value = try JSON.parse(#"{"a": [1, 2.5, "x", null, true], "b": {"c": {}}}"#)
        #expect(value["a"]?[0] == .int(1))
        #expect(value["a"]?[1]?.doubleValue == 2.5)
        #expect(value["a"]?[2]?.stringValue == "x")
        #expect(value["a"]?[3]?.isNull == true)
        #expect(value["a"]?[4]?.boolValue == true)
        #expect(value["a"]?[5] == nil)
        #expect(value["b"]?["c"] == .object([:]))
        #expect(value["missing"] == nil)
        #expect(value["a"]?["not-an-object"] == nil)
    }

    @Test func objectKeepsDocumentOrder() throws {
        let value = try JSON.parse(#"{"zeta": 1, "alpha": 2, "mid": 3, "": 4}"#)
        #expect(value.objectValue?.keys == ["zeta", "alpha", "mid", ""])
        #expect(value[""] == .int(4))
    }

    @Test func intValueAccessor() throws {
        #expect(JSONValue.int(7).intValue == 7)
        #expect(JSONValue.double(2.0).intValue == 2)
        #expect(JSONValue.double(2.5).intValue == nil)
        #expect(JSONValue.double(1e30).intValue == nil)
        #expect(JSONValue.string("3").intValue == nil)
        #expect(JSONValue.int(3).doubleValue == 3.0)
    }

    @Test func escapesAndUnicode() throws {
        let value = try JSON.parse(#""q\"b\\s\/ \b\f\n\r\t \u0041\u00e9\u4e2d \ud83d\ude00 é中😀 \u0000 end""#)
        #expect(value == .string("q\"b\\s/ \u{08}\u{0C}\n\r\t Aé中 😀 é中😀 \u{0} end"))
        // U+2028/U+2029 are allowed raw in JSON strings.
        #expect(try JSON.parse("\"\u{2028}\u{2029}\"") == .string("\u{2028}\u{2029}"))
    }

    @Test func rejectsInvalidUTF8() {
        let cases: [([UInt8], Int)] = [
            ([0x22, 0xFF, 0x22], 1),  // never valid
            ([0x22, 0x61, 0xC0, 0xAF, 0x22], 2),  // overlong '/'
            ([0x22, 0xED, 0xA0, 0x80, 0x22], 1),  // UTF-8-encoded surrogate D800
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], 1),  // past U+10FFFF
            ([0x22, 0xE4, 0xB8, 0x22], 1),  // truncated sequence
            ([0x22, 0x80, 0x22], 1),  // lone continuation byte
            ([0x7B, 0x7D, 0xC3], 2),  // truncated at the very end
        ]
        for (bytes, offset) in cases {
            let error = parseError(bytes: bytes)
            #expect(error?.kind == .invalidUTF8, "\(bytes)")
            #expect(error?.offset == offset, "\(bytes)")
        }
        // Well-formed multi-byte sequences at every length are accepted.
        #expect(parseError(bytes: Array("\"\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}\"".utf8)) == nil)
    }

    /// RFC 8259 violations json-c 0.16 accepts even in strict mode: our scanner must refuse each.
    @Test(arguments: [
        ("NaN", JSONError.Kind.syntax, 0),
        ("[Infinity]", .syntax, 1),
        ("[-Infinity]", .syntax, 1),
        ("-01", .syntax, 0),
        ("00", .syntax, 0),
        ("[1.]", .syntax, 3),
        ("1.e5", .syntax, 2),
        ("01.5", .syntax, 0),
        ("[1e]", .syntax, 3),
        ("\"a\tb\"", .syntax, 2),
        ("\"a\u{01}b\"", .syntax, 2),
        ("[\"\\udc00\"]", .unpairedSurrogate, 2),
        ("\"x\\ud800\"", .unpairedSurrogate, 2),
        ("\"\\ud800\\u0041\"", .unpairedSurrogate, 1),
        ("[1e400]", .numberOutOfRange, 1),
        ("-1e400", .numberOutOfRange, 0),
        ("{\"a\\u0000b\": 1}", .nulInKey, 1),
    ])
    func rejectsWhatJSONCAccepts(text: String, kind: JSONError.Kind, offset: Int) {
        let error = parseError(text)
        #expect(error?.kind == kind, "\(text): \(String(describing: error))")
        #expect(error?.offset == offset, "\(text): \(String(describing: error))")
    }

    @Test(arguments: [
        ("", 0), ("[1,]", 3), ("[1 2]", 3), ("{\"a\" 1}", 5), ("{'a': 1}", 1), ("\"\\x\"", 1),
        ("tru", 0), ("[", 1), ("{\"a\":1,}", 7), ("/* c */ 1", 0), ("[1,\n // c\n 2]", 5),
    ])
    func rejectsSyntaxErrors(text: String, offset: Int) {
        let error = parseError(text)
        #expect(error?.kind == .syntax, "\(text): \(String(describing: error))")
        #expect(error?.offset == offset, "\(text): \(String(describing: error))")
        #expect(error?.message.isEmpty == false)
    }

    @Test func trailingGarbage() {
        for (text, offset) in [("{\"a\":1}  x", 9), ("1 2", 2), ("[] []", 3), ("null,", 4), ("{}}", 2)] {
            let error = parseError(text)
            #expect(error?.kind == .trailingCharacters, "\(text)")
            #expect(error?.offset == offset, "\(text)")
        }
        var withNul = Array("{\"a\":1}".utf8)
        withNul.append(0)
        #expect(parseError(bytes: withNul)?.kind == .trailingCharacters)
        #expect(parseError(bytes: withNul)?.offset == 7)
        // Trailing whitespace of every JSON kind is fine.
        #expect(parseError("{} \t\r\n  ") == nil)
    }

    @Test func depthLimit() throws {
        func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        #expect(parseError(nested(64)) == nil)
        let error = parseError(nested(65))
        #expect(error?.kind == .depthLimit)
        #expect(error?.offset == 64)
        #expect(parseError(nested(3), maxDepth: 3) == nil)
        #expect(parseError(nested(4), maxDepth: 3)?.kind == .depthLimit)
        #expect(parseError("{\"a\":{\"b\":[1]}}", maxDepth: 3) == nil)
        #expect(parseError("{\"a\":{\"b\":[[1]]}}", maxDepth: 3)?.kind == .depthLimit)
        #expect(parseError("1", maxDepth: 1) == nil)
        // A pathological document fails fast without exhausting the stack.
        #expect(parseError(String(repeating: "[", count: 200_000))?.kind == .depthLimit)
        #expect(parseError(nested(1024), maxDepth: 1024) == nil)
    }

    @Test func duplicateKeys() throws {
        var error = parseError(#"{"a": 1, "b": 2, "a": 3}"#)
        #expect(error?.kind == .duplicateKey)
        #expect(error?.offset == 17)
        #expect(error?.message.contains("\"a\"") == true)
        // Compared after unescaping.
        error = parseError(#"{"a": 1, "\u0061": 2}"#)
        #expect(error?.kind == .duplicateKey)
        #expect(error?.offset == 9)
        error = parseError(#"{"é": 1, "\u00e9": 2}"#)
        #expect(error?.kind == .duplicateKey)
        // Nested objects are checked too; the same key in sibling objects is fine.
        #expect(parseError(#"[{"k": 1}, {"k": 2}]"#) == nil)
        #expect(parseError(#"{"k": {"k": 1}}"#) == nil)
        #expect(parseError(#"{"x": [{"k": 1, "k": 2}]}"#)?.kind == .duplicateKey)
        // Opt-out: the last value wins, at the first key's position (json-c's behaviour).
        let lenient = try JSON.parse(#"{"a": 1, "b": 2, "a": 3}"#, rejectDuplicateKeys: false)
        #expect(lenient.objectValue?.keys == ["a", "b"])
        #expect(lenient["a"] == .int(3))
    }

    @Test func integerRange() throws {
        #expect(try JSON.parse("9223372036854775807") == .int(Int64.max))
        #expect(try JSON.parse("-9223372036854775808") == .int(Int64.min))
        // json-c saturates these silently; we keep them as doubles by default ...
        #expect(try JSON.parse("9223372036854775808") == .double(9223372036854775808.0))
        #expect(try JSON.parse("18446744073709551615") == .double(18446744073709551615.0))
        #expect(try JSON.parse("-9223372036854775809") == .double(-9223372036854775809.0))
        let big = try JSON.parse(#"{"model_max_length": 1000000000000000019884624838656, "n": 5, "m": [-99999999999999999999, 7]}"#)
        #expect(big["model_max_length"] == .double(1e30))
        #expect(big["model_max_length"]?.intValue == nil)
        #expect(big["n"] == .int(5))
        #expect(big["m"] == .array([.double(-1e20), .int(7)]))
        // ... or refuse them.
        let error = parseError("[1, 9223372036854775808]", largeIntegers: .reject)
        #expect(error?.kind == .integerOutOfRange)
        #expect(error?.offset == 4)
        #expect(parseError("-9223372036854775808", largeIntegers: .reject) == nil)
    }
}

@Suite struct JSONSerializeTests {
    @Test func compactAndPretty() throws {
        let value: JSONValue = ["b": [1, 2.5, "x"], "a": nil, "e": [:], "f": [], "t": true]
        #expect(try JSON.serialize(value) == #"{"b":[1,2.5,"x"],"a":null,"e":{},"f":[],"t":true}"#)
        #expect(try JSON.serialize(value, sortedKeys: true) == #"{"a":null,"b":[1,2.5,"x"],"e":{},"f":[],"t":true}"#)
        let pretty = try JSON.serialize(["k": [1, ["z": false]], "e": []], pretty: true)
        #expect(pretty == "{\n  \"k\": [\n    1,\n    {\n      \"z\": false\n    }\n  ],\n  \"e\": []\n}")
    }

    @Test func sortedKeysUseCodePointOrder() throws {
        // UTF-8 byte order is code point order: "Z" < "a" < "é" < "中" < "😀".
        let value: JSONValue = ["😀": 1, "中": 2, "é": 3, "a": 4, "Z": 5]
        #expect(try JSON.serialize(value, sortedKeys: true) == #"{"Z":5,"a":4,"é":3,"中":2,"😀":1}"#)
    }

    @Test func stringEscaping() throws {
        let text = "q\"b\\s/\u{08}\u{0C}\n\r\t\u{0}\u{1F}\u{7F}é中😀\u{2028}"
        #expect(try JSON.serialize(.string(text)) == "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0000\\u001f\u{7F}é中😀\u{2028}\"")
        #expect(try JSON.parse(JSON.serialize(.string(text))) == .string(text))
    }

    @Test func doubles() throws {
        let cases: [(Double, String)] = [
            (1.0, "1.0"), (0.1, "0.1"), (-0.0, "-0.0"), (1e-05, "1e-05"), (1e30, "1e+30"),
            (.leastNonzeroMagnitude, "5e-324"), (.greatestFiniteMagnitude, "1.7976931348623157e+308"), (123456789.0, "123456789.0"),
            (0.30000000000000004, "0.30000000000000004"),
        ]
        for (value, text) in cases {
            #expect(try JSON.serialize(.double(value)) == text)
            #expect(try JSON.parse(text) == .double(value), "\(text)")
        }
        for bad in [Double.infinity, -.infinity, .nan] {
            #expect(throws: JSONError.self) { try JSON.serialize(["x": [.double(bad)]]) }
            let error = #expect(throws: JSONError.self) { try JSON.serialize(.double(bad)) }
            #expect(error?.kind == .nonFiniteNumber)
        }
        #expect(try JSON.serialize(.int(.min)) == "-9223372036854775808")
    }

    @Test func roundTrips() throws {
        var generator = SplitMix64(seed: 42)
        for _ in 0 ..< 200 {
            let value = randomValue(&generator, depth: 0)
            for pretty in [false, true] {
                for sorted in [false, true] {
                    let text = try JSON.serialize(value, pretty: pretty, sortedKeys: sorted)
                    let back = try JSON.parse(text)
                    #expect(back == value, "\(text)")
                    if !sorted { #expect(try JSON.serialize(back, pretty: pretty) == text) }
                }
            }
        }
    }

    @Test func arrayAndStringEntryPointsAgree() throws {
        let text = #"{"a": [1, "é"]}"#
        let bytes = Array(text.utf8)
        let fromRaw = try bytes.withUnsafeBytes { raw in try JSON.parse(raw) }
        #expect(try JSON.parse(text) == JSON.parse(bytes))
        #expect(fromRaw == (try JSON.parse(bytes)))
    }

    @Test func objectEditing() {
        var object: JSONObject = ["a": 1, "b": 2, "c": 3]
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        object["a"] = 10
        object["d"] = 4
        #expect(object.keys == ["a", "c", "d"])
        #expect(object["a"] == .int(10) && object["c"] == .int(3) && object["d"] == .int(4))
        #expect(object == ["d": 4, "c": 3, "a": 10])  // order-insensitive equality
        #expect(object != ["d": 4, "c": 3])
        #expect(JSONObject([("k", 1), ("k", 2)]).count == 1)
    }
}


private func randomString(_ g: inout SplitMix64, key: Bool = false) -> String {
    // Keys never hold U+0000: the parser refuses them (json-c truncates keys at NUL).
    let pool: [Unicode.Scalar] = (key ? [] : ["\u{0}"]) + ["a", "Z", "0", " ", "\"", "\\", "/", "\u{1}", "\n", "\t", "\u{7F}", "é", "中", "😀", "\u{2028}", "\u{FFFF}", "\u{10FFFF}"]
    var s = ""
    for _ in 0 ..< Int.random(in: 0 ... 8, using: &g) {
        s.unicodeScalars.append(pool[Int.random(in: 0 ..< pool.count, using: &g)])
    }
    return s
}

private func randomValue(_ g: inout SplitMix64, depth: Int) -> JSONValue {
    let choice = Int.random(in: 0 ..< (depth > 3 ? 5 : 7), using: &g)
    switch choice {
    case 0: return .null
    case 1: return .bool(Bool.random(using: &g))
    case 2:
        let specials: [Int64] = [0, 1, -1, .max, .min, 1 << 53, -(1 << 53) - 1]
        return .int(Bool.random(using: &g) ? specials.randomElement(using: &g)! : Int64.random(in: .min ... .max, using: &g))
    case 3:
        let specials: [Double] = [0, -0.0, 0.1, 1e-300, .leastNonzeroMagnitude, .greatestFiniteMagnitude, -1.5, 1e21, 123456.789]
        if Bool.random(using: &g) { return .double(specials.randomElement(using: &g)!) }
        var d: Double
        repeat { d = Double(bitPattern: g.next()) } while !d.isFinite
        return .double(d)
    case 4: return .string(randomString(&g))
    case 5: return .array((0 ..< Int.random(in: 0 ... 4, using: &g)).map { _ in randomValue(&g, depth: depth + 1) })
    default:
        var object = JSONObject()
        for _ in 0 ..< Int.random(in: 0 ... 4, using: &g) { object[randomString(&g, key: true)] = randomValue(&g, depth: depth + 1) }
        return .object(object)
    }
}
