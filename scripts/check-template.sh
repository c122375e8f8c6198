#!/usr/bin/env bash
# Builds and tests a copy of Examples/Template (the five-minute start in the README and the
# handler guide) against this checkout, then starts it and has it run a task: the template a
# handler author copies cannot rot. Run by .ci/run after the tests.
#
#   scripts/check-template.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="/opt/swift/usr/bin:$PATH"
WORK=$(mktemp -d /tmp/qagent-template.XXXXXX)
AGENT_PID=""
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "check-template: $*" >&2; exit 1; }

# The checkout as a dependency named "qagent" (its folder name is its package identity),
# without its build folder.
mkdir "$WORK/qagent"
tar -C "$ROOT" --exclude=./.build --exclude='./.build-*' --exclude=./.git -cf - . | tar -C "$WORK/qagent" -xf -
cp -R Examples/Template "$WORK/my-agent"
rm -rf "$WORK/my-agent/.build" "$WORK/my-agent/data"
dependency='.package(url: "https://github.com/qagent/qagent.git", from: "0.1.0"),'
grep -qF "$dependency" "$WORK/my-agent/Package.swift" || fail "Examples/Template/Package.swift no longer has the line this script replaces: $dependency"
sed -i "s|$(printf '%s' "$dependency" | sed 's/[.[\*^$|]/\\&/g')|.package(path: \"../qagent\"),|" "$WORK/my-agent/Package.swift"

cd "$WORK/my-agent"
echo "check-template: building my-agent against this checkout"
swift build
echo "check-template: its tests"
swift test
.build/debug/my-agent config check --config agent.conf

# Run it: the handler must be served, and a dispatched task must end 200 with its greeting.
.build/debug/my-agent run --config agent.conf >agent.log 2>&1 &
AGENT_PID=$!
for _ in $(seq 200); do curl -sf -o /dev/null http://127.0.0.1:20012/healthz && break; sleep 0.1; done
token=$(sed -n 's/^token = "\(.*\)"/\1/p' agent.conf)
answer=$(curl -s -H "Q-Server-Token: $token" -d '{"job":"hello.greet","param":{"name":"ops","times":2}}' http://127.0.0.1:20012/api2/tasks.do)
task=$(printf '%s' "$answer" | python3 -c 'import json,sys; a=json.load(sys.stdin); print(a["message"] if a.get("ret") else "")')
[ -n "$task" ] || fail "dispatch refused: $answer ($(cat agent.log))"
for _ in $(seq 100); do
  info=$(curl -s -H "Q-Server-Token: $token" "http://127.0.0.1:20012/api2/tasks/$task.do")
  printf '%s' "$info" | grep -q '"lastState":200' && break
  sleep 0.1
done
printf '%s' "$info" | grep -q '"lastState":200' || fail "task $task did not end 200: $info"
log=$(curl -s -H "Q-Server-Token: $token" "http://127.0.0.1:20012/api2/tasks/$task/log.do")
[ "$(printf '%s' "$log" | grep -o 'hello, ops' | wc -l)" = 2 ] || fail "the task log lacks the greetings: $log"
echo "check-template: OK (built, tested, ran task $task)"
