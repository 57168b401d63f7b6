import CJSONC

// JSON (RFC 8259) parsing over json-c, plus a deterministic serializer.
//
// json-c builds the tree. Its strict mode still accepts several things RFC 8259 forbids or that
// would silently change values (checked against json-c 0.16): `NaN`/`Infinity`, `-01`/`00`/`1.`,
// `1e400` (becomes infinity), integers beyond 64 bits (silently saturated), raw control characters
// in strings, unpaired surrogate escapes (silently replaced by U+FFFD), overlong or surrogate UTF-8,
// and duplicate object keys (the last value silently wins). So a small validating scanner of ours
// walks the bytes first and refuses all of these with an exact byte offset; only then does json-c
// build the tree. Nothing of json-c's tree escapes this file: it is converted
// to `JSONValue` and freed.

/// A JSON value. Objects keep their keys in document order.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// An integer written without fraction or exponent that fits in 64 bits.
    case int(Int64)
    /// A number with a fraction or exponent (always finite), or an integer too large for `Int64`
    /// when parsed with `JSON.LargeIntegers.asDouble`.
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)
}

/// A JSON object: its members in document order, with keyed lookup.
///
/// Keys are unique: setting an existing key replaces its value in place. Equality ignores member
/// order (JSON objects are unordered); compare `keys` as well when order matters.
public struct JSONObject: Sendable, Equatable, RandomAccessCollection, ExpressibleByDictionaryLiteral {
    public typealias Element = (key: String, value: JSONValue)

    /// The members in order.
    public private(set) var entries: [Element] = []
    private var positions: [String: Int] = [:]

    /// An empty object.
    public init() {}

    /// An object with `pairs` in order; a repeated key replaces the earlier value in place.
    public init(_ pairs: some Sequence<(String, JSONValue)>) {
        for (key, value) in pairs { self[key] = value }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { entries.count }
    public subscript(position: Int) -> Element { entries[position] }

    /// The keys in order.
    public var keys: [String] { entries.map(\.key) }

    /// The value for `key`; assigning nil removes the member.
    public subscript(key: String) -> JSONValue? {
        get { positions[key].map { entries[$0].value } }
        set {
            if let value = newValue {
                if let index = positions[key] {
                    entries[index].value = value
                } else {
                    positions[key] = entries.count
                    entries.append((key, value))
                }
            } else if let index = positions.removeValue(forKey: key) {
                entries.remove(at: index)
                for i in index ..< entries.count { positions[entries[i].key] = i }
            }
        }
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (key, value) in lhs.entries where rhs[key] != value { return false }
        return true
    }
}

extension JSONValue {
    /// The member `key` of an object (nil for a missing key or a non-object).
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    /// The element at `index` of an array (nil when out of range or not an array).
    public subscript(index: Int) -> JSONValue? {
        if case .array(let array) = self, array.indices.contains(index) { return array[index] }
        return nil
    }

    /// The string of a `.string`.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// The value of a `.bool`.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    /// The value of an `.int`, or of a `.double` that is integral and exactly representable as
    /// `Int64` (so `2.0` gives 2). Format readers that require an integer *token* match `.int`.
    public var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value): return Int64(exactly: value)
        default: return nil
        }
    }

    /// The value of a `.double`, or an `.int` converted (rounded when beyond 2^53).
    public var doubleValue: Double? {
        switch self {
        case .double(let value): return value
        case .int(let value): return Double(value)
        default: return nil
        }
    }

    /// The elements of an `.array`.
    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    /// The members of an `.object`.
    public var objectValue: JSONObject? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// Whether this is `.null`.
    public var isNull: Bool { self == .null }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}

