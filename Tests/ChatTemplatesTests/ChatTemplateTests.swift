import GGUF
@testable import ChatTemplates
import TensorIO
import Testing
import TestSupport

/// Chat templates against renders by `transformers`' own Jinja renderer (Tools/scripts/gen_chat_fixtures.py):
/// 26 real template strings (Tests/Fixtures/chat/templates, sources in the README there) over 14
/// conversations, byte for byte, including every case where the template raises.
struct ChatTemplateTests {
    struct Fixture {
        let conversations: [String: [ChatMessage]]
        let templates: [JSONValue]
        let unsupported: [String]
    }

    static func loadFixture() throws -> Fixture {
        let document = try JSON.parse(try readFile(TestSupport.fixture("chat/renders.json")))
        var conversations: [String: [ChatMessage]] = [:]
        for (name, value) in try #require(document["conversations"]?.objectValue) {
            conversations[name] = try #require(value.arrayValue).map { message in
                ChatMessage(try #require(ChatMessage.Role(rawValue: message["role"]?.stringValue ?? "")),
                            try #require(message["content"]?.stringValue))
            }
        }
        return Fixture(conversations: conversations,
                       templates: try #require(document["templates"]?.arrayValue),
                       unsupported: try #require(document["unsupported"]?.arrayValue).map { $0.stringValue! })
    }

    static func templateText(_ name: String) throws -> String {
        String(decoding: try readFile(TestSupport.fixture("chat/templates/\(name).jinja")), as: UTF8.self)
    }

    @Test func everyFixtureTemplateIsRecognisedInItsFamily() throws {
        let fixture = try Self.loadFixture()
        for entry in fixture.templates {
            let name = entry["name"]!.stringValue!
            let template = try ChatTemplate(template: try Self.templateText(name), bosToken: "<s>", eosToken: "</s>")
            #expect(template.family.rawValue == entry["family"]!.stringValue!, "\(name)")
        }
    }

