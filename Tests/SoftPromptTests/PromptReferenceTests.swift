import Llama
import SoftPrompt
import TensorIO
import TestSupport
import Testing

/// `FILE[:TASK]`, the beside-the-model naming and the model locator's explicit-path rule.
@Suite struct PromptReferenceTests {
    @Test(arguments: [
        ("bank.sprompt:summarize", "bank.sprompt", "summarize"),
        ("bank.npz:t", "bank.npz", "t"),
        ("prompt.sprompt", "prompt.sprompt", nil),
        ("prompt.npy", "prompt.npy", nil),
        // a colon inside the path is not a task separator
        ("/data/run:3/bank.sprompt", "/data/run:3/bank.sprompt", nil),
        ("/data/run:3/bank.sprompt:qa", "/data/run:3/bank.sprompt", "qa"),
        // a colon after a non-bank file is part of the path (a .npy holds one prompt)
        ("C:x.npy", "C:x.npy", nil),
        ("weights.gguf:task", "weights.gguf:task", nil),
        // a task may hold colons: the split is at the first colon after the bank's extension
        ("bank.sprompt:ns:task", "bank.sprompt", "ns:task"),
        // an empty task is kept (and then names no prompt)
        ("bank.sprompt:", "bank.sprompt", ""),
    ] as [(String, String, String?)])
    func splitsFileAndTask(spec: String, path: String, task: String?) {
        let reference = PromptReference(parsing: spec)
        #expect(reference.path == path)
        #expect(reference.task == task)
        #expect(reference.description == spec)
    }

    @Test(arguments: [
        ("/models/SmolLM2.Q4_1.gguf", "/models/SmolLM2.Q4_1.qa.sprompt", "SmolLM2.Q4_1"),
        ("/models/SmolLM2-hf", "/models/SmolLM2-hf.qa.sprompt", "SmolLM2-hf"),
        ("/models/SmolLM2-hf/", "/models/SmolLM2-hf.qa.sprompt", "SmolLM2-hf"),
        ("/models/SmolLM2-hf//", "/models/SmolLM2-hf.qa.sprompt", "SmolLM2-hf"),
        ("m.gguf", "m.qa.sprompt", "m"),
        // only a final .gguf is dropped
        ("/m/x.gguf.bak", "/m/x.gguf.bak.qa.sprompt", "x.gguf.bak"),
    ])
    func namesThePromptBesideTheModel(model: String, beside: String, name: String) {
        #expect(PromptReference.besideModelPath(model, task: "qa") == beside)
        #expect(ModelLocator.name(model) == name)
        #expect(PromptReference.taskName(ofFile: beside) == "qa")
    }

    @Test func besideModelFindsAnExistingFileAndNamesAMissingOne() throws {
        let dir = TestSupport.temporaryDirectory("beside")
        let model = dir + "/tiny.gguf"
        let expected = dir + "/tiny.qa.sprompt"
        #expect(throws: PromptReferenceError.notFound(path: expected, looking: "no prompt for task 'qa' beside the model \(model)")) {
            try PromptReference.besideModel(model, task: "qa")
        }
        let prompt = SoftPrompt(name: "qa", vectors: [1, 2, 3, 4], width: 2, template: "Q: {input}")
        try PromptFile(model: nil, prompts: [prompt]).write(to: expected)
        let found = try PromptReference.besideModel(model, task: "qa")
        #expect(found == PromptReference(path: expected))
        #expect(try found.read(width: 2) == prompt)
    }

    @Test func readChecksTaskWidthAndExistence() throws {
        let dir = TestSupport.temporaryDirectory("reference")
        let bank = dir + "/bank.sprompt"
        let a = SoftPrompt(name: "a", vectors: [1, 2, 3, 4], width: 2)
        let b = SoftPrompt(name: "b", vectors: [5, 6], width: 2)
        try PromptFile(model: nil, prompts: [a, b]).write(to: bank)

        #expect(try PromptReference(parsing: bank + ":b").read(width: 2) == b)
        #expect(try PromptReference(parsing: bank).readFile(width: 2).prompts == [a, b])
        // a bank of two needs a task; an unknown task is named
        for spec in [bank, bank + ":c"] {
            #expect { try PromptReference(parsing: spec).read(width: 2) } throws: { error in
                guard case .promptNotFound(bank, _)? = error as? PromptReferenceError else { return false }
                return true
            }
        }
        #expect { try PromptReference(parsing: bank + ":a").read(width: 3) } throws: { error in
            guard let e = error as? PromptReferenceError else { return false }
            return e == .widthMismatch(path: bank, prompt: "a", tokens: 2, width: 2, modelWidth: 3)
                && e.description == "\(bank): prompt 'a' is 2 × 2; the model's embedding width is 3"
        }
        let missing = dir + "/missing.sprompt"
        #expect { try PromptReference(parsing: missing + ":a").read(width: 2) } throws: { error in
            guard case .notFound(missing, _)? = error as? PromptReferenceError else { return false }
            return (error as? PromptReferenceError)?.description.hasPrefix(missing + ": ") == true
        }
        let garbage = try TestSupport.temporaryFile(Array("not a prompt".utf8), name: "bad.sprompt")
        #expect { try PromptReference(parsing: garbage).read(width: 2) } throws: { error in
            guard case .unreadable(garbage, _)? = error as? PromptReferenceError else { return false }
            return true
        }
    }

    @Test func npyReadsAsOnePromptNamedAfterTheFile() throws {
        let path = TestSupport.temporaryDirectory("npy") + "/init.npy"
        let prompt = SoftPrompt(name: "init", vectors: [1, 2, 3, 4, 5, 6], width: 3)
        try PromptConversion.write(PromptFile(model: nil, prompts: [prompt]), to: path)
        let read = try PromptReference(parsing: path).read(width: 3)
        #expect(read.vectors == prompt.vectors && read.tokens == 2 && read.name == "init")
    }

    @Test func locatorNamesAMissingExplicitModel() {
        let missing = TestSupport.temporaryDirectory("locator") + "/absent.gguf"
        #expect(throws: ModelLoadError.notFound(path: missing)) { try ModelLocator.resolve(missing) }
        #expect(throws: ModelLoadError.notFound(path: missing)) { try LoadedModel.load(missing) }
        #expect(ModelLoadError.notFound(path: missing).description == missing + ": model not found")
    }

    @Test func loadingAFileThatIsNoModelNamesIt() throws {
        let path = try TestSupport.temporaryFile(Array("GGUF but not really".utf8), name: "broken.gguf")
        #expect { try LoadedModel(path: path) } throws: { error in
            guard case .unreadable(path, _)? = error as? ModelLoadError else { return false }
            return (error as? ModelLoadError)?.description.hasPrefix(path + ": ") == true
        }
    }
}
