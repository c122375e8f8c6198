import Foundation
import Testing

/// The handler guide (DocC) and the README's handler section quote compiled code: every
/// Swift block must still be in `Examples/` (built with the package; `Examples/Template` is
/// built against the checkout by `scripts/check-template.sh`) or in the example handlers'
/// tests, and every TOML block in the template's `agent.conf`. A snippet cannot rot.
@Suite("Documentation snippets are compiled code")
struct DocumentationSnippetTests {
    static let root = ConfigLoaderTests.repositoryRoot

    /// The fenced blocks of `language` in a Markdown text.
    static func blocks(_ language: String, in markdown: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```\(language)" {
                current = []
            } else if current != nil, line == "```" {
                blocks.append(current!.joined(separator: "\n"))
                current = nil
            } else {
                current?.append(line)
            }
        }
        return blocks
    }

    /// Lines without indentation or trailing space, empty ones dropped.
    static func normalized(_ text: String) -> [String] {
        text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Whether `needle` occurs as a run of consecutive lines in `haystack`.
    static func contains(_ haystack: [String], _ needle: [String]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }

    /// Every file of `extensions` under `folders` (relative to the repository).
    static func sources(under folders: [String], extensions: Set<String>) -> [(path: String, lines: [String])] {
        var found: [(String, [String])] = []
        for folder in folders {
            let base = root.appendingPathComponent(folder)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: base.path, isDirectory: &isDirectory) else { continue }
            let paths = isDirectory.boolValue
                ? (FileManager.default.enumerator(atPath: base.path)?.compactMap { $0 as? String } ?? []).map { base.appendingPathComponent($0).path }
                : [base.path]
            for path in paths where extensions.contains(URL(fileURLWithPath: path).pathExtension) && !path.contains("/.build") {
                if let text = try? String(contentsOfFile: path, encoding: .utf8) { found.append((path, normalized(text))) }
            }
        }
        return found
    }

    static let documents = ["Sources/QScheduleAgent/Documentation.docc/WritingJobHandlers.md", "README.md"]

    @Test("every Swift block of the handler guide and the README's handler section is in compiled code", arguments: documents)
    func swiftBlocksAreCompiled(document: String) throws {
        var text = try String(contentsOf: Self.root.appendingPathComponent(document), encoding: .utf8)
        if document == "README.md" {
            // Only the handler section: the README's other Swift is not about handlers.
            let start = try #require(text.range(of: "## Writing a Swift handler"))
            let end = text[start.upperBound...].range(of: "\n## ")?.lowerBound ?? text.endIndex
            text = String(text[start.lowerBound..<end])
        }
        let blocks = Self.blocks("swift", in: text)
        #expect(blocks.count >= (document == "README.md" ? 2 : 10), "\(document): \(blocks.count) Swift blocks")
        let compiled = Self.sources(
            under: ["Examples", "Tests/QScheduleAgentTests/ExampleHandlerTests.swift"], extensions: ["swift"])
        for block in blocks {
            let lines = Self.normalized(block)
            #expect(compiled.contains { Self.contains($0.lines, lines) }, "\(document): not in Examples/ or the example tests:\n\(block)")
        }
        for block in Self.blocks("toml", in: text) {
            let conf = Self.sources(under: ["Examples/Template/agent.conf"], extensions: ["conf"])
            #expect(conf.contains { Self.contains($0.lines, Self.normalized(block)) }, "\(document): not in Examples/Template/agent.conf:\n\(block)")
        }
    }

    @Test("the check finds a block that is not compiled")
    func detectsRot() {
        let compiled = Self.sources(under: ["Examples/Handlers"], extensions: ["swift"])
        #expect(!compiled.isEmpty)
        let rotten = Self.normalized("let completion = context.deferCompletion()\ncompletion.finish()")
        #expect(!compiled.contains { Self.contains($0.lines, rotten) })
        let kept = Self.normalized("let completion = context.deferCompletion()\ngzip.terminationHandler = { gzip in")
        #expect(compiled.contains { Self.contains($0.lines, kept) })
    }
}
