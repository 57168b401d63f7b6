#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import TensorIO

extension SoftPrompt {
    /// The prompt's values as the file stores them: little-endian, in `dtype` (f16 and bf16 rounded to
    /// nearest, ties to even, exactly as the writer rounds them).
    public var storedBytes: [UInt8] {
        var bytes: [UInt8] = []
        PayloadCodec.encode(vectors, as: dtype, into: &bytes)
        return bytes
    }

    /// The *vector checksum*: SHA-256 (64 lowercase hex digits) of `storedBytes`, the prompt's values
    /// as stored in a `.sprompt` payload. Two prompts read from files with equal checksums feed the model
    /// identical vectors; a bank update that leaves a prompt's checksum unchanged left its stored bytes
    /// unchanged. (A prompt built in memory with dtype f16 or bf16 holds float32 values that the file will
    /// round; its checksum is that of the rounded values, which is what readers of the file get.)
    public var vectorsSHA256: String { SHA256.hex(SHA256.hash(storedBytes)) }
}

/// Operations on a `.sprompt` file as a bank of named prompts: add, replace, remove, with the model
/// checks of `Formats/sprompt.md` section 4.4.
///
/// Every prompt a change does not name is carried over bit-identically: values are held as float32 in
/// memory and f16/bf16 widen to float32 exactly, so re-encoding reproduces the stored bytes.
public enum PromptBank {
    /// What an admission check found acceptable but worth saying (another quantization, an unknown model).
    public typealias Notes = [String]

    /// Checks, without changing anything, that a prompt named `name` of `width` values per token, made
    /// for `model`, may join `bank`.
    /// - Parameters:
    ///   - name: The prompt's name in the bank.
    ///   - width: Its vector length.
    ///   - model: The fingerprint of the model it was trained for (nil: unknown).
    ///   - bank: The bank's current contents; nil when the bank does not exist yet.
    ///   - replace: Whether an existing prompt of that name may be replaced.
    /// - Returns: Notes on accepted differences (another quantization of the same base model; a side
    ///   without fingerprint or weights sketch).
    /// - Throws: `SpromptError` `.duplicatePromptName` (the name exists and `replace` is false),
    ///   `.invalidPromptName`, `.widthMismatch` (the width differs from the bank's), `.modelMismatch`
    ///   (the fingerprints compare as different models).
    public static func checkAdmission(name: String, width: Int, model: ModelFingerprint?, into bank: PromptFile?,
                                      replace: Bool) throws(SpromptError) -> Notes {
        if let problem = PromptName.problem(name) {
            throw SpromptError(.invalidPromptName, "prompt name \(name.debugDescription): \(problem)")
        }
        guard let bank else { return [] }
        if !replace, bank.prompts.contains(where: { $0.name == name }) {
            throw SpromptError(.duplicatePromptName,
                               "the bank already holds a prompt named '\(name)' (replace it explicitly)")
        }
        let others = bank.prompts.filter { $0.name != name }
        let bankWidth = bank.model?.embeddingLength ?? others.first?.width
        if let bankWidth, bankWidth != width {
            throw SpromptError(.widthMismatch, "prompt '\(name)' has width \(width); the bank's prompts have width \(bankWidth)")
        }
        var notes: Notes = []
        switch (bank.model, model) {
        case let (ours?, theirs?):
            switch ours.compare(to: theirs) {
            case .same: break
            case .sameBaseOtherQuantization:
                notes.append("'\(name)' was made for another quantization of the bank's model (same base weights)")
            case .unknown(let why):
                notes.append("cannot tell whether '\(name)' was made for the bank's model: \(why)")
            case .different(let why):
                throw SpromptError(.modelMismatch, "prompt '\(name)' was made for another model than the bank's: \(why)")
            }
        case (nil, _?):
            notes.append("the bank records no model; the fingerprint of '\(name)' is not kept")
        case (_?, nil):
            notes.append("'\(name)' records no model; assuming it belongs to the bank's")
        case (nil, nil):
            break
        }
        return notes
    }

