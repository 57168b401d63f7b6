import TensorIO

/// How an input is turned into the model's context: a template in which every `{input}` is replaced by the
/// input (Formats/sprompt.md §5: at least one occurrence, no escape syntax).
///
/// This is the one place that knows the `{input}` rule: the `.sprompt` reader and writer, the converters,
/// the validator, the trainer's encoder, the server and the CLI all check and render through it.
public struct PromptTemplate: Sendable, Equatable, CustomStringConvertible {
    /// The placeholder that the input replaces.
    public static let placeholder = "{input}"
    /// The template that is the input itself.
    public static let identity = PromptTemplate(unchecked: placeholder)

    public let text: String

    /// - Throws: `TemplateError` unless the text holds `{input}` at least once.
    public init(_ text: String) throws(TemplateError) {
        guard Self.isValid(text) else { throw TemplateError(text: text) }
        self.text = text
    }

    /// The template stored with a prompt, or `identity` when it stores none.
    /// - Throws: `TemplateError` when `text` is given and lacks `{input}`.
    public init(stored text: String?) throws(TemplateError) {
        self = try text.map { (t) throws(TemplateError) in try PromptTemplate(t) } ?? .identity
    }

    private init(unchecked: String) { text = unchecked }

    /// Whether `text` is a valid template (holds `{input}` at least once).
    public static func isValid(_ text: String) -> Bool { text.contains(placeholder) }

    /// The template with every `{input}` replaced by `input`.
    public func render(_ input: String) -> String { text.replacing(Self.placeholder, with: input) }

    public var description: String { text }
}

/// A template text without the `{input}` placeholder.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The rejected template text.
    public var text: String
    public init(text: String) { self.text = text }
    public var description: String {
        var quoted: [UInt8] = []
        JSON.appendString(text, to: &quoted)
        return "template \(String(decoding: quoted, as: UTF8.self)) must contain \(PromptTemplate.placeholder)"
    }
}
