import Foundation
import NIOCore
import Testing
@testable import QScheduleAgent

@Suite("Envelope")
struct EnvelopeTests {
    @Test("a dispatch acknowledgement written directly is byte for byte the encoder's, for every ASCII character, non-ASCII text, slashes and long ids")
    func successBodyMatchesTheEncoder() throws {
        var messages = (0..<128).map { String(UnicodeScalar(UInt8($0))) }
        messages += [
            "", "127.0.0.1:20010:1733011200000:42", "a/b\\c\"d", "任务已接受", "emoji 🚀 and \u{2028}\u{2029}",
            "\u{7F}\u{80}\u{FFFF}", "tab\there\nnew\rline\u{0}nul\u{1F}", String(repeating: "x\"", count: 5_000),
        ]
        for message in messages {
            let encoded = try EnvelopeResponse.encoder.encode(Envelope<String>(ret: true, message: message, reason: nil, data: nil))
            let written = EnvelopeResponse.successBody(message: message)
            #expect(Array(written.readableBytesView) == Array(encoded), "\(message.debugDescription): \(String(buffer: written)) vs \(String(decoding: encoded, as: UTF8.self))")
        }
    }
}
