import Foundation
import Synchronization

/// A value made from one second of the clock and reused for the rest of that second: a log
/// line's timestamp, the idle `/api/check` answer's head (its `Date`), a task id's stamp.
/// Made under the lock, so each second's value is made once however many threads ask.
final class PerSecondCache<Value: Sendable>: Sendable {
    private let cached = Mutex<(second: Int, value: Value)?>(nil)
    private let make: @Sendable (Int) -> Value

    /// `make` turns a second since the epoch into its value.
    init(_ make: @escaping @Sendable (Int) -> Value) {
        self.make = make
    }

    /// The value of `second` (seconds since the epoch).
    func value(at second: Int) -> Value {
        cached.withLock { cached in
            if let cached, cached.second == second { return cached.value }
            let value = make(second)
            cached = (second, value)
            return value
        }
    }

    /// The value of the current second.
    func now() -> Value {
        value(at: time(nil))
    }
}

extension tm {
    /// `strftime(format)` of this broken-down time.
    func formatted(_ format: String) -> String {
        var time = self
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
            let count = strftime(buffer.baseAddress!, buffer.count, format, &time)
            return String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress!, count: count), as: UTF8.self)
        }
    }
}
