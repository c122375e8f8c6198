"""Start to ready of one agent: milliseconds from exec until GET /healthz answers 200.

    python3 ready.py HOST PORT COMMAND...

Polls a TCP connect every 0.5 ms, so the figure is the agent's, not the poller's: a shell
loop of `curl; sleep 0.005` adds the spawn of every curl (5-10 ms each here). The agent is
stopped with SIGTERM afterwards and waited for.
"""
import socket
import subprocess
import sys
import time


def main() -> None:
    host, port, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    start = time.perf_counter()
    agent = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if agent.poll() is not None:
                sys.exit(f"the agent exited with {agent.returncode} before it was ready")
            if time.perf_counter() - start > 10:
                sys.exit("not ready within 10 s")
            try:
                with socket.create_connection((host, port), timeout=1) as connection:
                    connection.sendall(request)
                    if connection.recv(16).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            time.sleep(0.0005)
        print(f"{(time.perf_counter() - start) * 1000:.1f}")
    finally:
        agent.terminate()
        agent.wait()


if __name__ == "__main__":
    main()
