"""Long-lived processes freeze what they imported before they serve (issue 18: full garbage
collections walked every module object and stopped a service for 50-180 ms under load): a
service process (``berth.run``) just before it starts its container, and the gateway's gunicorn
master (``pre_fork``, with the app preloaded) before each worker is forked."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def frozen_after(code: str, tmp_path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", code + "\nimport gc\nprint(gc.get_freeze_count())"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "BERTH_ENV": "test", "BERTH_VAR_DIR": str(tmp_path),
             "BERTH_JWT_SECRET": "x" * 40, "BERTH_SECRETS_KEY": "y" * 40})
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_a_service_process_freezes_its_imports_before_it_serves(tmp_path):
    assert frozen_after("import berth.run as r\nr.service_class('users')", tmp_path) == 0
    frozen = frozen_after("import berth.run as r\nr.service_class('users')\n"
                          "r.freeze_what_was_imported()", tmp_path)
    assert frozen > 50_000  # nameko, SQLAlchemy, pydantic and the service's own modules


def test_the_gateway_master_freezes_the_preloaded_app_before_forking(tmp_path):
    load = ("import runpy\nns = runpy.run_path('gateway/gunicorn.conf.py')\n"
            "assert ns['preload_app'] is True  # the app is in the master when it forks\n"
            "from gateway.wsgi import app\n")
    assert frozen_after(load, tmp_path) == 0
    assert frozen_after(load + "ns['pre_fork'](None, None)", tmp_path) > 50_000


def test_berth_run_freezes_before_the_container_runs(tmp_path):
    """``berth.run.main`` with nameko's runner replaced: the freeze has happened by the time
    the service would start."""
    run_with_a_stand_in_runner = (
        "import gc, nameko.cli.run\n"
        "seen = []\n"
        "nameko.cli.run.run = lambda services, config: seen.append(gc.get_freeze_count())\n"
        "import berth.run\n"
        "assert berth.run.main(['users']) == 0\n"
        "assert seen and seen[0] > 50_000, seen\n")
    assert frozen_after(run_with_a_stand_in_runner, tmp_path) > 50_000
