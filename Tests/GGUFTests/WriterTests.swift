import GGUF
import Quants
import TensorIO
import TestSupport
import Testing

/// Metadata covering all 13 value types, arrays of every element type (empty ones included) and
/// strings that are not UTF-8.
private func everyValue() -> [(String, GGUFValue)] {
    [
        ("general.architecture", .string("llama")),
        ("v.u8", .uint8(255)), ("v.i8", .int8(-128)), ("v.u16", .uint16(65535)), ("v.i16", .int16(-32768)),
        ("v.u32", .uint32(.max)), ("v.i32", .int32(.min)), ("v.f32", .float32(.pi)),
        ("v.f32.nan", .float32(Float(bitPattern: 0x7FC0_1234))), ("v.bool", .bool(true)),
        ("v.str", .string("grüße ✓")), ("v.str.empty", .string("")),
        ("v.str.raw", .string(GGUFString(bytes: [0xC0, 0x80, 0xFF]))),
        ("v.u64", .uint64(.max)), ("v.i64", .int64(.min)), ("v.f64", .float64(-0.0)),
        ("a.u8", .array(GGUFArray([UInt8(0), 1, 255]))),
        ("a.i8", .array(GGUFArray([Int8(-1), 5]))),
        ("a.u16", .array(GGUFArray([UInt16(1), 65535]))),
        ("a.i16", .array(GGUFArray([Int16(-2)]))),
        ("a.u32", .array(GGUFArray([UInt32(3), 4, 5]))),
        ("a.i32", .array(GGUFArray([Int32(-6), 7]))),
        ("a.f32", .array(GGUFArray([Float(0.25), -.infinity]))),
        ("a.bool", .array(GGUFArray([true, false, false]))),
        ("a.str", .array(GGUFArray(strings: ["", "a", "ü", "🦙"]))),
        ("a.str.raw", .array(GGUFArray(strings: [GGUFString(bytes: [0x80]), "ok"]))),
        ("a.u64", .array(GGUFArray([UInt64.max]))),
        ("a.i64", .array(GGUFArray([Int64.min, 0]))),
        ("a.f64", .array(GGUFArray([Double.ulpOfOne]))),
        ("a.empty.u32", .array(GGUFArray([UInt32]()))),
        ("a.empty.str", .array(GGUFArray(strings: [String]()))),
    ]
}

private struct TensorSpec {
    var name: String
    var type: GGMLType
    var shape: [Int]
}

private let tensorSpecs: [TensorSpec] = [
    TensorSpec(name: "f32.mat", type: .f32, shape: [3, 2]),
    TensorSpec(name: "f16.vec", type: .f16, shape: [5]),
    TensorSpec(name: "q4_1.mat", type: .q4_1, shape: [64, 2]),
    TensorSpec(name: "q8_0.mat", type: .q8_0, shape: [32, 3]),
    TensorSpec(name: "i8.cube", type: .i8, shape: [2, 3, 4]),
    TensorSpec(name: "scalar", type: .f32, shape: []),
    TensorSpec(name: "empty", type: .f32, shape: [4, 0]),
    TensorSpec(name: "bf16.4d", type: .bf16, shape: [1, 2, 1, 3]),
]

/// Deterministic bytes for a tensor.
private func pattern(_ count: Int, seed: Int) -> [UInt8] {
    (0 ..< count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ 1) }
}

private func sampleWriter(alignment: Int?) throws -> (GGUFWriter, [[UInt8]]) {
    var writer = try alignment.map { try GGUFWriter(alignment: $0) } ?? GGUFWriter()
    for (key, value) in everyValue() { try writer.addMetadata(key, value) }
    var datas: [[UInt8]] = []
    for (index, spec) in tensorSpecs.enumerated() {
        let elements = spec.shape.reduce(1, *)
        let data = pattern(elements / spec.type.blockSize * spec.type.typeSize, seed: index)
        try writer.addTensor(name: spec.name, type: spec.type, shape: spec.shape, bytes: data)
        datas.append(data)
    }
    return (writer, datas)
}

