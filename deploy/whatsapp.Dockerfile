# The WhatsApp sidecar with Debian's Chromium; tini runs as PID 1 so SIGTERM reaches node, which
# closes the browser and keeps the session. Build from the repo root (see docker-compose.yml).
FROM node:20-bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-liberation ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*

# Puppeteer must not download its own Chrome: the image's Chromium is used instead.
ENV PUPPETEER_SKIP_DOWNLOAD=true \
    CHROMIUM_PATH=/usr/bin/chromium \
    NODE_ENV=production \
    WHATSAPP_HOST=0.0.0.0 \
    WHATSAPP_PORT=3001 \
    WASCHED_DATA_DIR=/data \
    WHATSAPP_DATA_DIR=/data/whatsapp

WORKDIR /app/whatsapp-service
COPY whatsapp-service/package.json whatsapp-service/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY whatsapp-service/src ./src

RUN mkdir -p /data/whatsapp && chown -R node:node /data && chmod -R 700 /data
USER node
VOLUME ["/data/whatsapp"]
EXPOSE 3001

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:3001/health').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "src/server.js"]
