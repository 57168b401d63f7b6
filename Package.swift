// swift-tools-version:6.0
import PackageDescription

/// Module map (dependencies point up; no cycles):
///   CZstd, CJSONC      system libraries (pkg-config)
///   TensorIO           mapped files, bounded cursor, atomic writes, half floats, npy, JSON over json-c
///   Quants             ggml tensor types: block layouts, dequantization, quantization
///   CKernels           C hot kernels over ggml blocks (exact f32 and int8 matmuls, helpers), runtime ISA dispatch
///   Kernels            bounds-checked Swift entry points to CKernels
///   GGUF               GGUF reader / writer
///   Safetensors        safetensors reader / writer, sharded index
///   Tokenizers         byte-level BPE and SentencePiece-style tokenizers (GGUF and tokenizer.json)
///   ChatTemplates      chat templates recognised from a model's Jinja template (or named), rendered natively
///   Llama              llama-family inference and the training pass; loading GGUF files and Hugging Face
///                      directories; finding the model to use (ModelLocator: --model, $SOFTPROMPT_MODEL, cache)
///   ModelConversion    GGUF <-> Hugging Face directory conversion (with quantization)
///   SoftPrompt         the .sprompt sidecar format (prompt banks), the model fingerprint, templates ({input}),
///                      prompt references (FILE[:TASK], MODEL.TASK.sprompt beside the model), static validation,
///                      baking, conversion to/from PEFT, GGUF adapters, .npy/.npz and safetensors
///   PromptTuning       datasets, encoder, initialisation, AdamW + schedules, trainer, checkpoints, evaluator,
///                      the behavioural validation check (metric with vs without the prompt)
///   Serving            continuous-batching engine over a prompt bank, OpenAI-compatible HTTP server (Hummingbird)
///   softprompt (Tools) the command-line interface: argument parsing and printing only
let package = Package(
    name: "SoftPromptKit",
    products: [
        .library(name: "TensorIO", targets: ["TensorIO"]),
        .library(name: "Quants", targets: ["Quants"]),
        .library(name: "Kernels", targets: ["Kernels"]),
        .library(name: "GGUF", targets: ["GGUF"]),
        .library(name: "Safetensors", targets: ["Safetensors"]),
        .library(name: "Tokenizers", targets: ["Tokenizers"]),
        .library(name: "Llama", targets: ["Llama"]),
        .library(name: "ChatTemplates", targets: ["ChatTemplates"]),
        .library(name: "ModelConversion", targets: ["ModelConversion"]),
        .library(name: "SoftPrompt", targets: ["SoftPrompt"]),
        .library(name: "PromptTuning", targets: ["PromptTuning"]),
        .executable(name: "softprompt", targets: ["softprompt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(
            name: "CJSONC", path: "Sources/CJSONC", pkgConfig: "json-c",
            providers: [.apt(["libjson-c-dev"])]),
        .target(name: "TensorIO", dependencies: ["CJSONC"]),
        .target(name: "Quants", dependencies: ["TensorIO"]),
        .target(name: "CKernels", exclude: ["avx2_q8.inc"], linkerSettings: [.linkedLibrary("m")]),
        .target(name: "Kernels", dependencies: ["CKernels", "Quants", "TensorIO"]),
        .executableTarget(name: "kernel-bench", dependencies: ["CKernels"], path: "Tools/kernel-bench"),
        .target(name: "GGUF", dependencies: ["TensorIO", "Quants"]),
        .target(name: "Safetensors", dependencies: ["TensorIO"]),
        .target(name: "Tokenizers", dependencies: ["TensorIO", "GGUF"]),
        .target(name: "Llama", dependencies: ["TensorIO", "Quants", "Kernels", "GGUF", "Safetensors", "Tokenizers"]),
        .target(name: "ChatTemplates", dependencies: ["GGUF"]),
        .target(name: "ModelConversion", dependencies: ["TensorIO", "Quants", "GGUF", "Safetensors", "Tokenizers", "Llama"]),
        .target(name: "SoftPrompt",
                dependencies: ["TensorIO", "CZstd", "Quants", "GGUF", "Safetensors", "Tokenizers", "Llama", "ModelConversion"]),
        .target(name: "PromptTuning", dependencies: ["TensorIO", "Safetensors", "Tokenizers", "Llama", "SoftPrompt"]),
        .target(name: "Serving",
                dependencies: ["TensorIO", "Tokenizers", "Llama", "ChatTemplates", "SoftPrompt",
                               .product(name: "Hummingbird", package: "hummingbird"),
                               .product(name: "HummingbirdCore", package: "hummingbird"),
                               .product(name: "NIOCore", package: "swift-nio"),
                               .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                               .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                               .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "softprompt",
            dependencies: [
                "TensorIO", "Quants", "GGUF", "Safetensors", "Llama", "Kernels", "Tokenizers", "ChatTemplates", "ModelConversion",
                "SoftPrompt", "PromptTuning", "Serving",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tools/softprompt"),
        // libFuzzer targets over every parser of untrusted files (Tools/scripts/fuzz.sh builds them with
        // -DFUZZING -sanitize=fuzzer,address; a plain build replays inputs).
        .executableTarget(
            name: "softprompt-fuzz",
            dependencies: ["TensorIO", "GGUF", "Safetensors", "Tokenizers", "Llama", "SoftPrompt", "PromptTuning"],
            path: "Tools/fuzz"),

        .target(name: "TestSupport", dependencies: ["TensorIO"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorIOTests", dependencies: ["TensorIO", "TestSupport"]),
        .testTarget(name: "QuantsTests", dependencies: ["Quants", "TestSupport"]),
        .testTarget(name: "KernelsTests", dependencies: ["CKernels", "Kernels", "Quants", "TensorIO", "TestSupport"]),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF", "Quants", "TestSupport"]),
        .testTarget(name: "SafetensorsTests", dependencies: ["Safetensors", "TestSupport"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "GGUF", "TensorIO", "CZstd", "TestSupport"]),
        .testTarget(name: "SoftPromptTests",
                    dependencies: ["SoftPrompt", "Llama", "GGUF", "Quants", "Tokenizers", "TensorIO", "CZstd", "TestSupport"]),
        .testTarget(name: "ConvertTests",
                    dependencies: ["SoftPrompt", "Llama", "GGUF", "Safetensors", "Tokenizers", "TensorIO", "TestSupport"]),
        .testTarget(name: "PromptTuningTests", dependencies: ["PromptTuning", "SoftPrompt", "Llama", "Tokenizers", "TensorIO", "GGUF", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["SoftPrompt", "TensorIO", "TestSupport"]),
        .testTarget(name: "MalformedCorpusTests",
                    dependencies: ["GGUF", "Safetensors", "SoftPrompt", "PromptTuning", "Tokenizers", "TensorIO", "TestSupport"]),
        .testTarget(name: "ServingTests",
                    dependencies: ["Serving", "ChatTemplates", "Llama", "SoftPrompt", "Tokenizers", "TensorIO", "TestSupport"]),
        .testTarget(name: "ChatTemplatesTests", dependencies: ["ChatTemplates", "GGUF", "TensorIO", "TestSupport"]),
        .testTarget(name: "ModelConversionTests",
                    dependencies: ["ModelConversion", "Llama", "GGUF", "Safetensors", "Tokenizers", "Quants", "TensorIO", "TestSupport"]),
        .testTarget(name: "LlamaTests", dependencies: ["Llama", "GGUF", "Safetensors", "Tokenizers", "Quants", "TensorIO", "TestSupport"]),
    ]
)