@Suite("GGUF writer")
struct WriterTests {
    /// The writer's bytes equal a file laid out by hand from the specification.
    @Test func matchesHandBuiltLayout() throws {
        var writer = GGUFWriter()
        try writer.addMetadata("general.architecture", .string("llama"))
        try writer.addMetadata("n", .array(GGUFArray([UInt16(1), 2])))
        try writer.addTensor(name: "a", type: .i8, shape: [3], bytes: [1, 2, 3])
        try writer.addTensor(name: "b", type: .f32, shape: [1, 1], bytes: [0, 0, 0x80, 0x3F])

        var b = GGUFBytes()
        b.header(tensors: 2, keys: 2)
        b.key("general.architecture", type: TypeID.string)
        b.string("llama")
        b.key("n", type: TypeID.array)
        b.u32(TypeID.uint16)
        b.u64(2)
        b.int(UInt16(1))
        b.int(UInt16(2))
        b.tensorInfo("a", dims: [3], type: GGMLID.i8, offset: 0)
        b.tensorInfo("b", dims: [1, 1], type: GGMLID.f32, offset: 32)
        b.pad(to: 32)
        b.raw([1, 2, 3])
        b.pad(to: 32)
        b.raw([0, 0, 0x80, 0x3F])
        b.pad(to: 32)
        #expect(try writer.serialized() == b.bytes)
    }

    /// Write → read reproduces every value and tensor; read → write reproduces every byte.
    @Test(arguments: [nil, 1, 32, 64] as [Int?])
    func roundTrip(alignment: Int?) throws {
        let (writer, datas) = try sampleWriter(alignment: alignment)
        let bytes = try writer.serialized()
        let file = try GGUFFile(bytes: bytes)

        var expected = everyValue().map { GGUFMetadataEntry(key: $0.0, value: $0.1) }
        if let alignment { expected.insert(GGUFMetadataEntry(key: "general.alignment", value: .uint32(UInt32(alignment))), at: 0) }
        #expect(file.metadata == expected)
        #expect(file.alignment == (alignment ?? 32))
        #expect(file.isCanonicallyPacked)
        #expect(file.dataOffset % file.alignment == 0)
        #expect(file.tensors.count == tensorSpecs.count)
        for (index, (spec, info)) in zip(tensorSpecs, file.tensors).enumerated() {
            #expect(info.name == spec.name)
            #expect(info.type == spec.type)
            #expect(info.shape == spec.shape)
            #expect(Array(file.data(for: info)) == datas[index])
        }
        #expect(try GGUFWriter(copying: file).serialized() == bytes)
    }

    /// A streamed tensor, written atomically to disk, then read back through the mapping.
    @Test func writesToDiskWithStreamingTensor() throws {
        var writer = GGUFWriter()
        try writer.addMetadata("general.name", .string("stream"))
        let floats = (0 ..< 256).map { Float($0) / 8 }
        try writer.addTensor(name: "big", type: .f32, shape: [64, 4]) { emit in
            for row in 0 ..< 4 {
                try floats[row * 64 ..< row * 64 + 64].withUnsafeBytes { try emit($0) }
            }
        }
        let path = TestSupport.temporaryDirectory() + "/stream.gguf"
        try writer.write(to: path)
        let file = try GGUFFile(path: path)
        let info = try #require(file.tensor(named: "big"))
        let data = file.data(for: info)
        #expect((0 ..< 256).map { data.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } == floats)

        // Copying a tensor out of an open file by reference.
        var copy = GGUFWriter()
        try copy.addTensor(name: "renamed", copying: info, of: file)
        let copied = try GGUFFile(bytes: copy.serialized())
        #expect(Array(copied.data(for: copied.tensors[0])) == Array(data))
    }

    /// A producer that emits the wrong number of bytes fails the write and leaves the
    /// destination untouched.
    @Test(arguments: [1020, 1028])
    func producerSizeMismatchLeavesDestinationUntouched(emitted: Int) throws {
        let path = TestSupport.temporaryDirectory() + "/keep.gguf"
        try AtomicFile.write(to: path, bytes: Array("previous".utf8))
        var writer = GGUFWriter()
        try writer.addTensor(name: "t", type: .f32, shape: [256]) { emit in
            try [UInt8](repeating: 1, count: emitted).withUnsafeBytes { try emit($0) }
        }
        do {
            try writer.write(to: path)
            Issue.record("wrote a tensor of the wrong size")
        } catch let error as GGUFError {
            #expect(error.kind == .dataSizeMismatch(expected: 1024, actual: emitted))
            #expect(error.tensor == "t")
        }
        #expect(try readFile(path) == Array("previous".utf8))
    }
}

