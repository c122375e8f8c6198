import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Bounds the time a request takes to arrive once its head is in (`read_timeout`): a client
/// that sends half a body and stalls is answered `408` with the envelope (unless the request
/// was already answered) and the connection is closed. Idle connections and incomplete heads are bounded by
/// Hummingbird's idle timeout (`idle_timeout`).
final class RequestReadTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// When the head of a request whose end has not arrived was read.
    private var headReadAt: NIODeadline?
    /// Whether an answer to the current request has begun (the responder may answer before
    /// reading the body: a refusal, a 413).
    private var answered = false

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            answered = false
            headReadAt = .now()
        case .end:
            headReadAt = nil
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    /// The timer is armed only for a request still incomplete once the bytes at hand are
    /// read: a request that arrives whole (most, and every GET) never schedules one.
    func channelReadComplete(context: ChannelHandlerContext) {
        if let headReadAt, deadline == nil {
            deadline = context.eventLoop.assumeIsolated().scheduleTask(deadline: headReadAt + timeout) { [self] in
                deadline = nil
                if !answered {
                    EnvelopeResponse.writeRaw(
                        status: .requestTimeout, message: SeedMessage.badRequest, reason: FailureReason.requestTimeout,
                        context: context, wrap: wrapOutboundOut)
                }
                context.close(promise: nil)
            }
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .head = unwrapOutboundIn(data) { answered = true }
        context.write(data, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}
