# syntax=docker/dockerfile:1
# Multi-stage build: compile in the Rust image, run in a slim Debian with a non-root user.

FROM rust:1.95-bookworm AS build
WORKDIR /src
# Build the dependencies first so that source edits do not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
# Cargo.toml declares the benchmark target; its file must exist for any build.
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
# The compile-time checked queries' metadata: the build needs no database.
COPY .sqlx ./.sqlx
ENV SQLX_OFFLINE=true
# Templates and the stylesheet are compiled into the binary.
COPY templates ./templates
COPY static ./static
RUN touch src/main.rs src/lib.rs && cargo build --release --locked

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /src/target/release/logto-signin /usr/local/bin/logto-signin
USER app
ENV HOST=0.0.0.0 PORT=3000 RUST_LOG=info,sqlx=warn
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=4s --start-period=10s --retries=3 CMD ["logto-signin", "healthcheck"]
ENTRYPOINT ["logto-signin"]
CMD ["serve"]
