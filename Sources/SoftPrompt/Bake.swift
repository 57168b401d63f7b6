import GGUF
import Llama
import ModelConversion
import Quants
import TensorIO
import Tokenizers

#if canImport(Glibc)
import Glibc
#endif

/// Bakes a soft prompt into a copy of a GGUF checkpoint: N new vocabulary tokens whose embedding rows
/// are the prompt's vectors, so that any GGUF runtime (llama.cpp included) applies the prompt when
/// the text starts with those tokens.
///
/// What changes in the copy:
/// - `tokenizer.ggml.tokens` gains the N token texts; `token_type` gains N entries of `tokenType`;
///   `scores` (when present) gains N zeros; merges are unchanged (the new tokens are matched as
///   special text, never built by merges); `<arch>.vocab_size`, when recorded, grows by N.
/// - `token_embd.weight` gains N rows holding the prompt vectors, encoded in `embeddingType`.
/// - The output head gains N rows meant to keep the new tokens from being generated (see
///   `BakeOptions.outputRow`). A tied model gets an explicit `output.weight`: the original token
///   embedding bytes, unchanged, plus the N rows — so the logits of the original vocabulary are
///   exactly those of the original file.
public enum PromptBaker {
    /// `<|sp_TASK_0|>`, `<|sp_TASK_1|>`, …: the default texts of the baked tokens.
    public static func tokenNames(task: String, count: Int) -> [String] {
        (0 ..< count).map { "<|sp_\(task)_\($0)|>" }
    }

    /// What a bake wrote.
    public struct Summary: Sendable {
        /// The id of the first new token (the others follow).
        public var firstTokenID: Int
        /// The new token texts.
        public var tokenNames: [String]
        /// The type the token embedding is stored in.
        public var embeddingType: GGMLType
        /// The largest absolute difference between a prompt value and its stored row (0 for f32).
        public var maxRoundingError: Float
        /// Whether the copy has an `output.weight` the original lacked.
        public var untiedOutput: Bool
    }

    /// Options of `bakeGGUF`.
    public struct Options: Sendable {
        /// The type of the new token rows; `CONTROL` by default (rendered only on request, matched as
        /// special text by llama.cpp's tokenizer when special parsing is on).
        public var tokenType: TokenType = .control
        /// The storage type of the extended token embedding; nil keeps the original type (the prompt
        /// rows are then rounded to it; the original rows keep their bytes).
        public var embeddingType: GGMLType?
        /// The output-head row given to every new token. Nil: zeros. `PromptBaker.suppressionRow`
        /// makes one that drives their logits far below every other token's.
        public var outputRow: [Float]?

        public init(tokenType: TokenType = .control, embeddingType: GGMLType? = nil, outputRow: [Float]? = nil) {
            self.tokenType = tokenType
            self.embeddingType = embeddingType
            self.outputRow = outputRow
        }
    }

    /// Text the suppression row is calibrated on: prose, dialogue markup, code, numbers, other languages.
    static let calibrationText = """
        Once upon a time, in a village near the forest, there lived a girl who loved to read. Every \
        evening she walked to the old library, where the keeper told her stories about distant lands.
        <|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital \
        of France?<|im_end|>\n<|im_start|>assistant\nThe capital of France is Paris.<|im_end|>
        def add(a, b):\n    return a + b  # 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 = 55\nprint(add(2, 40))
        SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name; -- 2024-05-17 13:45:00
        Die Hauptstadt von Deutschland ist Berlin. La capitale de l'Italie est Rome. 東京は日本の首都です。 \
        Москва — столица России. El perro corre por el parque.
        Name: Olga\nLanguage: Russian\nName: Hiroshi\nLanguage: Japanese\nName: Pierre\nLanguage:
        {"key": [true, null, 3.14], "list": ["a", "b"]} <div class="note">x &lt; y</div> $E = mc^2$
        Q: If a train travels 60 miles in 1.5 hours, what is its speed? A: 40 miles per hour.
        !!! ??? ... --- *** ### >>> <<< ||| ~~~ ```
        """

