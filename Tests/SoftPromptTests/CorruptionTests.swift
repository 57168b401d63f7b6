import CZstd
@testable import SoftPrompt
import TensorIO
import Testing
import TestSupport

/// One file built from bytes per rule of Formats/sprompt.md, each breaking exactly that rule.
enum Corruption: String, CaseIterable, Sendable {
    case badMagic, unsupportedVersion, reservedFlags
    case truncatedHeader, truncatedMetadata, truncatedPayload, trailingBytes
    case metadataTooLarge, payloadTooLarge, storedPayloadTooLarge, decompressionBomb
    case headerChecksumMismatch, invalidJSON, metadataNotObject, invalidUTF8, duplicateKey, duplicateNestedKey
    case missingKey, missingPromptKey, unknownKey, unknownPromptKey
    case wrongTypeShape, floatForInteger, wrongTypeProvenance
    case unknownDType, unknownCompression, unknownFilter, unknownPlacement, malformedHash, negativeOffset
    case noPrompts, duplicatePromptName, emptyPromptName, controlCharacterInName
    case zeroDimension, threeDimensions, shapeOverflow, widthMismatch, mixedWidths
    case offsetGap, lengthMismatch, payloadSizeMismatch
    case notAFrame, frameWithoutContentSize, frameSizeLies, frameFollowedByJunk, truncatedFrame, corruptBlock
    case payloadChecksumMismatch, templateWithoutInput

    var expected: SpromptError.Kind {
        switch self {
        case .badMagic: .badMagic
        case .unsupportedVersion: .unsupportedVersion
        case .reservedFlags: .reservedFlags
        case .truncatedHeader, .truncatedMetadata, .truncatedPayload: .truncated
        case .trailingBytes: .trailingBytes
        case .metadataTooLarge: .metadataTooLarge
        case .payloadTooLarge, .storedPayloadTooLarge: .payloadTooLarge
        case .decompressionBomb: .decompressionBomb
        case .headerChecksumMismatch: .headerChecksumMismatch
        case .invalidJSON, .metadataNotObject, .invalidUTF8: .invalidJSON
        case .duplicateKey, .duplicateNestedKey: .duplicateKey
        case .missingKey, .missingPromptKey: .missingKey
        case .unknownKey, .unknownPromptKey: .unknownKey
        case .wrongTypeShape, .floatForInteger, .wrongTypeProvenance: .wrongType
        case .unknownDType, .unknownCompression, .unknownFilter, .unknownPlacement, .malformedHash, .negativeOffset: .invalidValue
        case .noPrompts: .noPrompts
        case .duplicatePromptName: .duplicatePromptName
        case .emptyPromptName, .controlCharacterInName: .invalidPromptName
        case .zeroDimension, .threeDimensions, .shapeOverflow: .invalidShape
        case .widthMismatch, .mixedWidths: .widthMismatch
        case .offsetGap, .lengthMismatch: .promptLayout
        case .payloadSizeMismatch: .payloadSizeMismatch
        case .notAFrame, .frameWithoutContentSize: .invalidFrame
        case .frameSizeLies: .frameSizeMismatch
        case .frameFollowedByJunk, .truncatedFrame: .frameLengthMismatch
        case .corruptBlock: .decompressionFailed
        case .payloadChecksumMismatch: .payloadChecksumMismatch
        case .templateWithoutInput: .invalidTemplate
        }
    }

