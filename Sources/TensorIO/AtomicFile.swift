#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written to a temporary name beside its destination, then fsynced and renamed over it.
///
/// Readers of `path` see either its previous content or the complete new one, never a torn file,
/// even if the process is killed mid-write (`kill -9`, power loss after the rename's directory
/// fsync). The temporary file, `PATH.tmp-PID-RANDOM`, holds an exclusive `flock` while it is
/// written; one left behind by a killed writer is removed by the next write to the same `path`
/// (see `removeStaleTemporaries(of:)`). Use `AtomicFile.write(to:_:)`.
public final class AtomicFile {
    /// The destination path.
    public let path: String
    /// The temporary file being written.
    public let temporaryPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 20
    /// Bytes written so far (buffered ones included).
    public private(set) var bytesWritten: Int = 0

    private init(path: String) throws {
        self.path = path
        removeStaleTemporaries(of: path)
        (temporaryPath, fd) = try createLockedTemporary(beside: path) { name in
            open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
        buffer.reserveCapacity(bufferLimit)
    }

    /// Writes the file at `path` atomically: `body` receives a writer; when it returns, the data is
    /// flushed, fsynced and renamed over `path`, and the directory is fsynced. If `body` throws, the
    /// temporary file is removed and `path` is untouched.
    /// - Throws: `FileError` on any OS failure, or whatever `body` throws.
    public static func write<R>(to path: String, _ body: (AtomicFile) throws -> R) throws -> R {
        let file = try AtomicFile(path: path)
        do {
            let result = try body(file)
            try file.commit()
            return result
        } catch {
            file.abandon()
            throw error
        }
    }

    /// Convenience: atomically replaces `path` with `bytes`.
    public static func write(to path: String, bytes: some Collection<UInt8>) throws {
        try write(to: path) { try $0.write(bytes) }
    }

    /// Appends bytes.
    public func write(_ bytes: some Collection<UInt8>) throws {
        if let done = try bytes.withContiguousStorageIfAvailable({ try write(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        try write(Array(bytes))
    }

    /// Appends raw bytes (large spans bypass the buffer).
    public func write(_ raw: UnsafeRawBufferPointer) throws {
        bytesWritten += raw.count
        if buffer.count + raw.count <= bufferLimit {
            buffer.append(contentsOf: raw)
            return
        }
        try flush()
        if raw.count >= bufferLimit { try writeAll(raw) } else { buffer.append(contentsOf: raw) }
    }

    /// Appends `count` zero bytes.
    public func writeZeros(_ count: Int) throws {
        if count <= 0 { return }
        try write([UInt8](repeating: 0, count: count))
    }

    /// Appends a little-endian integer.
    public func writeLE<T: FixedWidthInteger>(_ value: T) throws {
        try withUnsafeBytes(of: value.littleEndian) { try write($0) }
    }

    private func flush() throws {
        if buffer.isEmpty { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ raw: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
            if n < 0 {
                if errnoValue() == EINTR { continue }
                throw FileError(operation: "write", path: temporaryPath, errno: errnoValue())
            }
            done += n
        }
    }

    private func commit() throws {
        try flush()
        if fsync(fd) != 0 { throw FileError(operation: "fsync", path: temporaryPath, errno: errnoValue()) }
        // Renamed while still open, so the lock covers the temporary name until it disappears.
        if rename(temporaryPath, path) != 0 {
            throw FileError(operation: "rename to \(path)", path: temporaryPath, errno: errnoValue())
        }
        let closeError = close(fd) == 0 ? 0 : errnoValue()
        fd = -1
        syncDirectory(of: path)
        if closeError != 0 { throw FileError(operation: "close", path: path, errno: closeError) }
    }

    private func abandon() {
        if fd >= 0 {
            unlink(temporaryPath)
            close(fd)
            fd = -1
        }
    }

    deinit { abandon() }
}

/// fsyncs the directory holding `path` so a rename into it survives a crash (best effort).
func syncDirectory(of path: String) {
    var dir = "."
    if let slash = path.lastIndex(of: "/") {
        dir = slash == path.startIndex ? "/" : String(path[..<slash])
    }
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 { _ = fsync(dfd); close(dfd) }
}

/// Creates a directory and its parents (like `mkdir -p`).
/// - Throws: `FileError` when a component cannot be created.
public func makeDirectories(_ path: String) throws {
    var current = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        current += (current.isEmpty || current.hasSuffix("/") ? "" : "/") + part
        if mkdir(current, 0o755) != 0 && errnoValue() != EEXIST {
            throw FileError(operation: "mkdir", path: current, errno: errnoValue())
        }
    }
}
