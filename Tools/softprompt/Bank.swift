import ArgumentParser
import SoftPrompt
import TensorIO

/// `softprompt bank`: a `.sprompt` file as a bank of task prompts for one model.
struct Bank: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage a prompt bank: one .sprompt file holding a prompt per task for one model.",
        discussion: """
            Every change rewrites the bank atomically (a reader sees the old bank or the new one) under a lock \
            file BANK.lock, and carries every prompt it does not name over bit-identically: `bank list` prints \
            each prompt's vector checksum (SHA-256 of its stored bytes) to check it. A prompt joins a bank only \
            when its width and model fingerprint agree with the bank's (another quantization of the same base \
            model, or a side without fingerprint, is accepted with a note).
            """,
        subcommands: [List.self, Add.self, Remove.self, Extract.self, Rename.self])

    // MARK: list

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a bank's prompts with their vector checksums.")

        @Argument(help: "The bank (.sprompt).")
        var bank: String

        @OptionGroup var output: JSONOption

        func run() throws {
            let file = try Bank.read(bank)
            if output.json {
                let o: JSONObject = [
                    "bank": .string(bank),
                    "model": file.model.map { Bank.fingerprintJSON($0) } ?? .null,
                    "prompts": .array(file.prompts.map { .object(Bank.promptJSON($0)) }),
                ]
                try JSONOption.print(o, sortedKeys: false)
                return
            }
            print("\(bank): \(file.prompts.count) prompt\(file.prompts.count == 1 ? "" : "s"); model: "
                  + (file.model.map(Bank.fingerprintSummary) ?? "unknown (no fingerprint)"))
            print(Output.table(["name", "tokens", "width", "dtype", "vector sha256", "metrics", "template"], file.prompts.map { p in
                [p.name, String(p.tokens), String(p.width), p.dtype.rawValue, p.vectorsSHA256,
                 Bank.metricsSummary(p.metrics), p.template.map { $0.debugDescription } ?? "-"]
            }, rightAligned: [1, 2]))
        }
    }

    // MARK: add

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a prompt to a bank (creating the bank when it does not exist).",
            discussion: """
                --prompt is any prompt file softprompt reads (.sprompt, PEFT directory, GGUF adapter, .npy, .npz, \
                .safetensors); FILE:TASK (or --task) picks one prompt of a .sprompt or .npz bank. The prompt keeps \
                its stored dtype and bytes.
                """)

        @Argument(help: "The bank (.sprompt); created when absent.")
        var bank: String

        @OptionGroup var selection: PromptSelection

        @Argument(help: .hidden)
        var legacySource: String?

        @Option(help: "Name in the bank (default: the prompt's own name).")
        var name: String?

        @Flag(help: "Replace a prompt of the same name (it keeps its place).")
        var replace = false

        @OptionGroup var output: JSONOption

        mutating func validate() throws {
            try selection.adopt(legacy: legacySource, command: "bank add BANK")
            if selection.prompt == nil { throw ValidationError("give the prompt to add: --prompt FILE[:TASK]") }
        }

        func run() throws {
            let reference = try selection.reference { "" }!
            let sourceFile = try reference.readFile()
            var prompt = try reference.prompt(in: sourceFile)
            if let name { prompt.name = name }
            let added = prompt
            let (notes, replaced) = try Bank.wrap { () throws(SpromptError) in
                try PromptBank.update(path: bank) { (file: inout PromptFile?) throws(SpromptError) in
                    try PromptBank.add(added, model: sourceFile.model, to: &file, replace: replace)
                }
            }
            for note in notes { Output.error("note: \(note)") }
            if output.json {
                var o = Bank.promptJSON(added)
                o["bank"] = .string(bank)
                o["action"] = .string(replaced ? "replaced" : "added")
                o["notes"] = .array(notes.map { .string($0) })
                try JSONOption.print(o, sortedKeys: false)
            } else {
                print("\(replaced ? "replaced" : "added") '\(added.name)' (\(added.tokens) × \(added.width) \(added.dtype.rawValue), "
                      + "vectors \(added.vectorsSHA256.prefix(16))…) in \(bank)")
            }
        }
    }

    // MARK: remove

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a prompt from a bank.")

        @Argument(help: "The bank (.sprompt).")
        var bank: String

        @Argument(help: "The prompt's name.")
        var task: String

        @OptionGroup var output: JSONOption

        func run() throws {
            guard fileExists(bank) else { throw CLIError("\(bank): no such bank") }
            let removed = try Bank.wrap { () throws(SpromptError) in
                try PromptBank.update(path: bank) { (file: inout PromptFile?) throws(SpromptError) -> SoftPrompt in
                    guard var contents = file else { throw SpromptError(.io, "no such bank", path: bank) }
                    let removed = try PromptBank.remove(task, from: &contents)
                    file = contents
                    return removed
                }
            }
            if output.json {
                var o = Bank.promptJSON(removed)
                o["bank"] = .string(bank)
                o["action"] = "removed"
                try JSONOption.print(o, sortedKeys: false)
            } else {
                print("removed '\(removed.name)' from \(bank)")
            }
        }
    }

    // MARK: extract

    struct Extract: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write one prompt of a bank to its own file (any format; from the name of --out).")

        @Argument(help: "The bank (.sprompt).")
        var bank: String

        @Argument(help: "The prompt's name.")
        var task: String

        @Option(help: "The output: .sprompt, .npy, .npz, .gguf (adapter), .safetensors, or a PEFT directory.")
        var out: String?

        @Argument(help: .hidden)
        var legacyOut: String?

        @OptionGroup var dtypeOption: PromptDTypeOption

        @OptionGroup var output: JSONOption

        mutating func validate() throws {
            out = try Deprecation.merge(legacyOut, as: "bank extract BANK TASK OUT (OUT as an argument)", into: out, newName: "--out OUT")
            if out == nil { throw ValidationError("give where to write it: --out PATH") }
        }

        func run() throws {
            let out = self.out!
            let file = try Bank.read(bank)
            var prompt = try Bank.wrap { () throws(SpromptError) in try file.prompt(named: task) }
            if let dtype = dtypeOption.dtype { prompt.dtype = dtype }
            do {
                try PromptConversion.write(PromptFile(model: file.model, prompts: [prompt], metadata: file.metadata), to: out)
            } catch {
                throw CLIError(error.description)
            }
            if output.json {
                var o = Bank.promptJSON(prompt)
                o["bank"] = .string(bank)
                o["out"] = .string(out)
                o["action"] = "extracted"
                try JSONOption.print(o, sortedKeys: false)
            } else {
                print("wrote '\(prompt.name)' (vectors \(prompt.vectorsSHA256.prefix(16))…) to \(out)")
            }
        }
    }

    // MARK: rename

    struct Rename: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Rename a prompt of a bank.")

        @Argument(help: "The bank (.sprompt).")
        var bank: String

        @Argument(help: "The current name.")
        var old: String

        @Argument(help: "The new name.")
        var new: String

        @OptionGroup var output: JSONOption

        func run() throws {
            guard fileExists(bank) else { throw CLIError("\(bank): no such bank") }
            try Bank.wrap { () throws(SpromptError) in
                try PromptBank.update(path: bank) { (file: inout PromptFile?) throws(SpromptError) in
                    guard var contents = file else { throw SpromptError(.io, "no such bank", path: bank) }
                    try PromptBank.rename(old, to: new, in: &contents)
                    file = contents
                }
            }
            if output.json {
                let o: JSONObject = ["bank": .string(bank), "action": "renamed", "old": .string(old), "new": .string(new)]
                try JSONOption.print(o, sortedKeys: false)
            } else {
                print("renamed '\(old)' to '\(new)' in \(bank)")
            }
        }
    }

    // MARK: Helpers

    static func read(_ path: String) throws -> PromptFile {
        try wrap { () throws(SpromptError) in try PromptFile.read(path: path) }
    }

    /// Runs `body`, turning a `SpromptError` into a one-line CLI error.
    static func wrap<R>(_ body: () throws(SpromptError) -> R) throws -> R {
        do { return try body() } catch { throw CLIError(error.description) }
    }

    static func promptJSON(_ p: SoftPrompt) -> JSONObject {
        ["name": .string(p.name), "tokens": .int(Int64(p.tokens)), "width": .int(Int64(p.width)),
         "dtype": .string(p.dtype.rawValue), "vectors_sha256": .string(p.vectorsSHA256),
         "template": p.template.map { .string($0) } ?? .null, "metrics": .object(p.metrics)]
    }

    static func fingerprintJSON(_ m: ModelFingerprint) -> JSONValue {
        ["architecture": .string(m.architecture), "embedding_length": .int(Int64(m.embeddingLength)),
         "layer_count": .int(Int64(m.layerCount)), "vocab_size": .int(Int64(m.vocabSize)),
         "tokenizer_sha256": m.tokenizerHash.map { .string($0) } ?? .null,
         "weights_rows_sha256": m.weightsHash.map { .string($0) } ?? .null,
         "sketch_values": m.sketch.map { .int(Int64($0.count)) } ?? .null]
    }

    static func fingerprintSummary(_ m: ModelFingerprint) -> String {
        var parts = ["\(m.architecture), width \(m.embeddingLength), \(m.layerCount) layers, vocabulary \(m.vocabSize)"]
        parts.append("tokenizer " + (m.tokenizerHash.map { $0.prefix(12) + "…" } ?? "unknown"))
        if let sketch = m.sketch {
            parts.append("weights sketch v\(m.sketchVersion) × \(sketch.count)" + (m.weightsHash.map { ", rows " + $0.prefix(12) + "…" } ?? ""))
        } else {
            parts.append("weights unknown")
        }
        return parts.joined(separator: "; ")
    }

    static func metricsSummary(_ metrics: JSONObject) -> String {
        if metrics.isEmpty { return "-" }
        return metrics.map { key, value in
            switch value {
            case .double(let d): return "\(key)=\(Output.fixed(d, 4))"
            case .int(let i): return "\(key)=\(i)"
            case .string(let text): return "\(key)=\(text)"
            default: return "\(key)=…"
            }
        }.joined(separator: " ")
    }
}
