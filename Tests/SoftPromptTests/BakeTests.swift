import GGUF
import Llama
import Quants
@testable import SoftPrompt
import TensorIO
import Testing
import TestSupport
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

struct BakeTests {
    static let tiny = TestSupport.fixture("tiny/q8_0.gguf")

    /// A 3-token prompt of the tiny model's width with values of embedding-row size.
    func prompt() -> SoftPrompt {
        SoftPrompt(name: "demo", vectors: randomVectors(3 * 64, seed: 7, scale: 0.3), width: 64, template: "Q: {input}\nA:")
    }

    @Test(arguments: [GGMLType?.none, .f32]) func bakedTokensReproduceTheEmbeddingPath(type: GGMLType?) throws {
        let source = try GGUFFile(path: Self.tiny)
        let original = try LlamaModel(gguf: source)
        let p = prompt()
        let path = TestSupport.temporaryDirectory("bake") + "/baked-\(type?.name ?? "keep").gguf"
        let names = PromptBaker.tokenNames(task: "demo", count: 3)
        #expect(names == ["<|sp_demo_0|>", "<|sp_demo_1|>", "<|sp_demo_2|>"])
        // The tiny model's random weights give no separable hidden states: a fixed row shows placement.
        let outputRow = (0 ..< 64).map { Float($0 % 2 == 0 ? -0.5 : 0.25) }
        let summary = try PromptBaker.bakeGGUF(source: source, prompt: p, names: names, to: path,
                                               options: .init(embeddingType: type, outputRow: outputRow))
        #expect(summary.firstTokenID == 320 && summary.untiedOutput)
        #expect(type == .f32 ? summary.maxRoundingError == 0 : summary.maxRoundingError > 0)

        // Metadata: vocabulary arrays and size extended consistently; merges/other keys untouched.
        let baked = try GGUFFile(path: path)
        #expect(baked.stringArray("tokenizer.ggml.tokens")?.suffix(3) == names[...])
        #expect(baked.array("tokenizer.ggml.token_type")?.values(as: Int32.self)?.suffix(3) == [3, 3, 3])
        #expect(baked.array("tokenizer.ggml.scores")?.count == 323)
        #expect(baked.int("llama.vocab_size") == 323)
        #expect(baked.tensor(named: "token_embd.weight")?.shape == [64, 323])
        #expect(baked.tensor(named: "output.weight")?.shape == [64, 323])
        // The original rows keep their bytes in the output head.
        let head = try #require(baked.tensor(named: "output.weight"))
        let embedding = try #require(source.tensor(named: "token_embd.weight"))
        #expect(Array(baked.data(for: head).prefix(embedding.byteCount)) == Array(source.data(for: embedding)))

        // The baked tokens through the token path == the stored rows through the embedding path.
        let model = try LlamaModel(gguf: baked)
        let tokenizer = try Tokenizer(TokenizerVocabulary(gguf: baked))
        #expect(tokenizer.encode(names.joined() + "Q: hi", addSpecial: false, parseSpecial: true).prefix(3) == [320, 321, 322])
        let stored = (0 ..< 3).flatMap { model.tokenEmbedding.dequantizedRow(320 + $0) }
        let text = tokenizer.encode("Q: hello\nA:", addSpecial: false)
        let viaTokens = try InferenceSession(model: model).forward([.tokens([320, 321, 322] + text)], logits: .all)
        let viaEmbeddings = try InferenceSession(model: original).forward([.embeddings(stored), .tokens(text)], logits: .all)
        let rows = 3 + text.count
        var maxDiff: Float = 0
        for r in 0 ..< rows {
            for v in 0 ..< 320 { maxDiff = max(maxDiff, abs(viaTokens[r * 323 + v] - viaEmbeddings[r * 320 + v])) }
            // The new tokens share one output row: equal logits, as the original model's output row would give.
            let expected = viaTokens[r * 323 + 320]
            #expect(viaTokens[r * 323 + 321] == expected && viaTokens[r * 323 + 322] == expected)
        }
        #expect(maxDiff <= 1e-4, "max |Δlogit| \(maxDiff)")
        if type == .f32 {
            #expect(TestSupport.maxAbsDiff(stored, p.vectors) == 0)
        } else {
            #expect(TestSupport.maxAbsDiff(stored, p.vectors) <= summary.maxRoundingError)
        }
    }

