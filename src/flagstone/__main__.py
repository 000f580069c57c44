from flagstone.cli import app

app()
