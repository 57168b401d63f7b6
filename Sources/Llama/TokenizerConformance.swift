import Tokenizers

/// The real tokenizer drives generation (it already has exactly the methods `Generator` needs).
extension Tokenizer: GenerationTokenizer {}
