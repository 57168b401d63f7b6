import Safetensors
import TensorIO
import TestSupport
import Testing

/// Deterministic pseudo-random bytes.
private func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0 ..< count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ Int(seed) &* 11 &+ 5) }
}

@Suite struct SafetensorsWriterTests {
    @Test func roundTripEveryDType() throws {
        var writer = SafetensorsWriter(metadata: ["format": "pt", "note": "ünïcode \"quoted\"\n", "": "empty key"])
        var expected: [String: (SafetensorsDType, [Int], [UInt8])] = [:]
        for (i, dtype) in SafetensorsDType.allCases.enumerated() {
            for (j, shape) in [[3, 2], [], [0, 4], [5]].enumerated() {
                let name = "t.\(dtype.rawValue).\(j)"
                let bytes = pattern(shape.reduce(1, *) * dtype.byteSize, seed: UInt8(i * 4 + j))
                try writer.add(name, dtype: dtype, shape: shape, bytes: bytes)
                expected[name] = (dtype, shape, bytes)
            }
        }
        let serialized = try writer.serialize()
        let path = TestSupport.temporaryDirectory("st-writer") + "/all.safetensors"
        try writer.write(to: path)
        #expect(try readFile(path) == serialized)

        let file = try SafetensorsFile(path: path)
        #expect(file.tensors.count == expected.count)
        #expect(file.metadataDictionary == writer.metadata)
        #expect(file.metadata.map(\.key) == ["", "format", "note"])  // written sorted
        for info in file.tensors {
            let (dtype, shape, bytes) = try #require(expected[info.name])
            #expect(info.dtype == dtype && info.shape == shape)
            #expect(Array(file.data(for: info)) == bytes)
        }
    }

    @Test func layoutMatchesReferenceRules() throws {
        var writer = SafetensorsWriter()
        try writer.add("b", dtype: .u8, shape: [3], bytes: [1, 2, 3])
        try writer.add("a", dtype: .u8, shape: [1], bytes: [4])
        try writer.add("h", dtype: .f16, shape: [3], bytes: pattern(6, seed: 1))
        try writer.add("big", dtype: .i64, shape: [1], bytes: pattern(8, seed: 2))
        try writer.add("w", dtype: .f32, shape: [1], bytes: pattern(4, seed: 3))
        try writer.add("bool", dtype: .bool, shape: [1], bytes: [1])
        let bytes = try writer.serialize()
        let file = try SafetensorsFile(bytes: bytes)
        // Decreasing alignment, then name.
        #expect(file.tensors.map(\.name) == ["big", "w", "h", "a", "b", "bool"])
        #expect(file.dataStart % 8 == 0)
        for info in file.tensors {
            #expect((file.dataStart + info.dataOffsets.lowerBound) % info.dtype.byteSize == 0, "\(info.name) misaligned")
        }
        // Compact JSON, padded with spaces; no __metadata__ key when there is no metadata.
        let header = String(decoding: bytes[8 ..< file.dataStart], as: UTF8.self)
        #expect(header.hasPrefix(#"{"big":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"w":"#))
        #expect(!header.contains("__metadata__"))
        #expect(header.hasSuffix("}") || header.last == " ")
        #expect(header.count % 8 == 0)
    }

    @Test func emptyWriterProducesEmptyHeader() throws {
        let bytes = try SafetensorsWriter().serialize()
        #expect(bytes == le64(8) + Array("{}      ".utf8))
        #expect(try SafetensorsFile(bytes: bytes).tensors.isEmpty)
    }

    @Test func producerClosureStreamsData() throws {
        let big = pattern(3000, seed: 9)
        var writer = SafetensorsWriter()
        try writer.add("streamed", dtype: .u16, shape: [1500]) { sink in
            try big.withUnsafeBytes { raw in
                // In uneven chunks.
                var offset = 0
                for chunk in [1, 999, 2000] {
                    try sink.write(UnsafeRawBufferPointer(rebasing: raw[offset ..< offset + chunk]))
                    offset += chunk
                }
            }
        }
        let path = TestSupport.temporaryDirectory("st-producer") + "/p.safetensors"
        try writer.write(to: path)
        let file = try SafetensorsFile(path: path)  // keep the mapping alive while reading the view
        #expect(Array(try file.data(named: "streamed")) == big)
    }

