import ArgumentParser
import GGUF
import Llama
import Quants
import Safetensors
import SoftPrompt
import TensorIO

/// `softprompt inspect`: what a model file holds.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the metadata and tensors of a GGUF file, a safetensors file or a sharded checkpoint, or the prompts of a .sprompt file.",
        discussion: """
            FILE may be a .gguf file, a .safetensors file, a model.safetensors.index.json, or a directory \
            holding one of those. Without FILE, the model given by --model, $SOFTPROMPT_MODEL or the default \
            model is shown.

            With --tensor NAME --out FILE.npy, writes that one tensor as a float32 .npy (dequantized), or \
            with --raw in its stored dtype (quantized blocks as uint8 rows of bytes, bf16 as uint16 bits).

            A .sprompt file (recognised by its magic) is summarised: prompts, shapes, dtypes, row norms, the \
            model fingerprint, templates, provenance and metrics. --tensor NAME --out FILE.npy writes one \
            prompt's vectors as float32 (the form `generate --embeddings` takes).
            """)

    @Argument(help: "The file or directory to inspect.")
    var file: String?

    @OptionGroup var modelOption: ModelOption
    @OptionGroup var output: JSONOption

    var model: String? { modelOption.model }
    var json: Bool { output.json }

    @Flag(help: "Show every element of metadata arrays (JSON) / longer excerpts (text).")
    var full = false

    @Option(help: "Name of one tensor to write out (with --out).")
    var tensor: String?

    @Option(help: "Where to write the tensor named by --tensor (.npy).")
    var out: String?

    @Flag(help: "With --tensor: keep the stored dtype instead of dequantizing to float32.")
    var raw = false

    func validate() throws {
        if (tensor == nil) != (out == nil) { throw ValidationError("--tensor and --out go together") }
        if raw && tensor == nil { throw ValidationError("--raw applies to --tensor NAME --out FILE") }
        if file != nil && model != nil { throw ValidationError("give FILE or --model, not both") }
    }

    func run() throws {
        let path = try file ?? ModelLocator.resolve(model)
        guard fileExists(path) else { throw CLIError("no such file or directory: \(path)") }
        do {
            if !isDirectory(path), let mapped = try? MappedFile(path: path), PromptFile.hasMagic(mapped.bytes) {
                return try inspectPrompts(mapped, path: path)
            }
            if !isDirectory(path), try isGGUF(path) {
                let gguf = try GGUFFile(path: path)
                if let tensor, let out { return try exportTensor(gguf, name: tensor, to: out) }
                print(json ? try JSON.serialize(ggufReport(gguf), pretty: true) : ggufText(gguf))
            } else {
                let checkpoint = try SafetensorsCheckpoint(path: path)
                if let tensor, let out { return try exportTensor(checkpoint, name: tensor, to: out) }
                print(json ? try JSON.serialize(safetensorsReport(checkpoint, path: path), pretty: true)
                           : safetensorsText(checkpoint, path: path))
            }
        } catch let error as GGUFError {
            throw CLIError(error.description)
        } catch let error as SafetensorsError {
            throw CLIError(error.description)
        } catch let error as SpromptError {
            throw CLIError(error.description)
        }
    }

    private func isGGUF(_ path: String) throws -> Bool {
        let file = try MappedFile(path: path)
        return file.count >= 4 && Array(file.bytes.prefix(4)) == Array("GGUF".utf8)
    }

    // MARK: GGUF

    private func ggufText(_ gguf: GGUFFile) -> String {
        var lines = [
            "\(gguf.path ?? "<memory>")",
            "format: GGUF v\(gguf.version), alignment \(gguf.alignment), tensor data at byte \(gguf.dataOffset), "
                + "file \(Output.bytes(gguf.fileSize))",
            "",
            "metadata (\(gguf.metadata.count) keys):",
        ]
        let keyWidth = gguf.metadata.map(\.key.count).max() ?? 0
        for entry in gguf.metadata {
            let pad = String(repeating: " ", count: keyWidth - entry.key.count)
            lines.append("  \(entry.key)\(pad)  \(describe(entry.value))")
        }
        lines.append("")
        lines.append("tensors (\(gguf.tensors.count)):")
        let rows = gguf.tensors.map { t in
            [t.name, t.type.name, "[" + t.shape.map(String.init).joined(separator: ", ") + "]",
             String(t.byteCount), String(t.absoluteOffset)]
        }
        lines.append(Output.table(["name", "type", "shape", "bytes", "offset"], rows, rightAligned: [3, 4]))
        lines.append("")
        lines.append(contentsOf: totals(gguf.tensors.map { ($0.type.name, $0.byteCount, $0.elementCount) }))
        return lines.joined(separator: "\n")
    }

    private func describe(_ value: GGUFValue) -> String {
        switch value {
        case .string(let s): return quote(s.string, limit: full ? 400 : 60)
        case .array(let a):
            let shown = full ? 16 : 4
            var items: [String] = []
            if a.count <= shown + 1 {
                items = a.map { describeScalar($0) }
            } else {
                items = a.prefix(shown).map { describeScalar($0) } + ["…", describeScalar(a[a.count - 1])]
            }
            return "[\(a.elementType.name) × \(a.count)] " + items.joined(separator: ", ")
        default: return "\(value.description)  (\(value.type.name))"
        }
    }

    private func describeScalar(_ value: GGUFValue) -> String {
        if case .string(let s) = value { return quote(s.string, limit: 24) }
        return value.description
    }

    private func ggufReport(_ gguf: GGUFFile) -> JSONValue {
        var metadata = JSONObject()
        for entry in gguf.metadata { metadata[entry.key] = jsonValue(entry.value) }
        let tensors: [JSONValue] = gguf.tensors.map { t in
            .object([
                "name": .string(t.name), "type": .string(t.type.name),
                "shape": .array(t.shape.map { .int(Int64($0)) }),
                "elements": .int(Int64(t.elementCount)), "bytes": .int(Int64(t.byteCount)),
                "offset": .int(Int64(t.absoluteOffset)),
            ])
        }
        return .object([
            "path": .string(gguf.path ?? ""), "format": "gguf", "version": .int(Int64(gguf.version)),
            "alignment": .int(Int64(gguf.alignment)), "data_offset": .int(Int64(gguf.dataOffset)),
            "file_size": .int(Int64(gguf.fileSize)), "metadata": .object(metadata),
            "tensors": .array(tensors),
            "totals": totalsJSON(gguf.tensors.map { ($0.type.name, $0.byteCount, $0.elementCount) }),
        ])
    }

    private func jsonValue(_ value: GGUFValue) -> JSONValue {
        switch value {
        case .array(let a):
            let elements = full || a.count <= 8 ? Array(a) : Array(a.prefix(8))
            var object: JSONObject = [
                "type": "array", "element_type": .string(a.elementType.name), "count": .int(Int64(a.count)),
                "values": .array(elements.map(jsonScalar)),
            ]
            if elements.count < a.count { object["truncated"] = true }
            return .object(object)
        default: return jsonScalar(value)
        }
    }

    private func jsonScalar(_ value: GGUFValue) -> JSONValue {
        switch value {
        case .bool(let b): return .bool(b)
        case .string(let s): return .string(s.string)
        case .float32(let f): return f.isFinite ? .double(Double(f)) : .string("\(f)")
        case .float64(let f): return f.isFinite ? .double(f) : .string("\(f)")
        case .uint64(let v): return v <= UInt64(Int64.max) ? .int(Int64(v)) : .double(Double(v))
        case .array: return .null
        default: return value.intValue.map { .int(Int64($0)) } ?? .null
        }
    }

    private func exportTensor(_ gguf: GGUFFile, name: String, to path: String) throws {
        guard let info = gguf.tensor(named: name) else {
            throw CLIError("no tensor named '\(name)' in \(gguf.path ?? "the file") (\(gguf.tensors.count) tensors; see `softprompt inspect`)")
        }
        let bytes = gguf.data(for: info)
        let shape = Array(info.shape.reversed())  // numpy order: ne[n-1], ..., ne[0]
        let encoded: [UInt8]
        if raw {
            let dtype: NPY.DType
            var npyShape = shape
            switch info.type {
            case .f32: dtype = .f32
            case .f16: dtype = .f16
            case .f64: dtype = .f64
            case .i8: dtype = .i8
            case .i16: dtype = .i16
            case .i32: dtype = .i32
            case .i64: dtype = .i64
            case .bf16: dtype = .u16
            default:
                // Quantized: one row of ne[0] elements is ne[0]/blockSize blocks of typeSize bytes.
                dtype = .u8
                npyShape[npyShape.count - 1] = info.shape[0] / info.type.blockSize * info.type.typeSize
            }
            encoded = NPY.encode(dtype: dtype, shape: npyShape, data: bytes)
        } else {
            let values = try Quantization.dequantize(info.type, bytes: bytes, count: info.elementCount)
            encoded = values.withUnsafeBytes { NPY.encode(dtype: .f32, shape: shape, data: $0) }
        }
        try AtomicFile.write(to: path, bytes: encoded)
        Output.error("wrote \(name) [\(shape.map(String.init).joined(separator: ", "))] "
                     + "\(raw ? info.type.name : "F32") to \(path) (\(Output.bytes(encoded.count)))")
    }

    // MARK: safetensors

    private func safetensorsText(_ checkpoint: SafetensorsCheckpoint, path: String) -> String {
        var lines = [path]
        if let index = checkpoint.indexPath {
            lines.append("format: sharded safetensors checkpoint, index \(index), \(checkpoint.files.count) shards")
        } else {
            lines.append("format: safetensors, header \(checkpoint.files[0].headerLength) bytes, "
                         + "file \(Output.bytes(checkpoint.files[0].bytes.count))")
        }
        for file in checkpoint.files where !file.metadata.isEmpty {
            lines.append("")
            lines.append("metadata of \(file.path) (\(file.metadata.count) keys):")
            for (key, value) in file.metadata { lines.append("  \(key)  \(quote(value, limit: full ? 400 : 60))") }
        }
        var rows: [[String]] = []
        var all: [(String, Int, Int)] = []
        for file in checkpoint.files {
            for t in file.tensors {
                rows.append([t.name, t.dtype.rawValue, "[" + t.shape.map(String.init).joined(separator: ", ") + "]",
                             String(t.byteCount), String(file.dataStart + t.dataOffsets.lowerBound)]
                            + (checkpoint.files.count > 1 ? [shortName(file.path)] : []))
                all.append((t.dtype.rawValue, t.byteCount, t.elementCount))
            }
        }
        lines.append("")
        lines.append("tensors (\(rows.count)):")
        lines.append(Output.table(["name", "dtype", "shape", "bytes", "offset"] + (checkpoint.files.count > 1 ? ["file"] : []),
                                  rows, rightAligned: [3, 4]))
        lines.append("")
        lines.append(contentsOf: totals(all))
        return lines.joined(separator: "\n")
    }

    private func safetensorsReport(_ checkpoint: SafetensorsCheckpoint, path: String) -> JSONValue {
        var files: [JSONValue] = []
        var all: [(String, Int, Int)] = []
        for file in checkpoint.files {
            var metadata = JSONObject()
            for (key, value) in file.metadata { metadata[key] = .string(value) }
            let tensors: [JSONValue] = file.tensors.map { t in
                all.append((t.dtype.rawValue, t.byteCount, t.elementCount))
                return .object([
                    "name": .string(t.name), "dtype": .string(t.dtype.rawValue),
                    "shape": .array(t.shape.map { .int(Int64($0)) }), "bytes": .int(Int64(t.byteCount)),
                    "offset": .int(Int64(file.dataStart + t.dataOffsets.lowerBound)),
                ])
            }
            files.append(.object([
                "path": .string(file.path), "header_length": .int(Int64(file.headerLength)),
                "metadata": .object(metadata), "tensors": .array(tensors),
            ]))
        }
        return .object([
            "path": .string(path), "format": "safetensors",
            "index": checkpoint.indexPath.map { .string($0) } ?? .null,
            "files": .array(files), "totals": totalsJSON(all),
        ])
    }

    private func exportTensor(_ checkpoint: SafetensorsCheckpoint, name: String, to path: String) throws {
        guard let (file, info) = checkpoint.tensor(named: name) else {
            throw CLIError("no tensor named '\(name)' in \(path) (see `softprompt inspect`)")
        }
        let encoded: [UInt8]
        if raw {
            let dtype: NPY.DType = switch info.dtype {
            case .bool: .bool; case .u8, .f8E4M3, .f8E5M2: .u8; case .i8: .i8; case .u16, .bf16: .u16
            case .i16: .i16; case .f16: .f16; case .u32: .u32; case .i32: .i32; case .f32: .f32
            case .u64: .u64; case .i64: .i64; case .f64: .f64
            }
            encoded = NPY.encode(dtype: dtype, shape: info.shape, data: file.data(for: info))
        } else {
            guard info.dtype.isFloatingPoint else {
                throw CLIError("tensor '\(name)' is \(info.dtype.rawValue), not a float type; use --raw to keep it")
            }
            let values = try file.floats(for: info)
            encoded = values.withUnsafeBytes { NPY.encode(dtype: .f32, shape: info.shape, data: $0) }
        }
        try AtomicFile.write(to: path, bytes: encoded)
        Output.error("wrote \(name) \(info.shape) to \(path) (\(Output.bytes(encoded.count)))")
    }

    // MARK: .sprompt

    private func inspectPrompts(_ mapped: MappedFile, path: String) throws {
        let file = try PromptFile.decode(mapped.bytes, path: path)
        if let tensor, let out {
            let prompt = try file.prompt(named: tensor)
            let encoded = prompt.vectors.withUnsafeBytes { NPY.encode(dtype: .f32, shape: [prompt.tokens, prompt.width], data: $0) }
            try AtomicFile.write(to: out, bytes: encoded)
            Output.error("wrote prompt '\(prompt.name)' [\(prompt.tokens), \(prompt.width)] F32 to \(out) (\(Output.bytes(encoded.count)))")
            return
        }
        // The header's sizes and the filter, for the summary (the file has been validated).
        func u64(_ offset: Int) -> Int {
            Int(UInt64(littleEndian: mapped.bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
        }
        let metadataSize = u64(16), payloadSize = u64(24), storedSize = u64(32)
        let metadata = UnsafeRawBufferPointer(rebasing: mapped.bytes[72 ..< 72 + metadataSize])
        let filter = (try? JSON.parse(metadata))?["filter"]?.stringValue ?? "?"
        if json {
            print(try JSON.serialize(promptReport(file, path: path, sizes: (metadataSize, payloadSize, storedSize), filter: filter),
                                     pretty: true))
        } else {
            print(promptText(file, path: path, sizes: (metadataSize, payloadSize, storedSize), filter: filter))
        }
    }

    /// Four decimals for ordinary magnitudes, Swift's shortest form otherwise (Output.fixed needs |x| < 2^63).
    private static func short(_ x: Double) -> String {
        x.isFinite && abs(x) < 1e9 ? Output.fixed(x, 4) : "\(Float(x))"
    }

    private static func norms(_ rowNorms: [Float]) -> (mean: Double, max: Double) {
        let finite = rowNorms.filter(\.isFinite).map(Double.init)
        guard !finite.isEmpty else { return (.nan, .nan) }
        return (finite.reduce(0, +) / Double(finite.count), finite.max()!)
    }

    private func promptText(_ file: PromptFile, path: String, sizes: (metadata: Int, payload: Int, stored: Int),
                            filter: String) -> String {
        var lines = [
            path,
            "format: sprompt v1, \(file.prompts.count) prompt\(file.prompts.count == 1 ? "" : "s"), payload "
                + "\(Output.bytes(sizes.payload)) stored in \(Output.bytes(sizes.stored)) (zstd, filter \(filter)), "
                + "metadata \(Output.bytes(sizes.metadata))",
            "",
        ]
        if let model = file.model {
            lines.append("model: \(model.architecture), width \(model.embeddingLength), \(model.layerCount) layers, "
                         + "vocabulary \(model.vocabSize)")
            lines.append("  tokenizer sha256: \(model.tokenizerHash ?? "unknown")")
            if let sketch = model.sketch, let hash = model.weightsHash {
                lines.append("  weights: sketch v\(model.sketchVersion) of \(sketch.count) rows, rows sha256 \(hash)")
            } else {
                lines.append("  weights: unknown")
            }
        } else {
            lines.append("model: unknown (no fingerprint)")
        }
        lines.append("")
        let rows = file.prompts.map { p -> [String] in
            let (mean, max) = Self.norms(p.rowNorms)
            return [p.name, p.dtype.rawValue, "[\(p.tokens), \(p.width)]", p.placement.rawValue,
                    Self.short(mean), Self.short(max), p.nonFiniteCount == 0 ? "" : "\(p.nonFiniteCount) NaN/Inf"]
        }
        lines.append("prompts (\(file.prompts.count)):")
        lines.append(Output.table(["name", "dtype", "shape", "placement", "mean row norm", "max row norm", ""], rows,
                                  rightAligned: [4, 5]))
        for p in file.prompts where p.template != nil || !p.provenance.isEmpty || !p.metrics.isEmpty {
            lines.append("")
            lines.append("\(p.name):")
            if let template = p.template { lines.append("  template:   \(quote(template, limit: full ? 2000 : 120))") }
            if !p.provenance.isEmpty { lines.append("  provenance: " + ((try? JSON.serialize(.object(p.provenance))) ?? "?")) }
            if !p.metrics.isEmpty { lines.append("  metrics:    " + ((try? JSON.serialize(.object(p.metrics))) ?? "?")) }
        }
        for p in file.prompts where p.nonFiniteCount > 0 {
            lines.append("")
            lines.append("warning: prompt '\(p.name)' holds \(p.nonFiniteCount) NaN or infinite values")
        }
        if !file.metadata.isEmpty {
            lines.append("")
            lines.append("metadata: " + ((try? JSON.serialize(.object(file.metadata))) ?? "?"))
        }
        return lines.joined(separator: "\n")
    }

    private func promptReport(_ file: PromptFile, path: String, sizes: (metadata: Int, payload: Int, stored: Int),
                              filter: String) -> JSONValue {
        func number(_ x: Double) -> JSONValue { x.isFinite ? .double(x) : .null }
        var model: JSONValue = .null
        if let m = file.model {
            var o: JSONObject = [
                "architecture": .string(m.architecture), "embedding_length": .int(Int64(m.embeddingLength)),
                "layer_count": .int(Int64(m.layerCount)), "vocab_size": .int(Int64(m.vocabSize)),
                "tokenizer_sha256": m.tokenizerHash.map { .string($0) } ?? .null,
            ]
            if let sketch = m.sketch {
                o["weights"] = .object([
                    "sketch_version": .int(Int64(m.sketchVersion)), "sketch": .array(sketch.map { .double($0) }),
                    "rows_sha256": m.weightsHash.map { .string($0) } ?? .null,
                ])
            }
            model = .object(o)
        }
        let prompts: [JSONValue] = file.prompts.map { p in
            let rowNorms = p.rowNorms
            let (mean, max) = Self.norms(rowNorms)
            return .object([
                "name": .string(p.name), "dtype": .string(p.dtype.rawValue),
                "shape": [.int(Int64(p.tokens)), .int(Int64(p.width))], "placement": .string(p.placement.rawValue),
                "template": p.template.map { .string($0) } ?? .null,
                "row_norms": .array(rowNorms.map { number(Double($0)) }),
                "mean_row_norm": number(mean), "max_row_norm": number(max),
                "non_finite": .int(Int64(p.nonFiniteCount)),
                "provenance": .object(p.provenance), "metrics": .object(p.metrics),
            ])
        }
        return .object([
            "path": .string(path), "format": "sprompt", "version": 1,
            "metadata_bytes": .int(Int64(sizes.metadata)), "payload_bytes": .int(Int64(sizes.payload)),
            "stored_bytes": .int(Int64(sizes.stored)), "compression": "zstd", "filter": .string(filter),
            "model": model, "prompts": .array(prompts), "metadata": .object(file.metadata),
        ])
    }

    // MARK: shared

    private func totals(_ tensors: [(type: String, bytes: Int, elements: Int)]) -> [String] {
        var byType: [String: (count: Int, bytes: Int)] = [:]
        for t in tensors { byType[t.type, default: (0, 0)].count += 1; byType[t.type, default: (0, 0)].bytes += t.bytes }
        let bytes = tensors.reduce(0) { $0 + $1.bytes }
        let params = tensors.reduce(0) { $0 + $1.elements }
        let kinds = byType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count) (\(Output.bytes($0.value.bytes)))" }
        return ["totals: \(tensors.count) tensors, \(params) parameters, \(Output.bytes(bytes)) of tensor data",
                "by type: " + kinds.joined(separator: ", ")]
    }

    private func totalsJSON(_ tensors: [(type: String, bytes: Int, elements: Int)]) -> JSONValue {
        var byType = JSONObject()
        for name in Set(tensors.map(\.type)).sorted() {
            let matching = tensors.filter { $0.type == name }
            byType[name] = .object(["count": .int(Int64(matching.count)),
                                    "bytes": .int(Int64(matching.reduce(0) { $0 + $1.bytes }))])
        }
        return .object([
            "tensors": .int(Int64(tensors.count)),
            "parameters": .int(Int64(tensors.reduce(0) { $0 + $1.elements })),
            "bytes": .int(Int64(tensors.reduce(0) { $0 + $1.bytes })),
            "by_type": .object(byType),
        ])
    }

    private func quote(_ text: String, limit: Int) -> String {
        var escaped = ""
        for ch in text.unicodeScalars {
            switch ch {
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            default: escaped.unicodeScalars.append(ch)
            }
        }
        if escaped.count > limit { return "\"" + escaped.prefix(limit) + "\"… (\(text.utf8.count) bytes)" }
        return "\"" + escaped + "\""
    }

    private func shortName(_ path: String) -> String {
        path.split(separator: "/").last.map(String.init) ?? path
    }
}

/// An error whose message is meant for the user as is.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