    /// An output-head row for the baked tokens that keeps them from being generated.
    ///
    /// A row `w` gives the logit `w·h` for the final (normed) hidden state `h`. No single token's row
    /// is negative for every `h` (on SmolLM2-135M every token reaches a logit ≥ 12.9 somewhere in
    /// 1199 positions of varied text), and the mean hidden direction is not either (cosine down to
    /// −0.14), but a direction separating the hidden states of text from zero exists: this finds
    /// one on `calibrationText` and scales it so that the largest logit it gives there is `-scale`.
    ///
    /// The hidden states are recovered from the logits (`l = W h`, solved by least squares over
    /// `2 × width` spread rows of the output head); the direction minimises a soft maximum of `w·h`
    /// over the positions on the unit sphere (gradient steps, sharpening 0.3 → 1 → 3).
    /// - Parameters:
    ///   - model: The model.
    ///   - tokenizer: Its tokenizer.
    ///   - scale: Where the calibration's largest new-token logit is put, below zero (e.g. 30).
    /// - Returns: The row (`hiddenSize` floats; zeros when no separating direction was found), and
    ///   the largest `w·h` of the unit direction over the calibration positions (negative on success).
    /// - Throws: `ModelError` from the forward pass.
    public static func suppressionRow(model: LlamaModel, tokenizer: Tokenizer, scale: Float) throws
        -> (row: [Float], margin: Double) {
        let C = model.config.hiddenSize, V = model.config.vocabSize
        let ids = Array(tokenizer.encode(calibrationText, addSpecial: true).prefix(min(1024, model.config.maxPositionEmbeddings)))
        let session = try InferenceSession(model: model, capacity: ids.count)
        let logits = try session.forward([.tokens(ids)], logits: .all)
        let T = ids.count
        // Least squares over m spread rows: (WsᵀWs) h = Wsᵀ l.
        let m = min(V, 2 * C)
        let rows = (0 ..< m).map { $0 * V / m }
        var Ws = [Double](repeating: 0, count: m * C)
        for (k, r) in rows.enumerated() {
            for (j, v) in model.output.weight.dequantizedRow(r).enumerated() { Ws[k * C + j] = Double(v) }
        }
        var G = [Double](repeating: 0, count: C * C)
        for k in 0 ..< m {
            for i in 0 ..< C {
                let a = Ws[k * C + i]
                if a == 0 { continue }
                for j in 0 ... i { G[i * C + j] += a * Ws[k * C + j] }
            }
        }
        guard let L = cholesky(&G, C) else { return ([Float](repeating: 0, count: C), .infinity) }
        var hidden = [Double](repeating: 0, count: T * C)
        for p in 0 ..< T {
            var b = [Double](repeating: 0, count: C)
            for (k, r) in rows.enumerated() {
                let l = Double(logits[p * V + r])
                for j in 0 ..< C { b[j] += Ws[k * C + j] * l }
            }
            let h = solve(L, b, C)
            for j in 0 ..< C { hidden[p * C + j] = h[j] }
        }
        // Soft-max minimisation of w·h over the unit sphere, from minus the mean direction.
        var w = [Double](repeating: 0, count: C)
        for p in 0 ..< T { for j in 0 ..< C { w[j] -= hidden[p * C + j] } }
        normalize(&w)
        var dots = [Double](repeating: 0, count: T)
        func project() { for p in 0 ..< T { var s = 0.0; for j in 0 ..< C { s += w[j] * hidden[p * C + j] }; dots[p] = s } }
        for beta in [0.3, 1.0, 3.0] {
            for _ in 0 ..< 300 {
                project()
                let top = dots.max() ?? 0
                var weights = dots.map { exp(beta * ($0 - top)) }
                let total = weights.reduce(0, +)
                for p in 0 ..< T { weights[p] /= total }
                var g = [Double](repeating: 0, count: C)
                for p in 0 ..< T where weights[p] > 1e-12 {
                    for j in 0 ..< C { g[j] += weights[p] * hidden[p * C + j] }
                }
                for j in 0 ..< C { w[j] -= 0.01 * g[j] }
                normalize(&w)
            }
        }
        project()
        let margin = dots.max() ?? 0
        guard margin < 0 else { return ([Float](repeating: 0, count: C), margin) }
        let factor = Double(scale) / -margin
        return (w.map { Float($0 * factor) }, margin)
    }

    private static func normalize(_ v: inout [Double]) {
        let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if n > 0 { for i in v.indices { v[i] /= n } }
    }

    /// In-place Cholesky factor (lower triangle) of a symmetric positive-definite n × n matrix whose
    /// lower triangle is filled; nil when it is not positive definite.
    private static func cholesky(_ a: inout [Double], _ n: Int) -> [Double]? {
        for j in 0 ..< n {
            var d = a[j * n + j]
            for k in 0 ..< j { d -= a[j * n + k] * a[j * n + k] }
            guard d > 0 else { return nil }
            let r = d.squareRoot()
            a[j * n + j] = r
            for i in j + 1 ..< n {
                var s = a[i * n + j]
                for k in 0 ..< j { s -= a[i * n + k] * a[j * n + k] }
                a[i * n + j] = s / r
            }
        }
        return a
    }

