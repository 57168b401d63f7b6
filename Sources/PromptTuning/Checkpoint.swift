import Safetensors
import TensorIO
import Llama

/// Training checkpoints: a safetensors file (Formats/checkpoint.md) holding the prompt, the optimizer's
/// moments and the best prompt as F32 tensors, and the rest of the state as JSON in `__metadata__`.
/// Written atomically (temp file, fsync, rename), so a crash leaves the previous checkpoint intact.
public enum Checkpoint {
    /// `__metadata__` key holding the state JSON.
    public static let stateKey = "softpromptkit.training_state"
    /// `__metadata__` key holding the run's settings (`TrainingConfig.identity` plus `extra`).
    public static let configKey = "softpromptkit.training_config"
    public static let formatVersion: Int64 = 1

    /// Writes `state` for a run with `config`; `extra` (e.g. the dataset hash and the model) joins the
    /// identity a resume must match.
    public static func write(_ state: TrainingState, config: TrainingConfig, extra: JSONObject = [:],
                             to path: String) throws {
        let n = state.prompt.count
        var writer = SafetensorsWriter()
        try writer.add("prompt", shape: [n], floats: state.prompt)
        try writer.add("adam.m", shape: [n], floats: state.optimizer.m)
        try writer.add("adam.v", shape: [n], floats: state.optimizer.v)
        if let best = state.best { try writer.add("best_prompt", shape: [n], floats: best) }
        var json: JSONObject = [
            "version": .int(formatVersion),
            "step": .int(Int64(state.step)),
            "adam_step": .int(Int64(state.optimizer.step)),
            "best_step": .int(Int64(state.bestStep)),
            "evals_since_best": .int(Int64(state.evalsSinceBest)),
            "stopped_early": .bool(state.stoppedEarly),
            "history": .array(state.history.map(Self.json)),
            "evals": .array(state.evals.map(Self.json)),
        ]
        if let m = state.bestMetric { json["best_metric_bits"] = .string(String(m.bitPattern, radix: 16)) }
        if let l = state.bestLoss { json["best_loss_bits"] = .string(String(l.bitPattern, radix: 16)) }
        writer.metadata[stateKey] = try JSON.serialize(.object(json), sortedKeys: true)
        writer.metadata[configKey] = try JSON.serialize(.object(identity(config, extra: extra)), sortedKeys: true)
        try writer.write(to: path)
    }

    /// The run's identity a checkpoint records and a resume must match: the settings plus `extra`.
    public static func identity(_ config: TrainingConfig, extra: JSONObject) -> JSONObject {
        var id = config.identity
        for (k, v) in extra { id[k] = v }
        return id
    }

