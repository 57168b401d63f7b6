import Safetensors
import TensorIO
import TestSupport
import Testing

/// Writes shards (`file name → [tensor name: F32 values]`) and an index into a new directory.
private func makeCheckpoint(
    shards: [String: [String: [Float]]], weightMap: [(String, String)]? = nil, indexText: String? = nil
) throws -> String {
    let dir = TestSupport.temporaryDirectory("st-ckpt")
    for (file, tensors) in shards {
        var writer = SafetensorsWriter()
        for (name, values) in tensors { try writer.add(name, shape: [values.count], floats: values) }
        try writer.write(to: dir + "/" + file)
    }
    let map = weightMap ?? shards.flatMap { file, tensors in tensors.keys.map { ($0, file) } }
    let index: JSONValue = [
        "metadata": ["total_size": 123],
        "weight_map": .object(JSONObject(map.map { ($0.0, JSONValue.string($0.1)) })),
    ]
    let text = try indexText ?? JSON.serialize(index, pretty: true)
    try AtomicFile.write(to: dir + "/model.safetensors.index.json", bytes: Array(text.utf8))
    return dir
}

private let twoShards: [String: [String: [Float]]] = [
    "model-00001-of-00002.safetensors": ["embed": [1, 2], "layer.0": [3]],
    "model-00002-of-00002.safetensors": ["layer.1": [4, 5, 6], "head": [7]],
]

private func openError(path: String) -> SafetensorsError? {
    do {
        _ = try SafetensorsCheckpoint(path: path)
        return nil
    } catch {
        return error
    }
}

@Suite struct SafetensorsCheckpointTests {
    @Test func shardedLookup() throws {
        let dir = try makeCheckpoint(shards: twoShards)
        for path in [dir, dir + "/", dir + "/model.safetensors.index.json"] {
            let checkpoint = try SafetensorsCheckpoint(path: path)
            #expect(checkpoint.files.count == 2)
            #expect(checkpoint.files.map { $0.path.split(separator: "/").last! } == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
            #expect(checkpoint.indexMetadata?["total_size"] == .int(123))
            #expect(Set(checkpoint.tensorNames) == ["embed", "layer.0", "layer.1", "head"])
            #expect(try checkpoint.floats(named: "layer.1") == [4, 5, 6])
            #expect(try checkpoint.floats(named: "embed") == [1, 2])
            #expect(checkpoint.tensor(named: "head")?.file.path.hasSuffix("model-00002-of-00002.safetensors") == true)
            #expect(try checkpoint.data(named: "head").count == 4)
            #expect(checkpoint.tensor(named: "nope") == nil)
            let error = #expect(throws: SafetensorsError.self) { try checkpoint.floats(named: "nope") }
            #expect(error?.kind == .tensorNotFound && error?.tensor == "nope")
        }
    }

    @Test func singleFileAndDirectory() throws {
        let dir = TestSupport.temporaryDirectory("st-single")
        var writer = SafetensorsWriter()
        try writer.add("w", shape: [2], floats: [1, 2])
        try writer.write(to: dir + "/model.safetensors")
        for path in [dir, dir + "/model.safetensors"] {
            let checkpoint = try SafetensorsCheckpoint(path: path)
            #expect(checkpoint.indexPath == nil && checkpoint.indexMetadata == nil)
            #expect(checkpoint.tensorNames == ["w"])
            #expect(try checkpoint.floats(named: "w") == [1, 2])
        }
        let empty = TestSupport.temporaryDirectory("st-empty")
        #expect(openError(path: empty)?.kind == .noCheckpoint)
        #expect(openError(path: empty + "/missing.safetensors")?.kind == .io)
    }

    @Test(arguments: ["../model.safetensors", "sub/model.safetensors", "/etc/passwd", "..", ".", "", "a\\b.safetensors", "x\u{0}.safetensors"])
    func refusesPathTraversal(shardName: String) throws {
        let dir = try makeCheckpoint(shards: twoShards, weightMap: [("embed", shardName)])
        let error = openError(path: dir)
        #expect(error?.kind == .unsafeShardName)
        #expect(error?.tensor == "embed")
    }

    @Test func indexConsistency() throws {
        // A shard the index names does not exist.
        var dir = try makeCheckpoint(shards: twoShards, weightMap: [("embed", "model-00001-of-00002.safetensors"), ("extra", "model-00003-of-00003.safetensors")])
        var error = openError(path: dir)
        #expect(error?.kind == .missingShard)
        #expect(error?.path?.hasSuffix("/model-00003-of-00003.safetensors") == true)

        // The index maps a tensor to a shard that lacks it.
        var map = twoShards.flatMap { file, tensors in tensors.keys.map { ($0, file) } }
        map.append(("ghost", "model-00001-of-00002.safetensors"))
        dir = try makeCheckpoint(shards: twoShards, weightMap: map)
        error = openError(path: dir)
        #expect(error?.kind == .tensorMissingFromShard && error?.tensor == "ghost")

        // A shard holds a tensor the index does not list.
        map = twoShards.flatMap { file, tensors in tensors.keys.map { ($0, file) } }.filter { $0.0 != "head" }
        dir = try makeCheckpoint(shards: twoShards, weightMap: map)
        error = openError(path: dir)
        #expect(error?.kind == .tensorNotInIndex && error?.tensor == "head")

        // A tensor stored in two shards.
        var shards = twoShards
        shards["model-00002-of-00002.safetensors"]?["embed"] = [9, 9]
        dir = try makeCheckpoint(shards: shards, weightMap: twoShards.flatMap { file, tensors in tensors.keys.map { ($0, file) } })
        error = openError(path: dir)
        #expect(error?.kind == .tensorInTwoShards && error?.tensor == "embed")
    }

    @Test(arguments: [
        "[]", #"{"metadata": {}}"#, #"{"weight_map": []}"#, #"{"weight_map": {}}"#,
        #"{"weight_map": {"embed": 1}}"#, #"{"metadata": 5, "weight_map": {"embed": "a.safetensors"}}"#,
        #"{"weight_map": {"embed": "a.safetensors", "embed": "b.safetensors"}}"#, "{", "",
    ])
    func invalidIndex(text: String) throws {
        let dir = try makeCheckpoint(shards: twoShards, indexText: text)
        #expect(openError(path: dir)?.kind == .invalidIndex)
    }

    @Test func corruptShardIsReportedWithItsPath() throws {
        let dir = try makeCheckpoint(shards: twoShards)
        let shard = dir + "/model-00002-of-00002.safetensors"
        var bytes = try readFile(shard)
        bytes.append(0)  // a trailing byte
        try AtomicFile.write(to: shard, bytes: bytes)
        let error = openError(path: dir)
        #expect(error?.kind == .trailingData)
        #expect(error?.path == shard)
    }
}