    func bytes() -> [UInt8] {
        var b = FileBuilder()
        switch self {
        case .badMagic: b.magic[1] = UInt8(ascii: "X")
        case .unsupportedVersion: b.version = 2
        case .reservedFlags: b.flags = 1
        case .truncatedHeader: return Array(b.bytes().prefix(40))
        case .truncatedMetadata: return Array(b.bytes().prefix(72 + b.metadataBytes().count / 2))
        case .truncatedPayload: return Array(b.bytes().dropLast(3))
        case .trailingBytes: b.trailing = [0]
        case .metadataTooLarge:
            var out = b.bytes()
            withUnsafeBytes(of: UInt64(PromptFile.maxMetadataSize + 1).littleEndian) { out.replaceSubrange(16 ..< 24, with: $0) }
            return out
        case .payloadTooLarge: b.payloadSizeOverride = UInt64(PromptFile.maxPayloadSize + 1)
        case .storedPayloadTooLarge: b.storedSizeOverride = 1 << 40
        case .decompressionBomb:
            // A 1 GB prompt, consistently declared, in a ~40-byte frame: refused before any allocation.
            let big = 1_000_000_000
            b.editPrompt { $0["shape"] = [1000, 250_000]; $0["length"] = .int(Int64(big)) }
            b.top["model"] = nil
            b.payloadSizeOverride = UInt64(big)
            b.frameOverride = zstdFrame(declaring: big)
        case .headerChecksumMismatch: b.fixChecksum = false
        case .invalidJSON: b.metadataOverride = Array("{\"compression\":\"zstd\",".utf8)
        case .metadataNotObject: b.metadataOverride = Array("[1,2]".utf8)
        case .invalidUTF8: b.metadataOverride = [UInt8(ascii: "\""), 0xC0, 0xAF, UInt8(ascii: "\"")]
        case .duplicateKey:
            var text = String(decoding: b.metadataBytes(), as: UTF8.self)
            text.insert(contentsOf: "\"filter\":\"none\",", at: text.index(after: text.startIndex))
            b.metadataOverride = Array(text.utf8)
        case .duplicateNestedKey:
            let text = String(decoding: b.metadataBytes(), as: UTF8.self)
            b.metadataOverride = Array(text.replacingFirst("\"name\":\"a\"", with: "\"name\":\"a\",\"name\":\"b\"").utf8)
        case .missingKey: b.top["payload_sha256"] = nil
        case .missingPromptKey: b.editPrompt { $0["placement"] = nil }
        case .unknownKey: b.top["comment"] = "hi"
        case .unknownPromptKey: b.editPrompt { $0["bias"] = 0 }
        case .wrongTypeShape: b.editPrompt { $0["shape"] = "2x64" }
        case .floatForInteger: b.editPrompt { $0["offset"] = .double(0) }
        case .wrongTypeProvenance: b.editPrompt { $0["provenance"] = ["a", "b"] }
        case .unknownDType: b.editPrompt { $0["dtype"] = "f64" }
        case .unknownCompression: b.top["compression"] = "lz4"
        case .unknownFilter: b.top["filter"] = "bitshuffle"
        case .unknownPlacement: b.editPrompt { $0["placement"] = "suffix" }
        case .malformedHash: b.top["payload_sha256"] = .string(String(repeating: "AB", count: 32))
        case .negativeOffset: b.editPrompt { $0["offset"] = -1 }
        case .noPrompts: b.top["prompts"] = []
        case .duplicatePromptName:
            b.editPrompt { $0["shape"] = [1, 64]; $0["length"] = 256 }
            var prompts = b.top["prompts"]!.arrayValue!
            var second = prompts[0].objectValue!
            second["offset"] = 256
            prompts.append(.object(second))
            b.top["prompts"] = .array(prompts)
        case .emptyPromptName: b.editPrompt { $0["name"] = "" }
        case .controlCharacterInName: b.editPrompt { $0["name"] = "a\nb" }
        case .zeroDimension: b.editPrompt { $0["shape"] = [0, 64] }
        case .threeDimensions: b.editPrompt { $0["shape"] = [2, 8, 8] }
        case .shapeOverflow: b.editPrompt { $0["shape"] = [1_048_576, 1_048_576] }
        case .widthMismatch:
            var model = b.top["model"]!.objectValue!
            model["embedding_length"] = 32
            b.top["model"] = .object(model)
        case .mixedWidths:
            b.top["model"] = nil
            b.editPrompt { $0["shape"] = [4, 32] }
            var prompts = b.top["prompts"]!.arrayValue!
            var second = prompts[0].objectValue!
            second["name"] = "b"; second["shape"] = [2, 64]; second["offset"] = 512
            prompts.append(.object(second))
            b.top["prompts"] = .array(prompts)
            b.setPayload(b.payload + b.payload)
        case .offsetGap: b.editPrompt { $0["offset"] = 4 }
        case .lengthMismatch: b.editPrompt { $0["length"] = 511 }
        case .payloadSizeMismatch:
            b.setPayload(b.payload + [0, 0, 0, 0])
        case .notAFrame: b.frameOverride = Array("this is not zstd".utf8)
        case .frameWithoutContentSize: b.frameOverride = zstdFrame(b.payload, contentSize: false)
        case .frameSizeLies: b.frameOverride = zstdFrame(b.payload + [1, 2, 3, 4])
        case .frameFollowedByJunk: b.frameOverride = zstdFrame(b.payload) + [0, 0, 0, 0]
        case .truncatedFrame: b.frameOverride = Array(zstdFrame(b.payload).dropLast(2))
        case .corruptBlock:
            // A well-formed frame (content size 512, one last compressed block of 4 bytes) whose block
            // content is garbage: the frame walks, decompression fails.
            var frame: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0xA0]
            withUnsafeBytes(of: UInt32(b.payload.count).littleEndian) { frame += $0 }
            let blockHeader = UInt32(1 | 2 << 1 | 4 << 3)
            frame += [UInt8(blockHeader & 0xFF), UInt8(blockHeader >> 8 & 0xFF), UInt8(blockHeader >> 16 & 0xFF)]
            frame += [0xFF, 0xFF, 0xFF, 0xFF]
            b.frameOverride = frame
        case .payloadChecksumMismatch: b.top["payload_sha256"] = .string(String(repeating: "0", count: 64))
        case .templateWithoutInput: b.editPrompt { $0["template"] = "Q: {text}" }
        }
        return b.bytes()
    }
}

