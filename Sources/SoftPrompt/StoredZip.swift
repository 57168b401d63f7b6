import TensorIO

/// The subset of ZIP (PKWARE APPNOTE 6.3) that NumPy's `.npz` needs: members stored without
/// compression, found through the central directory; ZIP64 sizes and offsets are read, not written.
/// Deflated members (`numpy.savez_compressed`) are refused: reading them would need an inflater,
/// which this package does not carry.
enum StoredZip {
    struct Member {
        var name: String
        var data: [UInt8]
    }

    struct Failure: Error {
        var offset: Int
        var message: String
    }

    // MARK: Writing

    /// A ZIP archive of `members`, each stored (method 0) with its CRC-32, no ZIP64.
    static func encode(_ members: [Member]) throws(Failure) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        func le16(_ v: Int, _ to: inout [UInt8]) { to += [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF)] }
        func le32(_ v: UInt32, _ to: inout [UInt8]) { withUnsafeBytes(of: v.littleEndian) { to += $0 } }
        for member in members {
            let name = Array(member.name.utf8)
            let offset = out.count
            guard name.count <= 0xFFFF, member.data.count < 0xFFFF_FFFF, offset < 0xFFFF_FFFF else {
                throw Failure(offset: offset, message: "member '\(member.name)' is too large for a ZIP without ZIP64")
            }
            let crc = CRC32.checksum(member.data)
            // Fields shared by the local header and the central entry, from "version needed" on.
            var common: [UInt8] = []
            le16(20, &common)                 // version needed: 2.0
            le16(0x0800, &common)             // flags: names are UTF-8
            le16(0, &common)                  // method: stored
            le16(0, &common)                  // time 00:00:00
            le16(0x21, &common)               // date 1980-01-01
            le32(crc, &common)
            le32(UInt32(member.data.count), &common)
            le32(UInt32(member.data.count), &common)
            le16(name.count, &common)
            le16(0, &common)                  // extra field length
            le32(0x0403_4B50, &out)
            out += common
            out += name
            out += member.data
            le32(0x0201_4B50, &central)
            le16(0x0314, &central)            // made by: Unix, 2.0
            central += common
            le16(0, &central)                 // comment length
            le16(0, &central)                 // disk number
            le16(0, &central)                 // internal attributes
            le32(0o100644 << 16, &central)    // external attributes: regular file, rw-r--r--
            le32(UInt32(offset), &central)
            central += name
        }
        let centralOffset = out.count
        guard members.count <= 0xFFFF, centralOffset < 0xFFFF_FFFF else {
            throw Failure(offset: centralOffset, message: "archive too large for a ZIP without ZIP64")
        }
        out += central
        le32(0x0605_4B50, &out)
        le16(0, &out); le16(0, &out)
        le16(members.count, &out); le16(members.count, &out)
        le32(UInt32(central.count), &out)
        le32(UInt32(centralOffset), &out)
        le16(0, &out)
        return out
    }

    // MARK: Reading

    /// The members of a ZIP archive, in central-directory order.
    ///
    /// Every offset and size is checked against the file before use; the local header of each
    /// member must agree with its central entry on the name, and the data with the CRC-32.
    static func decode(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> [Member] {
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func need(_ at: Int, _ count: Int, _ what: String) throws(Failure) {
            guard at >= 0, count >= 0, at <= bytes.count, count <= bytes.count - at else {
                throw Failure(offset: at, message: "\(what) runs past the end of the file")
            }
        }

        // End of central directory: 22 bytes plus a comment of up to 65535 bytes, at the end.
        guard bytes.count >= 22 else { throw Failure(offset: 0, message: "too short for a ZIP archive") }
        var eocd = -1
        var at = bytes.count - 22
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        while at >= lowest {
            if u32(at) == 0x0605_4B50 && at + 22 + u16(at + 20) == bytes.count { eocd = at; break }
            at -= 1
        }
        guard eocd >= 0 else { throw Failure(offset: bytes.count, message: "no ZIP end-of-central-directory record") }
        guard u16(eocd + 4) == 0, u16(eocd + 6) == 0 else {
            throw Failure(offset: eocd, message: "multi-disk ZIP archives are not supported")
        }
        var count = u16(eocd + 10)
        var centralSize = UInt64(u32(eocd + 12))
        var centralOffset = UInt64(u32(eocd + 16))
        if count == 0xFFFF || centralSize == 0xFFFF_FFFF || centralOffset == 0xFFFF_FFFF {
            // ZIP64: a 20-byte locator precedes the record and points at the ZIP64 end record.
            let locator = eocd - 20
            guard locator >= 0, u32(locator) == 0x0706_4B50 else {
                throw Failure(offset: eocd, message: "ZIP64 fields without a ZIP64 locator")
            }
            let record = u64(locator + 8)
            guard bytes.count >= 56, record <= UInt64(bytes.count - 56), u32(Int(record)) == 0x0606_4B50 else {
                throw Failure(offset: locator, message: "the ZIP64 locator points outside the file")
            }
            let total = u64(Int(record) + 32)
            guard total <= UInt64(Int32.max) else { throw Failure(offset: Int(record), message: "implausible member count") }
            count = Int(total)
            centralSize = u64(Int(record) + 40)
            centralOffset = u64(Int(record) + 48)
        }
        guard centralOffset <= UInt64(bytes.count), centralSize <= UInt64(bytes.count) - centralOffset else {
            throw Failure(offset: eocd, message: "the central directory lies outside the file")
        }

        var members: [Member] = []
        var names = Set<String>()
        var entry = Int(centralOffset)
        let centralEnd = Int(centralOffset + centralSize)
        for index in 0 ..< count {
            guard entry + 46 <= centralEnd, u32(entry) == 0x0201_4B50 else {
                throw Failure(offset: entry, message: "central directory entry \(index) is missing or malformed")
            }
            let flags = u16(entry + 8)
            let method = u16(entry + 10)
            let crc = u32(entry + 16)
            var stored = UInt64(u32(entry + 20))
            var size = UInt64(u32(entry + 24))
            let nameLength = u16(entry + 28), extraLength = u16(entry + 30), commentLength = u16(entry + 32)
            var local = UInt64(u32(entry + 42))
            let nameStart = entry + 46
            guard nameStart + nameLength + extraLength + commentLength <= centralEnd else {
                throw Failure(offset: entry, message: "central directory entry \(index) runs past the directory")
            }
            let nameBytes = Array(UnsafeRawBufferPointer(rebasing: bytes[nameStart ..< nameStart + nameLength]))
            guard let name = String(validating: nameBytes, as: UTF8.self) else {
                throw Failure(offset: nameStart, message: "member \(index) has a name that is not UTF-8")
            }
            // A ZIP64 extended-information field replaces, in order, the fields stored as 0xFFFFFFFF.
            var extra = nameStart + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = u16(extra), length = u16(extra + 2)
                guard extra + 4 + length <= extraEnd else { throw Failure(offset: extra, message: "malformed extra field") }
                if id == 0x0001 {
                    var field = extra + 4
                    func next() throws(Failure) -> UInt64 {
                        guard field + 8 <= extra + 4 + length else { throw Failure(offset: field, message: "short ZIP64 field") }
                        defer { field += 8 }
                        return u64(field)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if stored == 0xFFFF_FFFF { stored = try next() }
                    if local == 0xFFFF_FFFF { local = try next() }
                }
                extra += 4 + length
            }
            guard flags & 1 == 0 else { throw Failure(offset: entry, message: "member '\(name)' is encrypted") }
            guard method == 0 else {
                let what = method == 8 ? "deflated (numpy.savez_compressed)" : "compressed with method \(method)"
                throw Failure(offset: entry, message: "member '\(name)' is \(what); only stored members are read (numpy.savez)")
            }
            guard stored == size else {
                throw Failure(offset: entry, message: "stored member '\(name)' has different stored and original sizes")
            }
            guard bytes.count >= 30, local <= UInt64(bytes.count - 30) else {
                throw Failure(offset: entry, message: "member '\(name)' has its local header outside the file")
            }
            let header = Int(local)
            guard u32(header) == 0x0403_4B50 else {
                throw Failure(offset: header, message: "member '\(name)': no local file header here")
            }
            let localName = u16(header + 26), localExtra = u16(header + 28)
            try need(header + 30, localName, "the local name of '\(name)'")
            guard UnsafeRawBufferPointer(rebasing: bytes[header + 30 ..< header + 30 + localName]).elementsEqual(nameBytes) else {
                throw Failure(offset: header, message: "member '\(name)': the local header names another file")
            }
            let dataStart = header + 30 + localName + localExtra
            guard size <= UInt64(Int.max) else { throw Failure(offset: entry, message: "member '\(name)' is too large") }
            try need(dataStart, Int(size), "the data of '\(name)'")
            let data = Array(UnsafeRawBufferPointer(rebasing: bytes[dataStart ..< dataStart + Int(size)]))
            guard CRC32.checksum(data) == crc else {
                throw Failure(offset: dataStart, message: "member '\(name)' fails its CRC-32 check")
            }
            guard names.insert(name).inserted else { throw Failure(offset: entry, message: "member '\(name)' appears twice") }
            members.append(Member(name: name, data: data))
            entry = nameStart + nameLength + extraLength + commentLength
        }
        return members
    }
}

/// CRC-32 as ZIP uses it (reflected polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF).
enum CRC32 {
    static let table: [UInt32] = (0 ..< 256).map { n in
        var c = UInt32(n)
        for _ in 0 ..< 8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFF_FFFF
    }
}
