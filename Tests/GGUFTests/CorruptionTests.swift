import GGUF
import TensorIO
import TestSupport
import Testing

/// One malformed file per rule, built byte by byte, with the exact error and offset expected.
enum Corruption: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case emptyFile, badMagic, bigEndian, version0, version1, futureVersion, truncatedHeader
    case tooManyTensors, tooManyKeys, keysBeyondFile
    case keyTooLong, keyTruncated, emptyKey, keyInvalidUTF8, keyNUL, duplicateKey
    case unknownValueType, valueTruncated, stringValueTooLong, stringValueBeyondFile
    case invalidBool, invalidBoolInArray, nestedArray, unknownArrayElementType, arrayTooLong
    case hugeNumericArray, hugeStringArray, stringElementTooLong
    case alignmentWrongType, alignmentZero, alignmentNotPowerOfTwo
    case tensorNameTooLong, tensorNameInvalidUTF8, duplicateTensorName, truncatedTensorInfo
    case tooManyDimensions, negativeDimension, elementCountOverflow, unknownTensorType
    case rowNotMultipleOfBlock, byteSizeOverflow, misalignedOffset, offsetOutOfBounds
    case overlappingTensors, dataSectionMissing

    var testDescription: String { rawValue }

    struct Expected {
        var bytes: [UInt8]
        var kind: GGUFError.Kind
        var offset: Int
        var key: String? = nil
        var tensor: String? = nil
    }

    /// The corrupted file and the error it must produce.
    func build() -> Expected {
        var b = GGUFBytes()
        /// A file with one metadata entry `k` of type `type`, whose value the caller appends.
        func oneKey(_ type: UInt32) {
            b.header(tensors: 0, keys: 1)
            b.key("k", type: type)
        }
        /// A file with one tensor `t`, up to its dimensions count.
        func oneTensor() {
            b.header(tensors: 1, keys: 0)
            b.string("t")
        }

        switch self {
        case .emptyFile:
            return Expected(bytes: [], kind: .truncated(.header, needed: 4, remaining: 0), offset: 0)
        case .badMagic:
            b.raw("GGML")
            b.u32(3)
            b.u64(0)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .badMagic(Array("GGML".utf8)), offset: 0)
        case .bigEndian:
            b.raw("GGUF")
            b.u32(0x0300_0000)
            b.u64(0)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .bigEndian(version: 0x0300_0000), offset: 4)
        case .version0, .version1, .futureVersion:
            let version: UInt32 = self == .version0 ? 0 : self == .version1 ? 1 : 4
            b.header(version: version, tensors: 0, keys: 0)
            return Expected(bytes: b.bytes, kind: .unsupportedVersion(version), offset: 4)
        case .truncatedHeader:
            b.raw("GGUF")
            b.u32(3)
            b.u64(0)
            b.raw([1, 2, 3])
            return Expected(bytes: b.bytes, kind: .truncated(.header, needed: 8, remaining: 3), offset: 16)
        case .tooManyTensors:
            b.header(tensors: .max, keys: 0)
            return Expected(bytes: b.bytes, kind: .tooManyTensors(.max), offset: 8)
        case .tooManyKeys:
            b.header(tensors: 0, keys: 1 << 20 + 1)
            return Expected(bytes: b.bytes, kind: .tooManyKeys(1 << 20 + 1), offset: 16)
        case .keysBeyondFile:
            b.header(tensors: 0, keys: 1000)
            return Expected(bytes: b.bytes, kind: .truncated(.key, needed: 8, remaining: 0), offset: 24)
        case .keyTooLong:
            b.header(tensors: 0, keys: 1)
            b.u64(65_536)
            b.raw("0123456789")
            return Expected(bytes: b.bytes, kind: .stringTooLong(length: 65_536, limit: 65_535), offset: 24)
        case .keyTruncated:
            b.header(tensors: 0, keys: 1)
            b.u64(10)
            b.raw("abc")
            return Expected(bytes: b.bytes, kind: .truncated(.key, needed: 10, remaining: 3), offset: 32)
        case .emptyKey:
            b.header(tensors: 0, keys: 1)
            b.key("", type: TypeID.uint8)
            b.u8(1)
            return Expected(bytes: b.bytes, kind: .emptyKey, offset: 24)
        case .keyInvalidUTF8:
            b.header(tensors: 0, keys: 1)
            b.string([0x61, 0xC3, 0x28])
            b.u32(TypeID.uint8)
            b.u8(1)
            return Expected(bytes: b.bytes, kind: .invalidUTF8, offset: 32)
        case .keyNUL:
            b.header(tensors: 0, keys: 1)
            b.string([0x61, 0x00, 0x62])
            b.u32(TypeID.uint8)
            b.u8(1)
            return Expected(bytes: b.bytes, kind: .embeddedNUL, offset: 33)
        case .duplicateKey:
            b.header(tensors: 0, keys: 2)
            b.key("a", type: TypeID.uint8)
            b.u8(1)
            b.mark("second")
            b.key("a", type: TypeID.uint8)
            b.u8(2)
            return Expected(bytes: b.bytes, kind: .duplicateKey, offset: b[mark: "second"], key: "a")
        case .unknownValueType:
            b.header(tensors: 0, keys: 1)
            b.string("k")
            b.mark("type")
            b.u32(13)
            b.u8(0)
            return Expected(bytes: b.bytes, kind: .unknownValueType(13), offset: b[mark: "type"], key: "k")
        case .valueTruncated:
            oneKey(TypeID.uint64)
            b.mark("value")
            b.raw([1, 2, 3])
            return Expected(bytes: b.bytes, kind: .truncated(.value, needed: 8, remaining: 3),
                            offset: b[mark: "value"], key: "k")
        case .stringValueTooLong:
            oneKey(TypeID.string)
            b.mark("length")
            b.u64(1 << 30 + 1)
            b.raw("abc")
            return Expected(bytes: b.bytes, kind: .stringTooLong(length: 1 << 30 + 1, limit: 1 << 30),
                            offset: b[mark: "length"], key: "k")
        case .stringValueBeyondFile:
            oneKey(TypeID.string)
            b.u64(1000)
            b.mark("bytes")
            b.raw("abc")
            return Expected(bytes: b.bytes, kind: .truncated(.value, needed: 1000, remaining: 3),
                            offset: b[mark: "bytes"], key: "k")
        case .invalidBool:
            oneKey(TypeID.bool)
            b.mark("value")
            b.u8(2)
            return Expected(bytes: b.bytes, kind: .invalidBool(2), offset: b[mark: "value"], key: "k")
        case .invalidBoolInArray:
            oneKey(TypeID.array)
            b.u32(TypeID.bool)
            b.u64(3)
            b.raw([1, 0])
            b.mark("bad")
            b.u8(7)
            return Expected(bytes: b.bytes, kind: .invalidBool(7), offset: b[mark: "bad"], key: "k")
        case .nestedArray:
            oneKey(TypeID.array)
            b.mark("element type")
            b.u32(TypeID.array)
            b.u64(1)
            b.u32(TypeID.uint8)
            b.u64(1)
            b.u8(0)
            return Expected(bytes: b.bytes, kind: .nestedArray, offset: b[mark: "element type"], key: "k")
        case .unknownArrayElementType:
            oneKey(TypeID.array)
            b.mark("element type")
            b.u32(.max)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .unknownValueType(.max), offset: b[mark: "element type"], key: "k")
        case .arrayTooLong:
            oneKey(TypeID.array)
            b.u32(TypeID.uint8)
            b.mark("count")
            b.u64(1 << 30 + 1)
            b.zeros(16)
            return Expected(bytes: b.bytes, kind: .arrayTooLong(1 << 30 + 1), offset: b[mark: "count"], key: "k")
        case .hugeNumericArray:
            oneKey(TypeID.array)
            b.u32(TypeID.uint64)
            b.u64(1 << 29)
            b.mark("payload")
            b.zeros(16)
            return Expected(bytes: b.bytes, kind: .truncated(.value, needed: 1 << 32, remaining: 16),
                            offset: b[mark: "payload"], key: "k")
        case .hugeStringArray:
            oneKey(TypeID.array)
            b.u32(TypeID.string)
            b.u64(1 << 29)
            b.mark("payload")
            b.zeros(16)
            return Expected(bytes: b.bytes, kind: .truncated(.value, needed: 1 << 32, remaining: 16),
                            offset: b[mark: "payload"], key: "k")
        case .stringElementTooLong:
            oneKey(TypeID.array)
            b.u32(TypeID.string)
            b.u64(2)
            b.string("ok")
            b.mark("length")
            b.u64(1 << 30 + 1)
            b.zeros(8)
            return Expected(bytes: b.bytes, kind: .stringTooLong(length: 1 << 30 + 1, limit: 1 << 30),
                            offset: b[mark: "length"], key: "k")
        case .alignmentWrongType:
            b.header(tensors: 0, keys: 1)
            b.string("general.alignment")
            b.mark("type")
            b.u32(TypeID.int32)
            b.i32(32)
            return Expected(bytes: b.bytes, kind: .badAlignmentType(.int32), offset: b[mark: "type"],
                            key: "general.alignment")
        case .alignmentZero, .alignmentNotPowerOfTwo:
            let value: UInt32 = self == .alignmentZero ? 0 : 48
            b.header(tensors: 0, keys: 1)
            b.key("general.alignment", type: TypeID.uint32)
            b.mark("value")
            b.u32(value)
            return Expected(bytes: b.bytes, kind: .alignmentNotPowerOfTwo(UInt64(value)), offset: b[mark: "value"],
                            key: "general.alignment")
        case .tensorNameTooLong:
            b.header(tensors: 1, keys: 0)
            b.mark("name")
            b.tensorInfo(String(repeating: "x", count: 64), dims: [4], type: GGMLID.f32, offset: 0)
            return Expected(bytes: b.bytes, kind: .stringTooLong(length: 64, limit: 63), offset: b[mark: "name"])
        case .tensorNameInvalidUTF8:
            b.header(tensors: 1, keys: 0)
            b.u64(2)
            b.mark("bytes")
            b.raw([0xFF, 0x41])
            b.u32(1)
            b.i64(4)
            b.u32(GGMLID.f32)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .invalidUTF8, offset: b[mark: "bytes"])
        case .duplicateTensorName:
            b.header(tensors: 2, keys: 0)
            b.tensorInfo("t", dims: [8], type: GGMLID.f32, offset: 0)
            b.mark("second")
            b.tensorInfo("t", dims: [8], type: GGMLID.f32, offset: 32)
            b.pad(to: 32)
            b.zeros(64)
            return Expected(bytes: b.bytes, kind: .duplicateTensorName, offset: b[mark: "second"], tensor: "t")
        case .truncatedTensorInfo:
            oneTensor()
            b.u32(2)
            b.i64(4)
            b.mark("dim")
            b.raw([1, 2, 3])
            return Expected(bytes: b.bytes, kind: .truncated(.tensorInfo, needed: 8, remaining: 3),
                            offset: b[mark: "dim"], tensor: "t")
        case .tooManyDimensions:
            oneTensor()
            b.mark("n_dims")
            b.u32(5)
            for _ in 0 ..< 5 { b.i64(1) }
            b.u32(GGMLID.f32)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .tooManyDimensions(5), offset: b[mark: "n_dims"], tensor: "t")
        case .negativeDimension:
            oneTensor()
            b.u32(2)
            b.i64(4)
            b.mark("dim")
            b.i64(-1)
            b.u32(GGMLID.f32)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .negativeDimension(index: 1, value: -1), offset: b[mark: "dim"],
                            tensor: "t")
        case .elementCountOverflow:
            oneTensor()
            b.u32(2)
            b.mark("dims")
            b.i64(1 << 32)
            b.i64(1 << 32)
            b.u32(GGMLID.f32)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .elementCountOverflow, offset: b[mark: "dims"], tensor: "t")
        case .unknownTensorType:
            oneTensor()
            b.u32(1)
            b.i64(32)
            b.mark("type")
            b.u32(4)  // Q4_2, retired
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .unknownTensorType(4), offset: b[mark: "type"], tensor: "t")
        case .rowNotMultipleOfBlock:
            oneTensor()
            b.u32(2)
            b.i64(33)
            b.i64(2)
            b.mark("type")
            b.u32(GGMLID.q8_0)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .rowNotMultipleOfBlock(rowLength: 33, blockSize: 32),
                            offset: b[mark: "type"], tensor: "t")
        case .byteSizeOverflow:
            oneTensor()
            b.u32(1)
            b.i64(1 << 62)
            b.mark("type")
            b.u32(GGMLID.f32)
            b.u64(0)
            return Expected(bytes: b.bytes, kind: .byteSizeOverflow, offset: b[mark: "type"], tensor: "t")
        case .misalignedOffset:
            oneTensor()
            b.u32(1)
            b.i64(4)
            b.u32(GGMLID.f32)
            b.mark("offset")
            b.u64(16)
            b.pad(to: 32)
            b.zeros(64)
            return Expected(bytes: b.bytes, kind: .misalignedOffset(offset: 16, alignment: 32),
                            offset: b[mark: "offset"], tensor: "t")
        case .offsetOutOfBounds:
            oneTensor()
            b.u32(1)
            b.i64(8)
            b.u32(GGMLID.f32)
            b.mark("offset")
            b.u64(32)
            b.pad(to: 32)
            b.zeros(32)
            return Expected(bytes: b.bytes, kind: .offsetOutOfBounds(offset: 32, byteCount: 32, available: 32),
                            offset: b[mark: "offset"], tensor: "t")
        case .overlappingTensors:
            b.header(tensors: 2, keys: 0)
            b.tensorInfo("a", dims: [16], type: GGMLID.f32, offset: 0)
            b.string("b")
            b.u32(1)
            b.i64(8)
            b.u32(GGMLID.f32)
            b.mark("offset")
            b.u64(32)
            b.pad(to: 32)
            b.zeros(64)
            return Expected(bytes: b.bytes, kind: .overlappingTensors(other: "a"), offset: b[mark: "offset"],
                            tensor: "b")
        case .dataSectionMissing:
            b.header(tensors: 1, keys: 0)
            b.tensorInfo("t", dims: [4], type: GGMLID.f32, offset: 0)
            let end = b.offset
            return Expected(bytes: b.bytes, kind: .truncated(.tensorData, needed: 64 - end, remaining: 0), offset: end)
        }
    }
}

