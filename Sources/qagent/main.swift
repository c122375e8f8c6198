import QScheduleAgent

// The stock agent: command handlers from agent.conf only. A binary with Swift handlers
// calls the same entry with its HandlerRegistry.
await QAgent.main()
