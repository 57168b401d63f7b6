#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GGUF

/// One turn of a conversation.
public struct ChatMessage: Sendable, Hashable {
    /// Who speaks. Tool calls and tool results are not supported.
    public enum Role: String, Sendable, Hashable, CaseIterable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String

    public init(_ role: Role, _ content: String) {
        self.role = role
        self.content = content
    }
}

/// Why a chat template could not be recognised or a conversation could not be rendered.
public struct ChatTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The template string belongs to none of the supported families.
        case unsupportedTemplate
        /// No preset has this name.
        case unknownName(String)
        /// The model has no `tokenizer.chat_template`.
        case missingTemplate
        /// The template refuses this conversation (it would raise an exception in Jinja).
        case invalidConversation
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// A chat template of one of the common model families, rendered by our own code rather than by a
/// Jinja engine.
///
/// A GGUF's `tokenizer.chat_template` (a Jinja program copied from the model's `tokenizer_config.json`)
/// is recognised by the distinctive expressions of each family and variant, compared after a
/// normalisation that ignores whitespace inside tags, quote style, `-` whitespace control, adjacent
/// string-literal concatenation and `.strip()`/`|trim` spelling. Rendering reproduces what
/// `transformers`' `apply_chat_template` produces with Jinja for system, user and assistant messages,
/// byte for byte, including each template's refusals (`raise_exception`) and its behaviour on edge
/// cases (empty contents, a leading assistant turn, an empty conversation). Hard-coded default system
/// prompts (SmolLM2, Qwen) are extracted from the template string itself.
///
/// Families: ChatML (SmolLM2, Qwen 1.5/2/2.5, OpenHermes, Nous-Hermes 2), Llama 3 and Llama 3.1/3.2,
/// Llama 2 (and CodeLlama), Mistral (the legacy `[INST]` template, the v1 template with a system
/// prompt, v3 and v3-tekken), Zephyr (TinyLlama, StableLM-Zephyr), Gemma (1, 2 and 3) and Phi-3
/// (mini, medium, small, vision, 3.5). Anything else is refused: choose a preset with `init(named:)`.
public struct ChatTemplate: Sendable, Equatable {
    /// The supported template families.
    public enum Family: String, Sendable, CaseIterable {
        case chatml, llama3, llama2, mistral, zephyr, gemma, phi3
    }

    enum DateDefault: Sendable, Equatable {
        case fixed(String)
        /// `strftime_now("%d %b %Y")`: the current local date, as `transformers` renders it.
        case today
    }

    enum Phi3System: Sendable, Equatable { case header, headerIfNonEmpty, drop }
    enum Phi3Prompt: Sendable, Equatable {
        /// `<|assistant|>\n` with the generation prompt, else the EOS text.
        case promptOrEOS
        /// `<|assistant|>\n` with the generation prompt.
        case prompt
        /// `<|assistant|>\n` with the generation prompt unless the last message is the assistant's.
        case promptUnlessLastIsAssistant
        /// Every user turn already ends with `<|assistant|>\n`; nothing at the end.
        case afterEveryUserTurn
    }

    enum Style: Sendable, Equatable {
        case chatml(bos: Bool, defaultSystem: String?, readsFirstMessage: Bool)
        case llama3
        case llama31(date: DateDefault)
        case llama2
        case mistralLegacy(spaceAfterEOS: Bool)
        case mistralV1
        case mistralV3(tekken: Bool)
        case zephyr
        case gemma(bos: Bool, systemPrefix: Bool)
        case phi3(bos: Bool, genericRoles: Bool, system: Phi3System, prompt: Phi3Prompt)

        var family: Family {
            switch self {
            case .chatml: .chatml
            case .llama3, .llama31: .llama3
            case .llama2: .llama2
            case .mistralLegacy, .mistralV1, .mistralV3: .mistral
            case .zephyr: .zephyr
            case .gemma: .gemma
            case .phi3: .phi3
            }
        }
    }

