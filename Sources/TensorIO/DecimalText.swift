/// `value` with `digits` decimals, rounded half away from zero ("-0.50", "12.0"), without Foundation's
/// `String(format:)`; non-finite values as Swift prints them.
public func decimalText(_ value: Double, digits: Int) -> String {
    if !value.isFinite { return "\(value)" }
    var scale = 1.0
    for _ in 0 ..< digits { scale *= 10 }
    let rounded = (abs(value) * scale).rounded()
    let whole = Int(rounded / scale)
    let fraction = Int(rounded.truncatingRemainder(dividingBy: scale))
    var text = (value < 0 && rounded != 0 ? "-" : "") + String(whole)
    if digits > 0 {
        let f = String(fraction)
        text += "." + String(repeating: "0", count: digits - f.count) + f
    }
    return text
}
