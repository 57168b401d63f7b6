import SoftPrompt
import Testing

/// The `{input}` rule (Formats/sprompt.md §5), checked and rendered in one place.
@Suite struct TemplateTests {
    @Test func templateNeedsAPlaceholderAndReplacesEach() throws {
        #expect(try PromptTemplate("Q: {input}\nA:").render("hi") == "Q: hi\nA:")
        #expect(throws: TemplateError(text: "no placeholder")) { try PromptTemplate("no placeholder") }
        #expect(try PromptTemplate("{input} = {input}?").render("x") == "x = x?")
        // An input holding the placeholder is not expanded again.
        #expect(try PromptTemplate("[{input}]").render("{input}") == "[{input}]")
        #expect(!PromptTemplate.isValid("{Input}") && !PromptTemplate.isValid("{input") && PromptTemplate.isValid("a{input}b"))
    }

    @Test func storedTemplateDefaultsToIdentity() throws {
        #expect(try PromptTemplate(stored: nil) == .identity)
        #expect(try PromptTemplate(stored: nil).render("abc") == "abc")
        #expect(try PromptTemplate(stored: "<{input}>").render("abc") == "<abc>")
        #expect(throws: TemplateError.self) { try PromptTemplate(stored: "none") }
        #expect(TemplateError(text: "a\"b").description == #"template "a\"b" must contain {input}"#)
    }

    /// The reader and the writer apply the same rule: a template without `{input}` is refused on write.
    @Test func writerRefusesATemplateWithoutPlaceholder() {
        let prompt = SoftPrompt(name: "t", vectors: [1, 2], width: 2, template: "no placeholder")
        #expect { try PromptFile(model: nil, prompts: [prompt]).encode() } throws: { error in
            (error as? SpromptError)?.kind == .invalidTemplate
        }
    }
}