    let style: Style
    /// The text the template's `bos_token` variable holds.
    public var bosToken: String
    /// The text the template's `eos_token` variable holds.
    public var eosToken: String

    /// The family the template belongs to.
    public var family: Family { style.family }

    /// The system prompt the template inserts when the conversation does not start with one.
    public var defaultSystemPrompt: String? {
        if case let .chatml(_, system, _) = style { return system }
        return nil
    }

    init(style: Style, bosToken: String, eosToken: String) {
        self.style = style
        self.bosToken = bosToken
        self.eosToken = eosToken
    }

    // MARK: - Construction

    /// Recognises a Jinja chat template string.
    /// - Parameters:
    ///   - template: the template, as stored in `tokenizer.chat_template` / `tokenizer_config.json`.
    ///   - bosToken: the text of the vocabulary's BOS token (used by templates that print `bos_token`).
    ///   - eosToken: the text of the vocabulary's EOS token.
    /// - Throws: `ChatTemplateError.Kind.unsupportedTemplate` when the template belongs to no supported
    ///   family; the message names the families and the presets to choose from instead.
    public init(template: String, bosToken: String, eosToken: String) throws(ChatTemplateError) {
        guard let style = Self.recognise(template) else {
            throw ChatTemplateError(.unsupportedTemplate, Self.unsupportedMessage)
        }
        self.init(style: style, bosToken: bosToken, eosToken: eosToken)
    }

    /// A preset chosen by name (see `presetNames`), for models whose template is missing or not
    /// recognised.
    /// - Throws: `ChatTemplateError.Kind.unknownName` for a name that is not a preset.
    public init(named name: String, bosToken: String, eosToken: String) throws(ChatTemplateError) {
        guard let style = Self.presets.first(where: { $0.name == name.lowercased() })?.style else {
            throw ChatTemplateError(.unknownName(name),
                                    "unknown chat template '\(name)'; choose one of: \(Self.presetNames.joined(separator: ", "))")
        }
        self.init(style: style, bosToken: bosToken, eosToken: eosToken)
    }

    /// The template of a GGUF model: `tokenizer.chat_template` (or the preset `name` when given), with
    /// the BOS and EOS texts taken from the vocabulary.
    /// - Throws: `ChatTemplateError` when the model has no template and no name is given, or when
    ///   the template or name is not supported.
    public init(gguf: GGUFFile, named name: String? = nil) throws(ChatTemplateError) {
        let tokens = gguf.stringArray("tokenizer.ggml.tokens") ?? []
        func text(_ key: String) -> String {
            guard let id = gguf.int(key), id >= 0, id < tokens.count else { return "" }
            return tokens[id]
        }
        let bos = text("tokenizer.ggml.bos_token_id"), eos = text("tokenizer.ggml.eos_token_id")
        if let name {
            try self.init(named: name, bosToken: bos, eosToken: eos)
        } else if let template = gguf.string("tokenizer.chat_template") {
            try self.init(template: template, bosToken: bos, eosToken: eos)
        } else {
            throw ChatTemplateError(.missingTemplate,
                                    "the model has no tokenizer.chat_template; choose one with --chat-template NAME (one of: \(Self.presetNames.joined(separator: ", ")))")
        }
    }

    /// The names `init(named:)` accepts.
    public static var presetNames: [String] { presets.map(\.name) }

