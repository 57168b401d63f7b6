// softprompt-fuzz: the parsers of every file a stranger can hand us, as libFuzzer targets.
//
// Built two ways (Tools/scripts/fuzz.sh does both):
// - with `-DFUZZING -sanitize=fuzzer,address`: `softprompt-fuzz TARGET [libFuzzer flags] CORPUS…` runs
//   libFuzzer on TARGET through `LLVMFuzzerRunDriver`;
// - plainly: `softprompt-fuzz TARGET FILE…` runs each file once and prints how it was taken (the way to
//   replay a crash in a debugger or a normal build).
// `softprompt-fuzz seeds DIR` writes the synthetic seeds of the targets that need a directory around
// the fuzzed file (the sharded index, the PEFT config).
//
// A target returns normally for every input, accepted or refused with a typed error; anything else
// (a trap, an ASan report, a hang, an allocation past libFuzzer's -malloc_limit_mb) is a finding.

#if canImport(Glibc)
import Glibc
#endif
import GGUF
import Llama
import PromptTuning
import Safetensors
import SoftPrompt
import TensorIO
import Tokenizers

enum Target: String, CaseIterable {
    case gguf, safetensors, safetensorsIndex = "safetensors-index", sprompt, peftConfig = "peft-config",
         tokenizerJSON = "tokenizer-json", jsonl
}

/// Scratch files for the targets that read a path (kept in one private directory per process).
struct Workspace {
    let directory: String
    var indexPath: String { directory + "/index/model.safetensors.index.json" }
    var peftDirectory: String { directory + "/peft" }
    var scratchFile: String { directory + "/input.bin" }

    /// Shard tensors of the index target: name → shard.
    static let shardTensors: [(String, String)] = [
        ("model.embed_tokens.weight", "model-00001-of-00002.safetensors"),
        ("model.norm.weight", "model-00001-of-00002.safetensors"),
        ("lm_head.weight", "model-00002-of-00002.safetensors"),
    ]
    static let peftShape = [4, 8]

    static func create() -> Workspace {
        var template = Array((environmentValue("TMPDIR") ?? "/tmp").utf8CString.dropLast()) + Array("/spfuzz-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed: errno \(errno)") }
        let workspace = Workspace(directory: String(cString: made))
        do {
            try makeDirectories(workspace.directory + "/index")
            try makeDirectories(workspace.peftDirectory)
            var shards: [String: SafetensorsWriter] = [:]
            for (i, (name, shard)) in shardTensors.enumerated() {
                var writer = shards[shard] ?? SafetensorsWriter(metadata: ["format": "pt"])
                try writer.add(name, dtype: .f32, shape: [2, i + 1], bytes: [UInt8](repeating: 0, count: 8 * (i + 1)))
                shards[shard] = writer
            }
            for (shard, writer) in shards { try writer.write(to: workspace.directory + "/index/" + shard) }
            var peft = SafetensorsWriter(metadata: ["format": "pt"])
            let count = peftShape[0] * peftShape[1]
            let values = (0..<count).flatMap { i in withUnsafeBytes(of: (Float(i) * 0.25 - 1).bitPattern.littleEndian, Array.init) }
            try peft.add("prompt_embeddings", dtype: .f32, shape: peftShape, bytes: values)
            try peft.write(to: workspace.peftDirectory + "/adapter_model.safetensors")
        } catch {
            fatalError("cannot prepare the fuzz workspace in \(workspace.directory): \(error)")
        }
        return workspace
    }

    func remove() {
        for path in [indexPath, scratchFile, peftDirectory + "/adapter_config.json", peftDirectory + "/adapter_model.safetensors"]
            + Self.shardTensors.map({ directory + "/index/" + $0.1 }) {
            unlink(path)
        }
        rmdir(peftDirectory); rmdir(directory + "/index"); rmdir(directory)
    }

    /// Replaces `path` with `bytes` (plain write: the harness is the only reader).
    func put(_ bytes: UnsafeRawBufferPointer, at path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { fatalError("cannot write \(path): errno \(errno)") }
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            guard n > 0 else { fatalError("write to \(path) failed: errno \(errno)") }
            done += n
        }
        close(fd)
    }
}

/// What one input did (for the replay mode's report).
enum Outcome { case accepted(String), refused(String) }

/// A fixed text with ASCII, accents, CJK, an emoji, digits, whitespace runs and special-token look-alikes.
let probeText = "Hello, wörld! 日本語 😀 123 4567  \n\t<|endoftext|> <s> [INST]"

