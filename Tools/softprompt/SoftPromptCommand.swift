import ArgumentParser

@main
struct SoftPromptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "softprompt",
        abstract: "Prompt tuning for local models: inspect model files, learn and run soft prompts.",
        version: "0.1.0",
        subcommands: [Inspect.self, Generate.self, Train.self, Eval.self, Convert.self, Validate.self, Attach.self,
                      Bench.self, ConvertModel.self, Bank.self, Explain.self, Serve.self])
}