    static let presets: [(name: String, style: Style)] = [
        ("chatml", .chatml(bos: false, defaultSystem: nil, readsFirstMessage: false)),
        ("smollm2", .chatml(bos: false, defaultSystem: "You are a helpful AI assistant named SmolLM, trained by Hugging Face",
                            readsFirstMessage: false)),
        ("qwen2", .chatml(bos: false, defaultSystem: "You are a helpful assistant.", readsFirstMessage: false)),
        ("qwen2.5", .chatml(bos: false, defaultSystem: "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.",
                            readsFirstMessage: true)),
        ("llama3", .llama3),
        ("llama3.1", .llama31(date: .fixed("26 Jul 2024"))),
        ("llama3.2", .llama31(date: .today)),
        ("llama2", .llama2),
        ("mistral", .mistralV1),
        ("mistral-legacy", .mistralLegacy(spaceAfterEOS: false)),
        ("mistral-v3", .mistralV3(tekken: false)),
        ("mistral-v3-tekken", .mistralV3(tekken: true)),
        ("zephyr", .zephyr),
        ("gemma", .gemma(bos: true, systemPrefix: false)),
        ("gemma3", .gemma(bos: true, systemPrefix: true)),
        ("phi3", .phi3(bos: false, genericRoles: false, system: .header, prompt: .promptOrEOS)),
        ("phi3.5", .phi3(bos: false, genericRoles: false, system: .headerIfNonEmpty, prompt: .promptOrEOS)),
        ("phi3-small", .phi3(bos: true, genericRoles: true, system: .header, prompt: .promptOrEOS)),
    ]

    static var unsupportedMessage: String {
        "unrecognised chat template: the supported families are "
            + Family.allCases.map(\.rawValue).joined(separator: ", ")
            + "; choose one with --chat-template NAME (one of: \(presetNames.joined(separator: ", ")))"
    }

    // MARK: - Rendering

