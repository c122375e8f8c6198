import HummingbirdCore
import Logging
import NIOCore
import NIOSSL

/// A child channel that speaks TLS before its base (the HTTP/1.1 channel), with the
/// listener's current context. HummingbirdTLS's `TLSChannel` fixes its context when the
/// server is built; this one takes ``ListenerTLS/current`` per connection, so that a reload
/// can rotate certificates without closing the listener.
struct ListenerTLSChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let tls: ListenerTLS

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(PlainHTTPRefusal(), NIOSSLServerHandler(context: tls.current))
        }.flatMap {
            base.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension ServerChildChannel {
    /// This channel behind TLS with `tls`'s current context.
    func behindTLS(_ tls: ListenerTLS) -> any ServerChildChannel {
        ListenerTLSChannel(base: self, tls: tls)
    }
}

/// In front of the TLS handler: a connection whose first byte is not a TLS handshake record
/// (plain HTTP sent to the HTTPS port, say) gets one plain-text `400` with the seed envelope
/// (`reason` `tls_required`) and is closed, instead of a silent reset; the bytes never reach
/// the TLS or HTTP layers. A TLS connection passes untouched (the handler removes itself).
final class PlainHTTPRefusal: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// TLS record type 22: handshake (every TLS connection starts with a ClientHello).
    private static let handshakeRecord: UInt8 = 0x16
    private var refused = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        guard first != Self.handshakeRecord else {
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        refused = true
        let body = EnvelopeResponse.failureBody(message: SeedMessage.badRequest, reason: FailureReason.tlsRequired)
        var head = "HTTP/1.1 400 Bad Request\r\nContent-Type: \(EnvelopeResponse.contentType)\r\n"
        head += "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        var answer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        answer.writeString(head)
        answer.writeBytes(body)
        context.writeAndFlush(wrapOutboundOut(answer), promise: nil)
        context.close(promise: nil)
    }
}
