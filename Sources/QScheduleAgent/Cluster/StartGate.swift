/// A one-shot gate: ``wait()`` returns once ``open()`` was called (or right away after it).
/// The cluster's services wait on one until this agent listens or is a registered member.
final class StartGate: Sendable {
    private let stream: AsyncStream<Void>
    private let continuation: AsyncStream<Void>.Continuation

    init() {
        (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func open() {
        continuation.yield()
        continuation.finish()
    }

    /// Returns once opened; also returns (without it being opened) when the gate is
    /// abandoned with ``abandon()`` (a shutdown before the start).
    func wait() async {
        for await _ in stream { return }
    }

    func abandon() {
        continuation.finish()
    }
}
