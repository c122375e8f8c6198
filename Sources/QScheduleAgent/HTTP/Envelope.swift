import Foundation
import Hummingbird
import NIOCore
import NIOHTTPTypes

/// The seed's JSON envelope: `{"ret":false,"message":...,"reason":...}` or
/// `{"ret":true,"message":...}` or `{"ret":true,"data":...}`.
struct Envelope<Payload: Encodable>: Encodable {
    var ret: Bool
    var message: String?
    var reason: String?
    var data: Payload?
}

/// Builds envelope responses. Every documented outcome is HTTP 200; only transport-level
/// refusals (404, 405, 413) and readiness use other statuses, still with an envelope.
enum EnvelopeResponse {
    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func failure(_ message: String, reason: String? = nil, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        make(Envelope<String>(ret: false, message: message, reason: reason, data: nil), status: status, headers: headers)
    }

    static func success(message: String) -> Response {
        make(Envelope<String>(ret: true, message: message, reason: nil, data: nil))
    }

    /// Every envelope's `Content-Type`.
    static let contentType = "application/json; charset=utf-8"

    /// `{"data":[],"ret":true}`, encoded once: an idle host's `/api/check`, which deploys poll.
    static func emptyList() -> Response {
        Response(status: .ok, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: emptyListBody))
    }

    static let emptyListBody = ByteBuffer(data: (try? encoder.encode(Envelope<[String]>(ret: true, message: nil, reason: nil, data: []))) ?? Data())

    static func data(_ payload: some Encodable) -> Response {
        make(Envelope(ret: true, message: nil, reason: nil, data: payload))
    }

    /// The bytes of a `ret:false` envelope.
    static func failureBody(message: String, reason: String) -> Data {
        (try? encoder.encode(Envelope<String>(ret: false, message: message, reason: reason, data: nil))) ?? Data()
    }

    /// Writes a `ret:false` envelope answer straight into a channel (below the responder: the
    /// HTTP layer's own refusals), with `Connection: close`.
    static func writeRaw(
        status: HTTPResponse.Status, message: String, reason: String, context: ChannelHandlerContext,
        wrap: (HTTPResponsePart) -> NIOAny
    ) {
        let body = failureBody(message: message, reason: reason)
        let head = HTTPResponse(status: status, headerFields: [
            .contentType: contentType, .contentLength: "\(body.count)", .connection: "close",
        ])
        context.write(wrap(.head(head)), promise: nil)
        context.write(wrap(.body(ByteBuffer(bytes: body))), promise: nil)
        context.writeAndFlush(wrap(.end(nil)), promise: nil)
    }

    static func make(_ envelope: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        let body = (try? encoder.encode(envelope)) ?? Data(#"{"ret":false,"message":"内部错误"}"#.utf8)
        var fields = headers
        fields[.contentType] = contentType
        return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }
}

extension Response {
    /// A finished answer carried as an error, for helpers that either find what a handler
    /// needs or already know the answer (`Result<Found, Response.Failure>`).
    struct Failure: Error {
        let response: Response

        init(_ response: Response) {
            self.response = response
        }
    }
}
