"""Cold start of a function and ``POST /orchestrator {"dryRun": true}`` latency, with the Firestore emulator up.

* **cold**: a fresh Python process imports ``main.py`` the way functions-framework
  does (``create_app``), then answers its first request; measured from inside the
  process, from before the import to the response (interpreter start-up excluded,
  as Cloud Functions' own is). Two first requests: ``GET /strategy`` (the light
  path: validation and two reads) and ``POST /orchestrator {"dryRun": true}``
  (the whole pipeline: pandas, the bundled bars, the strategies).
* **warm**: the same dry run again and again on one instance, over real HTTP
  (functions-framework apps in a loopback server).

Targets: cold import + first response under 1.5 s; dry-run latency under 2 s. Usage:

    python bench/cold_start.py [--runs 5] [--warm 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AS_OF = "2020-03-16"
CHILD = """
import json, sys, time
t0 = time.perf_counter()
import main  # what the runtime imports first
t_import = time.perf_counter()
import functions_framework
app = functions_framework.create_app(sys.argv[1], "main.py").test_client()
t_app = time.perf_counter()
if sys.argv[1] == "orchestrator":
    r = app.post("/", json={"dryRun": True, "asOf": sys.argv[2]})
else:
    r = app.get("/")
t_resp = time.perf_counter()
assert r.status_code == 200, r.get_data(as_text=True)
print(json.dumps({"import_main": t_import - t0, "create_app": t_app - t_import, "first_response": t_resp - t_app,
                  "total": t_resp - t0}))
"""


def cold(target: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, target, AS_OF], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit(f"cold start of {target} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"median={statistics.median(xs) * 1000:.0f} ms  min={xs[0] * 1000:.0f} ms  "
            f"max={xs[-1] * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5, help="cold processes per target")
    ap.add_argument("--warm", type=int, default=10, help="warm dry runs")
    args = ap.parse_args()

    import requests

    from bus.emulator import FirestoreEmulator
    from bus.store import FirestoreStore
    from ops.server import LocalFunctions
    from pipeline.settings import apply_settings, load_settings

    project = f"bench-{uuid.uuid4().hex[:8]}"
    with FirestoreEmulator(project) as emu:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        os.environ["GOOGLE_CLOUD_PROJECT"] = project
        apply_settings(FirestoreStore(project), load_settings())
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        cold("strategy", env)  # the first process pays for bytecode compilation; not a cold start of a deployment
        light = [cold("strategy", env) for _ in range(args.runs)]
        heavy = [cold("orchestrator", env) for _ in range(args.runs)]
        print(f"cold GET /strategy (import main.py -> first response), runs={args.runs}: "
              f"{ms([r['total'] for r in light])}")
        print(f"cold POST /orchestrator dryRun (import main.py -> first response), runs={args.runs}: "
              f"{ms([r['total'] for r in heavy])}")
        print("  of which: import main.py " + ms([r["import_main"] for r in heavy])
              + " | create_app " + ms([r["create_app"] for r in heavy])
              + " | first dry run " + ms([r["first_response"] for r in heavy]))
        with LocalFunctions() as fns:
            url = fns.urls()["orchestrator"]
            requests.post(url, json={"dryRun": True, "asOf": AS_OF}, timeout=120).raise_for_status()  # warm-up
            times = []
            for _ in range(args.warm):
                t = time.perf_counter()
                r = requests.post(url, json={"dryRun": True, "asOf": AS_OF}, timeout=120)
                times.append(time.perf_counter() - t)
                assert r.status_code == 200 and r.json()["dry_run"] is True, r.text
        print(f"warm POST /orchestrator dryRun over HTTP, default strategies, emulator up, "
              f"runs={args.warm}: {ms(times)}")


if __name__ == "__main__":
    main()
