// An agent binary with the example handlers compiled in (Examples/Handlers: typed, closure,
// blocking, completed later). It has the whole qagent CLI:
//   swift run qagent-example run --config Examples/example-agent.conf
import QScheduleAgent
import QScheduleAgentExamples

await QAgent.main(handlers: ExampleHandlers.registry)