    /// Adds `prompt` to `bank` (or creates the bank), after `checkAdmission`.
    /// - Parameters:
    ///   - prompt: The prompt; its name is its name in the bank.
    ///   - model: The fingerprint of its model; a new bank takes it as its own.
    ///   - bank: The bank, nil to create one; on return, the updated bank. A replaced prompt keeps its
    ///     place; a new one goes last. No other prompt is touched.
    ///   - replace: Whether a prompt of the same name may be replaced.
    /// - Returns: Notes from the admission check, and whether a prompt was replaced.
    /// - Throws: As `checkAdmission`.
    @discardableResult
    public static func add(_ prompt: SoftPrompt, model: ModelFingerprint?, to bank: inout PromptFile?,
                           replace: Bool) throws(SpromptError) -> (notes: Notes, replaced: Bool) {
        let notes = try checkAdmission(name: prompt.name, width: prompt.width, model: model, into: bank, replace: replace)
        guard var file = bank else {
            bank = PromptFile(model: model, prompts: [prompt])
            return (notes, false)
        }
        var replaced = false
        if let index = file.prompts.firstIndex(where: { $0.name == prompt.name }) {
            file.prompts[index] = prompt
            replaced = true
        } else {
            guard file.prompts.count < PromptFile.maxPrompts else {
                throw SpromptError(.invalidValue, "a bank holds at most \(PromptFile.maxPrompts) prompts")
            }
            file.prompts.append(prompt)
        }
        bank = file
        return (notes, replaced)
    }

    /// Removes the prompt named `name`.
    /// - Returns: The removed prompt.
    /// - Throws: `.promptNotFound` when there is no such prompt; `.noPrompts` when it is the last one (a
    ///   `.sprompt` file holds at least one prompt: delete the file instead).
    @discardableResult
    public static func remove(_ name: String, from bank: inout PromptFile) throws(SpromptError) -> SoftPrompt {
        guard let index = bank.prompts.firstIndex(where: { $0.name == name }) else {
            _ = try bank.prompt(named: name)  // throws .promptNotFound with the list of names
            throw SpromptError(.promptNotFound, "no prompt named '\(name)'")
        }
        guard bank.prompts.count > 1 else {
            throw SpromptError(.noPrompts, "'\(name)' is the bank's only prompt; a bank cannot be empty (delete the file instead)")
        }
        return bank.prompts.remove(at: index)
    }

    /// Renames the prompt `old` to `new`.
    /// - Throws: `.promptNotFound`, `.duplicatePromptName` (the new name exists), `.invalidPromptName`.
    public static func rename(_ old: String, to new: String, in bank: inout PromptFile) throws(SpromptError) {
        guard let index = bank.prompts.firstIndex(where: { $0.name == old }) else {
            _ = try bank.prompt(named: old)
            throw SpromptError(.promptNotFound, "no prompt named '\(old)'")
        }
        if old == new { return }
        if let problem = PromptName.problem(new) {
            throw SpromptError(.invalidPromptName, "prompt name \(new.debugDescription): \(problem)")
        }
        if bank.prompts.contains(where: { $0.name == new }) {
            throw SpromptError(.duplicatePromptName, "the bank already holds a prompt named '\(new)'")
        }
        bank.prompts[index].name = new
    }

    /// Reads, changes and atomically rewrites the bank at `path`, holding `PATH.lock` meanwhile so that
    /// concurrent updates do not lose each other's changes.
    ///
    /// The lock is a file created exclusively (`O_EXCL`) and removed afterwards; a process killed while
    /// holding it leaves it behind, and the next update names it (remove it once no update runs). The
    /// bank itself is replaced by rename: a reader sees the old bank or the new one, never a mix.
    /// - Parameters:
    ///   - path: The bank; absent = `body` receives nil (and creates the bank by setting a value).
    ///   - body: Changes the contents; leaving nil (or throwing) writes nothing.
    /// - Returns: What `body` returns.
    /// - Throws: `SpromptError` from reading, from `body`, from writing, or `.io` when the lock is held.
    @discardableResult
    public static func update<R>(path: String,
                                 _ body: (inout PromptFile?) throws(SpromptError) -> R) throws(SpromptError) -> R {
        let lockPath = path + ".lock"
        let fd = open(lockPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 {
            let code = errno
            if code == EEXIST {
                throw SpromptError(.io, "another update of the bank is in progress (\(lockPath) exists; if no update is running, "
                                   + "a killed one left it: remove it)", path: path)
            }
            throw SpromptError(.io, "cannot create the lock \(lockPath): \(String(cString: strerror(code)))", path: path)
        }
        close(fd)
        defer { unlink(lockPath) }
        var file: PromptFile? = fileExists(path) ? try PromptFile.read(path: path) : nil
        let result = try body(&file)
        if let file { try file.write(to: path) }
        return result
    }
}
