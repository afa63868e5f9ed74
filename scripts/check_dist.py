"""Build both distributions (sdist + wheel), check them with ``twine check --strict`` and list the wheels.

Fails when the provider wheel contains the simulator or tests, or when a wheel or sdist lacks LICENSE/NOTICE.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"


def build(project: Path) -> None:
    """``python -m build`` (isolated: the declared build requirements only) into dist/."""
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(DIST), str(project)],
                          capture_output=True, text=True)
    if done.returncode:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
        raise SystemExit(f"building {project} failed")


def main() -> int:
    shutil.rmtree(DIST, ignore_errors=True)
    build(ROOT)
    build(ROOT / "simulator")
    files = sorted(DIST.iterdir())
    subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)], check=True)
    problems: list[str] = []
    for path in files:
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as wheel:
                names = wheel.namelist()
        else:
            with tarfile.open(path) as sdist:
                names = sdist.getnames()
        print(f"\n{path.name}: {len(names)} files, {path.stat().st_size / 1024:.0f} KiB")
        if path.suffix == ".whl":
            for name in names:
                print(f"  {name}")
        for required in ("LICENSE", "NOTICE"):
            if not any(n.rsplit("/", 1)[-1] == required for n in names):
                problems.append(f"{path.name} has no {required}")
        if path.name.startswith("airflow_provider_lightning"):
            leaked = [n for n in names if "simulator" in n.split("/")[0] or n.split("/")[0] == "tests"
                      or "lightning_simulator" in n]
            if path.suffix == ".whl" and leaked:
                problems.append(f"{path.name} contains {leaked[:5]}")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
