/// GPT-2's reversible mapping of the 256 byte values onto printable code points.
///
/// Printable Latin-1 bytes (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand for themselves; the 68 others (controls,
/// space, DEL, NBSP, soft hyphen) are given the code points 256, 257, … in byte order. Byte-level BPE
/// vocabularies spell their tokens in this alphabet, so a space appears as `Ġ` (U+0120).
enum ByteLevel {
    /// The code point standing for each byte.
    static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var next: UInt32 = 256
        for byte in 0 ..< 256 {
            if isSelfMapped(byte) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = next
                next += 1
            }
        }
        return table
    }()

    /// The UTF-8 encoding of `scalarForByte`, per byte.
    static let utf8ForByte: [[UInt8]] = scalarForByte.map { Array(String(Unicode.Scalar($0)!).utf8) }

    /// The byte a code point stands for, or nil when it is outside the alphabet.
    static func byte(for scalar: UInt32) -> UInt8? {
        if scalar < 256 { return isSelfMapped(Int(scalar)) ? UInt8(scalar) : nil }
        let index = Int(scalar) - 256
        guard index < 68 else { return nil }
        return inverseOfShifted[index]
    }

    private static let inverseOfShifted: [UInt8] = (0 ..< 256).filter { !isSelfMapped($0) }.map { UInt8($0) }

    private static func isSelfMapped(_ byte: Int) -> Bool {
        (0x21 ... 0x7E).contains(byte) || (0xA1 ... 0xAC).contains(byte) || (0xAE ... 0xFF).contains(byte)
    }
}
