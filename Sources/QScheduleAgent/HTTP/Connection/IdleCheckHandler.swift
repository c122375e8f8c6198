import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// Answers `GET /api/check/$ip.do` on the event loop when the host is idle — the request a
/// deploy polls while it drains a fleet — with the same bytes the responder would send
/// (`{"data":[],"ret":true}`, the same headers), counted in the same metric. Everything else,
/// a busy host included, goes on to the responder: this only saves an idle answer its hop to
/// the cooperative pool and Hummingbird's per-request work.
///
/// Idle is ``RunnerActivity/isIdle``, which the runner publishes in the turn that changes its
/// state, so a task acknowledged before the request arrived is never missed. Only an IP this
/// agent answers for without asking the system (loopback or the advertised IP) is served
/// here; any other form of the path (percent-escapes, a query, another IP) takes the full
/// route, which has the one validation. Not installed in cluster mode, where `/api/check`
/// answers for the cluster.
final class IdleCheckHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let route = "/api/check/{}.do"
    private static let prefix = "/api/check/"
    private static let suffix = ".do"

    private let activity: RunnerActivity
    private let identity: AgentIdentity
    private let metrics: AgentMetrics
    /// This connection's count of idle answers (made on its first).
    private lazy var answered = metrics.httpRequestCounter(method: "GET", route: Self.route, status: 200)
    /// Requests passed on whose response has not ended: answers must keep request order.
    private var passedOn = 0
    /// Set while a request is answered here (its body parts are dropped, its end answered):
    /// whether it asked to close the connection after the answer.
    private var answeringThenClose: Bool?

    init(activity: RunnerActivity, identity: AgentIdentity, metrics: AgentMetrics) {
        self.activity = activity
        self.identity = identity
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if passedOn == 0, head.method == .get, isIdleCheck(head.path), activity.isIdle {
                answeringThenClose = head.headerFields[.connection] == "close"
                return
            }
            passedOn += 1
            context.fireChannelRead(data)
        case .body:
            if answeringThenClose == nil { context.fireChannelRead(data) }
        case .end:
            guard let close = answeringThenClose else { return context.fireChannelRead(data) }
            answeringThenClose = nil
            answerIdle(context: context, close: close)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), passedOn > 0 { passedOn -= 1 }
        context.write(data, promise: promise)
    }

    /// `/api/check/<ip>.do` for an IP that is plainly this host's.
    private func isIdleCheck(_ path: String?) -> Bool {
        guard let path, path.hasPrefix(Self.prefix), path.hasSuffix(Self.suffix) else { return false }
        let text = path.utf8.dropFirst(Self.prefix.utf8.count).dropLast(Self.suffix.utf8.count)
        guard !text.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "?") }),
              let ip = IPAddress(String(decoding: text, as: UTF8.self))?.unmapped
        else { return false }
        return ip.isLoopback || ip == identity.ip.unmapped
    }

    private func answerIdle(context: ChannelHandlerContext, close: Bool) {
        var head = IdleCheckHead.current()
        if close { head.headerFields[.connection] = "close" }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(EnvelopeResponse.emptyListBody)), promise: nil)
        if close {
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
        } else {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
        answered.increment()
    }
}

/// HTTP/1.1 with ``IdleCheckHandler`` behind Hummingbird's connection-state handler (which
/// keeps seeing every request and response, so idle timeouts and graceful shutdown still
/// count the answers given on the event loop).
struct IdleCheckChannel<Base: ServerChildChannel>: ServerChildChannel {
    typealias Value = Base.Value

    let base: Base
    let makeHandler: @Sendable () -> IdleCheckHandler

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        base.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(makeHandler(), position: .after(state))
            return value
        }
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

/// The idle `/api/check` answer's head — the responder's headers, `Date` (RFC 9110
/// IMF-fixdate) included — made once per second.
enum IdleCheckHead {
    private static let heads = PerSecondCache { second in
        HTTPResponse(status: .ok, headerFields: [
            .contentType: EnvelopeResponse.contentType,
            .contentLength: String(EnvelopeResponse.emptyListBody.readableBytes),
            .date: httpDate(second),
            .server: "qagent",
        ])
    }
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    static func current() -> HTTPResponse {
        heads.now()
    }

    /// `seconds` since the epoch as an IMF-fixdate: `Mon, 30 Nov 2026 21:24:01 GMT`.
    static func httpDate(_ seconds: Int) -> String {
        var seconds = seconds
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(1900 + parts.tm_year) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
