/// The identifier rules of the interface (DESIGN §2).
public enum Identifier {
    /// `^[A-Za-z0-9_.\-]{1,128}$`
    public static func isJobName(_ text: String?) -> Bool {
        matches(text, extra: [UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-")])
    }

    /// `^[A-Za-z0-9_.:\-]{1,128}$`
    public static func isTaskID(_ text: String?) -> Bool {
        matches(text, extra: [UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "-")])
    }

    private static func matches(_ text: String?, extra: [UInt8]) -> Bool {
        guard let text else { return false }
        let utf8 = text.utf8
        guard (1...128).contains(utf8.count) else { return false }
        return utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || extra.contains(byte)
        }
    }
}
