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
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static func failure(_ message: String, reason: String? = nil, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        make(Envelope<String>(ret: false, message: message, reason: reason, data: nil), status: status, headers: headers)
    }

    /// `{"message":...,"ret":true}`: every dispatch acknowledgement. Written directly, the
    /// same bytes as the encoder's (a test compares them for every kind of character); the
    /// encoder cost about 3 % of the agent's CPU under a flood of dispatches.
    static func success(message: String) -> Response {
        Response(status: .ok, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: successBody(message: message)))
    }

    /// The body of ``success(message:)``.
    static func successBody(message: String) -> ByteBuffer {
        var body = ByteBuffer()
        body.reserveCapacity(message.utf8.count + 24)
        body.writeStaticString(#"{"message":"#)
        writeJSONString(message, to: &body)
        body.writeStaticString(#","ret":true}"#)
        return body
    }

    /// `text` as a JSON string, escaped as the envelope's encoder escapes it: `"` and `\\`,
    /// control characters (`\b`, `\f`, `\n`, `\r`, `\t`, else `\u00XX`); slashes and
    /// non-ASCII characters as they are.
    static func writeJSONString(_ text: String, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        let utf8 = text.utf8
        var plain = utf8.startIndex  // the start of the bytes not yet written
        for index in utf8.indices {
            let byte = utf8[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            buffer.writeBytes(utf8[plain..<index])
            plain = utf8.index(after: index)
            switch byte {
            case UInt8(ascii: "\""): buffer.writeStaticString(#"\""#)
            case UInt8(ascii: "\\"): buffer.writeStaticString(#"\\"#)
            case 0x08: buffer.writeStaticString(#"\b"#)
            case 0x0C: buffer.writeStaticString(#"\f"#)
            case UInt8(ascii: "\n"): buffer.writeStaticString(#"\n"#)
            case UInt8(ascii: "\r"): buffer.writeStaticString(#"\r"#)
            case UInt8(ascii: "\t"): buffer.writeStaticString(#"\t"#)
            default:
                buffer.writeStaticString(#"\u00"#)
                for nibble in [byte >> 4, byte & 0x0F] {
                    buffer.writeInteger(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
                }
            }
        }
        buffer.writeBytes(utf8[plain...])
        buffer.writeInteger(UInt8(ascii: "\""))
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
