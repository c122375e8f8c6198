import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a request the HTTP layer cannot parse (bad or duplicate `Content-Length`, oversized
/// headers, an unknown method, invalid bytes in the request line, ...) with the seed envelope
/// instead of a bare `400` — `431` for oversized headers — then closes the connection, as a
/// parser that lost its place must. When an answer is already being written only the close
/// remains.
final class MalformedRequestHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var responding = false
    private var answered = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head: responding = true
        case .end: responding = false
        case .body: break
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !answered else { return }
        answered = true
        if !responding {
            let tooLarge = (error as? HTTPParserError) == .headerOverflow
            EnvelopeResponse.writeRaw(
                status: tooLarge ? .requestHeaderFieldsTooLarge : .badRequest,
                message: SeedMessage.badRequest,
                reason: tooLarge ? FailureReason.headersTooLarge : FailureReason.malformedRequest,
                context: context, wrap: wrapOutboundOut)
        }
        context.close(promise: nil)
    }
}