/// A zstd frame of `payload` (level 3), optionally without the content size in its header.
func zstdFrame(_ payload: [UInt8], contentSize: Bool = true) -> [UInt8] {
    let context = ZSTD_createCCtx()!
    defer { ZSTD_freeCCtx(context) }
    _ = ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, contentSize ? 1 : 0)
    var out = [UInt8](repeating: 0, count: ZSTD_compressBound(payload.count))
    let n = payload.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { ZSTD_compress2(context, $0.baseAddress, $0.count, src.baseAddress, src.count) }
    }
    precondition(ZSTD_isError(n) == 0)
    return Array(out.prefix(n))
}

/// A 13-byte zstd frame whose header declares `size` bytes of content (single segment, 4-byte
/// Frame_Content_Size) followed by one last RLE block of 128 KiB: a decompression bomb that lies.
func zstdFrame(declaring size: Int) -> [UInt8] {
    var frame: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD, 0xA0]   // magic; descriptor: FCS 4 bytes, single segment
    withUnsafeBytes(of: UInt32(size).littleEndian) { frame += $0 }
    let blockHeader = UInt32(1 | 1 << 1 | (128 * 1024) << 3)  // last block, RLE, 131072 bytes
    frame += [UInt8(blockHeader & 0xFF), UInt8(blockHeader >> 8 & 0xFF), UInt8(blockHeader >> 16 & 0xFF), 0]
    return frame
}

extension String {
    /// Replaces the first occurrence of `target` (by UTF-8 bytes).
    func replacingFirst(_ target: String, with replacement: String) -> String {
        let bytes = Array(utf8), t = Array(target.utf8)
        guard t.count <= bytes.count else { return self }
        for start in 0 ... bytes.count - t.count where Array(bytes[start ..< start + t.count]) == t {
            return String(decoding: bytes[..<start] + Array(replacement.utf8) + bytes[(start + t.count)...], as: UTF8.self)
        }
        return self
    }
}

struct CorruptionTests {
    @Test func theBombFrameDeclaresOneGigabyte() {
        let frame = zstdFrame(declaring: 1_000_000_000)
        #expect(frame.count == 13)
        #expect(frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, $0.count) } == 1_000_000_000)
    }

    @Test func theBaseFileIsValid() throws {
        let file = try PromptFile.decode(FileBuilder().bytes())
        #expect(file.prompts.count == 1)
        #expect(file.prompts[0].vectors == randomVectors(128, seed: 7))
    }