/// One refused writer input per rule.
enum WriterMisuse: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case emptyKey, keyTooLong, keyNUL, duplicateKey, alignmentWrongType, alignmentNotPowerOfTwo
    case alignmentInitializer, tensorNameTooLong, tensorNameNUL, duplicateTensorName, tooManyDimensions
    case negativeDimension, elementCountOverflow, rowNotMultipleOfBlock, byteSizeOverflow, wrongByteCount

    var testDescription: String { rawValue }

    var expected: GGUFError.Kind {
        switch self {
        case .emptyKey: .emptyKey
        case .keyTooLong: .stringTooLong(length: 65_536, limit: 65_535)
        case .keyNUL, .tensorNameNUL: .embeddedNUL
        case .duplicateKey: .duplicateKey
        case .alignmentWrongType: .badAlignmentType(.uint64)
        case .alignmentNotPowerOfTwo, .alignmentInitializer: .alignmentNotPowerOfTwo(48)
        case .tensorNameTooLong: .stringTooLong(length: 64, limit: 63)
        case .duplicateTensorName: .duplicateTensorName
        case .tooManyDimensions: .tooManyDimensions(5)
        case .negativeDimension: .negativeDimension(index: 1, value: -2)
        case .elementCountOverflow: .elementCountOverflow
        case .rowNotMultipleOfBlock: .rowNotMultipleOfBlock(rowLength: 48, blockSize: 32)
        case .byteSizeOverflow: .byteSizeOverflow
        case .wrongByteCount: .dataSizeMismatch(expected: 16, actual: 15)
        }
    }

    func attempt() throws(GGUFError) {
        var w = GGUFWriter()
        let four = [UInt8](repeating: 0, count: 16)
        switch self {
        case .emptyKey: try w.addMetadata("", .uint8(1))
        case .keyTooLong: try w.addMetadata(String(repeating: "k", count: 65_536), .uint8(1))
        case .keyNUL: try w.addMetadata("a\u{0}b", .uint8(1))
        case .duplicateKey:
            try w.addMetadata("a", .uint8(1))
            try w.addMetadata("a", .uint8(2))
        case .alignmentWrongType: try w.addMetadata("general.alignment", .uint64(32))
        case .alignmentNotPowerOfTwo: try w.addMetadata("general.alignment", .uint32(48))
        case .alignmentInitializer: _ = try GGUFWriter(alignment: 48)
        case .tensorNameTooLong: try w.addTensor(name: String(repeating: "t", count: 64), type: .f32, shape: [4], bytes: four)
        case .tensorNameNUL: try w.addTensor(name: "a\u{0}", type: .f32, shape: [4], bytes: four)
        case .duplicateTensorName:
            try w.addTensor(name: "t", type: .f32, shape: [4], bytes: four)
            try w.addTensor(name: "t", type: .f32, shape: [4], bytes: four)
        case .tooManyDimensions: try w.addTensor(name: "t", type: .f32, shape: [4, 1, 1, 1, 1], bytes: four)
        case .negativeDimension: try w.addTensor(name: "t", type: .f32, shape: [4, -2], bytes: four)
        case .elementCountOverflow: try w.addTensor(name: "t", type: .f32, shape: [1 << 32, 1 << 32], bytes: four)
        case .rowNotMultipleOfBlock: try w.addTensor(name: "t", type: .q4_1, shape: [48], bytes: four)
        case .byteSizeOverflow: try w.addTensor(name: "t", type: .f32, shape: [1 << 62], bytes: four)
        case .wrongByteCount: try w.addTensor(name: "t", type: .f32, shape: [4], bytes: Array(four.dropLast()))
        }
    }
}

@Suite("GGUF writer refuses what the reader would refuse")
struct WriterMisuseTests {
    @Test(arguments: WriterMisuse.allCases)
    func refuses(_ misuse: WriterMisuse) {
        do {
            try misuse.attempt()
            Issue.record("accepted")
        } catch {
            #expect(error.kind == misuse.expected)
            #expect(error.offset == nil)
        }
    }
}
