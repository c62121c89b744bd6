# mikro-sync container image: the worker daemon as a non-root user.
#
#   docker build -t mikro-sync .
#   docker run -d --name mikro-sync --restart unless-stopped \
#       --env-file /etc/mikro-sync/mikro-sync.env mikro-sync
#
# Same build steps as CI: `cargo build --release --locked`. The image has no `demo` subcommand:
# the demo needs the TDS emulator (built only with `--features demo`) and PostgreSQL's server
# binaries (initdb, postgres), neither of which belongs in a production image. `.ci/docker-test`
# builds this file and runs the demo in a test-only image derived from it.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mikro-sync \
 && install -m 0755 target/release/mikro-sync /usr/local/bin/mikro-sync

FROM debian:bookworm-slim
# libssl3: TLS to SQL Server goes through OpenSSL (README, "Dependencies and TLS").
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/mikro-sync --create-home \
        --shell /usr/sbin/nologin mikro-sync
COPY --from=build /usr/local/bin/mikro-sync /usr/local/bin/mikro-sync
USER mikro-sync
WORKDIR /var/lib/mikro-sync
# Logs go to stdout (`docker logs`); set MIKRO_SYNC_LOG_DIR and mount a volume for files.
ENV MIKRO_SYNC_LOG_FORMAT=json
# Both databases must answer; `doctor --quick` prints nothing when they do.
HEALTHCHECK --interval=60s --timeout=30s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/mikro-sync", "doctor", "--quick"]
ENTRYPOINT ["/usr/local/bin/mikro-sync"]
CMD ["worker"]
