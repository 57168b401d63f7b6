import Testing
import TensorIO
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ByteCursorTests {
    @Test func readsLittleEndianValues() throws {
        let bytes: [UInt8] = [0x01, 0x34, 0x12, 0x78, 0x56, 0x34, 0x12, 0xAA, 0xBB, 0, 0, 0x80, 0x3F, 0xFF]
        try bytes.withUnsafeBytes { raw in
            var c = ByteCursor(raw)
            #expect(try c.u8() == 1)
            #expect(try c.u16() == 0x1234)
            #expect(try c.u32() == 0x1234_5678)
            _ = try c.u16()
            #expect(try c.f32() == 1.0 as Float)
            #expect(c.offset == 13)
            #expect(try c.i8() == -1)
            #expect(c.remaining == 0)
        }
    }

    @Test func refusesReadsPastTheEnd() {
        let bytes: [UInt8] = [1, 2, 3]
        bytes.withUnsafeBytes { raw in
            var c = ByteCursor(raw)
            _ = try? c.u8()
            #expect(throws: OutOfBounds(offset: 1, needed: 4, remaining: 2)) { try c.u32() }
            #expect(c.offset == 1, "a failed read must not advance")
            #expect(throws: OutOfBounds(offset: 1, needed: Int.max, remaining: 2)) { try c.slice(Int.max) }
            #expect(throws: OutOfBounds(offset: 1, needed: -1, remaining: 2)) { try c.skip(-1) }
        }
    }

    @Test func checkedArithmeticCatchesOverflow() {
        #expect(Checked.mul(Int.max / 2 + 1, 2) == nil)
        #expect(Checked.mul(3, 4) == 12)
        #expect(Checked.add(Int.max, 1) == nil)
        #expect(Checked.product([1 << 31, 1 << 31, 4]) == nil)
        #expect(Checked.product([2, -1]) == nil)
        #expect(Checked.product([576, 49152]) == 28_311_552)
        #expect(Checked.alignUp(33, 32) == 64)
        #expect(Checked.alignUp(64, 32) == 64)
        #expect(Checked.alignUp(Int.max - 1, 32) == nil)
        #expect(Checked.int(UInt64.max) == nil)
    }
}

@Suite struct HalfFloatTests {
    @Test func bfloat16RoundsToNearestEven() {
        // Hand-computed: 1 + 2^-8 is a tie between bf16 1.0 and 1.0078125; even mantissa wins (1.0).
        #expect(HalfFloat.floatToBF16(1.0 + 1.0 / 256) == 0x3F80)
        // 1 + 3*2^-8 ties between 0x3F81 and 0x3F82: even is 0x3F82.
        #expect(HalfFloat.floatToBF16(1.0 + 3.0 / 256) == 0x3F82)
        #expect(HalfFloat.floatToBF16(-2.0) == 0xC000)
        #expect(HalfFloat.bf16ToFloat(0x3FC0) == 1.5)
        #expect(HalfFloat.bf16ToFloat(HalfFloat.floatToBF16(.nan)).isNaN)
        #expect(HalfFloat.floatToBF16(.infinity) == 0x7F80)
    }

    @Test func float16MatchesIEEE() {
        #expect(HalfFloat.floatToF16(65504) == 0x7BFF)
        #expect(HalfFloat.floatToF16(1.0) == 0x3C00)
        #expect(HalfFloat.f16ToFloat(0x0001) == Float(sign: .plus, exponent: -24, significand: 1))
        #expect(HalfFloat.f16ToFloat(0xFC00) == -.infinity)
    }
}

@Suite struct AtomicFileTests {
    @Test func replacesContentAndLeavesNoTemporaryFile() throws {
        let dir = TestSupport.temporaryDirectory("atomic")
        let path = dir + "/out.bin"
        try AtomicFile.write(to: path, bytes: [1, 2, 3])
        try AtomicFile.write(to: path) { w in
            try w.write([9, 8])
            try w.writeLE(UInt32(0x0403_0201))
            try w.writeZeros(2)
            try w.write([UInt8](repeating: 7, count: 3 << 20))  // exercises the unbuffered path
        }
        let back = try readFile(path)
        #expect(Array(back.prefix(8)) == [9, 8, 1, 2, 3, 4, 0, 0])
        #expect(back.count == 8 + (3 << 20))
        #expect(try listDirectory(dir) == ["out.bin"])
    }

