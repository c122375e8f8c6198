import Foundation
import Testing
@testable import QScheduleAgent

@Suite("WakeSignal")
struct WakeSignalTests {
    /// Elapsed time of `body`.
    static func measure(_ body: () async -> Void) async -> Duration {
        let start = ContinuousClock.now
        await body()
        return ContinuousClock.now - start
    }

    @Test("a wait that timed out leaves the signal working: later waits still wait, and a signal still wakes")
    func survivesTimeouts() async {
        let signal = WakeSignal()
        for _ in 0..<3 {
            // No signal: each wait lasts its whole timeout (a sleep never ends early), however
            // many waits timed out before. (An AsyncStream iterated from a cancelled child task
            // is finished: every later wait returned at once, and the claim loop spun.)
            #expect(await Self.measure { await signal.wait(timeout: .milliseconds(100)) } >= .milliseconds(100))
        }
        // A signal sent while nobody waits is kept for the next wait: it returns long before its timeout.
        signal.signal()
        #expect(await Self.measure { await signal.wait(timeout: .seconds(120)) } < .seconds(60))
        // Kept once only.
        #expect(await Self.measure { await signal.wait(timeout: .milliseconds(100)) } >= .milliseconds(100))
        // A signal during a wait wakes it.
        let waited = Task { await Self.measure { await signal.wait(timeout: .seconds(120)) } }
        try? await Task.sleep(for: .milliseconds(50))
        signal.signal()
        #expect(await waited.value < .seconds(60))
    }
}
