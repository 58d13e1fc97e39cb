# Multi-stage build of auditgate. Not built in CI (no Docker engine there):
# kept correct by reading. Build: docker build -t auditgate .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
RUN cargo build --release --locked --bin auditgate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/auditgate --create-home auditgate
COPY --from=build /src/target/release/auditgate /usr/local/bin/auditgate
COPY rules /etc/auditgate/rules
USER auditgate
WORKDIR /var/lib/auditgate
EXPOSE 8080 9181
ENTRYPOINT ["/usr/local/bin/auditgate"]
CMD ["serve", "--rules", "/etc/auditgate/rules", "--listen", "0.0.0.0:8080"]