    /// On the real model the suppression row keeps the baked tokens far below the top logit on text
    /// it was not calibrated on.
    @Test(.enabled(if: TestSupport.defaultModelPath != nil)) func suppressionRowOnTheDefaultModel() throws {
        let source = try GGUFFile(path: try #require(TestSupport.defaultModelPath))
        let model = try LlamaModel(gguf: source)
        let tokenizer = try Tokenizer(TokenizerVocabulary(gguf: source))
        let (row, margin) = try PromptBaker.suppressionRow(model: model, tokenizer: tokenizer, scale: 30)
        #expect(margin < 0, "no separating direction (largest w·h \(margin))")
        let text = "The quick brown fox jumps over the lazy dog. Name: Svetlana\nLanguage: Russian\n"
            + "for i in range(10): print(i * i)  # squares\n<|im_start|>user\nTell me a joke.<|im_end|>\n"
        let ids = tokenizer.encode(text, addSpecial: true)
        let V = model.config.vocabSize
        var worstNew = -Double.infinity, smallestGap = Double.infinity
        let path = TestSupport.temporaryDirectory("bake") + "/default-baked.gguf"
        defer { unlink(path) }
        let prompt = SoftPrompt(name: "t", vectors: (0 ..< 2).flatMap { model.tokenEmbedding.dequantizedRow(100 + $0) }, width: 576)
        try PromptBaker.bakeGGUF(source: source, prompt: prompt, names: ["<|sp_t_0|>", "<|sp_t_1|>"], to: path,
                                 options: .init(outputRow: row))
        let baked = try LlamaModel(gguf: try GGUFFile(path: path))
        let bakedLogits = try InferenceSession(model: baked).forward([.tokens([Int32(V), Int32(V + 1)] + ids)], logits: .all)
        for p in 0 ..< ids.count + 2 {
            let base = p * (V + 2)
            var top = -Double.infinity
            for v in 0 ..< V { top = max(top, Double(bakedLogits[base + v])) }
            let new = Double(max(bakedLogits[base + V], bakedLogits[base + V + 1]))
            worstNew = max(worstNew, new)
            smallestGap = min(smallestGap, top - new)
        }
        print("suppression: calibration margin \(margin); held-out new-token logit ≤ \(worstNew), ≥ \(smallestGap) below the top")
        #expect(worstNew < -5 && smallestGap > 15, "new-token logit up to \(worstNew), gap \(smallestGap)")
    }

    /// A Hugging Face copy (byte-level BPE fixture): extended embed_tokens and lm_head, tokenizer.json
    /// added tokens, config vocab_size; exact prompt rows; the same logits as the embedding path.
    @Test func huggingFaceCopy() throws {
        let source = try GGUFFile(path: TestSupport.fixture("tiny/qwen2.gguf"))
        let original = try LlamaModel(gguf: source)
        let dir = TestSupport.temporaryDirectory("bake") + "/qwen2-hf"
        let p = prompt()
        let names = PromptBaker.tokenNames(task: "demo", count: 3)
        let outputRow = (0 ..< 64).map { Float($0 % 3 == 0 ? -0.5 : 0.125) }
        let summary = try PromptBaker.bakeHuggingFace(source: source, prompt: p, names: names, directory: dir,
                                                      options: .init(outputRow: outputRow))
        #expect(summary.embeddingType == .f32 && summary.maxRoundingError == 0)
        let model = try LlamaModel(huggingFaceDirectory: dir)
        let V = original.config.vocabSize
        #expect(model.config.vocabSize == V + 3 && !model.config.tieWordEmbeddings)
        let stored = (0 ..< 3).flatMap { model.tokenEmbedding.dequantizedRow(V + $0) }
        #expect(TestSupport.maxAbsDiff(stored, p.vectors) == 0)
        let tokenizer = try Tokenizer(TokenizerVocabulary(huggingFaceDirectory: dir))
        let firstNew = Int32(V)
        #expect(tokenizer.encode(names.joined() + "hi", addSpecial: false, parseSpecial: true).prefix(3)
                == [firstNew, firstNew + 1, firstNew + 2])
        let text = tokenizer.encode("hello world", addSpecial: false)
        let viaTokens = try InferenceSession(model: model).forward([.tokens([firstNew, firstNew + 1, firstNew + 2] + text)], logits: .all)
        let viaEmbeddings = try InferenceSession(model: original).forward([.embeddings(p.vectors), .tokens(text)], logits: .all)
        var maxDiff: Float = 0
        for r in 0 ..< 3 + text.count {
            for v in 0 ..< V { maxDiff = max(maxDiff, abs(viaTokens[r * (V + 3) + v] - viaEmbeddings[r * V + v])) }
        }
        // The F16 weights convert to an F32 directory exactly; only summation order may differ.
        #expect(maxDiff <= 1e-3, "max |Δlogit| \(maxDiff)")
    }

    @Test func refusesBadInput() throws {
        let source = try GGUFFile(path: Self.tiny)
        let path = TestSupport.temporaryDirectory("bake") + "/bad.gguf"
        let p = prompt()
        #expect(throws: SpromptError.self) {
            try PromptBaker.bakeGGUF(source: source, prompt: p, names: ["a", "b"], to: path)
        }
        #expect(throws: SpromptError.self) {    // an existing token
            try PromptBaker.bakeGGUF(source: source, prompt: p, names: ["<s>", "x1", "x2"], to: path)
        }
        #expect(throws: SpromptError.self) {
            try PromptBaker.bakeGGUF(source: source, prompt: SoftPrompt(name: "w", vectors: [0, 0], width: 2),
                                     names: ["x"], to: path)
        }
    }
}
