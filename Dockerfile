# Kefu self-hosted gateway. Build: docker build -t kefu .  Run: see compose.yaml.
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 10001 kefu
COPY pyproject.toml README.md ./
COPY layers ./layers
COPY shared ./shared
RUN pip install .
COPY web ./web
COPY knowledge ./knowledge
USER kefu
ENV KEFU_ENV=production GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8080 WEB_DIR=/app/web \
    KNOWLEDGE_DIR=/app/knowledge/demo
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
CMD ["kefu", "run"]
