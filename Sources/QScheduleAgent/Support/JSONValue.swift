import Foundation

/// A JSON document kept with its types intact: booleans stay booleans, integers stay exact.
///
/// Used to read request bodies strictly (a `1` is never a `true`) and to hand a task's
/// param to its handler as it was sent. Integers that fit `Int64` round-trip exactly; other
/// numbers are carried as `Double`.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses UTF-8 JSON in one pass; `nil` when the bytes are not valid JSON or nest deeper
    /// than 64 arrays and objects.
    public init?(parsing data: Data) {
        guard let value = try? JSONParser.parse(data) else { return nil }
        self = value
    }

    /// Parses a JSON text; `nil` when invalid.
    public init?(parsing text: String) {
        self.init(parsing: Data(text.utf8))
    }

    /// The object's members, or `nil` when this is not an object.
    public var objectValue: [String: JSONValue]? {
        if case .object(let members) = self { return members }
        return nil
    }

    /// The string, or `nil` when this is not a string.
    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    /// The boolean, or `nil` when this is not a boolean.
    public var boolValue: Bool? {
        if case .bool(let bool) = self { return bool }
        return nil
    }

    /// The integer, or `nil` when this is not an integral number.
    public var intValue: Int64? {
        if case .int(let value) = self { return value }
        return nil
    }

    /// The member `key` of an object: `answer["data"]?["lastState"]`; `nil` otherwise.
    public subscript(key: String) -> JSONValue? { objectValue?[key] }

    /// The elements, or `nil` when this is not an array.
    public var arrayValue: [JSONValue]? {
        if case .array(let elements) = self { return elements }
        return nil
    }

    /// Compact JSON text with sorted keys and unescaped slashes and non-ASCII characters.
    public var jsonText: String {
        let data = (try? JSONValue.encoder.encode(self)) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()
}

extension JSONValue: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let int = try? container.decode(Int64.self) {
            self = .int(int)
        } else if let double = try? container.decode(Double.self) {
            self = .double(double)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let bool): try container.encode(bool)
        case .int(let int): try container.encode(int)
        case .double(let double): try container.encode(double)
        case .string(let string): try container.encode(string)
        case .array(let array): try container.encode(array)
        case .object(let object): try container.encode(object)
        }
    }
}
