"""gunicorn settings for `make run` and production. Two cores here: 2×cores+1 sync workers is the
usual starting point; SCIM requests are short and database-bound."""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
timeout = 30
accesslog = "-" if os.environ.get("ACCESS_LOG", "1") == "1" else None
wsgi_app = "securelogin.wsgi:application"
