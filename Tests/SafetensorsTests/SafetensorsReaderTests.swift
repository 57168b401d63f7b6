import Safetensors
import TensorIO
import TestSupport
import Testing

/// A valid two-tensor header: F32 "a" [2] at 0..<8, U8 "b" [3] at 8..<11.
private let baseHeader = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]}}"#
private let baseData: [UInt8] = Array(0 ..< 11)

/// A header with a single tensor entry "a" given as JSON text.
private func entry(_ json: String) -> String { #"{"a":"# + json + "}" }

/// One broken file per rule of Formats/safetensors.md, with the error it must produce.
enum Corruption: String, CaseIterable, CustomTestStringConvertible {
    case emptyFile, sevenBytes
    case headerOverCap, headerLengthMax, headerPastEnd
    case headerEmpty, headerIsArray, headerLeadingSpace
    case headerBadUTF8, headerTruncatedJSON, headerTrailingGarbage, headerNulPadding, headerNaN, headerTooDeep, headerLoneSurrogate
    case duplicateTensor, duplicateField
    case metadataNotObject, metadataNullValue, metadataNumberValue
    case entryNotObject, entryUnknownField, entryMissingOffsets, entryMissingDtype, dtypeNotString
    case dtypeC64, dtypeF8E8M0, dtypeF4, dtypeLowercase
    case shapeNotArray, shapeNegative, shapeFractional, shapeHuge, shapeString
    case elementCountOverflow, byteSizeOverflow
    case offsetsOneValue, offsetsThreeValues, offsetsNegative, offsetsReversed, offsetsFractional, offsetsNotArray
    case sizeTooSmall, sizeTooLarge
    case overlap, duplicateRange, gap, firstNotAtZero, emptyTensorPastEnd
    case truncated, trailingByte, polyglotZip, dataWithoutTensors

    var testDescription: String { rawValue }

    /// The file, and the expected error kind, absolute offset and tensor.
    var sample: (bytes: [UInt8], kind: SafetensorsError.Kind, offset: Int, tensor: String?) {
        let dataStart = 8 + baseHeader.utf8.count
        let keyA = 9  // `"a"` right after `{`
        switch self {
        case .emptyFile: return ([], .fileTooSmall, 0, nil)
        case .sevenBytes: return ([1, 0, 0, 0, 0, 0, 0], .fileTooSmall, 0, nil)
        case .headerOverCap: return (makeFile("{}", declaredLength: 100_000_001), .headerTooLarge, 0, nil)
        case .headerLengthMax: return (makeFile("{}", declaredLength: .max), .headerTooLarge, 0, nil)
        case .headerPastEnd: return (makeFile("{}", declaredLength: 3), .headerExceedsFile, 0, nil)
        case .headerEmpty: return (makeFile(""), .headerNotObject, 8, nil)
        case .headerIsArray: return (makeFile("[]      "), .headerNotObject, 8, nil)
        case .headerLeadingSpace: return (makeFile(" {}     "), .headerNotObject, 8, nil)
        case .headerBadUTF8:
            return (makeFile(bytes: Array(#"{"__metadata__":{"k":""#.utf8) + [0xC3, 0x28] + Array(#""}}"#.utf8)), .headerNotUTF8, 8 + 22, nil)
        case .headerTruncatedJSON: return (makeFile(#"{"a":"#), .headerNotJSON, 8 + 5, nil)
        case .headerTrailingGarbage: return (makeFile("{} x"), .headerNotJSON, 8 + 3, nil)
        case .headerNulPadding: return (makeFile(bytes: [UInt8(ascii: "{"), UInt8(ascii: "}"), 0, 0, 0, 0, 0, 0]), .headerNotJSON, 8 + 2, nil)
        case .headerNaN: return (makeFile(entry(#"{"dtype":"F32","shape":[NaN],"data_offsets":[0,0]}"#)), .headerNotJSON, 8 + 29, nil)
        case .headerTooDeep:
            return (makeFile(#"{"__metadata__":{"k":[[[[[[[[]]]]]]]]}}"#), .headerNotJSON, 8 + 27, nil)
        case .headerLoneSurrogate: return (makeFile(#"{"\ud800":{}}"#), .headerNotJSON, 8 + 2, nil)
        case .duplicateTensor:
            let header = #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#
            return (makeFile(header, data: [1, 2]), .duplicateKey, 8 + byteOffset(of: #""a""#, in: header, occurrence: 1), nil)
        case .duplicateField:
            let header = entry(#"{"dtype":"U8","shape":[1],"shape":[1],"data_offsets":[0,1]}"#)
            return (makeFile(header, data: [1]), .duplicateKey, 8 + byteOffset(of: #""shape""#, in: header, occurrence: 1), nil)
        case .metadataNotObject: return (makeFile(#"{"__metadata__":"x"}"#), .invalidMetadata, keyA, nil)
        case .metadataNullValue: return (makeFile(#"{"__metadata__":{"k":null}}"#), .invalidMetadata, keyA, nil)
        case .metadataNumberValue:
            let header = #"{"x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"__metadata__":{"k":1}}"#
            return (makeFile(header), .invalidMetadata, 8 + byteOffset(of: #""__metadata__""#, in: header), nil)
        case .entryNotObject: return (makeFile(entry("[1]")), .invalidTensorEntry, keyA, "a")
        case .entryUnknownField:
            return (makeFile(entry(#"{"dtype":"U8","shape":[1],"data_offsets":[0,1],"align":8}"#), data: [0]), .invalidTensorEntry, keyA, "a")
        case .entryMissingOffsets: return (makeFile(entry(#"{"dtype":"U8","shape":[1]}"#), data: [0]), .invalidTensorEntry, keyA, "a")
        case .entryMissingDtype: return (makeFile(entry(#"{"shape":[1],"data_offsets":[0,1]}"#), data: [0]), .invalidTensorEntry, keyA, "a")
        case .dtypeNotString: return (makeFile(entry(#"{"dtype":4,"shape":[1],"data_offsets":[0,1]}"#), data: [0]), .invalidTensorEntry, keyA, "a")
        case .dtypeC64: return (makeFile(entry(#"{"dtype":"C64","shape":[1],"data_offsets":[0,8]}"#), data: [UInt8](repeating: 0, count: 8)), .unsupportedDType, keyA, "a")
        case .dtypeF8E8M0: return (makeFile(entry(#"{"dtype":"F8_E8M0","shape":[1],"data_offsets":[0,1]}"#), data: [0]), .unsupportedDType, keyA, "a")
        case .dtypeF4: return (makeFile(entry(#"{"dtype":"F4","shape":[2],"data_offsets":[0,1]}"#), data: [0]), .unsupportedDType, keyA, "a")
        case .dtypeLowercase: return (makeFile(entry(#"{"dtype":"f32","shape":[1],"data_offsets":[0,4]}"#), data: [0, 0, 0, 0]), .unsupportedDType, keyA, "a")
        case .shapeNotArray: return (makeFile(entry(#"{"dtype":"U8","shape":1,"data_offsets":[0,1]}"#), data: [0]), .invalidShape, keyA, "a")
        case .shapeNegative: return (makeFile(entry(#"{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}"#)), .invalidShape, keyA, "a")
        case .shapeFractional: return (makeFile(entry(#"{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}"#), data: [0]), .invalidShape, keyA, "a")
        case .shapeHuge: return (makeFile(entry(#"{"dtype":"U8","shape":[2,18446744073709551614],"data_offsets":[0,16]}"#), data: [UInt8](repeating: 0, count: 16)), .invalidShape, keyA, "a")
        case .shapeString: return (makeFile(entry(#"{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}"#), data: [0]), .invalidShape, keyA, "a")
        case .elementCountOverflow:
            return (makeFile(entry(#"{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}"#)), .sizeOverflow, keyA, "a")
        case .byteSizeOverflow:
            return (makeFile(entry(#"{"dtype":"I32","shape":[2,9223372036854775807],"data_offsets":[0,16]}"#), data: [UInt8](repeating: 0, count: 16)), .sizeOverflow, keyA, "a")
        case .offsetsOneValue: return (makeFile(entry(#"{"dtype":"U8","shape":[1],"data_offsets":[1]}"#), data: [0]), .invalidDataOffsets, keyA, "a")
        case .offsetsThreeValues: return (makeFile(entry(#"{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}"#), data: [0]), .invalidDataOffsets, keyA, "a")
        case .offsetsNegative: return (makeFile(entry(#"{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}"#), data: [0]), .invalidDataOffsets, keyA, "a")
        case .offsetsReversed: return (makeFile(entry(#"{"dtype":"U8","shape":[0],"data_offsets":[1,0]}"#), data: [0]), .invalidDataOffsets, keyA, "a")
        case .offsetsFractional: return (makeFile(entry(#"{"dtype":"U8","shape":[1],"data_offsets":[0,1.5]}"#), data: [0]), .invalidDataOffsets, keyA, "a")
        case .offsetsNotArray: return (makeFile(entry(#"{"dtype":"U8","shape":[1],"data_offsets":"0-1"}"#), data: [0]), .invalidDataOffsets, keyA, "a")
        case .sizeTooSmall: return (makeFile(entry(#"{"dtype":"I32","shape":[2,2],"data_offsets":[0,4]}"#), data: [0, 0, 0, 0]), .tensorSizeMismatch, keyA, "a")
        case .sizeTooLarge: return (makeFile(entry(#"{"dtype":"U8","shape":[2],"data_offsets":[0,3]}"#), data: [0, 0, 0]), .tensorSizeMismatch, keyA, "a")
        case .overlap:
            let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[5,8]}}"#
            return (makeFile(header, data: [UInt8](repeating: 0, count: 8)), .overlappingTensors, 8 + header.utf8.count + 5, "b")
        case .duplicateRange:
            let header = #"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}"#
            return (makeFile(header, data: [1, 2, 3, 4]), .overlappingTensors, 8 + header.utf8.count, "b")
        case .gap:
            let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[3],"data_offsets":[9,12]}}"#
            return (makeFile(header, data: [UInt8](repeating: 0, count: 12)), .gapBetweenTensors, 8 + header.utf8.count + 8, "b")
        case .firstNotAtZero:
            let header = entry(#"{"dtype":"F32","shape":[2],"data_offsets":[4,12]}"#)
            return (makeFile(header, data: [UInt8](repeating: 0, count: 12)), .gapBetweenTensors, 8 + header.utf8.count, "a")
        case .emptyTensorPastEnd:
            let header = #"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"e":{"dtype":"U8","shape":[0],"data_offsets":[100,100]}}"#
            return (makeFile(header, data: [1, 2]), .gapBetweenTensors, 8 + header.utf8.count + 2, "e")
        case .truncated:
            return (makeFile(baseHeader, data: Array(baseData.dropLast())), .truncatedData, dataStart + 10, "b")
        case .trailingByte: return (makeFile(baseHeader, data: baseData + [0]), .trailingData, dataStart + 11, nil)
        case .polyglotZip: return (makeFile(baseHeader, data: baseData + [0x50, 0x4B, 0x05, 0x06] + [UInt8](repeating: 0, count: 18)), .trailingData, dataStart + 11, nil)
        case .dataWithoutTensors: return (makeFile("{}      ", data: [0]), .trailingData, 16, nil)
        }
    }
}

@Suite struct SafetensorsReaderTests {
    @Test(arguments: Corruption.allCases)
    func corruptionIsRefused(_ corruption: Corruption) {
        let sample = corruption.sample
        if let exportDirectory = environmentValue("SAFETENSORS_EXPORT_DIR") {  // for cross-checks by hand
            try? AtomicFile.write(to: exportDirectory + "/corruption-\(corruption.rawValue).safetensors", bytes: sample.bytes)
        }
        let error = openError(sample.bytes)
        #expect(error?.kind == sample.kind, "\(String(describing: error))")
        #expect(error?.offset == sample.offset, "\(String(describing: error))")
        #expect(error?.tensor == sample.tensor, "\(String(describing: error))")
        #expect(error?.path == "<memory>")
        #expect(error?.message.isEmpty == false)
    }

    /// Every reading rule has at least one corruption exercising it.
    @Test func everyReadRuleIsCovered() {
        let covered = Set(Corruption.allCases.map(\.sample.kind))
        let readKinds: [SafetensorsError.Kind] = [
            .fileTooSmall, .headerTooLarge, .headerExceedsFile, .headerNotObject, .headerNotUTF8, .headerNotJSON,
            .duplicateKey, .invalidMetadata, .invalidTensorEntry, .unsupportedDType, .invalidShape, .sizeOverflow,
            .invalidDataOffsets, .tensorSizeMismatch, .overlappingTensors, .gapBetweenTensors, .truncatedData, .trailingData,
        ]
        for kind in readKinds { #expect(covered.contains(kind), "no corruption produces \(kind)") }
    }

    @Test func unsupportedDTypesAreNamed() {
        for name in ["C64", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "F6_E2M3", "F6_E3M2", "F4", "U1", "Q4_0", "f32", ""] {
            let error = openError(makeFile(entry(#"{"dtype":""# + name + #"","shape":[0],"data_offsets":[0,0]}"#)))
            #expect(error?.kind == .unsupportedDType)
            #expect(error?.message.contains("'\(name)'") == true)
            #expect(error?.message.contains("'a'") == true)
            #expect(error?.message.contains("BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64, F8_E4M3, F8_E5M2") == true)
        }
    }

    @Test func errorDescriptionIsReadable() {
        let error = openError(Corruption.dtypeC64.sample.bytes)!
        #expect(error.description == "<memory>: dtype 'C64' of tensor 'a' is not supported; supported: BOOL, U8, I8, U16, I16, F16, BF16, U32, I32, F32, U64, I64, F64, F8_E4M3, F8_E5M2 (at byte 9)")
    }

    /// The reference implementation's own test vector (hand-checked bytes): 0x3C = 60-byte header.
    @Test func referenceTestVector() throws {
        let header = #"{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}"#
        #expect(header.utf8.count == 60)
        let bytes: [UInt8] = [0x3C, 0, 0, 0, 0, 0, 0, 0] + Array(header.utf8) + [UInt8](repeating: 0, count: 16)
        let file = try SafetensorsFile(bytes: bytes)
        #expect(file.headerLength == 60)
        #expect(file.dataStart == 68)
        #expect(file.tensors == [SafetensorsTensorInfo(name: "test", dtype: .i32, shape: [2, 2], dataOffsets: 0 ..< 16)])
        #expect(Array(try file.data(named: "test")) == [UInt8](repeating: 0, count: 16))
        #expect(file.metadata.isEmpty)
    }

    @Test func validEdgeCases() throws {
        // Empty header object, space padding.
        var file = try SafetensorsFile(bytes: makeFile("{}      "))
        #expect(file.tensors.isEmpty && file.dataSize == 0)
        // Trailing JSON whitespace of any kind (the reference reader accepts it too).
        file = try SafetensorsFile(bytes: makeFile("{}\r\n\t "))
        #expect(file.tensors.isEmpty)
        // Empty tensors (anywhere, sharing offsets), a scalar, header order unlike data order.
        let header = #"{"__metadata__":{"z":"1","a":"2"},"late":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},"e1":{"dtype":"F32","shape":[3,0],"data_offsets":[4,4]},"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"e0":{"dtype":"I64","shape":[0],"data_offsets":[0,0]},"e2":{"dtype":"BF16","shape":[0,7],"data_offsets":[6,6]}}"#
        let one = Float(1.5).bitPattern
        let data: [UInt8] = le64(UInt64(one)).prefix(4) + [7, 8]
        file = try SafetensorsFile(bytes: makeFile(header, data: data))
        #expect(file.tensors.map(\.name) == ["e0", "s", "e1", "late", "e2"])
        #expect(file.metadata.map(\.key) == ["z", "a"])
        #expect(file.metadataDictionary == ["z": "1", "a": "2"])
        #expect(try file.floats(named: "s") == [1.5])
        #expect(file.tensor(named: "s")?.elementCount == 1)
        #expect(file.tensor(named: "e1")?.elementCount == 0)
        #expect(try file.floats(named: "e1") == [])
        #expect(Array(try file.data(named: "late")) == [7, 8])
        #expect(try file.data(named: "e2").count == 0)
        // Non-ASCII and escaped names.
        let names = #"{"é\n\"x\"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#
        file = try SafetensorsFile(bytes: makeFile(names, data: [9]))
        #expect(file.tensors.first?.name == "é\n\"x\"")
    }

    @Test func lookupErrors() throws {
        let file = try SafetensorsFile(bytes: makeFile(baseHeader, data: baseData))
        let noData = #expect(throws: SafetensorsError.self) { try file.data(named: "nope") }
        #expect(noData?.kind == .tensorNotFound && noData?.tensor == "nope")
        let missing = #expect(throws: SafetensorsError.self) { try file.floats(named: "nope") }
        #expect(missing?.kind == .tensorNotFound && missing?.tensor == "nope")
        let integer = #expect(throws: SafetensorsError.self) { try file.floats(named: "b") }
        #expect(integer?.kind == .notFloatingPoint && integer?.tensor == "b")
        #expect(file.tensor(named: "nope") == nil)
    }

    @Test func openFromDiskIsZeroCopy() throws {
        let bytes = makeFile(baseHeader, data: baseData)
        let path = try TestSupport.temporaryFile(bytes, name: "x.safetensors")
        let file = try SafetensorsFile(path: path)
        #expect(file.path == path)
        let view = try file.data(named: "b")
        // The view points into the mapping itself, at the tensor's absolute offset.
        #expect(view.baseAddress == file.bytes.baseAddress! + file.dataStart + 8)
        #expect(Array(view) == [8, 9, 10])
        // Errors from disk carry the path; a missing file is an I/O error.
        let missing = #expect(throws: SafetensorsError.self) { try SafetensorsFile(path: path + ".missing") }
        #expect(missing?.kind == .io && missing?.path == path + ".missing")
        let bad = try TestSupport.temporaryFile(Corruption.gap.sample.bytes, name: "bad.safetensors")
        let gap = #expect(throws: SafetensorsError.self) { try SafetensorsFile(path: bad) }
        #expect(gap?.kind == .gapBetweenTensors && gap?.path == bad)
        #expect(gap?.description.hasPrefix(bad + ": ") == true)
    }

    @Test func floatDecoding() throws {
        // F16 1.0 = 0x3C00, BF16 -2.0 = 0xC000, F64 0.1 rounds to Float(0.1).
        let header = #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},"d":{"dtype":"F64","shape":[1],"data_offsets":[6,14]}}"#
        let data: [UInt8] = [0x00, 0x3C, 0x00, 0xBC, 0x00, 0xC0] + le64(0.1.bitPattern)
        let file = try SafetensorsFile(bytes: makeFile(header, data: data))
        #expect(try file.floats(named: "h") == [1, -1])
        #expect(try file.floats(named: "b") == [-2])
        #expect(try file.floats(named: "d") == [Float(0.1)])
    }
}
