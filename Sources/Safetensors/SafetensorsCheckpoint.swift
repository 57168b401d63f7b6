import TensorIO

/// A checkpoint stored as one or more safetensors files, with lookup of tensors across them.
///
/// Opens, from `init(path:)`:
/// - a sharded checkpoint's index (`model.safetensors.index.json` or any `*.json`):
///   `{"metadata": {...}, "weight_map": {"tensor name": "model-00001-of-00002.safetensors", ...}}`;
/// - a directory holding `model.safetensors.index.json` (preferred) or `model.safetensors`;
/// - a single safetensors file.
///
/// For an index, every rule is checked before any tensor is used: each shard is a plain file name
/// (no `/`, `\`, `.`, `..`, NUL: nothing outside the index's directory can be reached) that exists
/// and is a valid safetensors file; every tensor of the map is in its shard; every tensor of a
/// shard is in the map, mapped to that shard (so no tensor is stored twice). Top-level index keys
/// other than `metadata` and `weight_map` are ignored.
public final class SafetensorsCheckpoint: @unchecked Sendable {
    // @unchecked: immutable after init; `SafetensorsFile` is itself thread-safe for reads.

    /// The largest index file we read, in bytes.
    public static let maximumIndexSize = 100_000_000

    /// The files, in order of shard name (a single file for an unsharded checkpoint).
    public let files: [SafetensorsFile]
    /// The index file, or nil for a single file.
    public let indexPath: String?
    /// The index's `metadata` object (e.g. `total_size`), or nil.
    public let indexMetadata: JSONObject?
    /// Every tensor name, by file then data order.
    public let tensorNames: [String]

    private let locations: [String: (file: Int, info: SafetensorsTensorInfo)]

    /// Opens a checkpoint (see the type's description for what `path` may be).
    /// - Throws: `SafetensorsError` naming the broken rule (and the file concerned in `path`).
    public init(path: String) throws(SafetensorsError) {
        var target = path
        if isDirectory(path) {
            let index = Self.join(path, "model.safetensors.index.json")
            let single = Self.join(path, "model.safetensors")
            if fileExists(index) {
                target = index
            } else if fileExists(single) {
                target = single
            } else {
                throw SafetensorsError(.noCheckpoint,
                                       "directory has neither model.safetensors.index.json nor model.safetensors", path: path)
            }
        }
        if target.hasSuffix(".json") {
            let (files, metadata) = try Self.openIndex(target)
            self.files = files
            self.indexPath = target
            self.indexMetadata = metadata
        } else {
            self.files = [try SafetensorsFile(path: target)]
            self.indexPath = nil
            self.indexMetadata = nil
        }
        var locations: [String: (file: Int, info: SafetensorsTensorInfo)] = [:]
        var names: [String] = []
        for (i, file) in files.enumerated() {
            for info in file.tensors {
                locations[info.name] = (i, info)
                names.append(info.name)
            }
        }
        self.locations = locations
        self.tensorNames = names
    }

    /// The tensor called `name` and the file holding it, if any.
    public func tensor(named name: String) -> (file: SafetensorsFile, info: SafetensorsTensorInfo)? {
        locations[name].map { (files[$0.file], $0.info) }
    }

    /// The bytes of the tensor called `name`, without copying (valid while this object is alive).
    /// - Throws: `SafetensorsError` `.tensorNotFound`.
    public func data(named name: String) throws(SafetensorsError) -> UnsafeRawBufferPointer {
        let (file, info) = try find(name)
        return file.data(for: info)
    }

    /// The elements of the float tensor called `name` (see `SafetensorsFile.floats(for:)`).
    /// - Throws: `SafetensorsError` `.tensorNotFound` or `.notFloatingPoint`.
    public func floats(named name: String) throws(SafetensorsError) -> [Float] {
        let (file, info) = try find(name)
        return try file.floats(for: info)
    }

