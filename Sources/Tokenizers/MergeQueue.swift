/// A binary min-heap: `pop()` returns the smallest element by `<`.
///
/// The merge candidates of both tokenizers are ordered so that "smaller" means "merge first".
struct MergeQueue<Element: Comparable> {
    private var storage: [Element] = []

    var isEmpty: Bool { storage.isEmpty }

    mutating func removeAll() { storage.removeAll(keepingCapacity: true) }

    mutating func push(_ element: Element) {
        storage.append(element)
        var child = storage.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if !(storage[child] < storage[parent]) { break }
            storage.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Element? {
        guard let last = storage.popLast() else { return nil }
        if storage.isEmpty { return last }
        let top = storage[0]
        storage[0] = last
        var parent = 0
        let count = storage.count
        while true {
            let left = 2 * parent + 1
            if left >= count { break }
            var smallest = left
            let right = left + 1
            if right < count && storage[right] < storage[left] { smallest = right }
            if !(storage[smallest] < storage[parent]) { break }
            storage.swapAt(smallest, parent)
            parent = smallest
        }
        return top
    }
}

/// A symbol of the word being merged: a contiguous run of the word's bytes, linked to its live
/// neighbours. A symbol merged into its left neighbour becomes empty (`length == 0`).
struct MergeSymbol {
    var start: Int32
    var length: Int32
    var previous: Int32
    var next: Int32
    /// The token whose text the symbol spells, or -1.
    var token: Int32
}
