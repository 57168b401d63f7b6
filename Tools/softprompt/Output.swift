#if canImport(Glibc)
import Glibc
#endif
import TensorIO

/// Small text-formatting helpers for terminal reports.
enum Output {
    /// "1.70 MiB" style sizes.
    static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : fixed(value, 2) + " " + units[unit]
    }

    /// `value` with `digits` decimals (no Foundation `String(format:)`).
    static func fixed(_ value: Double, _ digits: Int) -> String { decimalText(value, digits: digits) }

    /// A text table with left-aligned columns (right-aligned where `rightAligned` says so).
    static func table(_ header: [String], _ rows: [[String]], rightAligned: Set<Int> = []) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in cells.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                parts.append(rightAligned.contains(i) ? pad + cell : cell + pad)
            }
            var text = parts.joined(separator: "  ")
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        var out = [line(header), line(widths.map { String(repeating: "-", count: $0) })]
        out += rows.map(line)
        return out.joined(separator: "\n")
    }

    /// Writes to standard error.
    static func error(_ text: String) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// Writes to standard error without adding a newline (progress lines).
    static func errorInline(_ text: String) {
        var text = text
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// Writes to standard output at once (unbuffered: streamed text appears as it is produced).
    static func stream(_ text: String) {
        var text = text
        text.withUTF8 { _ = Glibc.write(1, $0.baseAddress, $0.count) }
    }

    /// Monotonic time in seconds.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

