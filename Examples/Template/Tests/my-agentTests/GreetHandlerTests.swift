import QScheduleAgent
import QScheduleAgentTesting
import Testing
@testable import my_agent

@Test func greetsTwice() async {
    let outcome = await HandlerTest(param: ["name": "ops", "times": 2]).run(GreetHandler())
    #expect(outcome.result == .succeeded)
    #expect(outcome.log.filter { $0.hasSuffix("hello, ops") }.count == 2)
}

@Test func nameIsRequired() async {
    let outcome = await HandlerTest(param: ["times": 2]).run(GreetHandler())
    #expect(outcome.message == #"param "name" is required"#)
}
