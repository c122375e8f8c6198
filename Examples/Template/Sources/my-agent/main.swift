import QScheduleAgent

var handlers = HandlerRegistry()
handlers.register("hello.greet", GreetHandler())
// The whole qagent CLI (run, status, trigger, tasks, ...), with these handlers compiled in.
await QAgent.main(handlers: handlers)