    /// Renders a conversation as the model's prompt text.
    /// - Parameters:
    ///   - messages: the conversation.
    ///   - addGenerationPrompt: end with the header that opens the assistant's reply.
    ///   - date: the date Llama 3.1/3.2 templates print ("26 Jul 2024" style); by default the
    ///     template's own default (Llama 3.2: today, as `transformers` renders it).
    /// - Returns: the prompt text. Tokenize it with special-token parsing on and without adding BOS
    ///   again when the template prints `bos_token` itself.
    /// - Throws: `ChatTemplateError.Kind.invalidConversation` where the template raises an exception
    ///   (for instance roles that do not alternate, a system message Gemma 1 refuses, or an empty
    ///   conversation for templates that read its first message).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true,
                       date: String? = nil) throws(ChatTemplateError) -> String {
        var out = ""
        switch style {
        case let .chatml(bos, defaultSystem, readsFirstMessage):
            if readsFirstMessage && messages.isEmpty { throw Self.emptyConversation }
            if bos { out += bosToken }
            for (index, message) in messages.enumerated() {
                if index == 0, message.role != .system, let defaultSystem {
                    out += "<|im_start|>system\n" + defaultSystem + "<|im_end|>\n"
                }
                out += "<|im_start|>" + message.role.rawValue + "\n" + message.content + "<|im_end|>\n"
            }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }

        case .llama3:
            for (index, message) in messages.enumerated() {
                if index == 0 { out += bosToken }
                out += Self.llama3Turn(message.role.rawValue, Self.trim(message.content))
            }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }

        case let .llama31(dateDefault):
            out += bosToken
            guard let first = messages.first else { throw Self.emptyConversation }
            var rest = messages[...]
            var system = ""
            if first.role == .system {
                system = Self.trim(first.content)
                rest = rest.dropFirst()
            }
            let today: String
            switch (date, dateDefault) {
            case let (date?, _): today = date
            case let (nil, .fixed(text)): today = text
            case (nil, .today): today = Self.currentDate()
            }
            out += "<|start_header_id|>system<|end_header_id|>\n\n"
            out += "Cutting Knowledge Date: December 2023\nToday Date: " + today + "\n\n"
            out += system + "<|eot_id|>"
            for message in rest { out += Self.llama3Turn(message.role.rawValue, Self.trim(message.content)) }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }

        case .llama2:
            let (system, turns) = try Self.splitSystem(messages)
            for (index, message) in turns.enumerated() {
                try Self.checkAlternation(message, index, Self.alternationMessage)
                var content = message.content
                if index == 0, let system { content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content }
                switch message.role {
                case .user: out += bosToken + "[INST] " + Self.trim(content) + " [/INST]"
                case .assistant: out += " " + Self.trim(content) + " " + eosToken
                case .system: break
                }
            }

        case let .mistralLegacy(spaceAfterEOS):
            out += bosToken
            for (index, message) in messages.enumerated() {
                try Self.checkAlternation(message, index, Self.alternationMessage)
                switch message.role {
                case .user: out += "[INST] " + message.content + " [/INST]"
                case .assistant: out += message.content + eosToken + (spaceAfterEOS ? " " : "")
                case .system: throw ChatTemplateError(.invalidConversation, "Only user and assistant roles are supported!")
                }
            }

        case .mistralV1:
            let (system, turns) = try Self.splitSystem(messages)
            out += bosToken
            for (index, message) in turns.enumerated() {
                try Self.checkAlternation(message, index, Self.mistralAlternationMessage)
                switch message.role {
                case .user:
                    if index == 0, let system {
                        out += " [INST] " + system + "\n\n" + message.content + " [/INST]"
                    } else {
                        out += " [INST] " + message.content + " [/INST]"
                    }
                case .assistant: out += " " + message.content + eosToken
                case .system: throw ChatTemplateError(.invalidConversation, Self.mistralRolesMessage)
                }
            }

        case let .mistralV3(tekken):
            let (system, turns) = try Self.splitSystem(messages)
            for (index, message) in turns.enumerated() {
                try Self.checkAlternation(message, index, Self.mistralAlternationMessage)
            }
            out += bosToken
            let open = tekken ? "[INST]" : "[INST] "
            for (index, message) in turns.enumerated() {
                switch message.role {
                case .user:
                    if index == turns.count - 1, let system {
                        out += open + system + "\n\n" + message.content + "[/INST]"
                    } else {
                        out += open + message.content + "[/INST]"
                    }
                case .assistant:
                    out += tekken ? message.content + eosToken : " " + Self.trim(message.content) + eosToken
                case .system: throw ChatTemplateError(.invalidConversation, Self.mistralRolesMessage)
                }
            }

        case .zephyr:
            for (index, message) in messages.enumerated() {
                out += "<|" + message.role.rawValue + "|>\n" + message.content + eosToken + "\n"
                if index == messages.count - 1 && addGenerationPrompt { out += "<|assistant|>\n" }
            }

        case let .gemma(bos, systemPrefix):
            if bos { out += bosToken }
            guard let first = messages.first else { throw Self.emptyConversation }
            var turns = messages[...]
            var prefix = ""
            if first.role == .system {
                guard systemPrefix else { throw ChatTemplateError(.invalidConversation, "System role not supported") }
                prefix = first.content + "\n\n"
                turns = turns.dropFirst()
            }
            for (index, message) in turns.enumerated() {
                try Self.checkAlternation(message, index, Self.alternationMessage)
                let role = message.role == .assistant ? "model" : message.role.rawValue
                out += "<start_of_turn>" + role + "\n" + (index == 0 ? prefix : "") + Self.trim(message.content)
                    + "<end_of_turn>\n"
            }
            if addGenerationPrompt { out += "<start_of_turn>model\n" }

        case let .phi3(bos, genericRoles, system, prompt):
            if bos { out += bosToken }
            let userOpensReply = prompt == .afterEveryUserTurn
            for message in messages {
                if genericRoles {
                    out += "<|" + message.role.rawValue + "|>\n" + message.content + "<|end|>\n"
                    continue
                }
                switch message.role {
                case .system:
                    switch system {
                    case .header: out += "<|system|>\n" + message.content + "<|end|>\n"
                    case .headerIfNonEmpty where !message.content.isEmpty: out += "<|system|>\n" + message.content + "<|end|>\n"
                    default: break
                    }
                case .user:
                    out += "<|user|>\n" + message.content + "<|end|>\n" + (userOpensReply ? "<|assistant|>\n" : "")
                case .assistant:
                    out += (userOpensReply ? "" : "<|assistant|>\n") + message.content + "<|end|>\n"
                }
            }
            switch prompt {
            case .promptOrEOS: out += addGenerationPrompt ? "<|assistant|>\n" : eosToken
            case .prompt: if addGenerationPrompt { out += "<|assistant|>\n" }
            case .promptUnlessLastIsAssistant:
                if addGenerationPrompt {
                    guard let last = messages.last else { throw Self.emptyConversation }
                    if last.role != .assistant { out += "<|assistant|>\n" }
                }
            case .afterEveryUserTurn: break
            }
        }
        return out
    }

    static let alternationMessage = "Conversation roles must alternate user/assistant/user/assistant/..."
    static let mistralAlternationMessage =
        "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."
    static let mistralRolesMessage =
        "Only user and assistant roles are supported, with the exception of an initial optional system message!"
    static let emptyConversation = ChatTemplateError(
        .invalidConversation, "the template reads the first message, but the conversation is empty")

    static func llama3Turn(_ role: String, _ content: String) -> String {
        "<|start_header_id|>" + role + "<|end_header_id|>\n\n" + content + "<|eot_id|>"
    }

    /// The leading system message (nil when there is none) and the remaining turns; throws for an
    /// empty conversation, as templates reading `messages[0]` do.
    static func splitSystem(_ messages: [ChatMessage]) throws(ChatTemplateError) -> (String?, ArraySlice<ChatMessage>) {
        guard let first = messages.first else { throw emptyConversation }
        if first.role == .system { return (first.content, messages.dropFirst()) }
        return (nil, messages[...])
    }

    /// The templates' `(role == 'user') != (index % 2 == 0)` check.
    static func checkAlternation(_ message: ChatMessage, _ index: Int, _ text: String) throws(ChatTemplateError) {
        if (message.role == .user) != (index % 2 == 0) { throw ChatTemplateError(.invalidConversation, text) }
    }

    /// Python's `str.strip()` (Jinja's `trim`): removes leading and trailing code points for which
    /// `str.isspace()` is true.
    static func trim(_ text: String) -> String {
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isPythonSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isPythonSpace($0) })!
        return String(scalars[first ... last])
    }

    static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09 ... 0x0D, 0x1C ... 0x20, 0x85, 0xA0, 0x1680, 0x2000 ... 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Today's local date as `strftime("%d %b %Y")` writes it in the C locale ("05 Mar 2025").
    static func currentDate() -> String {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let day = Int(parts.tm_mday)
        return (day < 10 ? "0" : "") + "\(day) " + months[Int(parts.tm_mon)] + " \(1900 + Int(parts.tm_year))"
    }

    // MARK: - Recognition

    /// The family and variant of a template, or nil when it is not one we render.
    static func recognise(_ template: String) -> Style? {
        let t = normalise(template)
        let bos = t.hasPrefix("{{bos_token}}")

        if t.contains("<|start_header_id|>") && t.contains("<|eot_id|>") {
            let turn = "'<|start_header_id|>'+message['role']+'<|end_header_id|>\\n\\n'+message['content']|trim+'<|eot_id|>'"
            guard t.contains(turn) else { return nil }
            if t.contains("'Cutting Knowledge Date: December 2023\\n'") {
                guard t.hasPrefix("{{bos_token}}"), t.contains("'Today Date: '+date_string+'\\n\\n'"),
                      t.contains("{{system_message}}{{'<|eot_id|>'}}") else { return nil }
                if t.contains("strftime_now(") { return .llama31(date: .today) }
                guard let date = literal(in: t, after: "{%setdate_string='") else { return nil }
                return .llama31(date: .fixed(date))
            }
            guard t.contains("{%ifloop.index0==0%}{%setcontent=bos_token+content%}{%endif%}"),
                  t.contains("{%ifadd_generation_prompt%}{{'<|start_header_id|>assistant<|end_header_id|>\\n\\n'}}{%endif%}")
            else { return nil }
            return .llama3
        }

        if t.contains("<|im_start|>") {
            let turn = "{{'<|im_start|>'+message['role']+'\\n'+message['content']+'<|im_end|>\\n'}}"
            guard t.contains(turn), !t.contains("eos_token"),
                  !(bos ? String(t.dropFirst("{{bos_token}}".count)) : t).contains("bos_token"),
                  t.contains("{%ifadd_generation_prompt%}{{'<|im_start|>assistant\\n'}}{%endif%}")
            else { return nil }
            let system = literal(in: t, after: "{{'<|im_start|>system\\n", terminator: "<|im_end|>\\n'}}")
            return .chatml(bos: bos, defaultSystem: system, readsFirstMessage: t.contains("{%ifmessages[0]"))
        }

        if t.contains("<start_of_turn>") {
            if t.contains("{{raise_exception('System role not supported')}}"),
               t.contains("{{'<start_of_turn>'+role+'\\n'+message['content']|trim+'<end_of_turn>\\n'}}") {
                return .gemma(bos: bos, systemPrefix: false)
            }
            if t.contains("first_user_prefix=messages[0]['content']+'\\n\\n'"),
               t.contains("{{'<start_of_turn>'+role+'\\n'+(first_user_prefixifloop.firstelse'')}}"),
               t.contains("{{message['content']|trim}}") {
                return .gemma(bos: bos, systemPrefix: true)
            }
            return nil
        }

        if t.contains("<<SYS>>") && t.contains("[INST]") {
            guard t.contains("'<<SYS>>\\n'+system_message+'\\n<</SYS>>\\n\\n'+message['content']"),
                  t.contains("{{bos_token+'[INST] '+content|trim+' [/INST]'}}"),
                  t.contains("{{' '+content|trim+' '+eos_token}}"),
                  !t.hasPrefix("{{bos_token}}")
            else { return nil }
            return .llama2
        }

        if t.contains("[INST]") {
            if t.contains("{{'[INST] '+system_message+'\\n\\n'+message['content']+'[/INST]'}}"),
               t.contains("{%ifloop.lastandsystem_messageisdefined%}"),
               t.contains("{{' '+message['content']|trim+eos_token}}") {
                return .mistralV3(tekken: false)
            }
            if t.contains("{{'[INST]'+system_message+'\\n\\n'+message['content']+'[/INST]'}}"),
               t.contains("{%ifloop.lastandsystem_messageisdefined%}"),
               t.contains("{{message['content']+eos_token}}") {
                return .mistralV3(tekken: true)
            }
            if t.contains("{{' [INST] '+system_message+'\\n\\n'+message['content']+' [/INST]'}}"),
               t.contains("{{' '+message['content']+eos_token}}") {
                return .mistralV1
            }
            if t.hasPrefix("{{bos_token}}{%formessageinmessages%}"),
               t.contains("{{'[INST] '+message['content']+' [/INST]'}}"), !t.contains("system") {
                if t.contains("{{message['content']+eos_token+' '}}") { return .mistralLegacy(spaceAfterEOS: true) }
                if t.contains("{{message['content']+eos_token}}") { return .mistralLegacy(spaceAfterEOS: false) }
            }
            return nil
        }

        if t.contains("<|end|>") {
            let generic = t.contains("{{'<|'+message['role']+'|>\\n'+message['content']+'<|end|>\\n'}}")
            let prompt: Phi3Prompt
            if t.contains("{%ifadd_generation_prompt%}{{'<|assistant|>\\n'}}{%else%}{{eos_token}}{%endif%}") {
                prompt = .promptOrEOS
            } else if t.contains("{%ifadd_generation_promptandmessages[-1]['role']!='assistant'%}{{'<|assistant|>\\n'}}{%endif%}") {
                prompt = .promptUnlessLastIsAssistant
            } else if t.contains("{%ifadd_generation_prompt%}{{'<|assistant|>\\n'}}{%endif%}") {
                prompt = .prompt
            } else if !generic, !t.contains("add_generation_prompt"),
                      t.contains("{{'<|user|>\\n'+message['content']+'<|end|>\\n<|assistant|>\\n'}}"),
                      t.contains("{{message['content']+'<|end|>\\n'}}") {
                prompt = .afterEveryUserTurn
            } else {
                return nil
            }
            if generic { return .phi3(bos: bos, genericRoles: true, system: .header, prompt: prompt) }
            if prompt != .afterEveryUserTurn {
                guard t.contains("{{'<|user|>\\n'+message['content']+'<|end|>\\n'}}"),
                      t.contains("{{'<|assistant|>\\n'+message['content']+'<|end|>\\n'}}") else { return nil }
            }
            let system: Phi3System
            if t.contains("{{'<|system|>\\n'+message['content']+'<|end|>\\n'}}") {
                system = t.contains("message['role']=='system'andmessage['content']") ? .headerIfNonEmpty : .header
            } else if t.contains("system") {
                return nil  // some other treatment of system messages
            } else {
                system = .drop
            }
            return .phi3(bos: bos, genericRoles: false, system: system, prompt: prompt)
        }

        if t.contains("<|user|>") {
            guard t.contains("{{'<|user|>\\n'+message['content']+eos_token}}"),
                  t.contains("{{'<|system|>\\n'+message['content']+eos_token}}"),
                  t.contains("{{'<|assistant|>\\n'+message['content']+eos_token}}"),
                  t.contains("{%ifloop.lastandadd_generation_prompt%}"), t.contains("{{'<|assistant|>'}}")
            else { return nil }
            return .zephyr
        }
        return nil
    }

    /// A fingerprint of a Jinja template: inside `{{ }}` and `{% %}` tags whitespace is removed,
    /// whitespace control (`-`, `+`) dropped, every string literal re-quoted with `'` and its newlines
    /// and tabs written as `\n` and `\t`, adjacent literals joined (`'a'+'b'` becomes `'ab'`), and
    /// `x.strip()` written `x|trim`, `message.role` / `message.content` written with subscripts.
    /// Comments and whitespace outside tags are dropped; other text outside tags is kept.
    static func normalise(_ template: String) -> String {
        let s = Array(template.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        func starts(_ text: String, at k: Int) -> Bool {
            var k = k
            for c in text.unicodeScalars {
                guard k < s.count, s[k] == c else { return false }
                k += 1
            }
            return true
        }
        while i < s.count {
            if starts("{#", at: i) {
                var j = i + 2
                while j < s.count, !starts("#}", at: j) { j += 1 }
                i = min(s.count, j + 2)
                continue
            }
            guard starts("{{", at: i) || starts("{%", at: i) else {
                if !(s[i] == " " || s[i] == "\t" || s[i] == "\n" || s[i] == "\r") { out.append(s[i]) }
                i += 1
                continue
            }
            let close = s[i + 1] == "{" ? "}}" : "%}"
            out.append(contentsOf: (s[i + 1] == "{" ? "{{" : "{%").unicodeScalars)
            i += 2
            if i < s.count, s[i] == "-" || s[i] == "+" { i += 1 }
            var literal: String.UnicodeScalarView? = nil  // the literal just emitted, for joining
            var pendingPlus = false
            while i < s.count {
                let c = s[i]
                if c == "'" || c == "\"" {
                    var text = String.UnicodeScalarView()
                    i += 1
                    while i < s.count, s[i] != c {
                        if s[i] == "\\", i + 1 < s.count {
                            switch s[i + 1] {
                            case "n": text.append(contentsOf: "\\n".unicodeScalars)
                            case "t": text.append(contentsOf: "\\t".unicodeScalars)
                            case "r": text.append(contentsOf: "\\r".unicodeScalars)
                            case "'": text.append(contentsOf: "\\'".unicodeScalars)
                            case "\"": text.append("\"")
                            default: text.append(s[i]); text.append(s[i + 1])
                            }
                            i += 2
                            continue
                        }
                        switch s[i] {
                        case "\n": text.append(contentsOf: "\\n".unicodeScalars)
                        case "\t": text.append(contentsOf: "\\t".unicodeScalars)
                        case "\r": text.append(contentsOf: "\\r".unicodeScalars)
                        case "'": text.append(contentsOf: "\\'".unicodeScalars)
                        default: text.append(s[i])
                        }
                        i += 1
                    }
                    i += 1
                    if pendingPlus, let previous = literal {
                        // 'a'+'b' becomes 'ab': take back the emitted 'a' and emit the joined literal.
                        out.removeLast(previous.count + 2)
                        literal = previous + text
                    } else {
                        if pendingPlus { out.append("+") }
                        literal = text
                    }
                    pendingPlus = false
                    out.append("'")
                    out.append(contentsOf: literal!)
                    out.append("'")
                    continue
                }
                if c == " " || c == "\t" || c == "\n" || c == "\r" {
                    i += 1
                    continue
                }
                if (c == "-" || c == "+"), starts(close, at: i + 1) { i += 1; continue }
                if starts(close, at: i) {
                    if pendingPlus { out.append("+") }
                    out.append(contentsOf: close.unicodeScalars)
                    i += 2
                    break
                }
                if c == "+", literal != nil, !pendingPlus {
                    pendingPlus = true
                    i += 1
                    continue
                }
                if pendingPlus { out.append("+"); pendingPlus = false }
                literal = nil
                out.append(c)
                i += 1
            }
        }
        var result = String(out)
        for (from, to) in [(".strip()", "|trim"), ("message.role", "message['role']"), ("message.content", "message['content']")] {
            result = result.replacingAll(from, with: to)
        }
        return result
    }

    /// The decoded text of the first literal that starts right after an occurrence of `prefix` in a
    /// normalised template and ends at `terminator` (by default, its closing quote).
    static func literal(in t: String, after prefix: String, terminator: String = "'") -> String? {
        var rest = t[...]
        while let found = rest.scalarRange(of: prefix) {
            rest = rest[found.upperBound...]
            guard let end = rest.scalarRange(of: terminator)?.lowerBound else { return nil }
            if let text = decodeLiteral(rest[..<end]) { return text }
        }
        return nil
    }

    /// The text of a normalised literal's body, or nil when it holds an unescaped quote (the body
    /// then spans several literals).
    static func decodeLiteral(_ raw: Substring) -> String? {
        var out = String.UnicodeScalarView()
        var escaped = false
        for c in raw.unicodeScalars {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                default: out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else if c == "'" {
                return nil
            } else {
                out.append(c)
            }
        }
        return String(out)
    }
}

extension String {
    /// Every occurrence of `target` replaced (no Foundation).
    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = ""
        var rest = self[...]
        while let r = rest.scalarRange(of: target) {
            out += rest[..<r.lowerBound]
            out += replacement
            rest = rest[r.upperBound...]
        }
        out += rest
        return out
    }
}

extension StringProtocol {
    /// The first occurrence of `needle`, compared by Unicode scalars (no Foundation).
    func scalarRange(of needle: String) -> Range<Index>? {
        let hay = unicodeScalars, pin = Array(needle.unicodeScalars)
        guard let first = pin.first else { return startIndex ..< startIndex }
        var i = hay.startIndex
        while i != hay.endIndex {
            if hay[i] == first {
                var j = hay.index(after: i), k = 1
                while k < pin.count, j != hay.endIndex, hay[j] == pin[k] {
                    j = hay.index(after: j)
                    k += 1
                }
                if k == pin.count { return i ..< j }
            }
            i = hay.index(after: i)
        }
        return nil
    }
}
