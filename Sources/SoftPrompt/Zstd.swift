import CZstd

/// The few libzstd calls the format needs, each checked. Raw pointers stay in this file.
enum Zstd {
    /// `ZSTD_MAGICNUMBER` as it appears in the first four bytes of a frame (little-endian).
    static let frameMagic: UInt32 = 0xFD2F_B528

    /// One-shot compression with the content size written in the frame header and no frame checksum.
    static func compress(_ source: UnsafeRawBufferPointer, level: Int32) -> [UInt8]? {
        let bound = ZSTD_compressBound(source.count)
        guard ZSTD_isError(bound) == 0, let context = ZSTD_createCCtx() else { return nil }
        defer { ZSTD_freeCCtx(context) }
        guard ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level)) == 0,
              ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)) == 0,
              ZSTD_isError(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0)) == 0
        else { return nil }
        var failed = false
        let out = [UInt8](unsafeUninitializedCapacity: bound) { buffer, initialized in
            let written = ZSTD_compress2(context, buffer.baseAddress, bound, source.baseAddress, source.count)
            if ZSTD_isError(written) != 0 { failed = true; initialized = 0 } else { initialized = written }
        }
        return failed ? nil : out
    }

    /// The content size the first frame declares: nil when absent or when the bytes are not a frame.
    static func declaredContentSize(_ frame: UnsafeRawBufferPointer) -> UInt64? {
        let size = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        // ZSTD_CONTENTSIZE_UNKNOWN is UInt64.max, ZSTD_CONTENTSIZE_ERROR is UInt64.max - 1.
        return size >= UInt64.max - 1 ? nil : size
    }

    /// The compressed length of the first frame, or nil when it is not a complete frame.
    static func frameLength(_ frame: UnsafeRawBufferPointer) -> Int? {
        let length = ZSTD_findFrameCompressedSize(frame.baseAddress, frame.count)
        return ZSTD_isError(length) != 0 ? nil : length
    }

    /// Decompresses one frame into exactly `size` bytes; zstd writes nothing past `size`.
    /// - Returns: The bytes, or zstd's error name.
    static func decompress(_ frame: UnsafeRawBufferPointer, size: Int) -> Result<[UInt8], ZstdFailure> {
        var failure: String?
        let out = [UInt8](unsafeUninitializedCapacity: size) { buffer, initialized in
            let written = ZSTD_decompress(buffer.baseAddress, size, frame.baseAddress, frame.count)
            if ZSTD_isError(written) != 0 {
                failure = String(cString: ZSTD_getErrorName(written))
                initialized = 0
            } else if written != size {
                failure = "the frame produced \(written) bytes, not \(size)"
                initialized = 0
            } else {
                initialized = size
            }
        }
        if let failure { return .failure(ZstdFailure(message: failure)) }
        return .success(out)
    }

    struct ZstdFailure: Error { var message: String }
}
