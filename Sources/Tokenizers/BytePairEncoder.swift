/// Byte-level BPE over one pre-tokenized word, with llama.cpp's merge order.
///
/// A word starts as one symbol per UTF-8 byte (each byte spelled by its `ByteLevel` code point).
/// The adjacent pair with the lowest merge rank is merged first, the leftmost one among equal ranks,
/// until no adjacent pair has a merge. Merges are looked up by the token ids of the pair, which the
/// vocabulary validation makes equivalent to llama.cpp's lookup by text.
struct BytePairEncoder: Sendable {
    struct Merge: Sendable {
        let rank: Int32
        let result: Int32
    }

    /// `left << 32 | right` (token ids) → rank and merged token.
    private let merges: [UInt64: Merge]
    /// The token spelling each byte's code point alone, or -1.
    private let byteTokens: [Int32]
    /// A word that is a token as a whole is emitted without merging (Llama 3 style).
    private let ignoreMerges: Bool

    /// - Throws: `TokenizerError.malformedMerge` or `.mergeOutsideVocabulary`.
    init(merges list: [String], ids: TokenTable, ignoreMerges: Bool) throws(TokenizerError) {
        var table: [UInt64: Merge] = [:]
        table.reserveCapacity(list.count)
        for (index, merge) in list.enumerated() {
            // llama.cpp splits at the first space after the first byte.
            var bytes = Array(merge.utf8)
            guard bytes.count >= 3, let split = bytes[1...].firstIndex(of: 0x20), split + 1 < bytes.count else {
                throw .malformedMerge(index: index, merge: merge)
            }
            let left = bytes[..<split], right = bytes[(split + 1)...]
            guard let leftID = ids.id(left) else {
                throw .mergeOutsideVocabulary(index: index, merge: merge, missing: String(decoding: left, as: UTF8.self))
            }
            guard let rightID = ids.id(right) else {
                throw .mergeOutsideVocabulary(index: index, merge: merge, missing: String(decoding: right, as: UTF8.self))
            }
            bytes.remove(at: split)
            guard let resultID = ids.id(bytes[...]) else {
                throw .mergeOutsideVocabulary(index: index, merge: merge, missing: String(decoding: bytes, as: UTF8.self))
            }
            let key = Self.key(leftID, rightID)
            if table[key] == nil {  // the first rank wins, as with llama.cpp's map emplace
                table[key] = Merge(rank: Int32(truncatingIfNeeded: index), result: resultID)
            }
        }
        merges = table
        byteTokens = ByteLevel.utf8ForByte.map { ids.id($0[...]) ?? -1 }
        self.ignoreMerges = ignoreMerges
    }

    @inline(__always) private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    fileprivate struct Candidate: Comparable {
        var rank: Int32
        var left: Int32
        var right: Int32
        var leftToken: Int32
        var rightToken: Int32
        var result: Int32

        static func < (a: Candidate, b: Candidate) -> Bool {
            a.rank != b.rank ? a.rank < b.rank : a.left < b.left
        }
        static func == (a: Candidate, b: Candidate) -> Bool { a.rank == b.rank && a.left == b.left }
    }

    /// Reusable buffers for `encode`.
    struct Scratch {
        fileprivate var symbols: [MergeSymbol] = []
        fileprivate var queue = MergeQueue<Candidate>()
        init() {}
    }

    /// Appends the tokens of `word` (raw UTF-8 bytes of one pre-tokenized word) to `output`.
    func encode(word: ArraySlice<UInt8>, ids: TokenTable, scratch: inout Scratch, into output: inout [Int32]) {
        if word.isEmpty { return }
        if ignoreMerges {
            var spelled: [UInt8] = []
            spelled.reserveCapacity(word.count * 2)
            for byte in word { spelled += ByteLevel.utf8ForByte[Int(byte)] }
            if let id = ids.id(spelled[...]) {
                output.append(id)
                return
            }
        }
        if word.count == 1 {
            let token = byteTokens[Int(word.first!)]
            if token >= 0 { output.append(token) }
            return
        }
        var symbols = scratch.symbols
        var queue = scratch.queue
        symbols.removeAll(keepingCapacity: true)
        queue.removeAll()
        defer {
            scratch.symbols = symbols
            scratch.queue = queue
        }
        let count = word.count
        var index = 0
        for byte in word {
            symbols.append(MergeSymbol(start: Int32(index), length: 1, previous: Int32(index - 1),
                                       next: index + 1 == count ? -1 : Int32(index + 1), token: byteTokens[Int(byte)]))
            index += 1
        }

        func consider(_ left: Int32, _ right: Int32) {
            if left < 0 || right < 0 { return }
            let a = symbols[Int(left)].token, b = symbols[Int(right)].token
            if a < 0 || b < 0 { return }
            if let merge = merges[Self.key(a, b)] {
                queue.push(Candidate(rank: merge.rank, left: left, right: right, leftToken: a, rightToken: b,
                                     result: merge.result))
            }
        }

        for i in 1 ..< count { consider(Int32(i - 1), Int32(i)) }

        while let candidate = queue.pop() {
            let l = Int(candidate.left), r = Int(candidate.right)
            // Skip candidates made stale by an earlier merge (llama.cpp compares texts; a live symbol
            // with an unchanged token has an unchanged text).
            if symbols[l].length == 0 || symbols[r].length == 0
                || symbols[l].token != candidate.leftToken || symbols[r].token != candidate.rightToken {
                continue
            }
            symbols[l].length += symbols[r].length
            symbols[l].token = candidate.result
            symbols[r].length = 0
            symbols[l].next = symbols[r].next
            if symbols[r].next >= 0 { symbols[Int(symbols[r].next)].previous = candidate.left }
            consider(symbols[l].previous, candidate.left)
            consider(candidate.left, symbols[l].next)
        }

        for symbol in symbols where symbol.length > 0 {
            // A byte whose code point is not a token has no byte fallback in a byte-level vocabulary:
            // llama.cpp then tries each raw byte as a token text, which never matches a string token
            // in the GPT-2 alphabet, and drops it.
            if symbol.token >= 0 { output.append(symbol.token) }
        }
    }
}