    /// Set SPROMPT_CORRUPT_OUT=DIR to also write each file there, for
    /// `gen_sprompt_golden.py --check-corruptions DIR` (the Python reader must refuse each with the same kind).
    @Test(arguments: Corruption.allCases) func eachRuleHasItsError(corruption: Corruption) throws {
        let bytes = corruption.bytes()
        if let out = environmentValue("SPROMPT_CORRUPT_OUT") {
            try AtomicFile.write(to: "\(out)/\(corruption.rawValue).\(corruption.expected.rawValue).sprompt", bytes: bytes)
        }
        do {
            let file = try PromptFile.decode(bytes)
            Issue.record("\(corruption) was accepted: \(file.prompts.map(\.name))")
        } catch {
            #expect(error.kind == corruption.expected, "\(corruption): \(error)")
        }
    }

    /// Every rule in the spec's error table is exercised by at least one corruption (writer-only and
    /// API kinds aside).
    @Test func everyReaderKindIsCovered() {
        let covered = Set(Corruption.allCases.map(\.expected))
        let writerOnly: Set<SpromptError.Kind> = [.nonFiniteValue, .vectorCountMismatch, .promptNotFound, .modelMismatch, .io]
        for kind in SpromptError.Kind.allCases where !writerOnly.contains(kind) {
            #expect(covered.contains(kind), "no corruption for \(kind)")
        }
    }

    /// The Python reader (gen_sprompt_golden.py --check-corruptions) refused every corrupt file with the
    /// same kind (Formats/golden/corruptions-python.json).
    @Test func pythonRefusesEachCorruptionTheSameWay() throws {
        let record = try JSON.parse(try readFile(TestSupport.formats("golden/corruptions-python.json")))
        #expect(record["disagreements"]?.intValue == 0)
        for corruption in Corruption.allCases {
            let entry = record["results"]?[corruption.rawValue]
            #expect(entry?["expected"]?.stringValue == corruption.expected.rawValue, "\(corruption) not recorded")
            #expect(entry?["python"]?.stringValue == corruption.expected.rawValue, "\(corruption)")
        }
    }

    /// Cutting a valid file anywhere gives `truncated` (never a crash or another error).
    @Test func truncatedAtEveryByte() throws {
        let bytes = FileBuilder().bytes()
        for length in 0 ..< bytes.count {
            do {
                _ = try PromptFile.decode(Array(bytes.prefix(length)))
                Issue.record("a file cut at \(length) bytes was accepted")
            } catch {
                #expect(error.kind == .truncated, "cut at \(length): \(error)")
            }
        }
    }

    /// Flipping any single bit is detected (checksums cover the header, metadata and payload).
    @Test func everySingleBitFlipIsRefused() throws {
        let bytes = FileBuilder().bytes()
        for index in bytes.indices {
            for bit in [0, 5] {
                var damaged = bytes
                damaged[index] ^= 1 << bit
                #expect(throws: SpromptError.self, "bit \(bit) of byte \(index)") { try PromptFile.decode(damaged) }
            }
        }
    }

    /// The reader accepts NaN and infinities in a file (and reports them); the writer refuses them.
    @Test func nonFiniteValuesAreReadAndCounted() throws {
        var b = FileBuilder()
        var values = randomVectors(128, seed: 7)
        values[3] = .nan
        values[100] = -.infinity
        var bytes: [UInt8] = []
        PayloadCodec.encode(values, as: .f32, into: &bytes)
        b.setPayload(bytes)
        let file = try PromptFile.decode(b.bytes())
        #expect(file.prompts[0].nonFiniteCount == 2)
        #expect(file.prompts[0].vectors[3].isNaN)
        #expect(throws: SpromptError.self) { try file.encode() }
    }

    @Test func errorsCarryOffsetAndPath() throws {
        let path = try TestSupport.temporaryFile(Corruption.unsupportedVersion.bytes(), name: "v2.sprompt")
        do {
            _ = try PromptFile.read(path: path)
            Issue.record("accepted")
        } catch {
            #expect(error.kind == .unsupportedVersion)
            #expect(error.offset == 8)
            #expect(error.path == path)
            #expect(error.description.hasPrefix(path + ": at byte 8: "))
        }
    }
}