/// Why a JSON document was refused (or a value could not be serialized).
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The kind of problem.
    public enum Kind: Sendable, Equatable {
        /// Not JSON per RFC 8259 (json-c's message, or ours for what json-c lets through).
        case syntax
        /// Containers nested deeper than `maxDepth`.
        case depthLimit
        /// Bytes that are not well-formed UTF-8.
        case invalidUTF8
        /// Non-whitespace after the top-level value.
        case trailingCharacters
        /// An object repeats a key (compared after unescaping).
        case duplicateKey
        /// An integer outside the `Int64` range under `LargeIntegers.reject`.
        case integerOutOfRange
        /// A number whose magnitude overflows a double (`1e400`).
        case numberOutOfRange
        /// A `\u` escape of a lone UTF-16 surrogate (not a Unicode scalar).
        case unpairedSurrogate
        /// An object key containing U+0000 (json-c truncates keys at NUL, so we refuse them).
        case nulInKey
        /// Input of 2 GiB or more (json-c takes an `int` length).
        case inputTooLarge
        /// Serialization of an infinite or NaN double (JSON has no spelling for them).
        case nonFiniteNumber
    }

    public var kind: Kind
    /// Byte offset in the input where the problem was found (0 for serialization errors).
    public var offset: Int
    /// A human-readable explanation.
    public var message: String

    public init(kind: Kind, offset: Int, message: String) {
        self.kind = kind
        self.offset = offset
        self.message = message
    }

    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}

/// Parsing and serialization of JSON documents.
public enum JSON {
    /// What to do with integers (no fraction, no exponent) outside the `Int64` range.
    public enum LargeIntegers: Sendable {
        /// Refuse the document with `JSONError.Kind.integerOutOfRange`.
        case reject
        /// Keep them as the nearest `.double` (e.g. `model_max_length: 1000000000000000019884624838656`
        /// in tokenizer configs). They never become a wrong `.int`.
        case asDouble
    }

    /// The largest `maxDepth` accepted (the tree is converted recursively).
    public static let depthCap = 1024

    /// Parses a JSON document (RFC 8259, UTF-8, one top-level value of any type).
    ///
    /// - Parameters:
    ///   - bytes: The document. Surrounding JSON whitespace is allowed; anything else after the
    ///     value is an error.
    ///   - maxDepth: The deepest nesting of arrays/objects allowed (`[[1]]` has depth 2), 1...1024.
    ///   - rejectDuplicateKeys: Refuse objects repeating a key (default). When false, the last
    ///     value wins, at the position of the first occurrence.
    ///   - largeIntegers: How integers beyond `Int64` are handled (default `.asDouble`).
    /// - Returns: The value.
    /// - Throws: `JSONError` with the byte offset of the first problem found.
    public static func parse(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64, rejectDuplicateKeys: Bool = true,
        largeIntegers: LargeIntegers = .asDouble
    ) throws(JSONError) -> JSONValue {
        let options = Options(maxDepth: maxDepth, rejectDuplicateKeys: rejectDuplicateKeys,
                              largeIntegers: largeIntegers, recordTopLevelKeys: false)
        return try parseDocument(bytes, options: options).value
    }

