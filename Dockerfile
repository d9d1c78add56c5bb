# tetcore-analytics: build with the Rust toolchain image, run on slim Debian as a non-root user.
# Migrations and the dashboard's files are built into the binary: it needs nothing beside it.
#   docker build -t tetcore-analytics .

FROM rust:1-slim-trixie AS build
# Debian's versions within one release are security updates; pinning them would break builds.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY tests ./tests
COPY migrations ./migrations
COPY static ./static
COPY telemetry_messages.json README.md .env.example ./
RUN cargo build --release --locked --bin tetcore-analytics

FROM debian:trixie-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tetcore
COPY --from=build /src/target/release/tetcore-analytics /usr/local/bin/tetcore-analytics
ENV LISTEN_ADDR=0.0.0.0 \
    PORT=8080 \
    RUST_LOG=info
USER 10001
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tetcore-analytics"]
