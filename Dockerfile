# msgrd, the msgr broker daemon.
#
#   docker build -t msgrd .
#   docker compose up        # with PostgreSQL and MinIO, see docker-compose.yml

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first so that source changes reuse the module cache layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/msgrd ./cmd/msgrd

FROM debian:bookworm-slim
# curl is for the health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/msgr --create-home msgr
COPY --from=build /out/msgrd /usr/local/bin/msgrd

USER msgr
WORKDIR /var/lib/msgr
ENV MSGR_MQTT_ADDR=0.0.0.0:1883 \
    MSGR_WS_ADDR=0.0.0.0:8083 \
    MSGR_HTTP_ADDR=0.0.0.0:8080 \
    MSGR_DATA_DIR=/var/lib/msgr
VOLUME /var/lib/msgr
EXPOSE 1883 8083 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["msgrd"]