    /// Parses a JSON document held in an array. See `parse(_:maxDepth:rejectDuplicateKeys:largeIntegers:)`.
    public static func parse(
        _ bytes: [UInt8], maxDepth: Int = 64, rejectDuplicateKeys: Bool = true,
        largeIntegers: LargeIntegers = .asDouble
    ) throws(JSONError) -> JSONValue {
        // withUnsafeBytes does not forward typed throws; carry the result out instead.
        let result: Result<JSONValue, JSONError> = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONError) in
                try parse(raw, maxDepth: maxDepth, rejectDuplicateKeys: rejectDuplicateKeys,
                          largeIntegers: largeIntegers)
            }
        }
        return try result.get()
    }

    /// Parses a JSON document held in a string. See `parse(_:maxDepth:rejectDuplicateKeys:largeIntegers:)`.
    public static func parse(
        _ text: String, maxDepth: Int = 64, rejectDuplicateKeys: Bool = true,
        largeIntegers: LargeIntegers = .asDouble
    ) throws(JSONError) -> JSONValue {
        try parse(Array(text.utf8), maxDepth: maxDepth, rejectDuplicateKeys: rejectDuplicateKeys,
                  largeIntegers: largeIntegers)
    }

    /// Parse settings (package-internal; the public API takes them as arguments).
    package struct Options: Sendable {
        package var maxDepth: Int
        package var rejectDuplicateKeys: Bool
        package var largeIntegers: LargeIntegers
        /// Record the byte offset of each key of the top-level object (for error messages).
        package var recordTopLevelKeys: Bool

        package init(maxDepth: Int = 64, rejectDuplicateKeys: Bool = true,
                     largeIntegers: LargeIntegers = .asDouble, recordTopLevelKeys: Bool = false) {
            self.maxDepth = maxDepth
            self.rejectDuplicateKeys = rejectDuplicateKeys
            self.largeIntegers = largeIntegers
            self.recordTopLevelKeys = recordTopLevelKeys
        }
    }

    /// A parsed document with, when requested, the offset of each top-level object key's opening
    /// quote (format readers use them to point errors at the right place).
    package struct Document: Sendable {
        package var value: JSONValue
        package var topLevelKeyOffsets: [String: Int]
    }

    /// Parses `bytes` (see `parse`), optionally recording top-level key offsets.
    package static func parseDocument(_ bytes: UnsafeRawBufferPointer, options: Options) throws(JSONError) -> Document {
        precondition((1 ... depthCap).contains(options.maxDepth), "maxDepth must be in 1...\(depthCap)")
        if bytes.count >= Int(Int32.max) {
            throw JSONError(kind: .inputTooLarge, offset: 0,
                            message: "document of \(bytes.count) bytes exceeds json-c's 2 GiB limit")
        }
        // 1. UTF-8 (json-c's own check accepts overlong forms, surrogates and values past U+10FFFF).
        if let bad = UTF8Check.firstInvalidOffset(bytes) {
            throw JSONError(kind: .invalidUTF8, offset: bad, message: "byte 0x\(hex(bytes[bad])) is not valid UTF-8 here")
        }
        // 2. Our validator: full RFC 8259 grammar, nesting, duplicate keys, number ranges, escapes.
        //    It runs before json-c so every error has an exact offset and one consistent meaning
        //    (json-c's own depth check, for one, ignores empty innermost containers).
        var scanner = Scanner(bytes: bytes, options: options)
        try scanner.run()
        // 3. json-c builds the tree. Integers past Int64 (kept under `.asDouble`) would be
        //    saturated by json-c, so they are given a ".0" suffix in a copy of the input first:
        //    json-c then reads them with strtod, correctly rounded.
        var patched: [UInt8] = []
        if !scanner.largeIntegerEnds.isEmpty {
            patched.reserveCapacity(bytes.count + 2 * scanner.largeIntegerEnds.count)
            var start = 0
            for end in scanner.largeIntegerEnds {
                patched.append(contentsOf: bytes[start ..< end])
                patched.append(contentsOf: [UInt8(ascii: "."), UInt8(ascii: "0")])
                start = end
            }
            patched.append(contentsOf: bytes[start...])
        }
        let result: Result<JSONValue, JSONError> = patched.withUnsafeBytes { patchedBytes in
            Result { () throws(JSONError) in
                let tree = try JSONC.parse(patched.isEmpty ? bytes : patchedBytes, maxDepth: options.maxDepth)
                defer { json_object_put(tree) }
                return JSONC.convert(tree)
            }
        }
        return Document(value: try result.get(), topLevelKeyOffsets: scanner.topLevelKeyOffsets)
    }

    // MARK: Serialization

    /// Serializes `value` as UTF-8 JSON text, deterministically.
    ///
    /// Strings escape `"`, `\` and control characters (U+0000...U+001F; `\b \f \n \r \t` short
    /// forms, others `\u00XX`); all other characters, non-ASCII included, are written as UTF-8.
    /// Doubles use the shortest text that reads back to the same value (`1.0`, `1e-05`, `-0.0`);
    /// integers are written in full. Object members keep their order unless `sortedKeys` (then
    /// by UTF-8 bytes, i.e. by code point, as Python's `sort_keys`).
    /// - Parameters:
    ///   - value: The value to write.
    ///   - pretty: Indent by two spaces, one member or element per line, `": "` after keys.
    ///   - sortedKeys: Sort object members by key.
    /// - Returns: The JSON text.
    /// - Throws: `JSONError` of kind `.nonFiniteNumber` for an infinite or NaN double (JSON cannot
    ///   represent them; we never emit `inf`, `nan` or a silent `null`).
    public static func serialize(_ value: JSONValue, pretty: Bool = false, sortedKeys: Bool = false) throws(JSONError) -> String {
        var writer = Writer(pretty: pretty, sortedKeys: sortedKeys)
        try writer.write(value, level: 0)
        return String(decoding: writer.out, as: UTF8.self)
    }

    /// Appends the JSON string literal for `text` (quotes included) to `out`.
    package static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [0x5C, 0x22]
            case UInt8(ascii: "\\"): out += [0x5C, 0x5C]
            case 0x08: out += [0x5C, UInt8(ascii: "b")]
            case 0x0C: out += [0x5C, UInt8(ascii: "f")]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0x00 ..< 0x20:
                out += Array("\\u00".utf8)
                out += Array(hex(byte).utf8)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private struct Writer {
        let pretty: Bool
        let sortedKeys: Bool
        var out: [UInt8] = []

        mutating func newline(_ level: Int) {
            guard pretty else { return }
            out.append(0x0A)
            out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * level))
        }

        mutating func write(_ value: JSONValue, level: Int) throws(JSONError) {
            switch value {
            case .null: out += Array("null".utf8)
            case .bool(let b): out += Array((b ? "true" : "false").utf8)
            case .int(let i): out += Array(String(i).utf8)
            case .double(let d):
                guard d.isFinite else {
                    throw JSONError(kind: .nonFiniteNumber, offset: 0,
                                    message: "\(d) cannot be written as JSON (no infinity or NaN in JSON)")
                }
                // Swift's description is the shortest round-tripping form and always JSON-shaped
                // for finite values ("1.0", "1e-05", "5e-324", "-0.0").
                out += Array(d.description.utf8)
            case .string(let s): JSON.appendString(s, to: &out)
            case .array(let elements):
                out.append(UInt8(ascii: "["))
                for (i, element) in elements.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    newline(level + 1)
                    try write(element, level: level + 1)
                }
                if !elements.isEmpty { newline(level) }
                out.append(UInt8(ascii: "]"))
            case .object(let object):
                out.append(UInt8(ascii: "{"))
                var members = object.entries
                if sortedKeys { members.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) } }
                for (i, member) in members.enumerated() {
                    if i > 0 { out.append(UInt8(ascii: ",")) }
                    newline(level + 1)
                    JSON.appendString(member.key, to: &out)
                    out.append(UInt8(ascii: ":"))
                    if pretty { out.append(UInt8(ascii: " ")) }
                    try write(member.value, level: level + 1)
                }
                if !members.isEmpty { newline(level) }
                out.append(UInt8(ascii: "}"))
            }
        }
    }
}