    @Test func renderingMatchesJinjaByteForByte() throws {
        let fixture = try Self.loadFixture()
        var checked = 0, refusals = 0
        for entry in fixture.templates {
            let name = entry["name"]!.stringValue!
            let template = try ChatTemplate(template: try Self.templateText(name),
                                            bosToken: entry["bos_token"]!.stringValue!,
                                            eosToken: entry["eos_token"]!.stringValue!)
            let date = entry["variables"]?["date_string"]?.stringValue
            for result in try #require(entry["results"]?.arrayValue) {
                let conversation = result["conversation"]!.stringValue!
                let generationPrompt = result["add_generation_prompt"]!.boolValue!
                let messages = try #require(fixture.conversations[conversation])
                let label = "\(name) / \(conversation) / add_generation_prompt=\(generationPrompt)"
                if let expected = result["output"]?.stringValue {
                    do {
                        let rendered = try template.render(messages, addGenerationPrompt: generationPrompt, date: date)
                        // Compare bytes: String equality would accept canonically equivalent text.
                        #expect(Array(rendered.utf8) == Array(expected.utf8), "\(label)\nexpected: \(expected.debugDescription)\nrendered: \(rendered.debugDescription)")
                    } catch {
                        Issue.record("\(label): threw \(error), expected \(expected.debugDescription)")
                    }
                } else {
                    let jinjaError = result["error"]!.stringValue!
                    #expect(throws: ChatTemplateError.self, "\(label) should raise \(jinjaError)") {
                        try template.render(messages, addGenerationPrompt: generationPrompt, date: date)
                    }
                    // A template's own raise_exception message is reproduced word for word.
                    if jinjaError.hasPrefix("TemplateError: ") {
                        do {
                            _ = try template.render(messages, addGenerationPrompt: generationPrompt, date: date)
                        } catch {
                            #expect("TemplateError: " + error.message == jinjaError, "\(label)")
                        }
                    }
                    refusals += 1
                }
                checked += 1
            }
        }
        #expect(checked > 400 && refusals > 50)
    }

    @Test func defaultSystemPromptsAreExtractedFromTheTemplate() throws {
        let expected = [
            "smollm2-135m-instruct": "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
            "qwen1.5-0.5b": "You are a helpful assistant",
            "qwen2-7b-instruct": "You are a helpful assistant.",
            "qwen2.5-3b-instruct": "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
            "chatml-openhermes": nil,
        ]
        for (name, system) in expected {
            let template = try ChatTemplate(template: try Self.templateText(name), bosToken: "", eosToken: "")
            #expect(template.defaultSystemPrompt == system, "\(name)")
        }
    }

    @Test func unsupportedTemplatesAreRefusedWithTheFamiliesAndPresetsNamed() throws {
        let fixture = try Self.loadFixture()
        #expect(fixture.unsupported.count >= 5)
        for name in fixture.unsupported + ["__garbage"] {
            let text = name == "__garbage" ? "{{ messages }}" : try Self.templateText(name)
            do {
                _ = try ChatTemplate(template: text, bosToken: "<s>", eosToken: "</s>")
                Issue.record("\(name) was accepted")
            } catch {
                #expect(error.kind == .unsupportedTemplate)
                for family in ChatTemplate.Family.allCases { #expect(error.message.contains(family.rawValue)) }
                #expect(error.message.contains("--chat-template"))
            }
        }
        // A recognised family whose key expression was altered is refused too, not rendered wrongly.
        let smol = try Self.templateText("smollm2-135m-instruct")
        let altered = smol.replacingAll("'<|im_end|>' + '\n'", with: "'<|im_end|>'")  // (a real newline)
        #expect(altered != smol)
        #expect(throws: ChatTemplateError.self) { try ChatTemplate(template: altered, bosToken: "", eosToken: "") }
    }

    @Test func presetsRenderLikeTheTemplatesTheyNameAndUnknownNamesAreRefused() throws {
        let pairs = [("smollm2", "smollm2-135m-instruct"), ("qwen2.5", "qwen2.5-3b-instruct"), ("llama3", "meta-llama-3-8b-instruct"),
                     ("llama3.1", "llama-3.1-8b-instruct"), ("llama2", "llama-2-7b-chat"), ("mistral", "mistral-7b-instruct-v0.1"),
                     ("mistral-v3", "mistral-7b-instruct-v0.3"), ("mistral-v3-tekken", "mistral-nemo-instruct-2407"),
                     ("mistral-legacy", "mistral-legacy"), ("zephyr", "tinyllama-1.1b-chat-v1.0"), ("gemma", "gemma-2b-it"),
                     ("gemma3", "gemma-3-1b-it"), ("phi3", "phi-3-mini-4k-instruct"), ("phi3.5", "phi-3.5-mini-instruct"),
                     ("phi3-small", "phi-3-small-8k-instruct"), ("chatml", "chatml-openhermes"), ("qwen2", "qwen2-7b-instruct")]
        for (preset, file) in pairs {
            let named = try ChatTemplate(named: preset, bosToken: "<s>", eosToken: "</s>")
            let parsed = try ChatTemplate(template: try Self.templateText(file), bosToken: "<s>", eosToken: "</s>")
            #expect(named == parsed, "\(preset) vs \(file)")
        }
        #expect(Set(ChatTemplate.presetNames).count == ChatTemplate.presetNames.count)
        do {
            _ = try ChatTemplate(named: "vicuna", bosToken: "", eosToken: "")
            Issue.record("an unknown preset was accepted")
        } catch {
            #expect(error.kind == .unknownName("vicuna"))
            #expect(error.message.contains("chatml") && error.message.contains("phi3"))
        }
    }

    @Test func llama32UsesTodayUnlessADateIsGiven() throws {
        let template = try ChatTemplate(template: try Self.templateText("llama-3.2-3b-instruct"), bosToken: "", eosToken: "")
        let today = ChatTemplate.currentDate()
        #expect(today.utf8.count == 11 && today.split(separator: " ").count == 3)
        let rendered = try template.render([ChatMessage(.user, "hi")])
        #expect(rendered.contains("Today Date: \(today)\n\n"))
        #expect(try template.render([ChatMessage(.user, "hi")], date: "01 Jan 2000").contains("Today Date: 01 Jan 2000\n"))
    }

    @Test func pythonStripSemantics() {
        #expect(ChatTemplate.trim(" \t\n\u{0B}\u{0C}\r\u{1C}\u{85}\u{A0}\u{2009}\u{3000}x y\u{202F}\u{205F}\u{2028}") == "x y")
        #expect(ChatTemplate.trim("\u{200B}x\u{200B}") == "\u{200B}x\u{200B}")  // zero-width space is not a space
        #expect(ChatTemplate.trim("   ") == "")
        #expect(Array(ChatTemplate.trim("e\u{301} ").unicodeScalars) == ["e", "\u{301}"])
        #expect(Array(ChatTemplate.trim(" \r\n").utf8) == [])
    }

    @Test(.enabled(if: TestSupport.defaultModelPath != nil, "default model not fetched"))
    func defaultModelTemplateFromGGUF() throws {
        let gguf = try GGUFFile(path: TestSupport.defaultModelPath!)
        let template = try ChatTemplate(gguf: gguf)
        #expect(template.family == .chatml)
        #expect(template.bosToken == "<|im_start|>" && template.eosToken == "<|im_end|>")
        #expect(template.defaultSystemPrompt == "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        let prompt = try template.render([ChatMessage(.user, "Hi")])
        #expect(prompt == "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
                + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        #expect(try ChatTemplate(gguf: gguf, named: "llama3").family == .llama3)
    }
}
