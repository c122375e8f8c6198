/// One call of a Swift handler as the agent makes it (``QScheduleAgentTesting`` makes the same).
package enum HandlerCall {
    /// Returning is 200 — unless the handler deferred its completion, in which case the
    /// handle decides (200, or 500 with its error); a thrown error is 500 with the error's
    /// description; cancellation gives "cancelled" (the caller records why it cancelled).
    /// Once this returns, a deferred handle refuses results.
    package static func run(_ handler: any JobHandler, context: TaskContext) async -> (result: TaskResult, message: String) {
        do {
            try await handler.run(context)
            if context.deferral.isDeferred { try await context.deferral.result() }
            return (.succeeded, "ok")
        } catch is CancellationError {
            context.deferral.stop()
            return (.failed, "cancelled")
        } catch {
            context.deferral.stop()
            return (.failed, ErrorDescription.of(error))
        }
    }
}
