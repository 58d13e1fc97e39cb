# Multi-stage build of auditgate: docker build -t auditgate .
# No container engine runs in CI: scripts/dockerfile-check.sh copies exactly
# what the build stage copies into an empty directory and compiles it there,
# and checks that the runtime stage's files exist (run by scripts/test.sh).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin auditgate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/auditgate --create-home auditgate
COPY --from=build /src/target/release/auditgate /usr/local/bin/auditgate
COPY rules /etc/auditgate/rules
USER auditgate
WORKDIR /var/lib/auditgate
# The proxy, and the query port. The query port listens on loopback unless
# it is given tokens: to reach it from outside the container, set
# AUDITGATE_QUERY_LISTEN=0.0.0.0:9181 and name tokens in a mounted
# configuration file (docs/operations.md, "Running in a container").
EXPOSE 8080 9181
# auditgate probes its own query port (GET /healthz): no curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/auditgate", "health"]
ENTRYPOINT ["/usr/local/bin/auditgate"]
CMD ["serve", "--rules", "/etc/auditgate/rules", "--listen", "0.0.0.0:8080"]
