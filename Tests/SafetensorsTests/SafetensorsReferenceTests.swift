import Safetensors
import TensorIO
import TestSupport
import Testing

/// Cross-checks with the reference implementation through committed fixtures
/// (Tools/scripts/gen_safetensors_fixtures.py: the Python `safetensors` library and `ml_dtypes`).
@Suite struct SafetensorsReferenceTests {
    static let referencePath = TestSupport.fixture("safetensors/reference.safetensors")
    static let swiftWrittenPath = TestSupport.fixture("safetensors/written_by_swift.safetensors")

    /// We read the reference library's file exactly as the library reads it back.
    @Test func readsReferenceFile() throws {
        let dump = try ReferenceDump.load()
        let file = try SafetensorsFile(path: Self.referencePath)
        #expect(file.headerLength == dump.headerLength)
        #expect(file.bytes.count == dump.fileSize)
        #expect(file.metadataDictionary == dump.metadata)
        #expect(Set(file.tensors.map(\.name)) == Set(dump.tensors.map(\.name)))
        for expected in dump.tensors {
            let info = try #require(file.tensor(named: expected.name))
            #expect(info.dtype.rawValue == expected.dtype)
            #expect(info.shape == expected.shape)
            #expect([info.dataOffsets.lowerBound, info.dataOffsets.upperBound] == expected.dataOffsets)
            #expect(Array(file.data(for: info)) == expected.data, "\(expected.name)")
            if let bits = expected.floatBits {
                let floats = try file.floats(for: info)
                #expect(floats.count == bits.count)
                for (value, bit) in zip(floats, bits) {
                    let want = Float(bitPattern: bit)
                    #expect(value.bitPattern == bit || (value.isNaN && want.isNaN), "\(expected.name): \(value) vs \(want)")
                }
            }
        }
    }

    /// Our writer, given the reference tensors and metadata, produces the library's bytes exactly.
    @Test func writerIsByteIdenticalToReference() throws {
        let dump = try ReferenceDump.load()
        var writer = SafetensorsWriter(metadata: dump.metadata)
        // Add in reverse name order: the layout must not depend on insertion order.
        for tensor in dump.tensors.reversed() {
            try writer.add(tensor.name, dtype: try #require(SafetensorsDType(rawValue: tensor.dtype)), shape: tensor.shape, bytes: tensor.data)
        }
        #expect(try writer.serialize() == readFile(Self.referencePath))
    }

    /// The committed Swift-written file (two metadata entries) was verified with the reference
    /// library (`gen_safetensors_fixtures.py --verify`); our writer must still produce exactly it.
    @Test func writerStillProducesVerifiedFile() throws {
        let dump = try ReferenceDump.load()
        var metadata = dump.metadata
        metadata["writer"] = "SoftPromptKit"
        var writer = SafetensorsWriter(metadata: metadata)
        for tensor in dump.tensors {
            try writer.add(tensor.name, dtype: try #require(SafetensorsDType(rawValue: tensor.dtype)), shape: tensor.shape, bytes: tensor.data)
        }
        let bytes = try writer.serialize()
        if let exportDirectory = environmentValue("SAFETENSORS_EXPORT_DIR") {
            try AtomicFile.write(to: exportDirectory + "/written_by_swift.safetensors", bytes: bytes)
        }
        #expect(bytes == (try readFile(Self.swiftWrittenPath)))
    }

    /// Our F8 decoders agree with ml_dtypes on all 256 bit patterns of each format.
    @Test func float8TablesMatchMLDtypes() throws {
        let dump = try ReferenceDump.load()
        for (name, decode) in [("f8_e4m3", Float8.e4m3ToFloat), ("f8_e5m2", Float8.e5m2ToFloat)] as [(String, (UInt8) -> Float)] {
            let tensor = try #require(dump.tensors.first { $0.name == name })
            #expect(tensor.data == Array(0 ... 255))
            let bits = try #require(tensor.floatBits)
            for byte in 0 ... 255 {
                let want = Float(bitPattern: bits[byte])
                let got = decode(UInt8(byte))
                #expect(got.bitPattern == bits[byte] || (got.isNaN && want.isNaN), "\(name) 0x\(String(byte, radix: 16)): \(got) vs \(want)")
            }
        }
        // Hand-checked landmarks (OCP FP8 spec): E4M3 max 448, min subnormal 2^-9, NaN 0x7F/0xFF, no inf.
        #expect(Float8.e4m3ToFloat(0x7E) == 448)
        #expect(Float8.e4m3ToFloat(0x01) == 0x1p-9)
        #expect(Float8.e4m3ToFloat(0x7F).isNaN && Float8.e4m3ToFloat(0xFF).isNaN)
        #expect(Float8.e4m3Table.filter(\.isNaN).count == 2 && !Float8.e4m3Table.contains(.infinity))
        #expect(Float8.e4m3ToFloat(0x38) == 1 && Float8.e4m3ToFloat(0x80).bitPattern == (-0.0 as Float).bitPattern)
        // E5M2: max 57344, min subnormal 2^-16, inf 0x7C, NaN 0x7D..0x7F.
        #expect(Float8.e5m2ToFloat(0x7B) == 57344)
        #expect(Float8.e5m2ToFloat(0x01) == 0x1p-16)
        #expect(Float8.e5m2ToFloat(0x7C) == .infinity && Float8.e5m2ToFloat(0xFC) == -.infinity)
        #expect(Float8.e5m2Table.filter(\.isNaN).count == 6)
        #expect(Float8.e5m2ToFloat(0x3C) == 1)
    }
}
