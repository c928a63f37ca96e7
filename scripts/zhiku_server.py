"""Starting `zhiku serve` for a benchmark script: the process and the address it listens
on (the scripts bind port 0 and read the address the server prints)."""
import subprocess


def start(binary, env, quiet=False):
    """`zhiku serve` from `binary` with environment `env`: the process and its base URL.
    `quiet` drops its log (stderr). Exits with the reason when it does not start."""
    server = subprocess.Popen([str(binary), "serve"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL if quiet else None, text=True)
    for line in server.stdout:
        if line.startswith("zhiku is listening on "):
            return server, line.split("on ", 1)[1].strip()
    server.wait(timeout=30)
    raise SystemExit(f"the server did not start (exit status {server.returncode})")
