import Quants
import Testing

/// Regression pins for the encoders whose output gguf-py cannot check (the K-quants and Q8_K),
/// plus the gguf-py-checked ones on a second data set.
///
/// Provenance: these fingerprints are of bytes that were compared, block for block, with ggml's
/// own `quantize_row_*_ref` (ggml-quants.c at ggml commit d99724f, compiled ad hoc with
/// `gcc -O2 -march=native -ffp-contract=off`; not part of this repository) and were identical for
/// every type on both inputs. A ggml build that contracts multiply-adds into FMA (GCC's default
/// with `-march=native`) differs from both in some K-quant blocks (Q2_K 18/48, Q4_K 3/48,
/// Q5_K 17/48 on the varied set), since the scale search compares nearly equal float errors.
@Suite("Pinned encoder output (verified against ggml's C reference)")
struct PinnedEncodingTests {
    static let pins: [(GGMLType, varied: UInt64, fixture: UInt64)] = [
        (.q4_0, 0x13b9_1bc2_e03f_e139, 0xdb08_619a_2eaf_cf64),
        (.q4_1, 0x43fd_dc42_c140_6ead, 0xf808_2d61_4aa4_85b2),
        (.q5_0, 0xeeab_8b03_7f7d_e2dc, 0x5ab3_3501_48ac_c105),
        (.q5_1, 0x6124_a624_dcb7_2655, 0x9bc5_8b81_21dd_faa6),
        (.q8_0, 0x8978_007b_4394_34ff, 0xd696_79db_8003_eff7),
        (.q2_K, 0x94d0_c56a_8041_c8e6, 0x6fb3_4fd4_5030_cbf0),
        (.q3_K, 0x3f5e_cdb9_ed8f_e133, 0x5b98_9e14_fa0e_7dee),
        (.q4_K, 0xe69d_f6d1_ca1f_22c0, 0xff1e_9e19_e841_0678),
        (.q5_K, 0xabe4_5020_162d_b234, 0x180a_2755_c66b_adb1),
        (.q6_K, 0x1079_7d19_9d1e_922e, 0x60e3_26ea_4fad_f674),
        (.q8_K, 0x3ca3_26ab_071f_21b4, 0xffdd_9b27_adf2_ab68),
    ]

    @Test("encoder output fingerprints", arguments: pins.map(\.0))
    func fingerprints(type: GGMLType) throws {
        let pin = try #require(Self.pins.first { $0.0 == type })
        let varied = variedTestData(superBlocks: 48, seed: 2024)
        #expect(fnv1a(try quantize(type, varied)) == pin.varied, "\(type) on variedTestData")
        let fixture = try Fixtures.floats("quantize_input.f32")
        #expect(fnv1a(try quantize(type, fixture)) == pin.fixture, "\(type) on quantize_input.f32")
    }
}