@Suite("GGUF reader refuses malformed files")
struct CorruptionTests {
    @Test(arguments: Corruption.allCases)
    func refuses(_ corruption: Corruption) {
        let expected = corruption.build()
        do {
            let file = try GGUFFile(bytes: expected.bytes)
            Issue.record("accepted a corrupt file with \(file.metadata.count) keys and \(file.tensors.count) tensors")
        } catch {
            #expect(error.kind == expected.kind)
            #expect(error.offset == expected.offset)
            #expect(error.key == expected.key)
            #expect(error.tensor == expected.tensor)
            #expect(error.path == nil)
        }
    }

    /// Every prefix of a valid file is refused cleanly, except those that still hold all of the
    /// last tensor's data (only the final padding is missing, which ggml's loader also accepts).
    @Test func everyTruncationOfAValidFileIsRefused() throws {
        var writer = GGUFWriter()
        try writer.addMetadata("general.architecture", .string("llama"))
        try writer.addMetadata("a.strings", .array(GGUFArray(strings: ["x", "yy", ""])))
        try writer.addMetadata("a.floats", .array(GGUFArray([Float(1), 2, 3])))
        try writer.addTensor(name: "w", type: .f32, shape: [3, 2], bytes: [UInt8](repeating: 7, count: 24))
        let bytes = try writer.serialized()
        let lastTensorEnd = try GGUFFile(bytes: bytes).tensors.last!.absoluteOffset + 24
        for cut in 0 ..< bytes.count {
            let accepted = (try? GGUFFile(bytes: Array(bytes[..<cut]))) != nil
            #expect(accepted == (cut >= lastTensorEnd), "cut at \(cut)")
        }
    }

