import Foundation
import Hummingbird

/// Matches request paths of the seed interface, whose resources end in `.do` and whose
/// captured names may themselves contain dots (`/api2/jobs/qschedule.demo.job1.do`).
///
/// A path that no route matches is 404; a path that routes match only for other methods
/// is 405 with `Allow`. When several routes match, the first registered for the method
/// wins, so `GET /api2/jobs/on.do` is the info of a job named `on`, not a 405.
struct RouteTable<Handler: Sendable>: Sendable {
    /// A path segment pattern: a literal, or a capture with a required suffix.
    enum Segment: Sendable {
        case literal(String)
        case capture(suffix: String)
    }

    struct Route: Sendable {
        var method: HTTPRequest.Method
        /// The pattern as registered, e.g. `/api2/jobs/{}.do`.
        var pattern: String
        var segments: [Segment]
        var handler: Handler
        /// Whether the route sits behind `Q-Server-Token`.
        var requiresToken: Bool
    }

    enum Match {
        case found(Route, captured: String?)
        case methodNotAllowed([HTTPRequest.Method])
        case notFound
    }

    private(set) var routes: [Route] = []

    /// Adds a route; `pattern` is like `/api2/jobs/{}.do` where `{}` captures one segment.
    mutating func add(_ method: HTTPRequest.Method, _ pattern: String, requiresToken: Bool, _ handler: Handler) {
        let segments = pattern.split(separator: "/").map { part -> Segment in
            if part.hasPrefix("{}") { return .capture(suffix: String(part.dropFirst(2))) }
            return .literal(String(part))
        }
        routes.append(Route(method: method, pattern: pattern, segments: segments, handler: handler, requiresToken: requiresToken))
    }

    func match(method: HTTPRequest.Method, path: String) -> Match {
        let parts = Array(path.split(separator: "/", omittingEmptySubsequences: false).dropFirst())
        var allowed: [HTTPRequest.Method] = []
        for route in routes {
            guard let captured = Self.capture(route.segments, parts) else { continue }
            if route.method == method { return .found(route, captured: captured.value) }
            if !allowed.contains(route.method) { allowed.append(route.method) }
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed)
    }

    /// `nil` when the segments do not match; otherwise the captured text (if any).
    private static func capture(_ segments: [Segment], _ parts: [Substring]) -> (value: String?, Void)? {
        guard segments.count == parts.count else { return nil }
        var captured: String?
        for (segment, part) in zip(segments, parts) {
            switch segment {
            case .literal(let literal):
                guard part == literal else { return nil }
            case .capture(let suffix):
                guard part.hasSuffix(suffix), part.count > suffix.count else { return nil }
                let raw = String(part.dropLast(suffix.count))
                captured = raw.contains("%") ? raw.removingPercentEncoding ?? raw : raw
            }
        }
        return (captured, ())
    }
}