    @Test func producerLengthIsEnforced() throws {
        let dir = TestSupport.temporaryDirectory("st-short")
        for count in [3, 5] {
            var writer = SafetensorsWriter()
            try writer.add("x", dtype: .u8, shape: [4]) { sink in try sink.write([UInt8](repeating: 1, count: count)) }
            let path = dir + "/x\(count).safetensors"
            do {
                try writer.write(to: path)
                Issue.record("a producer writing \(count) of 4 bytes must fail")
            } catch let error as SafetensorsError {
                #expect(error.kind == .dataLengthMismatch && error.tensor == "x")
            }
            #expect(!fileExists(path))  // nothing left behind
            #expect(throws: SafetensorsError.self) { try writer.serialize() }
        }
    }

    @Test func addValidation() throws {
        var writer = SafetensorsWriter()
        try writer.add("x", dtype: .f32, shape: [1], bytes: [0, 0, 0, 0])
        func kind(_ body: (inout SafetensorsWriter) throws -> Void) -> SafetensorsError.Kind? {
            do { try body(&writer); return nil } catch { return (error as? SafetensorsError)?.kind }
        }
        #expect(kind { try $0.add("x", dtype: .u8, shape: [1], bytes: [0]) } == .duplicateTensorName)
        #expect(kind { try $0.add("__metadata__", dtype: .u8, shape: [1], bytes: [0]) } == .invalidTensorName)
        #expect(kind { try $0.add("a\u{0}b", dtype: .u8, shape: [1], bytes: [0]) } == .invalidTensorName)
        #expect(kind { try $0.add("y", dtype: .u8, shape: [-1], bytes: []) } == .invalidShape)
        #expect(kind { try $0.add("y", dtype: .u8, shape: [1 << 62, 8], bytes: []) } == .sizeOverflow)
        #expect(kind { try $0.add("y", dtype: .f64, shape: [1 << 61], bytes: []) } == .sizeOverflow)
        #expect(kind { try $0.add("y", dtype: .f32, shape: [2], bytes: [0, 0, 0, 0]) } == .dataLengthMismatch)
        #expect(kind { try $0.add("y", shape: [1], floats: [1], as: .f8E4M3) } == .notFloatingPoint)
        #expect(writer.tensorCount == 1)  // failed adds leave nothing behind
        writer.metadata["bad\u{0}key"] = "v"
        #expect(throws: SafetensorsError.self) { try writer.serialize() }
    }

    @Test func floatConvenience() throws {
        let values: [Float] = [1, -2.5, 0.1, 65504, .infinity, 3.0e-8]
        var writer = SafetensorsWriter()
        for dtype in [SafetensorsDType.f32, .f16, .bf16, .f64] {
            try writer.add("v.\(dtype.rawValue)", shape: [2, 3], floats: values, as: dtype)
        }
        let file = try SafetensorsFile(bytes: try writer.serialize())
        #expect(try file.floats(named: "v.F32") == values)
        #expect(try file.floats(named: "v.F64") == values)
        #expect(try file.floats(named: "v.F16") == values.map { HalfFloat.f16ToFloat(HalfFloat.floatToF16($0)) })
        #expect(try file.floats(named: "v.BF16") == values.map { HalfFloat.bf16ToFloat(HalfFloat.floatToBF16($0)) })
        #expect(file.tensor(named: "v.F16")?.shape == [2, 3])
    }

    @Test func writeFailureLeavesDestinationUntouched() throws {
        let dir = TestSupport.temporaryDirectory("st-atomic")
        let path = dir + "/m.safetensors"
        var good = SafetensorsWriter()
        try good.add("a", dtype: .u8, shape: [2], bytes: [1, 2])
        try good.write(to: path)
        struct Boom: Error {}
        var bad = SafetensorsWriter()
        try bad.add("a", dtype: .u8, shape: [2]) { _ in throw Boom() }
        #expect(throws: Boom.self) { try bad.write(to: path) }
        let file = try SafetensorsFile(path: path)
        #expect(Array(try file.data(named: "a")) == [1, 2])
        // An unwritable destination is an I/O error.
        let error = #expect(throws: SafetensorsError.self) { try good.write(to: dir + "/no/such/dir/x.safetensors") }
        #expect(error?.kind == .io && error?.path == dir + "/no/such/dir/x.safetensors")
    }
}