/// Two lowercase hex digits.
@inline(__always) private func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789abcdef".utf8)
    return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
}

// MARK: - json-c bridge

/// All direct use of json-c. Pointers never leave this enum.
private enum JSONC {
    /// Parses with json-c in strict mode; returns the tree root (owned: release it with
    /// `json_object_put`; nil stands for a top-level `null`). Input reaching here has passed our
    /// validator, so json-c errors are not expected; they are still checked and reported.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int) throws(JSONError) -> OpaquePointer? {
        // The validator already bounded the nesting; json-c needs one more level than the
        // containers it holds, plus one so it can never be the check that trips.
        guard let tok = json_tokener_new_ex(Int32(maxDepth + 2)) else {
            fatalError("json-c: out of memory allocating a tokener")
        }
        defer { json_tokener_free(tok) }
        // We check trailing characters ourselves (to report them as such), so allow them here.
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS)
        // json-c wants the terminating NUL counted so a top-level number knows where it ends.
        var input = [CChar](repeating: 0, count: bytes.count + 1)
        input.withUnsafeMutableBytes { $0.copyMemory(from: bytes) }
        let root = input.withUnsafeBufferPointer { json_tokener_parse_ex(tok, $0.baseAddress, Int32($0.count)) }
        let status = json_tokener_get_error(tok)
        let end = json_tokener_get_parse_end(tok)
        if status != json_tokener_success {
            if let root { json_object_put(root) }
            let message = "json-c: " + String(cString: json_tokener_error_desc(status))
            let kind: JSONError.Kind = status == json_tokener_error_depth ? .depthLimit : .syntax
            throw JSONError(kind: kind, offset: min(end, bytes.count), message: message)
        }
        if end != bytes.count {
            if let root { json_object_put(root) }
            throw JSONError(kind: .trailingCharacters, offset: end,
                            message: "unexpected byte 0x\(hex(bytes[min(end, bytes.count - 1)])) after the JSON value")
        }
        return root
    }

    /// Converts a json-c tree (already validated by `Scanner`) to a `JSONValue`.
    static func convert(_ object: OpaquePointer?) -> JSONValue {
        guard let object else { return .null }
        switch json_object_get_type(object) {
        case json_type_null: return .null
        case json_type_boolean: return .bool(json_object_get_boolean(object) != 0)
        case json_type_int: return .int(json_object_get_int64(object))
        case json_type_double: return .double(json_object_get_double(object))
        case json_type_string:
            let count = Int(json_object_get_string_len(object))
            guard let base = json_object_get_string(object) else { return .string("") }
            let bytes = UnsafeRawBufferPointer(start: base, count: count)
            return .string(String(decoding: bytes, as: UTF8.self))
        case json_type_array:
            let count = json_object_array_length(object)
            var elements: [JSONValue] = []
            elements.reserveCapacity(count)
            for i in 0 ..< count { elements.append(convert(json_object_array_get_idx(object, i))) }
            return .array(elements)
        case json_type_object:
            var members = JSONObject()
            var iterator = json_object_iter_begin(object)
            var end = json_object_iter_end(object)
            while json_object_iter_equal(&iterator, &end) == 0 {
                let key = String(cString: json_object_iter_peek_name(&iterator))
                members[key] = convert(json_object_iter_peek_value(&iterator))
                json_object_iter_next(&iterator)
            }
            return .object(members)
        default:
            return .null
        }
    }
}

