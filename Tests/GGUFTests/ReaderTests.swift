import GGUF
import Quants
import TensorIO
import TestSupport
import Testing

@Suite("GGUF reader on hand-built files")
struct ReaderTests {
    /// Every value type, written byte by byte from the specification, read back exactly.
    @Test func readsEveryValueType() throws {
        var b = GGUFBytes()
        b.header(tensors: 2, keys: 16)
        b.key("u8", type: TypeID.uint8); b.u8(0xAB)
        b.key("i8", type: TypeID.int8); b.int(Int8(-5))
        b.key("u16", type: TypeID.uint16); b.int(UInt16(0xBEEF))
        b.key("i16", type: TypeID.int16); b.int(Int16(-12345))
        b.key("u32", type: TypeID.uint32); b.u32(0xDEAD_BEEF)
        b.key("i32", type: TypeID.int32); b.i32(-7)
        b.key("f32", type: TypeID.float32); b.f32(-1.5)
        b.key("true", type: TypeID.bool); b.u8(1)
        b.key("false", type: TypeID.bool); b.u8(0)
        b.key("str", type: TypeID.string); b.string("héllo")
        b.key("u64", type: TypeID.uint64); b.u64(.max)
        b.key("i64", type: TypeID.int64); b.i64(.min)
        b.key("f64", type: TypeID.float64); b.f64(0.1)
        b.key("ints", type: TypeID.array); b.u32(TypeID.int16); b.u64(3); b.int(Int16(-1)); b.int(Int16(2)); b.int(Int16(300))
        b.key("strs", type: TypeID.array); b.u32(TypeID.string); b.u64(3); b.string("a"); b.string(""); b.string("ü✓")
        b.key("bools", type: TypeID.array); b.u32(TypeID.bool); b.u64(2); b.u8(0); b.u8(1)
        b.tensorInfo("scalar", dims: [], type: GGMLID.f32, offset: 0)
        b.tensorInfo("empty", dims: [0, 3], type: GGMLID.f32, offset: 32)
        b.pad(to: 32)
        let dataStart = b.offset
        b.f32(42)
        b.pad(to: 32)

        let file = try GGUFFile(bytes: b.bytes)
        #expect(file.version == 3)
        #expect(file.alignment == 32)
        #expect(file.dataOffset == dataStart)
        #expect(file.metadata.map(\.key) == ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "true", "false", "str",
                                             "u64", "i64", "f64", "ints", "strs", "bools"])
        #expect(file["u8"] == .uint8(0xAB))
        #expect(file["i8"] == .int8(-5))
        #expect(file["u16"] == .uint16(0xBEEF))
        #expect(file["i16"] == .int16(-12345))
        #expect(file["u32"] == .uint32(0xDEAD_BEEF))
        #expect(file["i32"] == .int32(-7))
        #expect(file["f32"] == .float32(-1.5))
        #expect(file["true"] == .bool(true))
        #expect(file["false"] == .bool(false))
        #expect(file["str"] == .string("héllo"))
        #expect(file["u64"] == .uint64(.max))
        #expect(file["i64"] == .int64(.min))
        #expect(file["f64"] == .float64(0.1))
        #expect(file.array("ints")?.values(as: Int16.self) == [-1, 2, 300])
        #expect(file.array("ints")?.values(as: Int32.self) == nil)
        #expect(file.stringArray("strs") == ["a", "", "ü✓"])
        #expect(file.array("bools")?.values(as: Bool.self) == [false, true])
        #expect(Array(file.array("strs")!) == [.string("a"), .string(""), .string("ü✓")])

        #expect(file.tensors.count == 2)
        let scalar = try #require(file.tensor(named: "scalar"))
        #expect(scalar.shape == [])
        #expect(scalar.elementCount == 1)
        #expect(scalar.byteCount == 4)
        #expect(scalar.absoluteOffset == dataStart)
        #expect(file.data(for: scalar).loadUnaligned(as: Float.self) == 42)
        let empty = try #require(file.tensor(named: "empty"))
        #expect(empty.shape == [0, 3])
        #expect(empty.elementCount == 0)
        #expect(empty.byteCount == 0)
        #expect(file.data(for: empty).isEmpty)
        #expect(file.isCanonicallyPacked)
    }

    @Test func typedGetters() throws {
        var writer = GGUFWriter()
        try writer.addMetadata("u8", .uint8(7))
        try writer.addMetadata("i64", .int64(-3))
        try writer.addMetadata("big", .uint64(.max))
        try writer.addMetadata("f32", .float32(0.5))
        try writer.addMetadata("f64", .float64(-2.25))
        try writer.addMetadata("flag", .bool(true))
        try writer.addMetadata("name", .string("smol"))
        let file = try GGUFFile(bytes: try writer.serialized())
        #expect(file.int("u8") == 7)
        #expect(file.int("i64") == -3)
        #expect(file.int("big") == nil)  // does not fit in Int
        #expect(file.int("name") == nil)
        #expect(file.float("f32") == 0.5)
        #expect(file.float("f64") == -2.25)
        #expect(file.float("u8") == nil)
        #expect(file.bool("flag") == true)
        #expect(file.string("name") == "smol")
        #expect(file.string("absent") == nil)
        #expect(file["absent"] == nil)
        #expect(file.value(forKey: "u8") == .uint8(7))
        #expect(file.stringArray("name") == nil)
    }

    /// Version 2 has the version 3 layout; a header-only file needs no padding.
    @Test func minimalVersion2File() throws {
        var b = GGUFBytes()
        b.header(version: 2, tensors: 0, keys: 0)
        let file = try GGUFFile(bytes: b.bytes)
        #expect(file.version == 2)
        #expect(file.dataOffset == 24)
        #expect(file.metadata.isEmpty && file.tensors.isEmpty)
    }

    /// `general.alignment` moves the data section and constrains offsets; 1 is a power of two.
    @Test(arguments: [1, 8, 64, 4096])
    func customAlignment(_ alignment: Int) throws {
        var b = GGUFBytes()
        b.header(tensors: 2, keys: 1)
        b.key("general.alignment", type: TypeID.uint32)
        b.u32(UInt32(alignment))
        b.tensorInfo("a", dims: [3], type: GGMLID.i8, offset: 0)
        let second = (3 + alignment - 1) / alignment * alignment
        b.tensorInfo("b", dims: [2], type: GGMLID.i8, offset: UInt64(second))
        b.pad(to: alignment)
        let start = b.offset
        b.raw([1, 2, 3])
        b.pad(to: alignment)
        b.raw([4, 5])
        let file = try GGUFFile(bytes: b.bytes)
        #expect(file.alignment == alignment)
        #expect(file.dataOffset == start)
        #expect(file.dataOffset % alignment == 0)
        #expect(Array(file.data(for: file.tensors[0])) == [1, 2, 3])
        #expect(Array(file.data(for: file.tensors[1])) == [4, 5])
        #expect(file.isCanonicallyPacked)
    }

    /// A layout ggml would refuse (tensors out of order, with a gap) is valid here as long as the
    /// data is aligned, in bounds and not overlapping; `isCanonicallyPacked` reports it.
    @Test func nonCanonicalLayoutIsAccepted() throws {
        var b = GGUFBytes()
        b.header(tensors: 2, keys: 0)
        b.tensorInfo("first", dims: [4], type: GGMLID.i8, offset: 96)
        b.tensorInfo("second", dims: [4], type: GGMLID.i8, offset: 0)
        b.pad(to: 32)
        let start = b.offset
        b.raw([9, 9, 9, 9])
        b.zeros(92)
        b.raw([1, 2, 3, 4])
        let file = try GGUFFile(bytes: b.bytes)
        #expect(!file.isCanonicallyPacked)
        #expect(file.tensors.map(\.absoluteOffset) == [start + 96, start])
        #expect(Array(file.data(for: file.tensors[0])) == [1, 2, 3, 4])
        #expect(Array(file.data(for: file.tensors[1])) == [9, 9, 9, 9])
    }

    /// String values need not be UTF-8: the bytes are kept exactly, decoding is lossy.
    @Test func invalidUTF8StringValuesAreKeptVerbatim() throws {
        var b = GGUFBytes()
        b.header(tensors: 0, keys: 2)
        b.key("raw", type: TypeID.string)
        b.string([0xFF, 0x61])
        b.key("tokens", type: TypeID.array)
        b.u32(TypeID.string)
        b.u64(2)
        b.string([0xE2, 0x82])
        b.string("ok")
        let file = try GGUFFile(bytes: b.bytes)
        guard case .string(let raw) = file["raw"] else {
            Issue.record("not a string")
            return
        }
        #expect(raw.bytes == [0xFF, 0x61])
        #expect(!raw.isValidUTF8)
        #expect(raw.string == "\u{FFFD}a")
        let tokens = try #require(file.array("tokens"))
        #expect(tokens.stringBytes(at: 0) == [0xE2, 0x82])
        #expect(tokens.string(at: 1) == "ok")
        // Round trip keeps the bytes.
        let again = try GGUFWriter(copying: file).serialized()
        #expect(again == b.bytes + [UInt8](repeating: 0, count: (32 - b.bytes.count % 32) % 32))
    }

    /// Bytes after the last tensor (another writer's trailing data) are ignored.
    @Test func trailingBytesAreAllowed() throws {
        var b = GGUFBytes()
        b.header(tensors: 1, keys: 0)
        b.tensorInfo("t", dims: [2], type: GGMLID.i8, offset: 0)
        b.pad(to: 32)
        b.raw([5, 6])
        b.zeros(100)
        let file = try GGUFFile(bytes: b.bytes)
        #expect(Array(file.data(for: file.tensors[0])) == [5, 6])
    }
}
