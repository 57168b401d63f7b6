import SoftPrompt
import TensorIO
import Tokenizers

/// One labelled row of a task: `{"input": …, "output": …, "choices": […]}`.
public struct TaskExample: Sendable, Equatable {
    public var input: String
    /// The expected continuation (the loss is computed on its tokens only).
    public var output: String
    /// The candidate outputs for rank classification; when present, `output` must be one of them.
    public var choices: [String]?

    public init(input: String, output: String, choices: [String]? = nil) {
        self.input = input
        self.output = output
        self.choices = choices
    }
}

/// A problem with a dataset file, located by line.
public struct DatasetError: Error, Sendable, CustomStringConvertible {
    public var path: String
    /// 1-based line number (0: the file as a whole).
    public var line: Int
    public var message: String
    public init(path: String, line: Int, _ message: String) {
        self.path = path
        self.line = line
        self.message = message
    }
    public var description: String { line > 0 ? "\(path):\(line): \(message)" : "\(path): \(message)" }
}

/// A JSONL task file: one JSON object per line, blank lines ignored.
public struct TaskDataset: Sendable {
    public var examples: [TaskExample]
    /// SHA-256 of the file's bytes (hex): the dataset's identity in provenance records.
    public var sha256: String
    public var path: String
    /// Whether special-token text in the rows (`<|im_start|>`, `<|im_end|>`, …) becomes the special
    /// token, as transformers' tokenizer call and llama.cpp's `parse_special` do (the default), or stays
    /// text. The switch is per dataset: the training and the held-out file can differ.
    public var parseSpecial = true

    /// Largest dataset file read (bytes).
    public static let maxFileSize = 1 << 30

    public init(examples: [TaskExample], sha256: String, path: String) {
        self.examples = examples
        self.sha256 = sha256
        self.path = path
    }

    /// Reads and checks a JSONL file: each line an object with string `input` and `output`, optional
    /// `choices` (a non-empty array of distinct strings containing `output`); other keys are ignored.
    /// - Parameters:
    ///   - path: The JSONL file.
    ///   - parseSpecial: Whether special-token text in the rows is parsed (see `parseSpecial`).
    /// - Throws: `DatasetError` naming the line and the problem.
    public static func load(path: String, parseSpecial: Bool = true) throws(DatasetError) -> TaskDataset {
        let bytes: [UInt8]
        do { bytes = try readFile(path, limit: maxFileSize) } catch {
            throw DatasetError(path: path, line: 0, "cannot read: \(error)")
        }
        var dataset = try parse(bytes, path: path)
        dataset.parseSpecial = parseSpecial
        return dataset
    }