    @Test func failureKeepsThePreviousVersion() throws {
        struct Boom: Error {}
        let dir = TestSupport.temporaryDirectory("atomic")
        let path = dir + "/keep.bin"
        try AtomicFile.write(to: path, bytes: [42])
        #expect(throws: Boom.self) {
            try AtomicFile.write(to: path) { w in
                try w.write([1, 2, 3])
                throw Boom()
            }
        }
        #expect(try readFile(path) == [42])
        #expect(try listDirectory(dir) == ["keep.bin"])
    }

    @Test func killedWritersTemporariesAreCollectedLiveOnesKept() throws {
        let dir = TestSupport.temporaryDirectory("atomic")
        let path = dir + "/out.bin"
        // Orphans of killed writers (nobody holds their lock): a file and a directory with content.
        try AtomicFile.write(to: path + ".tmp-1-orphan", bytes: [1])
        try makeDirectories(path + ".tmp-2-orphan")
        try AtomicFile.write(to: path + ".tmp-2-orphan/inner", bytes: [2])
        // Not temporaries of out.bin.
        try AtomicFile.write(to: dir + "/out.bin.tmpx", bytes: [3])
        try AtomicFile.write(to: dir + "/other.bin.tmp-1-x", bytes: [4])
        // A live writer's temporary: locked (another process would hold the lock; a second open file
        // description conflicts the same way), then this process's own TemporaryDirectory.
        try AtomicFile.write(to: path + ".tmp-3-locked", bytes: [6])
        let lockedFD = open(path + ".tmp-3-locked", O_RDONLY)
        #expect(lockedFD >= 0 && flock(lockedFD, LOCK_EX) == 0)
        let live = try TemporaryDirectory(beside: path)
        #expect(live.path.hasPrefix(path + ".tmp-\(getpid())-"))
        try AtomicFile.write(to: path) { w in
            // Another collector running while this write is in progress keeps its temporary too.
            removeStaleTemporaries(of: path)
            #expect(fileExists(w.temporaryPath))
            try w.write([5])
        }
        let names = try listDirectory(dir)
        #expect(names == ["other.bin.tmp-1-x", "out.bin", live.path.split(separator: "/").last.map(String.init)!,
                          "out.bin.tmp-3-locked", "out.bin.tmpx"].sorted())
        close(lockedFD)  // its writer dies: collected next time
        removeStaleTemporaries(of: path)
        live.remove()
        #expect(try listDirectory(dir) == ["other.bin.tmp-1-x", "out.bin", "out.bin.tmpx"])
        #expect(try readFile(path) == [5])
    }

    @Test func temporaryDirectoryCommitsWholeOrVanishes() throws {
        let dir = TestSupport.temporaryDirectory("atomic")
        do {
            let scratch = try TemporaryDirectory(beside: dir + "/new")
            try AtomicFile.write(to: scratch.path + "/a", bytes: [1])
            try scratch.commit(to: dir + "/new/")
        }
        #expect(try listDirectory(dir + "/new") == ["a"])
        try makeDirectories(dir + "/empty")
        do {
            let scratch = try TemporaryDirectory(beside: dir + "/empty")
            try AtomicFile.write(to: scratch.path + "/b", bytes: [2])
            try scratch.commit(to: dir + "/empty")
        }
        #expect(try listDirectory(dir + "/empty") == ["b"])
        do {
            let scratch = try TemporaryDirectory(beside: dir + "/new")
            try AtomicFile.write(to: scratch.path + "/c", bytes: [3])
            #expect(throws: FileError.self) { try scratch.commit(to: dir + "/new") }  // not empty
        }  // released: removed
        #expect(try listDirectory(dir) == ["empty", "new"])
        #expect(try listDirectory(dir + "/new") == ["a"])
    }

    @Test func reportsTheFailingPath() {
        #expect(throws: FileError.self) { try AtomicFile.write(to: "/nonexistent-dir/x.bin", bytes: [1]) }
        let error = #expect(throws: FileError.self) { try MappedFile(path: "/nonexistent-dir/model.gguf") }
        #expect(error?.description.contains("/nonexistent-dir/model.gguf") == true)
        #expect(error?.description.contains("No such file") == true)
    }
}

@Suite struct NPYTests {
    @Test func readsWhatNumpyWrote() throws {
        let a = try NPY.read(path: TestSupport.fixture("npy/f32_2x3.npy"))
        #expect(a.dtype == .f32 && a.shape == [2, 3])
        let v = try #require(a.floats())
        #expect(v.map(\.bitPattern) == ([1.5, -2.25, 0.0, 3.0e-8, 65504.0, -0.0] as [Float]).map(\.bitPattern))
        let h = try NPY.read(path: TestSupport.fixture("npy/f16_4.npy"))
        #expect(h.dtype == .f16 && h.shape == [4])
        #expect(try #require(h.floats()) == [1.0, -0.5, 65504.0, Float(Float16(6.1e-5))])
        let i = try NPY.read(path: TestSupport.fixture("npy/i32_scalar_shape.npy"))
        #expect(i.dtype == .i32 && i.shape == [5] && i.data.count == 20)
    }

    @Test func writesExactlyWhatNumpyWrites() throws {
        let expected = try readFile(TestSupport.fixture("npy/f32_2x3.npy"))
        let values: [Float] = [1.5, -2.25, 0.0, 3.0e-8, 65504.0, -0.0]
        let ours = values.withUnsafeBytes { NPY.encode(dtype: .f32, shape: [2, 3], data: $0) }
        #expect(ours == expected)
    }

    @Test func refusesTruncatedAndOversizedArrays() throws {
        let good = try readFile(TestSupport.fixture("npy/f32_2x3.npy"))
        #expect(throws: NPY.FormatError.self) { try good.dropLast(1).withUnsafeBytes { try NPY.decode($0) } }
        #expect(throws: NPY.FormatError.self) { try good.prefix(9).withUnsafeBytes { try NPY.decode($0) } }
        var huge = good
        // Rewrite the shape "(2, 3)" as "(9, 9)" -> data size no longer matches.
        if let i = huge.firstIndex(of: UInt8(ascii: "2")) { huge[i] = UInt8(ascii: "9") }
        #expect(throws: NPY.FormatError.self) { try huge.withUnsafeBytes { try NPY.decode($0) } }
    }
}

@Suite struct FileErrorTests {
    /// Messages that already name the file use `reason`, so the path is not repeated.
    @Test func reasonOmitsThePath() {
        let error = FileError(operation: "open", path: "/x/y.sprompt", errno: ENOENT)
        #expect(error.reason == "open failed: No such file or directory")
        #expect(error.description == "/x/y.sprompt: open failed: No such file or directory")
        #expect(FileError.reason(error, about: "/x/y.sprompt") == error.reason)
        #expect(FileError.reason(error, about: "/other") == error.description)
        #expect(throws: FileError.self) { try MappedFile(path: "/nonexistent/softprompt-test") }
    }
}