/// Runs `target` on `bytes`. Everything the parsers accept is used a little further (tensor data
/// touched, values decoded, text tokenized) so that a structure that parses but lies is caught too.
func run(_ target: Target, _ bytes: UnsafeRawBufferPointer, _ workspace: Workspace) -> Outcome {
    switch target {
    case .gguf:
        let file: GGUFFile
        do { file = try GGUFFile(bytes: Array(bytes)) } catch { return .refused("\(error)") }
        var checksum: UInt8 = 0
        for tensor in file.tensors {
            let data = file.data(for: tensor)
            if let first = data.first, let last = data.last { checksum &+= first &+ last }
        }
        for entry in file.metadata { _ = "\(entry.value)".utf8.count }
        var notes = ["\(file.tensors.count) tensors, \(file.metadata.count) keys"]
        if file.string("tokenizer.ggml.model") != nil {
            do {
                let tokenizer = try Tokenizer(TokenizerVocabulary(gguf: file))
                let ids = tokenizer.encode(probeText)
                _ = tokenizer.decode(ids)
                notes.append("tokenizer: \(ids.count) ids")
            } catch { notes.append("tokenizer refused: \(error)") }
        }
        if file.string("general.architecture") != nil {
            do { _ = try LlamaConfig(gguf: file); notes.append("config ok") } catch { notes.append("config refused: \(error)") }
        }
        if file.string("general.type") == "adapter" {
            workspace.put(bytes, at: workspace.scratchFile)
            do {
                let prompts = try PromptConversion.read(path: workspace.scratchFile, format: .gguf)
                notes.append("adapter: \(prompts.prompts.count) prompt(s)")
            } catch { notes.append("adapter refused: \(error)") }
        }
        return .accepted(notes.joined(separator: "; ") + " (\(checksum))")

    case .safetensors:
        let file: SafetensorsFile
        do { file = try SafetensorsFile(bytes: Array(bytes)) } catch { return .refused("\(error)") }
        var converted = 0
        for info in file.tensors {
            if let values = try? file.floats(for: info) { converted += values.count }
        }
        return .accepted("\(file.tensors.count) tensors, \(converted) floats")

    case .safetensorsIndex:
        workspace.put(bytes, at: workspace.indexPath)
        do {
            let checkpoint = try SafetensorsCheckpoint(path: workspace.indexPath)
            for name in checkpoint.tensorNames { _ = try checkpoint.data(named: name) }
            return .accepted("\(checkpoint.files.count) shards, \(checkpoint.tensorNames.count) tensors")
        } catch { return .refused("\(error)") }

    case .sprompt:
        // Once as given, once with the header checksum made right, so that mutations reach past it.
        var outcome = decodeSprompt(bytes)
        if bytes.count >= PromptFile.headerSize {
            var fixed = Array(bytes)
            let metadataSize = fixed.withUnsafeBytes { Int(clamping: UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 16, as: UInt64.self))) }
            let end = metadataSize <= fixed.count - PromptFile.headerSize ? PromptFile.headerSize + metadataSize : fixed.count
            var hasher = SHA256()
            hasher.update(fixed[0..<40])
            hasher.update(fixed[PromptFile.headerSize..<end])
            let digest = hasher.finalize()
            fixed.replaceSubrange(40..<72, with: digest)
            let second = fixed.withUnsafeBytes { decodeSprompt($0) }
            if case .accepted = second { outcome = second }
        }
        return outcome

    case .peftConfig:
        workspace.put(bytes, at: workspace.peftDirectory + "/adapter_config.json")
        do {
            let file = try PromptConversion.read(path: workspace.peftDirectory, format: .peft)
            return .accepted("\(file.prompts[0].tokens)×\(file.prompts[0].width)")
        } catch { return .refused("\(error)") }

    case .tokenizerJSON:
        let json: JSONValue
        do { json = try JSON.parse(Array(bytes)) } catch { return .refused("JSON: \(error)") }
        do {
            let tokenizer = try Tokenizer(TokenizerVocabulary(tokenizerJSON: json))
            let ids = tokenizer.encode(probeText)
            _ = tokenizer.decode(ids)
            return .accepted("\(ids.count) ids")
        } catch { return .refused("\(error)") }

    case .jsonl:
        do {
            let dataset = try TaskDataset.parse(Array(bytes))
            var total = 0
            for example in dataset.examples { total += example.input.utf8.count + example.output.utf8.count + (example.choices?.count ?? 0) }
            if let first = dataset.examples.first, let template = try? PromptTemplate(first.input) {
                total += template.render(first.output).utf8.count
            }
            return .accepted("\(dataset.examples.count) rows, \(total) bytes")
        } catch { return .refused("\(error)") }
    }
}

