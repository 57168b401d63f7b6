import ArgumentParser
import GGUF
import TensorIO

/// `softprompt bench`: speed measurements (never timed unit tests).
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed on a model.",
        discussion: """
            Suites:
              open   time to open and index a GGUF file (mmap, header, metadata, tensor table; \
            no tensor data read). Warm the page cache first for a fair figure.
            """)

    enum Suite: String, ExpressibleByArgument, CaseIterable {
        case open
    }

    @Option(name: [.short, .customLong("model")], help: "The model (default: $SOFTPROMPT_MODEL or the default model).")
    var model: String?

    @Option(help: "Which measurement: \(Suite.allCases.map(\.rawValue).joined(separator: ", ")).")
    var suite: Suite = .open

    @Option(help: "Repetitions; the median is reported.")
    var runs = 21

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        if runs < 1 { throw ValidationError("--runs must be at least 1") }
    }

    func run() throws {
        let path = try ModelLocator.resolve(model)
        switch suite {
        case .open: try benchOpen(path)
        }
    }

    private func benchOpen(_ path: String) throws {
        var times: [Double] = []
        var tensors = 0
        var keys = 0
        for _ in 0 ..< runs {
            let start = Output.now()
            let file: GGUFFile
            do { file = try GGUFFile(path: path) } catch { throw CLIError(error.description) }
            times.append(Output.now() - start)
            tensors = file.tensors.count
            keys = file.metadata.count
        }
        times.sort()
        let median = times[times.count / 2] * 1000
        if json {
            let report: JSONValue = [
                "suite": "open", "model": .string(path), "runs": .int(Int64(runs)),
                "median_ms": .double(median), "min_ms": .double(times[0] * 1000),
                "max_ms": .double(times[times.count - 1] * 1000),
                "tensors": .int(Int64(tensors)), "metadata_keys": .int(Int64(keys)),
            ]
            print(try JSON.serialize(report, pretty: true))
        } else {
            print("open+index \(path): median \(Output.fixed(median, 3)) ms over \(runs) runs "
                  + "(min \(Output.fixed(times[0] * 1000, 3)), max \(Output.fixed(times[times.count - 1] * 1000, 3))); "
                  + "\(tensors) tensors, \(keys) metadata keys")
        }
    }
}
