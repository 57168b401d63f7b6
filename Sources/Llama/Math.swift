// The C math library's functions the package calls by name, one wrapper each, so no other file carries
// its own `#if canImport(Glibc)` copy (Foundation stays out of the core modules).

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@inline(__always) package func _log(_ x: Double) -> Double { log(x) }
@inline(__always) package func _exp(_ x: Double) -> Double { exp(x) }
@inline(__always) package func _cos(_ x: Double) -> Double { cos(x) }
@inline(__always) package func _sin(_ x: Double) -> Double { sin(x) }
@inline(__always) func expFloat(_ x: Float) -> Float { expf(x) }
@inline(__always) func logFloat(_ x: Float) -> Float { logf(x) }
