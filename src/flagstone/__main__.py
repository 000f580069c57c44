"""``python -m flagstone``, and the file spark-submit runs on the driver (docs/scale.md)."""

from flagstone.cli import app

if __name__ == "__main__":
    app()
