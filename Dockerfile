# syntax=docker/dockerfile:1

# ---- build ------------------------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# libpq is built with OpenSSL (feature `postgres-tls`) so the server can talk TLS to PostgreSQL.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .

# The target dir is a cache mount, so it is not part of the layer: copy the binary out of it in
# the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/app/target \
    cargo build --release --locked --features postgres-tls --bin steward \
 && cp /app/target/release/steward /usr/local/bin/steward

# ---- runtime ----------------------------------------------------------------------------------
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*

# Fixed uid/gid so volumes and orchestrator security contexts can rely on them.
RUN groupadd --system --gid 10001 steward \
 && useradd --system --uid 10001 --gid steward --no-create-home \
        --home-dir /var/lib/steward --shell /usr/sbin/nologin steward \
 && mkdir -p /var/lib/steward \
 && chown steward:steward /var/lib/steward \
 && chmod 0700 /var/lib/steward

COPY --from=builder /usr/local/bin/steward /usr/local/bin/steward

ENV STEWARD_BIND=0.0.0.0:8080 \
    STEWARD_DATA_DIR=/var/lib/steward \
    STEWARD_LOG_FORMAT=json

EXPOSE 8080
# Holds the SQLite database (when DATABASE_URL is unset) and the generated master.key (when
# STEWARD_MASTER_KEY is unset): keep it on a persistent volume.
VOLUME /var/lib/steward

# No HEALTHCHECK: the slim image has no curl/wget. Leave health checks to the orchestrator:
# GET /healthz (process up, liveness) and GET /readyz (database reachable, readiness) on :8080.

USER 10001:10001
WORKDIR /var/lib/steward
ENTRYPOINT ["/usr/local/bin/steward"]
CMD ["serve"]
