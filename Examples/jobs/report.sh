#!/bin/sh
# Demo command job: reads its param from stdin, works a little, prints a summary.
# Exit 0 -> lastState 200; anything else -> 500.
param=$(cat)
echo "task ${QSCHEDULE_TASK_ID} of ${QSCHEDULE_JOB} (attempt ${QSCHEDULE_ATTEMPT}) param=${param}"
seconds=$(printf '%s' "$param" | sed -n 's/.*"seconds":\([0-9]*\).*/\1/p')
sleep "${seconds:-2}"
echo "done"