// MARK: - Validation

/// UTF-8 well-formedness (Unicode Table 3-7: no overlong forms, no surrogates, at most U+10FFFF).
package enum UTF8Check {
    /// The offset of the first byte that starts an ill-formed sequence, or nil.
    package static func firstInvalidOffset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            var need = 0
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2 ... 0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1 ... 0xEC, 0xEE ... 0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1 ... 0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return i
            }
            if i + need >= n { return i }
            let b1 = bytes[i + 1]
            if b1 < lo || b1 > hi { return i }
            for k in 2 ..< need + 1 where bytes[i + k] & 0xC0 != 0x80 { return i }
            i += need + 1
        }
        return nil
    }
}

/// A validating pass enforcing RFC 8259 and our extra rules before json-c sees the document (see
/// the comment at the top of this file). Iterative, so its stack use does not grow with nesting.
private struct Scanner {
    let bytes: UnsafeRawBufferPointer
    let options: JSON.Options
    var i = 0
    /// End offsets of integer lexemes beyond Int64 (under `.asDouble`), in order.
    var largeIntegerEnds: [Int] = []
    var topLevelKeyOffsets: [String: Int] = [:]

    private struct Container {
        var isObject: Bool
        /// Unescaped keys seen so far → offset of their first occurrence.
        var keys: [[UInt8]: Int] = [:]
    }

    init(bytes: UnsafeRawBufferPointer, options: JSON.Options) {
        self.bytes = bytes
        self.options = options
    }

    private func fail(_ kind: JSONError.Kind, _ offset: Int, _ message: String) -> JSONError {
        JSONError(kind: kind, offset: offset, message: message)
    }