func decodeSprompt(_ bytes: UnsafeRawBufferPointer) -> Outcome {
    let file: PromptFile
    do { file = try PromptFile.decode(bytes, path: nil) } catch { return .refused("\(error)") }
    // What was accepted must survive our own writer and reader unchanged.
    do {
        let again = try PromptFile.decode(try file.encode())
        guard again.prompts.count == file.prompts.count else { fatalError("sprompt round trip lost prompts") }
        for (a, b) in zip(file.prompts, again.prompts) {
            guard a.name == b.name, a.tokens == b.tokens, a.width == b.width, a.dtype == b.dtype,
                  a.vectors.map(\.bitPattern) == b.vectors.map(\.bitPattern)
            else { fatalError("sprompt round trip changed prompt '\(a.name)'") }
        }
    } catch {
        fatalError("an accepted .sprompt could not be written and read back: \(error)")
    }
    return .accepted("\(file.prompts.count) prompt(s)")
}

// MARK: - Seeds

/// Writes the synthetic seeds of the directory-backed targets into `directory`/TARGET/.
func writeSeeds(into directory: String, workspace: Workspace) throws {
    let index = JSONValue.object([
        "metadata": .object(["total_size": .int(48)]),
        "weight_map": .object(JSONObject(Workspace.shardTensors.map { ($0.0, JSONValue.string($0.1)) })),
    ])
    let peft = JSONValue.object([
        "peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": .int(Int64(Workspace.peftShape[0])),
        "token_dim": .int(Int64(Workspace.peftShape[1])), "num_transformer_submodules": 1, "num_layers": 2,
        "num_attention_heads": 2, "prompt_tuning_init": "TEXT", "prompt_tuning_init_text": "Classify:",
        "base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct", "inference_mode": true,
    ])
    for (target, value) in [(Target.safetensorsIndex, index), (.peftConfig, peft)] {
        let folder = directory + "/" + target.rawValue
        try makeDirectories(folder)
        try AtomicFile.write(to: folder + "/synthetic.json", bytes: Array(try JSON.serialize(value, pretty: true).utf8))
    }
}

// MARK: - Entry

func usage() -> Never {
    let names = Target.allCases.map(\.rawValue).joined(separator: "|")
    print("usage: softprompt-fuzz \(names) [libFuzzer flags] CORPUS_DIR…   (fuzzing build)")
    print("       softprompt-fuzz \(names) FILE…                          (replays files)")
    print("       softprompt-fuzz seeds DIR")
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 2 else { usage() }
let workspace = Workspace.create()
defer { workspace.remove() }

if arguments[1] == "seeds" {
    guard arguments.count == 3 else { usage() }
    do { try writeSeeds(into: arguments[2], workspace: workspace) } catch { print("error: \(error)"); exit(1) }
    workspace.remove()
    exit(0)
}
guard let target = Target(rawValue: arguments[1]) else { usage() }

#if FUZZING
nonisolated(unsafe) var fuzzTarget = target
nonisolated(unsafe) var fuzzWorkspace = workspace

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

// libFuzzer sees argv without the target name.
var driverArguments = [arguments[0]] + arguments.dropFirst(2)
var cStrings: [UnsafeMutablePointer<CChar>?] = driverArguments.map { strdup($0) } + [nil]
var argc = Int32(driverArguments.count)
let status = cStrings.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        let bytes = UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size)
        _ = run(fuzzTarget, bytes, fuzzWorkspace)
        return 0
    }
}
workspace.remove()
exit(status)
#else
var failures = 0
for path in arguments.dropFirst(2) {
    let bytes: [UInt8]
    do { bytes = try readFile(path, limit: 1 << 30) } catch { print("\(path): cannot read: \(error)"); failures += 1; continue }
    let outcome = bytes.withUnsafeBytes { run(target, $0, workspace) }
    switch outcome {
    case .accepted(let what): print("\(path): accepted: \(what)")
    case .refused(let why): print("\(path): refused: \(why)")
    }
}
workspace.remove()
exit(failures == 0 ? 0 : 1)
#endif