    /// Solves L Lᵀ x = b.
    private static func solve(_ L: [Double], _ b: [Double], _ n: Int) -> [Double] {
        var y = b
        for i in 0 ..< n {
            var s = y[i]
            for k in 0 ..< i { s -= L[i * n + k] * y[k] }
            y[i] = s / L[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = y[i]
            for k in i + 1 ..< n { s -= L[k * n + i] * y[k] }
            y[i] = s / L[i * n + i]
        }
        return y
    }

    /// Writes a copy of `source` with the prompt baked in as new tokens.
    /// - Parameters:
    ///   - source: The original checkpoint (llama-family GGUF with a token embedding and a vocabulary).
    ///   - prompt: The prompt; its width must be the embedding length.
    ///   - names: The new token texts, one per prompt vector, absent from the vocabulary.
    ///   - path: The new file (written atomically).
    ///   - options: Token type, embedding storage type, output rows.
    /// - Returns: What was written.
    /// - Throws: `SpromptError` (`.invalidValue` for an unusable checkpoint, names or options), or the
    ///   writer's `GGUFError`, or `QuantError` from re-encoding.
    @discardableResult
    public static func bakeGGUF(source: GGUFFile, prompt: SoftPrompt, names: [String], to path: String,
                                options: Options = Options()) throws -> Summary {
        func invalid(_ message: String) -> SpromptError { SpromptError(.invalidValue, message, path: source.path) }
        guard let embedding = source.tensor(named: "token_embd.weight"), embedding.shape.count == 2 else {
            throw invalid("no two-dimensional token_embd.weight")
        }
        let width = embedding.shape[0], vocab = embedding.shape[1], n = prompt.tokens
        guard prompt.width == width else { throw invalid("the prompt's width \(prompt.width) is not the model's \(width)") }
        guard prompt.nonFiniteCount == 0 else { throw invalid("the prompt holds NaN or infinite values") }
        guard names.count == n else { throw invalid("\(names.count) token names for \(n) prompt vectors") }
        guard let tokens = source.stringArray("tokenizer.ggml.tokens"), tokens.count == vocab else {
            throw invalid("tokenizer.ggml.tokens is missing or does not have \(vocab) entries")
        }
        let existing = Set(tokens)
        guard Set(names).count == n, names.allSatisfy({ !$0.isEmpty && !existing.contains($0) }) else {
            throw invalid("the new token names must be distinct, non-empty and absent from the vocabulary")
        }
        if let row = options.outputRow, row.count != width || row.contains(where: { !$0.isFinite }) {
            throw invalid("the output row must hold \(width) finite values")
        }
        let arch = source.string("general.architecture") ?? "llama"

        // Metadata: everything copied, the vocabulary arrays extended.
        var writer = GGUFWriter()
        for entry in source.metadata {
            var value = entry.value
            switch entry.key {
            case "tokenizer.ggml.tokens":
                value = .array(GGUFArray(strings: tokens + names))
            case "tokenizer.ggml.token_type":
                guard let types = entry.value.arrayValue?.values(as: Int32.self), types.count == vocab else {
                    throw invalid("tokenizer.ggml.token_type is not \(vocab) int32 values")
                }
                value = .array(GGUFArray(types + [Int32](repeating: options.tokenType.rawValue, count: n)))
            case "tokenizer.ggml.scores":
                guard let scores = entry.value.arrayValue?.values(as: Float.self), scores.count == vocab else {
                    throw invalid("tokenizer.ggml.scores is not \(vocab) float32 values")
                }
                value = .array(GGUFArray(scores + [Float](repeating: 0, count: n)))
            case "\(arch).vocab_size":
                guard let old = entry.value.intValue, old == vocab else {
                    throw invalid("\(arch).vocab_size disagrees with token_embd.weight (\(vocab) rows)")
                }
                value = entry.value.type == .uint64 ? .uint64(UInt64(vocab + n))
                    : entry.value.type == .int32 ? .int32(Int32(vocab + n)) : .uint32(UInt32(vocab + n))
            default:
                break
            }
            try writer.addMetadata(entry.key, value)
        }
        if source["tokenizer.ggml.token_type"] == nil {
            let types = [Int32](repeating: TokenType.normal.rawValue, count: vocab)
                + [Int32](repeating: options.tokenType.rawValue, count: n)
            try writer.addMetadata("tokenizer.ggml.token_type", .array(GGUFArray(types)))
        }

        // The token embedding, extended.
        let embeddingType = options.embeddingType ?? embedding.type
        let rowBytes = embedding.byteCount / vocab
        let originalData = source.data(for: embedding)
        var promptBytes: [UInt8] = []
        var maxError: Float = 0
        for t in 0 ..< n {
            let row = Array(prompt.vectors[t * width ..< (t + 1) * width])
            let encoded = try row.withUnsafeBufferPointer { try Quantization.quantize(embeddingType, $0) }
            let decoded = try encoded.withUnsafeBytes { try Quantization.dequantize(embeddingType, bytes: $0, count: width) }
            for i in 0 ..< width { maxError = max(maxError, abs(decoded[i] - row[i])) }
            promptBytes += encoded
        }
        let sourceType = embedding.type
        try writer.addTensor(name: embedding.name, type: embeddingType, shape: [width, vocab + n]) { emit in
            if embeddingType == sourceType {
                try emit(originalData)
            } else {
                for r in 0 ..< vocab {
                    let row = UnsafeRawBufferPointer(rebasing: originalData[r * rowBytes ..< (r + 1) * rowBytes])
                    let values = try Quantization.dequantize(sourceType, bytes: row, count: width)
                    let encoded = try values.withUnsafeBufferPointer { try Quantization.quantize(embeddingType, $0) }
                    try encoded.withUnsafeBytes { try emit($0) }
                }
            }
            try promptBytes.withUnsafeBytes { try emit($0) }
        }

        // The output head: the original rows unchanged plus one row per new token.
        let outputRow = options.outputRow ?? [Float](repeating: 0, count: width)
        let output = source.tensor(named: "output.weight")
        let head = output ?? embedding
        guard head.shape == [width, vocab] else { throw invalid("output.weight is not \(width) × \(vocab)") }
        let headRow = try outputRow.withUnsafeBufferPointer { try Quantization.quantize(head.type, $0) }
        let headData = source.data(for: head)
        for info in source.tensors where info.name != embedding.name {
            if info.name == "output.weight" { continue }
            try writer.addTensor(copying: info, of: source)
        }
        try writer.addTensor(name: "output.weight", type: head.type, shape: [width, vocab + n]) { emit in
            try emit(headData)
            for _ in 0 ..< n { try headRow.withUnsafeBytes { try emit($0) } }
        }
        try writer.write(to: path)
        return Summary(firstTokenID: vocab, tokenNames: names, embeddingType: embeddingType,
                       maxRoundingError: maxError, untiedOutput: output == nil)
    }

    /// Writes a Hugging Face directory holding `source` with the prompt baked in: `model.safetensors`
    /// with `embed_tokens` and an untied `lm_head` extended by N rows, `tokenizer.json` listing the new
    /// tokens as special added tokens, `config.json` with the new `vocab_size`.
    ///
    /// The bake goes through a temporary GGUF file in a `TemporaryDirectory` beside `directory` (removed
    /// afterwards, or by the next bake or conversion to `directory` if this process is killed) and the
    /// package's GGUF → Hugging Face conversion; the token embedding is stored as f32 there so that
    /// the directory (f32 unless every matrix is f16 or bf16) holds the prompt vectors exactly.
    /// - Parameters: as `bakeGGUF`, with `directory` the directory to create (absent or empty).
    /// - Throws: As `bakeGGUF`, or `ConversionError`.
    @discardableResult
    public static func bakeHuggingFace(source: GGUFFile, prompt: SoftPrompt, names: [String], directory: String,
                                       options: Options = Options(), threads: Int = 1) throws -> Summary {
        var options = options
        if options.embeddingType == nil { options.embeddingType = .f32 }
        let scratch = try TemporaryDirectory(beside: directory)
        defer { scratch.remove() }
        let temporary = scratch.path + "/baked.gguf"
        let summary = try bakeGGUF(source: source, prompt: prompt, names: names, to: temporary, options: options)
        try ModelConversion.convertGGUFToHuggingFace(try GGUFFile(path: temporary), directory: directory, threads: threads)
        return summary
    }

    /// As `bakeHuggingFace(source:…)` for a Hugging Face directory: converted to a temporary GGUF
    /// file (each tensor keeps its dtype), baked, converted back.
    @discardableResult
    public static func bakeHuggingFace(sourceDirectory: String, prompt: SoftPrompt, names: [String], directory: String,
                                       options: Options = Options(), threads: Int = 1) throws -> Summary {
        let scratch = try TemporaryDirectory(beside: directory)
        defer { scratch.remove() }
        let temporary = scratch.path + "/source.gguf"
        try ModelConversion.convertHuggingFaceToGGUF(directory: sourceDirectory, path: temporary, threads: threads)
        return try bakeHuggingFace(source: try GGUFFile(path: temporary), prompt: prompt, names: names,
                                   directory: directory, options: options, threads: threads)
    }
}