    private var atEnd: Bool { i >= bytes.count }
    private var current: UInt8 { bytes[i] }

    private mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(JSONError) {
        skipWhitespace()
        guard !atEnd, current == byte else { throw fail(.syntax, i, "expected \(what)") }
        i += 1
    }

    mutating func run() throws(JSONError) {
        var stack: [Container] = []
        skipWhitespace()
        parsing: while true {
            // A value starts at i.
            skipWhitespace()
            guard !atEnd else { throw fail(.syntax, i, "unexpected end of input, a value was expected") }
            switch current {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let isObject = current == UInt8(ascii: "{")
                if stack.count >= options.maxDepth {
                    throw fail(.depthLimit, i, "nesting deeper than \(options.maxDepth) levels")
                }
                stack.append(Container(isObject: isObject))
                i += 1
                skipWhitespace()
                if !atEnd, current == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    i += 1
                    stack.removeLast()
                } else {
                    if isObject { try member(&stack) }
                    continue parsing
                }
            case UInt8(ascii: "\""):
                _ = try string(decode: false)
            case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"):
                try number()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default:
                throw fail(.syntax, i, "unexpected character '\(Character(Unicode.Scalar(current)))' where a value was expected")
            }
            // After a value: close containers or move to the next element/member.
            // (Read only the flag: holding `stack.last` would share the key set and make every
            // insertion into it copy the whole set.)
            while let isObject = stack.last?.isObject {
                skipWhitespace()
                guard !atEnd else { throw fail(.syntax, i, "unexpected end of input inside a container") }
                if current == UInt8(ascii: ",") {
                    i += 1
                    if isObject { try member(&stack) }
                    continue parsing
                }
                guard current == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else {
                    throw fail(.syntax, i, "expected ',' or '\(isObject ? "}" : "]")'")
                }
                i += 1
                stack.removeLast()
            }
            break
        }
        skipWhitespace()
        if !atEnd { throw fail(.trailingCharacters, i, "unexpected data after the JSON value") }
    }

    /// Reads `"key" :` of an object member, checking for duplicates.
    private mutating func member(_ stack: inout [Container]) throws(JSONError) {
        skipWhitespace()
        guard !atEnd, current == UInt8(ascii: "\"") else { throw fail(.syntax, i, "expected a string key") }
        let start = i
        let key = try string(decode: true)
        if key.contains(0) {
            throw fail(.nulInKey, start, "object key contains U+0000, which is not supported")
        }
        if options.rejectDuplicateKeys || (options.recordTopLevelKeys && stack.count == 1) {
            if let first = stack[stack.count - 1].keys[key], options.rejectDuplicateKeys {
                let shown = String(decoding: key, as: UTF8.self)
                throw fail(.duplicateKey, start, "duplicate key \"\(shown)\" (first at byte \(first))")
            }
            if stack[stack.count - 1].keys[key] == nil { stack[stack.count - 1].keys[key] = start }
        }
        if options.recordTopLevelKeys && stack.count == 1 {
            let name = String(decoding: key, as: UTF8.self)
            if topLevelKeyOffsets[name] == nil { topLevelKeyOffsets[name] = start }
        }
        try expect(UInt8(ascii: ":"), "':' after an object key")
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let text = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - i >= text.count, bytes[i ..< i + text.count].elementsEqual(text) else {
            throw fail(.syntax, i, "invalid literal (expected \(word))")
        }
        i += text.count
    }

    private mutating func digits() -> Int {
        let start = i
        while !atEnd, current >= UInt8(ascii: "0"), current <= UInt8(ascii: "9") { i += 1 }
        return i - start
    }

    /// `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`
    private mutating func number() throws(JSONError) {
        let start = i
        let negative = current == UInt8(ascii: "-")
        if negative { i += 1 }
        let intStart = i
        let intDigits = digits()
        guard intDigits > 0 else { throw fail(.syntax, start, "invalid number: digits expected after '-'") }
        if intDigits > 1 && bytes[intStart] == UInt8(ascii: "0") {
            throw fail(.syntax, start, "invalid number: leading zeros are not allowed")
        }
        var isInteger = true
        var hasExponent = false
        if !atEnd, current == UInt8(ascii: ".") {
            i += 1
            isInteger = false
            guard digits() > 0 else { throw fail(.syntax, i, "invalid number: digits expected after '.'") }
        }
        if !atEnd, current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            i += 1
            isInteger = false
            hasExponent = true
            if !atEnd, current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail(.syntax, i, "invalid number: digits expected in the exponent") }
        }
        if isInteger {
            // Accumulate negatively so Int64.min fits.
            var value: Int64 = 0
            var overflow = false
            for k in intStart ..< i {
                let digit = Int64(bytes[k] - UInt8(ascii: "0"))
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.subtractingReportingOverflow(digit)
                if o1 || o2 { overflow = true; break }
                value = s
            }
            if !overflow && !negative && value == Int64.min { overflow = true }
            if overflow {
                if options.largeIntegers == .reject {
                    throw fail(.integerOutOfRange, start, "integer \(lexeme(start)) is outside the 64-bit range")
                }
                largeIntegerEnds.append(i)
            }
        } else if hasExponent || i - start > 300 {
            // Only an exponent or a very long mantissa can overflow a double.
            if let value = Double(lexeme(start)), !value.isFinite {
                throw fail(.numberOutOfRange, start, "number \(lexeme(start)) is too large for a double")
            }
        }
    }

    private func lexeme(_ start: Int) -> String {
        String(decoding: bytes[start ..< i], as: UTF8.self)
    }

    private mutating func hex4() throws(JSONError) -> UInt32 {
        guard bytes.count - i >= 4 else { throw fail(.syntax, i, "truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0 ..< 4 {
            let c = current
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A") ... UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
            default: throw fail(.syntax, i, "invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            i += 1
        }
        return value
    }

    /// Validates a string starting at the opening quote; returns its unescaped UTF-8 when `decode`.
    private mutating func string(decode: Bool) throws(JSONError) -> [UInt8] {
        var out: [UInt8] = []
        i += 1
        while true {
            guard !atEnd else { throw fail(.syntax, i, "unterminated string") }
            let c = current
            switch c {
            case UInt8(ascii: "\""):
                i += 1
                return out
            case 0x00 ..< 0x20:
                throw fail(.syntax, i, "control character 0x\(hex(c)) must be escaped in a string")
            case UInt8(ascii: "\\"):
                let escapeStart = i
                i += 1
                guard !atEnd else { throw fail(.syntax, i, "unterminated escape") }
                let e = current
                i += 1
                var scalar: UInt32
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): scalar = UInt32(e)
                case UInt8(ascii: "b"): scalar = 0x08
                case UInt8(ascii: "f"): scalar = 0x0C
                case UInt8(ascii: "n"): scalar = 0x0A
                case UInt8(ascii: "r"): scalar = 0x0D
                case UInt8(ascii: "t"): scalar = 0x09
                case UInt8(ascii: "u"):
                    scalar = try hex4()
                    if (0xDC00 ... 0xDFFF).contains(scalar) {
                        throw fail(.unpairedSurrogate, escapeStart, "unpaired low surrogate \\u\(String(scalar, radix: 16))")
                    }
                    if (0xD800 ... 0xDBFF).contains(scalar) {
                        guard bytes.count - i >= 2, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                            throw fail(.unpairedSurrogate, escapeStart, "high surrogate \\u\(String(scalar, radix: 16)) not followed by a low surrogate")
                        }
                        i += 2
                        let low = try hex4()
                        guard (0xDC00 ... 0xDFFF).contains(low) else {
                            throw fail(.unpairedSurrogate, escapeStart, "high surrogate \\u\(String(scalar, radix: 16)) not followed by a low surrogate")
                        }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                default:
                    throw fail(.syntax, escapeStart, "invalid escape sequence")
                }
                if decode, let s = Unicode.Scalar(scalar) { UTF8.encode(s) { out.append($0) } }
            default:
                if decode { out.append(c) }
                i += 1
            }
        }
    }
}
