import Foundation
import Testing
@testable import QScheduleAgent

@Suite("JSON parser")
struct JSONParserTests {
    func parse(_ text: String) -> JSONValue? { JSONValue(parsing: Data(text.utf8)) }

    @Test("types stay exact: integers, booleans, doubles, null, strings, nesting")
    func types() {
        #expect(parse("1") == .int(1))
        #expect(parse("-0") == .int(0))
        #expect(parse("true") == .bool(true))
        #expect(parse("false") == .bool(false))
        #expect(parse("null") == .null)
        #expect(parse("1.5") == .double(1.5))
        #expect(parse("1e2") == .double(100))
        #expect(parse("-2.5E-3") == .double(-0.0025))
        #expect(parse("9223372036854775807") == .int(.max))
        #expect(parse("-9223372036854775808") == .int(.min))
        #expect(parse("9223372036854775808") == .double(9223372036854775808))
        #expect(parse(#" { "a" : [ 1 , { "b" : null } ] , "c" : "d" } "#)
                == .object(["a": .array([.int(1), .object(["b": .null])]), "c": .string("d")]))
        #expect(parse(#"{"a":1,"a":2}"#) == .object(["a": .int(2)]))
        #expect(parse("[]") == .array([]))
        #expect(parse("{}") == .object([:]))
    }

    @Test("strings: escapes, surrogate pairs, UTF-8 kept")
    func strings() {
        #expect(parse(#""a\"b\\c\/d\b\f\n\r\t""#) == .string("a\"b\\c/d\u{8}\u{c}\n\r\t"))
        #expect(parse(#""\u00e9\u4E2D\ud83d\ude00""#) == .string("é中😀"))
        #expect(parse("\"参数错误 😀\"") == .string("参数错误 😀"))
        #expect(parse(#""\u0000""#) == .string("\u{0}"))
    }

    @Test("invalid input is refused", arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "+1", "-", "1e", "1e+",
        "NaN", "Infinity", "tru", "nul", "[] x", "{} {}", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud83d\"", "\"\\ude00\"",
        "\"\\ud83d\\u0041\"", "\"\u{01}\"", "\"a\nb\"", "1e400", "'a'", "[\"a\"\"b\"]",
    ])
    func refused(text: String) {
        #expect(parse(text) == nil, "accepted: \(text.debugDescription)")
    }

    @Test("invalid UTF-8 inside a string is refused")
    func invalidUTF8() {
        #expect(JSONValue(parsing: Data([0x22, 0xC3, 0x28, 0x22])) == nil)
        #expect(JSONValue(parsing: Data([0x22, 0xFF, 0x22])) == nil)
        #expect(JSONValue(parsing: Data([0x22, 0xED, 0xA0, 0x80, 0x22])) == nil)  // an encoded surrogate
    }

    @Test("nesting: 64 levels parse, 65 are refused, 100,000 are refused without recursion trouble")
    func depth() {
        func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        #expect(parse(nested(64)) != nil)
        #expect(parse(nested(65)) == nil)
        #expect(parse(String(repeating: "{\"a\":", count: 64) + "1" + String(repeating: "}", count: 64)) != nil)
        #expect(parse(String(repeating: "{\"a\":", count: 65) + "1" + String(repeating: "}", count: 65)) == nil)
        #expect(parse(nested(100_000)) == nil)
    }

    @Test("random documents: what JSONEncoder writes parses back to the same value")
    func roundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        func value(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 4 ? 5 : 7), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random())
            case 2: return .int(Int64.random(in: .min ... .max))
            case 3: return .double(Double.random(in: -1e9...1e9).rounded() + 0.5)
            case 4: return .string(String((0..<Int.random(in: 0..<12)).map { _ in "aé中😀\"\\\n\t/\u{1}x".randomElement()! }))
            case 5: return .array((0..<Int.random(in: 0..<5)).map { _ in value(depth + 1) })
            default:
                return .object(Dictionary((0..<Int.random(in: 0..<5)).map { ("k\($0)\(Int.random(in: 0..<9))", value(depth + 1)) }, uniquingKeysWith: { a, _ in a }))
            }
        }
        for _ in 0..<500 {
            let original = value(0)
            let text = try JSONEncoder().encode(original)
            #expect(JSONValue(parsing: text) == original, "\(String(decoding: text, as: UTF8.self))")
        }
    }
}
