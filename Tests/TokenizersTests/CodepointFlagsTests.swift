import Testing
import TensorIO
import TestSupport
@testable import Tokenizers

/// The character classes the pre-tokenizers use, against llama.cpp's compiled table
/// (`unicode-data.cpp`, Unicode 15.1, copied into `unicode_flags.txt` by the fixture generator).
@Suite struct CodepointFlagsTests {
    struct Table {
        var rangeStarts: [UInt32] = []
        var rangeFlags: [UInt16] = []
        var whitespace: Set<UInt32> = []
    }

    static func llamaTable() throws -> Table {
        let text = String(decoding: try readFile(TokenizerFixtures.path("unicode_flags.txt")), as: UTF8.self)
        var table = Table()
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ")
            if fields.first == "whitespace" {
                table.whitespace = Set(fields.dropFirst().map { UInt32($0, radix: 16)! })
            } else {
                table.rangeStarts.append(UInt32(fields[0], radix: 16)!)
                table.rangeFlags.append(UInt16(fields[1], radix: 16)!)
            }
        }
        return table
    }

    @Test func everyCodePointMatchesLlamaCpp() throws {
        let table = try Self.llamaTable()
        #expect(table.rangeStarts.first == 0 && table.rangeStarts.last == 0x110000)
        #expect(table.whitespace.count == 25)
        var mismatches: [UInt32] = []
        for range in 0 ..< table.rangeStarts.count - 1 {
            let expectedCategory = table.rangeFlags[range]
            for value in table.rangeStarts[range] ..< table.rangeStarts[range + 1] {
                let flags = CodepointFlags.of(value)
                let expected = expectedCategory | (table.whitespace.contains(value) ? CodepointFlags.whitespace.rawValue : 0)
                if flags.rawValue != expected { mismatches.append(value) }
            }
        }
        let count = mismatches.count
        let first = mismatches.prefix(10).map { String($0, radix: 16) }
        #expect(count == 0, "\(count) code points differ, first \(first)")
    }

    @Test func spotChecks() {
        #expect(CodepointFlags.of(0x41) == .letter)
        #expect(CodepointFlags.of(0x20) == [.separator, .whitespace])
        #expect(CodepointFlags.of(0x0A) == [.control, .whitespace])
        #expect(CodepointFlags.of(0x0661) == .number)  // Arabic-Indic digit one
        #expect(CodepointFlags.of(0x0301) == .mark)
        #expect(CodepointFlags.of(0x3000) == [.separator, .whitespace])
        #expect(CodepointFlags.of(0x1F600) == .symbol)
        #expect(CodepointFlags.of(0xE000) == .control)  // private use
        #expect(CodepointFlags.of(0x0378) == .undefined)
        #expect(CodepointFlags.of(0x1C89) == .undefined)  // assigned in Unicode 16, unknown to llama.cpp
        #expect(CodepointFlags.of(0xD800) == .control)  // surrogate (never in a Swift string)
        #expect(CodepointFlags.of(0x110000) == .undefined)
    }
}
