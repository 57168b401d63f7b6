#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from the operating system while opening, mapping, reading or writing a file.
public struct FileError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What we were doing: "open", "mmap", "write", "rename", ...
    public var operation: String
    /// The file concerned.
    public var path: String
    /// The `errno` value, or 0 when the failure is not an OS error.
    public var errno: Int32
    /// Extra detail for failures that are not an OS error.
    public var detail: String

    public init(operation: String, path: String, errno: Int32, detail: String = "") {
        self.operation = operation
        self.path = path
        self.errno = errno
        self.detail = detail
    }

    public var description: String { "\(path): \(reason)" }

    /// The description without the path, for messages that name the file already.
    public var reason: String {
        var text = "\(operation) failed"
        if errno != 0, let message = strerror(errno) {
            text += ": \(String(cString: message))"
        }
        if !detail.isEmpty { text += ": \(detail)" }
        return text
    }

    /// `error`'s reason when it is a `FileError` about `path`, else its description.
    public static func reason(_ error: any Error, about path: String) -> String {
        if let error = error as? FileError, error.path == path { return error.reason }
        return "\(error)"
    }
}

/// A whole file mapped read-only into memory.
///
/// The mapping is private and read-only, so nothing reachable through it can modify the file: the
/// base model is frozen by construction. No byte is read from disk until it is touched.
public final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is immutable after init and unmapped only in deinit.

    /// The path the file was opened from.
    public let path: String
    /// The mapped bytes (empty for an empty file).
    public let bytes: UnsafeRawBufferPointer

    /// Maps the file at `path`.
    /// - Throws: `FileError` if the file cannot be opened, is not a regular file, or cannot be mapped.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw FileError(operation: "open", path: path, errno: errnoValue()) }
        defer { close(fd) }
        var info = stat()
        if fstat(fd, &info) != 0 { throw FileError(operation: "stat", path: path, errno: errnoValue()) }
        if (info.st_mode & S_IFMT) != S_IFREG {
            throw FileError(operation: "open", path: path, errno: 0, detail: "not a regular file")
        }
        let size = Int(info.st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw FileError(operation: "mmap", path: path, errno: errnoValue())
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }

    /// The size of the file in bytes.
    public var count: Int { bytes.count }

    /// Tells the kernel we will read the range soon (read-ahead); a hint only.
    public func willNeed(offset: Int, count: Int) {
        guard let base = bytes.baseAddress, count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        let end = min(bytes.count, offset + count)
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_WILLNEED)
    }
}

@inline(__always) func errnoValue() -> Int32 {
    #if canImport(Glibc)
    return Glibc.errno
    #elseif canImport(Musl)
    return Musl.errno
    #else
    return Darwin.errno
    #endif
}

/// Reads a whole (small) file into memory, refusing files larger than `limit` bytes.
/// - Throws: `FileError` when the file cannot be read or exceeds `limit`.
public func readFile(_ path: String, limit: Int = 1 << 30) throws -> [UInt8] {
    let file = try MappedFile(path: path)
    if file.count > limit {
        throw FileError(operation: "read", path: path, errno: 0,
                        detail: "file is \(file.count) bytes, more than the \(limit)-byte limit")
    }
    return Array(file.bytes)
}

/// Whether `path` names an existing file or directory.
public func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
}

/// Whether `path` names an existing directory.
public func isDirectory(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
}

/// The value of an environment variable, or nil when unset or empty.
public func environmentValue(_ name: String) -> String? {
    guard let raw = getenv(name) else { return nil }
    let value = String(cString: raw)
    return value.isEmpty ? nil : value
}

/// The names in a directory (without "." and ".."), sorted.
/// - Throws: `FileError` when the directory cannot be read.
public func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw FileError(operation: "opendir", path: path, errno: errnoValue()) }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}
