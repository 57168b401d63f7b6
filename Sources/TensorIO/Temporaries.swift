#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Temporaries beside a destination.
//
// Every temporary file or directory written on the way to a destination `PATH` is named
// `PATH.tmp-PID-RANDOM` and holds an exclusive `flock` for as long as its writer uses it. The lock
// dies with the process (whatever kills it), so a temporary whose lock can be taken is an orphan
// of a killed writer and can be removed safely: a live writer, even in another process or PID
// namespace, still holds its lock. On file systems without `flock` the lock cannot be taken by
// anyone, so nothing is ever removed there (orphans are left, never live files).

/// The prefix of the temporaries that belong to `path`: `PATH.tmp-`.
func temporaryPrefix(of path: String) -> String {
    var trimmed = path
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
    return trimmed + ".tmp-"
}

/// Creates a temporary beside `path` with `make` (which returns an open descriptor or -1), under a
/// fresh unique name, and locks it.
/// - Returns: The temporary's path and its open, locked descriptor.
/// - Throws: `FileError` when no temporary can be created.
func createLockedTemporary(beside path: String, _ make: (String) -> Int32) throws -> (String, Int32) {
    let prefix = temporaryPrefix(of: path)
    var attempts = 0
    while true {
        attempts += 1
        let name = prefix + "\(getpid())-" + String(UInt64.random(in: 0 ... UInt64.max), radix: 36)
        let fd = make(name)
        if fd < 0 {
            let code = errnoValue()
            if code == EEXIST && attempts < 8 { continue }
            throw FileError(operation: "create", path: name, errno: code)
        }
        // flock may be unsupported (some network file systems): then nobody can take the lock and
        // the temporary is simply never collected by `removeStaleTemporaries`.
        while flock(fd, LOCK_EX) != 0 && errnoValue() == EINTR {}
        // A collector may have removed the name between creation and locking: start again.
        var info = stat()
        if fstat(fd, &info) == 0 && info.st_nlink == 0 && attempts < 8 {
            close(fd)
            continue
        }
        return (name, fd)
    }
}

/// Removes the temporaries of `path` (`PATH.tmp-*`, files or directories) left by writers that were
/// killed: those whose `flock` can be taken. Temporaries of live writers are kept. Best effort:
/// failures are ignored.
public func removeStaleTemporaries(of path: String) {
    let prefix = temporaryPrefix(of: path)
    let directory: String
    let namePrefix: String
    if let slash = prefix.lastIndex(of: "/") {
        directory = slash == prefix.startIndex ? "/" : String(prefix[..<slash])
        namePrefix = String(prefix[prefix.index(after: slash)...])
    } else {
        directory = "."
        namePrefix = prefix
    }
    guard let names = try? listDirectory(directory) else { return }
    // This process's own temporaries are live by definition (and where flock is emulated by
    // process-owned POSIX locks, e.g. NFS, our own lock would not keep us out).
    let own = namePrefix + "\(getpid())-"
    for name in names where name.hasPrefix(namePrefix) && !name.hasPrefix(own) {
        let candidate = directory == "/" ? "/" + name : directory + "/" + name
        let fd = open(candidate, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        if fd < 0 { continue }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
        // Still the inode we locked (not replaced in between)?
        var locked = stat(), named = stat()
        guard fstat(fd, &locked) == 0, lstat(candidate, &named) == 0,
              locked.st_dev == named.st_dev, locked.st_ino == named.st_ino else { continue }
        removeTree(candidate)
    }
}

/// Removes a file, or a directory and everything below it (symbolic links are removed, not followed).
func removeTree(_ path: String, depth: Int = 0) {
    var info = stat()
    guard lstat(path, &info) == 0 else { return }
    if (info.st_mode & S_IFMT) == S_IFDIR {
        if depth < 16 {
            for name in (try? listDirectory(path)) ?? [] { removeTree(path + "/" + name, depth: depth + 1) }
        }
        rmdir(path)
    } else {
        unlink(path)
    }
}

/// A directory created beside a destination and locked while it is filled; it is either renamed
/// into place with `commit(to:)` or removed (by `remove()` or when released).
///
/// Use it to create a directory atomically (fill it, then `commit(to:)`: the destination is absent
/// or complete), or as scratch space for intermediate files that a kill must not leave behind for
/// ever: orphans are removed by the next `TemporaryDirectory` or `AtomicFile` for the same
/// destination.
public final class TemporaryDirectory {
    /// The temporary directory, `DESTINATION.tmp-PID-RANDOM`.
    public let path: String
    private var fd: Int32
    private var finished = false

    /// Creates the directory beside `destination` (whose parent must exist), first removing the
    /// orphaned temporaries of `destination`.
    /// - Throws: `FileError` when the directory cannot be created.
    public init(beside destination: String) throws {
        removeStaleTemporaries(of: destination)
        (path, fd) = try createLockedTemporary(beside: destination) { name in
            guard mkdir(name, 0o755) == 0 else { return -1 }
            let fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if fd < 0 { rmdir(name) }
            return fd
        }
    }

    /// Renames the directory to `destination` (absent or an empty directory) and fsyncs the parent.
    /// - Throws: `FileError` when the rename fails; the temporary directory is kept (call `remove()`).
    public func commit(to destination: String) throws {
        precondition(!finished, "TemporaryDirectory committed or removed already")
        var target = destination
        while target.count > 1 && target.hasSuffix("/") { target.removeLast() }
        if rename(path, target) != 0 {
            throw FileError(operation: "rename to \(target)", path: path, errno: errnoValue())
        }
        finished = true
        close(fd)
        fd = -1
        syncDirectory(of: target)
    }

    /// Removes the directory and its content (unless it was committed).
    public func remove() {
        if finished { return }
        finished = true
        removeTree(path)
        close(fd)
        fd = -1
    }

    deinit { remove() }
}

/// fsyncs the directory `path` itself (best effort), e.g. after renaming files into it.
public func syncDirectoryItself(_ path: String) {
    let dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 { _ = fsync(dfd); close(dfd) }
}
