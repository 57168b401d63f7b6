import Quants
import Testing

/// Encoder output pinned against ggml's own C reference quantizers.
///
/// Each value is the 64-bit FNV-1a fingerprint of our encoding of one input, and names its oracle: ggml's
/// `quantize_row_<type>_ref` (ggml-quants.c) as built in the PyPI package libggml-python 0.20.2.post1
/// (baseline x86-64, no FMA contraction), for every type; for Q4_0 … Q8_0 also gguf-py's numpy
/// quantizers, which give the same bytes. Tools/scripts/gen_pinned_encodings.py recomputes every value
/// from those oracles (`--check` compares them with this table). Inputs: `variedTestData(superBlocks: 48,
/// seed: 2024)` and Tests/Fixtures/quants/quantize_input.f32.
///
/// A ggml build that contracts multiply-adds into FMA (GCC's default with `-march=native`) differs from
/// both in some K-quant blocks (Q2_K 18/48, Q4_K 3/48, Q5_K 17/48 on the varied set), since the scale
/// search compares nearly equal float errors.
@Suite("Pinned encoder output (ggml's C reference quantizers)")
struct PinnedEncodingTests {
    static let ggml = "ggml quantize_row_*_ref (libggml-python 0.20.2.post1)"
    static let ggmlAndGGUFPy = ggml + " and gguf-py 0.19 gguf.quants.quantize"

    static let pins: [(GGMLType, varied: UInt64, fixture: UInt64, oracle: String)] = [
        (.q4_0, 0x13b9_1bc2_e03f_e139, 0xdb08_619a_2eaf_cf64, ggmlAndGGUFPy),
        (.q4_1, 0x43fd_dc42_c140_6ead, 0xf808_2d61_4aa4_85b2, ggmlAndGGUFPy),
        (.q5_0, 0xeeab_8b03_7f7d_e2dc, 0x5ab3_3501_48ac_c105, ggmlAndGGUFPy),
        (.q5_1, 0x6124_a624_dcb7_2655, 0x9bc5_8b81_21dd_faa6, ggmlAndGGUFPy),
        (.q8_0, 0x8978_007b_4394_34ff, 0xd696_79db_8003_eff7, ggmlAndGGUFPy),
        (.q2_K, 0x94d0_c56a_8041_c8e6, 0x6fb3_4fd4_5030_cbf0, ggml),
        (.q3_K, 0x3f5e_cdb9_ed8f_e133, 0x5b98_9e14_fa0e_7dee, ggml),
        (.q4_K, 0xe69d_f6d1_ca1f_22c0, 0xff1e_9e19_e841_0678, ggml),
        (.q5_K, 0xabe4_5020_162d_b234, 0x180a_2755_c66b_adb1, ggml),
        (.q6_K, 0x1079_7d19_9d1e_922e, 0x60e3_26ea_4fad_f674, ggml),
        (.q8_K, 0x3ca3_26ab_071f_21b4, 0xffdd_9b27_adf2_ab68, ggml),
    ]

    @Test("encoder output fingerprints", arguments: pins.map(\.0))
    func fingerprints(type: GGMLType) throws {
        let pin = try #require(Self.pins.first { $0.0 == type })
        let varied = variedTestData(superBlocks: 48, seed: 2024)
        #expect(fnv1a(try quantize(type, varied)) == pin.varied, "\(type) on variedTestData vs \(pin.oracle)")
        let fixture = try Fixtures.floats("quantize_input.f32")
        #expect(fnv1a(try quantize(type, fixture)) == pin.fixture, "\(type) on quantize_input.f32 vs \(pin.oracle)")
    }
}
