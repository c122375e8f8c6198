import Foundation
import QScheduleAgent

/// CPU per MB of request bodies built to be expensive, each under `max_request_bytes`
/// (1 MiB): qagent's parser beside Foundation's `JSONSerialization` (baseline) and the
/// previous `JSONDecoder`-into-`JSONValue` path.
enum JSONBenchmark {
    static func run(bytes: Int) {
        print("CPU per MB of body (ms/MB), bodies of ~\(bytes / 1024) KiB; lower is better")
        print(CronNextBenchmark.pad("body", 46) + CronNextBenchmark.pad("qagent", 12) + CronNextBenchmark.pad("JSONSerialization", 20) + "JSONDecoder (previous)")
        // The previous path is slow enough (seconds per value when deep) to be measured on
        // 64 KiB bodies of the same shape; its cost grows with the number of values, so per MB
        // it compares.
        let small = bodies(bytes: 64 << 10)
        for ((name, body), (_, smallBody)) in zip(bodies(bytes: bytes), small) {
            let megabytes = Double(body.count) / 1_048_576
            let ours = measure { _ = JSONValue(parsing: body) } / megabytes
            let foundation = measure { _ = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed]) } / megabytes
            let previous = measure { _ = try? JSONDecoder().decode(JSONValue.self, from: smallBody) } / (Double(smallBody.count) / 1_048_576)
            print(CronNextBenchmark.pad(name, 46) + CronNextBenchmark.pad(String(format: "%.1f", ours), 12)
                  + CronNextBenchmark.pad(String(format: "%.1f", foundation), 20) + String(format: "%.1f", previous))
            fflush(nil)  // each row as soon as it is measured, also when piped
        }
    }

    /// Milliseconds of CPU for one call, the best of several runs (at least 0.2 s in all).
    static func measure(_ body: () -> Void) -> Double {
        var best = Double.infinity
        var spent = 0.0
        var runs = 0
        while runs < 3 && spent < 2000 || (spent < 200 && runs < 50) {
            let start = processCPUMilliseconds()
            body()
            let elapsed = processCPUMilliseconds() - start
            best = min(best, elapsed)
            spent += elapsed
            runs += 1
        }
        return best
    }

    static func bodies(bytes: Int) -> [(String, Data)] {
        func fill(_ prefix: String, _ unit: String, _ suffix: String) -> Data {
            let count = max(1, (bytes - prefix.utf8.count - suffix.utf8.count) / (unit.utf8.count + 1))
            return Data((prefix + Array(repeating: unit, count: count).joined(separator: ",") + suffix).utf8)
        }
        // Body, param and x take 3 levels: 61 more reach the limit of 64.
        let deepAtLimit = String(repeating: "[", count: 61) + String(repeating: "]", count: 61)
        let deep500 = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        let escapes = "\"" + String(repeating: #"\u00e9\n\"\ud83d\ude00"#, count: 8) + "\""
        var keys = "{"
        var index = 0
        while keys.utf8.count < bytes - 32 {
            keys += (index == 0 ? "" : ",") + "\"k\(index)\":\(index)"
            index += 1
        }
        keys += "}"
        return [
            ("arrays nested 63 deep, repeated (at the limit)", fill(#"{"job":"a","param":{"x":["#, deepAtLimit, "]}}")),
            ("arrays nested 500 deep, repeated (over the limit)", fill("[", deep500, "]")),
            ("small integers", fill(#"{"job":"a","param":{"x":["#, "7", "]}}")),
            ("strings of escapes and surrogate pairs", fill(#"{"job":"a","param":{"x":["#, escapes, "]}}")),
            ("one object with unique keys", Data(("{\"job\":\"a\",\"param\":" + keys + "}").utf8)),
            ("floats", fill(#"{"job":"a","param":{"x":["#, "-1.2345678901234567e-300", "]}}")),
        ]
    }
}
