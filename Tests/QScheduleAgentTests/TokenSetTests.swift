import Testing
@testable import QScheduleAgent

@Suite("Q-Server-Token comparison")
struct TokenSetTests {
    static let token = "demo-token-0123456789"

    @Test("the token followed by any number of extra bytes is refused", arguments: [1, 255, 256, 257, 512])
    func longerIsRefused(extra: Int) {
        let tokens = TokenSet([Self.token, "second-token-abcdefgh"])
        #expect(!tokens.accepts(Self.token + String(repeating: "x", count: extra)))
        #expect(!tokens.accepts(Self.token + String(repeating: "\u{0}", count: extra)))
    }

    @Test("a prefix, an empty or missing header, a one-byte change are refused; each configured token is accepted")
    func exactness() {
        let tokens = TokenSet([Self.token, "second-token-abcdefgh"])
        #expect(tokens.accepts(Self.token))
        #expect(tokens.accepts("second-token-abcdefgh"))
        #expect(!tokens.accepts(String(Self.token.dropLast())))
        #expect(!tokens.accepts(String(Self.token.dropLast()) + "8"))
        #expect(!tokens.accepts(""))
        #expect(!tokens.accepts(nil))
        #expect(!tokens.accepts(String(Self.token.prefix(1))))
    }
}