    /// Reads a checkpoint and checks it belongs to a run with `config` and `extra`.
    /// - Throws: `TrainingError` naming what differs or what is malformed.
    public static func read(path: String, config: TrainingConfig, extra: JSONObject = [:],
                            promptCount: Int) throws -> TrainingState {
        let file = try SafetensorsFile(path: path)
        let meta = file.metadataDictionary
        func fail(_ why: String) -> TrainingError { TrainingError("\(path): not a usable checkpoint: \(why)") }
        guard let stateText = meta[stateKey], let configText = meta[configKey] else {
            throw fail("no \(stateKey) / \(configKey) metadata")
        }
        guard case .object(let saved) = try JSON.parse(Array(configText.utf8)) else { throw fail("settings are not an object") }
        let expected = identity(config, extra: extra)
        let keys = Set(saved.keys).union(expected.keys).sorted()
        let differing = keys.filter { saved[$0] != expected[$0] }
        guard differing.isEmpty else {
            let detail = differing.map { k in
                "\(k): checkpoint \(saved[k].map { (try? JSON.serialize($0)) ?? "?" } ?? "absent"), now \(expected[k].map { (try? JSON.serialize($0)) ?? "?" } ?? "absent")"
            }
            throw TrainingError("\(path) was written by a run with other settings (\(detail.joined(separator: "; "))); resume with the same settings or start afresh")
        }
        guard case .object(let json) = try JSON.parse(Array(stateText.utf8)) else { throw fail("state is not an object") }
        guard json["version"]?.intValue == formatVersion else { throw fail("unsupported version \(json["version"].map { "\($0)" } ?? "none")") }
        func int(_ key: String) throws -> Int {
            guard let v = json[key]?.intValue, v >= 0 else { throw fail("\(key) missing or negative") }
            return Int(v)
        }
        func tensor(_ name: String) throws -> [Float] {
            guard let info = file.tensor(named: name) else { throw fail("tensor \(name) missing") }
            guard info.dtype == .f32, info.elementCount == promptCount else {
                throw fail("tensor \(name) is \(info.dtype) \(info.shape), expected F32 [\(promptCount)]")
            }
            return try file.floats(for: info)
        }
        var optimizer = AdamW(parameterCount: promptCount, weightDecay: Float(config.weightDecay))
        optimizer.m = try tensor("adam.m")
        optimizer.v = try tensor("adam.v")
        optimizer.step = try int("adam_step")
        var state = TrainingState(prompt: try tensor("prompt"), optimizer: optimizer)
        state.step = try int("step")
        state.bestStep = try int("best_step")
        state.evalsSinceBest = try int("evals_since_best")
        state.stoppedEarly = json["stopped_early"]?.boolValue ?? false
        if file.tensor(named: "best_prompt") != nil { state.best = try tensor("best_prompt") }
        if let bits = json["best_metric_bits"]?.stringValue {
            guard let b = UInt64(bits, radix: 16) else { throw fail("best_metric_bits is not hex") }
            state.bestMetric = Double(bitPattern: b)
        }
        if let bits = json["best_loss_bits"]?.stringValue {
            guard let b = UInt64(bits, radix: 16) else { throw fail("best_loss_bits is not hex") }
            state.bestLoss = Double(bitPattern: b)
        }
        guard (state.best == nil) == (state.bestMetric == nil), (state.bestMetric == nil) == (state.bestLoss == nil) else { throw fail("best prompt and best metric disagree") }
        for item in json["history"]?.arrayValue ?? [] {
            guard let o = item.objectValue, let r = stepRecord(o) else { throw fail("malformed history entry") }
            state.history.append(r)
        }
        for item in json["evals"]?.arrayValue ?? [] {
            guard let o = item.objectValue, let r = evalRecord(o) else { throw fail("malformed eval entry") }
            state.evals.append(r)
        }
        guard state.history.count == state.step else { throw fail("history holds \(state.history.count) steps, state says \(state.step)") }
        return state
    }

    /// One step of the curve as JSON (checkpoints and `--log-json` share it; Formats/training.md).
    public static func json(_ r: StepRecord) -> JSONValue {
        ["step": .int(Int64(r.step)), "loss": .double(r.loss), "lr": .double(r.learningRate),
         "grad_norm": .double(r.gradientNorm), "positions": .int(Int64(r.positions)), "seconds": .double(r.seconds)]
    }

    /// One evaluation as JSON (checkpoints and `--log-json` share it; Formats/training.md).
    public static func json(_ r: EvalRecord) -> JSONValue {
        var o: JSONObject = ["step": .int(Int64(r.step)), "metric": .double(r.metric), "loss": .double(r.loss),
                             "improved": .bool(r.improved), "seconds": .double(r.seconds)]
        if let a = r.accuracy { o["accuracy"] = .double(a) }
        if let e = r.exactMatch { o["exact_match"] = .double(e) }
        return .object(o)
    }

    static func stepRecord(_ o: JSONObject) -> StepRecord? {
        guard let step = o["step"]?.intValue, let loss = o["loss"]?.doubleValue, let lr = o["lr"]?.doubleValue,
              let norm = o["grad_norm"]?.doubleValue, let pos = o["positions"]?.intValue,
              let sec = o["seconds"]?.doubleValue else { return nil }
        return StepRecord(step: Int(step), loss: loss, learningRate: lr, gradientNorm: norm, positions: Int(pos), seconds: sec)
    }

    static func evalRecord(_ o: JSONObject) -> EvalRecord? {
        guard let step = o["step"]?.intValue, let metric = o["metric"]?.doubleValue, let loss = o["loss"]?.doubleValue,
              let improved = o["improved"]?.boolValue, let sec = o["seconds"]?.doubleValue else { return nil }
        return EvalRecord(step: Int(step), metric: metric, accuracy: o["accuracy"]?.doubleValue,
                          exactMatch: o["exact_match"]?.doubleValue, loss: loss, improved: improved, seconds: sec)
    }
}