    private func find(_ name: String) throws(SafetensorsError) -> (SafetensorsFile, SafetensorsTensorInfo) {
        guard let found = tensor(named: name) else {
            throw SafetensorsError(.tensorNotFound, "no tensor named '\(name)' in the checkpoint",
                                   path: indexPath ?? files.first?.path, tensor: name)
        }
        return found
    }

    // MARK: Index

    private static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    private static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// Whether `name` names a file directly inside the index's directory and nothing else.
    static func isPlainFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.contains("\\") && !name.utf8.contains(0)
    }

    private static func openIndex(_ indexPath: String) throws(SafetensorsError) -> ([SafetensorsFile], JSONObject?) {
        func invalid(_ message: String) -> SafetensorsError {
            SafetensorsError(.invalidIndex, message, path: indexPath)
        }
        let bytes: [UInt8]
        do {
            bytes = try readFile(indexPath, limit: maximumIndexSize)
        } catch {
            throw SafetensorsError(.io, "cannot read the index: \(error)", path: indexPath)
        }
        let root: JSONValue
        do {
            root = try JSON.parse(bytes)
        } catch {
            throw SafetensorsError(.invalidIndex, "index is not valid JSON: \(error.message)", path: indexPath, offset: error.offset)
        }
        guard case .object(let top) = root else { throw invalid("index must be a JSON object") }
        var metadata: JSONObject?
        if let value = top["metadata"] {
            guard case .object(let object) = value else { throw invalid("'metadata' of the index must be an object") }
            metadata = object
        }
        guard case .object(let weightMap)? = top["weight_map"] else {
            throw invalid("index must have a 'weight_map' object mapping tensor names to shard files")
        }
        guard !weightMap.isEmpty else { throw invalid("'weight_map' lists no tensors") }

        // Shards: validate names, open each once (in name order).
        var shardOf: [String: String] = [:]
        for (tensor, value) in weightMap {
            guard case .string(let shard) = value else {
                throw SafetensorsError(.invalidIndex, "weight_map entry of tensor '\(tensor)' must be a file name string",
                                       path: indexPath, tensor: tensor)
            }
            guard isPlainFileName(shard) else {
                throw SafetensorsError(.unsafeShardName,
                                       "shard '\(shard)' of tensor '\(tensor)' must be a plain file name in the index's directory",
                                       path: indexPath, tensor: tensor)
            }
            shardOf[tensor] = shard
        }
        let shardNames = Set(shardOf.values).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let directory = directory(of: indexPath)
        var files: [SafetensorsFile] = []
        var fileIndex: [String: Int] = [:]
        for shard in shardNames {
            let shardPath = join(directory, shard)
            guard fileExists(shardPath) else {
                throw SafetensorsError(.missingShard, "shard '\(shard)' named by the index does not exist", path: shardPath)
            }
            fileIndex[shard] = files.count
            files.append(try SafetensorsFile(path: shardPath))
        }

        // Every mapped tensor is in its shard ...
        for (tensor, _) in weightMap {
            let shard = shardOf[tensor]!
            if files[fileIndex[shard]!].tensor(named: tensor) == nil {
                throw SafetensorsError(.tensorMissingFromShard, "tensor '\(tensor)' is mapped to shard '\(shard)' which does not contain it",
                                       path: files[fileIndex[shard]!].path, tensor: tensor)
            }
        }
        // ... and every tensor of a shard is mapped to that shard.
        for (shard, i) in fileIndex.sorted(by: { $0.value < $1.value }) {
            for info in files[i].tensors {
                guard let mapped = shardOf[info.name] else {
                    throw SafetensorsError(.tensorNotInIndex, "shard '\(shard)' holds tensor '\(info.name)' which the index does not list",
                                           path: files[i].path, tensor: info.name)
                }
                if mapped != shard {
                    throw SafetensorsError(.tensorInTwoShards,
                                           "tensor '\(info.name)' is stored in shard '\(shard)' and in shard '\(mapped)'",
                                           path: files[i].path, tensor: info.name)
                }
            }
        }
        return (files, metadata)
    }
}
