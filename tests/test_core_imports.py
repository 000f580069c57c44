"""The package and its CLI work with the core dependencies alone (no test tools, no Spark)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = ("pyspark", "hypothesis", "pytest", "fastapi", "uvicorn", "psycopg", "playwright", "sqlalchemy", "argon2")


def test_cli_help_without_optional_packages() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split('.')[0] in {BLOCK!r}:
                    raise ImportError('blocked optional package: ' + name)
                return None
        sys.meta_path.insert(0, Block())
        import flagstone, flagstone.cli, flagstone.rules, flagstone.engines, flagstone.scan
        sys.argv = ['flagstone', '--help']
        try:
            flagstone.cli.app()
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for command in ("ingest", "scan", "alerts", "evaluate", "report", "generate"):
        assert command in result.stdout
