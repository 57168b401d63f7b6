import Quants
import TensorIO
import Testing

@Suite("Block layouts and the type table")
struct LayoutTests {
    static let layouts: [any GGMLBlock.Type] = [
        BlockQ4_0.self, BlockQ4_1.self, BlockQ5_0.self, BlockQ5_1.self, BlockQ8_0.self, BlockQ8_1.self,
        BlockQ2_K.self, BlockQ3_K.self, BlockQ4_K.self, BlockQ5_K.self, BlockQ6_K.self, BlockQ8_K.self,
        BlockIQ4_NL.self, BlockIQ4_XS.self,
    ]

    @Test("struct sizes equal ggml's type sizes; strides add no padding")
    func sizes() {
        for layout in Self.layouts {
            func check<B: GGMLBlock>(_: B.Type) {
                #expect(MemoryLayout<B>.size == B.type.typeSize, "\(B.self)")
                #expect(MemoryLayout<B>.stride == B.type.typeSize, "\(B.self)")
                #expect(B.type.blockLayout == B.self)
            }
            check(layout)
        }
        // ggml-common.h's static_asserts, spelled out.
        #expect(MemoryLayout<BlockQ4_0>.size == 18)
        #expect(MemoryLayout<BlockQ4_1>.size == 20)
        #expect(MemoryLayout<BlockQ5_0>.size == 22)
        #expect(MemoryLayout<BlockQ5_1>.size == 24)
        #expect(MemoryLayout<BlockQ8_0>.size == 34)
        #expect(MemoryLayout<BlockQ8_1>.size == 36)
        #expect(MemoryLayout<BlockQ2_K>.size == 84)
        #expect(MemoryLayout<BlockQ3_K>.size == 110)
        #expect(MemoryLayout<BlockQ4_K>.size == 144)
        #expect(MemoryLayout<BlockQ5_K>.size == 176)
        #expect(MemoryLayout<BlockQ6_K>.size == 210)
        #expect(MemoryLayout<BlockQ8_K>.size == 292)
        #expect(MemoryLayout<BlockIQ4_NL>.size == 18)
        #expect(MemoryLayout<BlockIQ4_XS>.size == 136)
    }

    @Test("field offsets follow ggml-common.h")
    func offsets() {
        #expect(MemoryLayout<BlockQ4_0>.offset(of: \.qs) == 2)
        #expect(MemoryLayout<BlockQ4_1>.offset(of: \.m) == 2)
        #expect(MemoryLayout<BlockQ4_1>.offset(of: \.qs) == 4)
        #expect(MemoryLayout<BlockQ5_0>.offset(of: \.qh) == 2)
        #expect(MemoryLayout<BlockQ5_0>.offset(of: \.qs) == 6)
        #expect(MemoryLayout<BlockQ5_1>.offset(of: \.qh) == 4)
        #expect(MemoryLayout<BlockQ5_1>.offset(of: \.qs) == 8)
        #expect(MemoryLayout<BlockQ8_0>.offset(of: \.qs) == 2)
        #expect(MemoryLayout<BlockQ8_1>.offset(of: \.s) == 2)
        #expect(MemoryLayout<BlockQ8_1>.offset(of: \.qs) == 4)
        #expect(MemoryLayout<BlockQ2_K>.offset(of: \.qs) == 16)
        #expect(MemoryLayout<BlockQ2_K>.offset(of: \.d) == 80)
        #expect(MemoryLayout<BlockQ2_K>.offset(of: \.dmin) == 82)
        #expect(MemoryLayout<BlockQ3_K>.offset(of: \.qs) == 32)
        #expect(MemoryLayout<BlockQ3_K>.offset(of: \.scales) == 96)
        #expect(MemoryLayout<BlockQ3_K>.offset(of: \.d) == 108)
        #expect(MemoryLayout<BlockQ4_K>.offset(of: \.dmin) == 2)
        #expect(MemoryLayout<BlockQ4_K>.offset(of: \.scales) == 4)
        #expect(MemoryLayout<BlockQ4_K>.offset(of: \.qs) == 16)
        #expect(MemoryLayout<BlockQ5_K>.offset(of: \.qh) == 16)
        #expect(MemoryLayout<BlockQ5_K>.offset(of: \.qs) == 48)
        #expect(MemoryLayout<BlockQ6_K>.offset(of: \.qh) == 128)
        #expect(MemoryLayout<BlockQ6_K>.offset(of: \.scales) == 192)
        #expect(MemoryLayout<BlockQ6_K>.offset(of: \.d) == 208)
        #expect(MemoryLayout<BlockQ8_K>.offset(of: \.qs) == 4)
        #expect(MemoryLayout<BlockQ8_K>.offset(of: \.bsums) == 260)
        #expect(MemoryLayout<BlockIQ4_NL>.offset(of: \.qs) == 2)
        #expect(MemoryLayout<BlockIQ4_XS>.offset(of: \.scales_h) == 2)
        #expect(MemoryLayout<BlockIQ4_XS>.offset(of: \.scales_l) == 4)
        #expect(MemoryLayout<BlockIQ4_XS>.offset(of: \.qs) == 8)
    }

    @Test("a block loaded as a struct agrees with the dequantizer")
    func loadAsStruct() throws {
        let raw = try Fixtures.bytes("q8_0.bin")
        let expected = try Fixtures.floats("q8_0.f32")
        let blocks = raw.count / 34
        for b in 0 ..< blocks {
            let block = raw.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 34 * b, as: BlockQ8_0.self) }
            let d = HalfFloat.f16ToFloat(block.d)
            let qs = withUnsafeBytes(of: block.qs) { Array($0.bindMemory(to: Int8.self)) }
            #expect(qs.count == 32)
            for j in 0 ..< 32 {
                #expect((Float(qs[j]) * d).bitPattern == expected[32 * b + j].bitPattern)
            }
        }
    }

    /// gguf-py's GGML_QUANT_SIZES (fixture sizes.txt) against our table. The one intended
    /// difference: gguf-py lists Q8_1 as 40 bytes (two floats), but ggml's block_q8_1 holds two
    /// halves (2 + 2 + 32 = 36), and ggml's struct is what matters.
    @Test("type table matches gguf-py's GGML_QUANT_SIZES (except Q8_1: 36 not 40)")
    func typeTable() throws {
        let text = String(decoding: try Fixtures.bytes("sizes.txt"), as: UTF8.self)
        var seen = Set<GGMLType>()
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            try #require(f.count == 4)
            let id = try #require(UInt32(f[0])), block = try #require(Int(f[2])), size = try #require(Int(f[3]))
            let type = try #require(GGMLType(rawValue: id), "gguf-py type id \(id) unknown to GGMLType")
            seen.insert(type)
            #expect(type.name == String(f[1]))
            #expect(GGMLType(name: String(f[1]).lowercased()) == type)
            #expect(type.blockSize == block, "\(type)")
            if type == .q8_1 {
                #expect(size == 40 && type.typeSize == 36)
            } else {
                #expect(type.typeSize == size, "\(type)")
            }
        }
        #expect(seen == Set(GGMLType.allCases))
    }
}
