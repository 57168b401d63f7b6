import Safetensors
import TensorIO
import Testing

/// The 8-byte little-endian encoding of `value`.
func le64(_ value: UInt64) -> [UInt8] {
    (0 ..< 8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}

/// A safetensors file from a header text and data bytes (length prefix computed unless given).
func makeFile(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    makeFile(bytes: Array(header.utf8), data: data, declaredLength: declaredLength)
}

func makeFile(bytes header: [UInt8], data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    le64(declaredLength ?? UInt64(header.count)) + header + data
}

/// Offset of the `occurrence`-th (0-based) match of `needle` in `text`, in UTF-8 bytes.
func byteOffset(of needle: String, in text: String, occurrence: Int = 0) -> Int {
    let haystack = Array(text.utf8), pattern = Array(needle.utf8)
    var seen = 0
    for start in 0 ... (haystack.count - pattern.count) where Array(haystack[start ..< start + pattern.count]) == pattern {
        if seen == occurrence { return start }
        seen += 1
    }
    fatalError("'\(needle)' not found in \(text)")
}

/// Opens in-memory bytes, returning the error (nil if accepted).
func openError(_ bytes: [UInt8]) -> SafetensorsError? {
    do {
        _ = try SafetensorsFile(bytes: bytes)
        return nil
    } catch {
        return error
    }
}

/// Hex string → bytes.
func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count, by: 2).map { i in
        UInt8(String(decoding: digits[i ..< i + 2], as: UTF8.self), radix: 16)!
    }
}

/// The reference fixture's dump (written by Tools/scripts/gen_safetensors_fixtures.py).
struct ReferenceDump {
    struct Tensor {
        var name: String
        var dtype: String
        var shape: [Int]
        var dataOffsets: [Int]
        var data: [UInt8]
        var floatBits: [UInt32]?
    }

    var headerLength: Int
    var fileSize: Int
    var metadata: [String: String]
    var tensors: [Tensor]

    static func load() throws -> ReferenceDump {
        let json = try JSON.parse(try readFile(TestSupport.fixture("safetensors/reference.json")))
        func ints(_ value: JSONValue?) -> [Int] { value?.arrayValue?.map { Int($0.intValue!) } ?? [] }
        var metadata: [String: String] = [:]
        for (key, value) in json["metadata"]?.objectValue ?? [:] { metadata[key] = value.stringValue }
        let tensors = (json["tensors"]?.arrayValue ?? []).map { t in
            Tensor(name: t["name"]!.stringValue!, dtype: t["dtype"]!.stringValue!, shape: ints(t["shape"]),
                   dataOffsets: ints(t["data_offsets"]), data: bytes(hex: t["hex"]!.stringValue!),
                   floatBits: t["float_bits"].map { ints($0).map { UInt32($0) } })
        }
        return ReferenceDump(headerLength: Int(json["header_length"]!.intValue!), fileSize: Int(json["file_size"]!.intValue!),
                             metadata: metadata, tensors: tensors)
    }
}

import TestSupport
