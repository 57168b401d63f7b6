import ArgumentParser
import GGUF
import ChatTemplates
import Llama
import SoftPrompt
import TensorIO
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// `softprompt generate`: run a model on a prompt and stream its continuation.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a model, optionally after raw input embeddings (a soft prompt).",
        discussion: """
            Streams the continuation to stdout as it is produced; prefill and generation speeds go to stderr. \
            By default activations stay float32 against exactly dequantized weights (the path soft prompts are \
            trained through); --int8 quantizes them to 8 bits before the quantized matrix products, as llama.cpp does. \
            With --json nothing is streamed: the text, token counts, speeds, stop reason and seed come as one JSON \
            object at the end.
            """)

    @OptionGroup var modelOption: ModelOption

    @Argument(help: "The prompt text.")
    var text: String?

    @Option(name: .customLong("ids"), help: "Token ids instead of text (comma-separated).")
    var ids: String?

    @Flag(help: "Format the text as a user message with the model's chat template.")
    var chat = false

    @OptionGroup var chatTemplateOption: ChatTemplateOption

    @Option(help: "System message for --chat (default: the template's own, if any).")
    var system: String?

    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "Maximum tokens to generate.")
    var count = 128

    @Option(help: "Sampling temperature (0: greedy).")
    var temp: Float = 0

    @Option(help: "Keep the K most likely tokens (0: off).")
    var topK = 40

    @Option(help: "Nucleus sampling: keep the smallest set with probability mass P (1: off).")
    var topP: Float = 0.95

    @Option(help: "Drop tokens less likely than P times the most likely one (0: off).")
    var minP: Float = 0.05

    @Option(help: "Repetition penalty over the last 64 tokens (1: off).")
    var repeatPenalty: Float = 1

    @Option(help: "Random seed (default: random; printed on stderr).")
    var seed: UInt64?

    @Option(name: .customLong("stop"), help: "Stop when this text is produced (repeatable).")
    var stops: [String] = []

    @OptionGroup var threadsOption: ThreadsOption

    @OptionGroup var int8Option: Int8Option

    @Option(help: "Write the logits of every prompt position to this .npy (float32, [positions, vocab]).")
    var logitsOut: String?

    @Option(help: "Prepend raw input embeddings from this .npy (float32, [n, width]) before the text.")
    var embeddings: String?

    /// The soft prompt, placed before everything; its stored template renders the text.
    @OptionGroup var selection: PromptSelection

    @Flag(help: "With --prompt: do not render the text through the prompt's stored template.")
    var noTemplate = false

    /// `--json`: the text, token counts, speeds, stop reason and seed at the end instead of the streamed text.
    @OptionGroup var output: JSONOption

    var json: Bool { output.json }

    @Flag(help: "Keep special-token text (<|im_start|>, …) as plain text instead of parsing it into special tokens. (--chat always parses the template's markers.)")
    var noSpecial = false

    func validate() throws {
        if selection.isGiven && embeddings != nil { throw ValidationError("--prompt/--task and --embeddings both give leading vectors: choose one") }
        if (text == nil) == (ids == nil) { throw ValidationError("give the prompt as TEXT or as --ids, not both or neither") }
        if chat && ids != nil { throw ValidationError("--chat formats text; it cannot be used with --ids") }
        if count < 0 { throw ValidationError("-n/--max-tokens must be at least 0") }
        if temp < 0 || topK < 0 || topP <= 0 || topP > 1 || minP < 0 || minP > 1 || repeatPenalty <= 0 {
            throw ValidationError("sampling options out of range (temp >= 0, top-k >= 0, 0 < top-p <= 1, 0 <= min-p <= 1, repeat-penalty > 0)")
        }
    }

    func run() throws {
        let loaded = try LoadedModel.load(modelOption.model)
        let threads = threadsOption.threads
        let (path, gguf, llama, tokenizer) = (loaded.path, loaded.gguf, loaded.llama, loaded.tokenizer)
        do {
            var leading: [Float] = []
            var prefixKey: PrefixCache.Key?
            var text = self.text
            if let reference = try selection.reference(modelPath: { loaded.path }) {
                let soft = try reference.read(width: llama.config.hiddenSize)
                leading = soft.vectors
                prefixKey = PrefixCache.Key(task: soft.name, vectorsSHA256: soft.vectorsSHA256)
                if !noTemplate, let stored = soft.template, let input = text {
                    text = try PromptTemplate(stored).render(input)
                    Output.error("rendered through the prompt's template \(stored.debugDescription)")
                }
            }
            if let embeddings {
                leading = try PromptReference(path: embeddings).read(width: llama.config.hiddenSize).vectors
            }
            var request: GenerationPrompt
            if let ids {
                let parsed = ids.split(separator: ",").map { Int32($0.trimmingPrefix(" ")) }
                guard parsed.allSatisfy({ $0 != nil }) else { throw CLIError("--ids takes comma-separated integers") }
                request = .tokens(parsed.map { $0! }, embeddings: leading)
            } else if chat {
                let template: ChatTemplate
                if let gguf {
                    template = try ChatTemplate(gguf: gguf, named: chatTemplateOption.chatTemplate?.name)
                } else {
                    guard let chatTemplate = chatTemplateOption.chatTemplate else {
                        throw CLIError("--chat with a Hugging Face directory needs --chat-template NAME (\(ChatTemplate.presetNames.joined(separator: ", ")))")
                    }
                    let bos = tokenizer.specialTokens.bos.flatMap { tokenizer.text(of: $0) } ?? ""
                    let eos = tokenizer.specialTokens.eos.flatMap { tokenizer.text(of: $0) } ?? ""
                    template = try ChatTemplate(named: chatTemplate.name, bosToken: bos, eosToken: eos)
                }
                var messages: [ChatMessage] = []
                if let system { messages.append(ChatMessage(.system, system)) }
                messages.append(ChatMessage(.user, text!))
                // Templates print BOS themselves when the model wants it: no extra special tokens.
                request = .text(try template.render(messages), embeddings: leading, addSpecial: false, parseSpecial: true)
            } else {
                // Special-token text is parsed as llama.cpp and transformers do, unless --no-special.
                request = .text(text!, embeddings: leading, parseSpecial: !noSpecial)
            }
            let session = try InferenceSession(model: llama, threads: threads, precision: int8Option.precision)
            if let logitsOut { try writePromptLogits(request, tokenizer: tokenizer, session: session, to: logitsOut) }
            if let prefixKey, !isEmpty(request, tokenizer: tokenizer) {
                // The soft prompt's keys and values come from the prefix cache (computed once per prompt and
                // shared by every request in a long-running process); the prefill runs the text only.
                let cache = PrefixCache(budget: 256 << 20)
                let start = Output.now()
                let prefix = try cache.prefix(for: prefixKey) {
                    () throws(ModelError) in try PrefixKV.compute(model: llama, embeddings: leading, threads: threads,
                                                                  precision: session.precision)
                }
                try session.load(prefix: prefix)
                request.embeddings = []
                Output.error("soft prompt: \(prefix.positions) positions from the prefix cache in \(Output.fixed(Output.now() - start, 3)) s "
                             + "(\(cache.statistics.misses == 1 ? "computed" : "cached"), \(Output.bytes(prefix.byteCount)) of keys and values)")
            }
            let sampler = Sampler(SamplingParameters(temperature: temp, topK: topK, topP: topP, minP: minP,
                                                     repeatPenalty: repeatPenalty, seed: seed))
            var generator = Generator(session: session, tokenizer: tokenizer, sampler: sampler)
            var generated = ""
            let summary = try generator.generate(request, options: GenerationOptions(maxTokens: count, stopStrings: stops)) { chunk in
                if json { generated += chunk } else { Output.stream(chunk) }
                return true
            }
            let n = summary.generatedTokens
            if json {
                let o: JSONObject = [
                    "text": .string(generated), "prompt_positions": .int(Int64(summary.promptPositions)),
                    "generated_tokens": .int(Int64(n)), "prefill_seconds": .double(summary.prefillSeconds),
                    "generation_seconds": .double(summary.generationSeconds),
                    "stop_reason": .string("\(summary.stopReason)"), "seed": .string(String(generator.sampler.seed)),
                ]
                try JSONOption.print(o)
                return
            }
            Output.stream("\n")
            Output.error("prefill: \(summary.promptPositions) positions in \(Output.fixed(summary.prefillSeconds, 3)) s "
                         + "(\(Output.fixed(Double(summary.promptPositions) / max(summary.prefillSeconds, 1e-9), 1)) tok/s); "
                         + "generation: \(n) tokens in \(Output.fixed(summary.generationSeconds, 3)) s "
                         + "(\(Output.fixed(Double(n) / max(summary.generationSeconds, 1e-9), 1)) tok/s); "
                         + "stop: \(summary.stopReason); seed \(generator.sampler.seed)")
        } catch let error as ModelError {
            throw CLIError(error.description)
        } catch let error as GGUFError {
            throw CLIError(error.description)
        } catch let error as TokenizerError {
            throw CLIError("\(path): \(error.description)")
        } catch let error as ChatTemplateError {
            throw CLIError("\(error)")
        } catch let error as PromptReferenceError {
            throw CLIError(error.description)  // names the prompt file
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(path): \(error)")
        }
    }

    /// Whether the prompt's content tokenizes to nothing.
    private func isEmpty(_ prompt: GenerationPrompt, tokenizer: Tokenizer) -> Bool {
        switch prompt.content {
        case let .tokens(t): return t.isEmpty
        case let .text(t, addSpecial, parseSpecial): return tokenizer.encode(t, addSpecial: addSpecial, parseSpecial: parseSpecial).isEmpty
        }
    }

    /// Runs the prompt once with logits at every position and writes them as [positions, vocab] float32.
    private func writePromptLogits(_ prompt: GenerationPrompt, tokenizer: Tokenizer, session: InferenceSession,
                                   to path: String) throws {
        let ids: [Int32]
        switch prompt.content {
        case let .tokens(t): ids = t
        case let .text(t, addSpecial, parseSpecial): ids = tokenizer.encode(t, addSpecial: addSpecial, parseSpecial: parseSpecial)
        }
        var inputs: [ModelInput] = []
        if !prompt.embeddings.isEmpty { inputs.append(.embeddings(prompt.embeddings)) }
        inputs.append(.tokens(ids))
        let logits = try session.forward(inputs, logits: .all)
        let V = session.model.config.vocabSize
        try NPY.write(path: path, shape: [logits.count / V, V], values: logits)
        session.reset()
    }
}
