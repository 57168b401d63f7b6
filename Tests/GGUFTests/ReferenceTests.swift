#if canImport(Glibc)
import Glibc
#endif
import GGUF
import Quants
import TensorIO
import TestSupport
import Testing

/// A dump written by gguf-py's `GGUFReader` (see Tools/scripts/gen_gguf_fixtures.py for the format).
private struct Dump {
    var header: [String: String] = [:]
    /// kv: key → (type name, value text)
    var scalars: [(key: String, type: String, value: String)] = []
    /// array / arraysummary: key → (element type, count, element texts)
    var arrays: [(key: String, type: String, count: Int, values: [String])] = []
    var tensors: [(name: String, type: String, shape: String, offset: Int, absolute: Int, bytes: Int, hex: String?)] = []
    /// All keys in file order.
    var keys: [String] = []

    init(path: String) throws {
        let text = String(decoding: try readFile(path), as: UTF8.self)
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            switch f[0] {
            case "kv":
                scalars.append((f[1], f[2], f[3]))
                keys.append(f[1])
            case "array", "arraysummary":
                arrays.append((f[1], f[2], Int(f[3])!, Array(f[4...])))
                keys.append(f[1])
            case "tensor":
                tensors.append((f[1], f[2], f[3], Int(f[4])!, Int(f[5])!, Int(f[6])!, f.count > 7 ? f[7] : nil))
            default:
                header[f[0]] = f[1]
            }
        }
    }
}

private func hex(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for byte in bytes {
        out.append(digits[Int(byte >> 4)])
        out.append(digits[Int(byte & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

private func hexBits<T: FixedWidthInteger>(_ bits: T) -> String {
    let digits = String(bits, radix: 16)
    return "0x" + String(repeating: "0", count: T.bitWidth / 4 - digits.count) + digits
}

/// A value rendered like the dump renders it.
private func dumpText(_ value: GGUFValue) -> String {
    switch value {
    case .float32(let v): hexBits(v.bitPattern)
    case .float64(let v): hexBits(v.bitPattern)
    case .bool(let v): v ? "1" : "0"
    case .string(let v): hex(v.bytes)
    case .array: "array"
    default: value.description  // integers in decimal
    }
}

/// Compares everything in `dump` with what we read from `file`.
private func compare(_ file: GGUFFile, with dump: Dump, fullArrays: Bool) {
    #expect(dump.header["version"] == "\(file.version)")
    #expect(dump.header["alignment"] == "\(file.alignment)")
    #expect(dump.header["data_offset"] == "\(file.dataOffset)")
    #expect(dump.header["tensor_count"] == "\(file.tensors.count)")
    #expect(dump.header["kv_count"] == "\(file.metadata.count)")
    #expect(file.metadata.map(\.key) == dump.keys)

    for (key, type, text) in dump.scalars {
        guard let value = file[key] else {
            Issue.record("missing key \(key)")
            continue
        }
        #expect(value.type.name == type, "\(key)")
        #expect(dumpText(value) == text, "\(key)")
    }
    for (key, type, count, values) in dump.arrays {
        guard let array = file.array(key) else {
            Issue.record("missing array \(key)")
            continue
        }
        #expect(array.elementType.name == type, "\(key)")
        #expect(array.count == count, "\(key)")
        if fullArrays {
            #expect(array.map(dumpText) == values, "\(key)")
        } else if count > 0 {
            #expect(dumpText(array[0]) == values[0], "\(key) first")
            #expect(dumpText(array[count - 1]) == values[1], "\(key) last")
        }
    }
    #expect(file.tensors.map(\.name) == dump.tensors.map(\.name))
    for (info, expected) in zip(file.tensors, dump.tensors) {
        #expect(info.type.name == expected.type, "\(info.name)")
        #expect(info.shape.map(String.init).joined(separator: ",") == expected.shape, "\(info.name)")
        #expect(info.offset == expected.offset, "\(info.name)")
        #expect(info.absoluteOffset == expected.absolute, "\(info.name)")
        #expect(info.byteCount == expected.bytes, "\(info.name)")
        if let data = expected.hex { #expect(hex(file.data(for: info)) == data, "\(info.name)") }
    }
}

@Suite("GGUF against gguf-py")
struct ReferenceTests {
    /// A file written by gguf-py's `GGUFWriter` reads back exactly as gguf-py's `GGUFReader` reads it.
    @Test func readsGGUFPyFixture() throws {
        let file = try GGUFFile(path: TestSupport.fixture("gguf/pywriter.gguf"))
        let dump = try Dump(path: TestSupport.fixture("gguf/pywriter.txt"))
        compare(file, with: dump, fullArrays: true)
        #expect(file.alignment == 64)
        #expect(file.isCanonicallyPacked)
        // gguf-py writes canonical files, so our writer reproduces its bytes.
        #expect(try GGUFWriter(copying: file).serialized() == readFile(TestSupport.fixture("gguf/pywriter.gguf")))
    }

    /// The default model's metadata and all 272 tensor infos match gguf-py's reading of it.
    @Test(.enabled(if: TestSupport.defaultModelPath != nil))
    func defaultModelMatchesGGUFPy() throws {
        let file = try GGUFFile(path: TestSupport.defaultModelPath!)
        let dump = try Dump(path: TestSupport.fixture("gguf/smollm2-135m-instruct-q4_1.txt"))
        compare(file, with: dump, fullArrays: false)
        #expect(file.tensors.count == 272)
        var counts: [GGMLType: Int] = [:]
        for info in file.tensors { counts[info.type, default: 0] += 1 }
        #expect(counts == [.q4_1: 210, .f32: 61, .q8_0: 1])
        #expect(file.isCanonicallyPacked)
        let tokens = try #require(file.array("tokenizer.ggml.tokens"))
        #expect(tokens.count == 49152)
        #expect(tokens.string(at: 0) == "<|endoftext|>")
        #expect(file.array("tokenizer.ggml.merges")?.count == 48900)
    }

    /// Reading the default model and writing it back yields the same bytes, file for file.
    @Test(.enabled(if: TestSupport.defaultModelPath != nil))
    func defaultModelRoundTripIsByteIdentical() throws {
        let source = try GGUFFile(path: TestSupport.defaultModelPath!)
        let path = TestSupport.temporaryDirectory("gguf-roundtrip") + "/copy.gguf"
        try GGUFWriter(copying: source).write(to: path)
        defer { unlink(path) }
        let copy = try GGUFFile(path: path)
        #expect(copy.metadata == source.metadata)
        #expect(copy.tensors == source.tensors)
        for (a, b) in zip(source.tensors, copy.tensors) {
            let x = source.data(for: a), y = copy.data(for: b)
            #expect(x.count == y.count && (x.isEmpty || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0), "\(a.name)")
        }
        let original = try MappedFile(path: TestSupport.defaultModelPath!)
        let written = try MappedFile(path: path)
        #expect(original.count == written.count)
        #expect(original.count == written.count
            && memcmp(original.bytes.baseAddress!, written.bytes.baseAddress!, original.count) == 0)
    }
}
