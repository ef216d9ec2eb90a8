#!/usr/bin/python3
"""boot-test-agent: runs the boot test's shell commands inside the booted guest.

Installed only in the boot test's disk image (never in the real image).  The
host's boot_check.py talks to it over a virtio-serial port named "agent": each
request is one JSON line {"id": n, "cmd": "...", "timeout": s}, each reply one
JSON line {"id": n, "rc": status, "out": "stdout and stderr"}.
"""

import glob
import json
import os
import subprocess
import time


def port_path() -> str:
    for name_file in glob.glob("/sys/class/virtio-ports/*/name"):
        with open(name_file) as f:
            if f.read().strip() == "agent":
                return "/dev/" + name_file.split("/")[-2]
    return ""


def write_all(fd: int, data: bytes) -> None:
    # A virtio port takes at most a few pages per write.
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def serve(fd: int) -> None:
    buf = b""
    while True:
        data = os.read(fd, 65536)
        if not data:
            time.sleep(0.2)  # host not connected yet
            continue
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.strip():
                continue
            req = json.loads(line)
            try:
                done = subprocess.run(
                    ["/bin/bash", "-c", req["cmd"]],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=req.get("timeout", 60),
                )
                reply = {"id": req["id"], "rc": done.returncode, "out": done.stdout.decode(errors="replace")}
            except subprocess.TimeoutExpired as err:
                out = (err.stdout or b"").decode(errors="replace")
                reply = {"id": req["id"], "rc": 124, "out": out + "\n(timed out)"}
            write_all(fd, (json.dumps(reply) + "\n").encode())


def main() -> None:
    while not port_path():
        time.sleep(0.2)
    serve(os.open(port_path(), os.O_RDWR))


if __name__ == "__main__":
    main()
