/// SentencePiece-style tokenization of one text fragment, with llama.cpp's merge order.
///
/// The fragment (spaces already replaced by `▁`) starts as one symbol per UTF-8 character. Any
/// adjacent pair whose concatenation is a token is a candidate; the candidate whose token has the
/// highest score is merged first, the leftmost one among equal scores. Symbols that end up not being
/// tokens are emitted as byte tokens (`<0xXX>`), one per UTF-8 byte.
struct SentencePieceEncoder: Sendable {
    /// The token for each byte value (`<0xXX>`, else the one-byte text), or -1.
    let byteTokens: [Int32]
    private let scores: [Float]

    init(ids: TokenTable, scores: [Float]) {
        let hex = Array("0123456789ABCDEF".utf8)
        byteTokens = (0 ..< 256).map { byte in
            let name: [UInt8] = [0x3C, 0x30, 0x78, hex[byte >> 4], hex[byte & 15], 0x3E]
            if let id = ids.id(name[...]) { return id }
            // llama.cpp then tries the byte itself as a text, which only a string token < 0x80 can be.
            if byte < 0x80, let id = ids.id([UInt8(byte)][...]) { return id }
            return -1
        }
        self.scores = scores
    }

    private struct Candidate: Comparable {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32

        /// Higher score first, then the leftmost pair.
        static func < (a: Candidate, b: Candidate) -> Bool {
            if a.score > b.score { return true }
            if a.score < b.score { return false }
            return a.left < b.left
        }
        static func == (a: Candidate, b: Candidate) -> Bool { a.score == b.score && a.left == b.left }
    }

    /// Appends the tokens of `text` (escaped UTF-8) to `output`; bytes without a byte token become
    /// `unknown` when there is one (llama.cpp aborts in that case).
    func encode(text: [UInt8], ids: TokenTable, unknown: Int32?, into output: inout [Int32]) {
        if text.isEmpty { return }
        var symbols: [MergeSymbol] = []
        symbols.reserveCapacity(text.count)
        var offset = 0
        while offset < text.count {
            let length = min(utf8SequenceLength(text[offset]), text.count - offset)
            let index = Int32(symbols.count)
            symbols.append(MergeSymbol(start: Int32(offset), length: Int32(length), previous: index - 1,
                                       next: offset + length == text.count ? -1 : index + 1, token: -1))
            offset += length
        }

        var queue = MergeQueue<Candidate>()
        func consider(_ left: Int32, _ right: Int32) {
            if left < 0 || right < 0 { return }
            let start = Int(symbols[Int(left)].start)
            let size = Int(symbols[Int(left)].length + symbols[Int(right)].length)
            guard let id = ids.id(text[start ..< start + size]) else { return }
            queue.push(Candidate(score: scores[Int(id)], left: left, right: right, size: Int32(size)))
        }
        for i in 1 ..< symbols.count { consider(Int32(i - 1), Int32(i)) }

        while let candidate = queue.pop() {
            let l = Int(candidate.left), r = Int(candidate.right)
            let leftLength = symbols[l].length, rightLength = symbols[r].length
            if leftLength == 0 || rightLength == 0 || leftLength + rightLength != candidate.size { continue }
            symbols[l].length += rightLength
            symbols[r].length = 0
            symbols[l].next = symbols[r].next
            if symbols[r].next >= 0 { symbols[Int(symbols[r].next)].previous = candidate.left }
            consider(symbols[l].previous, candidate.left)
            consider(candidate.left, symbols[l].next)
        }

        var i: Int32 = 0
        while i != -1 {
            let symbol = symbols[Int(i)]
            let start = Int(symbol.start), end = start + Int(symbol.length)
            if let id = ids.id(text[start ..< end]) {
                output.append(id)
            } else {
                for byte in text[start ..< end] {
                    let token = byteTokens[Int(byte)]
                    if token >= 0 {
                        output.append(token)
                    } else if let unknown {
                        output.append(unknown)
                    }
                }
            }
            i = symbol.next
        }
    }
}

/// The length of the UTF-8 sequence a lead byte announces (continuation bytes count as 1), as
/// llama.cpp's `unicode_len_utf8` computes it.
@inline(__always) func utf8SequenceLength(_ lead: UInt8) -> Int {
    switch lead >> 4 {
    case 0xC, 0xD: return 2
    case 0xE: return 3
    case 0xF: return 4
    default: return 1
    }
}