    /// Parses JSONL bytes. See `load(path:)`.
    public static func parse(_ bytes: [UInt8], path: String = "<memory>") throws(DatasetError) -> TaskDataset {
        var examples: [TaskExample] = []
        var lineNumber = 0
        var start = 0
        while start < bytes.count {
            var end = start
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            lineNumber += 1
            var lineEnd = end
            if lineEnd > start && bytes[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let line = bytes[start ..< lineEnd]
            start = end + 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            let value: JSONValue
            do { value = try JSON.parse(Array(line)) } catch {
                throw DatasetError(path: path, line: lineNumber, error.description)
            }
            guard let object = value.objectValue else {
                throw DatasetError(path: path, line: lineNumber, "expected a JSON object")
            }
            guard let input = object["input"]?.stringValue else {
                throw DatasetError(path: path, line: lineNumber, "\"input\" must be a string")
            }
            guard let output = object["output"]?.stringValue else {
                throw DatasetError(path: path, line: lineNumber, "\"output\" must be a string")
            }
            var choices: [String]?
            if let raw = object["choices"], !raw.isNull {
                guard let array = raw.arrayValue, !array.isEmpty else {
                    throw DatasetError(path: path, line: lineNumber, "\"choices\" must be a non-empty array of strings")
                }
                var list: [String] = []
                for item in array {
                    guard let s = item.stringValue else {
                        throw DatasetError(path: path, line: lineNumber, "\"choices\" must hold strings only")
                    }
                    guard !list.contains(s) else {
                        throw DatasetError(path: path, line: lineNumber, "\"choices\" repeats \(quoted(s))")
                    }
                    list.append(s)
                }
                guard list.contains(output) else {
                    throw DatasetError(path: path, line: lineNumber, "\"output\" \(quoted(output)) is not one of the choices")
                }
                choices = list
            }
            guard !output.isEmpty else {
                throw DatasetError(path: path, line: lineNumber, "\"output\" is empty: there is nothing to learn or score")
            }
            examples.append(TaskExample(input: input, output: output, choices: choices))
        }
        guard !examples.isEmpty else { throw DatasetError(path: path, line: 0, "no examples") }
        return TaskDataset(examples: examples, sha256: SHA256.hex(SHA256.hash(bytes)), path: path)
    }

    /// The distinct choices of the dataset, in order of first appearance (the label set for `labels` init).
    public var labels: [String] {
        var seen: [String] = []
        for e in examples { for c in e.choices ?? [] where !seen.contains(c) { seen.append(c) } }
        return seen
    }
}

/// `s` as a JSON string literal, for messages.
func quoted(_ s: String) -> String {
    var out: [UInt8] = []
    JSON.appendString(s, to: &out)
    return String(decoding: out, as: UTF8.self)
}

/// An example as token ids: the context (optional hard prompt, then the rendered template) and the
/// continuations. The soft prompt, when any, goes before all of it.
public struct EncodedExample: Sendable, Equatable {
    public var context: [Int32]
    public var output: [Int32]
    /// Token ids of each choice (empty when the example has no choices).
    public var choices: [[Int32]]
    /// Index of `output` among the choices.
    public var answer: Int?

    public init(context: [Int32], output: [Int32], choices: [[Int32]] = [], answer: Int? = nil) {
        self.context = context
        self.output = output
        self.choices = choices
        self.answer = answer
    }
}

/// Tokenizes examples the same way for training and evaluation: the context and each continuation are
/// tokenized separately and concatenated (so every choice is scored after the same context tokens).
public struct ExampleEncoder: Sendable {
    public let tokenizer: Tokenizer
    public let template: PromptTemplate
    /// Text placed before the rendered template (a hand-written instruction), or empty.
    public let hardPrompt: String

    public init(tokenizer: Tokenizer, template: PromptTemplate, hardPrompt: String = "") {
        self.tokenizer = tokenizer
        self.template = template
        self.hardPrompt = hardPrompt
    }

    /// Encodes the rows of `dataset` (the first `limit`), with its special-token switch.
    public func encode(_ dataset: TaskDataset, limit: Int = .max) -> [EncodedExample] {
        dataset.examples.prefix(limit).map { encode($0, parseSpecial: dataset.parseSpecial) }
    }

    /// Encodes one row.
    /// - Parameters:
    ///   - example: The row.
    ///   - parseSpecial: Whether special-token text in the hard prompt, the template, the input, the
    ///     output and the choices becomes special tokens (see `TaskDataset.parseSpecial`).
    public func encode(_ example: TaskExample, parseSpecial: Bool) -> EncodedExample {
        // BOS (when the model wants one) opens the context; nothing adds BOS/EOS to the continuations.
        var context: [Int32] = []
        if tokenizer.addsBOS, let bos = tokenizer.specialTokens.bos { context.append(bos) }
        context += tokenizer.encode(hardPrompt + template.render(example.input), addSpecial: false, parseSpecial: parseSpecial)
        let output = tokenizer.encode(example.output, addSpecial: false, parseSpecial: parseSpecial)
        let choices = (example.choices ?? []).map { tokenizer.encode($0, addSpecial: false, parseSpecial: parseSpecial) }
        return EncodedExample(context: context, output: output, choices: choices,
                              answer: example.choices?.firstIndex(of: example.output))
    }
}
