/// The character classes the pre-tokenizers test, one general-category group per code point plus
/// the White_Space property — the same classification llama.cpp compiles into its `unicode-data.cpp`.
///
/// llama.cpp's tables were generated from Unicode 15.1 while the Swift standard library follows a
/// newer version, so code points assigned after 15.1 are classified as unassigned here, exactly as
/// llama.cpp sees them. (`CodepointFlagsTests` compares the whole table with llama.cpp's.)
struct CodepointFlags: OptionSet, Hashable {
    let rawValue: UInt16

    static let undefined = CodepointFlags(rawValue: 0x0001)    // Cn
    static let number = CodepointFlags(rawValue: 0x0002)       // \p{N}
    static let letter = CodepointFlags(rawValue: 0x0004)       // \p{L}
    static let separator = CodepointFlags(rawValue: 0x0008)    // \p{Z}
    static let mark = CodepointFlags(rawValue: 0x0010)         // \p{M}
    static let punctuation = CodepointFlags(rawValue: 0x0020)  // \p{P}
    static let symbol = CodepointFlags(rawValue: 0x0040)       // \p{S}
    static let control = CodepointFlags(rawValue: 0x0080)      // \p{C} except Cn
    static let whitespace = CodepointFlags(rawValue: 0x0100)   // \s (White_Space)

    /// The category bits alone (without `whitespace`).
    var category: CodepointFlags { CodepointFlags(rawValue: rawValue & 0x00FF) }

    /// Flags of a position outside the text being split: no bit set at all, which is how the
    /// splitters recognise the end of a segment.
    static let outside = CodepointFlags([])

    /// The flags of code point `value` (any value; beyond U+10FFFF counts as unassigned).
    @inline(__always) static func of(_ value: UInt32) -> CodepointFlags {
        if value < 128 { return ascii[Int(value)] }
        return computeFlags(value)
    }

    private static let ascii: [CodepointFlags] = (0 ..< 128).map { computeFlags(UInt32($0)) }

    /// The last Unicode version whose assignments llama.cpp knows.
    static let unicodeVersion = (major: 15, minor: 1)

    static func computeFlags(_ value: UInt32) -> CodepointFlags {
        guard let scalar = Unicode.Scalar(value) else {
            // Surrogates are category Cs; nothing lies beyond U+10FFFF.
            return (0xD800 ... 0xDFFF).contains(value) ? .control : .undefined
        }
        let properties = scalar.properties
        var flags: CodepointFlags
        if let age = properties.age,
           age.major < unicodeVersion.major || (age.major == unicodeVersion.major && age.minor <= unicodeVersion.minor) {
            flags = category(properties.generalCategory)
        } else {
            flags = .undefined
        }
        if properties.isWhitespace { flags.insert(.whitespace) }
        return flags
    }

    private static func category(_ category: Unicode.GeneralCategory) -> CodepointFlags {
        switch category {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .nonspacingMark, .spacingMark, .enclosingMark:
            return .mark
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            return .punctuation
        case .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol:
            return .symbol
        case .spaceSeparator, .lineSeparator, .paragraphSeparator:
            return .separator
        case .control, .format, .surrogate, .privateUse:
            return .control
        case .unassigned:
            return .undefined
        @unknown default:
            return .undefined
        }
    }
}
