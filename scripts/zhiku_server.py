"""Starting `zhiku serve` for a benchmark script: the process and the address it listens
on (the scripts bind port 0 and read the address the server prints)."""
import subprocess


def start(binary, env, quiet=False, log=None):
    """`zhiku serve` from `binary` with environment `env`: the process and its base URL.
    `quiet` drops its log (stderr); `log`, a path, keeps it in that file instead. Exits
    with the reason when it does not start (the log's tail, when it went to `log`)."""
    if log is not None:
        stderr = open(log, "w", encoding="utf-8")
    else:
        stderr = subprocess.DEVNULL if quiet else None
    try:
        server = subprocess.Popen([str(binary), "serve"], env=env, stdout=subprocess.PIPE,
                                  stderr=stderr, text=True)
    finally:
        if log is not None:
            stderr.close()  # the child holds its own copy
    for line in server.stdout:
        if line.startswith("zhiku is listening on "):
            return server, line.split("on ", 1)[1].strip()
    server.wait(timeout=30)
    tail = ""
    if log is not None:
        with open(log, encoding="utf-8", errors="replace") as f:
            tail = "\n" + f.read()[-4000:]
    raise SystemExit(f"the server did not start (exit status {server.returncode}){tail}")