    @Test func errorDescriptionNamesFileByteAndTensor() throws {
        let expected = Corruption.misalignedOffset.build()
        let path = try TestSupport.temporaryFile(expected.bytes, name: "model.gguf")
        do {
            _ = try GGUFFile(path: path)
            Issue.record("accepted a misaligned offset")
        } catch {
            #expect(error.path == path)
            #expect(error.description
                == "\(path): byte \(expected.offset): tensor 't': offset 16 is not a multiple of the alignment 32")
        }
    }

    @Test func bigEndianMessageSaysSo() {
        let expected = Corruption.bigEndian.build()
        do {
            _ = try GGUFFile(bytes: expected.bytes)
            Issue.record("accepted a big-endian file")
        } catch {
            #expect(error.description.contains("big-endian"))
            #expect(error.description.contains("0x03000000"))
        }
    }

    @Test func missingFileIsAFileError() {
        let path = TestSupport.temporaryDirectory() + "/absent.gguf"
        do {
            _ = try GGUFFile(path: path)
            Issue.record("opened a missing file")
        } catch {
            guard case .file(let fileError) = error.kind else {
                Issue.record("expected a file error, got \(error)")
                return
            }
            #expect(fileError.operation == "open")
            #expect(error.path == path)
            #expect(error.offset == nil)
        }
    }
}
