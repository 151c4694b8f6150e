"""What a public access token costs the trigger path: signing one (what every trigger does for
its run) and verifying one (what every request with a token does), in microseconds.

    python bench/public_tokens.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hightide.engine.environments import bootstrap, find_environment
from hightide.engine.runs import RunEngine
from hightide.store import open_store

N = 20_000


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "tokens.db"))
        try:
            store.migrate()
            bootstrap(store, time.time())
            env = find_environment(store, "dev")
            tokens = RunEngine(store).public_tokens
            run_id = "run_01kbcdefghjkmnpqrstvwxyz"
            tokens.verify(tokens.for_run(env, run_id))  # the key and the environment, cached from here on
            started = time.perf_counter()
            for _ in range(N):
                token = tokens.for_run(env, run_id)
            signed = (time.perf_counter() - started) / N * 1e6
            started = time.perf_counter()
            for _ in range(N):
                tokens.verify(token)
            verified = (time.perf_counter() - started) / N * 1e6
        finally:
            store.close()
    print(f"sign (per trigger): {signed:.1f} µs; verify (per request): {verified:.1f} µs; token {len(token)} bytes")


if __name__ == "__main__":
    main()
