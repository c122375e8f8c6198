/// The accepted `Q-Server-Token` values. Several may be configured for rotation.
struct TokenSet: Sendable {
    private let tokens: [[UInt8]]

    init(_ tokens: [String]) {
        self.tokens = tokens.map { Array($0.utf8) }
    }

    /// Whether `candidate` equals one of the tokens exactly (same bytes, same length). Each
    /// comparison takes time that depends only on the lengths, never on where the bytes first
    /// differ, and every token is tried.
    func accepts(_ candidate: String?) -> Bool {
        guard let candidate else { return false }
        let given = Array(candidate.utf8)
        var matched: UInt8 = 0
        for token in tokens {
            // Any length difference, however large, is a mismatch (never truncated to a byte).
            var difference: UInt8 = token.count == given.count ? 0 : 1
            for index in 0..<token.count {
                difference |= token[index] ^ (index < given.count ? given[index] : 0)
            }
            matched |= difference == 0 ? 1 : 0
        }
        return matched == 1
    }
}
