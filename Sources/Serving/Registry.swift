import Llama
import SoftPrompt
import Synchronization
import TensorIO

#if canImport(Glibc)
import Glibc
#endif

/// The tasks a server offers: the prompts of a bank file, re-read on demand (`reload`) or when the
/// file's modification time or size changes (`reloadIfChanged`).
public final class TaskRegistry: Sendable {
    /// The bank file, or nil for a server of the base model only.
    public let bankPath: String?
    public let width: Int
    private let cache: PrefixCache

    private struct State {
        var tasks: [String: ServedTask] = [:]
        var stamp: FileStamp?
        var reloads = 0
    }

    private let state = Mutex(State())

    /// What a reload changed.
    public struct Changes: Sendable, Equatable {
        public var added: [String] = []
        public var removed: [String] = []
        public var changed: [String] = []
    }

    /// Reads the bank once.
    /// - Throws: `PromptReferenceError` when the bank cannot be read, or a prompt's width is not `width`.
    public init(bankPath: String?, width: Int, cache: PrefixCache) throws {
        self.bankPath = bankPath
        self.width = width
        self.cache = cache
        _ = try reload()
    }

    /// Task names, sorted.
    public var names: [String] { state.withLock { $0.tasks.keys.sorted() } }

    public func task(_ name: String) -> ServedTask? { state.withLock { $0.tasks[name] } }

    /// Successful reloads so far (the first read counts).
    public var reloadCount: Int { state.withLock { $0.reloads } }

    /// Re-reads the bank; tasks that were removed or whose vectors changed drop their cached prefixes.
    /// On failure the tasks stay as they were.
    /// - Throws: `PromptReferenceError` when the bank cannot be read or a prompt's width does not fit the model.
    @discardableResult
    public func reload() throws -> Changes {
        guard let bankPath else { return Changes() }
        let stamp = FileStamp(path: bankPath)
        let file = try PromptReference(path: bankPath).readFile(width: width)
        var tasks: [String: ServedTask] = [:]
        for prompt in file.prompts {
            tasks[prompt.name] = ServedTask(name: prompt.name, vectors: prompt.vectors, width: width,
                                            template: prompt.template, vectorsSHA256: prompt.vectorsSHA256)
        }
        let changes = state.withLock { s -> Changes in
            var c = Changes()
            for (name, task) in tasks {
                if let old = s.tasks[name] {
                    if old.key != task.key { c.changed.append(name) }
                } else {
                    c.added.append(name)
                }
            }
            c.removed = s.tasks.keys.filter { tasks[$0] == nil }
            s.tasks = tasks
            s.stamp = stamp
            s.reloads += 1
            return c
        }
        for name in changes.removed + changes.changed { cache.remove(task: name) }
        return changes
    }

    /// Reloads when the bank's modification time or size differs from the last read.
    /// - Returns: the changes, or nil when the file looks unchanged (or cannot be read; the old tasks stay).
    public func reloadIfChanged() -> Changes? {
        guard let bankPath else { return nil }
        let stamp = FileStamp(path: bankPath)
        guard stamp != nil, stamp != state.withLock({ $0.stamp }) else { return nil }
        return try? reload()
    }
}

/// A file's modification time and size, to notice a rewrite.
struct FileStamp: Equatable, Sendable {
    var seconds: Int
    var nanoseconds: Int
    var size: Int
    var inode: UInt64

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        seconds = Int(info.st_mtim.tv_sec)
        nanoseconds = Int(info.st_mtim.tv_nsec)
        size = Int(info.st_size)
        inode = UInt64(info.st_ino)
    }
}

/// A server setup problem (bank, model, options).
public struct ServeError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
