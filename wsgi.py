"""WSGI entry for production servers: ``gunicorn -w 4 -b 0.0.0.0:8000 wsgi:app``.

Each worker process builds its own app (no ``--preload``: a database pool or a Redis
connection made before the fork would be shared by every worker). Settings come from the
environment (README, *Production*); migrations and ``flask crm init`` run beforehand,
and the scheduler runs in its own process (``flask crm scheduler``), never in a web worker.
"""

from app import create_app

app = create_app()
