/// Token texts and a hash index from exact UTF-8 bytes to token id.
///
/// Swift `String` equality is canonical equivalence (`"é" == "e\u{301}"`), but llama.cpp compares
/// token texts byte for byte; a `[String: Int32]` dictionary would therefore find tokens llama.cpp
/// does not. This table compares bytes only, and looks up slices without copying them.
struct TokenTable: Sendable {
    /// All token texts, concatenated.
    private let storage: [UInt8]
    /// `offsets[i] ..< offsets[i + 1]` is the text of token `i`.
    private let offsets: [Int]
    /// Open addressing, linear probing; -1 marks an empty slot.
    private let slots: [Int32]
    private let mask: Int

    var count: Int { offsets.count - 1 }

    /// Indexes `texts`.
    /// - Throws: `TokenizerError.duplicateToken` when two texts have the same bytes.
    init(_ texts: [String]) throws(TokenizerError) {
        var storage: [UInt8] = []
        var offsets: [Int] = [0]
        offsets.reserveCapacity(texts.count + 1)
        for text in texts {
            storage += text.utf8
            offsets.append(storage.count)
        }
        var capacity = 16
        while capacity < texts.count * 2 { capacity <<= 1 }
        var slots = [Int32](repeating: -1, count: capacity)
        let mask = capacity - 1
        for id in 0 ..< texts.count {
            let start = offsets[id], end = offsets[id + 1]
            var slot = Int(truncatingIfNeeded: Self.hash(storage[start ..< end])) & mask
            while slots[slot] >= 0 {
                let other = Int(slots[slot])
                if storage[offsets[other] ..< offsets[other + 1]].elementsEqual(storage[start ..< end]) {
                    throw .duplicateToken(texts[id], firstID: Int32(other), secondID: Int32(id))
                }
                slot = (slot + 1) & mask
            }
            slots[slot] = Int32(id)
        }
        self.storage = storage
        self.offsets = offsets
        self.slots = slots
        self.mask = mask
    }

    /// FNV-1a over the bytes.
    @inline(__always) private static func hash(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        return h
    }

    /// The id of the token whose text is exactly `bytes`.
    func id(_ bytes: ArraySlice<UInt8>) -> Int32? {
        var slot = Int(truncatingIfNeeded: Self.hash(bytes)) & mask
        while true {
            let candidate = slots[slot]
            if candidate < 0 { return nil }
            let start = offsets[Int(candidate)], end = offsets[Int(candidate) + 1]
            if end - start == bytes.count && storage[start ..< end].elementsEqual(bytes) { return candidate }
            slot = (slot + 1) & mask
        }
    }

    /// The id of the token whose text has exactly the UTF-8 bytes of `text`.
    func id(_ text: String) -> Int32? { id(Array(text.utf8)[...]) }

    /// The text bytes of token `id`.
    func bytes(_ id: Int32) -> ArraySlice<UInt8> {
        storage[offsets[Int(id)] ..< offsets[Int(id) + 1]]
    }
}
