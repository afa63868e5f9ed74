"""Import cost of ``airflow_provider_lightning.operators.jobs`` over ``airflow.sdk`` alone (target < 50 ms).

Both are measured side by side in fresh interpreters, alternating, and the medians compared.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

BASE = "import time; t = time.perf_counter(); import airflow.sdk"
OURS = BASE + "; import airflow_provider_lightning.operators.jobs, airflow_provider_lightning.sensors.lightning"
TAIL = "; print(time.perf_counter() - t)"


def once(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code + TAIL], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(rounds: int = 9) -> None:
    once(OURS)  # warm the file cache
    base, ours = [], []
    for _ in range(rounds):
        base.append(once(BASE))
        ours.append(once(OURS))
    b, o = statistics.median(base), statistics.median(ours)
    print(f"import airflow.sdk alone:                    median {b * 1000:7.1f} ms over {rounds} runs")
    print(f"import airflow.sdk + our operators & sensor: median {o * 1000:7.1f} ms over {rounds} runs")
    print(f"extra cost of the provider:                  {1000 * (o - b):7.1f} ms (target < 50 ms)")


if __name__ == "__main__":
    main()
