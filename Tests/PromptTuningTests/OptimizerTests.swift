import PromptTuning
import TensorIO
import TestSupport
import Testing

/// The optimiser pieces against PyTorch / transformers (Tools/scripts/gen_training_fixtures.py).
@Suite struct OptimizerTests {
    let fixture: JSONValue

    init() throws {
        fixture = try JSON.parse(try readFile(TestSupport.fixture("training/optimizer.json")))
    }

    static func floats(_ v: JSONValue?) -> [Float] { (v?.arrayValue ?? []).map { Float($0.doubleValue!) } }

    @Test func schedulesMatchTransformers() throws {
        let list = try #require(fixture["schedules"]?.arrayValue)
        #expect(list.count == 4)
        for s in list {
            let schedule = LearningRateSchedule(
                peak: s["peak"]!.doubleValue!, warmupSteps: Int(s["warmup"]!.intValue!),
                totalSteps: Int(s["total"]!.intValue!),
                decay: LearningRateDecay(rawValue: s["decay"]!.stringValue!)!, minRate: s["min"]!.doubleValue!)
            let want = s["rates"]!.arrayValue!.map { $0.doubleValue! }
            for (step, rate) in want.enumerated() {
                #expect(abs(schedule.rate(at: step) - rate) < 1e-12, "\(schedule.decay) step \(step): \(schedule.rate(at: step)) vs \(rate)")
            }
        }
    }

    @Test func adamWMatchesTorch() throws {
        let a = try #require(fixture["adamw"])
        var params = Self.floats(a["init"])
        let grads = a["grads"]!.arrayValue!.map { Self.floats($0) }
        let lrs = a["lrs"]!.arrayValue!.map { $0.doubleValue! }
        var opt = AdamW(parameterCount: params.count, weightDecay: Float(a["weight_decay"]!.doubleValue!))
        for (g, lr) in zip(grads, lrs) { opt.update(&params, gradient: g, lr: Float(lr)) }
        let want = Self.floats(a["final"])
        let diff = TestSupport.maxAbsDiff(params, want)
        #expect(diff < 2e-6, "max |ours - torch| = \(diff)")
        #expect(opt.step == grads.count)
    }

    @Test func clippingMatchesTorch() throws {
        let c = try #require(fixture["clip"])
        var g = Self.floats(c["grad"])
        let norm = clipGradient(&g, maxNorm: c["max_norm"]!.doubleValue!)
        #expect(abs(norm - c["norm"]!.doubleValue!) < 1e-5 * norm)
        #expect(TestSupport.maxAbsDiff(g, Self.floats(c["clipped"])) < 1e-6)
        var small: [Float] = [0.1, -0.2]
        #expect(clipGradient(&small, maxNorm: 1) < 1)
        #expect(small == [0.1, -0.2])
    }

    @Test func permutationsAreSeededAndComplete() {
        var a = SplitMix64(seed: 42), b = SplitMix64(seed: 42), c = SplitMix64(seed: 43)
        let p = a.permutation(100)
        #expect(p.sorted() == Array(0 ..< 100))
        #expect(p == b.permutation(100))
        #expect(p != c.permutation(100))
    }
}
