import ArgumentParser
import GGUF
import Llama
import ModelConversion
import Quants
import TensorIO

/// `softprompt convert-model`: GGUF file ↔ Hugging Face directory.
struct ConvertModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert-model",
        abstract: "Convert a model between a GGUF file and a Hugging Face directory.",
        discussion: """
            -m/--model is a .gguf file or a Hugging Face directory (config.json, tokenizer.json, \
            model.safetensors or a sharded index); --out is the other kind. llama, mistral and qwen2 models with a byte-level \
            BPE tokenizer are supported. Tensor names and the Q/K row permutation are described in \
            Formats/tensor-names.md.

            GGUF → directory: --dtype f32, f16 or bf16 (default: f16/bf16 when every matrix already is, \
            f32 otherwise; quantized weights are dequantized). --out must not exist or be empty.
            Directory → GGUF: --dtype f32, f16, bf16, q8_0, q4_0, q4_1 or q4_k for the weight matrices \
            (default: keep each dtype); norms and biases stay f32. As llama.cpp's quantizer, the output head \
            stays at q6_k/q8_0 and rows that do not fill whole blocks fall back to q5_0 / q8_0 / f16.
            """)

    @OptionGroup var modelOption: ModelOption

    @Option(help: "Where to write the converted model.")
    var out: String?

    @Argument(help: .hidden)
    var legacyInput: String?

    @Argument(help: .hidden)
    var legacyOutput: String?

    @Option(help: "Weight type (default: see above).")
    var dtype: ModelConversion.WeightType?

    @OptionGroup var threadsOption: ThreadsOption

    @Option(help: "general.name of a GGUF written from a directory (default: the directory's name).")
    var name: String?

    @OptionGroup var output: JSONOption

    mutating func validate() throws {
        modelOption.model = try Deprecation.merge(legacyInput, as: "convert-model IN (an argument)",
                                                  into: modelOption.model, newName: "-m/--model IN")
        out = try Deprecation.merge(legacyOutput, as: "convert-model IN OUT (OUT as an argument)", into: out, newName: "--out OUT")
        if out == nil { throw ValidationError("give where to write the converted model: --out PATH") }
    }

    func run() throws {
        let input = try ModelLocator.resolve(modelOption.model)
        let (type, output, threads) = (dtype, out!, threadsOption.threads)
        let start = Output.now()
        let summary: ModelConversion.Summary
        do {
            if isDirectory(input) {
                summary = try ModelConversion.convertHuggingFaceToGGUF(directory: input, path: output, type: type,
                                                                       name: name, threads: threads)
            } else {
                if name != nil { throw CLIError("--name applies to a GGUF written from a directory") }
                let gguf = try GGUFFile(path: input)
                summary = try ModelConversion.convertGGUFToHuggingFace(gguf, directory: output, dtype: type, threads: threads)
            }
        } catch let error as ConversionError {
            throw CLIError(error.description)
        } catch let error as GGUFError {
            throw CLIError(error.description)
        }
        if self.output.json {
            var o: JSONObject = [
                "out": .string(summary.output), "tensors": .int(Int64(summary.tensorCount)),
                "bytes": .int(Int64(summary.bytesWritten)), "seconds": .double(Output.now() - start),
                "by_type": .object(JSONObject(summary.typeCounts.map { ($0.key.name, .int(Int64($0.value))) })),
            ]
            o["substitutions"] = .object(JSONObject(Dictionary(grouping: summary.substitutions, by: \.type)
                .map { ($0.key.name, .int(Int64($0.value.count))) }))
            try JSONOption.print(o)
            return
        }
        let types = summary.typeCounts.sorted { $0.value > $1.value }.map { "\($0.value) \($0.key.name)" }.joined(separator: ", ")
        print("wrote \(summary.output): \(summary.tensorCount) tensors (\(types)), \(Output.bytes(summary.bytesWritten)) "
              + "in \(Output.fixed(Output.now() - start, 1)) s")
        if !summary.substitutions.isEmpty {
            let counts = Dictionary(grouping: summary.substitutions, by: \.type).map { "\($0.value.count) as \($0.key.name)" }
            print("stored in another type than asked (output head, or rows not divisible into blocks): "
                  + counts.sorted().joined(separator: ", "))
        }
    }
}
