-- wrk: a flood of dispatches, POST /api2/tasks.do {"job":$JOB}.
wrk.method = "POST"
wrk.body = '{"job":"' .. os.getenv("JOB") .. '"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Q-Server-Token"] = os.getenv("TOKEN")
