# syntax=docker/dockerfile:1
# The operator image: a release build on Debian bookworm, run on distroless (glibc, no shell) as the
# non-root user 65532. TLS uses rustls with webpki roots, so the runtime needs no OpenSSL.
#
#   docker build -t ghcr.io/databricks-account-operator/databricks-account-operator:dev .

ARG RUST_VERSION=1.89

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Download the dependencies in their own layer, so source edits do not download them again.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src && echo 'fn main() {}' >src/main.rs && touch src/lib.rs \
    && cargo fetch --locked \
    && rm -rf src
COPY src ./src
# The target directory is a build cache (BuildKit), so the binary is copied out of it.
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin databricks-account-operator \
    && install -D -m 0755 target/release/databricks-account-operator /out/databricks-account-operator

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="databricks-account-operator" \
      org.opencontainers.image.description="Kubernetes operator for Databricks account-level AWS provisioning objects" \
      org.opencontainers.image.source="https://github.com/databricks-account-operator/databricks-account-operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/databricks-account-operator /usr/local/bin/databricks-account-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/databricks-account-operator"]
CMD ["run"]
