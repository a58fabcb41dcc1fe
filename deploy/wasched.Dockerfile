# wasched (bot and scheduler in one process). Build from the repo root (see docker-compose.yml).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY core ./core
COPY bot ./bot
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app wasched \
    && mkdir -p /app/data \
    && chown wasched /app/data \
    && chmod 700 /app/data

USER wasched
# MPLCONFIGDIR: matplotlib (the /stats chart) keeps its font cache there; /app is not writable.
ENV HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8001 \
    WASCHED_DATA_DIR=/app/data \
    DATABASE_URL=sqlite:////app/data/wasched.db \
    MPLCONFIGDIR=/tmp/matplotlib
VOLUME ["/app/data"]
EXPOSE 8001

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=4 \
    CMD ["python", "-c", "import urllib.request as u, urllib.error as e\ntry: u.urlopen('http://127.0.0.1:8001/healthz', timeout=4)\nexcept e.HTTPError: pass"]

STOPSIGNAL SIGTERM
CMD ["python", "-m", "bot", "run"]
