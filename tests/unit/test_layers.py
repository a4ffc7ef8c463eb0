"""The kernel (``berth/``) stands below the services, and a service's domain modules stand
below nameko: read from the source, so a new import that breaks the layering fails here."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Domain modules that import nameko or eventlet anyway (none: concurrency goes through
# berth.concurrency).
KNOWN_OFFENDERS: set[str] = set()

# berth's modules of plain code that domain modules import: no nameko there either.
PLAIN_KERNEL = ("actor", "api_keys", "context", "db", "docker/engines", "docker/sealing",
                "events", "lease", "queries", "schemas", "settings", "tokens",
                "validation")  # (berth.errors registers with nameko's remote-error registry)


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def importing(path: Path, roots: tuple[str, ...]) -> list[str]:
    return sorted(name for name in imported_modules(path) if name.split(".")[0] in roots)


def domain_modules() -> list[Path]:
    """Every module under services/<name>/ but service.py, its tests and its migrations."""
    found = []
    for path in sorted((ROOT / "services").glob("*/**/*.py")):
        parts = path.relative_to(ROOT / "services").parts
        if path.name == "service.py" or {"tests", "migrations"} & set(parts[1:-1]):
            continue
        found.append(path)
    return found


def test_nothing_in_the_kernel_imports_a_service():
    offenders = {str(path.relative_to(ROOT)): importing(path, ("services", "gateway"))
                 for path in sorted((ROOT / "berth").glob("**/*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}


def test_domain_modules_import_neither_nameko_nor_eventlet():
    modules = domain_modules()
    assert ROOT / "services" / "users" / "accounts.py" in modules  # the scan sees them
    offenders = {str(path.relative_to(ROOT)): importing(path, ("nameko", "eventlet"))
                 for path in modules}
    offenders = {path: names for path, names in offenders.items() if names}
    assert {path: names for path, names in offenders.items()
            if path not in KNOWN_OFFENDERS} == {}


def test_the_kernel_modules_domain_code_uses_are_plain():
    offenders = {name: importing(ROOT / "berth" / f"{name}.py", ("nameko", "eventlet"))
                 for name in PLAIN_KERNEL}
    assert {name: names for name, names in offenders.items() if names} == {}


def test_importing_the_service_kernel_patches_nothing_until_install_is_called():
    """nameko is changed by one explicit call (berth.run and the root conftest make it)."""
    check = (
        "import berth.service, berth.outbox, berth.metrics\n"
        "import amqp\n"
        "from nameko.messaging import QueueConsumer\n"
        "from nameko.rpc import RpcConsumer\n"
        "def patched():\n"
        "    return (RpcConsumer.handle_result, QueueConsumer.ack_message,\n"
        "            QueueConsumer.requeue_message, amqp.Connection.drain_events)\n"
        "before = patched()\n"
        "assert before[0].__module__ == 'nameko.rpc', before\n"
        "assert all(f.__module__.startswith('amqp.') for f in before[3:]), before\n"
        "from berth import nameko_patches\n"
        "nameko_patches.install()\n"
        "once = patched()\n"
        "nameko_patches.install()\n"
        "assert once[0] is nameko_patches.handle_result\n"
        "assert once[3] is nameko_patches.drain_events\n"
        "assert all(a is not b for a, b in zip(before, once)), 'install changed nothing'\n"
        "assert once == patched(), 'a second install wrapped again'\n")
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
